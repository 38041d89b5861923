//! Retention: an engine job that removes what `[retention]` no longer keeps, a batch at a time.
//! Each run removes at most `batch_size` rows of each kind in the engine's transaction for the
//! job, then plans the next run: within a second when a batch was full (more is waiting), else
//! after `interval_minutes`. One sweep job exists at a time (a fixed subject, and the engine's
//! one-pending-job-per-subject-and-kind rule), so every process may seed it at start-up.
//!
//! What goes, and what never does:
//! - the text, HTML and invite of emails sent or skipped `sent_email_bodies_days` ago, except
//!   while their call is open (the subject, recipient and outcome stay, with `body_removed_at`);
//! - stored CRM events received `webhook_events_days` ago, never inside the event window
//!   (`webhooks.max_event_age_days` plus a day for events dated ahead): a redelivery that could
//!   still be accepted finds its dedupe key and stays a duplicate;
//! - dead timers last tried `dead_jobs_days` ago, except those of an open call;
//! - orders of deals never won (no call) untouched for `orders_never_won_days`, never inside the
//!   event window, so no event old enough to predate their last change can be accepted again;
//!   their audit entries go with them. A deal won after that starts from its winning event.
//!
//! Calls, their audit trail and proposals are kept.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::retention::RetentionSettings;
use crate::db::{id_list, name_list, stmt};
use crate::engine::{self, ClaimedJob, Effects, Handler, JobKind, NewJob, Registry, StepError};
use crate::workflow::{CallState, FirstCall};
use entity::emails::EmailState;

/// The sweep's subject: it is about no row, and a fixed subject makes it one of its kind.
const SUBJECT: i64 = 0;
/// After a full batch the next run comes this soon, leaving the database to other work meanwhile.
const SOON: TimeDelta = TimeDelta::seconds(1);

/// What retention needs: its settings, the event window and the engine's attempts per job.
#[derive(Debug, Clone)]
pub struct Retention {
    pub settings: RetentionSettings,
    /// `webhooks.max_event_age_days`: how old an event the CRM may still deliver.
    pub event_window_days: u32,
    pub max_attempts: u32,
}

/// What one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub email_bodies: u64,
    pub events: u64,
    pub dead_jobs: u64,
    pub orders: u64,
    /// Orders looked at on the walk through the table.
    pub orders_examined: u64,
}

/// Where the walk through the orders stands, carried in the sweep job's payload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walk {
    /// The next run looks at the orders after this id (0: from the start).
    pub orders_after: i64,
}

impl Retention {
    pub fn new(config: &Config) -> Self {
        let s = &config.settings;
        Retention { settings: s.retention.clone(), event_window_days: s.webhooks.max_event_age_days, max_attempts: s.engine.max_attempts }
    }

    /// Registers the sweep with the engine.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register(JobKind::RetentionSweep, self.clone());
    }

    /// Plans the sweep now unless it is already planned (every process does this at start-up).
    /// Nothing is planned when every kind is kept forever.
    pub async fn seed(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool, DbErr> {
        if !self.settings.enabled() {
            return Ok(false);
        }
        engine::enqueue(db, NewJob::new(JobKind::RetentionSweep, SUBJECT, now), self.max_attempts, now).await
    }

    /// The days after which each kind goes, as applied (`None`: kept forever). Events and
    /// never-won orders are kept for at least the event window and a day.
    pub fn ages(&self) -> Ages {
        let s = &self.settings;
        let floor = self.event_window_days + 1;
        let days = |d: u32, min: u32| (d > 0).then(|| d.max(min));
        Ages {
            email_bodies: days(s.sent_email_bodies_days, 0),
            events: days(s.webhook_events_days, floor),
            dead_jobs: days(s.dead_jobs_days, 0),
            orders: days(s.orders_never_won_days, floor),
        }
    }

    /// One run: at most `batch_size` rows of each kind, inside the caller's transaction.
    /// Returns what went, where the walk through the orders goes on, and whether a batch was
    /// full (more may be waiting).
    pub async fn sweep(&self, db: &impl ConnectionTrait, walk: Walk, now: DateTime<Utc>) -> Result<(Swept, Walk, bool), DbErr> {
        let limit = self.settings.batch_size as i64;
        let cut = self.ages().before(now);
        let mut swept = Swept::default();
        let mut next = Walk::default();
        if let Some(before) = cut.email_bodies {
            swept.email_bodies = remove_email_bodies(db, before, limit, now).await?;
        }
        if let Some(before) = cut.events {
            swept.events = delete_events(db, before, limit).await?;
        }
        if let Some(before) = cut.dead_jobs {
            swept.dead_jobs = delete_dead_jobs(db, before, limit).await?;
        }
        if let Some(before) = cut.orders {
            let (examined, deleted, last) = delete_orders_never_won(db, walk.orders_after, before, limit).await?;
            (swept.orders_examined, swept.orders) = (examined, deleted);
            // A full page: go on from its last order; otherwise the walk starts over next time.
            if examined == limit as u64 {
                next.orders_after = last;
            }
        }
        let full = [swept.email_bodies, swept.events, swept.dead_jobs, swept.orders_examined].contains(&(limit as u64));
        Ok((swept, next, full))
    }
}

/// Days after which each kind goes; `None`: kept forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ages<T = u32> {
    pub email_bodies: Option<T>,
    pub events: Option<T>,
    pub dead_jobs: Option<T>,
    pub orders: Option<T>,
}

impl Ages {
    /// The times before which each kind goes, at `now`.
    fn before(&self, now: DateTime<Utc>) -> Ages<DateTime<Utc>> {
        let at = |days: Option<u32>| days.map(|d| now - TimeDelta::days(d as i64));
        Ages { email_bodies: at(self.email_bodies), events: at(self.events), dead_jobs: at(self.dead_jobs), orders: at(self.orders) }
    }
}

impl Handler for Retention {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(async move {
            // A payload this version cannot read (or none) starts the walk over: harmless.
            let walk = job.payload_as("a retention walk").unwrap_or_default();
            let (swept, walk, full) = self.sweep(txn, walk, now).await?;
            if swept != Swept::default() {
                tracing::info!(
                    email_bodies = swept.email_bodies,
                    events = swept.events,
                    dead_jobs = swept.dead_jobs,
                    orders = swept.orders,
                    more = full,
                    "retention removed old data"
                );
            }
            if self.settings.enabled() {
                let at = if full { now + SOON } else { now + TimeDelta::minutes(self.settings.interval_minutes as i64) };
                let payload = serde_json::to_value(walk).map_err(|e| StepError::Failed(e.to_string()))?;
                let next = NewJob::new(JobKind::RetentionSweep, SUBJECT, at).with_payload(payload);
                engine::enqueue(txn, next, self.max_attempts, now).await?;
            }
            Ok(Effects::default())
        })
    }
}

fn open_states() -> String {
    name_list(CallState::OPEN.iter().map(|s| s.as_str()))
}

/// Clears the text, HTML and invite of emails settled (sent or skipped) before `before`, unless
/// their call is open. Failed emails keep theirs: an operator may send them again.
async fn remove_email_bodies(db: &impl ConnectionTrait, before: DateTime<Utc>, limit: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let settled = name_list([EmailState::Sent.as_str(), EmailState::Skipped.as_str()]);
    // The outer condition is checked again on the row as it is when locked (PostgreSQL).
    let sql = format!(
        "UPDATE emails SET body_text = '', body_html = '', ics = NULL, body_removed_at = $1 \
         WHERE body_removed_at IS NULL AND state IN ({settled}) AND updated_at < $2 AND id IN \
         (SELECT e.id FROM emails e WHERE e.body_removed_at IS NULL AND e.state IN ({settled}) AND e.updated_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = e.call_id AND c.state IN ({open})) ORDER BY e.updated_at, e.id LIMIT $3)",
        open = open_states(),
    );
    let r = db.execute_raw(stmt(db.get_database_backend(), &sql, vec![now.into(), before.into(), limit.into()])).await?;
    Ok(r.rows_affected())
}

/// Deletes the oldest stored events received before `before`. Events are read in id order,
/// which is the order they were received in, so no index on the time is needed: the run looks
/// at the `limit` oldest rows and deletes those old enough.
async fn delete_events(db: &impl ConnectionTrait, before: DateTime<Utc>, limit: i64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM webhook_events WHERE received_at < $1 AND id IN \
               (SELECT id FROM (SELECT id, received_at, outcome FROM webhook_events ORDER BY id LIMIT $2) oldest WHERE received_at < $1 AND outcome <> 'pending')";
    let r = db.execute_raw(stmt(db.get_database_backend(), sql, vec![before.into(), limit.into()])).await?;
    Ok(r.rows_affected())
}

/// Deletes dead timers last tried before `before`, except the first-call workflow's timers of a
/// call still open (an operator may still need to retry them).
async fn delete_dead_jobs(db: &impl ConnectionTrait, before: DateTime<Utc>, limit: i64) -> Result<u64, DbErr> {
    let call_kinds = name_list(FirstCall::JOB_KINDS.iter().map(|k| k.as_str()));
    let sql = format!(
        "DELETE FROM jobs WHERE state = 'dead' AND updated_at < $1 AND id IN \
         (SELECT j.id FROM jobs j WHERE j.state = 'dead' AND j.updated_at < $1 AND NOT (j.kind IN ({call_kinds}) AND EXISTS \
         (SELECT 1 FROM calls c WHERE c.id = j.subject_id AND c.state IN ({open}))) ORDER BY j.id LIMIT $2)",
        open = open_states(),
    );
    let r = db.execute_raw(stmt(db.get_database_backend(), &sql, vec![before.into(), limit.into()])).await?;
    Ok(r.rows_affected())
}

/// Looks at the next `limit` orders after id `after` and deletes those of deals never won (never
/// opened, so without a call) and untouched since `before`, with their audit entries. Returns
/// how many were looked at, how many deleted, and the last id looked at.
async fn delete_orders_never_won(
    db: &impl ConnectionTrait,
    after: i64,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<(u64, u64, i64), DbErr> {
    #[derive(FromQueryResult)]
    struct Id {
        id: i64,
    }
    let backend = db.get_database_backend();
    let page =
        Id::find_by_statement(stmt(backend, "SELECT id FROM orders WHERE id > $1 ORDER BY id LIMIT $2", vec![after.into(), limit.into()]))
            .all(db)
            .await?;
    let Some(last) = page.last().map(|r| r.id) else { return Ok((0, 0, after)) };
    // `ordered_at` is set when an order is won, and only then does it get a call; the call
    // check keeps the foreign key safe whatever happens.
    let sql = "DELETE FROM orders WHERE id > $1 AND id <= $2 AND ordered_at IS NULL AND updated_at < $3 \
               AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.id) RETURNING id";
    let deleted = Id::find_by_statement(stmt(backend, sql, vec![after.into(), last.into(), before.into()])).all(db).await?;
    if !deleted.is_empty() {
        let ids: Vec<i64> = deleted.iter().map(|r| r.id).collect();
        let sql = format!("DELETE FROM audit_log WHERE entity = 'order' AND entity_id IN ({})", id_list(&ids));
        db.execute_raw(stmt(backend, &sql, vec![])).await?;
    }
    Ok((page.len() as u64, deleted.len() as u64, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(events_days: u32, orders_days: u32, window: u32) -> Retention {
        let settings = RetentionSettings { webhook_events_days: events_days, orders_never_won_days: orders_days, ..Default::default() };
        Retention { settings, event_window_days: window, max_attempts: 3 }
    }

    #[test]
    fn events_and_never_won_orders_outlive_the_event_window() {
        let a = retention(5, 10, 30).ages();
        assert_eq!((a.events, a.orders), (Some(31), Some(31)), "a day past the 30-day window, whatever is configured");
        let a = retention(60, 180, 30).ages();
        assert_eq!((a.events, a.orders, a.email_bodies, a.dead_jobs), (Some(60), Some(180), Some(90), Some(90)));
        let a = retention(0, 0, 30).ages();
        assert_eq!((a.events, a.orders), (None, None), "0 keeps forever");
        let now = DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(retention(60, 0, 30).ages().before(now).events, Some(now - TimeDelta::days(60)));
    }

    #[test]
    fn nothing_is_planned_when_everything_is_kept_forever() {
        let keep = RetentionSettings {
            sent_email_bodies_days: 0,
            webhook_events_days: 0,
            dead_jobs_days: 0,
            orders_never_won_days: 0,
            ..Default::default()
        };
        assert!(!keep.enabled());
        assert!(RetentionSettings::default().enabled());
    }
}
