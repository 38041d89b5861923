//! Pipedrive connector: reads a won deal's story from the company's Pipedrive
//! (`https://<company>.pipedrive.com`) with the API token of the user firstcall acts as, sent
//! in the `x-api-token` header (never in the URL, where proxies and logs would keep it).
//! API v2 where Pipedrive has it, v1 where it has none:
//!
//! | what | request |
//! |---|---|
//! | the deal: title, owner, main person, organization, currency, `update_time`, the notes field (a key of `custom_fields`) | `GET /api/v2/deals/{id}` |
//! | the owner's email (the rep) | `GET /api/v1/users/{owner_id}` |
//! | the organization's name (the account) | `GET /api/v2/organizations/{org_id}` |
//! | the deal's participants (persons) | `GET /api/v1/deals/{id}/participants`, v1 pages (`start`, `next_start`) |
//! | those persons, 100 ids a request: name, primary email, job title | `GET /api/v2/persons?ids=…`, v2 pages (`cursor`, `next_cursor`) |
//! | line items: name, quantity, `item_price`, currency, comments | `GET /api/v2/deals/{id}/products`, v2 pages |
//! | notes (HTML, `add_time` in UTC) | `GET /api/v1/notes?deal_id=…`, v1 pages |
//! | calls, meetings, emails, tasks (`note` is the HTML description) | `GET /api/v2/activities?deal_id=…`, v2 pages |
//! | the won deals modified since a time (the reconciler's question) | `GET /api/v2/deals?status=won&updated_since=…&sort_by=update_time&sort_direction=asc`, v2 pages |
//! | those deals' organizations' names, 100 ids a request | `GET /api/v2/organizations?ids=…` |
//! | the call's outcome, written back as a note on the deal | `POST /api/v1/notes` (notes have no v2 endpoint) |
//!
//! One deal costs `1 + owner + organization + P + Σ persons pages + D + N + A` requests: the
//! deal; one for the owner and one for the organization when the deal has them; `P` pages of
//! participants, `D` of products, `N` of notes and `A` of activities (each at least one, 500
//! items a page); and for the persons one page per 100 of them (none when the deal has no
//! person). A typical deal, under 100 persons and 500 of everything else, costs 8.
//!
//! Reading the won deals since a time costs `P + U + ⌈O/100⌉` requests: `P` pages of deals
//! (at least one; `min(max, 500)` deals a page), one user lookup per distinct owner `U` and one
//! organizations request per 100 distinct organizations `O` among the deals returned (none when
//! they have none). `updated_since` is inclusive and whole seconds (RFC 3339, `…T10:20:00Z`);
//! `won_at` is `won_time`, `update_time` when it has none; `amount` is `value` as sent. A listed
//! deal without an id, not won, or with a time that does not read is skipped with a warning.
//!
//! The requests go one after the other: a deal needs few, and one in flight at a time means a
//! pause asked by a `429` or by the `x-ratelimit-*` headers is never overrun by requests
//! already sent.
//!
//! What Pipedrive does not give, and what stands in:
//! - role names: Pipedrive has no contact roles on deals; a person's job title (`job_title`,
//!   which Pipedrive returns only when contact sync is on for the company) is the role name
//!   `[crm.roles]` maps, and also the contact's title;
//! - product codes: a deal's products carry no code, so the name is the SKU;
//! - unit prices: `item_price` is the price before the product's discount on the deal;
//! - the deal's main person is a participant even if the participants list omits it.
//!
//! Writing a call's outcome back ([`Connector::record_call`]) costs one request: `POST
//! /api/v1/notes` with `{"content": <HTML>, "deal_id": <id>}` ("Add a note", API v1; Pipedrive
//! has no notes in v2). The note is HTML, as Pipedrive notes are: the subject
//! ([`CallRecord::subject`]) in bold as its first paragraph, then each line of
//! [`CallRecord::text`] escaped in a paragraph of its own. Its author is the user whose API
//! token firstcall holds, who must be allowed to see the deal (with OAuth, the reference asks for
//! the `deals:full` or `contacts:full` scope). The note then shows in the deal's history and
//! is read back by [`Connector::fetch_deal`] like any other note. Pipedrive documents only the
//! `200` of "Add a note"; a deal it does not have is taken as its `404` for a missing resource
//! ([`CrmError::NotFound`], not retried). The request is not idempotent: when the answer to a
//! note Pipedrive did create is lost (a timeout, a dropped connection), the engine's retry adds a
//! second note. Both carry the call id ("Recorded by firstcall (call N)"), so a duplicate is
//! recognisable; no search is made before creating.
//!
//! Deal ids are Pipedrive's numbers: anything else is [`CrmError::NotFound`] before any request.
//! An owner or organization that is gone (404) leaves the rep or the account unknown rather than
//! failing the deal. Products switched off on the deal (`is_enabled: false`) are not line items.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{CallRecord, Connector, CrmActivity, CrmActivityKind, CrmContact, CrmError, CrmLineItem, DealContext, Http, WonDeal};
use crate::config::CrmSettings;
use crate::config::crm::{Credential, PipedriveConnector};
use crate::domain::{Source, printable_up_to};

/// Items asked for per page (Pipedrive's maximum for v1 and v2 lists).
const PAGE_LIMIT: u32 = 500;
/// Ids per `GET /api/v2/persons?ids=` (Pipedrive's maximum).
const IDS_PER_REQUEST: usize = 100;
/// Pages read of one list before the answer is taken as broken (100,000 items at 500 a page).
const MAX_PAGES: usize = 200;
/// The longest deal id: Pipedrive's ids are positive 64-bit integers.
const MAX_ID_DIGITS: usize = 18;

pub struct Pipedrive {
    http: Http,
    api_token: Credential,
    notes_field: Option<String>,
}

impl Pipedrive {
    pub fn new(c: &PipedriveConnector, s: &CrmSettings) -> Result<Pipedrive, String> {
        let base_url =
            c.base_url.as_deref().ok_or("pipedrive: base_url (the company domain, https://<company>.pipedrive.com) is not set")?;
        let api_token = c.api_token.clone().ok_or("pipedrive: api_token is not set")?;
        Ok(Pipedrive {
            http: super::http_for("pipedrive", base_url, c.requests_per_second, s)?,
            api_token,
            notes_field: c.notes_field.clone().filter(|f| !f.trim().is_empty()),
        })
    }

    /// `GET path?query` with the token in its header, read as `T`.
    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, CrmError> {
        let url = self.http.url(path);
        self.http.json(|c| c.get(&url).header("x-api-token", self.api_token.expose()).query(query)).await
    }

    /// Every item of a v1 list, following `additional_data.pagination.next_start`.
    async fn v1_list<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<T>, CrmError> {
        let mut items = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("start", start.to_string()));
            q.push(("limit", PAGE_LIMIT.to_string()));
            let page: V1Page<T> = self.get(path, &q).await?;
            let read = page.data.as_ref().map_or(0, Vec::len) as u64;
            items.extend(page.data.unwrap_or_default());
            let Some(p) = page.additional_data.and_then(|a| a.pagination).filter(|p| p.more_items_in_collection) else {
                return Ok(items);
            };
            let next = p.next_start.unwrap_or(start + read);
            if next <= start {
                return Err(CrmError::Invalid(format!("pipedrive: {path}: the next page starts at {next}, not after {start}")));
            }
            start = next;
        }
        Err(CrmError::Invalid(format!("pipedrive: {path}: more than {MAX_PAGES} pages")))
    }

    /// Every item of a v2 list, following `additional_data.next_cursor`.
    async fn v2_list<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<T>, CrmError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("limit", PAGE_LIMIT.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: V2Page<T> = self.get(path, &q).await?;
            items.extend(page.data.unwrap_or_default());
            match page.additional_data.and_then(|a| a.next_cursor).filter(|c| !c.is_empty()) {
                None => return Ok(items),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(CrmError::Invalid(format!("pipedrive: {path}: the same cursor came back twice")));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(CrmError::Invalid(format!("pipedrive: {path}: more than {MAX_PAGES} pages")))
    }

    async fn fetch(&self, deal_id: &str) -> Result<DealContext, CrmError> {
        let id = deal_number(deal_id)?;
        let deal = self
            .get::<One<Deal>>(&format!("/api/v2/deals/{id}"), &[])
            .await?
            .data
            .ok_or_else(|| CrmError::NotFound(format!("pipedrive deal {id}: the answer holds no deal")))?;

        let owner_email = match deal.owner_id {
            Some(user) => found(self.get::<One<User>>(&format!("/api/v1/users/{user}"), &[]).await)?
                .and_then(|u| u.data)
                .and_then(|u| u.email)
                .filter(|e| !e.trim().is_empty()),
            None => None,
        };
        let account_name = match deal.org_id {
            Some(org) => found(self.get::<One<Organization>>(&format!("/api/v2/organizations/{org}"), &[]).await)?
                .and_then(|o| o.data)
                .and_then(|o| o.name)
                .filter(|n| !n.trim().is_empty()),
            None => None,
        };

        let participants: Vec<Participant> = self.v1_list(&format!("/api/v1/deals/{id}/participants"), &[]).await?;
        let mut person_ids: Vec<u64> = Vec::new();
        let mut seen = HashSet::new();
        for pid in deal.person_id.into_iter().chain(participants.iter().filter_map(Participant::person)) {
            if seen.insert(pid) {
                person_ids.push(pid);
            }
        }
        let mut persons: HashMap<u64, Person> = HashMap::new();
        for chunk in person_ids.chunks(IDS_PER_REQUEST) {
            let ids = chunk.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let page: Vec<Person> = self.v2_list("/api/v2/persons", &[("ids", ids)]).await?;
            persons.extend(page.into_iter().map(|p| (p.id, p)));
        }
        let contacts = person_ids.iter().filter_map(|pid| persons.remove(pid)).map(Person::into_contact).collect();

        let products: Vec<DealProduct> = self.v2_list(&format!("/api/v2/deals/{id}/products"), &[]).await?;
        let line_items = products.into_iter().filter(|p| p.is_enabled != Some(false)).map(DealProduct::into_line_item).collect();

        let modified_at = deal.update_time.as_deref().and_then(parse_time);
        let mut activities = Vec::new();
        let notes: Vec<Note> = self.v1_list("/api/v1/notes", &[("deal_id", id.to_string())]).await?;
        for note in notes.into_iter().filter(|n| n.active_flag != Some(false)) {
            let Some(at) = note.add_time.as_deref().and_then(parse_time).or(modified_at) else { continue };
            let body = note.content.filter(|c| !c.trim().is_empty());
            activities.push(CrmActivity { at, kind: CrmActivityKind::Note, subject: String::new(), body, html: true });
        }
        let logged: Vec<Activity> = self.v2_list("/api/v2/activities", &[("deal_id", id.to_string())]).await?;
        for a in logged.into_iter().filter(|a| a.is_deleted != Some(true)) {
            let Some(at) = a.at().or(modified_at) else { continue };
            let kind = activity_kind(a.kind.as_deref().unwrap_or_default());
            // An email's text is the customer's correspondence, not the rep's markup: never read.
            let body = if kind == CrmActivityKind::Email { None } else { a.note.filter(|n| !n.trim().is_empty()) };
            activities.push(CrmActivity { at, kind, subject: a.subject.unwrap_or_default(), body, html: true });
        }

        let notes_field = self.notes_field.as_deref().and_then(|key| match deal.custom_fields.as_ref()?.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        });

        Ok(DealContext {
            deal_name: deal.title.filter(|t| !t.trim().is_empty()),
            account_name,
            owner_email,
            owner_id: deal.owner_id.map(|id| id.to_string()),
            currency: deal.currency.filter(|c| !c.trim().is_empty()),
            contacts,
            line_items,
            quote_line_items: None,
            activities,
            notes_field,
            modified_at,
        })
    }

    /// The won deals modified at or after `since`, oldest modification first, up to `max`: the
    /// pages of `GET /api/v2/deals` filtered by status and `updated_since` and sorted by
    /// `update_time`, then one lookup per distinct owner and one per 100 distinct organizations.
    async fn won(&self, since: DateTime<Utc>, max: usize) -> Result<Vec<WonDeal>, CrmError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let since = since.max(DateTime::UNIX_EPOCH);
        // Pipedrive keeps whole seconds: asking from the start of `since`'s second includes it;
        // what comes back from before `since` within that second is dropped below.
        let query = [
            ("status", "won".to_string()),
            ("updated_since", since.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("sort_by", "update_time".to_string()),
            ("sort_direction", "asc".to_string()),
            ("limit", max.min(PAGE_LIMIT as usize).to_string()),
        ];
        let mut deals: Vec<Listed> = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        'pages: loop {
            if pages == MAX_PAGES {
                if deals.is_empty() {
                    return Err(CrmError::Invalid(format!("pipedrive: /api/v2/deals: more than {MAX_PAGES} pages without a usable deal")));
                }
                tracing::warn!(crm = "pipedrive", pages, read = deals.len(), "won deals: stopping after the most pages read in one call");
                break;
            }
            pages += 1;
            let mut q = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: V2Page<Box<RawValue>> = self.get("/api/v2/deals", &q).await?;
            for raw in page.data.unwrap_or_default() {
                let Some(deal) = Listed::read(&raw) else { continue };
                // A deal updated while the pages are read comes again on a later page: kept once.
                if deal.modified_at < since || !seen.insert(deal.id) {
                    continue;
                }
                deals.push(deal);
                if deals.len() == max {
                    break 'pages;
                }
            }
            match page.additional_data.and_then(|a| a.next_cursor).filter(|c| !c.is_empty()) {
                None => break,
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(CrmError::Invalid("pipedrive: /api/v2/deals: the same cursor came back twice".into()));
                }
                Some(next) => cursor = Some(next),
            }
        }
        deals.sort_by_key(|d| d.modified_at);

        let mut emails: HashMap<u64, Option<String>> = HashMap::new();
        for owner in deals.iter().filter_map(|d| d.owner_id) {
            if emails.contains_key(&owner) {
                continue;
            }
            let email = found(self.get::<One<User>>(&format!("/api/v1/users/{owner}"), &[]).await)?
                .and_then(|u| u.data)
                .and_then(|u| u.email)
                .filter(|e| !e.trim().is_empty());
            emails.insert(owner, email);
        }

        let mut org_ids: Vec<u64> = Vec::new();
        let mut seen = HashSet::new();
        org_ids.extend(deals.iter().filter_map(|d| d.org_id).filter(|o| seen.insert(*o)));
        let mut names: HashMap<u64, String> = HashMap::new();
        for chunk in org_ids.chunks(IDS_PER_REQUEST) {
            let ids = chunk.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let orgs: Vec<Organization> = self.v2_list("/api/v2/organizations", &[("ids", ids)]).await?;
            for o in orgs {
                if let (Some(id), Some(name)) = (o.id, o.name.filter(|n| !n.trim().is_empty())) {
                    names.insert(id, name);
                }
            }
        }

        Ok(deals
            .into_iter()
            .map(|d| WonDeal {
                deal_id: d.id.to_string(),
                won_at: d.won_at,
                modified_at: d.modified_at,
                amount: d.amount,
                currency: d.currency,
                owner_email: d.owner_id.and_then(|o| emails.get(&o).cloned().flatten()),
                owner_id: d.owner_id.map(|o| o.to_string()),
                account_name: d.org_id.and_then(|o| names.get(&o).cloned()),
            })
            .collect())
    }

    /// Adds the call's outcome to deal `deal_id` as a note: one `POST /api/v1/notes`. A `2xx`
    /// is a note created, even when its body does not read: calling that a failure would make
    /// the engine add the note again.
    async fn record(&self, deal_id: &str, record: &CallRecord) -> Result<(), CrmError> {
        let id = deal_number(deal_id)?;
        let body = serde_json::json!({"content": note_html(record), "deal_id": id});
        let url = self.http.url("/api/v1/notes");
        let resp = self.http.send(|c| c.post(&url).header("x-api-token", self.api_token.expose()).json(&body)).await?;
        let answer: Option<Added> = match resp.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        match answer {
            Some(Added { success: Some(false), error, .. }) => {
                let why = error.as_deref().map_or_else(|| "no reason given".to_string(), |e| printable_up_to(e, 200));
                Err(CrmError::Invalid(format!("pipedrive deal {id}: the note was refused: {why}")))
            }
            Some(Added { data: Some(AddedNote { id: Some(note) }), .. }) => {
                tracing::info!(crm = "pipedrive", deal = id, note, call = record.call_id, "call outcome recorded on the deal as a note");
                Ok(())
            }
            _ => {
                tracing::warn!(
                    crm = "pipedrive",
                    deal = id,
                    call = record.call_id,
                    "Pipedrive accepted the note but its answer names no note; taken as recorded"
                );
                Ok(())
            }
        }
    }
}

impl Connector for Pipedrive {
    fn source(&self) -> Source {
        Source::Pipedrive
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(self.fetch(deal_id))
    }

    fn won_since<'a>(&'a self, since: DateTime<Utc>, max: usize) -> BoxFuture<'a, Result<Vec<WonDeal>, CrmError>> {
        Box::pin(self.won(since, max))
    }

    fn record_call<'a>(&'a self, deal_id: &'a str, record: &'a CallRecord) -> BoxFuture<'a, Result<(), CrmError>> {
        Box::pin(self.record(deal_id, record))
    }
}

/// A Pipedrive deal id as the number it is, before it goes into a URL or a query.
fn deal_number(raw: &str) -> Result<u64, CrmError> {
    let digits = !raw.is_empty() && raw.len() <= MAX_ID_DIGITS && raw.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| raw.parse::<u64>().ok()).flatten().filter(|n| *n > 0).ok_or_else(|| {
        CrmError::NotFound(format!("pipedrive: '{}' is not a deal id (Pipedrive's deal ids are numbers)", printable_up_to(raw, 40)))
    })
}

/// The HTML of the note recording a call: the subject in bold as the first paragraph, then one
/// paragraph per line of the text after it (escaped; a blank line of the rep's notes is an empty
/// paragraph, as Pipedrive's editor keeps one).
fn note_html(record: &CallRecord) -> String {
    let subject = record.subject();
    let text = record.text();
    let mut lines = text.lines().peekable();
    // The text's first line is the subject, shown once, in bold.
    if lines.peek() == Some(&subject.as_str()) {
        lines.next();
    }
    let mut html = format!("<p><b>{}</b></p>", html_escape::encode_text(&subject));
    for line in lines {
        if line.trim().is_empty() {
            html.push_str("<p><br></p>");
        } else {
            html.push_str("<p>");
            html.push_str(&html_escape::encode_text(line));
            html.push_str("</p>");
        }
    }
    html
}

/// A missing owner or organization is an unknown one, not a missing deal.
fn found<T>(r: Result<T, CrmError>) -> Result<Option<T>, CrmError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CrmError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// v2 times are RFC 3339 (`2021-01-01T00:00:00Z`); v1 times are `YYYY-MM-DD HH:MM:SS` in UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc()))
}

/// Pipedrive's activity types as the buying process's kinds: its own types (deadline, lunch)
/// and a company's custom ones are tasks.
fn activity_kind(t: &str) -> CrmActivityKind {
    match t.trim().to_ascii_lowercase().as_str() {
        "call" => CrmActivityKind::Call,
        "meeting" => CrmActivityKind::Meeting,
        "email" => CrmActivityKind::Email,
        _ => CrmActivityKind::Task,
    }
}

/// A JSON number as the decimal text it was sent as (`420.5`); a string amount is taken as it is.
fn decimal_text(raw: Option<&RawValue>) -> String {
    let Some(raw) = raw else { return String::new() };
    let text = raw.get().trim();
    if let Ok(s) = serde_json::from_str::<String>(text) {
        return s;
    }
    if text.contains(['e', 'E'])
        && let Ok(n) = text.parse::<f64>()
    {
        // Rust prints a float without an exponent.
        return n.to_string();
    }
    if text == "null" { String::new() } else { text.to_string() }
}

// Pipedrive's answers, as far as firstcall reads them. Every field may be absent or null.

#[derive(Deserialize)]
struct One<T> {
    data: Option<T>,
}

/// The answer to `POST /api/v1/notes`: `success`, and the note created (its `id` is all that is
/// read); `error` when Pipedrive says `success: false`.
#[derive(Deserialize)]
struct Added {
    success: Option<bool>,
    error: Option<String>,
    data: Option<AddedNote>,
}

#[derive(Deserialize)]
struct AddedNote {
    id: Option<u64>,
}

#[derive(Deserialize)]
struct V1Page<T> {
    data: Option<Vec<T>>,
    additional_data: Option<V1Additional>,
}

#[derive(Deserialize)]
struct V1Additional {
    pagination: Option<V1Pagination>,
}

#[derive(Deserialize)]
struct V1Pagination {
    #[serde(default)]
    more_items_in_collection: bool,
    next_start: Option<u64>,
}

#[derive(Deserialize)]
struct V2Page<T> {
    data: Option<Vec<T>>,
    additional_data: Option<V2Additional>,
}

#[derive(Deserialize)]
struct V2Additional {
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Deal {
    title: Option<String>,
    owner_id: Option<u64>,
    person_id: Option<u64>,
    org_id: Option<u64>,
    currency: Option<String>,
    update_time: Option<String>,
    custom_fields: Option<HashMap<String, Value>>,
}

#[derive(Deserialize)]
struct User {
    email: Option<String>,
}

#[derive(Deserialize)]
struct Organization {
    id: Option<u64>,
    name: Option<String>,
}

/// A deal of `GET /api/v2/deals` as it is listed.
#[derive(Deserialize)]
struct ListedDeal {
    id: Option<u64>,
    owner_id: Option<u64>,
    org_id: Option<u64>,
    value: Option<Box<RawValue>>,
    currency: Option<String>,
    status: Option<String>,
    update_time: Option<String>,
    won_time: Option<String>,
}

/// A listed deal that reads as a won deal.
#[derive(Debug, PartialEq)]
struct Listed {
    id: u64,
    won_at: DateTime<Utc>,
    modified_at: DateTime<Utc>,
    amount: Option<String>,
    currency: Option<String>,
    owner_id: Option<u64>,
    org_id: Option<u64>,
}

impl Listed {
    /// The deal, or `None` (logged) when it has no id, is not won, or its times do not read.
    fn read(raw: &RawValue) -> Option<Listed> {
        let skip = |id: Option<u64>, why: &str| {
            tracing::warn!(crm = "pipedrive", deal = ?id, "won deals: skipping a listed deal: {why}");
        };
        let d: ListedDeal = match serde_json::from_str(raw.get()) {
            Ok(d) => d,
            Err(e) => {
                skip(None, &format!("it does not read as a deal ({e})"));
                return None;
            }
        };
        let Some(id) = d.id.filter(|id| *id > 0) else {
            skip(None, "it has no id");
            return None;
        };
        if d.status.as_deref() != Some("won") {
            skip(Some(id), &format!("its status is {:?}, not won", d.status.as_deref().map(|s| printable_up_to(s, 20))));
            return None;
        }
        let Some(modified_at) = d.update_time.as_deref().and_then(parse_time) else {
            skip(Some(id), "its update_time is missing or not a time");
            return None;
        };
        let won_at = match d.won_time.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => modified_at,
            Some(t) => match parse_time(t) {
                Some(at) => at,
                None => {
                    skip(Some(id), "its won_time is not a time");
                    return None;
                }
            },
        };
        let amount = Some(decimal_text(d.value.as_deref())).filter(|a| !a.trim().is_empty());
        Some(Listed {
            id,
            won_at,
            modified_at,
            amount,
            currency: d.currency.filter(|c| !c.trim().is_empty()),
            owner_id: d.owner_id,
            org_id: d.org_id,
        })
    }
}

/// A v1 deal participant: `person_id` is the person object with its id as `value` (or, in
/// older answers, the bare id); `person` the full person.
#[derive(Deserialize)]
struct Participant {
    person_id: Option<Value>,
    person: Option<PersonRef>,
}

#[derive(Deserialize)]
struct PersonRef {
    id: Option<u64>,
}

impl Participant {
    fn person(&self) -> Option<u64> {
        match &self.person_id {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::Object(o)) => o.get("value").and_then(Value::as_u64),
            _ => None,
        }
        .or_else(|| self.person.as_ref().and_then(|p| p.id))
    }
}

#[derive(Deserialize)]
struct Person {
    id: u64,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    emails: Option<Vec<Email>>,
    job_title: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    value: Option<String>,
    primary: Option<bool>,
}

impl Person {
    fn into_contact(self) -> CrmContact {
        let name = self
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| [self.first_name.as_deref(), self.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" "));
        let emails: Vec<Email> =
            self.emails.unwrap_or_default().into_iter().filter(|e| e.value.as_deref().is_some_and(|v| !v.trim().is_empty())).collect();
        let email = emails.iter().find(|e| e.primary == Some(true)).or(emails.first()).and_then(|e| e.value.clone());
        let job_title = self.job_title.filter(|t| !t.trim().is_empty());
        CrmContact { name, email, title: job_title.clone(), roles: job_title.into_iter().collect() }
    }
}

#[derive(Deserialize)]
struct DealProduct {
    name: Option<String>,
    quantity: Option<f64>,
    item_price: Option<Box<RawValue>>,
    currency: Option<String>,
    comments: Option<String>,
    is_enabled: Option<bool>,
}

impl DealProduct {
    fn into_line_item(self) -> CrmLineItem {
        CrmLineItem {
            sku: None,
            name: self.name.unwrap_or_default(),
            quantity: self.quantity.unwrap_or(1.0),
            unit_price: decimal_text(self.item_price.as_deref()),
            currency: self.currency.filter(|c| !c.trim().is_empty()),
            description: self.comments.filter(|c| !c.trim().is_empty()),
        }
    }
}

#[derive(Deserialize)]
struct Note {
    content: Option<String>,
    add_time: Option<String>,
    active_flag: Option<bool>,
}

#[derive(Deserialize)]
struct Activity {
    subject: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    note: Option<String>,
    due_date: Option<String>,
    due_time: Option<String>,
    add_time: Option<String>,
    is_deleted: Option<bool>,
}

impl Activity {
    /// When it happened: its due date and time (UTC), else when it was logged.
    fn at(&self) -> Option<DateTime<Utc>> {
        let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        if let Some(day) = nonempty(&self.due_date).and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()) {
            let time = nonempty(&self.due_time)
                .and_then(|t| NaiveTime::parse_from_str(&t, "%H:%M:%S").or_else(|_| NaiveTime::parse_from_str(&t, "%H:%M")).ok())
                .unwrap_or(NaiveTime::MIN);
            return Some(day.and_time(time).and_utc());
        }
        self.add_time.as_deref().and_then(parse_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pipedrive_numbers_are_deal_ids() {
        assert_eq!(deal_number("42"), Ok(42));
        for bad in ["", "0", "-1", "4 2", "42?x=1", "../users/1", "1e3", "１２", "1234567890123456789"] {
            assert!(matches!(deal_number(bad), Err(CrmError::NotFound(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_call_record_is_a_note_of_escaped_paragraphs_under_a_bold_subject() {
        let record = CallRecord {
            call_id: 17,
            event: "done".into(),
            at: DateTime::parse_from_rfc3339("2026-12-01T10:05:00Z").unwrap().with_timezone(&Utc),
            outcome: Some("at_risk".into()),
            notes: Some("Wants <SSO> & audit\r\n\nby Q1".into()),
            rep_email: "ana@seller.example".into(),
            call_url: "https://firstcall.example/calls/17?a=1&b=2".into(),
        };
        assert_eq!(
            note_html(&record),
            "<p><b>First call after the order: done (at risk)</b></p>\
             <p>Outcome: at risk: the customer expects more than will be delivered</p>\
             <p>Rep: ana@seller.example</p>\
             <p>Notes from the call:</p><p>&gt; Wants &lt;SSO&gt; &amp; audit</p><p>&gt;</p><p>&gt; by Q1</p>\
             <p>Call page: https://firstcall.example/calls/17?a=1&amp;b=2</p>\
             <p>Recorded by firstcall (call 17) at 2026-12-01 10:05 UTC</p>"
        );
        // Read back as Pipedrive note text, it is the record's text, line for line.
        let back = crate::crm::text_of_html(&note_html(&record));
        let back: Vec<&str> = back.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let want = record.text().replace("\r\n", "\n");
        let want: Vec<&str> = want.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn times_read_in_both_api_versions() {
        let want = DateTime::parse_from_rfc3339("2026-10-02T09:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_time("2026-10-02T09:30:00Z"), Some(want));
        assert_eq!(parse_time("2026-10-02 09:30:00"), Some(want));
        let a = |date: &str, time: &str, added: &str| Activity {
            subject: None,
            kind: None,
            note: None,
            due_date: Some(date.into()),
            due_time: Some(time.into()),
            add_time: Some(added.into()),
            is_deleted: None,
        };
        assert_eq!(a("2026-10-02", "09:30", "").at(), Some(want));
        assert_eq!(a("2026-10-02", "09:30:00", "").at(), Some(want));
        assert_eq!(a("", "", "2026-10-02T09:30:00Z").at(), Some(want));
        assert_eq!(a("2026-10-02", "", "").at(), Some(want - chrono::TimeDelta::minutes(9 * 60 + 30)));
    }

    #[test]
    fn prices_keep_the_decimals_they_were_sent_with() {
        let raw = |s: &str| serde_json::from_str::<Box<RawValue>>(s).unwrap();
        assert_eq!(decimal_text(Some(&raw("420.50"))), "420.50");
        assert_eq!(decimal_text(Some(&raw("14000"))), "14000");
        assert_eq!(decimal_text(Some(&raw("\"49.90\""))), "49.90");
        assert_eq!(decimal_text(Some(&raw("1.4e4"))), "14000");
        assert_eq!(decimal_text(Some(&raw("null"))), "");
        assert_eq!(decimal_text(None), "");
    }

    #[test]
    fn a_listed_deal_reads_as_won_only_with_an_id_and_times_that_read() {
        let read = |json: &str| Listed::read(&serde_json::from_str::<Box<RawValue>>(json).unwrap());
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let deal = read(
            r#"{"id":7,"title":"Deal","owner_id":1,"org_id":2,"value":1200.50,"currency":"EUR","status":"won",
                "update_time":"2026-10-03T08:00:00Z","won_time":"2026-10-02T09:30:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            deal,
            Listed {
                id: 7,
                won_at: at("2026-10-02T09:30:00Z"),
                modified_at: at("2026-10-03T08:00:00Z"),
                amount: Some("1200.50".into()),
                currency: Some("EUR".into()),
                owner_id: Some(1),
                org_id: Some(2),
            }
        );
        // No won time: the last modification stands in; no value, no amount.
        let deal = read(r#"{"id":8,"status":"won","update_time":"2026-10-03T08:00:00Z","won_time":null,"value":null}"#).unwrap();
        assert_eq!((deal.won_at, deal.amount, deal.owner_id), (at("2026-10-03T08:00:00Z"), None, None));
        for bad in [
            r#"{"status":"won","update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":null,"status":"won","update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":0,"status":"won","update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":"7","status":"won","update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":7,"status":"lost","update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":7,"update_time":"2026-10-03T08:00:00Z"}"#,
            r#"{"id":7,"status":"won"}"#,
            r#"{"id":7,"status":"won","update_time":"yesterday"}"#,
            r#"{"id":7,"status":"won","update_time":"2026-10-03T08:00:00Z","won_time":"soon"}"#,
            r#"[7]"#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn activity_types_map_to_kinds() {
        let kinds: Vec<_> = ["call", "meeting", "email", "task", "deadline", "lunch", "Call"].map(activity_kind).to_vec();
        use CrmActivityKind::*;
        assert_eq!(kinds, [Call, Meeting, Email, Task, Task, Task, Call]);
    }

    #[test]
    fn a_participant_names_its_person_either_way() {
        let p: Participant = serde_json::from_str(r#"{"person_id":{"name":"Peter Pan","value":1598}}"#).unwrap();
        assert_eq!(p.person(), Some(1598));
        let p: Participant = serde_json::from_str(r#"{"person_id":1598}"#).unwrap();
        assert_eq!(p.person(), Some(1598));
        let p: Participant = serde_json::from_str(r#"{"person_id":null,"person":{"id":7}}"#).unwrap();
        assert_eq!(p.person(), Some(7));
    }
}
