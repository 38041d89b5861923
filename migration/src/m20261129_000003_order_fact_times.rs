//! Each fact of an order (rep, amount, segment, account name, line items) remembers when the
//! event that stated it happened, so the newest statement of each fact wins whatever the order
//! of delivery. Facts already stored take the time of the order's newest event.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const FACTS: [(&str, &str); 5] = [
    ("rep_at", "rep_email IS NOT NULL"),
    ("amount_at", "amount_minor IS NOT NULL"),
    ("segment_at", "segment IS NOT NULL"),
    ("account_at", "account_name IS NOT NULL"),
    ("line_items_at", "line_items IS NOT NULL"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (column, known) in FACTS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("orders"))
                        .add_column(ColumnDef::new(Alias::new(column)).timestamp_with_time_zone().null())
                        .to_owned(),
                )
                .await?;
            manager.get_connection().execute_unprepared(&format!("UPDATE orders SET {column} = last_event_at WHERE {known}")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (column, _) in FACTS {
            manager.alter_table(Table::alter().table(Alias::new("orders")).drop_column(Alias::new(column)).to_owned()).await?;
        }
        Ok(())
    }
}
