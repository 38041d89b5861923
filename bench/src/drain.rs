//! Times a queue draining, the same way for firstcall and the reference: jobs are committed
//! (with a NOTIFY, so an idle worker wakes at once), then the bench asks every 10 ms whether any
//! of them is left, with an index-ordered probe that costs the server little. The drain rate is
//! jobs over the time from the commit to the last job gone.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::seed::{self, IdRange};

const PROBE_EVERY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub jobs: i64,
    pub seconds: f64,
}

impl Drain {
    pub fn rate(&self) -> f64 {
        self.jobs as f64 / self.seconds.max(1e-9)
    }
}

/// Waits until `probe` (a query returning a row while work is left) returns nothing.
async fn wait_drained(db: &PgPool, probe: &str, range: Option<IdRange>, since: Instant, timeout: Duration) -> anyhow::Result<f64> {
    loop {
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(probe.to_string()));
        if let Some(r) = range {
            q = q.bind(r.lo).bind(r.hi).bind(r.created_at);
        }
        if q.fetch_optional(db).await?.is_none() {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > timeout {
            anyhow::bail!("work not drained within {timeout:?}");
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Waits until firstcall's jobs of `range` (its ids, inserted together) are all done.
pub async fn wait_firstcall(db: &PgPool, range: IdRange, since: Instant, timeout: Duration) -> anyhow::Result<Drain> {
    let probe = "SELECT id FROM jobs WHERE id BETWEEN $1 AND $2 AND created_at = $3 ORDER BY id LIMIT 1";
    let seconds = wait_drained(db, probe, Some(range), since, timeout).await?;
    Ok(Drain { jobs: range.count, seconds })
}

/// `n` jobs of the engine's own `kind` through firstcall's engine (already running against `db`).
pub async fn firstcall_noop(db: &PgPool, kind: &str, n: i64, timeout: Duration) -> anyhow::Result<Drain> {
    let mut tx = db.begin().await?;
    let range = seed::noop_jobs(&mut tx, kind, n).await?;
    sqlx::query("NOTIFY firstcall_jobs").execute(&mut *tx).await?;
    tx.commit().await?;
    wait_firstcall(db, range, Instant::now(), timeout).await
}

/// `n` jobs of `task` through graphile-worker (already running against `db`), the payload of
/// job `g` (1..=n) being `payload`, SQL over `g`.
pub async fn graphile_jobs(db: &PgPool, task: &str, payload: &str, n: i64, timeout: Duration) -> anyhow::Result<Drain> {
    // add_jobs notifies the workers itself.
    let add = format!(
        "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(SELECT ROW('{task}', {payload}, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec \
         FROM generate_series(1, $1::bigint) g))"
    );
    let mut tx = db.begin().await?;
    let added: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(add)).bind(n).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    let since = Instant::now();
    let probe = "SELECT id FROM graphile_worker._private_jobs ORDER BY id LIMIT 1";
    let seconds = wait_drained(db, probe, None, since, timeout).await?;
    Ok(Drain { jobs: added, seconds })
}

/// Waits until a process has connected to `db` and is listening for notifications (its last
/// statement on that connection a `LISTEN`): from then on, work committed with a NOTIFY wakes it.
pub async fn wait_listening(db: &PgPool, timeout: Duration) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        let listening: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%' LIMIT 1",
        )
        .fetch_optional(db)
        .await?;
        if listening.is_some() {
            return Ok(());
        }
        if since.elapsed() > timeout {
            anyhow::bail!("no worker listened on the database within {timeout:?}");
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
