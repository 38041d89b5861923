//! Promise 4: a worker paused with SIGSTOP while it holds jobs, past its lease: another worker
//! reclaims and runs those jobs, and when the paused one resumes it cannot commit its stale
//! result. The paused worker may be inside its step transaction; PostgreSQL ends that session
//! after `idle_in_transaction_session_timeout` (20 s), which releases its row locks.
//!
//! Final read: the job history (who claimed and who completed each job, recorded by a trigger)
//! and the calls' audit trail (each call's first step committed exactly once).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Ctx;
use crate::pg;
use crate::report::Row;
use crate::service::Reminders;

const ORDERS: usize = 400;
const LEASE_SECS: u64 = 3;

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let engines = super::Engines::start(
        ctx,
        "4-paused-worker",
        ORDERS,
        Reminders::NEVER,
        super::EngineTuning { batch: 25, loops: 1, lease_secs: LEASE_SECS },
    )
    .await?;
    let mut a = engines.setup.spawn("worker-a", "worker", None)?;

    // Pause worker A while it holds jobs it has not finished.
    // The first steps of calls, which the job history below audits (A may also hold the retention
    // sweep that every process plans at start-up).
    let held_sql = "SELECT id, lease_token FROM jobs WHERE lease_owner LIKE 'worker-a-%' AND state = 'pending' AND kind = 'call.start'";
    let mut held: Vec<(i64, String)> = Vec::new();
    for _ in 0..200 {
        let claimed: Vec<(i64, String)> = sqlx::query_as(held_sql).fetch_all(&engines.pool).await?;
        if !claimed.is_empty() {
            a.pause();
            // A commit already on its way to the server finishes; then look again.
            tokio::time::sleep(Duration::from_millis(300)).await;
            held = sqlx::query_as(held_sql).fetch_all(&engines.pool).await?;
            if !held.is_empty() {
                break;
            }
            a.resume();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::ensure!(!held.is_empty(), "worker A never held a job when paused");
    let paused = Instant::now();
    let paused_at = chrono::Utc::now();
    row.notes.push(format!("worker A paused with SIGSTOP holding {} jobs (lease {LEASE_SECS} s)", held.len()));

    // Worker B takes over once A's lease ran out (and A's open transaction, if any, was ended).
    let mut b = engines.setup.spawn("worker-b", "worker", None)?;
    b.ready(Duration::from_secs(10)).await?;
    let ids: Vec<String> = held.iter().map(|(id, _)| id.to_string()).collect();
    let still_held = format!("SELECT count(*) FROM jobs WHERE id IN ({})", ids.join(","));
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg::count(&engines.pool, &still_held).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken_over = paused.elapsed();
    engines.wait_started(ORDERS, Duration::from_secs(30)).await?;
    row.notes.push(format!("worker B finished A's jobs {:.1} s after the pause", taken_over.as_secs_f64()));

    // A wakes up and tries to finish what it held.
    a.resume();
    let resumed_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    row.check(a.alive(), format!("worker A died after resuming; log:\n{}", crate::service::tail(&a.log, 20)));
    a.stop(Duration::from_secs(10)).await;
    b.stop(Duration::from_secs(10)).await;

    let history: Vec<pg::JobEvent> = pg::job_history(&engines.pool).await?.into_iter().filter(|e| e.kind == "call.start").collect();
    let audit = pg::audit_jobs(&history);
    let noticed = a.log_text().lines().filter(|l| l.contains("cannot reach the database")).count();
    row.notes.push(format!("worker A after resuming: {noticed} log lines say its database session was gone"));
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
    let (lost, duplicated) = engines.first_steps_committed().await?;
    row.sent = audit.created;
    row.acknowledged = audit.completed;
    row.unknown = held.len();
    row.lost = lost;
    row.duplicated = duplicated + audit.overlapping_claims.len();
    row.unexplained = row.duplicated;
    row.unexpected = stale.len() + audit.stale_completions.len();
    row.notes.push(format!(
        "{by_b} of A's {} held jobs completed by worker B; {} jobs reclaimed after a lease ran out",
        held.len(),
        audit.reclaimed
    ));
    row.check(by_b == held.len(), format!("only {by_b} of the {} jobs A held were completed by B", held.len()));
    row.failures.extend(stale);
    row.failures.extend(audit.overlapping_claims.iter().take(5).cloned());
    row.failures.extend(audit.stale_completions.iter().take(5).cloned());
    engines.stop().await;
    Ok(row.finish())
}
