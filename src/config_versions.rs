//! The configurations processes run, by version ([`Config::version`]): each version with its
//! schedules as written and its templates' digest, and each load of one, when and by which process. So what a process ran
//! is on record, and an edit can be compared with what runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::config::{Config, ScheduleContent};
use crate::db::stmt;

/// Records that process `instance_id` (`role`: `serve`, `worker`, or `tool` for a one-off
/// command) loaded `config` with templates of `templates_digest`, and returns the version
/// ([`Config::version`]); a version seen before keeps its first record.
pub async fn record_load(
    db: &impl ConnectionTrait,
    config: &Config,
    templates_digest: &[u8],
    instance_id: &str,
    role: &str,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let version = config.version(templates_digest);
    let schedules = serde_json::to_string(&config.schedule_content()).map_err(|e| DbErr::Custom(format!("schedules: {e}")))?;
    db.execute_raw(stmt(
        backend,
        "INSERT INTO config_versions (version, schedules, templates_digest, first_loaded_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (version) DO NOTHING",
        vec![version.as_str().into(), schedules.into(), hex::encode(templates_digest).into(), now.into()],
    ))
    .await?;
    db.execute_raw(stmt(
        backend,
        "INSERT INTO config_loads (version, instance_id, role, loaded_at) VALUES ($1, $2, $3, $4)",
        vec![version.as_str().into(), instance_id.into(), role.into(), now.into()],
    ))
    .await?;
    Ok(version)
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

/// A recorded version: its schedules as written and its templates' digest (hex).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub schedules: ScheduleContent,
    pub templates_digest: String,
}

/// What version `version` ran with; `None` for a version never recorded.
pub async fn recorded(db: &impl ConnectionTrait, version: &str) -> Result<Option<Recorded>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        schedules: String,
        templates_digest: String,
    }
    let sql = "SELECT schedules, templates_digest FROM config_versions WHERE version = $1";
    let row = Row::find_by_statement(stmt(db.get_database_backend(), sql, vec![version.into()])).one(db).await?;
    row.map(|r| {
        let schedules = serde_json::from_str(&r.schedules).map_err(|e| DbErr::Custom(format!("schedules of {version}: {e}")))?;
        Ok(Recorded { schedules, templates_digest: r.templates_digest })
    })
    .transpose()
}

/// The newest load by a process that runs things (`serve` or `worker`, not a one-off command):
/// what runs now, as far as the database knows.
pub async fn newest_running(db: &impl ConnectionTrait) -> Result<Option<Load>, DbErr> {
    let sql = "SELECT version, instance_id, role, loaded_at FROM config_loads WHERE role IN ('serve', 'worker') \
               ORDER BY loaded_at DESC, id DESC LIMIT 1";
    Load::find_by_statement(stmt(db.get_database_backend(), sql, vec![])).one(db).await
}
