//! Promise 4: a worker paused with SIGSTOP while it holds jobs, past its lease: another worker
//! reclaims and runs those jobs, and when the paused one resumes and tries to commit them, the
//! lease check refuses it.
//!
//! Worker A is paused between a claim and the transaction that runs the claimed steps (its
//! database sessions are all idle: no transaction, no row locks), so after SIGCONT it goes on
//! to lock and commit with a lease that is no longer its own. A pause that lands inside the
//! transaction is undone and tried again: there the jobs' row locks would keep worker B out
//! until PostgreSQL ended the session (`idle_in_transaction_session_timeout`), and A's attempt
//! would fail on a lost connection, which proves nothing about the lease.
//!
//! Final read: worker A's log after it resumed (one "step lease lost" warning per held job:
//! each stale commit was tried and refused), the job history (who claimed and who completed each
//! job, recorded by a trigger) and the calls' audit trail (each call's first step committed
//! exactly once, and every state change leaves the state the one before it entered: a stale step
//! that ran anyway, on a call another worker already started, would break that chain).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Ctx;
use crate::pg;
use crate::report::Row;
use crate::service::Reminders;

/// Enough that A, slowed by the pauses that miss, still holds jobs when one lands.
const ORDERS: usize = 1000;
const LEASE_SECS: u64 = 3;
/// Small batches keep each step transaction short, so a pause often lands outside one.
const BATCH: u32 = 2;
/// The engine's warning when a step's lease was taken over before its transaction locked it.
const LEASE_LOST: &str = "step lease lost";
/// The background loops' warning when the database session is gone.
const SESSION_LOST: &str = "cannot reach the database";

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let mut engines = super::Engines::start(
        ctx,
        "4-paused-worker",
        ORDERS,
        Reminders::NEVER,
        super::EngineTuning { batch: BATCH, loops: 1, lease_secs: LEASE_SECS },
    )
    .await?;
    // The pause must not pass for a database outage: a wait for a pooled connection that was under
    // way when A stopped would time out the moment A resumes (its clock ran on), and A would give
    // the batch up instead of trying to commit it. Longer than any pause here.
    engines.setup.set("FIRSTCALL__DATABASE__CONNECT_TIMEOUT_SECS", 120);
    let mut a = engines.setup.spawn("worker-a", "worker", None)?;

    // Pause worker A while it holds claimed jobs outside any transaction.
    // The first steps of calls, which the job history below audits (A may also hold the retention
    // sweep that every process plans at start-up).
    let held_sql = "SELECT id, lease_token FROM jobs WHERE lease_owner LIKE 'worker-a-%' AND state = 'pending' AND kind = 'call.start'";
    let busy_sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'worker-a' AND state <> 'idle'";
    let mut held: Vec<(i64, String)> = Vec::new();
    let mut tries = 0;
    while held.is_empty() && tries < 600 {
        let claimed: Vec<(i64, String)> = sqlx::query_as(held_sql).fetch_all(&engines.pool).await?;
        if !claimed.is_empty() {
            tries += 1;
            a.pause();
            // A statement already on its way to the server finishes; then look again.
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now_held: Vec<(i64, String)> = sqlx::query_as(held_sql).fetch_all(&engines.pool).await?;
            if !now_held.is_empty() && pg::count(&engines.pool, busy_sql).await? == 0 {
                held = now_held;
                break;
            }
            a.resume();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(!held.is_empty(), "worker A was never paused holding jobs outside a transaction ({tries} pauses)");
    let paused = Instant::now();
    let paused_at = chrono::Utc::now();
    row.notes.push(format!(
        "worker A paused with SIGSTOP holding {} jobs outside a transaction (lease {LEASE_SECS} s; pause {tries})",
        held.len()
    ));

    // Worker B takes over once A's lease ran out.
    let mut b = engines.setup.spawn("worker-b", "worker", None)?;
    b.ready(Duration::from_secs(10)).await?;
    let ids: Vec<String> = held.iter().map(|(id, _)| id.to_string()).collect();
    let still_held = format!("SELECT count(*) FROM jobs WHERE id IN ({})", ids.join(","));
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg::count(&engines.pool, &still_held).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken_over = paused.elapsed();
    engines.wait_started(ORDERS, Duration::from_secs(60)).await?;
    row.notes.push(format!("worker B finished A's jobs {:.1} s after the pause", taken_over.as_secs_f64()));

    // A wakes up and tries to commit what it held: each job must be refused for its lost lease.
    let before = a.log_text().len();
    a.resume();
    let resumed_at = chrono::Utc::now();
    let refused = |log: &str| -> usize {
        held.iter().filter(|(id, _)| after(log, before).lines().any(|l| l.contains(LEASE_LOST) && names_job(l, *id))).count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused(&a.log_text()) < held.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    row.check(a.alive(), format!("worker A died after resuming; log:\n{}", crate::service::tail(&a.log, 20)));
    a.stop(Duration::from_secs(10)).await;
    b.stop(Duration::from_secs(10)).await;

    let log = a.log_text();
    let resumed_log = after(&log, before);
    let lease_lost = resumed_log.lines().filter(|l| l.contains(LEASE_LOST)).count();
    let session_lost = resumed_log.lines().filter(|l| l.contains(SESSION_LOST)).count();
    let refused = refused(&log);
    row.notes.push(format!(
        "worker A after resuming: {lease_lost} \"{LEASE_LOST}\" warnings ({refused} of its {} held jobs refused), \
         {session_lost} \"{SESSION_LOST}\" warnings",
        held.len()
    ));
    // Only the lease check counts: A held no transaction, so its session was alive and nothing
    // but the lease stood between it and a stale commit.
    row.check(
        refused == held.len(),
        format!("worker A tried to commit only {refused} of the {} jobs it held and lost, or was never refused", held.len()),
    );

    let history: Vec<pg::JobEvent> = pg::job_history(&engines.pool).await?.into_iter().filter(|e| e.kind == "call.start").collect();
    let audit = pg::audit_jobs(&history, Duration::from_secs(LEASE_SECS));
    let tokens: HashMap<i64, &String> = held.iter().map(|(id, t)| (*id, t)).collect();
    let mut stale = Vec::new();
    let mut by_b = 0;
    for e in history.iter().filter(|e| e.event == "completed" && tokens.contains_key(&e.job_id)) {
        if e.session == "worker-a" || e.token.as_ref() == tokens.get(&e.job_id).copied() {
            stale.push(format!("job {} completed by {} (paused at {paused_at}, resumed at {resumed_at})", e.job_id, e.session));
        } else if e.session == "worker-b" {
            by_b += 1;
        }
    }
    let states = engines.state_changes().await?;
    row.sent = audit.created;
    row.acknowledged = audit.completed;
    row.unknown = held.len();
    row.lost = states.lost;
    row.duplicated = states.duplicated + audit.overlapping_claims.len();
    row.unexplained = row.duplicated;
    row.unexpected = stale.len() + audit.stale_completions.len() + states.broken.len();
    row.notes.push(format!(
        "{by_b} of A's {} held jobs completed by worker B; {} jobs reclaimed after a lease ran out",
        held.len(),
        audit.reclaimed
    ));
    row.check(by_b == held.len(), format!("only {by_b} of the {} jobs A held were completed by B", held.len()));
    row.failures.extend(stale);
    row.failures.extend(audit.findings());
    row.failures.extend(states.broken);
    engines.stop().await;
    Ok(row.finish())
}

/// The part of a log written after its first `from` bytes.
fn after(log: &str, from: usize) -> &str {
    log.get(from..).unwrap_or("")
}

/// Whether a log line carries the field `job_id=<id>` (not merely a longer id that starts so).
fn names_job(line: &str, id: i64) -> bool {
    let field = format!("job_id={id}");
    line.split_whitespace().any(|w| w == field)
}
