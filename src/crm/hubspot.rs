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
//! if the deal has a quote, its newest one's line items (`q`: their pages of associations, at
//! least 1; `m`: how many):
//! + q                                GET  /crm/v4/objects/quotes/{quoteId}/associations/line_items
//! + ⌈m / 100⌉                        POST /crm/v3/objects/line_items/batch/read
//! ```
//!
//! A deal with a company, an owner and a few of each record (up to 500 associations and 100
//! records of a type), its newest quote with a few line items, costs 22 requests; the sample deal
//! of the tests (no tasks, no quotes) 18.
//! Requests go one after another: the connector's pace (`requests_per_second`) sets the speed anyway, and a
//! `429` pauses every later request.
//!
//! The quote's line items are the proposal side of the recap's order-versus-proposal comparison
//! ([`DealContext::quote_line_items`]): HubSpot copies line items into a quote, so they are
//! records of their own, apart from the deal's. Of several quotes the newest by `hs_createdate`
//! (the record's `createdAt` when unset; the larger id on a tie) is read. The quote's
//! `hs_status` is not read: a draft or a rejected quote is not skipped. A deal without a quote
//! has none (`None`); a quote without line items has an empty list.
//!
//! The won deals the reconciler asks for ([`Connector::won_since`]) come from the CRM search
//! (`POST /crm/v3/objects/deals/search`: `dealstage` `IN` the won stages, `hs_lastmodifieddate`
//! `GTE` the cursor in epoch milliseconds, sorted ascending on it, 100 a page, `paging.next.after`
//! followed). What one call costs (`r`: the results read, at most `max` and at most the 10,000
//! HubSpot serves for one search, past which paging answers `400`; `o`: the distinct owners of the
//! deals returned):
//!
//! ```text
//! max(1, ⌈r / 100⌉)                  POST /crm/v3/objects/deals/search
//! + o                                GET  /crm/v3/owners/{ownerId}
//! ```
//!
//! The account name is left out (a request per deal); the close date is the won time, the last
//! modification when there is none. HubSpot's search index trails writes by a few seconds, and
//! its `after` counts results: a deal of an earlier page modified while later pages are read
//! moves to the end and shifts the rest back by one, so one deal can be passed over by that
//! call. The caller's cursor should overlap the last call a little (repeats are harmless).
//!
//! Contacts' role names are their association labels on the deal (`Economic Buyer`, `Technical
//! Buyer`); a contact associated without a label has none. The account is the deal's primary
//! company (association type 5), else its first company. Property values are text in HubSpot,
//! numbers included; `hs_timestamp` is ISO 8601, or epoch milliseconds on older records.
//!
//! A call's outcome goes back on the deal as a note ([`Connector::record_call`]), created and
//! associated with the deal in one request (Notes API, "Create a note"; association type 214,
//! HubSpot's note to deal):
//!
//! ```text
//! 1                                  POST /crm/v3/objects/notes
//!   {"properties": {"hs_timestamp": "<when it was marked>", "hs_note_body": "<HTML>"},
//!    "associations": [{"to": {"id": "<dealId>"},
//!                      "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}]}
//! ```
//!
//! The body is the record's text, HTML-escaped, one `<br>` per line break, its first line (the
//! subject) in `<strong>`. The token needs `crm.objects.contacts.write` besides the read scopes:
//! HubSpot files the notes API under the contacts scopes. A deal HubSpot does not have answers
//! `400` (`One or more associations are invalid`, `INVALID_OBJECT_IDS`) and nothing is created:
//! that is [`CrmError::NotFound`]. HubSpot has no idempotency key for a create and firstcall does
//! not search before it creates: when an answer is lost after HubSpot created the note, the
//! engine's retry writes a second one. Each note names its call (`Recorded by firstcall (call
//! 42)`), so a repeat can be told apart and deleted.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CallRecord, Connector, CrmActivity, CrmActivityKind, CrmContact, CrmError, CrmLineItem, DealContext, Http, WonDeal};
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
/// The page of deal search results asked for (HubSpot's search serves up to 200).
const SEARCH_PAGE: usize = 100;
/// The most results HubSpot's search serves for one query: paging past them answers `400`.
const SEARCH_MAX_RESULTS: usize = 10_000;
/// HubSpot's association type of a deal's primary company.
const PRIMARY_COMPANY_TYPE_ID: i64 = 5;
/// The longest id HubSpot uses (a 64-bit number).
const ID_MAX_DIGITS: usize = 20;
/// HubSpot's association type of a note to a deal (Associations v4, HubSpot-defined types; the
/// deal's side of it is 213).
const NOTE_TO_DEAL_TYPE_ID: i64 = 214;

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
            return Err(not_a_deal_id(deal_id));
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

        let companies = self.associations("deals", deal_id, "companies").await?;
        let contacts = self.associations("deals", deal_id, "contacts").await?;
        let line_items = self.associations("deals", deal_id, "line_items").await?;
        let mut activity_links = Vec::with_capacity(ACTIVITY_TYPES.len());
        for t in &ACTIVITY_TYPES {
            activity_links.push(self.associations("deals", deal_id, t.object).await?);
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

        let line_items = self.line_items(&line_items).await?;

        let mut activities = Vec::new();
        // The deal's quotes (their `hs_createdate`), read with the activities.
        let mut quotes: Vec<(Option<DateTime<Utc>>, String)> = Vec::new();
        for (t, links) in ACTIVITY_TYPES.iter().zip(&activity_links) {
            let ids: Vec<String> = links.iter().map(|a| a.id.clone()).collect();
            let properties: Vec<&str> = [t.subject, t.body, Some(t.time)].into_iter().flatten().collect();
            let records = self.batch_read(t.object, &properties, &ids).await?;
            if t.kind == CrmActivityKind::Quote {
                for r in ids.iter().filter_map(|id| records.get(id)) {
                    let created =
                        r.raw_prop(t.time).as_deref().and_then(parse_time).or_else(|| r.created_at.as_deref().and_then(parse_time));
                    quotes.push((created, r.id.clone()));
                }
            }
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

        // The newest quote: the latest creation (none read is the oldest), the larger id on a tie.
        let newest_quote = quotes.into_iter().max_by(|(a_at, a_id), (b_at, b_id)| {
            a_at.cmp(b_at).then_with(|| (a_id.len(), a_id.as_str()).cmp(&(b_id.len(), b_id.as_str())))
        });
        let quote_line_items = match newest_quote {
            Some((_, quote_id)) => Some(self.line_items(&self.associations("quotes", &quote_id, "line_items").await?).await?),
            None => None,
        };

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
            quote_line_items,
            activities,
            notes_field,
            modified_at,
        })
    }

    /// Creates a note on deal `deal_id` with the call's outcome, associated with the deal in the
    /// same request.
    async fn create_note(&self, deal_id: &str, record: &CallRecord) -> Result<(), CrmError> {
        if !is_id(deal_id) {
            return Err(not_a_deal_id(deal_id));
        }
        let body = json!({
            "properties": {
                "hs_timestamp": record.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "hs_note_body": note_html(&record.text()),
            },
            "associations": [{
                "to": {"id": deal_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_DEAL_TYPE_ID}],
            }],
        });
        let url = self.http.url("/crm/v3/objects/notes");
        let resp = match self.http.send(|c| c.post(&url).bearer_auth(self.token.expose()).json(&body)).await {
            Ok(resp) => resp,
            // The only association is the deal's: HubSpot does not have it (or no longer). The
            // error keeps only the start of HubSpot's answer, its message.
            Err(CrmError::Invalid(why)) if why.contains("One or more associations are invalid") || why.contains("INVALID_OBJECT_IDS") => {
                return Err(CrmError::NotFound(format!("hubspot: deal {deal_id}: {why}")));
            }
            Err(e) => return Err(e),
        };
        // HubSpot answered 2xx: the note exists. An answer that cannot be read is no failure (a
        // retry would write the note again); the id is only for the log.
        let note = resp.json::<Value>().await.ok().and_then(|v| v.get("id").and_then(id_text));
        tracing::info!(
            deal = deal_id,
            call = record.call_id,
            note = note.as_deref().unwrap_or("?"),
            "recorded the call on the HubSpot deal"
        );
        Ok(())
    }

    /// The deals in a won stage last modified at or after `since`, oldest modification first, up
    /// to `max` (and to the 10,000 results HubSpot serves for one search), with their owners'
    /// emails, one lookup per distinct owner.
    async fn won_deals(&self, since: DateTime<Utc>, max: usize) -> Result<Vec<WonDeal>, CrmError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        if self.won_stages.is_empty() {
            tracing::warn!("no HubSpot deal stage means won (webhooks.hubspot.closed_won_stages is empty); no won deals to read");
            return Ok(Vec::new());
        }
        let url = self.http.url("/crm/v3/objects/deals/search");
        // Epoch milliseconds, rounded down: a deal modified exactly at `since` is in.
        let since_ms = since.timestamp_millis().to_string();
        let mut properties: Vec<&str> = DEAL_PROPERTIES.to_vec();
        properties.push("dealstage");
        let mut out: Vec<WonDeal> = Vec::new();
        // Results the search has served so far (its `after` cursor is their count).
        let mut served = 0usize;
        let mut after: Option<String> = None;
        loop {
            let limit = SEARCH_PAGE.min(max - out.len()).min(SEARCH_MAX_RESULTS - served);
            let mut body = json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "dealstage", "operator": "IN", "values": self.won_stages},
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since_ms},
                ]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": properties,
                "limit": limit,
            });
            if let Some(after) = &after {
                body["after"] = json!(after);
            }
            let page: SearchPage = self.http.json(|c| c.post(&url).bearer_auth(self.token.expose()).json(&body)).await?;
            let page_len = page.results.len();
            served += page_len;
            for r in page.results {
                if out.len() == max {
                    break;
                }
                if let Some(deal) = self.won_deal(r) {
                    out.push(deal);
                }
            }
            let next = page.paging.and_then(|p| p.next).map(|n| n.after).filter(|a| !a.is_empty());
            match next {
                _ if out.len() >= max => break,
                None => break,
                Some(_) if page_len == 0 => {
                    tracing::warn!("the HubSpot deal search answered an empty page with a next one; stopped there");
                    break;
                }
                Some(next) if after.as_deref() == Some(next.as_str()) => {
                    return Err(CrmError::Invalid("hubspot: deal search: the next page's cursor repeats the last one".into()));
                }
                Some(_) if served >= SEARCH_MAX_RESULTS => {
                    // HubSpot refuses to page past 10,000 results; the next call starts from the
                    // last deal's modification.
                    tracing::info!(
                        deals = out.len(),
                        "the HubSpot deal search served its 10,000 results; the rest comes with the next call"
                    );
                    break;
                }
                Some(next) => after = Some(next),
            }
        }

        let mut emails: HashMap<String, Option<String>> = HashMap::new();
        for deal in &mut out {
            let Some(owner_id) = deal.owner_id.as_deref() else { continue };
            if !emails.contains_key(owner_id) {
                let email = self.owner_email(owner_id).await?;
                emails.insert(owner_id.to_string(), email);
            }
            deal.owner_email = emails[owner_id].clone();
        }
        tracing::debug!(deals = out.len(), owners = emails.len(), "read won HubSpot deals");
        Ok(out)
    }

    /// A search result as a won deal; `None` (with a warning) for one without a usable id or
    /// times, or not in a won stage after all.
    fn won_deal(&self, raw: Value) -> Option<WonDeal> {
        let r = match serde_json::from_value::<SearchRecord>(raw) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("a HubSpot deal search result is unreadable ({e}); skipped");
                return None;
            }
        };
        let Some(id) = r.id.as_ref().and_then(id_text) else {
            tracing::warn!("a HubSpot deal search result has no readable id; skipped");
            return None;
        };
        let deal = Record { id, properties: r.properties, created_at: None, updated_at: r.updated_at };
        match deal.prop("dealstage") {
            Some(stage) if self.won_stages.contains(&stage) => {}
            stage => {
                let stage = printable(stage.as_deref().unwrap_or(""));
                tracing::warn!(deal = %deal.id, "the HubSpot deal search answered a deal in stage '{stage}', which is not won; skipped");
                return None;
            }
        }
        let modified = deal.prop("hs_lastmodifieddate").or_else(|| deal.updated_at.clone());
        let Some(modified_at) = modified.as_deref().and_then(parse_time) else {
            tracing::warn!(deal = %deal.id, "a won HubSpot deal has no readable modification time; skipped");
            return None;
        };
        let won_at = match deal.prop("closedate") {
            None => modified_at,
            Some(close) => match parse_time(&close) {
                Some(t) => t,
                None => {
                    tracing::warn!(deal = %deal.id, "a won HubSpot deal's close date '{}' is unreadable; skipped", printable(&close));
                    return None;
                }
            },
        };
        let amount = deal.prop("amount").filter(|a| {
            let ok = is_decimal(a);
            if !ok {
                tracing::warn!(deal = %deal.id, "a won HubSpot deal's amount '{}' is not a decimal; left out", printable(a));
            }
            ok
        });
        Some(WonDeal {
            won_at,
            modified_at,
            amount,
            currency: deal.prop("deal_currency_code"),
            owner_email: None,
            owner_id: deal.prop("hubspot_owner_id"),
            // The company would cost a request per deal: the order's account comes later, from
            // the deal's full read.
            account_name: None,
            deal_id: deal.id,
        })
    }

    /// The line items associated, in association order, read in batches; those HubSpot no longer
    /// has are left out.
    async fn line_items(&self, links: &[Association]) -> Result<Vec<CrmLineItem>, CrmError> {
        let ids: Vec<String> = links.iter().map(|a| a.id.clone()).collect();
        let records = self.batch_read("line_items", &LINE_ITEM_PROPERTIES, &ids).await?;
        Ok(ids
            .iter()
            .filter_map(|id| records.get(id))
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
            .collect())
    }

    /// Every association of record `from_id` (of `from_type`: `deals`, `quotes`) to `to_type`,
    /// following `paging.next.after`.
    async fn associations(&self, from_type: &str, from_id: &str, to_type: &str) -> Result<Vec<Association>, CrmError> {
        let path = format!("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}");
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
                    None => tracing::warn!(record = from_id, "a HubSpot {from_type} to {to_type} association has no readable id; skipped"),
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

    fn won_since<'a>(&'a self, since: DateTime<Utc>, max: usize) -> BoxFuture<'a, Result<Vec<WonDeal>, CrmError>> {
        Box::pin(self.won_deals(since, max))
    }

    fn record_call<'a>(&'a self, deal_id: &'a str, record: &'a CallRecord) -> BoxFuture<'a, Result<(), CrmError>> {
        Box::pin(self.create_note(deal_id, record))
    }
}

/// A HubSpot record id: digits only, so it goes into a path as it is.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// A deal id that is no HubSpot id: no deal, and no request to find out.
fn not_a_deal_id(deal_id: &str) -> CrmError {
    CrmError::NotFound(format!("hubspot: '{}' is not a HubSpot deal id (digits only)", printable(deal_id)))
}

/// Plain text as a HubSpot note body (rich text): HTML-escaped, one `<br>` per line break
/// (`\n` or `\r\n`), the first line in `<strong>`. The rep's notes (at most 10,000 characters)
/// escape to at most 50,000, within the 65,536 HubSpot takes.
fn note_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 64);
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            html.push_str("<strong>");
            html_escape::encode_text_to_string(line, &mut html);
            html.push_str("</strong>");
        } else {
            html.push_str("<br>");
            html_escape::encode_text_to_string(line, &mut html);
        }
    }
    html
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

/// Whether a number property's text is a plain decimal (`64400`, `64400.50`, `-12.5`).
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    !(whole.is_empty() && frac.is_empty()) && whole.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit())
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

/// A page of CRM search results (`paging` only when more pages follow). Results are read one
/// by one, so that one malformed record is skipped rather than failing the page.
#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    results: Vec<Value>,
    paging: Option<Paging>,
}

/// A search result before its id is checked.
#[derive(Debug, Deserialize)]
struct SearchRecord {
    id: Option<Value>,
    #[serde(default)]
    properties: HashMap<String, Value>,
    #[serde(rename = "updatedAt")]
    updated_at: Option<String>,
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

    fn connector() -> HubSpot {
        let s = CrmSettings::default();
        let c = HubspotConnector { token: Some(Credential("pat-na1-test".into())), ..HubspotConnector::default() };
        HubSpot::new(&c, &s).unwrap().with_won_stages(&["closedwon".into(), "1234567".into()])
    }

    fn result(id: Value, props: Value) -> Value {
        serde_json::json!({"id": id, "properties": props, "createdAt": "2026-09-01T08:00:00Z", "updatedAt": "2026-10-02T12:30:00.000Z", "archived": false})
    }

    #[test]
    fn a_search_result_reads_into_a_won_deal() {
        let hubspot = connector();
        let closed = Utc.with_ymd_and_hms(2026, 9, 30, 17, 0, 0).unwrap();
        let modified = Utc.with_ymd_and_hms(2026, 10, 2, 12, 30, 0).unwrap();
        let deal = hubspot
            .won_deal(result(
                json!("8154002031"),
                json!({"dealstage": "1234567", "amount": "64400.00", "deal_currency_code": "USD", "hubspot_owner_id": "5501",
                       "closedate": "2026-09-30T17:00:00Z", "hs_lastmodifieddate": "2026-10-02T12:30:00.000Z", "dealname": "Acme"}),
            ))
            .expect("a won deal");
        assert_eq!(
            deal,
            WonDeal {
                deal_id: "8154002031".into(),
                won_at: closed,
                modified_at: modified,
                amount: Some("64400.00".into()),
                currency: Some("USD".into()),
                owner_email: None,
                owner_id: Some("5501".into()),
                account_name: None,
            }
        );
        // No close date: won when last modified; an amount that is no decimal is left out.
        let deal = hubspot
            .won_deal(result(json!(8154002032u64), json!({"dealstage": "closedwon", "amount": "about 5k", "closedate": null})))
            .expect("a won deal");
        assert_eq!((deal.deal_id.as_str(), deal.won_at, deal.modified_at, deal.amount), ("8154002032", modified, modified, None));
    }

    #[test]
    fn a_search_result_without_an_id_times_or_a_won_stage_is_skipped() {
        let hubspot = connector();
        let won = json!({"dealstage": "closedwon", "hs_lastmodifieddate": "2026-10-02T12:30:00Z"});
        for bad in [
            json!({"properties": won}),
            result(Value::Null, won.clone()),
            result(json!("../owners/1"), won.clone()),
            result(json!("81"), json!({"dealstage": "closedlost", "hs_lastmodifieddate": "2026-10-02T12:30:00Z"})),
            result(json!("82"), json!({"hs_lastmodifieddate": "2026-10-02T12:30:00Z"})),
            result(json!("83"), json!({"dealstage": "closedwon", "hs_lastmodifieddate": "2026-10-02T12:30:00Z", "closedate": "soon"})),
            json!({"id": "84", "properties": {"dealstage": "closedwon", "hs_lastmodifieddate": "last week"}}),
            json!({"id": "85", "properties": {"dealstage": "closedwon"}}),
            json!({"id": "86", "properties": "closedwon"}),
            json!("86"),
        ] {
            assert_eq!(hubspot.won_deal(bad.clone()), None, "{bad}");
        }
        // The record's `updatedAt` stands in for a missing `hs_lastmodifieddate`.
        assert!(hubspot.won_deal(result(json!("87"), json!({"dealstage": "closedwon"}))).is_some());
    }

    #[test]
    fn amounts_are_plain_decimals() {
        for ok in ["64400", "64400.50", "-12.5", ".5", "0"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "-", ".", "1e5", "1,000", "12.5.1", "NaN", "12 "] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn a_note_body_is_escaped_html_with_a_bold_first_line() {
        let html = note_html(
            "Call <done> & dusted\r\nNotes: they want \"SSO\" <script>alert(1)</script>\n\nCall page: https://x.example/c/1?a=1&b=2",
        );
        assert_eq!(
            html,
            "<strong>Call &lt;done&gt; &amp; dusted</strong><br>Notes: they want \"SSO\" &lt;script&gt;alert(1)&lt;/script&gt;<br>\
             <br>Call page: https://x.example/c/1?a=1&amp;b=2"
        );
        assert!(looks_like_html(&html));
        // Read back as the recap reads notes, it is the text again, line for line.
        let text = crate::crm::text_of_html(&html);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(
            lines,
            ["Call <done> & dusted", "Notes: they want \"SSO\" <script>alert(1)</script>", "", "Call page: https://x.example/c/1?a=1&b=2"]
        );
        assert_eq!(note_html(""), "");
    }

    #[test]
    fn rich_text_is_told_from_plain_text() {
        assert!(looks_like_html("<p>Discovery</p>"));
        assert!(looks_like_html("line one<br>line two"));
        assert!(!looks_like_html("#need sso must: SSO\n#need audit should: Audit log"));
        assert!(!looks_like_html("price < 5 and > 3"));
    }
}
