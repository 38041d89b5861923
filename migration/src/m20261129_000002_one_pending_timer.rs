//! A subject (a call) has at most one pending job of each kind: two plans made at once (two
//! changes in one webhook batch, a re-plan while a step runs) can no longer start two reminder
//! chains. Existing duplicates are reduced to the oldest first.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM jobs WHERE state = 'pending' AND subject_id IS NOT NULL AND id NOT IN \
             (SELECT MIN(id) FROM jobs WHERE state = 'pending' AND subject_id IS NOT NULL GROUP BY subject_id, kind)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX jobs_one_pending ON jobs (subject_id, kind) WHERE state = 'pending' AND subject_id IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX jobs_one_pending").await?;
        Ok(())
    }
}
