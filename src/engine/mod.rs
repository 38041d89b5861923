//! The durable job engine. Timers are rows in `jobs` with a `run_at`; workers claim due rows
//! under a lease in a short statement, run each step in a transaction that first re-checks
//! the lease, and record the outcome in that same transaction. So:
//! - a crash loses nothing: an expired lease makes the job claimable again;
//! - a step never commits twice: a worker whose lease was taken over finds its token gone;
//! - failures back off exponentially (capped, with jitter) and end in a visible `dead` state
//!   after `engine.max_attempts`, from which an operator can retry them.

pub mod notify;
pub mod queue;
pub mod worker;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

/// Job kinds. The workflow's steps, plus `noop` (does nothing; used to measure the engine).
pub mod kinds {
    pub const NOOP: &str = "noop";
    pub const CALL_START: &str = "call.start";
    pub const CALL_REMIND: &str = "call.remind";
    pub const CALL_OVERDUE: &str = "call.overdue";
    pub const CALL_ESCALATE: &str = "call.escalate";
    pub const CALL_CANCELLED: &str = "call.cancelled";
    pub const CALL_UPDATED: &str = "call.updated";
}

/// A job to schedule.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub call_id: Option<i64>,
    pub payload: Option<serde_json::Value>,
    pub run_at: DateTime<Utc>,
}

impl NewJob {
    pub fn for_call(kind: &'static str, call_id: i64, run_at: DateTime<Utc>) -> Self {
        NewJob { kind, call_id: Some(call_id), payload: None, run_at }
    }

    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }
}

/// Schedules a job inside the caller's transaction, so it exists exactly when the change that
/// needs it commits.
pub async fn enqueue(db: &impl ConnectionTrait, job: NewJob, max_attempts: u32, now: DateTime<Utc>) -> Result<i64, DbErr> {
    Ok(entity::jobs::Entity::insert(row(job, max_attempts, now)).exec(db).await?.last_insert_id)
}

/// Several jobs in one statement per 500.
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    jobs: impl IntoIterator<Item = NewJob>,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows: Vec<_> = jobs.into_iter().map(|j| row(j, max_attempts, now)).collect();
    for chunk in rows.chunks(500) {
        entity::jobs::Entity::insert_many(chunk.to_vec()).exec_without_returning(db).await?;
    }
    Ok(())
}

fn row(job: NewJob, max_attempts: u32, now: DateTime<Utc>) -> entity::jobs::ActiveModel {
    use entity::jobs;
    jobs::ActiveModel {
        kind: Set(job.kind.to_string()),
        call_id: Set(job.call_id),
        payload: Set(job.payload),
        run_at: Set(crate::clock::truncate(job.run_at)),
        state: Set("pending".into()),
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

/// Delay before retry number `attempt` (1-based): base·2^(attempt-1), capped, ±20 % jitter so
/// failing jobs do not retry in lockstep.
pub fn backoff(attempt: u32, base_secs: u64, max_secs: u64) -> TimeDelta {
    let exp = base_secs.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)).min(max_secs).max(1);
    let ms = exp as f64 * 1000.0;
    let jitter = (rand::random::<f64>() - 0.5) * 0.4 * ms;
    TimeDelta::milliseconds((ms + jitter).round() as i64)
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
}
