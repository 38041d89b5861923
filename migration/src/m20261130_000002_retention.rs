//! Retention and the call list's pages.
//!
//! - `emails.body_removed_at`: when retention removed an email's text, HTML and invite.
//! - `emails_body_kept`: the emails whose text retention may still remove (sent or skipped,
//!   text kept), oldest first; an email leaves it when its text goes, so it holds about the
//!   configured number of days of mail, not every email ever sent.
//! - `calls_open_due`, `calls_closed_recent`: the call list's two orders, each read a page at a
//!   time from a cursor: open calls by due time, closed ones by when they closed, newest first.
//!   Neither indexes `updated_at`, so a reminder's update of an open call changes no index.
//!
//! Stored events and never-won orders need no index: the sweep reads them in id order.
//! The same SQL runs on PostgreSQL and SQLite (partial and expression indexes exist in both).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Emails {
    Table,
    BodyRemovedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Emails::Table)
                    .add_column(ColumnDef::new(Emails::BodyRemovedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX emails_body_kept ON emails (updated_at, id) WHERE body_removed_at IS NULL AND state IN ('sent','skipped')",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX calls_open_due ON calls (due_at, id) WHERE state IN ('scheduled','due','overdue')").await?;
        db.execute_unprepared(
            "CREATE INDEX calls_closed_recent ON calls ((COALESCE(completed_at, cancelled_at, updated_at)), id) \
             WHERE state IN ('done','cancelled')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in ["calls_closed_recent", "calls_open_due", "emails_body_kept"] {
            db.execute_unprepared(&format!("DROP INDEX {index}")).await?;
        }
        manager.alter_table(Table::alter().table(Emails::Table).drop_column(Emails::BodyRemovedAt).to_owned()).await?;
        Ok(())
    }
}
