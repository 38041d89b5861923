//! Stores verified CRM events and applies them to orders and calls. Each request's events are applied together:
//! the raw event with its dedupe key, the order's new state, and the workflow's change (a new
//! call with its first timer, a cancellation, a re-plan). The HTTP layer answers 2xx only after
//! they are committed, so an acknowledged event is never lost, and a redelivered event finds its
//! key and does nothing twice.
//!
//! Commits are grouped: requests queue for a few writers, each of which takes every request
//! waiting, applies them in one transaction and commits them all at once, answering each only
//! after that commit (a request that fails is answered with its error and the others are applied
//! again without it). A burst of webhooks then costs one durable flush per group instead of one
//! per request.
//!
//! Events may arrive out of order. Each order remembers when the event that set its status
//! happened (`status_at`): an older event never overrides a newer status, and facts from an
//! older event only fill in what is still unknown.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

mod batch;

use super::{FirstCall, calls};
use crate::background::Signals;
use crate::clock::SharedClock;
use crate::db::ErrorKind;
use crate::intake::event::{IntakeEvent, Transition};
use entity::orders::OrderStatus;
use entity::{orders, webhook_events};

/// Why a request's events were not stored. In every case nothing of the request was stored,
/// and the CRM may send it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The database cannot be reached, or the writers stopped.
    #[error("not stored: the database is unavailable ({0})")]
    Unavailable(String),
    /// Other requests kept changing the same deals at the same time.
    #[error("not stored: concurrent changes to the same deals; retry")]
    Conflict,
    /// The database refused the request's rows.
    #[error("not stored: {0}")]
    Rejected(String),
}

impl From<&DbErr> for IntakeError {
    fn from(e: &DbErr) -> Self {
        match crate::db::error_kind(e) {
            ErrorKind::Unavailable => IntakeError::Unavailable(e.to_string()),
            ErrorKind::Conflict => IntakeError::Conflict,
            ErrorKind::Duplicate | ErrorKind::Other => IntakeError::Rejected(e.to_string()),
        }
    }
}

/// What storing a group of requests needs.
#[derive(Clone)]
pub struct Writers {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub first_call: Arc<FirstCall>,
    /// Told when calls were opened, so the engine starts them at once.
    pub signals: Signals,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventResult {
    /// The CRM's event id (the dedupe key).
    pub id: String,
    pub deal_id: String,
    /// `opened` (a first call was scheduled), `cancelled`, `updated`, `recorded` (stored; no
    /// change needed), `duplicate` (seen before; nothing done again), or `stale` (older than
    /// what is already known; kept for the record).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
}

/// Requests a writer takes into one transaction at most.
const MAX_GROUP: usize = 64;

type Reply = oneshot::Sender<Result<Vec<EventResult>, IntakeError>>;

struct Pending {
    events: Vec<IntakeEvent>,
    reply: Reply,
}

/// The queue in front of the group-commit writers.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the writers: half the database pool on PostgreSQL (the rest stays free for the
    /// engine, the mailer and the API), one on SQLite, which has a single connection.
    pub fn start(w: Writers) -> Intake {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let db_settings = &w.first_call.config.settings.database;
        let writers = if !crate::db::is_postgres(&w.db) {
            1
        } else if db_settings.intake_writers > 0 {
            db_settings.intake_writers
        } else {
            (db_settings.max_connections / 4).clamp(1, 4)
        };
        let queue = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(writer(w.clone(), queue.clone()));
        }
        Intake { queue: tx }
    }

    /// Stores and applies a request's events together, and returns once they are committed.
    pub async fn accept(&self, events: &[IntakeEvent]) -> Result<Vec<EventResult>, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let gone = || IntakeError::Unavailable("the intake writer stopped".into());
        self.queue.send(Pending { events: events.to_vec(), reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn writer(w: Writers, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(p) => group.push(p),
                None => return,
            }
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
        }
        commit_group(&w, group).await;
    }
}

/// One transaction for a group of requests, written set-wise (`batch`). If that fails for one
/// request's sake (a constraint, a bad row), the group is applied again request by request: a
/// request that fails is taken out and answered with its error, the rest committed without it.
/// A deadlock with another group is retried as it is.
async fn commit_group(w: &Writers, group: Vec<Pending>) {
    // A client that went away was never answered and will send its events again.
    let group: Vec<Pending> = group.into_iter().filter(|p| !p.reply.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    for attempt in 1..=3 {
        match commit_set_wise(w, &group).await {
            Ok(applied) => return answer(w, group, applied),
            Err(batch::GroupError::Db(e)) => match crate::db::error_kind(&e) {
                ErrorKind::Unavailable => return fail_all(group, &e),
                ErrorKind::Conflict if attempt < 3 => continue,
                _ => {
                    tracing::debug!(error = %e, "group not applied set-wise; applying request by request");
                    break;
                }
            },
            Err(batch::GroupError::NotSetWise(why)) => {
                tracing::debug!(why = %why, "group not applied set-wise; applying request by request");
                break;
            }
        }
    }
    commit_one_by_one(w, group).await
}

async fn commit_set_wise(w: &Writers, group: &[Pending]) -> Result<Vec<Vec<EventResult>>, batch::GroupError> {
    let txn = crate::db::begin_write(&w.db).await?;
    let requests: Vec<&[IntakeEvent]> = group.iter().map(|p| p.events.as_slice()).collect();
    let applied = batch::apply_group(&txn, &w.first_call, &requests, w.clock.now()).await?;
    // The raw events, the orders and the calls with their first timers of every request in
    // the group commit together; only then does each CRM get its 2xx.
    txn.commit().await?;
    Ok(applied)
}

/// Answers every request of the group with the error (the database went away: none is stored).
fn fail_all(group: Vec<Pending>, e: &DbErr) {
    let error = IntakeError::Unavailable(e.to_string());
    for p in group {
        let _ = p.reply.send(Err(error.clone()));
    }
}

fn answer(w: &Writers, group: Vec<Pending>, applied: Vec<Vec<EventResult>>) {
    if applied.iter().any(|results| results.iter().any(|r| r.call_id.is_some())) {
        w.signals.jobs_scheduled();
    }
    for (p, results) in group.into_iter().zip(applied) {
        let _ = p.reply.send(Ok(results));
    }
}

async fn commit_one_by_one(w: &Writers, mut group: Vec<Pending>) {
    let mut conflicts = 0;
    while !group.is_empty() {
        let txn = match crate::db::begin_write(&w.db).await {
            Ok(t) => t,
            Err(e) => return fail_all(group, &e),
        };
        let mut applied = Vec::with_capacity(group.len());
        let mut failure = None;
        for (i, p) in group.iter().enumerate() {
            match apply_all(&txn, &w.first_call, w.clock.now(), &p.events).await {
                Ok(results) => applied.push(results),
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if let Some((i, e)) = failure {
            let _ = txn.rollback().await;
            let kind = crate::db::error_kind(&e);
            if kind == ErrorKind::Unavailable {
                return fail_all(group, &e);
            }
            conflicts += usize::from(kind == ErrorKind::Conflict);
            if kind != ErrorKind::Conflict || conflicts > 5 {
                let _ = group.remove(i).reply.send(Err(IntakeError::from(&e)));
            }
            continue;
        }
        // A failed commit answers 503 (the CRM retries; a commit that did land makes the retry
        // a duplicate).
        match txn.commit().await {
            Ok(()) => return answer(w, group, applied),
            Err(e) => return fail_all(group, &e),
        }
    }
}

/// A request's events, in order.
async fn apply_all(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    now: DateTime<Utc>,
    events: &[IntakeEvent],
) -> Result<Vec<EventResult>, DbErr> {
    let mut results = Vec::with_capacity(events.len());
    for ev in events {
        results.push(apply(db, fc, ev, now).await?);
    }
    Ok(results)
}

async fn apply(db: &impl ConnectionTrait, fc: &FirstCall, ev: &IntakeEvent, now: DateTime<Utc>) -> Result<EventResult, DbErr> {
    let mut result = EventResult { id: ev.dedupe_key.clone(), deal_id: ev.deal_id.to_string(), outcome: "recorded", call_id: None };
    let occurred_at = occurred(ev, now);
    let row = event_row(ev, occurred_at, now);
    // The unique (source, dedupe_key) index is the gate: a concurrent duplicate waits for this
    // transaction and then inserts nothing.
    let inserted = webhook_events::Entity::insert(row)
        .on_conflict_do_nothing_on([webhook_events::Column::Source, webhook_events::Column::DedupeKey])
        .exec(db)
        .await?;
    match inserted {
        sea_orm::TryInsertResult::Inserted(r) => apply_inserted(db, fc, ev, r.last_insert_id, occurred_at, now).await,
        _ => {
            result.outcome = "duplicate";
            Ok(result)
        }
    }
}

/// Applies an event whose raw row (`event_id`) was just stored: the order's transition and the
/// workflow's change, then the event's recorded outcome.
async fn apply_inserted(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    ev: &IntakeEvent,
    event_id: i64,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<EventResult, DbErr> {
    let order = lock_order(db, ev, occurred_at, now).await?;
    let (order, outcome, call_id) = transition(db, fc, order, ev, occurred_at, now).await?;
    webhook_events::Entity::update_many()
        .col_expr(webhook_events::Column::Outcome, sea_orm::sea_query::Expr::value(outcome))
        .col_expr(webhook_events::Column::OrderId, sea_orm::sea_query::Expr::value(order.id))
        .filter(webhook_events::Column::Id.eq(event_id))
        .exec(db)
        .await?;
    Ok(EventResult { id: ev.dedupe_key.clone(), deal_id: ev.deal_id.to_string(), outcome, call_id })
}

/// When the event happened, as applied: never in the future, in the database's precision.
fn occurred(ev: &IntakeEvent, now: DateTime<Utc>) -> DateTime<Utc> {
    crate::clock::truncate(ev.occurred_at.min(now))
}

/// The raw event's row, before its outcome is known.
fn event_row(ev: &IntakeEvent, occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> webhook_events::ActiveModel {
    webhook_events::ActiveModel {
        source: Set(ev.source.as_str().into()),
        dedupe_key: Set(ev.dedupe_key.clone()),
        event_type: Set(ev.event_type.clone()),
        deal_id: Set(Some(ev.deal_id.to_string())),
        occurred_at: Set(Some(occurred_at)),
        received_at: Set(now),
        payload: Set(ev.raw.clone()),
        outcome: Set("received".into()),
        order_id: Set(None),
        ..Default::default()
    }
}

/// The order row for the event's deal, created if new, locked for the rest of the transaction.
async fn lock_order(
    db: &impl ConnectionTrait,
    ev: &IntakeEvent,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<orders::Model, DbErr> {
    let fresh = orders::ActiveModel {
        source: Set(ev.source.as_str().into()),
        deal_id: Set(ev.deal_id.to_string()),
        status: Set(OrderStatus::New),
        amount_minor: Set(None),
        currency: Set(None),
        rep_email: Set(None),
        segment: Set(None),
        account_name: Set(None),
        line_items: Set(serde_json::json!([])),
        ordered_at: Set(None),
        status_at: Set(occurred_at),
        last_event_at: Set(occurred_at),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    // One statement: a new deal's row is inserted, an existing one is "updated" to itself, which
    // locks it (as `FOR UPDATE` would) and returns it as it is.
    let upsert = OnConflict::columns([orders::Column::Source, orders::Column::DealId]).update_column(orders::Column::Source).to_owned();
    orders::Entity::insert(fresh).on_conflict(upsert).exec_with_returning(db).await
}

/// Applies the event to the order and the workflow; returns the order, the outcome and the
/// call touched.
async fn transition(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    order: orders::Model,
    ev: &IntakeEvent,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(orders::Model, &'static str, Option<i64>), DbErr> {
    let actor = format!("webhook:{}", ev.source);
    let status = order.status;
    let is_new = status == OrderStatus::New;
    let newer_status = is_new || at >= order.status_at;
    let before_rep = order.rep_email.clone();
    let before_amount = (order.amount_minor, order.currency.clone(), order.segment.clone());
    let am = merge_facts(db, order.clone(), ev, at).await?;

    use OrderStatus::{Cancelled, New, Open, Pending};
    let (new_status, outcome) = match (ev.transition, status) {
        (Transition::Created, Open) => (None, "recorded"),
        (Transition::Created, Cancelled) if !newer_status => (None, "stale"),
        (Transition::Created, _) => (Some(Open), "opened"),
        (Transition::Cancelled, Cancelled) => (None, "recorded"),
        (Transition::Cancelled, Open) if !newer_status => (None, "stale"),
        (Transition::Cancelled, Open) => (Some(Cancelled), "cancelled"),
        // Never open here: remember the cancellation so an older create arriving late stays
        // cancelled, but nothing was cancelled now.
        (Transition::Cancelled, _) => (Some(Cancelled), "recorded"),
        (Transition::Updated, New) => (Some(Pending), "recorded"),
        (Transition::Updated, _) => (None, "updated"),
    };
    let order = write_order(db, am, status, new_status, at, ev.transition.as_str(), &actor, now).await?;

    let call_id = match (new_status, outcome) {
        (Some(Open), _) => Some(super::opening::open_for_order(db, fc, &order, &actor, now).await?.id),
        (Some(Cancelled), _) if status == Open => calls::cancel_for_order(db, fc, &order, &actor, now).await?,
        (None, "updated" | "recorded") if order.status == Open => {
            let changed =
                order.rep_email != before_rep || (order.amount_minor, order.currency.clone(), order.segment.clone()) != before_amount;
            if changed { calls::replan_for_order(db, fc, &order, &actor, now).await? } else { None }
        }
        _ => None,
    };
    let outcome = match (outcome, call_id) {
        ("updated", None) => "recorded",
        (o, _) => o,
    };
    Ok((order, outcome, call_id))
}

/// Writes an order's facts and, when it changes, its status (at the event's time `at`) with the
/// audit entry: the one place an order's status is written after it was created.
#[allow(clippy::too_many_arguments)]
async fn write_order(
    db: &impl ConnectionTrait,
    mut am: orders::ActiveModel,
    from: OrderStatus,
    to: Option<OrderStatus>,
    at: DateTime<Utc>,
    action: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<orders::Model, DbErr> {
    am.updated_at = Set(now);
    if let Some(s) = to {
        am.status = Set(s);
        am.status_at = Set(at);
        if s == OrderStatus::Open {
            am.ordered_at = Set(Some(at));
        }
    }
    let order = am.update(db).await?;
    if let Some(s) = to {
        crate::audit::record(
            db,
            crate::audit::Change {
                actor,
                entity: "order",
                entity_id: order.id,
                action,
                from_state: Some(from.as_str()),
                to_state: Some(s.as_str()),
                detail: None,
            },
            now,
        )
        .await?;
    }
    Ok(order)
}

/// The order with the event's facts merged in: a newer event overwrites what it states; an
/// older one only fills what is still unknown.
async fn merge_facts(
    db: &impl ConnectionTrait,
    order: orders::Model,
    ev: &IntakeEvent,
    at: DateTime<Utc>,
) -> Result<orders::ActiveModel, DbErr> {
    let newer = order.status == OrderStatus::New || at >= order.last_event_at;
    let f = &ev.facts;
    let mut rep = f.rep_email.as_ref().map(|e| e.to_string());
    if rep.is_none()
        && let Some(owner) = &f.owner_ref
    {
        rep = crate::reps::email_for_crm_user(db, ev.source, owner).await?.map(|e| e.to_string());
        if rep.is_none() {
            tracing::info!(source = %ev.source, owner = %owner, deal = %ev.deal_id, "CRM owner id not in the rep directory; keeping the order's rep");
        }
    }
    let mut am = order.clone().into_active_model();
    let take = |cur: &Option<String>, new: Option<String>| -> Option<Option<String>> {
        match new {
            Some(v) if newer || cur.is_none() => Some(Some(v)),
            _ => None,
        }
    };
    if let Some(v) = take(&order.rep_email, rep) {
        am.rep_email = Set(v);
    }
    if let Some(v) = take(&order.segment, f.segment.clone()) {
        am.segment = Set(v);
    }
    if let Some(v) = take(&order.account_name, f.account_name.clone()) {
        am.account_name = Set(v);
    }
    if let Some(m) = &f.amount
        && (newer || order.amount_minor.is_none())
    {
        am.amount_minor = Set(Some(m.minor));
        am.currency = Set(Some(m.currency.to_string()));
    }
    if let Some(items) = &f.line_items
        && (newer || order.line_items.as_array().is_none_or(|a| a.is_empty()))
    {
        am.line_items = Set(serde_json::to_value(items).unwrap_or_else(|_| serde_json::json!([])));
    }
    if newer {
        am.last_event_at = Set(at);
    }
    Ok(am)
}
