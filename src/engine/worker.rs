//! The worker: claim a batch of due jobs, run their handlers in one transaction (each in its
//! own savepoint, so one failing step does not undo the others), record outcomes, repeat. It
//! sleeps until the next job is due, a new job is signalled, or the poll interval passes.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{ClaimedJob, Class, Effects, EngineError, JobKind, QUEUE, Registry, StepError};
use crate::background::{Shutdown, Signals};
use crate::clock::SharedClock;
use crate::config::EngineSettings;
use crate::db::lease::{Finish, Lease, backoff};

/// Jobs with outside work claimed at once by one loop (their requests run together).
const IO_BATCH: u32 = 8;
use crate::metrics::Metrics;

/// The engine of one process: what it needs, and nothing of the workflows but their handlers.
#[derive(Clone)]
pub struct Engine {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub settings: EngineSettings,
    pub handlers: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub signals: Signals,
    pub shutdown: Shutdown,
    /// Identifies this process in job leases.
    pub instance_id: String,
}

impl Engine {
    /// Runs until shutdown: a loop per feed, `engine.concurrency` claim loops, plus PostgreSQL
    /// LISTEN so work stored by other processes wakes this one at once.
    pub async fn run(self) {
        if crate::db::is_postgres(&self.db) {
            tokio::spawn(super::notify::listen(self.db.clone(), self.signals.clone(), self.shutdown.clone()));
        }
        let loops = self.settings.concurrency.max(1);
        let mut handles = Vec::new();
        for feed in self.handlers.feeds().iter().cloned() {
            let engine = self.clone();
            handles.push(tokio::spawn(async move { engine.feed_loop(feed).await }));
        }
        for index in 0..loops {
            let engine = self.clone();
            handles.push(tokio::spawn(async move { engine.claim_loop(index, Class::Steps).await }));
        }
        if !self.handlers.io_kinds().is_empty() {
            for index in 0..self.settings.io_concurrency.max(1) {
                let engine = self.clone();
                handles.push(tokio::spawn(async move { engine.claim_loop(index, Class::Io).await }));
            }
        }
        for h in handles {
            let _ = h.await;
        }
    }

    async fn claim_loop(&self, index: usize, class: Class) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        tracing::debug!(index, ?class, "engine loop started");
        let filter = class.filter(&self.handlers.io_kinds());
        let (batch, name) = match class {
            Class::Steps => (self.settings.batch_size, "engine"),
            Class::Io => (IO_BATCH, "engine (outside work)"),
        };
        crate::background::run_loop(&self.shutdown, &self.signals.engine, name, || async {
            let n = match class {
                Class::Steps => self.run_batch().await?,
                Class::Io => self.run_io_batch().await?,
            };
            if n >= batch as usize {
                return Ok(Duration::ZERO);
            }
            let now = self.clock.now();
            let next = super::next_due_at_where(&self.db, now, &filter).await.unwrap_or(None);
            Ok::<_, EngineError>(crate::background::sleep_until(next, now, Duration::ZERO, poll))
        })
        .await;
    }

    /// Claims and runs one batch of database-only jobs; returns how many jobs were claimed.
    pub async fn run_batch(&self) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let lease = super::claim_due_where(
            &self.db,
            &self.instance_id,
            now,
            TimeDelta::seconds(self.settings.lease_secs as i64),
            self.settings.batch_size,
            &Class::Steps.filter(&self.handlers.io_kinds()),
        )
        .await?;
        let n = lease.rows.len();
        if n == 0 {
            return Ok(0);
        }
        for j in &lease.rows {
            self.metrics.job_claimed((now - j.run_at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        self.execute(lease).await?;
        Ok(n)
    }

    /// Claims a few jobs with outside work, runs that work for all of them at once (each within
    /// most of its lease), fails the attempts whose work failed, and runs the others' steps in one
    /// transaction as [`Engine::execute`] does; returns how many jobs were claimed.
    pub async fn run_io_batch(&self) -> Result<usize, EngineError> {
        let io_kinds = self.handlers.io_kinds();
        if io_kinds.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        let lease_len = TimeDelta::seconds(self.settings.lease_secs as i64);
        let mut lease = super::claim_due_where(&self.db, &self.instance_id, now, lease_len, IO_BATCH, &Class::Io.filter(&io_kinds)).await?;
        let n = lease.rows.len();
        if n == 0 {
            return Ok(0);
        }
        for j in &lease.rows {
            self.metrics.job_claimed((now - j.run_at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        // The work may outlast one lease when the CRM's pace queues it behind the batch's other
        // jobs: the lease is renewed while it goes on, so no other worker takes the jobs over (a
        // worker that dies stops renewing, and its jobs come back after one lease). A backstop
        // ends work that never finishes.
        let backstop = Duration::from_secs(self.settings.lease_secs.saturating_mul(10).max(10));
        let work = futures_util::future::join_all(lease.rows.iter().map(|job| async move {
            let Some(handler) = job.kind().and_then(|k| self.handlers.get(k)) else {
                return Err(StepError::Failed(format!("no handler for job kind '{}'", job.kind)));
            };
            match tokio::time::timeout(backstop, handler.prepare(job, now)).await {
                Ok(r) => r,
                Err(_) => Err(StepError::Failed(format!("its outside work took longer than {} s", backstop.as_secs()))),
            }
        }));
        let token = lease.token.clone();
        let renew = async {
            let every = Duration::from_millis((self.settings.lease_secs * 1000 / 3).max(500));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = QUEUE.renew_all(&self.db, &token, self.clock.now(), lease_len).await {
                    tracing::warn!(error = %e, "could not renew the lease of jobs whose outside work is under way");
                }
            }
        };
        let outcomes = tokio::select! {
            outcomes = work => outcomes,
            never = renew => never,
        };
        let mut ready = Vec::with_capacity(n);
        for (mut job, outcome) in lease.rows.drain(..).zip(outcomes) {
            match outcome {
                Ok(v) => {
                    job.prepared = Some(v);
                    ready.push(job);
                }
                Err(e) => {
                    if e.is_unavailable() {
                        return Err(EngineError::Unavailable(e));
                    }
                    self.fail_attempt(&job, &lease.token, &e.to_string()).await?;
                }
            }
        }
        if !ready.is_empty() {
            self.execute(Lease { token: lease.token, rows: ready }).await?;
        }
        Ok(n)
    }

    /// Records a failed attempt of a job this worker holds (its outside work failed, outside
    /// any transaction: the token is checked).
    async fn fail_attempt(&self, job: &ClaimedJob, token: &str, err: &str) -> Result<(), EngineError> {
        let now = self.clock.now();
        let (finish, dead) = self.failure(job, err, now);
        if QUEUE.finish(&self.db, job.id, Some(token), finish, now).await? {
            self.report_failure(job, err, dead, "outside work");
        }
        Ok(())
    }

    /// How a failed attempt ends: pending again after a backoff, or dead after the last attempt
    /// (the `bool`).
    fn failure(&self, job: &ClaimedJob, err: &str, now: chrono::DateTime<chrono::Utc>) -> (Finish, bool) {
        let cfg = &self.settings;
        let dead = job.attempts >= job.max_attempts;
        let state = if dead { QUEUE.dead_state } else { "pending" };
        let due = now + backoff(job.attempts as u32, cfg.retry_base_secs, cfg.retry_max_secs);
        (Finish { state, due, error: Some(err.to_string()), set: vec![] }, dead)
    }

    /// Logs (and counts, when dead) a failed attempt once its outcome is committed.
    fn report_failure(&self, job: &ClaimedJob, err: &str, dead: bool, what: &str) {
        if dead {
            self.metrics.job_dead();
            tracing::error!(job_id = job.id, kind = %job.kind, subject_id = ?job.subject_id, attempts = job.attempts, error = %err, "{what} failed too often; job is dead until retried");
        } else {
            tracing::warn!(job_id = job.id, kind = %job.kind, subject_id = ?job.subject_id, attempt = job.attempts, error = %err, "{what} failed; will retry");
        }
    }

    /// Drains a feed: batch after batch while batches come full, then sleeps until woken or
    /// the poll interval passes (a process that holds the feed elsewhere is left to it).
    async fn feed_loop(&self, feed: Arc<dyn super::Feed>) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        crate::background::run_loop(&self.shutdown, &self.signals.feeds, feed.name(), || async {
            let batch = feed.run_batch(&self.db, self.clock.now()).await?;
            self.after_feed(&batch);
            Ok::<_, sea_orm::DbErr>(if batch.full { Duration::ZERO } else { poll })
        })
        .await;
    }

    fn after_feed(&self, batch: &super::FeedBatch) {
        if batch.effects.jobs_due_now > 0 {
            self.signals.jobs_scheduled();
        }
        if batch.effects.emails > 0 {
            self.signals.mailer.notify_one();
        }
    }

    /// Drains every feed until nothing is waiting (tests and tools); returns the rows taken.
    pub async fn run_feeds(&self) -> Result<usize, EngineError> {
        let mut total = 0;
        for feed in self.handlers.feeds() {
            loop {
                let batch = feed.run_batch(&self.db, self.clock.now()).await?;
                self.after_feed(&batch);
                total += batch.taken;
                if batch.taken == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Drains the feeds, then runs every job that is due now, batch after batch, until none is
    /// left (tests and tools).
    pub async fn run_due(&self) -> Result<usize, EngineError> {
        let mut total = self.run_feeds().await?;
        loop {
            let n = self.run_batch().await? + self.run_io_batch().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs the jobs of a lease this process holds.
    pub async fn execute(&self, lease: Lease<ClaimedJob>) -> Result<(), EngineError> {
        let now = self.clock.now();
        // Jobs with nothing to run are completed by one statement that checks the lease as it
        // deletes; a batch of only those needs no transaction of its own.
        let (noops, steps): (Vec<&ClaimedJob>, Vec<&ClaimedJob>) = lease.rows.iter().partition(|j| j.kind() == Some(JobKind::Noop));
        let noop_ids: Vec<i64> = noops.iter().map(|j| j.id).collect();
        if steps.is_empty() {
            let n = QUEUE.delete_held(&self.db, &noop_ids, &lease.token).await?;
            self.metrics.jobs_done(n);
            return Ok(());
        }
        let ids: Vec<i64> = steps.iter().map(|j| j.id).collect();
        // One transaction for the batch: each step's effects (state change, outbox mail, next
        // timers) commit together with the deletion of its job, or not at all. The lease is
        // re-checked under a row lock first, so a worker that lost its lease commits nothing.
        let txn = crate::db::begin_write(&self.db).await?;
        let noops_done = QUEUE.delete_held(&txn, &noop_ids, &lease.token).await?;
        let held = QUEUE.lock_held(&txn, &ids, &lease.token).await?;
        // A worker paused or slowed past its lease learns here that its jobs are another's: it
        // says so once per job (the fault suite counts these), and commits nothing of them.
        for id in ids.iter().filter(|id| held.binary_search(id).is_err()) {
            tracing::warn!(job_id = id, "step lease lost: another worker took the job over; its step does not run here");
        }
        // A step may plan the next job of its own kind (the next reminder): its own row must not
        // count as that kind's pending job.
        QUEUE.set_running(&txn, &held).await?;
        let mut done = Vec::with_capacity(held.len());
        let mut failed: Vec<(&ClaimedJob, String)> = Vec::new();
        let mut effects = Effects::default();
        for job in steps.into_iter().filter(|j| held.binary_search(&j.id).is_ok()) {
            let sp = txn.begin().await?;
            let result = match job.kind().and_then(|k| self.handlers.get(k)) {
                Some(handler) => handler.run(&sp, job, now).await,
                None => Err(StepError::Failed(format!("no handler for job kind '{}'", job.kind))),
            };
            match result {
                Ok(e) => {
                    sp.commit().await?;
                    effects.merge(e);
                    done.push(job.id);
                }
                Err(e) => {
                    sp.rollback().await?;
                    if e.is_unavailable() {
                        // The database went away mid-batch: nothing is committed; leases expire
                        // and the jobs run again.
                        return Err(EngineError::Unavailable(e));
                    }
                    failed.push((job, e.to_string()));
                }
            }
        }
        QUEUE.delete(&txn, &done).await?;
        let mut outcomes = Vec::with_capacity(failed.len());
        for (job, err) in &failed {
            let (finish, dead) = self.failure(job, err, now);
            // The rows are locked by this transaction (`lock_held`): no token check needed.
            QUEUE.finish(&txn, job.id, None, finish, now).await?;
            outcomes.push((*job, err, dead));
        }
        txn.commit().await?;

        self.metrics.jobs_done(done.len() as u64 + noops_done);
        for (job, err, dead) in outcomes {
            self.report_failure(job, err, dead, "step");
        }
        if effects.emails > 0 {
            self.signals.mailer.notify_one();
        }
        if effects.jobs_due_now > 0 {
            self.signals.engine.notify_one();
        }
        Ok(())
    }
}
