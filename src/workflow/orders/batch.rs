//! The set-based path for a batch of stored events the engine applies together. The common
//! case of a burst, a won deal firstcall has never seen, is written with one multi-row
//! statement per table for the whole batch: orders, the events' outcomes, audit rows, calls,
//! first timers. Everything else (a deal already known, several events for one deal in the
//! batch, updates, cancellations, out-of-order events) goes through the per-event path
//! (`apply`), in the order the events were stored, inside the same transaction.
//!
//! Rows are written in key order, so a batch and another writer touching the same deals lock
//! them in the same order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TryInsertResult};

use super::EventResult;
use super::apply as store;
use crate::domain::Source;
use crate::intake::event::{IntakeEvent, Transition};
use crate::workflow::FirstCall;
use entity::orders::OrderStatus;
use entity::{orders, webhook_events};

/// A stored event, as the applier read it back.
pub struct StoredEvent {
    /// Its row in `webhook_events`.
    pub id: i64,
    pub ev: IntakeEvent,
    /// When it happened, as stored (never after it was received).
    pub at: DateTime<Utc>,
}

struct Item<'a> {
    ev: &'a IntakeEvent,
    at: DateTime<Utc>,
}

/// Applies stored events, in the order given, inside `db`'s transaction; returns their results
/// in that order.
pub async fn apply_stored(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    stored: &[StoredEvent],
    now: DateTime<Utc>,
) -> Result<Vec<EventResult>, DbErr> {
    let items: Vec<Item> = stored.iter().map(|s| Item { ev: &s.ev, at: s.at }).collect();

    // A Created that is the only event for its deal in the batch may be for a deal firstcall
    // has never seen: its order is inserted first, already open. If the order exists, the event
    // goes the per-event way.
    let mut per_deal: HashMap<(Source, &str), usize> = HashMap::new();
    for it in &items {
        *per_deal.entry((it.ev.source, it.ev.deal_id.as_str())).or_default() += 1;
    }
    let candidates: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].ev.transition == Transition::Created && per_deal[&(items[i].ev.source, items[i].ev.deal_id.as_str())] == 1)
        .collect();
    let new_orders = insert_new_orders(db, &items, &candidates, now).await?;
    mark_opened(db, stored, &new_orders, now).await?;
    let opened = open_calls(db, fc, &items, &new_orders, now).await?;

    let mut results: Vec<EventResult> = Vec::with_capacity(items.len());
    for (i, s) in stored.iter().enumerate() {
        let r = match opened.get(&i) {
            Some(call_id) => {
                EventResult { id: s.ev.dedupe_key.clone(), deal_id: s.ev.deal_id.to_string(), outcome: "opened", call_id: Some(*call_id) }
            }
            None => store::apply_inserted(db, fc, &s.ev, s.id, s.at, now).await?,
        };
        results.push(r);
    }
    Ok(results)
}

/// Records the outcome of the events that opened new orders, with one statement.
async fn mark_opened(
    db: &impl ConnectionTrait,
    stored: &[StoredEvent],
    new_orders: &HashMap<usize, orders::Model>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut pairs: Vec<(i64, i64)> = new_orders.iter().map(|(i, o)| (stored[*i].id, o.id)).collect();
    pairs.sort_unstable();
    for chunk in pairs.chunks(500) {
        let order_of = chunk
            .iter()
            .fold(CaseStatement::new(), |case, (event, order)| case.case(webhook_events::Column::Id.eq(*event), Expr::val(*order)));
        webhook_events::Entity::update_many()
            .col_expr(webhook_events::Column::Outcome, Expr::value("opened"))
            .col_expr(webhook_events::Column::OrderId, order_of.into())
            .col_expr(webhook_events::Column::AppliedAt, Expr::value(now))
            .filter(webhook_events::Column::Id.is_in(chunk.iter().map(|(e, _)| *e)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Inserts, already open, the orders of candidate deals firstcall has never seen. Returns them
/// by item index; a deal whose order exists is left out.
async fn insert_new_orders(
    db: &impl ConnectionTrait,
    items: &[Item<'_>],
    candidates: &[usize],
    now: DateTime<Utc>,
) -> Result<HashMap<usize, orders::Model>, DbErr> {
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    let reps = owner_emails(db, items, candidates).await?;
    let mut sorted = candidates.to_vec();
    sorted.sort_by(|&a, &b| (items[a].ev.source, items[a].ev.deal_id.as_str()).cmp(&(items[b].ev.source, items[b].ev.deal_id.as_str())));
    let mut by_deal: HashMap<(String, String), orders::Model> = HashMap::new();
    for chunk in sorted.chunks(300) {
        let rows = chunk.iter().map(|&i| open_order_row(&items[i], reps.get(&i).cloned(), now));
        let inserted = orders::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([orders::Column::Source, orders::Column::DealId])
            .exec_with_returning_many(db)
            .await?;
        if let TryInsertResult::Inserted(models) = inserted {
            for m in models {
                by_deal.insert((m.source.clone(), m.deal_id.clone()), m);
            }
        }
    }
    Ok(candidates
        .iter()
        .filter_map(|&i| by_deal.remove(&(items[i].ev.source.as_str().to_string(), items[i].ev.deal_id.to_string())).map(|o| (i, o)))
        .collect())
}

/// Audits the new orders and opens their calls; returns the call ids by item index.
async fn open_calls(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    items: &[Item<'_>],
    new_orders: &HashMap<usize, orders::Model>,
    now: DateTime<Utc>,
) -> Result<HashMap<usize, i64>, DbErr> {
    let mut opened = HashMap::with_capacity(new_orders.len());
    // Audit rows name the webhook source as the actor; a group may mix sources.
    for source in Source::ALL {
        let mut of_source: Vec<(usize, &orders::Model)> =
            new_orders.iter().filter(|(i, _)| items[**i].ev.source == source).map(|(i, o)| (*i, o)).collect();
        if of_source.is_empty() {
            continue;
        }
        of_source.sort_by_key(|(i, _)| *i);
        let actor = format!("webhook:{source}");
        let changes = of_source.iter().map(|(i, o)| crate::audit::Change {
            actor: &actor,
            entity: "order",
            entity_id: o.id,
            action: items[*i].ev.transition.as_str(),
            from_state: Some(OrderStatus::New.as_str()),
            to_state: Some(OrderStatus::Open.as_str()),
            detail: None,
        });
        crate::audit::record_many(db, changes, now).await?;
        let models: Vec<&orders::Model> = of_source.iter().map(|(_, o)| *o).collect();
        let calls = crate::workflow::opening::open_many(db, fc, &models, &actor, now).await?;
        for ((i, _), c) in of_source.iter().zip(calls) {
            opened.insert(*i, c.id);
        }
    }
    Ok(opened)
}

/// The rep email of each candidate: stated on the order, or found by the CRM owner id in the
/// rep directory.
async fn owner_emails(db: &impl ConnectionTrait, items: &[Item<'_>], candidates: &[usize]) -> Result<HashMap<usize, String>, DbErr> {
    let mut out = HashMap::new();
    for source in Source::ALL {
        let owners: Vec<String> = candidates
            .iter()
            .filter(|&&i| items[i].ev.source == source && items[i].ev.facts.rep_email.is_none())
            .filter_map(|&i| items[i].ev.facts.owner_ref.clone())
            .collect();
        let found = if owners.is_empty() { HashMap::new() } else { crate::reps::emails_for_crm_users(db, source, &owners).await? };
        for &i in candidates.iter().filter(|&&i| items[i].ev.source == source) {
            let f = &items[i].ev.facts;
            let rep = f
                .rep_email
                .as_ref()
                .map(|e| e.to_string())
                .or_else(|| f.owner_ref.as_ref().and_then(|o| found.get(o)).map(|e| e.to_string()));
            if let Some(r) = rep {
                out.insert(i, r);
            }
        }
    }
    Ok(out)
}

/// A won deal's order row, open from the start, with what the event states.
fn open_order_row(it: &Item<'_>, rep: Option<String>, now: DateTime<Utc>) -> orders::ActiveModel {
    let f = &it.ev.facts;
    // Each fact the event states is as new as the event.
    let stated_at = |stated: bool| stated.then_some(it.at);
    let rep_stated = rep.is_some();
    orders::ActiveModel {
        source: Set(it.ev.source.as_str().into()),
        deal_id: Set(it.ev.deal_id.to_string()),
        status: Set(OrderStatus::Open),
        amount_minor: Set(f.amount.as_ref().map(|m| m.minor)),
        currency: Set(f.amount.as_ref().map(|m| m.currency.to_string())),
        rep_email: Set(rep),
        segment: Set(f.segment.clone()),
        account_name: Set(f.account_name.clone()),
        line_items: Set(f.line_items.as_ref().and_then(|l| serde_json::to_value(l).ok()).unwrap_or_else(|| serde_json::json!([]))),
        ordered_at: Set(Some(it.at)),
        status_at: Set(it.at),
        last_event_at: Set(it.at),
        rep_at: Set(stated_at(rep_stated)),
        amount_at: Set(stated_at(f.amount.is_some())),
        segment_at: Set(stated_at(f.segment.is_some())),
        account_at: Set(stated_at(f.account_name.is_some())),
        line_items_at: Set(stated_at(f.line_items.is_some())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}
