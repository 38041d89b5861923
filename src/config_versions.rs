//! The configurations processes run, by version ([`Config::version`]): each version with its
//! schedules as written and its templates' digest, and each load of one, when and by which
//! process. So what a process ran is on record, and an edit can be compared with what runs.
//! Each running process (`serve`, `worker`) also has a row saying which version it runs now,
//! when it was last seen and the last edit it refused: the dashboard's list of processes.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::config::{Config, ScheduleContent};
use crate::db::stmt;

/// A recorded load: the version ([`Config::version`]), and whether this load introduced it (a
/// serve or worker that loads a version no serve or worker ran before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub version: String,
    pub introduced: bool,
}

/// Records that process `instance_id` (`role`: `serve`, `worker`, or `tool` for a one-off
/// command) loaded `config` with templates of `templates_digest`; a version seen before keeps
/// its first record.
pub async fn record_load(
    db: &impl ConnectionTrait,
    config: &Config,
    templates_digest: &[u8],
    instance_id: &str,
    role: &str,
    now: DateTime<Utc>,
) -> Result<Loaded, DbErr> {
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
    // Introduced: no serve or worker ran it before (a one-off command's load runs nothing).
    #[derive(FromQueryResult)]
    struct Runs {
        n: i64,
    }
    let sql = "SELECT COUNT(*) AS n FROM config_loads WHERE version = $1 AND role IN ('serve', 'worker')";
    let before = Runs::find_by_statement(stmt(backend, sql, vec![version.as_str().into()])).one(db).await?.map_or(0, |r| r.n);
    let introduced = before == 0 && role != "tool";
    db.execute_raw(stmt(
        backend,
        "INSERT INTO config_loads (version, instance_id, role, loaded_at) VALUES ($1, $2, $3, $4)",
        vec![version.as_str().into(), instance_id.into(), role.into(), now.into()],
    ))
    .await?;
    if role != "tool" {
        db.execute_raw(stmt(
            backend,
            "INSERT INTO processes (instance_id, role, version, started_at, loaded_at, seen_at, load_seq) \
             VALUES ($1, $2, $3, $4, $4, $4, (SELECT MAX(id) FROM config_loads WHERE instance_id = $1)) \
             ON CONFLICT (instance_id) DO UPDATE SET version = excluded.version, loaded_at = excluded.loaded_at, \
             seen_at = excluded.seen_at, load_seq = excluded.load_seq, refused = NULL, refused_at = NULL",
            vec![instance_id.into(), role.into(), version.as_str().into(), now.into()],
        ))
        .await?;
    }
    Ok(Loaded { version, introduced })
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

/// A process counts as running while it was seen within this many seconds (it says it is alive
/// every [`HEARTBEAT_SECS`]).
pub const LIVE_SECS: i64 = 60;
/// How often a running process says it is alive.
pub const HEARTBEAT_SECS: u64 = 15;
/// How long a process may run another version than the newest before it says it is stale.
pub const STALE_AFTER_SECS: i64 = 60;

/// A running process: the configuration version it runs and the last edit it refused.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct Process {
    pub instance_id: String,
    pub role: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// When it loaded `version`.
    pub loaded_at: DateTime<Utc>,
    /// When any process first loaded `version`.
    pub introduced_at: DateTime<Utc>,
    /// The database's order of first loads: the higher, the later `version` was introduced.
    pub introduced_seq: i64,
    /// The database's order of loads: the higher, the later.
    pub load_seq: i64,
    pub seen_at: DateTime<Utc>,
    /// The last edit of `config/` it refused (file, key and reason), unless it loaded one since.
    pub refused: Option<String>,
    pub refused_at: Option<DateTime<Utc>>,
}

/// The processes seen within [`LIVE_SECS`] of `now`, by role and start.
pub async fn running(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<Process>, DbErr> {
    let sql = "SELECT p.instance_id, p.role, p.version, p.started_at, p.loaded_at, v.first_loaded_at AS introduced_at, \
               (SELECT MIN(l.id) FROM config_loads l WHERE l.version = p.version AND l.role IN ('serve', 'worker')) AS introduced_seq, \
               p.load_seq, \
               p.seen_at, p.refused, p.refused_at FROM processes p JOIN config_versions v ON v.version = p.version \
               WHERE p.seen_at >= $1 ORDER BY p.role, p.started_at, p.instance_id";
    let since = now - chrono::TimeDelta::seconds(LIVE_SECS);
    Process::find_by_statement(stmt(db.get_database_backend(), sql, vec![since.into()])).all(db).await
}

/// The newest configuration among running processes: the version introduced last (first loaded
/// by any process), and of its processes the one that loaded it last, both in the database's
/// order whatever the processes' clocks say. A process restarted with an older configuration
/// does not make it the newest.
pub fn newest(running: &[Process]) -> Option<&Process> {
    running.iter().max_by_key(|p| (p.introduced_seq, p.load_seq))
}

/// Whether process `own` has run another version than the newest running one for more than
/// [`STALE_AFTER_SECS`] (since the newest was introduced, or since `own` loaded its own, whichever
/// is later): then the newest.
pub fn stale<'a>(own: &Process, running: &'a [Process], now: DateTime<Utc>) -> Option<&'a Process> {
    newest(running)
        .filter(|n| n.version != own.version && now - n.introduced_at.max(own.loaded_at) > chrono::TimeDelta::seconds(STALE_AFTER_SECS))
}

/// Says process `instance_id` is alive at `now`, and forgets processes not seen for a day (a
/// process killed without stopping).
pub async fn heartbeat(db: &impl ConnectionTrait, instance_id: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.execute_raw(stmt(backend, "UPDATE processes SET seen_at = $2 WHERE instance_id = $1", vec![instance_id.into(), now.into()])).await?;
    let gone = now - chrono::TimeDelta::days(1);
    db.execute_raw(stmt(backend, "DELETE FROM processes WHERE seen_at < $1", vec![gone.into()])).await.map(|_| ())
}

/// Records the edit of `config/` that process `instance_id` refused, and why (`None`: the last
/// edit it loaded passed).
pub async fn record_refusal(db: &impl ConnectionTrait, instance_id: &str, reason: Option<&str>, now: DateTime<Utc>) -> Result<(), DbErr> {
    let sql = "UPDATE processes SET refused = $2, refused_at = $3, seen_at = $3 WHERE instance_id = $1";
    db.execute_raw(stmt(db.get_database_backend(), sql, vec![instance_id.into(), reason.into(), now.into()])).await.map(|_| ())
}

/// Removes a process that stops from the list of running ones.
pub async fn stopped(db: &impl ConnectionTrait, instance_id: &str) -> Result<(), DbErr> {
    let sql = "DELETE FROM processes WHERE instance_id = $1";
    db.execute_raw(stmt(db.get_database_backend(), sql, vec![instance_id.into()])).await.map(|_| ())
}
