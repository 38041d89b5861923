//! The webhook inbox: a verified event is acknowledged once its one row is stored, and applied
//! to orders and calls afterwards. A stored event keeps what applying it needs (its transition
//! and the facts it states, as the intake normalized them), and `outcome` is `pending` until
//! it is applied (then what applying did, or `failed` with `error`). The applier takes pending
//! events in id order from a partial index that holds only them; the dashboard lists failed
//! ones from another. Neither has an entry for an applied event, so neither costs an insert.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn table() -> Alias {
    Alias::new("webhook_events")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Alias::new("transition")).text().null().to_owned(),
            ColumnDef::new(Alias::new("facts")).text().null().to_owned(),
            ColumnDef::new(Alias::new("error")).text().null().to_owned(),
            ColumnDef::new(Alias::new("applied_at")).timestamp_with_time_zone().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(table()).add_column(&mut column).to_owned()).await?;
        }
        // Partial indexes read the same on both backends.
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX webhook_events_pending ON webhook_events (id) WHERE outcome = 'pending'").await?;
        db.execute_unprepared("CREATE INDEX webhook_events_failed ON webhook_events (id) WHERE outcome = 'failed'").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["webhook_events_failed", "webhook_events_pending"] {
            manager.drop_index(Index::drop().name(index).table(table()).to_owned()).await?;
        }
        for column in ["applied_at", "error", "facts", "transition"] {
            manager.alter_table(Table::alter().table(table()).drop_column(Alias::new(column)).to_owned()).await?;
        }
        Ok(())
    }
}
