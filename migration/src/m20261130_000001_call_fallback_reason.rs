//! A call that went to the sales-ops inbox because the address a CRM named may not receive
//! firstcall's mail (not in the rep directory nor in `mail.allowed_recipient_domains`) keeps the
//! reason, for its emails, the API and the call page. Calls opened before have none.

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
                    .add_column(ColumnDef::new(Alias::new("fallback_reason")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Alias::new("calls")).drop_column(Alias::new("fallback_reason")).to_owned()).await
    }
}
