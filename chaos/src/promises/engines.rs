//! Promise 5: two, then three engine processes on one database, with reminders firing every
//! few seconds: no step runs twice at once. The job history (recorded by a trigger, timed by the
//! database's clock) shows every claim, and no job is claimed while another process's lease on
//! it is still valid, by that clock; each job is
//! completed by the process that claimed it last; and the audit trail shows each call's first
//! step once, each reminder number once, and every state change following the one before it.

use std::time::{Duration, Instant};

use crate::Ctx;
use crate::pg;
use crate::report::Row;
use crate::service::Reminders;

const ORDERS: usize = 500;
const REMINDERS: Reminders = Reminders { every_secs: Some(2), max: 2 };
const LEASE_SECS: u64 = 5;

pub async fn run(ctx: &Ctx, name: &'static str) -> anyhow::Result<Row> {
    let mut total = Row::new(name);
    for engines in [2, 3] {
        let row = run_with(ctx, name, engines).await?;
        total.sent += row.sent;
        total.acknowledged += row.acknowledged;
        total.lost += row.lost;
        total.duplicated += row.duplicated;
        total.unexplained += row.unexplained;
        total.unknown += row.unknown;
        total.unexpected += row.unexpected;
        total.notes.extend(row.notes);
        total.failures.extend(row.failures);
    }
    Ok(total.finish())
}

async fn run_with(ctx: &Ctx, name: &'static str, n: usize) -> anyhow::Result<Row> {
    let mut row = Row::new(name);
    let tuning = super::EngineTuning { batch: 20, loops: 2, lease_secs: LEASE_SECS };
    let engines = super::Engines::start(ctx, &format!("5-engines-{n}"), ORDERS, REMINDERS, tuning).await?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..n {
        workers.push(engines.setup.spawn(&format!("engine-{i}"), "worker", None)?);
    }
    engines.wait_started(ORDERS, Duration::from_secs(60)).await?;
    // Every call reminded as often as the schedule says, and no reminder left to run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done_sql = format!(
        "SELECT (SELECT count(*) FROM calls WHERE reminders_sent < {max}) + (SELECT count(*) FROM jobs WHERE kind IN ('call.start', 'call.remind') \
         AND state = 'pending' AND run_at < now())",
        max = REMINDERS.max
    );
    while pg::count(&engines.pool, &done_sql).await? > 0 {
        if Instant::now() > deadline {
            row.failures.push(format!("{n} engines: calls still waiting for reminders after 60 s"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    for w in &mut workers {
        row.check(w.alive(), format!("{} died", w.name));
        w.stop(Duration::from_secs(10)).await;
    }

    let history: Vec<pg::JobEvent> =
        pg::job_history(&engines.pool).await?.into_iter().filter(|e| e.kind == "call.start" || e.kind == "call.remind").collect();
    let audit = pg::audit_jobs(&history, Duration::from_secs(LEASE_SECS));
    let states = engines.state_changes().await?;
    // Each reminder number once per call, and as many as the call counted.
    let reminders: Vec<(i64, i64, i64, i32)> = sqlx::query_as(
        "SELECT c.id, count(a.id), count(DISTINCT a.detail->>'reminder'), c.reminders_sent FROM calls c \
         LEFT JOIN audit_log a ON a.entity = 'call' AND a.entity_id = c.id AND a.action = 'reminded' GROUP BY c.id, c.reminders_sent",
    )
    .fetch_all(&engines.pool)
    .await?;
    let dup_reminders: usize = reminders.iter().map(|(_, all, distinct, _)| (all - distinct) as usize).sum();
    let miscounted = reminders.iter().filter(|(_, all, _, sent)| *all != *sent as i64).count();
    let lost_reminders: usize = reminders.iter().map(|(_, _, distinct, _)| (REMINDERS.max as i64 - distinct).max(0) as usize).sum();

    row.sent = audit.created;
    row.acknowledged = audit.completed;
    row.lost = states.lost + lost_reminders;
    row.duplicated = states.duplicated + dup_reminders + audit.overlapping_claims.len();
    row.unexplained = row.duplicated;
    row.unknown = audit.reclaimed;
    row.unexpected = audit.stale_completions.len() + miscounted + states.broken.len();
    let mut shares: Vec<String> = audit.completed_by.iter().map(|(s, c)| format!("{s}: {c}")).collect();
    shares.sort();
    row.notes.push(format!(
        "{n} engines ran {} steps for {ORDERS} calls in {:.1} s ({})",
        audit.completed,
        elapsed.as_secs_f64(),
        shares.join(", ")
    ));
    let workers_busy = (0..n).filter(|i| audit.completed_by.get(&format!("engine-{i}")).copied().unwrap_or(0) > 0).count();
    row.check(workers_busy == n, format!("only {workers_busy} of {n} engines completed any step: the test did not exercise concurrency"));
    row.check(miscounted == 0, format!("{miscounted} calls whose reminder count disagrees with their reminders"));
    row.failures.extend(audit.findings());
    row.failures.extend(states.broken);
    engines.stop().await;
    Ok(row)
}
