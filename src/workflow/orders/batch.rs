//! The set-based path for a group of webhook requests committed together. The common case of
//! a burst, a won deal firstcall has never seen, is written with one multi-row statement per
//! table for the whole group: orders, raw events (with their outcome already known), calls,
//! audit rows, first timers. Everything else (a deal already known, several events for one
//! deal in the group, updates, cancellations, out-of-order events) goes through the per-event
//! path (`apply`), in arrival order, inside the same transaction.
//!
//! Rows are written in key order, so two groups touching the same deals lock them in the same
//! order and cannot deadlock each other.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, TryInsertResult};

use super::EventResult;
use super::apply as store;
use crate::domain::Source;
use crate::intake::event::{IntakeEvent, Transition};
use crate::workflow::FirstCall;
use entity::orders::OrderStatus;
use entity::{orders, webhook_events};

/// Why a group was not applied set-wise.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The group holds something the set-wise path does not handle; apply it request by
    /// request.
    #[error("{0}")]
    NotSetWise(String),
}

struct Item<'a> {
    ev: &'a IntakeEvent,
    at: DateTime<Utc>,
    /// The stored raw event, when this delivery is the first of its key (and not of a new deal).
    event_id: Option<i64>,
}

/// Applies every request of the group inside `db`'s transaction; returns each request's
/// results in its events' order.
pub async fn apply_group(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    requests: &[&[IntakeEvent]],
    now: DateTime<Utc>,
) -> Result<Vec<Vec<EventResult>>, GroupError> {
    let mut items: Vec<Item> =
        requests.iter().flat_map(|r| r.iter()).map(|ev| Item { ev, at: store::occurred(ev, now), event_id: None }).collect();

    // A Created that is the only delivery for its deal in the group may be for a deal firstcall
    // has never seen: its order is inserted first, already open. If the order exists, the event
    // goes the per-event way. (A redelivered event always finds its order: its first delivery
    // created it.)
    let mut per_deal: HashMap<(Source, &str), usize> = HashMap::new();
    for it in &items {
        *per_deal.entry((it.ev.source, it.ev.deal_id.as_str())).or_default() += 1;
    }
    let candidates: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].ev.transition == Transition::Created && per_deal[&(items[i].ev.source, items[i].ev.deal_id.as_str())] == 1)
        .collect();
    let new_orders = insert_new_orders(db, &items, &candidates, now).await?;

    // Every raw event is stored once, those of new deals with their outcome already known; for
    // the others the unique key is the gate, as in the per-event path.
    gate(db, &mut items, &new_orders, now).await?;
    let opened = open_calls(db, fc, &items, &new_orders, now).await?;

    let mut results: Vec<EventResult> = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let r = match (opened.get(&i), it.event_id) {
            (Some(call_id), _) => {
                EventResult { id: it.ev.dedupe_key.clone(), deal_id: it.ev.deal_id.to_string(), outcome: "opened", call_id: Some(*call_id) }
            }
            (None, None) => {
                EventResult { id: it.ev.dedupe_key.clone(), deal_id: it.ev.deal_id.to_string(), outcome: "duplicate", call_id: None }
            }
            (None, Some(event_id)) => store::apply_inserted(db, fc, it.ev, event_id, it.at, now).await?,
        };
        results.push(r);
    }

    let mut out = Vec::with_capacity(requests.len());
    let mut rest = results.into_iter();
    for r in requests {
        out.push(rest.by_ref().take(r.len()).collect());
    }
    Ok(out)
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

/// Stores every raw event whose key is new and notes its id; a later delivery of the same key,
/// in this group or before, finds it taken and is a duplicate. Events of new deals are stored
/// with their outcome and order at once.
async fn gate(
    db: &impl ConnectionTrait,
    items: &mut [Item<'_>],
    new_orders: &HashMap<usize, orders::Model>,
    now: DateTime<Utc>,
) -> Result<(), GroupError> {
    #[derive(FromQueryResult)]
    struct Stored {
        id: i64,
        source: String,
        dedupe_key: String,
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| (items[a].ev.source, &items[a].ev.dedupe_key).cmp(&(items[b].ev.source, &items[b].ev.dedupe_key)));
    let backend = db.get_database_backend();
    let mut ids: HashMap<(String, String), i64> = HashMap::new();
    for chunk in order.chunks(500) {
        let rows = chunk.iter().map(|&i| {
            let mut row = store::event_row(items[i].ev, items[i].at, now);
            if let Some(o) = new_orders.get(&i) {
                row.outcome = Set("opened".into());
                row.order_id = Set(Some(o.id));
            }
            row
        });
        let mut insert = webhook_events::Entity::insert_many(rows)
            .on_conflict(OnConflict::columns([webhook_events::Column::Source, webhook_events::Column::DedupeKey]).do_nothing().to_owned());
        // Only the keys come back, not the payloads.
        let q = sea_orm::QueryTrait::query(&mut insert);
        q.returning(sea_orm::sea_query::Query::returning().columns([
            webhook_events::Column::Id,
            webhook_events::Column::Source,
            webhook_events::Column::DedupeKey,
        ]));
        let statement = backend.build(&*q);
        for r in Stored::find_by_statement(statement).all(db).await? {
            ids.insert((r.source, r.dedupe_key), r.id);
        }
    }
    for (i, it) in items.iter_mut().enumerate() {
        let id = ids.remove(&(it.ev.source.as_str().to_string(), it.ev.dedupe_key.clone()));
        if new_orders.contains_key(&i) {
            if id.is_none() {
                // An event id seen before, now for a deal never seen: not a redelivery. Let the
                // per-event path sort it out.
                return Err(GroupError::NotSetWise(format!("event {} was seen before for another deal", it.ev.dedupe_key)));
            }
        } else {
            // The first delivery of a key takes its id; the rest find it gone.
            it.event_id = id;
        }
    }
    Ok(())
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
