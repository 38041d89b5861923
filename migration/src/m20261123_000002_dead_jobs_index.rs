//! Dead jobs are few and pending ones many: index only the dead ones (for the dashboard and
//! `GET /api/v1/jobs?state=dead`), so scheduling a timer no longer adds an entry to an index
//! of every job's state.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead'").await?;
        db.execute_unprepared("DROP INDEX jobs_state").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX jobs_state ON jobs (state)").await?;
        db.execute_unprepared("DROP INDEX jobs_dead").await?;
        Ok(())
    }
}
