//! The configurations processes run, by version ([`Config::version`]): each version with its
//! schedules as written, and each load of one, when and by which process. So what a process ran
//! is on record, and an edit can be compared with what runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::config::{Config, ScheduleContent};
use crate::db::stmt;

/// Records that process `instance_id` (`serve` or `worker`: `role`) loaded `config`, whose
/// version is `version`; a version seen before keeps its first record.
pub async fn record_load(
    db: &impl ConnectionTrait,
    config: &Config,
    version: &str,
    instance_id: &str,
    role: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let schedules = serde_json::to_string(&config.schedule_content()).map_err(|e| DbErr::Custom(format!("schedules: {e}")))?;
    db.execute_raw(stmt(
        backend,
        "INSERT INTO config_versions (version, schedules, first_loaded_at) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        vec![version.into(), schedules.into(), now.into()],
    ))
    .await?;
    db.execute_raw(stmt(
        backend,
        "INSERT INTO config_loads (version, instance_id, role, loaded_at) VALUES ($1, $2, $3, $4)",
        vec![version.into(), instance_id.into(), role.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// One load of a configuration.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct Load {
    pub version: String,
    pub instance_id: String,
    pub role: String,
    pub loaded_at: DateTime<Utc>,
}

/// Every load, oldest first.
pub async fn loads(db: &impl ConnectionTrait) -> Result<Vec<Load>, DbErr> {
    let sql = "SELECT version, instance_id, role, loaded_at FROM config_loads ORDER BY loaded_at, id";
    Load::find_by_statement(stmt(db.get_database_backend(), sql, vec![])).all(db).await
}

/// The schedules a version ran with, as written; `None` for a version never recorded.
pub async fn schedules_of(db: &impl ConnectionTrait, version: &str) -> Result<Option<ScheduleContent>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        schedules: String,
    }
    let sql = "SELECT schedules FROM config_versions WHERE version = $1";
    let row = Row::find_by_statement(stmt(db.get_database_backend(), sql, vec![version.into()])).one(db).await?;
    row.map(|r| serde_json::from_str(&r.schedules).map_err(|e| DbErr::Custom(format!("schedules of {version}: {e}")))).transpose()
}
