//! The applier: the engine's feed of stored webhook events. It takes pending events in the order
//! they were stored and applies them to orders, calls and timers in batches of up to
//! `webhooks.apply_batch_size`, one transaction per batch, so the events of one deal are applied
//! in order (the newest-wins rule of each order still decides what an older event may change).
//! On PostgreSQL one process at a time applies a batch (a transaction-scoped advisory lock; the
//! others find it taken and leave the batch to it); SQLite writes one transaction at a time
//! anyway.
//!
//! A batch that the database refuses for one event's sake is applied again event by event: an
//! event that cannot be applied is marked `failed` with the reason (shown by
//! `GET /api/v1/events/{id}` and the dashboard), and the others are applied without it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use super::apply::PENDING;
use super::batch::{StoredEvent, apply_stored};
use crate::db::ErrorKind;
use crate::domain::{DealId, Source};
use crate::engine::{Effects, Feed, FeedBatch};
use crate::intake::event::{IntakeEvent, OrderFacts, Transition};
use crate::metrics::Metrics;
use crate::workflow::Live;
use entity::webhook_events;

/// The advisory lock that lets one process at a time apply a batch ("firstcal" in ASCII).
const APPLIER_LOCK: i64 = 0x6669_7273_7463_616c;

/// The webhook inbox as the engine's feed.
pub struct Inbox {
    pub fc: Arc<Live>,
    pub metrics: Arc<Metrics>,
}

impl Feed for Inbox {
    fn name(&self) -> &'static str {
        "webhook inbox"
    }

    fn run_batch<'a>(&'a self, db: &'a DatabaseConnection, now: DateTime<Utc>) -> BoxFuture<'a, Result<FeedBatch, DbErr>> {
        Box::pin(async move {
            let fc = self.fc.get();
            let limit = fc.config.settings.webhooks.apply_batch_size.max(1) as u64;
            apply_pending(db, &fc, &self.metrics, now, limit).await
        })
    }
}

/// A pending event's row without its raw payload, which applying does not read.
#[derive(FromQueryResult)]
struct Row {
    id: i64,
    source: String,
    dedupe_key: String,
    event_type: String,
    deal_id: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    transition: Option<String>,
    facts: Option<String>,
}

impl Row {
    /// The event as the intake read it, or why it cannot be applied.
    fn event(&self) -> Result<StoredEvent, String> {
        let source = Source::parse(&self.source).map_err(|e| e.to_string())?;
        let deal_id = DealId::parse(self.deal_id.as_deref().unwrap_or_default()).map_err(|e| format!("deal id: {e}"))?;
        let transition = match self.transition.as_deref() {
            Some("created") => Transition::Created,
            Some("updated") => Transition::Updated,
            Some("cancelled") => Transition::Cancelled,
            other => return Err(format!("unknown transition {other:?}")),
        };
        let facts: OrderFacts = serde_json::from_str(self.facts.as_deref().unwrap_or("{}")).map_err(|e| format!("facts: {e}"))?;
        let at = self.occurred_at.unwrap_or(self.received_at);
        let ev = IntakeEvent {
            source,
            dedupe_key: self.dedupe_key.clone(),
            event_type: self.event_type.clone(),
            deal_id,
            transition,
            occurred_at: at,
            facts,
            raw: String::new(),
        };
        Ok(StoredEvent { id: self.id, ev, at })
    }
}

/// Applies up to `limit` pending events, oldest first, in one transaction.
pub async fn apply_pending(
    db: &DatabaseConnection,
    fc: &crate::workflow::FirstCall,
    metrics: &Metrics,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<FeedBatch, DbErr> {
    let mut conflicts = 0;
    loop {
        let txn = crate::db::begin_write(db).await?;
        if !hold_applier_lock(&txn).await? {
            txn.rollback().await?;
            return Ok(FeedBatch { busy: true, ..FeedBatch::default() });
        }
        let rows = pending(&txn, limit, None).await?;
        if rows.is_empty() {
            txn.commit().await?;
            return Ok(FeedBatch::default());
        }
        let full = rows.len() as u64 >= limit;
        let mut stored = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for r in &rows {
            match r.event() {
                Ok(s) => stored.push(s),
                Err(why) => {
                    mark_failed(&txn, r.id, &why, now).await?;
                    unreadable.push(r);
                }
            }
        }
        match apply_stored(&txn, fc, &stored, now).await {
            Ok(results) => {
                txn.commit().await?;
                for (s, r) in stored.iter().zip(&results) {
                    metrics.event_applied(s.ev.source.as_str(), r.outcome);
                }
                for r in unreadable {
                    metrics.event_applied(&r.source, "failed");
                }
                return Ok(FeedBatch { taken: rows.len(), full, busy: false, effects: effects(rows.len()) });
            }
            Err(e) => {
                let _ = txn.rollback().await;
                match crate::db::error_kind(&e) {
                    ErrorKind::Unavailable => return Err(e),
                    ErrorKind::Conflict if conflicts < 3 => conflicts += 1,
                    _ => {
                        tracing::debug!(error = %e, "inbox batch not applied together; applying event by event");
                        let taken = one_by_one(db, fc, metrics, &rows, now).await?;
                        return Ok(FeedBatch { taken, full, busy: false, effects: effects(taken) });
                    }
                }
            }
        }
    }
}

/// Applied events may have opened calls (their first step is due now), cancelled them or
/// planned their re-reading: the engine looks at once.
fn effects(taken: usize) -> Effects {
    Effects { emails: 0, jobs_due_now: taken }
}

/// Applies each of `rows` in a transaction of its own; an event the database refuses is marked
/// failed. Returns how many were taken (applied or failed).
async fn one_by_one(
    db: &DatabaseConnection,
    fc: &crate::workflow::FirstCall,
    metrics: &Metrics,
    rows: &[Row],
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut taken = 0;
    for r in rows {
        let txn = crate::db::begin_write(db).await?;
        if !hold_applier_lock(&txn).await? {
            txn.rollback().await?;
            return Ok(taken);
        }
        // Still pending: no one applied it meanwhile.
        let Some(row) = pending(&txn, 1, Some(r.id)).await?.pop() else {
            txn.rollback().await?;
            continue;
        };
        let stored = match row.event() {
            Ok(s) => s,
            Err(why) => {
                mark_failed(&txn, row.id, &why, now).await?;
                txn.commit().await?;
                metrics.event_applied(&row.source, "failed");
                taken += 1;
                continue;
            }
        };
        match apply_stored(&txn, fc, std::slice::from_ref(&stored), now).await {
            Ok(results) => {
                txn.commit().await?;
                for r in results {
                    metrics.event_applied(&row.source, r.outcome);
                }
            }
            Err(e) => {
                let _ = txn.rollback().await;
                match crate::db::error_kind(&e) {
                    // Left pending: the next round tries again.
                    ErrorKind::Unavailable => return Err(e),
                    ErrorKind::Conflict => return Ok(taken),
                    _ => {
                        tracing::error!(event = row.id, source = %row.source, key = %row.dedupe_key, error = %e, "stored event cannot be applied; marked failed");
                        let txn = crate::db::begin_write(db).await?;
                        mark_failed(&txn, row.id, &e.to_string(), now).await?;
                        txn.commit().await?;
                        metrics.event_applied(&row.source, "failed");
                    }
                }
            }
        }
        taken += 1;
    }
    Ok(taken)
}

/// On PostgreSQL, takes the applier's lock for this transaction if no other process holds it.
async fn hold_applier_lock(txn: &DatabaseTransaction) -> Result<bool, DbErr> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(true);
    }
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS held",
            [APPLIER_LOCK.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no answer to the applier's lock".into()))?;
    row.try_get("", "held")
}

/// Pending events in the order they were stored (`only`: that one, if still pending).
async fn pending(db: &impl ConnectionTrait, limit: u64, only: Option<i64>) -> Result<Vec<Row>, DbErr> {
    use webhook_events::Column as C;
    let mut q = webhook_events::Entity::find()
        .select_only()
        .columns([C::Id, C::Source, C::DedupeKey, C::EventType, C::DealId, C::OccurredAt, C::ReceivedAt, C::Transition, C::Facts])
        .filter(C::Outcome.eq(PENDING));
    if let Some(id) = only {
        q = q.filter(C::Id.eq(id));
    }
    q.order_by_asc(C::Id).limit(limit).into_model::<Row>().all(db).await
}

async fn mark_failed(db: &impl ConnectionTrait, id: i64, why: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    webhook_events::Entity::update_many()
        .col_expr(webhook_events::Column::Outcome, Expr::value("failed"))
        .col_expr(webhook_events::Column::Error, Expr::value(why))
        .col_expr(webhook_events::Column::AppliedAt, Expr::value(now))
        .filter(webhook_events::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
