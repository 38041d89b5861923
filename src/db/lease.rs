//! The lease queue: one implementation for every table of work items claimed by several
//! workers (the engine's timers in `jobs`, the mail outbox in `emails`). A row is `pending`
//! until a worker claims it with a lease (owner, random token, deadline) in one short
//! statement; the worker then records the outcome only if the token is still its own. So:
//! - concurrent workers never hold the same row: PostgreSQL claims with `FOR UPDATE SKIP
//!   LOCKED`, and SQLite has one writer;
//! - a crash loses nothing: an expired lease makes the row claimable again;
//! - a worker whose lease was taken over commits nothing, because its token is gone;
//! - failures come back after a capped, jittered backoff ([`backoff`]), and end in the table's
//!   dead state after the last attempt, from which an operator can retry them;
//! - leases are set and judged by one clock: on PostgreSQL the database server's, so replicas
//!   whose own clocks drift apart still agree on whose lease is live (due times stay on the
//!   process clock, which schedules them). SQLite serves the processes of one machine, which
//!   share its clock: there the process clock sets leases too.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Value};

use super::{id_list, stmt};

/// A table used as a lease queue. Its rows have `id`, `state`, `attempts`, `lease_owner`,
/// `lease_token`, `lease_until`, `last_error`, `updated_at`, and a due-time column.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub table: &'static str,
    /// The column saying when a row is due.
    pub due: &'static str,
    /// The state a row ends in when it has failed for the last time.
    pub dead_state: &'static str,
    /// Assignments made besides the lease when a row is claimed (SQL, may be empty).
    pub on_claim: &'static str,
}

/// A batch of claimed rows sharing one lease token.
#[derive(Debug, Clone)]
pub struct Lease<T> {
    pub token: String,
    pub rows: Vec<T>,
}

/// SQL for the moment leases are judged at: the database's clock on PostgreSQL; on SQLite the
/// parameter `now` (the process clock).
fn lease_now(backend: DbBackend, now: &str) -> String {
    if backend == DbBackend::Postgres { "clock_timestamp()".into() } else { now.into() }
}

/// SQL for the end of a lease taken now, given the parameter that [`lease_value`] fills.
fn lease_end(backend: DbBackend, param: &str) -> String {
    if backend == DbBackend::Postgres { format!("clock_timestamp() + make_interval(secs => {param})") } else { param.into() }
}

/// The value of [`lease_end`]'s parameter: the lease's length in seconds for the database's
/// clock, or its end on the process clock.
fn lease_value(backend: DbBackend, now: DateTime<Utc>, lease: TimeDelta) -> Value {
    if backend == DbBackend::Postgres {
        (lease.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).into()
    } else {
        crate::clock::truncate(now + lease).into()
    }
}

/// How a claimed row ends, as recorded by [`Queue::finish`].
#[derive(Debug, Clone)]
pub struct Finish {
    /// The row's new state (`pending` again for a retry).
    pub state: &'static str,
    /// When it is due again (only read while pending).
    pub due: DateTime<Utc>,
    pub error: Option<String>,
    /// Further assignments, each with one `{}` where its value goes, e.g.
    /// `("sent_at = {}", now.into())`.
    pub set: Vec<(&'static str, Value)>,
}

/// Delay before retry number `attempt` (1-based): base·2^(attempt-1), capped, ±20 % jitter so
/// failing rows do not retry in lockstep.
pub fn backoff(attempt: u32, base_secs: u64, max_secs: u64) -> TimeDelta {
    let exp = base_secs.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)).min(max_secs).max(1);
    let ms = exp as f64 * 1000.0;
    let jitter = (rand::random::<f64>() - 0.5) * 0.4 * ms;
    TimeDelta::milliseconds((ms + jitter).round() as i64)
}

impl Queue {
    /// The claim statement, with `$1`-style parameters: owner, token, lease ([`lease_value`]),
    /// now, limit. `returning` lists the columns handed back.
    pub fn claim_sql(&self, backend: DbBackend, returning: &str) -> String {
        self.claim_sql_where(backend, returning, "")
    }

    /// [`Queue::claim_sql`] for the rows that also meet `filter` (an SQL condition on the
    /// table's columns without parameters; empty: every row).
    pub fn claim_sql_where(&self, backend: DbBackend, returning: &str, filter: &str) -> String {
        let Queue { table, due, on_claim, .. } = self;
        let filter = if filter.is_empty() { String::new() } else { format!(" AND ({filter})") };
        let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        let extra = if on_claim.is_empty() { String::new() } else { format!(", {on_claim}") };
        let (end, live) = (lease_end(backend, "$3"), lease_now(backend, "$4"));
        format!(
            "UPDATE {table} SET lease_owner = $1, lease_token = $2, lease_until = {end}, attempts = attempts + 1, updated_at = $4{extra} \
             WHERE id IN (SELECT id FROM {table} WHERE state = 'pending' AND {due} <= $4 AND (lease_until IS NULL OR lease_until < {live}){filter} \
             ORDER BY {due}, id LIMIT $5 {lock}) \
             RETURNING {returning}"
        )
    }

    /// Claims up to `limit` rows due by `now` for `owner`, for `lease`. Rows whose previous
    /// lease ran out (their worker died or hung) are claimable again.
    pub async fn claim<T: FromQueryResult>(
        &self,
        db: &impl ConnectionTrait,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        limit: u32,
        returning: &str,
    ) -> Result<Lease<T>, DbErr> {
        self.claim_where(db, owner, now, lease, limit, returning, "").await
    }

    /// [`Queue::claim`] of the rows that meet `filter` (see [`Queue::claim_sql_where`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_where<T: FromQueryResult>(
        &self,
        db: &impl ConnectionTrait,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        limit: u32,
        returning: &str,
        filter: &str,
    ) -> Result<Lease<T>, DbErr> {
        let backend = db.get_database_backend();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let values = vec![owner.into(), token.clone().into(), lease_value(backend, now, lease), now.into(), (limit as i64).into()];
        let rows = T::find_by_statement(stmt(backend, &self.claim_sql_where(backend, returning, filter), values)).all(db).await?;
        Ok(Lease { token, rows })
    }

    /// Extends the lease on row `id` to `lease` from now if it is still held under `token`.
    /// False when another worker took the row over after the lease ran out, or it is no longer
    /// pending: the caller must leave it alone.
    pub async fn renew(
        &self,
        db: &impl ConnectionTrait,
        id: i64,
        token: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<bool, DbErr> {
        let backend = db.get_database_backend();
        let sql = format!(
            "UPDATE {} SET lease_until = {} WHERE id = $2 AND lease_token = $3 AND state = 'pending'",
            self.table,
            lease_end(backend, "$1")
        );
        let values = vec![lease_value(backend, now, lease), id.into(), token.into()];
        Ok(db.execute_raw(stmt(backend, &sql, values)).await?.rows_affected() == 1)
    }

    /// Extends the lease of every row still held under `token` (a batch whose work outside the
    /// database is still going on); returns how many.
    pub async fn renew_all(&self, db: &impl ConnectionTrait, token: &str, now: DateTime<Utc>, lease: TimeDelta) -> Result<u64, DbErr> {
        let backend = db.get_database_backend();
        let sql =
            format!("UPDATE {} SET lease_until = {} WHERE lease_token = $2 AND state = 'pending'", self.table, lease_end(backend, "$1"));
        let values = vec![lease_value(backend, now, lease), token.into()];
        Ok(db.execute_raw(stmt(backend, &sql, values)).await?.rows_affected())
    }

    /// Inside the transaction that records the outcome: locks the rows among `ids` still held
    /// under `token` and returns their ids. A row missing here was taken over after the lease
    /// expired, or deleted; its work must not commit.
    pub async fn lock_held(&self, db: &impl ConnectionTrait, ids: &[i64], token: &str) -> Result<Vec<i64>, DbErr> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let backend = db.get_database_backend();
        let lock = if backend == DbBackend::Postgres { "FOR UPDATE" } else { "" };
        let sql = format!(
            "SELECT id FROM {} WHERE id IN ({}) AND lease_token = $1 AND state = 'pending' ORDER BY id {lock}",
            self.table,
            id_list(ids)
        );
        Ok(Id::find_by_statement(stmt(backend, &sql, vec![token.into()])).all(db).await?.into_iter().map(|r| r.id).collect())
    }

    /// Inside the transaction that locked them ([`Queue::lock_held`]): sets the rows aside while
    /// their work runs, out of the `pending` state and so out of any index on pending rows (a
    /// running timer does not count as the pending one of its kind). The transaction then
    /// deletes them or records their outcome, so `running` is never committed.
    pub async fn set_running(&self, db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        db.execute_unprepared(&format!("UPDATE {} SET state = 'running' WHERE id IN ({})", self.table, id_list(ids))).await?;
        Ok(())
    }

    /// Deletes the rows among `ids` still held under `token` in one statement, and returns how
    /// many: where checking the lease and completing are the same act.
    pub async fn delete_held(&self, db: &impl ConnectionTrait, ids: &[i64], token: &str) -> Result<u64, DbErr> {
        if ids.is_empty() {
            return Ok(0);
        }
        let backend = db.get_database_backend();
        let sql = format!("DELETE FROM {} WHERE id IN ({}) AND lease_token = $1 AND state = 'pending'", self.table, id_list(ids));
        Ok(db.execute_raw(stmt(backend, &sql, vec![token.into()])).await?.rows_affected())
    }

    /// Deletes finished rows (inside the transaction that locked them with [`Queue::lock_held`]).
    pub async fn delete(&self, db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        db.execute_unprepared(&format!("DELETE FROM {} WHERE id IN ({})", self.table, id_list(ids))).await?;
        Ok(())
    }

    /// Records how a claimed row ended and releases its lease. With a `token`, only if the lease
    /// is still that one (returns false when another worker took the row over: its outcome
    /// wins); without, the caller already holds the row locked.
    pub async fn finish(
        &self,
        db: &impl ConnectionTrait,
        id: i64,
        token: Option<&str>,
        outcome: Finish,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let backend = db.get_database_backend();
        let error = outcome.error.map(|e| e.chars().take(2000).collect::<String>());
        let mut values: Vec<Value> =
            vec![outcome.state.into(), crate::clock::truncate(outcome.due).into(), error.into(), now.into(), id.into()];
        let mut set = String::new();
        for (assignment, value) in outcome.set {
            values.push(value);
            set.push_str(", ");
            set.push_str(&assignment.replace("{}", &format!("${}", values.len())));
        }
        let mut sql = format!(
            "UPDATE {} SET state = $1, {} = $2, last_error = $3, lease_owner = NULL, lease_token = NULL, lease_until = NULL, updated_at = $4{set} WHERE id = $5",
            self.table, self.due
        );
        if let Some(token) = token {
            values.push(token.into());
            sql.push_str(&format!(" AND lease_token = ${}", values.len()));
        }
        Ok(db.execute_raw(stmt(backend, &sql, values)).await?.rows_affected() == 1)
    }

    /// Makes a dead row pending again, due now, with a fresh set of attempts. False if no dead
    /// row has that id.
    pub async fn retry_dead(&self, db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
        let backend = db.get_database_backend();
        let sql = format!(
            "UPDATE {} SET state = 'pending', {} = $1, attempts = 0, updated_at = $1 WHERE id = $2 AND state = $3",
            self.table, self.due
        );
        Ok(db.execute_raw(stmt(backend, &sql, vec![now.into(), id.into(), self.dead_state.into()])).await?.rows_affected() == 1)
    }

    /// When the earliest row that a claim could take is due: pending and not held under a live
    /// lease. Rows other workers hold are skipped, so a worker going through a large batch does
    /// not make the others sleep; a lease that runs out is noticed by the next poll.
    pub async fn next_due_at(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbErr> {
        self.next_due_at_where(db, now, "").await
    }

    /// [`Queue::next_due_at`] among the rows that meet `filter`.
    pub async fn next_due_at_where(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
        filter: &str,
    ) -> Result<Option<DateTime<Utc>>, DbErr> {
        let filter = if filter.is_empty() { String::new() } else { format!(" AND ({filter})") };
        #[derive(FromQueryResult)]
        struct Row {
            at: DateTime<Utc>,
        }
        let backend = db.get_database_backend();
        let sql = format!(
            "SELECT {due} AS at FROM {} WHERE state = 'pending' AND (lease_until IS NULL OR lease_until < {}){filter} ORDER BY {due}, id LIMIT 1",
            self.table,
            lease_now(backend, "$1"),
            due = self.due
        );
        Ok(Row::find_by_statement(stmt(backend, &sql, vec![now.into()])).one(db).await?.map(|r| r.at))
    }
}

#[derive(FromQueryResult)]
struct Id {
    id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_with_bounded_jitter() {
        for _ in 0..200 {
            let d1 = backoff(1, 2, 600).num_milliseconds();
            assert!((1600..=2400).contains(&d1), "{d1}");
            let d4 = backoff(4, 2, 600).num_milliseconds();
            assert!((12800..=19200).contains(&d4), "{d4}");
            let d30 = backoff(30, 2, 600).num_milliseconds();
            assert!((480_000..=720_000).contains(&d30), "{d30}");
        }
    }

    #[test]
    fn one_claim_statement_serves_each_table() {
        let jobs = Queue { table: "jobs", due: "run_at", dead_state: "dead", on_claim: "" };
        let sql = jobs.claim_sql(DbBackend::Postgres, "id");
        assert!(sql.contains("FROM jobs WHERE state = 'pending' AND run_at <= $4"), "{sql}");
        assert!(sql.contains("lease_until < clock_timestamp()"), "PostgreSQL judges leases by its own clock: {sql}");
        assert!(sql.ends_with("FOR UPDATE SKIP LOCKED) RETURNING id"), "{sql}");
        let emails = Queue { table: "emails", due: "next_attempt_at", dead_state: "failed", on_claim: "x = x + 1" };
        let sql = emails.claim_sql(DbBackend::Sqlite, "id");
        assert!(sql.contains("updated_at = $4, x = x + 1 WHERE"), "{sql}");
        assert!(!sql.contains("SKIP LOCKED"), "SQLite has one writer: {sql}");
    }
}
