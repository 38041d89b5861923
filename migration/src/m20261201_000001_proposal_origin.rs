//! Where a proposal version came from: `api` (pushed through `PUT /api/v1/proposals`) or `crm`
//! (pulled from the CRM by a connector). Both kinds of version share one version sequence per
//! deal; the recap reads the newest of each and merges them (the API's word wins). Versions
//! stored before came through the API.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("proposals"))
                    .add_column(ColumnDef::new(Alias::new("origin")).string_len(8).not_null().default("api"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Alias::new("proposals")).drop_column(Alias::new("origin")).to_owned()).await
    }
}
