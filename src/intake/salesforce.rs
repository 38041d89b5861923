//! Salesforce outbound messages: a SOAP 1.1 envelope whose body holds one `notifications`
//! element (namespace `http://soap.sforce.com/2005/09/outbound`) with the sending
//! `OrganizationId`, the `ActionId` and up to 100 `Notification`s, each an `Id` and an
//! `sObject` of type `sf:Opportunity` carrying the fields chosen in the outbound message.
//!
//! | Opportunity | event |
//! |---|---|
//! | `IsWon` true | `Created`, with Amount (in `CurrencyIsoCode` or `default_currency`), OwnerId, the owner-email field, Name |
//! | `IsWon` false, `IsClosed` true | `Cancelled` (closed lost) |
//! | `IsWon` false, not closed | `Cancelled` (moved back out of Closed Won; the store ignores deals never won) |
//!
//! The outbound message must include `Id`, `IsWon` and `LastModifiedDate` (or `SystemModstamp`).
//! Each `Notification/Id` is the deduplication key: Salesforce may send a notification again.
//! Firstcall answers [`salesforce_ack`] once the events are stored, [`salesforce_fault`] otherwise
//! (Salesforce then retries for up to 24 hours).
//!
//! The org id is the message's only credential, so it is read first: [`read_outbound_message`]
//! checks only that the body is XML, [`OutboundMessage::organization_id`] reads the sender for
//! [`check_organization`], and only then does [`OutboundMessage::parse`] check the fields. A
//! sender from another org learns nothing about which fields a message needs.

use chrono::{DateTime, Utc};

use super::MAX_EVENTS_PER_REQUEST;
use super::event::{EventWindow, IntakeEvent, OrderFacts, PayloadError, Transition};
use super::json::{BODY, parse_rfc3339};
use super::signature::SignatureError;
use super::xml::{Element, parse_document};
use crate::config::SalesforceWebhook;
use crate::config::secrets::SecretBytes;
use crate::domain::{Currency, DealId, EmailAddress, Money, Source, printable};

const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// An outbound message, parsed: who sent it and the order events it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceBatch {
    /// The sending org, to be checked with [`check_organization`] before anything is stored.
    pub organization_id: String,
    /// The workflow rule or flow that sent the message.
    pub action_id: String,
    pub events: Vec<IntakeEvent>,
}

/// Parses an outbound message body; a `LastModifiedDate` (or `SystemModstamp`) outside `window`
/// is refused. The webhook reads the org first ([`read_outbound_message`]); this is both steps.
pub fn parse_salesforce(body: &[u8], cfg: &SalesforceWebhook, window: &EventWindow) -> Result<SalesforceBatch, PayloadError> {
    read_outbound_message(body)?.parse(cfg, window)
}

/// A body read as XML, its fields not yet checked.
pub struct OutboundMessage<'a> {
    text: &'a str,
    envelope: Element,
}

/// Reads the body as XML (400 when it is not), checking nothing about its fields yet.
pub fn read_outbound_message(body: &[u8]) -> Result<OutboundMessage<'_>, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::Malformed("the body is not UTF-8 text".into()))?;
    Ok(OutboundMessage { text, envelope: parse_document(text)? })
}

impl OutboundMessage<'_> {
    /// The `notifications` element, where a SOAP 1.1 outbound message has it.
    fn notifications(&self) -> Option<&Element> {
        if !self.envelope.is(SOAP_ENVELOPE_NS, "Envelope") {
            return None;
        }
        self.envelope
            .children
            .iter()
            .find(|c| c.is(SOAP_ENVELOPE_NS, "Body"))
            .and_then(|b| b.children.iter().find(|c| c.is(OUTBOUND_NS, "notifications")))
    }

    /// The sending org as the message states it (`notifications/OrganizationId`), for
    /// [`check_organization`]; `None` when the body is no outbound message or names no org.
    pub fn organization_id(&self) -> Option<&str> {
        self.notifications().and_then(|n| field(n, "OrganizationId"))
    }

    /// Checks every field and turns the notifications into events.
    pub fn parse(&self, cfg: &SalesforceWebhook, window: &EventWindow) -> Result<SalesforceBatch, PayloadError> {
        if !self.envelope.is(SOAP_ENVELOPE_NS, "Envelope") {
            return Err(PayloadError::invalid(BODY, "expected a SOAP 1.1 Envelope"));
        }
        let notifications = self
            .notifications()
            .ok_or_else(|| PayloadError::invalid("Body", format!("expected a notifications element in namespace {OUTBOUND_NS}")))?;
        let organization_id = required_text(notifications, "OrganizationId", "notifications")?;
        let action_id = required_text(notifications, "ActionId", "notifications")?;
        let items: Vec<&Element> = notifications.children_named("Notification").collect();
        if items.len() > MAX_EVENTS_PER_REQUEST {
            return Err(PayloadError::invalid(
                "notifications",
                format!("{} notifications in one message; at most {MAX_EVENTS_PER_REQUEST} are accepted", items.len()),
            ));
        }
        let events = items
            .into_iter()
            .enumerate()
            .map(|(i, n)| parse_notification(n, &format!("Notification[{i}]"), self.text, cfg, window))
            .collect::<Result<_, _>>()?;
        Ok(SalesforceBatch { organization_id, action_id, events })
    }
}

/// The text of a child element, trimmed; absent, `xsi:nil` or empty → `None`.
fn field<'a>(parent: &'a Element, name: &str) -> Option<&'a str> {
    let e = parent.child(name)?;
    if e.attr(XSI_NS, "nil").is_some_and(|v| v.trim() == "true") {
        return None;
    }
    let text = e.text.trim();
    (!text.is_empty()).then_some(text)
}

fn required_text(parent: &Element, name: &str, path: &str) -> Result<String, PayloadError> {
    field(parent, name).map(str::to_string).ok_or_else(|| PayloadError::invalid(format!("{path}.{name}"), "is required"))
}

fn parse_notification(
    n: &Element,
    path: &str,
    text: &str,
    cfg: &SalesforceWebhook,
    window: &EventWindow,
) -> Result<IntakeEvent, PayloadError> {
    let id = required_text(n, "Id", path)?;
    let so_path = format!("{path}.sObject");
    let at = |name: &str| format!("{so_path}.{name}");
    let so = n.child("sObject").ok_or_else(|| PayloadError::invalid(&so_path, "is required"))?;
    let so_type = so.attr(XSI_NS, "type").unwrap_or_default();
    let local_type = so_type.rsplit(':').next().unwrap_or_default();
    if local_type != "Opportunity" {
        return Err(PayloadError::invalid(
            &so_path,
            format!("expected an sf:Opportunity, got '{}'; send outbound messages of Opportunities only", printable(so_type)),
        ));
    }
    let deal_id = required_text(so, "Id", &so_path)?;
    let deal_id = DealId::parse(&deal_id).map_err(|e| PayloadError::invalid(at("Id"), e.0))?;
    let is_won = field(so, "IsWon")
        .ok_or_else(|| PayloadError::invalid(at("IsWon"), "is required; add IsWon to the outbound message's fields"))
        .and_then(|v| parse_bool(v).ok_or_else(|| PayloadError::invalid(at("IsWon"), "expected true or false")))?;
    let transition = if is_won { Transition::Created } else { Transition::Cancelled };
    let occurred_at = modified_at(so, &at, window)?;
    let facts = if is_won { opportunity_facts(so, cfg, &at)? } else { OrderFacts::default() };
    Ok(IntakeEvent {
        source: Source::Salesforce,
        dedupe_key: id,
        event_type: format!("{local_type}Notification"),
        deal_id,
        transition,
        occurred_at,
        facts,
        raw: text.get(n.span.0..n.span.1).unwrap_or_default().to_string(),
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn modified_at(so: &Element, at: &dyn Fn(&str) -> String, window: &EventWindow) -> Result<DateTime<Utc>, PayloadError> {
    for name in ["LastModifiedDate", "SystemModstamp"] {
        if let Some(v) = field(so, name) {
            let t =
                parse_rfc3339(v).ok_or_else(|| PayloadError::invalid(at(name), format!("'{}' is not an xsd:dateTime", printable(v))))?;
            return window.check(t, at(name));
        }
    }
    Err(PayloadError::invalid(at("LastModifiedDate"), "is required; add LastModifiedDate to the outbound message's fields"))
}

fn opportunity_facts(so: &Element, cfg: &SalesforceWebhook, at: &dyn Fn(&str) -> String) -> Result<OrderFacts, PayloadError> {
    let currency = match field(so, "CurrencyIsoCode") {
        Some(c) => Some(Currency::parse(c).map_err(|e| PayloadError::invalid(at("CurrencyIsoCode"), e.0))?),
        None => cfg.default_currency.clone(),
    };
    let amount = match (field(so, "Amount"), currency) {
        (Some(v), Some(currency)) => {
            let minor = double_to_minor(v, currency.exponent())
                .ok_or_else(|| PayloadError::invalid(at("Amount"), format!("'{}' is not a number", printable(v))))?;
            Some(Money { minor, currency })
        }
        _ => None,
    };
    let email_field = cfg.owner_email_field.trim().trim_start_matches("sf:");
    let rep_email = match field(so, email_field) {
        Some(v) if !email_field.is_empty() => Some(EmailAddress::parse(v).map_err(|e| PayloadError::invalid(at(email_field), e.0))?),
        _ => None,
    };
    let name = so.child("Name").filter(|_| field(so, "Name").is_some()).map(|e| e.text.clone());
    Ok(OrderFacts { amount, rep_email, owner_ref: field(so, "OwnerId").map(str::to_string), account_name: name, ..OrderFacts::default() })
}

/// Salesforce sends currency fields as `xsd:double`: `48000.0`, `1.5E7`, now and then
/// `1234.5600000000001`. Converts exactly to minor units, rounding half away from zero at the
/// currency's minor unit; `None` for anything that is not a finite decimal number.
fn double_to_minor(text: &str, exponent: u32) -> Option<i64> {
    let s = text.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || exp.abs() > 64 {
        return None;
    }
    let digits: Vec<i64> = int.bytes().chain(frac.bytes()).map(|b| i64::from(b - b'0')).collect();
    // Where the decimal point falls once the value is expressed in minor units.
    let point = i64::try_from(int.len()).ok()? + exp + i64::from(exponent);
    let digit = |i: i64| usize::try_from(i).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    let mut minor: i64 = 0;
    for i in 0..point.max(0) {
        minor = minor.checked_mul(10)?.checked_add(digit(i))?;
    }
    if point >= 0 && digit(point) >= 5 {
        minor = minor.checked_add(1)?;
    }
    Some(if negative { -minor } else { minor })
}

/// Accepts an outbound message only from a configured organization. Salesforce ids come in a
/// case-sensitive 15-character form and an 18-character form that adds a checksum of the first
/// 15; either form matches the other. A message that names no org (`None`) is refused too.
pub fn check_organization(org_id: Option<&str>, cfg: &SalesforceWebhook) -> Result<(), SignatureError> {
    if cfg.organization_ids.is_empty() {
        return Err(SignatureError::NotConfigured {
            crm: Source::Salesforce,
            missing: "no organization is accepted; set webhooks.salesforce.organization_ids",
        });
    }
    let org_id = org_id.ok_or(SignatureError::NoOrganization)?;
    let key = |id: &str| -> Option<String> {
        let id = id.trim();
        (matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| id[..15].to_string())
    };
    let presented = key(org_id).ok_or_else(|| SignatureError::UnknownOrganization(printable(org_id)))?;
    let accepted: Vec<SecretBytes> = cfg.organization_ids.iter().filter_map(|id| key(id)).map(SecretBytes::new).collect();
    if SecretBytes::matches_any(&accepted, presented.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::UnknownOrganization(printable(org_id)))
    }
}

/// The acknowledgement Salesforce waits for; without it the notifications are sent again.
pub fn salesforce_ack() -> String {
    concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
        "\n <soapenv:Body>\n",
        r#"  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        "\n   <Ack>true</Ack>\n  </notificationsResponse>\n </soapenv:Body>\n</soapenv:Envelope>\n"
    )
    .to_string()
}

/// A SOAP fault for a message firstcall refused (the sender's fault: bad signature, bad body).
/// Salesforce shows the message in its outbound message queue and retries.
pub fn salesforce_fault(message: &str) -> String {
    soap_fault("soapenv:Client", message)
}

/// A SOAP fault for a message firstcall could not store now (database unavailable).
pub fn salesforce_server_fault(message: &str) -> String {
    soap_fault("soapenv:Server", message)
}

fn soap_fault(code: &str, message: &str) -> String {
    // XML 1.0 forbids most control characters even when escaped.
    let message: String = message.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\">\n <soapenv:Body>\n  \
         <soapenv:Fault>\n   <faultcode>{code}</faultcode>\n   <faultstring>{}</faultstring>\n  </soapenv:Fault>\n \
         </soapenv:Body>\n</soapenv:Envelope>\n",
        quick_xml::escape::escape(message.as_str())
    )
}

#[cfg(test)]
mod tests;
