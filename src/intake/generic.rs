//! The generic signed JSON order event, for CRMs and order systems firstcall has no adapter for.
//!
//! `POST /webhooks/generic` with `Content-Type: application/json`, signed with
//! `X-Firstcall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//! (see [`super::signature::sign_generic`]; the time must be within 300 s of firstcall's clock).
//! The body is one event or a JSON array of up to 1000 events:
//!
//! ```json
//! {
//!   "id": "evt_01HV6M3T9QX4N2B7",
//!   "type": "order.created",
//!   "occurred_at": "2026-03-02T14:05:00Z",
//!   "order": {
//!     "deal_id": "D-1042",
//!     "amount": "48000.00",
//!     "currency": "USD",
//!     "rep_email": "ana.silva@example.com",
//!     "owner_id": "u-417",
//!     "segment": "enterprise",
//!     "account_name": "Acme GmbH",
//!     "line_items": [
//!       { "sku": "PLAT-ENT", "name": "Platform, Enterprise edition", "quantity": 1, "unit_price": "36000.00" },
//!       { "sku": "ONB-PRO", "name": "Onboarding package", "quantity": 2, "unit_price": "6000.00" }
//!     ]
//!   }
//! }
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `id` | yes | unique per event; a redelivery must carry the same id (it is the deduplication key) |
//! | `type` | yes | `order.created` (the deal was won), `order.updated` (facts changed), `order.cancelled` (the order no longer stands) |
//! | `occurred_at` | yes | RFC 3339 time of the change in the sending system; events apply in this order; at most `webhooks.max_event_age_days` old and 24 h ahead |
//! | `order.deal_id` | yes | the deal's id in the sending system (string or integer) |
//! | `order.amount` | no | decimal number or string, in `order.currency` (required with an amount or unit prices) |
//! | `order.rep_email` / `order.owner_id` | no | the rep, by email or by the sending system's user id |
//! | `order.segment`, `order.account_name` | no | used to pick the schedule and in the recap |
//! | `order.line_items` | no | replaces the ordered items: `name` and `quantity` required, `sku` and `unit_price` optional |
//!
//! Fields not stated (absent, `null` or `""`) leave what firstcall knows unchanged. Unknown fields
//! are ignored. `order.cancelled` needs only `order.deal_id`.

use serde_json::Value;

use super::event::{EventWindow, IntakeEvent, OrderFacts, OrderedItem, PayloadError, Transition};
use super::json::{Obj, Shape, split_events};
use crate::domain::{Currency, DealId, EmailAddress, Money, Source, printable};

/// Longest accepted event id.
const MAX_ID_CHARS: usize = 200;

/// Parses a generic webhook body (one event or an array of them) into intake events; an
/// `occurred_at` outside `window` is refused.
pub fn parse_generic(body: &[u8], window: &EventWindow) -> Result<Vec<IntakeEvent>, PayloadError> {
    split_events(body, Shape::OneOrMany)?.into_iter().map(|e| parse_event(&e.value, e.path, e.raw, window)).collect()
}

fn parse_event(value: &Value, path: String, raw: &str, window: &EventWindow) -> Result<IntakeEvent, PayloadError> {
    let event = Obj::new(value, path)?;
    let id = event.req_str("id")?;
    if id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(event.invalid("id", format!("must be at most {MAX_ID_CHARS} printable characters")));
    }
    let event_type = event.req_str("type")?;
    let transition = match event_type {
        "order.created" => Transition::Created,
        "order.updated" => Transition::Updated,
        "order.cancelled" => Transition::Cancelled,
        other => {
            return Err(event.invalid(
                "type",
                format!("unknown event type '{}': expected order.created, order.updated or order.cancelled", printable(other)),
            ));
        }
    };
    let occurred_at = window.check(event.req_rfc3339("occurred_at")?, event.path_of("occurred_at"))?;
    let order = event.req_obj("order")?;
    let deal_id = order.req_id("deal_id")?;
    let deal_id = DealId::parse(&deal_id).map_err(|e| order.invalid("deal_id", e.0))?;
    let facts = parse_facts(&order)?;
    Ok(IntakeEvent {
        source: Source::Generic,
        dedupe_key: id.to_string(),
        event_type: event_type.to_string(),
        deal_id,
        transition,
        occurred_at,
        facts,
        raw: raw.to_string(),
    })
}

fn parse_facts(order: &Obj<'_>) -> Result<OrderFacts, PayloadError> {
    let currency = order.opt_str("currency")?.map(|c| Currency::parse(c).map_err(|e| order.invalid("currency", e.0))).transpose()?;
    let needs_currency = |field: &str| order.invalid("currency", format!("is required when {field} is given"));
    let amount = match order.get("amount") {
        None => None,
        Some(v) => {
            let currency = currency.clone().ok_or_else(|| needs_currency(&order.path_of("amount")))?;
            let money = Money::from_json(v, currency).map_err(|e| order.invalid("amount", e.0))?;
            if money.minor < 0 {
                return Err(order.invalid("amount", "must not be negative"));
            }
            Some(money)
        }
    };
    let rep_email =
        order.opt_str("rep_email")?.map(|e| EmailAddress::parse(e).map_err(|err| order.invalid("rep_email", err.0))).transpose()?;
    let line_items = match order.get("line_items") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_item(item, format!("{}[{i}]", order.path_of("line_items")), currency.as_ref(), &needs_currency))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(order.invalid("line_items", "expected an array")),
    };
    Ok(OrderFacts {
        amount,
        rep_email,
        owner_ref: order.opt_id("owner_id")?,
        segment: order.opt_str("segment")?.map(str::to_string),
        account_name: order.opt_str("account_name")?.map(str::to_string),
        line_items,
    })
}

fn parse_item(
    value: &Value,
    path: String,
    currency: Option<&Currency>,
    needs_currency: &dyn Fn(&str) -> PayloadError,
) -> Result<OrderedItem, PayloadError> {
    let item = Obj::new(value, path)?;
    let quantity = parse_quantity(&item)?;
    let unit_price = match item.get("unit_price") {
        None => None,
        Some(v) => {
            let currency = currency.cloned().ok_or_else(|| needs_currency(&item.path_of("unit_price")))?;
            Some(Money::from_json(v, currency).map_err(|e| item.invalid("unit_price", e.0))?)
        }
    };
    Ok(OrderedItem {
        sku: item.opt_str("sku")?.unwrap_or_default().to_string(),
        name: item.req_str("name")?.to_string(),
        quantity,
        unit_price,
    })
}

fn parse_quantity(item: &Obj<'_>) -> Result<f64, PayloadError> {
    let quantity = match item.get("quantity") {
        None => return Err(item.invalid("quantity", "is required")),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match quantity {
        Some(q) if q.is_finite() && q > 0.0 => Ok(q),
        _ => Err(item.invalid("quantity", "must be a number greater than 0")),
    }
}

#[cfg(test)]
mod tests;
