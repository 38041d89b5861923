//! The promises, one module each; every one returns its row of the final table.

mod acked_events;
mod database_outage;
mod engines;
mod mail;
mod paused_worker;
mod promise_reminders;

use crate::Ctx;
use crate::report::Row;

pub const NAMES: [&str; 6] = [
    "every acknowledged event ends in exactly one call (SIGKILL x N)",
    "every due email is sent at least once (SMTP 451, stall, down)",
    "PostgreSQL stopped: 503, no crash, recovery without restart",
    "a paused worker's job is reclaimed; its stale result never commits",
    "several engines on one database: no step runs twice at once",
    "promise reminders under SIGKILL: none lost, none sent twice",
];

pub async fn run(n: usize, ctx: &Ctx) -> anyhow::Result<Row> {
    let name = NAMES[n - 1];
    match n {
        1 => acked_events::run(ctx, name).await,
        2 => mail::run(ctx, name).await,
        3 => database_outage::run(ctx, name).await,
        4 => paused_worker::run(ctx, name).await,
        5 => engines::run(ctx, name).await,
        6 => promise_reminders::run(ctx, name).await,
        _ => anyhow::bail!("no promise {n}"),
    }
}

/// The final read for intake promises, into `row`: the CRM's history (sent, acknowledged,
/// unknown) against the calls each deal has (lost, duplicated, unexpected). Every event is
/// acknowledged by then, so every deal must have exactly one call.
pub async fn read_calls(row: &mut Row, pool: &sqlx::PgPool, sets: &[(&str, usize)], history: &crate::crm::History) -> anyhow::Result<()> {
    let (lost, duplicated, unexpected) = calls_per_deal(pool, sets).await?;
    let t = history.tally();
    row.sent = t.operations;
    row.acknowledged = t.acknowledged;
    row.unknown = t.unknown;
    row.lost = lost;
    row.duplicated = duplicated;
    row.unexplained = duplicated;
    row.unexpected = unexpected;
    Ok(())
}

/// How many calls each deal we sent has. `sets` names the deals as (prefix, count):
/// `<prefix>-0` … Returns (lost: deals without a call, duplicated: extra calls, unexpected: calls
/// for deals nobody sent).
async fn calls_per_deal(pool: &sqlx::PgPool, sets: &[(&str, usize)]) -> anyhow::Result<(usize, usize, usize)> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT deal_id, count(*) FROM calls GROUP BY deal_id").fetch_all(pool).await?;
    let mut per_deal = std::collections::HashMap::new();
    let mut unexpected = 0;
    for (deal, n) in rows {
        let ours = sets.iter().any(|(prefix, count)| {
            deal.strip_prefix(&format!("{prefix}-")).and_then(|i| i.parse::<usize>().ok()).is_some_and(|i| i < *count)
        });
        if ours {
            per_deal.insert(deal, n as usize);
        } else {
            unexpected += n as usize;
        }
    }
    let lost = sets
        .iter()
        .flat_map(|(prefix, count)| (0..*count).map(move |i| format!("{prefix}-{i}")))
        .filter(|d| !per_deal.contains_key(d))
        .count();
    let duplicated = per_deal.values().map(|n| n.saturating_sub(1)).sum();
    Ok((lost, duplicated, unexpected))
}

/// Engine settings for the worker processes of promises 4 and 5.
#[derive(Debug, Clone, Copy)]
pub struct EngineTuning {
    pub batch: u32,
    pub loops: u32,
    pub lease_secs: u64,
}

/// A database with `orders` calls whose steps are waiting for engines: an HTTP process without
/// an engine took the orders; the job history is being recorded. Promises 4 and 5 start the
/// worker processes themselves.
pub struct Engines {
    pub setup: crate::service::Setup,
    pub pool: sqlx::PgPool,
    http: crate::service::Service,
    _smtp: testkit::SmtpSink,
    _db: testkit::db::TestDb,
}

/// What the audit trail shows of the calls' state changes ([`Engines::state_changes`]).
pub struct StateChanges {
    /// Calls whose first step never committed.
    pub lost: usize,
    /// Commits of a first step beyond the one.
    pub duplicated: usize,
    /// Changes out of chain, described.
    pub broken: Vec<String>,
}

impl Engines {
    pub async fn start(
        ctx: &Ctx,
        dir: &str,
        orders: usize,
        reminders: crate::service::Reminders,
        tuning: EngineTuning,
    ) -> anyhow::Result<Engines> {
        let db = testkit::db::TestDb::postgres().await;
        let smtp = testkit::SmtpSink::start().await;
        let mut setup = crate::service::Setup::new(&ctx.binary, &ctx.repo, ctx.dir(dir), db.url(), smtp.port(), reminders)?;
        setup
            .set("FIRSTCALL__ENGINE__ENABLED", false)
            .set("FIRSTCALL__ENGINE__BATCH_SIZE", tuning.batch)
            .set("FIRSTCALL__ENGINE__CONCURRENCY", tuning.loops)
            .set("FIRSTCALL__ENGINE__LEASE_SECS", tuning.lease_secs);
        let mut http = setup.spawn("firstcall-http", "serve", Some(crate::service::free_port()?))?;
        http.ready(std::time::Duration::from_secs(30)).await?;
        let pool = crate::pg::pool(db.url()).await?;
        crate::pg::record_job_history(&pool).await?;
        let batches = crate::crm::batched_orders("ENGINE", orders, 50);
        let history = crate::crm::History::default();
        crate::crm::resend_unacknowledged(&crate::crm::Crm::new()?, &http.base_url(), &batches, &history, 5).await?;
        Ok(Engines { setup, pool, http, _smtp: smtp, _db: db })
    }

    /// Waits until every call's first step ran.
    pub async fn wait_started(&self, calls: usize, timeout: std::time::Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let started = crate::pg::count(&self.pool, "SELECT count(*) FROM calls WHERE state <> 'scheduled'").await?;
            if started as usize >= calls {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "only {started} of {calls} calls started within {timeout:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// From the audit trail: calls whose first step never committed, extra commits of it, and
    /// state changes that break a call's chain (a step that ran again on a state another step
    /// already left, or stayed where it was: what a stale worker's commit would write).
    pub async fn state_changes(&self) -> anyhow::Result<StateChanges> {
        let per_call: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT c.id, count(a.id) FROM calls c LEFT JOIN audit_log a ON a.entity = 'call' AND a.entity_id = c.id \
             AND a.action = 'state' AND a.from_state = 'scheduled' GROUP BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let lost = per_call.iter().filter(|(_, n)| *n == 0).count();
        let duplicated = per_call.iter().map(|(_, n)| (*n as usize).saturating_sub(1)).sum();
        // Each change leaves the state the one before it entered (the first leaves `scheduled`)
        // and enters another.
        let broken: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT entity_id, coalesce(prev, 'scheduled'), coalesce(from_state, '-'), coalesce(to_state, '-') FROM ( \
               SELECT entity_id, from_state, to_state, lag(to_state) OVER (PARTITION BY entity_id ORDER BY id) AS prev \
               FROM audit_log WHERE entity = 'call' AND action = 'state') s \
             WHERE from_state IS DISTINCT FROM coalesce(prev, 'scheduled') OR from_state = to_state ORDER BY entity_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let broken = broken
            .into_iter()
            .map(|(call, entered, from, to)| format!("call {call}: a state change {from} -> {to} after the call had entered {entered}"))
            .collect();
        Ok(StateChanges { lost, duplicated, broken })
    }

    pub async fn stop(mut self) {
        self.http.stop(std::time::Duration::from_secs(10)).await;
    }
}
