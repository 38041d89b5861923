//! Changes after the recap: each open call keeps the recap its rep last heard of
//! (`calls.recap_sent`, JSON), against which a later change of the proposal or the order is
//! told.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Alias::new("calls")).add_column(text_null(Alias::new("recap_sent"))).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Alias::new("calls")).drop_column(Alias::new("recap_sent")).to_owned()).await
    }
}
