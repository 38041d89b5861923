//! The normalized order event every CRM adapter produces. Adapters parse their own payload
//! shape into these; the store applies them to orders and calls without knowing the CRM.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{DealId, EmailAddress, Money, Source};

/// What the event does to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The deal was won: an order exists and its first call must happen.
    Created,
    /// Facts of an existing order changed (amount, rep, items).
    Updated,
    /// The order no longer stands (deal lost, deleted, moved out of closed-won).
    Cancelled,
}

impl Transition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::Created => "created",
            Transition::Updated => "updated",
            Transition::Cancelled => "cancelled",
        }
    }
}

pub use crate::domain::OrderedItem;

/// What the CRM told us about the order; every field is optional because most CRMs send only
/// what changed. `None` means "not stated", never "cleared".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_email: Option<EmailAddress>,
    /// The CRM's own id for the deal owner (HubSpot owner id, Pipedrive user id, Salesforce
    /// OwnerId); resolved to a rep through the rep directory's CRM ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// `Some` replaces the ordered items; `None` leaves them as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_items: Option<Vec<OrderedItem>>,
}

/// One order event from a CRM, verified and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeEvent {
    pub source: Source,
    /// Unique per CRM event (the CRM's event or notification id); a redelivery carries the same key.
    pub dedupe_key: String,
    /// The CRM's own name for the event, for the record (`order.created`, `deal.propertyChange`).
    pub event_type: String,
    pub deal_id: DealId,
    pub transition: Transition,
    /// When the change happened in the CRM; orders apply events in this order, whatever the
    /// order of arrival.
    pub occurred_at: DateTime<Utc>,
    pub facts: OrderFacts,
    /// This event's own part of the request body, kept as received.
    pub raw: String,
}

/// Why a request's body could not be turned into events: the HTTP layer maps `Malformed` to
/// 400 and `Invalid` to 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl PayloadError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PayloadError::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// The event times a request may carry, around firstcall's clock at arrival. A CRM retries for
/// up to a day and an admin may replay a few weeks after an outage, so older events are taken up
/// to `webhooks.max_event_age_days`; anything older (a zeroed or mistyped time, a deal won years
/// ago) would open a call that is overdue before it starts. Times slightly ahead (a CRM clock
/// running fast) are taken and applied as "now"; more than [`EventWindow::MAX_AHEAD`] ahead is
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindow {
    pub now: DateTime<Utc>,
    pub max_age: TimeDelta,
}

impl EventWindow {
    /// How far ahead of firstcall's clock an event time may be.
    pub const MAX_AHEAD: TimeDelta = TimeDelta::days(1);

    pub fn new(now: DateTime<Utc>, max_age_days: u32) -> EventWindow {
        EventWindow { now, max_age: TimeDelta::days(i64::from(max_age_days)) }
    }

    /// `at` if it lies in the window; otherwise `Invalid` naming `field`.
    pub fn check(&self, at: DateTime<Utc>, field: impl Into<String>) -> Result<DateTime<Utc>, PayloadError> {
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if self.now.checked_sub_signed(self.max_age).is_some_and(|oldest| at < oldest) {
            return Err(PayloadError::invalid(
                field,
                format!(
                    "{} is more than {} days before now ({}); older events are refused (webhooks.max_event_age_days)",
                    stamp(at),
                    self.max_age.num_days(),
                    stamp(self.now)
                ),
            ));
        }
        if at > self.now + Self::MAX_AHEAD {
            return Err(PayloadError::invalid(
                field,
                format!("{} is more than 24 hours after now ({}); check the sending system's clock", stamp(at), stamp(self.now)),
            ));
        }
        Ok(at)
    }
}
