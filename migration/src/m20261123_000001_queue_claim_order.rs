//! The job queue under load: the claim reads due jobs in `(run_at, id)` order, so the index
//! gives that order itself (with `run_at` alone, a burst of jobs due at the same instant, such
//! as every rep's 09:00 reminder, had to be sorted whole to find the first few). On PostgreSQL,
//! the queue tables also leave room on each page, so the lease updates of a claim, which change
//! no indexed column, are made in place instead of adding an entry to every index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX jobs_due_order ON jobs (run_at, id) WHERE state = 'pending'").await?;
        db.execute_unprepared("DROP INDEX jobs_due").await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE jobs SET (fillfactor = 70)").await?;
            db.execute_unprepared("ALTER TABLE emails SET (fillfactor = 70)").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE emails RESET (fillfactor)").await?;
            db.execute_unprepared("ALTER TABLE jobs RESET (fillfactor)").await?;
        }
        db.execute_unprepared("CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'pending'").await?;
        db.execute_unprepared("DROP INDEX jobs_due_order").await?;
        Ok(())
    }
}
