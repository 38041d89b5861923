//! People steer a call: the rep books it with the customer (`booked_at`, `booked_with`) or
//! snoozes its reminders until a time (`snoozed_until`); the due time it had before the first such
//! change (`first_due_at`) is kept, against which sales ops' limit on moving it is counted. Sales
//! ops may hand a call to another rep by hand (`rep_by_hand`: who did), which order updates then
//! leave alone.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

/// The new columns, one `ALTER TABLE` each (SQLite adds one column at a time).
fn columns() -> [ColumnDef; 5] {
    [
        timestamp_with_time_zone_null(name("booked_at")),
        text_null(name("booked_with")),
        timestamp_with_time_zone_null(name("snoozed_until")),
        timestamp_with_time_zone_null(name("first_due_at")),
        text_null(name("rep_by_hand")),
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
        for c in ["rep_by_hand", "first_due_at", "snoozed_until", "booked_with", "booked_at"] {
            manager.alter_table(Table::alter().table(name("calls")).drop_column(name(c)).to_owned()).await?;
        }
        Ok(())
    }
}
