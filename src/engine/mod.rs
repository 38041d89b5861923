//! The durable job engine. Timers are rows in `jobs` with a `run_at`, kept in the lease queue
//! ([`crate::db::lease`]): workers claim due rows under a lease in a short statement, run each
//! job's handler in a transaction that first re-checks the lease, and record the outcome in
//! that same transaction. So:
//! - a crash loses nothing: an expired lease makes the job claimable again;
//! - a step never commits twice: a worker whose lease was taken over finds its token gone;
//! - failures back off exponentially (capped, with jitter) and end in a visible `dead` state
//!   after `engine.max_attempts`, from which an operator can retry them.
//!
//! The engine is generic: it knows a job's kind only as the key of a [`Handler`] that a
//! workflow registered at start-up ([`Registry`]), and what a job is about only as its
//! `subject_id`. `noop` and `noop.step` are the engine's own kinds: they do nothing, to measure
//! the engine; `noop` is completed by one statement, `noop.step` runs as a step (transaction,
//! lease check, handler, completion), so the two show the step path's own cost.
//!
//! A handler may have work outside the database ([`Handler::prepare`], a request to a CRM):
//! the engine runs it after the claim, under the job's lease and before the step's transaction,
//! so no transaction waits on the network. Such kinds are claimed by loops of their own
//! (`engine.io_concurrency`), so a slow CRM never holds up a reminder.

pub mod notify;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult,
    TryInsertResult,
};

use crate::db::lease::{Lease, Queue};
use crate::db::stmt;
pub use entity::jobs::JobKind;
pub use worker::Engine;

/// The `jobs` table as a lease queue.
pub const QUEUE: Queue = Queue { table: "jobs", due: "run_at", dead_state: "dead", on_claim: "" };

/// The columns a claim hands back.
const CLAIMED_COLUMNS: &str = "id, kind, subject_id, payload, attempts, max_attempts, run_at";

/// A job to schedule.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    /// What the job is about (for the first-call workflow, the call).
    pub subject_id: Option<i64>,
    pub payload: Option<serde_json::Value>,
    pub run_at: DateTime<Utc>,
}

impl NewJob {
    pub fn new(kind: JobKind, subject_id: i64, run_at: DateTime<Utc>) -> Self {
        NewJob { kind, subject_id: Some(subject_id), payload: None, run_at }
    }

    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }
}

/// A job this worker holds a lease on.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ClaimedJob {
    pub id: i64,
    /// As stored: a kind this process does not know (written by a newer version) fails its job
    /// instead of the whole claim.
    pub kind: String,
    pub subject_id: Option<i64>,
    pub payload: Option<serde_json::Value>,
    /// Attempts including this one.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the job was due.
    pub run_at: DateTime<Utc>,
    /// What [`Handler::prepare`] gave, for kinds that have outside work.
    #[sea_orm(skip)]
    pub prepared: Option<serde_json::Value>,
}

impl ClaimedJob {
    pub fn kind(&self) -> Option<JobKind> {
        <JobKind as sea_orm::ActiveEnum>::try_from_value(&self.kind).ok()
    }

    /// The job's payload read as `T`; a payload missing or of another shape fails the step,
    /// saying what the kind `needs`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self, needs: &str) -> Result<T, StepError> {
        read_json(self.payload.as_ref(), needs)
    }

    /// What [`Handler::prepare`] gave, read as `T`; missing or of another shape fails the step.
    pub fn prepared_as<T: serde::de::DeserializeOwned>(&self, needs: &str) -> Result<T, StepError> {
        read_json(self.prepared.as_ref(), needs)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(value: Option<&serde_json::Value>, needs: &str) -> Result<T, StepError> {
    value.and_then(|v| T::deserialize(v).ok()).ok_or_else(|| StepError::Failed(needs.to_string()))
}

/// What a step caused, so the engine can wake the mailer or itself after commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Emails written to the outbox.
    pub emails: usize,
    /// Jobs scheduled that are due at once.
    pub jobs_due_now: usize,
}

impl Effects {
    pub fn merge(&mut self, o: Effects) {
        self.emails += o.emails;
        self.jobs_due_now += o.jobs_due_now;
    }
}

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The step cannot succeed as things are (a bad job, a template that does not render);
    /// it is retried with backoff and ends dead.
    #[error("{0}")]
    Failed(String),
}

impl StepError {
    /// The database went away: the whole batch stops, uncommitted, and runs again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StepError::Db(e) if crate::db::is_unavailable(e))
    }
}

/// Why a batch did not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database could not be reached or failed mid-batch: nothing of the batch committed;
    /// the leases expire and the jobs run again.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("database became unavailable during a step: {0}")]
    Unavailable(StepError),
}

/// Runs one kind of job: inside the engine's transaction for the job (a savepoint of the
/// batch's), with the job's lease already checked. What it writes commits with the job's
/// completion, or not at all.
pub trait Handler: Send + Sync {
    /// Whether the kind has work outside the database ([`Handler::prepare`]).
    fn prepares(&self) -> bool {
        false
    }

    /// The work outside the database a step needs first, run under the job's lease before the
    /// step's transaction; its value reaches [`Handler::run`] as `job.prepared`. An error fails
    /// the attempt (retried with backoff) without running the step.
    fn prepare<'a>(&'a self, _job: &'a ClaimedJob, _now: DateTime<Utc>) -> BoxFuture<'a, Result<serde_json::Value, StepError>> {
        Box::pin(std::future::ready(Ok(serde_json::Value::Null)))
    }

    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>>;
}

/// Work that reaches the engine as rows a workflow stored itself rather than as jobs (the
/// webhook inbox: one row per event, nothing else written before the 2xx). The engine runs each
/// registered feed in a loop of its own, woken by [`crate::background::Signals::feeds`] and
/// polled like the jobs; [`Engine::run_due`] drains the feeds before the jobs.
pub trait Feed: Send + Sync {
    /// For logs: what the loop does.
    fn name(&self) -> &'static str;

    /// Takes and applies one batch in a transaction of its own.
    fn run_batch<'a>(&'a self, db: &'a DatabaseConnection, now: DateTime<Utc>) -> BoxFuture<'a, Result<FeedBatch, DbErr>>;
}

/// What one batch of a feed did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedBatch {
    /// Rows taken and applied (or given up as failed).
    pub taken: usize,
    /// Whether a full batch was taken: more may be waiting.
    pub full: bool,
    /// Another process holds the feed now: it applies what is waiting.
    pub busy: bool,
    pub effects: Effects,
}

/// The handlers for each job kind and the feeds, filled by the workflows at start-up.
#[derive(Clone)]
pub struct Registry {
    handlers: HashMap<JobKind, Arc<dyn Handler>>,
    feeds: Vec<Arc<dyn Feed>>,
}

impl Default for Registry {
    /// The engine's own kinds only.
    fn default() -> Self {
        Registry { handlers: HashMap::from([(JobKind::NoopStep, Arc::new(NoStep) as Arc<dyn Handler>)]), feeds: Vec::new() }
    }
}

/// `noop.step`: a step that writes nothing.
struct NoStep;

impl Handler for NoStep {
    fn run<'a>(&'a self, _: &'a DatabaseTransaction, _: &'a ClaimedJob, _: DateTime<Utc>) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(std::future::ready(Ok(Effects::default())))
    }
}

impl Registry {
    /// Registers `handler` for `kind`. A kind has one handler; registering it twice is a
    /// wiring mistake caught at start-up.
    pub fn register(&mut self, kind: JobKind, handler: Arc<dyn Handler>) {
        assert!(!matches!(kind, JobKind::Noop | JobKind::NoopStep), "{kind} is the engine's own job kind");
        let previous = self.handlers.insert(kind, handler);
        assert!(previous.is_none(), "job kind {kind} has two handlers");
    }

    pub fn get(&self, kind: JobKind) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(&kind)
    }

    /// Registers a feed the engine drains.
    pub fn feed(&mut self, feed: Arc<dyn Feed>) {
        self.feeds.push(feed);
    }

    pub fn feeds(&self) -> &[Arc<dyn Feed>] {
        &self.feeds
    }

    /// The kinds whose handler has work outside the database, sorted.
    pub fn io_kinds(&self) -> Vec<JobKind> {
        let mut kinds: Vec<JobKind> = self.handlers.iter().filter(|(_, h)| h.prepares()).map(|(k, _)| *k).collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds
    }
}

/// Which jobs a claim loop takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Database work only (every kind but the outside-work ones).
    Steps,
    /// Kinds with work outside the database.
    Io,
}

impl Class {
    /// The claim condition for this class, given the outside-work kinds (empty when there are
    /// none: then steps take every kind, with the same statement as always).
    pub fn filter(self, io_kinds: &[JobKind]) -> String {
        if io_kinds.is_empty() {
            return String::new();
        }
        let list = crate::db::name_list(io_kinds.iter().map(|k| k.as_str()));
        match self {
            Class::Steps => format!("kind NOT IN ({list})"),
            Class::Io => format!("kind IN ({list})"),
        }
    }
}

/// Schedules a job inside the caller's transaction, so it exists exactly when the change that
/// needs it commits. A subject has at most one pending job of each kind (a unique index): when
/// one is already pending, this one is not added and `false` is returned, so two plans made at
/// once (two changes in one webhook batch, a re-plan while a step runs) leave one timer.
pub async fn enqueue(db: &impl ConnectionTrait, job: NewJob, max_attempts: u32, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let inserted = entity::jobs::Entity::insert(row(job, max_attempts, now))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

/// Several jobs in one statement per 500 (each kept only if its subject has no pending job of
/// its kind, as in [`enqueue`]).
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    jobs: impl IntoIterator<Item = NewJob>,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows: Vec<_> = jobs.into_iter().map(|j| row(j, max_attempts, now)).collect();
    for chunk in rows.chunks(500) {
        entity::jobs::Entity::insert_many(chunk.to_vec())
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .try_insert()
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

fn row(job: NewJob, max_attempts: u32, now: DateTime<Utc>) -> entity::jobs::ActiveModel {
    use entity::jobs;
    jobs::ActiveModel {
        kind: Set(job.kind),
        subject_id: Set(job.subject_id),
        payload: Set(job.payload),
        run_at: Set(crate::clock::truncate(job.run_at)),
        state: Set(jobs::JobState::Pending),
        attempts: Set(0),
        max_attempts: Set(max_attempts as i32),
        lease_owner: Set(None),
        lease_token: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// The claim statement (the benchmark shows its plan).
pub fn claim_sql(backend: DbBackend) -> String {
    QUEUE.claim_sql(backend, CLAIMED_COLUMNS)
}

/// Claims up to `limit` jobs due by `now` for `owner`, for `lease` (on the database's clock on
/// PostgreSQL), oldest first.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    owner: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
    limit: u32,
) -> Result<Lease<ClaimedJob>, DbErr> {
    claim_due_where(db, owner, now, lease, limit, "").await
}

/// [`claim_due`] of the jobs that meet `filter` ([`Class::filter`]).
pub async fn claim_due_where(
    db: &impl ConnectionTrait,
    owner: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
    limit: u32,
    filter: &str,
) -> Result<Lease<ClaimedJob>, DbErr> {
    let mut lease = QUEUE.claim_where::<ClaimedJob>(db, owner, now, lease, limit, CLAIMED_COLUMNS, filter).await?;
    lease.rows.sort_by_key(|j| (j.run_at, j.id));
    Ok(lease)
}

/// When the earliest job a claim could take is due.
pub async fn next_due_at(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbErr> {
    QUEUE.next_due_at(db, now).await
}

/// [`next_due_at`] among the jobs that meet `filter`.
pub async fn next_due_at_where(db: &impl ConnectionTrait, now: DateTime<Utc>, filter: &str) -> Result<Option<DateTime<Utc>>, DbErr> {
    QUEUE.next_due_at_where(db, now, filter).await
}

/// What became of an operator's retry of a dead job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Pending again, due now, with a fresh set of attempts.
    Retried,
    /// No dead job has that id (retried already, or never dead).
    NotDead,
    /// Its subject already has a pending job of its kind (planned since it died), which does
    /// the same work; the dead one stays as it is.
    KindPending,
}

/// Makes a dead job pending again, due now.
pub async fn retry_dead(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<Retry, DbErr> {
    match QUEUE.retry_dead(db, id, now).await {
        Ok(true) => Ok(Retry::Retried),
        Ok(false) => Ok(Retry::NotDead),
        Err(e) if crate::db::error_kind(&e) == crate::db::ErrorKind::Duplicate => Ok(Retry::KindPending),
        Err(e) => Err(e),
    }
}

/// Deletes the pending jobs of `subject_id` of the given kinds. A subject id means something only
/// with its kind (a call's and a promise's ids may be equal), so there is no "every kind": no
/// kinds deletes nothing. Jobs currently leased by a worker are skipped on PostgreSQL rather than
/// waited for; their handler re-checks its subject and does nothing.
pub async fn cancel_pending(db: &impl ConnectionTrait, subject_id: i64, kinds: &[JobKind]) -> Result<u64, DbErr> {
    if kinds.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let kind_filter = format!(" AND kind IN ({})", crate::db::name_list(kinds.iter().map(|k| k.as_str())));
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE subject_id = $1 AND state = 'pending'{kind_filter} {lock})");
    Ok(db.execute_raw(stmt(backend, &sql, vec![subject_id.into()])).await?.rows_affected())
}

/// A pending job of `subject_id` and `kind` not yet claimed, moved to run at `run_at(created_at)`
/// when that is later than it runs now: a debounce. Returns whether one moved.
pub async fn postpone_pending(
    db: &impl ConnectionTrait,
    subject_id: i64,
    kind: JobKind,
    run_at: impl Fn(DateTime<Utc>) -> DateTime<Utc>,
) -> Result<bool, DbErr> {
    use entity::jobs;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let Some(job) = jobs::Entity::find()
        .filter(jobs::Column::SubjectId.eq(subject_id))
        .filter(jobs::Column::Kind.eq(kind))
        .filter(jobs::Column::State.eq(jobs::JobState::Pending))
        .filter(jobs::Column::LeaseToken.is_null())
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let to = crate::clock::truncate(run_at(job.created_at));
    if to <= job.run_at {
        return Ok(false);
    }
    let sql = "UPDATE jobs SET run_at = $1 WHERE id = $2 AND state = 'pending' AND lease_token IS NULL";
    Ok(db.execute_raw(stmt(db.get_database_backend(), sql, vec![to.into(), job.id.into()])).await?.rows_affected() > 0)
}
