//! HubSpot webhook batches: a JSON array of up to 100 notifications from the app's webhook
//! subscriptions (legacy `deal.*` subscription types, or the generic `object.*` ones with
//! `objectTypeId` `0-3`, deals). Only deal events change orders:
//!
//! | notification | event |
//! |---|---|
//! | `deal.propertyChange` of `dealstage` to a stage in `closed_won_stages` | `Created` |
//! | `deal.propertyChange` of `dealstage` to any other stage | `Cancelled` (moved out of closed-won; for a deal never won the store only records the stage change, so an older "won" arriving late stays cancelled) |
//! | `deal.deletion` | `Cancelled` |
//! | `deal.propertyChange` of `hubspot_owner_id` | `Updated`, the new owner |
//! | `deal.propertyChange` of `amount` | `Updated`, the amount in `default_currency` (ignored without one) |
//!
//! Everything else (contacts, companies, other deal properties, creations, merges, restores) is
//! acknowledged and ignored. HubSpot does not keep order within or across batches, so each event
//! carries `occurredAt` and the store applies them in that order.
//!
//! HubSpot documents `eventId` as not guaranteed unique, so the deduplication key is
//! `<portalId>:<subscriptionId>:<eventId>`: identical on every redelivery of a notification, and
//! distinct for two notifications that happen to share an event id.

use serde_json::Value;

use super::event::{EventWindow, IntakeEvent, OrderFacts, PayloadError, Transition};
use super::json::{Obj, Shape, split_events};
use crate::config::HubspotWebhook;
use crate::domain::{DealId, Money, Source, printable};

/// HubSpot's object type id for deals in the generic `object.*` subscriptions.
const DEAL_OBJECT_TYPE_ID: &str = "0-3";

/// Parses a HubSpot webhook batch into intake events; notifications that concern no order
/// produce no event. An `occurredAt` outside `window` is refused.
pub fn parse_hubspot(body: &[u8], cfg: &HubspotWebhook, window: &EventWindow) -> Result<Vec<IntakeEvent>, PayloadError> {
    let mut events = Vec::new();
    for e in split_events(body, Shape::Many)? {
        let n = Obj::new(&e.value, e.path)?;
        if let Some(event) = parse_notification(&n, e.raw, cfg, window)? {
            events.push(event);
        }
    }
    Ok(events)
}

fn parse_notification(n: &Obj<'_>, raw: &str, cfg: &HubspotWebhook, window: &EventWindow) -> Result<Option<IntakeEvent>, PayloadError> {
    let subscription_type = n.req_str("subscriptionType")?;
    let event_id = n.req_id("eventId")?;
    let Some(action) = deal_action(n, subscription_type)? else {
        return Ok(None);
    };
    let (transition, facts) = match action {
        "deletion" => (Transition::Cancelled, OrderFacts::default()),
        "propertyChange" => match property_change(n, cfg)? {
            Some(change) => change,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let object_id = n.req_id("objectId")?;
    let deal_id = DealId::parse(&object_id).map_err(|e| n.invalid("objectId", e.0))?;
    let dedupe_key = format!("{}:{}:{}", n.req_id("portalId")?, n.req_id("subscriptionId")?, event_id);
    Ok(Some(IntakeEvent {
        source: Source::Hubspot,
        dedupe_key,
        event_type: subscription_type.to_string(),
        deal_id,
        transition,
        occurred_at: window.check(n.req_millis("occurredAt")?, n.path_of("occurredAt"))?,
        facts,
        raw: raw.to_string(),
    }))
}

/// The action of a deal notification (`propertyChange`, `deletion`, …), or `None` for any other
/// object.
fn deal_action<'a>(n: &Obj<'_>, subscription_type: &'a str) -> Result<Option<&'a str>, PayloadError> {
    if let Some(action) = subscription_type.strip_prefix("deal.") {
        return Ok(Some(action));
    }
    if let Some(action) = subscription_type.strip_prefix("object.") {
        return Ok((n.opt_id("objectTypeId")?.as_deref() == Some(DEAL_OBJECT_TYPE_ID)).then_some(action));
    }
    Ok(None)
}

/// What a deal property change means for the order, if anything.
fn property_change(n: &Obj<'_>, cfg: &HubspotWebhook) -> Result<Option<(Transition, OrderFacts)>, PayloadError> {
    let property = n.req_str("propertyName")?;
    let value = property_value(n)?;
    Ok(match property {
        "dealstage" => {
            let stage = value.ok_or_else(|| n.invalid("propertyValue", "is required for a dealstage change"))?;
            let transition = if cfg.closed_won_stages.iter().any(|s| s == &stage) { Transition::Created } else { Transition::Cancelled };
            Some((transition, OrderFacts::default()))
        }
        // An owner or amount being cleared states nothing firstcall can apply.
        "hubspot_owner_id" => value.map(|owner| (Transition::Updated, OrderFacts { owner_ref: Some(owner), ..OrderFacts::default() })),
        "amount" => match (value, &cfg.default_currency) {
            (Some(amount), Some(currency)) => {
                let amount = Money::parse_decimal(&amount, currency.clone())
                    .map_err(|e| n.invalid("propertyValue", format!("amount {}: {}", printable(&amount), e.0)))?;
                Some((Transition::Updated, OrderFacts { amount: Some(amount), ..OrderFacts::default() }))
            }
            _ => None,
        },
        _ => None,
    })
}

/// `propertyValue` as text: HubSpot sends property values as strings; numbers are accepted too.
fn property_value(n: &Obj<'_>) -> Result<Option<String>, PayloadError> {
    match n.get("propertyValue") {
        Some(Value::Number(x)) => Ok(Some(x.to_string())),
        _ => Ok(n.opt_str("propertyValue")?.map(str::to_string)),
    }
}

#[cfg(test)]
mod tests;
