//! The worker loop: claim a batch of due jobs, run their steps in one transaction (each step in
//! its own savepoint, so one failing step does not undo the others), record outcomes, repeat.
//! It sleeps until the next job is due, a new job is signalled, or the poll interval passes.

use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::{DbErr, TransactionTrait};

use super::queue::{self, ClaimedJob, Lease};
use crate::startup::AppState;
use crate::workflow::steps::{self, StepEffects};

/// Runs until shutdown: `engine.concurrency` claim loops, plus PostgreSQL LISTEN/NOTIFY so work
/// enqueued by other processes wakes this one at once.
pub async fn run(state: AppState) {
    if crate::db::is_postgres(&state.db) {
        tokio::spawn(super::notify::listen(state.clone()));
        tokio::spawn(super::notify::publish(state.clone()));
    }
    let loops = state.config.settings.engine.concurrency.max(1);
    let mut handles = Vec::new();
    for i in 0..loops {
        let s = state.clone();
        handles.push(tokio::spawn(async move { claim_loop(s, i).await }));
    }
    for h in handles {
        let _ = h.await;
    }
}

async fn claim_loop(state: AppState, index: usize) {
    let cfg = &state.config.settings.engine;
    let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
    let mut backoff = crate::shutdown::ErrorBackoff::default();
    tracing::debug!(index, "engine loop started");
    while !state.shutdown.is_triggered() {
        let wake = state.signals.engine.notified();
        match run_batch(&state).await {
            Ok(n) => {
                backoff.succeeded();
                if n >= cfg.batch_size as usize {
                    continue;
                }
                let sleep = match queue::next_due_at(&state.db, state.clock.now()).await {
                    Ok(Some(at)) => (at - state.clock.now()).to_std().unwrap_or(Duration::ZERO).min(poll),
                    _ => poll,
                };
                if !sleep.is_zero() {
                    state.shutdown.idle(wake, sleep).await;
                }
            }
            Err(e) => backoff.failed(&state.shutdown, "engine", &e).await,
        }
    }
}

/// Claims and runs one batch; returns how many jobs were claimed.
pub async fn run_batch(state: &AppState) -> Result<usize, DbErr> {
    let cfg = &state.config.settings.engine;
    let now = state.clock.now();
    let lease = queue::claim_due(&state.db, &state.instance_id, now, TimeDelta::seconds(cfg.lease_secs as i64), cfg.batch_size).await?;
    let n = lease.jobs.len();
    if n == 0 {
        return Ok(0);
    }
    for j in &lease.jobs {
        state.metrics.job_claimed((now - j.run_at).num_milliseconds().max(0) as f64 / 1000.0);
    }
    execute(state, lease).await?;
    Ok(n)
}

/// Runs every job that is due now, batch after batch, until none is left (tests and tools).
pub async fn run_due(state: &AppState) -> Result<usize, DbErr> {
    let mut total = 0;
    loop {
        let n = run_batch(state).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

pub async fn execute(state: &AppState, lease: Lease) -> Result<(), DbErr> {
    let cfg = &state.config.settings.engine;
    let now = state.clock.now();
    // Jobs with nothing to run are completed by one statement that checks the lease as it
    // deletes; a batch of only those needs no transaction of its own.
    let (noops, steps): (Vec<&ClaimedJob>, Vec<&ClaimedJob>) = lease.jobs.iter().partition(|j| j.kind == super::kinds::NOOP);
    let noop_ids: Vec<i64> = noops.iter().map(|j| j.id).collect();
    if steps.is_empty() {
        let n = queue::complete_held(&state.db, &noop_ids, &lease.token).await?;
        state.metrics.jobs_done(n);
        return Ok(());
    }
    let ids: Vec<i64> = steps.iter().map(|j| j.id).collect();
    // One transaction for the batch: each step's effects (state change, outbox mail, next
    // timers) commit together with the deletion of its job, or not at all. The lease is
    // re-checked under a row lock first, so a worker that lost its lease commits nothing.
    let txn = crate::db::begin_write(&state.db).await?;
    let noops_done = queue::complete_held(&txn, &noop_ids, &lease.token).await?;
    let held = queue::lock_held(&txn, &ids, &lease.token).await?;
    let mut done = Vec::with_capacity(held.len());
    let mut failed: Vec<(&ClaimedJob, String)> = Vec::new();
    let mut effects = StepEffects::default();
    for job in steps.into_iter().filter(|j| held.binary_search(&j.id).is_ok()) {
        let sp = txn.begin().await?;
        match steps::run(&sp, state, job, now).await {
            Ok(e) => {
                sp.commit().await?;
                effects.merge(e);
                done.push(job.id);
            }
            Err(e) => {
                sp.rollback().await?;
                if e.is_unavailable() {
                    // The database went away mid-batch: nothing is committed; leases expire and
                    // the jobs run again.
                    return Err(DbErr::Custom(e.to_string()));
                }
                failed.push((job, e.to_string()));
            }
        }
    }
    queue::complete(&txn, &done).await?;
    let mut dead = Vec::new();
    for (job, err) in &failed {
        let retry_at = now + super::backoff(job.attempts as u32, cfg.retry_base_secs, cfg.retry_max_secs);
        if queue::fail(&txn, job, err, retry_at, now).await? {
            dead.push((*job, err));
        }
    }
    txn.commit().await?;

    state.metrics.jobs_done(done.len() as u64 + noops_done);
    for (job, err) in &failed {
        tracing::warn!(job_id = job.id, kind = %job.kind, call_id = ?job.call_id, attempt = job.attempts, error = %err, "step failed; will retry");
    }
    for (job, err) in &dead {
        state.metrics.job_dead();
        tracing::error!(job_id = job.id, kind = %job.kind, call_id = ?job.call_id, attempts = job.attempts, error = %err, "step failed too often; job is dead until retried");
    }
    if effects.emails > 0 {
        state.signals.mailer.notify_one();
    }
    if effects.jobs_due_now > 0 {
        state.signals.engine.notify_one();
    }
    Ok(())
}
