//! Salesforce connector: reads a won opportunity's story over the REST API with one SOQL query.
//!
//! Access is the OAuth 2.0 client credentials flow of an external client app: the consumer key
//! and secret are exchanged at `{base_url}/services/oauth2/token` for an access token and the
//! org's `instance_url`, where every API call then goes. The token is kept and reused; when the
//! API refuses it (`401 INVALID_SESSION_ID`: the session timed out or was revoked) the connector
//! gets one new token and sends the request once more. Requests that fail together with the
//! same stale token wait for one renewal instead of each asking for a token. A refused token
//! request (`400 invalid_client`) is [`CrmError::Unauthorized`].
//!
//! One query reads the opportunity with its owner's email, its account's name, its currency
//! (`CurrencyIsoCode`, only asked for when `default_currency` is unset, since the field exists
//! only in multi-currency orgs), the configured notes field and `LastModifiedDate`, and, as
//! parent-to-child subqueries, its contact roles (`OpportunityContactRoles`), line items
//! (`OpportunityLineItems`), tasks (`Tasks`: `TaskSubtype` `Email`/`ListEmail` are emails, read
//! by subject only; `Call` calls; others tasks), events (`Events`: meetings) and notes (`Notes`,
//! plain text). A subquery answers with its first batch and a `nextRecordsUrl` when there are
//! more; every such locator is followed until `done`.
//!
//! Requests per deal: `1 + Σ (pages − 1)` over the five subqueries (one query when every
//! related list fits its first batch), plus one token request when the connector has no token
//! yet or the one it has was refused.
//!
//! The reconciler's question ([`Connector::won_since`]) is one more query, of the won
//! opportunities last modified at or after a time (`IsWon = true`, oldest modification first,
//! `LIMIT max`), with the owner's email and the account's name from the same rows; its batches
//! (2000 rows at most each) are followed through `nextRecordsUrl`. Requests per call:
//! `ceil(min(found, max) / batch)` (at least one), plus the token request as above.
//!
//! The opportunity id is checked to be 15 or 18 letters and digits before it goes into the
//! query, which is also what keeps it from changing the query: anything else is
//! [`CrmError::NotFound`] without a request. The configured notes field is checked to be a field
//! name when the connector is built.
//!
//! The call's outcome ([`Connector::record_call`]) is written back as one completed task on the
//! opportunity, created through the sObject Basic Information resource (`POST
//! /services/data/vXX.X/sobjects/Task/`, which answers `201 {"id":"00T…","success":true,
//! "errors":[]}`): `WhatId` the opportunity, `Subject` the record's subject (255 characters at
//! most), `Description` its plain text (32,000 characters at most; longer notes are shortened,
//! never the closing call page and call id lines), `Status` `Completed`, `ActivityDate` the day
//! it was marked (UTC) and `Priority` `Normal`. It shows in the opportunity's activity history.
//! One request, plus the token request as above; a refused token is renewed and the task sent
//! once more (a `401` created nothing). The integration user the app runs as needs the API
//! (`api` scope), the "Edit Tasks" permission and read access to the opportunity. The id is
//! checked as for a read, and must also carry the Opportunity key prefix `006` (an Account id
//! would be accepted by `WhatId` and put the task on the account): anything else is
//! [`CrmError::NotFound`] without a request. An opportunity that no longer exists or that the
//! user cannot see is answered `400 INVALID_CROSS_REFERENCE_KEY` on `WhatId`, read as
//! [`CrmError::NotFound`]. Salesforce has no idempotency key for a create: when an answer is
//! lost and the engine sends the record again, the opportunity gets a second task; the text
//! names the call id (`Recorded by firstcall (call N)`) so a duplicate can be recognised.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{CallRecord, Connector, CrmActivity, CrmActivityKind, CrmContact, CrmError, CrmLineItem, DealContext, Http, WonDeal};
use crate::config::CrmSettings;
use crate::config::crm::{Credential, SalesforceConnector};
use crate::domain::{Currency, Source, printable};

/// The most pages one related list may take: a guard against a locator that never ends.
const MAX_PAGES: usize = 1000;

/// The longest `Task.Subject` (a 255-character string field).
const SUBJECT_MAX: usize = 255;
/// The longest `Task.Description` (a 32,000-character text area, labelled Comments).
const DESCRIPTION_MAX: usize = 32_000;

/// The connector for one Salesforce org.
pub struct Salesforce {
    http: Http,
    client_id: Credential,
    client_secret: Credential,
    api_version: String,
    notes_field: Option<String>,
    default_currency: Option<Currency>,
    /// The access token in use; renewed under this lock, so one renewal serves every request
    /// that was refused with the same token.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

/// An access token and the instance it is for. Not `Debug`: the token is a credential.
struct Session {
    access_token: String,
    instance_url: String,
}

impl Salesforce {
    pub fn new(c: &SalesforceConnector, s: &CrmSettings) -> Result<Salesforce, String> {
        let (Some(base_url), Some(client_id), Some(client_secret)) = (&c.base_url, &c.client_id, &c.client_secret) else {
            return Err("crm.salesforce: base_url, client_id and client_secret are needed together".into());
        };
        if let Some(field) = &c.notes_field
            && !is_field_name(field)
        {
            return Err(format!("crm.salesforce.notes_field: '{}' is not a field name such as Description", printable(field)));
        }
        Ok(Salesforce {
            http: super::http_for("salesforce", base_url, c.requests_per_second, s)?,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            api_version: c.api_version.clone(),
            notes_field: c.notes_field.clone(),
            default_currency: c.default_currency.clone(),
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// The query for opportunity `id` (already checked by [`is_record_id`]).
    fn soql(&self, id: &str) -> String {
        let mut fields = vec!["Id", "Name", "LastModifiedDate", "OwnerId", "Owner.Email", "Account.Name"];
        if self.default_currency.is_none() {
            fields.push("CurrencyIsoCode");
        }
        if let Some(f) = &self.notes_field
            && !fields.iter().any(|x| x.eq_ignore_ascii_case(f))
        {
            fields.push(f);
        }
        format!(
            "SELECT {}, \
             (SELECT ContactId, Role, IsPrimary, Contact.Name, Contact.Email, Contact.Title FROM OpportunityContactRoles), \
             (SELECT ProductCode, Name, Product2.Name, Quantity, UnitPrice, Description FROM OpportunityLineItems), \
             (SELECT Subject, Description, ActivityDate, CreatedDate, TaskSubtype FROM Tasks), \
             (SELECT Subject, Description, StartDateTime, CreatedDate FROM Events), \
             (SELECT Title, Body, CreatedDate FROM Notes) \
             FROM Opportunity WHERE Id = '{id}'",
            fields.join(", ")
        )
    }

    /// The query for the won opportunities last modified at or after `since`, oldest first.
    ///
    /// The only value in it that is not a constant of this code is the `dateTime` literal, and
    /// that is formatted here from a `DateTime<Utc>` (digits, `-`, `:`, `T`, `Z`), never taken
    /// from outside text, so nothing can change the query. SOQL writes a `dateTime` unquoted
    /// (`LastModifiedDate >= 2026-10-05T12:00:00Z`); it is floored to the second, the precision
    /// of the documented format, and what that lets in before `since` is dropped after reading.
    fn won_soql(&self, since: DateTime<Utc>, max: usize) -> String {
        let mut fields = vec!["Id", "Name", "Amount", "CloseDate", "LastModifiedDate", "OwnerId", "Owner.Email", "Account.Name"];
        if self.default_currency.is_none() {
            fields.push("CurrencyIsoCode");
        }
        format!(
            "SELECT {} FROM Opportunity WHERE IsWon = true AND LastModifiedDate >= {} \
             ORDER BY LastModifiedDate ASC, Id ASC LIMIT {max}",
            fields.join(", "),
            since.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }

    async fn read_won(&self, since: DateTime<Utc>, max: usize) -> Result<Vec<WonDeal>, CrmError> {
        let mut won = Vec::new();
        if max == 0 {
            return Ok(won);
        }
        let query_path = format!("/services/data/{}/query", self.api_version);
        let body = self.get(&query_path, Some(&self.won_soql(since, max))).await.map_err(|e| self.explain(e, false))?;
        let mut page: Page<Box<RawValue>> = parse(&body, "the won opportunities")?;
        for _ in 0..MAX_PAGES {
            for raw in std::mem::take(&mut page.records) {
                if let Some(deal) = self.won_deal(&raw, since) {
                    won.push(deal);
                }
            }
            let next = match (page.done, page.next_records_url.take()) {
                (false, Some(next)) if won.len() < max => next,
                _ => {
                    // The query orders them; kept in that order even if a batch did not.
                    won.sort_by(|a, b| (a.modified_at, &a.deal_id).cmp(&(b.modified_at, &b.deal_id)));
                    won.truncate(max);
                    return Ok(won);
                }
            };
            if !next.starts_with("/services/data/") {
                return Err(CrmError::Invalid(format!("salesforce: a nextRecordsUrl that is not an API path: {}", printable(&next))));
            }
            let body = self.get(&next, None).await?;
            page = parse(&body, "the next batch of won opportunities")?;
        }
        Err(CrmError::Invalid(format!("salesforce: the won opportunities ran past {MAX_PAGES} batches")))
    }

    /// One row of the won query, or `None` (with a warning) when it has no record id or its
    /// times cannot be read.
    fn won_deal(&self, raw: &RawValue, since: DateTime<Utc>) -> Option<WonDeal> {
        let row: WonRow = match serde_json::from_str(raw.get()) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(crm = "salesforce", error = %e, "a won opportunity that cannot be read is skipped");
                return None;
            }
        };
        let Some(id) = row.id.filter(|id| is_record_id(id)) else {
            tracing::warn!(crm = "salesforce", "a won opportunity without a record id is skipped");
            return None;
        };
        let Some(modified_at) = row.last_modified_date.as_deref().and_then(sf_datetime) else {
            tracing::warn!(crm = "salesforce", deal = %id, "a won opportunity without a readable LastModifiedDate is skipped");
            return None;
        };
        let won_at = match row.close_date.as_deref() {
            None => modified_at,
            Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(d) => d.and_time(NaiveTime::MIN).and_utc(),
                Err(_) => {
                    tracing::warn!(crm = "salesforce", deal = %id, close_date = %printable(d), "a won opportunity with an unreadable CloseDate is skipped");
                    return None;
                }
            },
        };
        if modified_at < since {
            // Let in by the query's whole-second bound.
            return None;
        }
        // A currency field is a JSON number; kept as written, never rounded through a float.
        let amount = row.amount.map(|a| a.get().to_string()).filter(|a| serde_json::from_str::<serde_json::Number>(a).is_ok());
        Some(WonDeal {
            deal_id: id,
            won_at,
            modified_at,
            amount,
            currency: self.default_currency.as_ref().map(|c| c.as_str().to_string()).or(row.currency_iso_code),
            owner_email: row.owner.and_then(|o| o.email),
            owner_id: row.owner_id,
            account_name: row.account.and_then(|a| a.name),
        })
    }

    async fn read_deal(&self, deal_id: &str) -> Result<DealContext, CrmError> {
        if !is_record_id(deal_id) {
            return Err(CrmError::NotFound(format!("salesforce: '{}' is not a Salesforce record id", printable(deal_id))));
        }
        let query_path = format!("/services/data/{}/query", self.api_version);
        let soql = self.soql(deal_id);
        let body = self.get(&query_path, Some(&soql)).await.map_err(|e| self.explain(e, true))?;
        let first: Page<Opportunity> = parse(&body, "the opportunity")?;
        let Some(opp) = first.records.into_iter().next() else {
            return Err(CrmError::NotFound(format!("salesforce: no opportunity {deal_id}")));
        };
        let notes_field = match &self.notes_field {
            Some(field) => parse::<Page<serde_json::Map<String, serde_json::Value>>>(&body, "the opportunity")?
                .records
                .first()
                .and_then(|r| r.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)).map(|(_, v)| v.clone()))
                .and_then(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }),
            None => None,
        };

        let roles = self.all(opp.contact_roles).await?;
        let items = self.all(opp.line_items).await?;
        let tasks = self.all(opp.tasks).await?;
        let events = self.all(opp.events).await?;
        let notes = self.all(opp.notes).await?;

        let mut activities = Vec::with_capacity(tasks.len() + events.len() + notes.len());
        activities.extend(tasks.into_iter().map(Task::into_activity));
        activities.extend(events.into_iter().map(Event::into_activity));
        activities.extend(notes.into_iter().map(|n| CrmActivity {
            at: n.created_date.0,
            kind: CrmActivityKind::Note,
            subject: n.title.unwrap_or_default(),
            body: n.body,
            html: false,
        }));
        Ok(DealContext {
            deal_name: opp.name,
            account_name: opp.account.and_then(|a| a.name),
            owner_email: opp.owner.and_then(|o| o.email),
            owner_id: opp.owner_id,
            currency: self.default_currency.as_ref().map(|c| c.as_str().to_string()).or(opp.currency_iso_code),
            contacts: contacts_of(roles),
            line_items: items.into_iter().map(LineItem::into_item).collect(),
            quote_line_items: None,
            activities,
            notes_field,
            modified_at: opp.last_modified_date.map(|d| d.0),
        })
    }

    /// Every record of a related list: its first batch, then each `nextRecordsUrl` in turn.
    async fn all<T: DeserializeOwned>(&self, first: Option<Page<T>>) -> Result<Vec<T>, CrmError> {
        let Some(mut page) = first else { return Ok(Vec::new()) };
        let mut records = std::mem::take(&mut page.records);
        for _ in 0..MAX_PAGES {
            let next = match (page.done, page.next_records_url.take()) {
                (false, Some(next)) => next,
                _ => return Ok(records),
            };
            if !next.starts_with("/services/data/") {
                return Err(CrmError::Invalid(format!("salesforce: a nextRecordsUrl that is not an API path: {}", printable(&next))));
            }
            let body = self.get(&next, None).await?;
            page = parse(&body, "a related list's next batch")?;
            records.append(&mut page.records);
        }
        Err(CrmError::Invalid(format!("salesforce: a related list ran past {MAX_PAGES} batches")))
    }

    /// Creates the completed task that records `record` on opportunity `deal_id`.
    async fn create_task(&self, deal_id: &str, record: &CallRecord) -> Result<(), CrmError> {
        if !is_record_id(deal_id) || !deal_id.starts_with(OPPORTUNITY_PREFIX) {
            return Err(CrmError::NotFound(format!("salesforce: '{}' is not a Salesforce opportunity id", printable(deal_id))));
        }
        let body = task_of(deal_id, record);
        let path = format!("/services/data/{}/sobjects/Task/", self.api_version);
        let answer = self.api(&path, |c, url| c.post(url).json(&body)).await.map_err(|e| match e {
            // The opportunity was deleted or merged, or the integration user cannot see it.
            CrmError::Invalid(m) if m.contains("INVALID_CROSS_REFERENCE_KEY") => {
                CrmError::NotFound(format!("salesforce: no opportunity {deal_id} to record the call on ({m})"))
            }
            e => e,
        })?;
        let created: Created = parse(&answer, "the created task")?;
        match created.id {
            Some(id) if created.success => {
                tracing::info!(crm = "salesforce", deal = %deal_id, task = %printable(&id), call = record.call_id, "the call is recorded as a task");
                Ok(())
            }
            _ => Err(CrmError::Invalid(format!("salesforce: the task was not created: {}", printable(&created.errors.to_string())))),
        }
    }

    /// `GET {instance_url}{path}[?q=soql]`, through [`Salesforce::api`].
    async fn get(&self, path: &str, soql: Option<&str>) -> Result<Vec<u8>, CrmError> {
        self.api(path, |c, url| {
            let req = c.get(url);
            match soql {
                Some(q) => req.query(&[("q", q)]),
                None => req,
            }
        })
        .await
    }

    /// The request `build` makes for `{instance_url}{path}`, with the current token; once more
    /// with a new token if the token is refused. Answers the body of a success.
    async fn api(&self, path: &str, build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder) -> Result<Vec<u8>, CrmError> {
        let session = self.session(None).await?;
        match self.api_with(&session, path, &build).await {
            Err(CrmError::Unauthorized(_)) => {
                tracing::info!(crm = "salesforce", "the access token was refused; getting a new one");
                let renewed = self.session(Some(&session)).await?;
                self.api_with(&renewed, path, &build).await
            }
            other => other,
        }
    }

    async fn api_with(
        &self,
        s: &Session,
        path: &str,
        build: &impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, CrmError> {
        let url = format!("{}{path}", s.instance_url);
        let resp = self.http.send(|c| build(c, &url).bearer_auth(&s.access_token)).await?;
        let bytes = resp.bytes().await.map_err(|e| CrmError::Unavailable(format!("salesforce: reading {path}: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// The token to use: the kept one, or a new one when there is none or when `refused` is the
    /// one kept (another request may have renewed it already; then that one is used).
    async fn session(&self, refused: Option<&Arc<Session>>) -> Result<Arc<Session>, CrmError> {
        let mut kept = self.session.lock().await;
        if let Some(s) = kept.as_ref()
            && refused.is_none_or(|r| r.access_token != s.access_token)
        {
            return Ok(s.clone());
        }
        *kept = None;
        let fresh = Arc::new(self.request_token().await?);
        *kept = Some(fresh.clone());
        Ok(fresh)
    }

    /// The client credentials flow: `POST /services/oauth2/token`.
    async fn request_token(&self) -> Result<Session, CrmError> {
        let url = self.http.url("/services/oauth2/token");
        let form =
            [("grant_type", "client_credentials"), ("client_id", self.client_id.expose()), ("client_secret", self.client_secret.expose())];
        // Salesforce answers refused credentials with 400 (`invalid_client`, `invalid_grant`),
        // which the shared client reads as an unusable answer: here it is a refusal.
        let resp = self.http.send(|c| c.post(&url).form(&form)).await.map_err(|e| match e {
            CrmError::Invalid(m) => CrmError::Unauthorized(m),
            e => e,
        })?;
        let bytes = resp.bytes().await.map_err(|e| CrmError::Unavailable(format!("salesforce: reading the token: {e}")))?;
        let token: TokenResponse = parse(&bytes, "the token answer")?;
        let instance_url = token.instance_url.trim_end_matches('/').to_string();
        // The token goes only where the base URL's rules allow: https, or the base URL itself.
        if !instance_url.starts_with("https://") && instance_url != self.http.base_url() {
            return Err(CrmError::Invalid(format!("salesforce: the token is for '{}', which is not https", printable(&instance_url))));
        }
        Ok(Session { access_token: token.access_token, instance_url })
    }

    /// A refused query names the settings that add fields to it (Salesforce's answer echoes the
    /// query, so which field it refused may be cut off); `notes_field` says whether the query
    /// named the configured notes field.
    fn explain(&self, e: CrmError, notes_field: bool) -> CrmError {
        let CrmError::Invalid(m) = e else { return e };
        let mut hints = Vec::new();
        if self.default_currency.is_none() {
            hints.push("an org without multi-currency has no CurrencyIsoCode: set crm.salesforce.default_currency");
        }
        if notes_field && self.notes_field.is_some() {
            hints.push("check that crm.salesforce.notes_field is an Opportunity field");
        }
        if hints.is_empty() { CrmError::Invalid(m) } else { CrmError::Invalid(format!("{m} ({})", hints.join("; "))) }
    }
}

impl Connector for Salesforce {
    fn source(&self) -> Source {
        Source::Salesforce
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(self.read_deal(deal_id))
    }

    fn won_since<'a>(&'a self, since: DateTime<Utc>, max: usize) -> BoxFuture<'a, Result<Vec<WonDeal>, CrmError>> {
        Box::pin(self.read_won(since, max))
    }

    fn record_call<'a>(&'a self, deal_id: &'a str, record: &'a CallRecord) -> BoxFuture<'a, Result<(), CrmError>> {
        Box::pin(self.create_task(deal_id, record))
    }
}

/// A Salesforce record id: 15 (case-sensitive) or 18 (case-safe) letters and digits.
pub fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The key prefix every Opportunity id starts with.
const OPPORTUNITY_PREFIX: &str = "006";

/// The task that records the call on opportunity `deal_id`: done, dated the day it was marked.
fn task_of(deal_id: &str, record: &CallRecord) -> serde_json::Value {
    serde_json::json!({
        "WhatId": deal_id,
        "Subject": record.subject().chars().take(SUBJECT_MAX).collect::<String>(),
        "Description": description_of(&record.text()),
        "Status": "Completed",
        "ActivityDate": record.at.format("%Y-%m-%d").to_string(),
        "Priority": "Normal",
    })
}

/// `text` as a task's description: whole when it fits, else with its body shortened (a marker
/// says so) and its last two lines, the call page and the call id, kept.
fn description_of(text: &str) -> String {
    if text.chars().count() <= DESCRIPTION_MAX {
        return text.to_string();
    }
    const CUT: &str = "\n[… shortened: the rest is on the call page]\n";
    let mut lines: Vec<&str> = text.split('\n').collect();
    let tail_at = lines.len().saturating_sub(2);
    let tail = lines.split_off(tail_at).join("\n");
    let head = lines.join("\n");
    let room = DESCRIPTION_MAX.saturating_sub(tail.chars().count() + CUT.chars().count());
    let mut out: String = head.chars().take(room).collect();
    out.push_str(CUT);
    out.push_str(&tail);
    out.chars().take(DESCRIPTION_MAX).collect()
}

/// A field API name (`Description`, `Firstcall_Notes__c`, `ns__Notes__c`).
fn is_field_name(f: &str) -> bool {
    f.len() <= 120 && f.starts_with(|c: char| c.is_ascii_alphabetic()) && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CrmError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| CrmError::Invalid(format!("salesforce: {what}: {e}")))
}

/// The contacts of the contact roles, one per contact with all its role names, the primary
/// contact first.
fn contacts_of(mut roles: Vec<ContactRole>) -> Vec<CrmContact> {
    roles.sort_by_key(|r| !r.is_primary);
    let mut out: Vec<(Option<String>, CrmContact)> = Vec::new();
    for r in roles {
        let Some(c) = r.contact else { continue };
        let role = r.role.filter(|x| !x.trim().is_empty());
        if let Some(id) = &r.contact_id
            && let Some((_, known)) = out.iter_mut().find(|(k, _)| k.as_ref() == Some(id))
        {
            known.roles.extend(role.filter(|x| !known.roles.contains(x)));
            continue;
        }
        out.push((
            r.contact_id,
            CrmContact { name: c.name.unwrap_or_default(), email: c.email, title: c.title, roles: role.into_iter().collect() },
        ));
    }
    out.into_iter().map(|(_, c)| c).collect()
}

/// The answer to a create (`{"id":"00T…","success":true,"errors":[]}`).
#[derive(Deserialize)]
struct Created {
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: serde_json::Value,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

/// A query result, and each subquery's result inside a record (`null` when it has no rows).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    done: bool,
    records: Vec<T>,
    next_records_url: Option<String>,
}

/// A row of the won query. Times are read by [`Salesforce::won_deal`], so that one bad row is
/// skipped rather than failing the batch.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WonRow {
    id: Option<String>,
    amount: Option<Box<RawValue>>,
    close_date: Option<String>,
    last_modified_date: Option<String>,
    owner_id: Option<String>,
    owner: Option<Named>,
    account: Option<Named>,
    currency_iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Opportunity {
    name: Option<String>,
    owner_id: Option<String>,
    owner: Option<Named>,
    account: Option<Named>,
    currency_iso_code: Option<String>,
    last_modified_date: Option<SfDateTime>,
    #[serde(rename = "OpportunityContactRoles")]
    contact_roles: Option<Page<ContactRole>>,
    #[serde(rename = "OpportunityLineItems")]
    line_items: Option<Page<LineItem>>,
    tasks: Option<Page<Task>>,
    events: Option<Page<Event>>,
    notes: Option<Page<Note>>,
}

/// A parent record as a query returns it (`Owner.Email`, `Account.Name`, `Product2.Name`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Named {
    name: Option<String>,
    email: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContactRole {
    contact_id: Option<String>,
    role: Option<String>,
    #[serde(default)]
    is_primary: bool,
    contact: Option<Named>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LineItem {
    product_code: Option<String>,
    /// The opportunity product's name: the opportunity's name and the product's.
    name: Option<String>,
    product2: Option<Named>,
    quantity: Option<f64>,
    /// Kept as the answer wrote it, so a price is never rounded through a float.
    unit_price: Option<Box<RawValue>>,
    description: Option<String>,
}

impl LineItem {
    fn into_item(self) -> CrmLineItem {
        let name = self.product2.and_then(|p| p.name).or(self.name).unwrap_or_default();
        CrmLineItem {
            sku: self.product_code,
            name,
            quantity: self.quantity.unwrap_or(f64::NAN),
            unit_price: self.unit_price.map(|p| p.get().trim_matches('"').to_string()).unwrap_or_default(),
            currency: None,
            description: self.description,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Task {
    subject: Option<String>,
    description: Option<String>,
    activity_date: Option<NaiveDate>,
    created_date: SfDateTime,
    task_subtype: Option<String>,
}

impl Task {
    fn into_activity(self) -> CrmActivity {
        let kind = match self.task_subtype.as_deref() {
            Some("Email" | "ListEmail") => CrmActivityKind::Email,
            Some("Call") => CrmActivityKind::Call,
            _ => CrmActivityKind::Task,
        };
        // The activity's date says when it happened (a call logged later keeps its day); the
        // creation time gives the hour when it is the same day.
        let created = self.created_date.0;
        let at = match self.activity_date {
            Some(d) if d != created.date_naive() => d.and_time(NaiveTime::MIN).and_utc(),
            _ => created,
        };
        CrmActivity {
            at,
            kind,
            subject: self.subject.unwrap_or_default(),
            body: if kind == CrmActivityKind::Email { None } else { self.description },
            html: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    subject: Option<String>,
    description: Option<String>,
    start_date_time: Option<SfDateTime>,
    created_date: SfDateTime,
}

impl Event {
    fn into_activity(self) -> CrmActivity {
        CrmActivity {
            at: self.start_date_time.unwrap_or(self.created_date).0,
            kind: CrmActivityKind::Meeting,
            subject: self.subject.unwrap_or_default(),
            body: self.description,
            html: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Note {
    title: Option<String>,
    body: Option<String>,
    created_date: SfDateTime,
}

/// A Salesforce dateTime: `2026-10-05T12:00:00.000+0000` (RFC 3339 also read).
struct SfDateTime(DateTime<Utc>);

impl<'de> Deserialize<'de> for SfDateTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        sf_datetime(&s).map(SfDateTime).ok_or_else(|| serde::de::Error::custom(format!("'{}' is not a Salesforce dateTime", printable(&s))))
    }
}

/// A Salesforce dateTime as UTC, if it is one.
fn sf_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").or_else(|_| DateTime::parse_from_rfc3339(s)).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_record_ids_go_into_the_query() {
        assert!(is_record_id("006Dn000004ABCDIA2"));
        assert!(is_record_id("006Dn000004ABCD"));
        assert!(!is_record_id("006' OR Name != '"));
        assert!(!is_record_id("006Dn000004ABCDI"));
        assert!(!is_record_id("006Dn000004AB-DIA2"));
        assert!(is_field_name("Firstcall_Notes__c") && is_field_name("Description"));
        assert!(!is_field_name("Name, (SELECT Id FROM Cases)") && !is_field_name("_x") && !is_field_name(""));
    }

    #[test]
    fn salesforce_times_and_raw_prices_are_read() {
        let t: SfDateTime = serde_json::from_str("\"2026-10-05T12:30:00.000+0000\"").unwrap();
        assert_eq!(t.0.to_rfc3339(), "2026-10-05T12:30:00+00:00");
        let item: LineItem = parse(br#"{"Name":"Acme Pro seat","Product2":{"Name":"Pro seat"},"Quantity":120.0,"UnitPrice":420.10,"ProductCode":null,"Description":null}"#, "x").unwrap();
        let item = item.into_item();
        assert_eq!((item.name.as_str(), item.unit_price.as_str()), ("Pro seat", "420.10"));
    }

    fn record(notes: &str) -> CallRecord {
        CallRecord {
            call_id: 77,
            event: "done".into(),
            at: "2026-10-20T23:30:00Z".parse().unwrap(),
            outcome: Some("at_risk".into()),
            notes: Some(notes.into()),
            rep_email: "ana@seller.example".into(),
            call_url: "https://firstcall.example/calls/77".into(),
        }
    }

    #[test]
    fn a_call_is_a_completed_task_on_the_opportunity() {
        let r = record("They expect SSO in January.");
        let task = task_of("006Dn000000001042A", &r);
        assert_eq!(task["WhatId"], "006Dn000000001042A");
        assert_eq!(task["Subject"], "First call after the order: done (at risk)");
        assert_eq!(task["Description"], r.text());
        assert_eq!((task["Status"].as_str(), task["Priority"].as_str()), (Some("Completed"), Some("Normal")));
        assert_eq!(task["ActivityDate"], "2026-10-20", "the UTC day it was marked");
    }

    #[test]
    fn long_notes_are_shortened_but_the_call_page_and_id_are_kept() {
        let r = record(&"é".repeat(40_000));
        let d = description_of(&r.text());
        assert_eq!(d.chars().count(), DESCRIPTION_MAX);
        assert!(d.starts_with("First call after the order: done (at risk)\nOutcome: at risk"));
        assert!(d.contains("[… shortened: the rest is on the call page]"));
        assert!(d.ends_with("Call page: https://firstcall.example/calls/77\nRecorded by firstcall (call 77) at 2026-10-20 23:30 UTC"));
        let short = record("fine").text();
        assert_eq!(description_of(&short), short);
    }

    #[test]
    fn a_call_logged_later_keeps_its_day() {
        let task = |subtype: &str, day: Option<&str>| Task {
            subject: Some("x".into()),
            description: Some("notes".into()),
            activity_date: day.map(|d| d.parse().unwrap()),
            created_date: SfDateTime("2026-10-05T12:30:00Z".parse().unwrap()),
            task_subtype: Some(subtype.into()),
        };
        let call = task("Call", Some("2026-10-03")).into_activity();
        assert_eq!((call.kind, call.at.to_rfc3339().as_str()), (CrmActivityKind::Call, "2026-10-03T00:00:00+00:00"));
        let email = task("Email", Some("2026-10-05")).into_activity();
        assert_eq!((email.kind, email.at.to_rfc3339().as_str(), email.body), (CrmActivityKind::Email, "2026-10-05T12:30:00+00:00", None));
    }
}
