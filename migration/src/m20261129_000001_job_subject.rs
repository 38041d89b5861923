//! The engine runs any workflow's jobs, so a job names what it is about as its `subject_id`
//! (a call, for the first-call workflow) instead of a call.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Both PostgreSQL and SQLite (3.25+) rename in place, keeping the column's index.
        manager.get_connection().execute_unprepared("ALTER TABLE jobs RENAME COLUMN call_id TO subject_id").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("ALTER TABLE jobs RENAME COLUMN subject_id TO call_id").await?;
        Ok(())
    }
}
