//! The per-event path: each event of a request in order, its raw row gated by the unique
//! `(source, dedupe_key)`, then the order's transition and the workflow's change.
//!
//! Events may arrive out of order. Each order remembers when the event that set its status
//! happened (`status_at`): an older event never overrides a newer status, and facts from an
//! older event only fill in what is still unknown.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};

use super::EventResult;
use crate::intake::event::{IntakeEvent, Transition};
use crate::workflow::{FirstCall, calls};
use entity::orders::OrderStatus;
use entity::{orders, webhook_events};

/// A stored event's outcome until the engine has applied it.
pub const PENDING: &str = "pending";

/// A request's events, in order.
pub(super) async fn apply_all(
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
pub(super) async fn apply_inserted(
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
        .col_expr(webhook_events::Column::AppliedAt, sea_orm::sea_query::Expr::value(now))
        .filter(webhook_events::Column::Id.eq(event_id))
        .exec(db)
        .await?;
    Ok(EventResult { id: ev.dedupe_key.clone(), deal_id: ev.deal_id.to_string(), outcome, call_id })
}

/// When the event happened, as applied: never in the future, in the database's precision.
pub(super) fn occurred(ev: &IntakeEvent, now: DateTime<Utc>) -> DateTime<Utc> {
    crate::clock::truncate(ev.occurred_at.min(now))
}

/// The raw event's row, pending: with what applying it needs, before its outcome is known.
pub(super) fn event_row(ev: &IntakeEvent, occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> webhook_events::ActiveModel {
    webhook_events::ActiveModel {
        source: Set(ev.source.as_str().into()),
        dedupe_key: Set(ev.dedupe_key.clone()),
        event_type: Set(ev.event_type.clone()),
        deal_id: Set(Some(ev.deal_id.to_string())),
        occurred_at: Set(Some(occurred_at)),
        received_at: Set(now),
        payload: Set(ev.raw.clone()),
        outcome: Set(PENDING.into()),
        order_id: Set(None),
        transition: Set(Some(ev.transition.as_str().into())),
        facts: Set(Some(serde_json::to_string(&ev.facts).unwrap_or_else(|_| "{}".into()))),
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
    let before_told = (order.amount_minor, order.currency.clone(), order.line_items.clone());
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
    let mut am = am;
    // An event that restates the current status (won again, lost again) is the newest word on it:
    // an older event arriving later must not undo it.
    if new_status.is_none() && matches!(outcome, "recorded") && ev.transition != Transition::Updated && at > order.status_at {
        am.status_at = Set(at);
    }
    let order = write_order(db, am, status, new_status, at, ev.transition.as_str(), &actor, now).await?;

    let call_id = match (new_status, outcome) {
        (Some(Open), _) => Some(crate::workflow::opening::open_for_order(db, fc, &order, &actor, now).await?.id),
        (Some(Cancelled), _) if status == Open => calls::cancel_for_order(db, fc, &order, &actor, now).await?,
        (None, "updated" | "recorded") if order.status == Open => {
            let changed =
                order.rep_email != before_rep || (order.amount_minor, order.currency.clone(), order.segment.clone()) != before_amount;
            let replanned = if changed { calls::replan_for_order(db, fc, &order, &actor, now).await? } else { None };
            // What was ordered changed after the rep's recap went out: they hear what.
            if (order.amount_minor, order.currency.clone(), order.line_items.clone()) != before_told {
                crate::workflow::changes::order_changed(db, fc, order.id, now).await?;
            }
            // The deal changed in the CRM: read it again.
            if fc.enriches(ev.source)
                && let Some(call) = calls::open_call_of_order(db, order.id).await?
            {
                let job = crate::workflow::enrich::job(call.id, ev.source, &order.deal_id, now);
                crate::engine::enqueue(db, job, fc.crm_attempts(), now).await?;
            }
            replanned
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
    // A fact stated by this event replaces the stored one if no newer event stated it.
    let newest = |stated_at: Option<DateTime<Utc>>| stated_at.is_none_or(|t| at >= t);
    let mut am = order.clone().into_active_model();
    if let Some(v) = rep
        && newest(order.rep_at)
    {
        am.rep_email = Set(Some(v));
        am.rep_at = Set(Some(at));
    }
    if let Some(v) = f.segment.clone()
        && newest(order.segment_at)
    {
        am.segment = Set(Some(v));
        am.segment_at = Set(Some(at));
    }
    if let Some(v) = f.account_name.clone()
        && newest(order.account_at)
    {
        am.account_name = Set(Some(v));
        am.account_at = Set(Some(at));
    }
    if let Some(m) = &f.amount
        && newest(order.amount_at)
    {
        am.amount_minor = Set(Some(m.minor));
        am.currency = Set(Some(m.currency.to_string()));
        am.amount_at = Set(Some(at));
    }
    if let Some(items) = &f.line_items
        && newest(order.line_items_at)
    {
        am.line_items = Set(serde_json::to_value(items).unwrap_or_else(|_| serde_json::json!([])));
        am.line_items_at = Set(Some(at));
    }
    if order.status == OrderStatus::New || at > order.last_event_at {
        am.last_event_at = Set(at);
    }
    Ok(am)
}
