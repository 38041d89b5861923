//! HubSpot connector: reads a won deal's story over HubSpot's CRM API with a private app's
//! access token (`Authorization: Bearer …`). Private-app tokens do not expire and cannot be
//! refreshed, so a `401` is [`CrmError::Unauthorized`] at once: someone has to rotate the token.
//!
//! What one deal costs, in requests (`p(t)`: the pages of the deal's associations to `t`, at
//! least 1, at 500 a page; `n(t)`: how many records of type `t` are associated):
//!
//! ```text
//! 1                                  GET  /crm/v3/objects/deals/{id}         the deal's properties
//! + Σ p(t) over 9 types              GET  /crm/v4/objects/deals/{id}/associations/{t}
//!                                    (companies, contacts, line_items, notes, emails, calls,
//!                                    meetings, tasks, quotes; labels come with them)
//! + 1 if the deal has an owner       GET  /crm/v3/owners/{ownerId}
//! + 1 if the deal has a company      POST /crm/v3/objects/companies/batch/read (the primary one)
//! + Σ ⌈n(t) / 100⌉ over 8 types      POST /crm/v3/objects/{t}/batch/read
//! ```
//!
//! A deal with a company, an owner and a few of each record (up to 500 associations and 100
//! records of a type) costs 20 requests; the sample deal of the tests (no tasks, no quotes) 18.
//! Requests go one after another: the connector's pace (`requests_per_second`) sets the speed anyway, and a
//! `429` pauses every later request.
//!
//! Contacts' role names are their association labels on the deal (`Economic Buyer`, `Technical
//! Buyer`); a contact associated without a label has none. The account is the deal's primary
//! company (association type 5), else its first company. Property values are text in HubSpot,
//! numbers included; `hs_timestamp` is ISO 8601, or epoch milliseconds on older records.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Connector, CrmActivity, CrmActivityKind, CrmContact, CrmError, CrmLineItem, DealContext, Http, WonDeal};
use crate::config::CrmSettings;
use crate::config::crm::{Credential, HubspotConnector};
use crate::domain::{Source, printable};

/// The deal properties read besides the configured notes property.
const DEAL_PROPERTIES: [&str; 6] = ["dealname", "amount", "deal_currency_code", "hubspot_owner_id", "closedate", "hs_lastmodifieddate"];
/// The largest page of associations HubSpot serves (and its default).
const ASSOCIATION_PAGE: u32 = 500;
/// The most records one batch read takes.
const BATCH_MAX: usize = 100;
/// Pages of one association type before the connector stops: 500,000 associations is no deal.
const MAX_PAGES: usize = 1000;
/// HubSpot's association type of a deal's primary company.
const PRIMARY_COMPANY_TYPE_ID: i64 = 5;
/// The longest id HubSpot uses (a 64-bit number).
const ID_MAX_DIGITS: usize = 20;

/// One kind of activity on a deal and the properties that tell it.
struct ActivityType {
    object: &'static str,
    kind: CrmActivityKind,
    subject: Option<&'static str>,
    body: Option<&'static str>,
    time: &'static str,
}

const ACTIVITY_TYPES: [ActivityType; 6] = [
    ActivityType { object: "notes", kind: CrmActivityKind::Note, subject: None, body: Some("hs_note_body"), time: "hs_timestamp" },
    // An email's body is the customer's correspondence, not the rep's notes: never read.
    ActivityType { object: "emails", kind: CrmActivityKind::Email, subject: Some("hs_email_subject"), body: None, time: "hs_timestamp" },
    ActivityType {
        object: "calls",
        kind: CrmActivityKind::Call,
        subject: Some("hs_call_title"),
        body: Some("hs_call_body"),
        time: "hs_timestamp",
    },
    ActivityType {
        object: "meetings",
        kind: CrmActivityKind::Meeting,
        subject: Some("hs_meeting_title"),
        body: Some("hs_meeting_body"),
        time: "hs_timestamp",
    },
    ActivityType {
        object: "tasks",
        kind: CrmActivityKind::Task,
        subject: Some("hs_task_subject"),
        body: Some("hs_task_body"),
        time: "hs_timestamp",
    },
    ActivityType { object: "quotes", kind: CrmActivityKind::Quote, subject: Some("hs_title"), body: None, time: "hs_createdate" },
];

const CONTACT_PROPERTIES: [&str; 4] = ["firstname", "lastname", "email", "jobtitle"];
const LINE_ITEM_PROPERTIES: [&str; 6] = ["name", "hs_sku", "quantity", "price", "hs_line_item_currency_code", "description"];

pub struct HubSpot {
    http: Http,
    token: Credential,
    notes_property: Option<String>,
    /// Deal stages that mean won (`webhooks.hubspot.closed_won_stages`), for [`Connector::won_since`].
    won_stages: Vec<String>,
}

impl HubSpot {
    pub fn new(c: &HubspotConnector, s: &CrmSettings) -> Result<HubSpot, String> {
        let token = c.token.clone().filter(|t| !t.expose().trim().is_empty()).ok_or("crm.hubspot.token is not set")?;
        let notes_property = c.notes_property.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(String::from);
        Ok(HubSpot {
            http: super::http_for("hubspot", &c.base_url, c.requests_per_second, s)?,
            token,
            notes_property,
            won_stages: vec!["closedwon".into()],
        })
    }

    /// The deal stages that mean won (internal stage ids).
    pub fn with_won_stages(mut self, stages: &[String]) -> HubSpot {
        self.won_stages = stages.to_vec();
        self
    }

    async fn read_deal(&self, deal_id: &str) -> Result<DealContext, CrmError> {
        if !is_id(deal_id) {
            return Err(CrmError::NotFound(format!("hubspot: '{}' is not a HubSpot deal id (digits only)", printable(deal_id))));
        }
        let mut properties: Vec<&str> = DEAL_PROPERTIES.to_vec();
        properties.extend(self.notes_property.as_deref());
        let properties = properties.join(",");
        let deal: Record = self
            .http
            .json(|c| {
                c.get(self.http.url(&format!("/crm/v3/objects/deals/{deal_id}")))
                    .bearer_auth(self.token.expose())
                    .query(&[("properties", properties.as_str())])
            })
            .await?;

        let companies = self.associations(deal_id, "companies").await?;
        let contacts = self.associations(deal_id, "contacts").await?;
        let line_items = self.associations(deal_id, "line_items").await?;
        let mut activity_links = Vec::with_capacity(ACTIVITY_TYPES.len());
        for t in &ACTIVITY_TYPES {
            activity_links.push(self.associations(deal_id, t.object).await?);
        }

        let owner_email = match deal.prop("hubspot_owner_id") {
            Some(owner_id) => self.owner_email(&owner_id).await?,
            None => None,
        };

        // The primary company names the account; a deal without one takes its first company.
        let company = companies.iter().find(|a| a.types.iter().any(|t| t.type_id == Some(PRIMARY_COMPANY_TYPE_ID))).or(companies.first());
        let account_name = match company {
            Some(c) => self.batch_read("companies", &["name"], std::slice::from_ref(&c.id)).await?.get(&c.id).and_then(|r| r.prop("name")),
            None => None,
        };

        let contact_ids: Vec<String> = contacts.iter().map(|a| a.id.clone()).collect();
        let contact_records = self.batch_read("contacts", &CONTACT_PROPERTIES, &contact_ids).await?;
        let contacts = contacts
            .iter()
            .filter_map(|a| {
                let r = contact_records.get(&a.id)?;
                let name = [r.prop("firstname"), r.prop("lastname")].into_iter().flatten().collect::<Vec<_>>().join(" ");
                let mut roles: Vec<String> = Vec::new();
                for label in a.types.iter().filter_map(|t| t.label.as_deref()).map(str::trim).filter(|l| !l.is_empty()) {
                    if !roles.iter().any(|r| r.eq_ignore_ascii_case(label)) {
                        roles.push(label.to_string());
                    }
                }
                Some(CrmContact { name, email: r.prop("email"), title: r.prop("jobtitle"), roles })
            })
            .collect();

        let line_item_ids: Vec<String> = line_items.iter().map(|a| a.id.clone()).collect();
        let line_item_records = self.batch_read("line_items", &LINE_ITEM_PROPERTIES, &line_item_ids).await?;
        let line_items = line_item_ids
            .iter()
            .filter_map(|id| line_item_records.get(id))
            .map(|r| CrmLineItem {
                sku: r.prop("hs_sku"),
                name: r.prop("name").unwrap_or_default(),
                // HubSpot's line item editor defaults the quantity to 1; an unreadable one is NaN,
                // which the proposal reports as unreadable.
                quantity: r.prop("quantity").map_or(Ok(1.0), |q| q.parse::<f64>()).unwrap_or(f64::NAN),
                unit_price: r.prop("price").unwrap_or_default(),
                currency: r.prop("hs_line_item_currency_code"),
                description: r.prop("description"),
            })
            .collect();

        let mut activities = Vec::new();
        for (t, links) in ACTIVITY_TYPES.iter().zip(&activity_links) {
            let ids: Vec<String> = links.iter().map(|a| a.id.clone()).collect();
            let properties: Vec<&str> = [t.subject, t.body, Some(t.time)].into_iter().flatten().collect();
            let records = self.batch_read(t.object, &properties, &ids).await?;
            for r in ids.iter().filter_map(|id| records.get(id)) {
                let Some(at) = r.raw_prop(t.time).as_deref().and_then(parse_time).or_else(|| r.created_at.as_deref().and_then(parse_time))
                else {
                    tracing::warn!(deal = deal_id, record = %r.id, "a HubSpot {} has no time; left out of the buying process", t.object);
                    continue;
                };
                let body = t.body.and_then(|b| r.raw_prop(b)).filter(|b| !b.trim().is_empty());
                activities.push(CrmActivity {
                    at,
                    kind: t.kind,
                    subject: t.subject.and_then(|s| r.prop(s)).unwrap_or_default(),
                    html: body.as_deref().is_some_and(looks_like_html),
                    body,
                });
            }
        }

        let notes_field = self.notes_property.as_deref().and_then(|p| deal.raw_prop(p)).filter(|t| !t.trim().is_empty());
        let modified_at = deal
            .raw_prop("hs_lastmodifieddate")
            .as_deref()
            .and_then(parse_time)
            .or_else(|| deal.updated_at.as_deref().and_then(parse_time));
        tracing::debug!(
            deal = deal_id,
            requests = self.http.counters.requests.load(std::sync::atomic::Ordering::Relaxed),
            "read a HubSpot deal"
        );
        Ok(DealContext {
            deal_name: deal.prop("dealname"),
            account_name,
            owner_email,
            owner_id: deal.prop("hubspot_owner_id"),
            currency: deal.prop("deal_currency_code"),
            contacts,
            line_items,
            activities,
            notes_field,
            modified_at,
        })
    }

    /// Every association of the deal to `to_type`, following `paging.next.after`.
    async fn associations(&self, deal_id: &str, to_type: &str) -> Result<Vec<Association>, CrmError> {
        let path = format!("/crm/v4/objects/deals/{deal_id}/associations/{to_type}");
        let limit = ASSOCIATION_PAGE.to_string();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page: AssociationPage = self
                .http
                .json(|c| {
                    let mut query = vec![("limit", limit.as_str())];
                    query.extend(after.as_deref().map(|a| ("after", a)));
                    c.get(self.http.url(&path)).bearer_auth(self.token.expose()).query(&query)
                })
                .await?;
            for a in page.results {
                match id_text(&a.to_object_id) {
                    Some(id) => out.push(Association { id, types: a.association_types }),
                    None => tracing::warn!(deal = deal_id, "a HubSpot {to_type} association has no readable id; skipped"),
                }
            }
            match page.paging.and_then(|p| p.next).map(|n| n.after).filter(|a| !a.is_empty()) {
                Some(next) if after.as_deref() == Some(next.as_str()) => {
                    return Err(CrmError::Invalid(format!("hubspot: {path}: the next page's cursor repeats the last one")));
                }
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
        Err(CrmError::Invalid(format!("hubspot: {path}: more than {MAX_PAGES} pages of associations")))
    }

    /// The owner's email; none when HubSpot no longer knows the owner (a removed user).
    async fn owner_email(&self, owner_id: &str) -> Result<Option<String>, CrmError> {
        if !is_id(owner_id) {
            tracing::warn!("the HubSpot deal's owner id '{}' is not a number; no rep from the CRM", printable(owner_id));
            return Ok(None);
        }
        let url = self.http.url(&format!("/crm/v3/owners/{owner_id}"));
        match self.http.json::<Owner>(|c| c.get(&url).bearer_auth(self.token.expose()).query(&[("idProperty", "id")])).await {
            Ok(owner) => Ok(owner.email.filter(|e| !e.trim().is_empty())),
            Err(CrmError::NotFound(why)) => {
                tracing::warn!(owner = owner_id, "the HubSpot deal's owner is unknown to HubSpot: {why}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The records of `object` with these ids (at most 100 a request), by id. Ids HubSpot no
    /// longer has (a record deleted since it was associated) are left out.
    async fn batch_read(&self, object: &str, properties: &[&str], ids: &[String]) -> Result<HashMap<String, Record>, CrmError> {
        let url = self.http.url(&format!("/crm/v3/objects/{object}/batch/read"));
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_MAX) {
            let body = BatchRead { properties, inputs: chunk.iter().map(|id| IdInput { id }).collect() };
            let answer: BatchAnswer = self.http.json(|c| c.post(&url).bearer_auth(self.token.expose()).json(&body)).await?;
            if answer.num_errors.unwrap_or(0) > 0 {
                tracing::warn!(object, missing = answer.num_errors, "some HubSpot records associated with the deal could not be read");
            }
            out.extend(answer.results.into_iter().map(|r| (r.id.clone(), r)));
        }
        Ok(out)
    }
}

impl Connector for HubSpot {
    fn source(&self) -> Source {
        Source::Hubspot
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(self.read_deal(deal_id))
    }

    fn won_since<'a>(&'a self, _since: DateTime<Utc>, _max: usize) -> BoxFuture<'a, Result<Vec<WonDeal>, CrmError>> {
        Box::pin(async { Err(CrmError::Invalid("hubspot: reading won deals is being built".into())) })
    }
}

/// A HubSpot record id: digits only, so it goes into a path as it is.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// An id HubSpot sends as a number (v4 associations) or as text.
fn id_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    is_id(&s).then_some(s)
}

/// A time as HubSpot writes it: ISO 8601, or epoch milliseconds (older records, date pickers).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis);
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Whether a body is rich text (HubSpot's editors write HTML; an API may write plain text,
/// whose line breaks must stay line breaks).
fn looks_like_html(body: &str) -> bool {
    body.match_indices('<').any(|(i, _)| {
        let rest = &body[i + 1..];
        rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/') && rest.contains('>')
    })
}

/// A CRM record as HubSpot's object APIs return it.
#[derive(Debug, Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    properties: HashMap<String, Value>,
    #[serde(rename = "createdAt")]
    created_at: Option<String>,
    #[serde(rename = "updatedAt")]
    updated_at: Option<String>,
}

impl Record {
    /// A property's value as HubSpot wrote it (numbers as text too); `None` when unset.
    fn raw_prop(&self, name: &str) -> Option<String> {
        match self.properties.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A property's value trimmed; `None` when unset or blank.
    fn prop(&self, name: &str) -> Option<String> {
        self.raw_prop(name).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct AssociationPage {
    #[serde(default)]
    results: Vec<AssociationResult>,
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct AssociationResult {
    #[serde(rename = "toObjectId")]
    to_object_id: Value,
    #[serde(rename = "associationTypes", default)]
    association_types: Vec<AssociationType>,
}

#[derive(Debug, Deserialize)]
struct AssociationType {
    #[serde(rename = "typeId")]
    type_id: Option<i64>,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: String,
}

/// One associated record: its id and the association's types (with their labels).
struct Association {
    id: String,
    types: Vec<AssociationType>,
}

#[derive(Debug, Deserialize)]
struct Owner {
    email: Option<String>,
}

#[derive(Serialize)]
struct BatchRead<'a> {
    properties: &'a [&'a str],
    inputs: Vec<IdInput<'a>>,
}

#[derive(Serialize)]
struct IdInput<'a> {
    id: &'a str,
}

#[derive(Debug, Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<Record>,
    #[serde(rename = "numErrors")]
    num_errors: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_are_digits_only() {
        assert!(is_id("1234567890"));
        for bad in ["", "12a", "1/../2", "12 ", "-1", "123456789012345678901", "１２"] {
            assert!(!is_id(bad), "{bad:?}");
        }
        assert_eq!(id_text(&serde_json::json!(18446744073709551u64)).as_deref(), Some("18446744073709551"));
        assert_eq!(id_text(&serde_json::json!("701")).as_deref(), Some("701"));
        assert_eq!(id_text(&serde_json::json!("70 1")), None);
    }

    #[test]
    fn times_are_iso_or_epoch_milliseconds() {
        let t = Utc.with_ymd_and_hms(2026, 10, 2, 12, 30, 0).unwrap();
        assert_eq!(parse_time("2026-10-02T12:30:00Z"), Some(t));
        assert_eq!(parse_time("2026-10-02T12:30:00.000Z"), Some(t));
        assert_eq!(parse_time("2026-10-02T14:30:00+02:00"), Some(t));
        assert_eq!(parse_time(&t.timestamp_millis().to_string()), Some(t));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn rich_text_is_told_from_plain_text() {
        assert!(looks_like_html("<p>Discovery</p>"));
        assert!(looks_like_html("line one<br>line two"));
        assert!(!looks_like_html("#need sso must: SSO\n#need audit should: Audit log"));
        assert!(!looks_like_html("price < 5 and > 3"));
    }
}
