//! The read paths with a million calls (bench figure 10).
//!
//! - `calls_rep_open_due`: a rep's open calls by due time, the order of the call list filtered by
//!   a rep (the dashboard's rep filter, `GET /api/v1/calls?rep=…`). Without it such a page read
//!   `calls_open_due` from the top and skipped every other rep's calls (about 50,000 index
//!   entries and their rows for a page of 100 with 500 reps).
//! - `calls_rep_state` replaces `calls_rep`: the counts of a rep's calls by state (and past
//!   due) read only the matching index entries, without the rows; the list of reps is still a
//!   skip scan of its first column. Same number of entries as the index it replaces.
//!
//! `calls_state_due` stays: the counts by state without a rep read it (an index-only scan of
//! the state's range). The same SQL runs on PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX calls_rep_open_due ON calls (rep_email, due_at, id) WHERE state IN ('scheduled','due','overdue')",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX calls_rep_state ON calls (rep_email, state, due_at)").await?;
        db.execute_unprepared("DROP INDEX calls_rep").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX calls_rep ON calls (rep_email)").await?;
        db.execute_unprepared("DROP INDEX calls_rep_state").await?;
        db.execute_unprepared("DROP INDEX calls_rep_open_due").await?;
        Ok(())
    }
}
