//! The job table's queries: claim under a lease, re-check the lease inside the step's
//! transaction, complete, fail with backoff or to `dead`, retry dead jobs. PostgreSQL claims
//! with `FOR UPDATE SKIP LOCKED` so concurrent workers never take the same row; SQLite has one
//! writer, which gives the same guarantee.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

/// A job this worker holds a lease on.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub call_id: Option<i64>,
    pub payload: Option<serde_json::Value>,
    /// Attempts including this one.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the job was due.
    pub run_at: DateTime<Utc>,
}

/// A batch of claimed jobs sharing one lease token.
#[derive(Debug, Clone)]
pub struct Lease {
    pub token: String,
    pub until: DateTime<Utc>,
    pub jobs: Vec<ClaimedJob>,
}

/// Builds a statement from SQL written with `$1`-style parameters, for either backend.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Sqlite { sql.replace('$', "?") } else { sql.to_string() };
    Statement::from_sql_and_values(backend, sql, values)
}

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// The claim statement, with `$1`-style parameters: owner, token, lease end, now, limit (the
/// benchmark shows its plan).
pub fn claim_sql(backend: DbBackend) -> String {
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    format!(
        "UPDATE jobs SET lease_owner = $1, lease_token = $2, lease_until = $3, attempts = attempts + 1, updated_at = $4 \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $4 AND (lease_until IS NULL OR lease_until < $4) \
         ORDER BY run_at, id LIMIT $5 {lock}) \
         RETURNING id, kind, call_id, payload, attempts, max_attempts, run_at"
    )
}

/// Claims up to `limit` due jobs for `owner` until `now + lease`. Jobs whose previous lease
/// expired (their worker died or hung) are claimable again.
pub async fn claim_due(db: &impl ConnectionTrait, owner: &str, now: DateTime<Utc>, lease: TimeDelta, limit: u32) -> Result<Lease, DbErr> {
    let backend = db.get_database_backend();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let until = crate::clock::truncate(now + lease);
    let values = vec![owner.into(), token.clone().into(), until.into(), now.into(), (limit as i64).into()];
    let mut jobs = ClaimedJob::find_by_statement(stmt(backend, &claim_sql(backend), values)).all(db).await?;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(Lease { token, until, jobs })
}

/// Inside the step transaction: locks the batch's rows and returns the ids still held under
/// `token`. A job missing here was taken over after our lease expired, or deleted (its call
/// ended); its step must not run.
pub async fn lock_held(db: &impl ConnectionTrait, ids: &[i64], token: &str) -> Result<Vec<i64>, DbErr> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE" } else { "" };
    let sql = format!("SELECT id FROM jobs WHERE id IN ({}) AND lease_token = $1 AND state = 'pending' ORDER BY id {lock}", id_list(ids));
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
    }
    Ok(Row::find_by_statement(stmt(backend, &sql, vec![token.into()])).all(db).await?.into_iter().map(|r| r.id).collect())
}

/// Deletes the jobs among `ids` still held under `token` in one statement, and returns how many:
/// for jobs with nothing to run (`noop`), where the lease check and the completion are the same
/// act. A job taken over after our lease expired is not touched.
pub async fn complete_held(db: &impl ConnectionTrait, ids: &[i64], token: &str) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let sql = format!("DELETE FROM jobs WHERE id IN ({}) AND lease_token = $1 AND state = 'pending'", id_list(ids));
    Ok(db.execute_raw(stmt(backend, &sql, vec![token.into()])).await?.rows_affected())
}

/// Deletes finished jobs (inside the step transaction).
pub async fn complete(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    db.execute_unprepared(&format!("DELETE FROM jobs WHERE id IN ({})", id_list(ids))).await?;
    Ok(())
}

/// Records a failed attempt: back to pending at `retry_at`, or `dead` when attempts are used up.
/// Returns true when the job is now dead.
pub async fn fail(
    db: &impl ConnectionTrait,
    job: &ClaimedJob,
    error: &str,
    retry_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let dead = job.attempts >= job.max_attempts;
    let backend = db.get_database_backend();
    let error: String = error.chars().take(2000).collect();
    let sql = "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, lease_owner = NULL, lease_token = NULL, lease_until = NULL, updated_at = $4 WHERE id = $5";
    let values = vec![
        (if dead { "dead" } else { "pending" }).into(),
        crate::clock::truncate(retry_at).into(),
        error.into(),
        now.into(),
        job.id.into(),
    ];
    db.execute_raw(stmt(backend, sql, values)).await?;
    Ok(dead)
}

/// Makes a dead job pending again, due now, with a fresh set of attempts. False if no dead job
/// has that id.
pub async fn retry_dead(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql =
        "UPDATE jobs SET state = 'pending', run_at = $1, attempts = 0, last_error = NULL, updated_at = $1 WHERE id = $2 AND state = 'dead'";
    Ok(db.execute_raw(stmt(backend, sql, vec![now.into(), id.into()])).await?.rows_affected() == 1)
}

/// When the earliest job that a claim could take is due: pending and not held under a live
/// lease. Jobs other loops hold are skipped, so a loop working through a large batch does not
/// make the others sleep; a lease that runs out is noticed by the next poll.
pub async fn next_due_at(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        at: DateTime<Utc>,
    }
    let backend = db.get_database_backend();
    let sql =
        "SELECT run_at AS at FROM jobs WHERE state = 'pending' AND (lease_until IS NULL OR lease_until < $1) ORDER BY run_at, id LIMIT 1";
    Ok(Row::find_by_statement(stmt(backend, sql, vec![now.into()])).one(db).await?.map(|r| r.at))
}

/// Deletes a call's pending jobs of the given kinds (all kinds when empty). Jobs currently
/// leased by a worker are skipped on PostgreSQL rather than waited for; their step re-checks the
/// call's state and does nothing.
pub async fn cancel_for_call(db: &impl ConnectionTrait, call_id: i64, kinds: &[&str]) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let kind_filter = if kinds.is_empty() {
        String::new()
    } else {
        format!(" AND kind IN ({})", kinds.iter().map(|k| format!("'{}'", k.replace('\'', ""))).collect::<Vec<_>>().join(","))
    };
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE call_id = $1 AND state = 'pending'{kind_filter} {lock})");
    Ok(db.execute_raw(stmt(backend, &sql, vec![call_id.into()])).await?.rows_affected())
}
