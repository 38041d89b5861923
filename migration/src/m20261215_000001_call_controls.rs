//! The rep steers the call: when it is booked with the customer (`booked_at`, `booked_with`),
//! reminders snoozed until a time (`snoozed_until`), and the due time it had before the first
//! such change (`first_due_at`), against which sales ops' limit on moving it is counted.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

/// The new columns, one `ALTER TABLE` each (SQLite adds one column at a time).
fn columns() -> [ColumnDef; 4] {
    [
        timestamp_with_time_zone_null(name("booked_at")),
        text_null(name("booked_with")),
        timestamp_with_time_zone_null(name("snoozed_until")),
        timestamp_with_time_zone_null(name("first_due_at")),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut c in columns() {
            manager.alter_table(Table::alter().table(name("calls")).add_column(&mut c).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in ["first_due_at", "snoozed_until", "booked_with", "booked_at"] {
            manager.alter_table(Table::alter().table(name("calls")).drop_column(name(c)).to_owned()).await?;
        }
        Ok(())
    }
}
