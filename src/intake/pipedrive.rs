//! Pipedrive webhooks v2: one JSON object per request, `meta` describing the change (`action`
//! create/change/delete, `entity`, `entity_id`, `id`, `timestamp`, `version` "2.0"), `data` the
//! object as it is now (`null` on delete) and `previous` the changed fields' old values (`null`
//! on create, the last state on delete). Only deals change orders:
//!
//! | change | event |
//! |---|---|
//! | a deal created as `won`, or its `status` changed to `won` | `Created`, with value + currency, owner, title |
//! | a deal's `status` changed to `lost` or `deleted`, or from `won` back to `open` | `Cancelled` |
//! | `delete` of a deal | `Cancelled` |
//! | a won deal's value, currency, owner, title or organization changed | `Updated` |
//!
//! Other entities and other changes are acknowledged and ignored. Pipedrive v2 signs nothing: the
//! request is authenticated by basic auth ([`super::signature::verify_basic_auth`]). The
//! deduplication key is `meta.id`, which Pipedrive keeps across its retries.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::event::{EventWindow, IntakeEvent, OrderFacts, PayloadError, Transition};
use super::json::{Obj, Shape, parse_rfc3339, split_events};
use crate::domain::{Currency, DealId, Money, Source, printable};

/// Fields of a deal whose change matters to an order already won.
const ORDER_FIELDS: [&str; 6] = ["value", "currency", "owner_id", "title", "org_id", "org_name"];

/// Parses a Pipedrive v2 webhook body; a notification that concerns no order produces no event.
/// A `meta.timestamp` outside `window` is refused.
pub fn parse_pipedrive(body: &[u8], window: &EventWindow) -> Result<Vec<IntakeEvent>, PayloadError> {
    let mut events = Vec::new();
    for e in split_events(body, Shape::One)? {
        let root = Obj::new(&e.value, e.path)?;
        if let Some(event) = parse_notification(&root, e.raw, window)? {
            events.push(event);
        }
    }
    Ok(events)
}

fn parse_notification(root: &Obj<'_>, raw: &str, window: &EventWindow) -> Result<Option<IntakeEvent>, PayloadError> {
    let meta = root.req_obj("meta")?;
    check_version(root, &meta)?;
    let action = meta.req_str("action")?;
    let entity = meta.req_str("entity")?;
    let id = meta.req_id("id")?;
    if entity != "deal" {
        return Ok(None);
    }
    let data = root.opt_obj("data")?;
    let previous = root.opt_obj("previous")?;
    let (transition, facts) = match action {
        "delete" => (Transition::Cancelled, OrderFacts::default()),
        "create" | "change" => {
            let data = data.as_ref().ok_or_else(|| root.invalid("data", format!("is required for a {action}")))?;
            match deal_transition(action, data, previous.as_ref())? {
                Some(Transition::Cancelled) => (Transition::Cancelled, OrderFacts::default()),
                Some(transition) => (transition, deal_facts(data)?),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let deal_id = match meta.opt_id("entity_id")? {
        Some(id) => id,
        None => [data.as_ref(), previous.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|o| o.opt_id("id").ok().flatten())
            .ok_or_else(|| meta.invalid("entity_id", "is required"))?,
    };
    let deal_id = DealId::parse(&deal_id).map_err(|e| meta.invalid("entity_id", e.0))?;
    Ok(Some(IntakeEvent {
        source: Source::Pipedrive,
        dedupe_key: id,
        event_type: format!("{action}.{entity}"),
        deal_id,
        transition,
        occurred_at: window.check(timestamp(&meta)?, meta.path_of("timestamp"))?,
        facts,
        raw: raw.to_string(),
    }))
}

/// Refuses v1 payloads (their shape differs) with a message saying how to fix the webhook.
fn check_version(root: &Obj<'_>, meta: &Obj<'_>) -> Result<(), PayloadError> {
    let fix = "create the Pipedrive webhook with version 2.0";
    if root.has("v") || meta.has("v") {
        return Err(meta.invalid("version", format!("this is a webhooks v1 payload; {fix}")));
    }
    let version = meta.opt_id("version")?.ok_or_else(|| meta.invalid("version", format!("is required; {fix}")))?;
    if version == "2" || version.starts_with("2.") {
        Ok(())
    } else {
        Err(meta.invalid("version", format!("version {} is not supported; {fix}", printable(&version))))
    }
}

/// What a deal create/change means for its order, if anything.
fn deal_transition(action: &str, data: &Obj<'_>, previous: Option<&Obj<'_>>) -> Result<Option<Transition>, PayloadError> {
    let status = data.opt_str("status")?;
    let previous_status = match previous {
        Some(p) => p.opt_str("status")?,
        None => None,
    };
    let status_changed = previous_status.is_some_and(|p| Some(p) != status);
    let deleted_now =
        data.get("is_deleted") == Some(&Value::Bool(true)) && previous.is_some_and(|p| p.get("is_deleted") == Some(&Value::Bool(false)));
    Ok(match (action, status) {
        (_, _) if deleted_now => Some(Transition::Cancelled),
        ("create", Some("won")) => Some(Transition::Created),
        ("create", _) => None,
        (_, Some("won")) if status_changed => Some(Transition::Created),
        (_, Some("won")) => {
            let order_changed = previous.is_none_or(|p| ORDER_FIELDS.iter().any(|f| p.has(f)));
            order_changed.then_some(Transition::Updated)
        }
        (_, Some("lost" | "deleted")) if status_changed => Some(Transition::Cancelled),
        (_, Some("open")) if previous_status == Some("won") => Some(Transition::Cancelled),
        _ => None,
    })
}

/// The order facts a deal states: amount (value + currency), owner, and a name for the account.
fn deal_facts(data: &Obj<'_>) -> Result<OrderFacts, PayloadError> {
    let currency = data.opt_str("currency")?.map(|c| Currency::parse(c).map_err(|e| data.invalid("currency", e.0))).transpose()?;
    let amount = match (data.get("value"), currency) {
        (Some(value), Some(currency)) => Some(Money::from_json(value, currency).map_err(|e| data.invalid("value", e.0))?),
        _ => None,
    };
    let account_name = match data.opt_str("org_name")? {
        Some(org) => Some(org.to_string()),
        None => data.opt_str("title")?.map(str::to_string),
    };
    Ok(OrderFacts { amount, owner_ref: data.opt_id("owner_id")?, account_name, ..OrderFacts::default() })
}

/// `meta.timestamp`: an RFC 3339 time in v2; Unix seconds (or milliseconds) are accepted too.
fn timestamp(meta: &Obj<'_>) -> Result<DateTime<Utc>, PayloadError> {
    let bad = || meta.invalid("timestamp", "expected an RFC 3339 time such as 2026-03-02T14:05:00.000Z");
    match meta.get("timestamp") {
        None => Err(meta.invalid("timestamp", "is required")),
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) => Ok(t),
            None => s.trim().parse::<i64>().ok().and_then(from_unix).ok_or_else(bad),
        },
        Some(Value::Number(n)) => n.as_i64().and_then(from_unix).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// Unix seconds, or milliseconds when the number is too large to be seconds of this era.
fn from_unix(n: i64) -> Option<DateTime<Utc>> {
    if n.abs() < 100_000_000_000 { DateTime::from_timestamp(n, 0) } else { DateTime::from_timestamp_millis(n) }
}

#[cfg(test)]
mod tests;
