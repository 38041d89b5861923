//! A call remembers which escalation steps were sent for it by the steps' names, not by their
//! position in the schedule, so a schedule edited while the call is open (a step inserted or
//! moved) never sends a step twice. Calls escalated before keep `NULL`: their first
//! `escalation_level` steps count as sent.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("calls"))
                    .add_column(ColumnDef::new(Alias::new("escalated_steps")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Alias::new("calls")).drop_column(Alias::new("escalated_steps")).to_owned()).await
    }
}
