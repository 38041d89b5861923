//! Fake HubSpot: the CRM API endpoints the HubSpot connector reads, behind a private app's
//! bearer token, with bodies shaped as HubSpot documents them:
//!
//! - `GET /crm/v3/objects/deals/{dealId}?properties=…` (CRM API | Deals, "Retrieve a deal");
//! - `GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}?limit=&after=`
//!   (Associations v4, "List associations of an object by type": `toObjectId`, `associationTypes`
//!   with `category`, `typeId` and `label`, `paging.next.after`), from deals and from quotes
//!   (`/crm/v4/objects/quotes/{quoteId}/associations/line_items`, a quote's line items);
//! - `POST /crm/v3/objects/deals/search` (CRM API | Search, "Search the CRM": `filterGroups`
//!   ORed, their `filters` ANDed, `sorts`, `properties`, `limit` up to 200 and the `after`
//!   cursor; `{"total", "results", "paging": {"next": {"after": "100", "link"}}}`, `paging` only
//!   when more results follow; at most 10,000 results for one query, `400` past them);
//! - `GET /crm/v3/owners/{ownerId}` (CRM API | Owners, "Retrieve an owner");
//! - `POST /crm/v3/objects/{objectType}/batch/read` (CRM objects, "Retrieve a batch of objects":
//!   at most 100 inputs; `207` with `errors` when some ids are unknown);
//! - `POST /crm/v3/objects/notes` (Activities | Notes, "Create a note": `properties` with
//!   `hs_timestamp`, required, and `hs_note_body`, at most 65,536 characters; `associations` with
//!   `to.id` and `types` of `associationCategory` and `associationTypeId`; `201` with the note).
//!   The fake associates notes with deals only (type 214, note to deal); a deal it does not have
//!   is a `400` `VALIDATION_ERROR` "One or more associations are invalid" naming it in
//!   `context.INVALID_OBJECT_IDS` (`DEAL=… is not valid`), HubSpot's answer to an association
//!   with a record it does not have, and nothing is created. A created note is kept
//!   ([`FakeHubSpot::created_notes`]) and listed among the deal's notes, so a later read of the
//!   deal finds it.
//!
//! A [`SampleDeal`] becomes HubSpot records: a deal whose properties hold the name, amount,
//! currency, owner id, close date, stage (`closedwon`, or another one with
//! [`FakeHubSpot::set_stage`]), last modification (the close date, or another time with
//! [`FakeHubSpot::set_modified`]) and the notes property ([`NOTES_PROPERTY`]); an owner; a primary
//! company; contacts whose `role` is a `USER_DEFINED` association label (no role: only the
//! unlabeled `HUBSPOT_DEFINED` type); line items, notes, emails, calls, meetings and tasks with
//! numeric ids, associated with the deal. [`FakeHubSpot::put_quote`] adds a quote to a deal
//! (`hs_title`, `hs_createdate`) with line items of its own, copies apart from the deal's as
//! HubSpot makes them, associated with the quote and served by the same batch read.
//!
//! Besides the shared faults ([`FakeServer`]), the fake refuses any bearer token but the one it
//! holds (`401`, HubSpot's `INVALID_AUTHENTICATION` body; [`FakeHubSpot::set_token`] rotates
//! it), serves small pages on demand ([`FakeHubSpot::set_page_size`]), keeps every search body it
//! receives ([`FakeHubSpot::searches`]), and enforces the app's
//! rolling limit that its `X-HubSpot-RateLimit-*` headers announce ([`FakeHubSpot::app_limit`];
//! HubSpot's 100 requests per 10 s by default).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{FakeServer, SampleDeal, SampleLineItem, page};

/// The private app token the fake accepts until [`FakeHubSpot::set_token`] changes it.
pub const TOKEN: &str = "pat-na1-5f0c2b1e-7d4a-4c3e-9b8f-1a2b3c4d5e6f";
/// The deal property that holds a sample deal's `notes_field`: set the connector's
/// `notes_property` to it.
pub const NOTES_PROPERTY: &str = "firstcall_notes";
/// HubSpot's page of associations when the request asks for none (and its largest).
const DEFAULT_LIMIT: usize = 500;
/// The most inputs one batch read takes.
const BATCH_MAX: usize = 100;
/// A search's page when the request asks for none, and its largest.
const SEARCH_DEFAULT_LIMIT: usize = 10;
const SEARCH_MAX_LIMIT: usize = 200;
/// The most results one search query pages through.
const SEARCH_MAX_RESULTS: usize = 10_000;
/// The most filter groups in a search, and filters in a group.
const SEARCH_MAX_GROUPS: usize = 5;
const SEARCH_MAX_FILTERS: usize = 6;

/// A running fake HubSpot.
pub struct FakeHubSpot {
    pub server: FakeServer,
    state: Arc<State>,
}

struct State {
    token: Mutex<String>,
    /// The largest page of associations served (0: as the request asks).
    page_size: AtomicUsize,
    store: Mutex<Store>,
    /// Every `paging.next.after` of the associations handed out, in order.
    cursors: Mutex<Vec<String>>,
    /// Every search request's body, in order.
    searches: Mutex<Vec<Value>>,
    /// Every note created through the API, in order.
    notes: Mutex<Vec<CreatedNote>>,
    limit: Mutex<AppLimit>,
}

/// The app's rolling limit (`X-HubSpot-RateLimit-Max` per `…-Interval-Milliseconds`).
struct AppLimit {
    max: usize,
    interval: Duration,
    window: VecDeque<Instant>,
    today: usize,
}

#[derive(Default)]
struct Store {
    deals: HashMap<String, Record>,
    owners: HashMap<String, Value>,
    /// Records by object type (`contacts`, `line_items`, `notes`, …), then id.
    objects: HashMap<&'static str, HashMap<String, Record>>,
    /// A record's associations (its object type, its id, the type associated), in id order as
    /// HubSpot lists them.
    links: HashMap<(&'static str, String, &'static str), Vec<Link>>,
    /// Association labels and their `USER_DEFINED` type ids.
    labels: HashMap<String, u32>,
    next_id: u64,
}

struct Record {
    properties: BTreeMap<String, String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Link {
    to: String,
    types: Vec<Value>,
}

/// A note created through `POST /crm/v3/objects/notes`, as the fake stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedNote {
    pub id: String,
    /// `hs_note_body` as sent (HTML).
    pub body: String,
    /// `hs_timestamp` as sent.
    pub timestamp: String,
    /// The deals it was associated with (note to deal, type 214).
    pub deals: Vec<String>,
    /// The request's body as sent.
    pub request: Value,
}

/// HubSpot's association type ids from a deal (Associations v4, "Association type ID values").
mod type_id {
    pub const CONTACT: u32 = 3;
    pub const PRIMARY_COMPANY: u32 = 5;
    pub const LINE_ITEM: u32 = 19;
    pub const CALL: u32 = 205;
    pub const EMAIL: u32 = 209;
    pub const MEETING: u32 = 211;
    pub const NOTE: u32 = 213;
    pub const TASK: u32 = 215;
    pub const COMPANY: u32 = 341;
    /// From a deal to a quote.
    pub const QUOTE: u32 = 64;
    /// From a quote to a line item.
    pub const QUOTE_LINE_ITEM: u32 = 67;
    /// From a note to a deal (the other way round from [`NOTE`]).
    pub const NOTE_TO_DEAL: u64 = 214;
}

/// The most characters HubSpot takes in `hs_note_body`.
const NOTE_BODY_MAX: usize = 65_536;

impl FakeHubSpot {
    pub async fn start() -> FakeHubSpot {
        let state = Arc::new(State {
            token: Mutex::new(TOKEN.to_string()),
            page_size: AtomicUsize::new(0),
            store: Mutex::new(Store { next_id: 41_000_000_001, ..Store::default() }),
            cursors: Mutex::default(),
            searches: Mutex::default(),
            notes: Mutex::default(),
            limit: Mutex::new(AppLimit { max: 100, interval: Duration::from_secs(10), window: VecDeque::new(), today: 0 }),
        });
        let data = web::Data::from(state.clone());
        let server = FakeServer::start(move |cfg: &mut web::ServiceConfig| {
            // The search before `deals/{dealId}`, whose resource would take the path and answer 405.
            cfg.app_data(data.clone())
                .route("/crm/v3/objects/deals/search", web::post().to(search_deals))
                .route("/crm/v3/objects/deals/{dealId}", web::get().to(get_deal))
                // Associations v4, "List associations of an object by type": a deal's, and a quote's line
                // items (`/crm/v4/objects/quotes/{quoteId}/associations/line_items`).
                .route("/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", web::get().to(list_associations))
                .route("/crm/v3/objects/notes", web::post().to(create_note))
                .route("/crm/v3/owners/{ownerId}", web::get().to(get_owner))
                .route("/crm/v3/objects/{objectType}/batch/read", web::post().to(batch_read));
        })
        .await;
        FakeHubSpot { server, state }
    }

    /// Serves deal `id` (numeric) as `deal` states it: won (stage `closedwon`), closed and last
    /// modified at `won_at`.
    pub fn put_deal(&self, id: &str, deal: &SampleDeal) {
        let mut s = self.state.store.lock().unwrap();
        let s = &mut *s;
        let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let created = deal.won_at - chrono::TimeDelta::days(60);
        let mut props = BTreeMap::from([
            ("dealname".to_string(), deal.name.clone()),
            ("amount".to_string(), deal.amount.clone()),
            ("deal_currency_code".to_string(), deal.currency.clone()),
            ("closedate".to_string(), stamp(deal.won_at)),
            ("dealstage".to_string(), "closedwon".to_string()),
            ("pipeline".to_string(), "default".to_string()),
        ]);
        if let Some(owner) = &deal.owner {
            props.insert("hubspot_owner_id".into(), owner.id.clone());
            s.owners.insert(
                owner.id.clone(),
                json!({
                    "id": owner.id,
                    "email": owner.email,
                    "type": "PERSON",
                    "firstName": owner.first_name,
                    "lastName": owner.last_name,
                    "userId": 9_586_504,
                    "userIdIncludingInactive": 9_586_504,
                    "createdAt": stamp(created),
                    "updatedAt": stamp(created),
                    "archived": false,
                    "teams": [],
                }),
            );
        }
        if let Some(notes) = &deal.notes_field {
            props.insert(NOTES_PROPERTY.into(), notes.clone());
        }
        s.deals.insert(id.to_string(), Record::new(props, created, deal.won_at));
        let deal_id = id.to_string();
        for kind in ["companies", "contacts", "line_items", "notes", "emails", "calls", "meetings", "tasks", "quotes"] {
            s.links.insert(("deals", deal_id.clone(), kind), Vec::new());
        }

        let company = s.add("companies", None, [("name", deal.account.clone())], created);
        s.link(
            &deal_id,
            "companies",
            company,
            vec![unlabeled(type_id::PRIMARY_COMPANY, Some("Primary")), unlabeled(type_id::COMPANY, None)],
        );

        for c in &deal.contacts {
            let mut props = vec![("firstname", c.first_name.clone()), ("lastname", c.last_name.clone())];
            props.extend(c.email.clone().map(|e| ("email", e)));
            props.extend(c.title.clone().map(|t| ("jobtitle", t)));
            let contact = s.add("contacts", Some(&c.id), props, created);
            let mut types = vec![unlabeled(type_id::CONTACT, None)];
            if let Some(role) = &c.role {
                types.push(json!({"category": "USER_DEFINED", "typeId": s.label(role), "label": role}));
            }
            s.link(&deal_id, "contacts", contact, types);
        }

        for item in &deal.line_items {
            let props = [
                ("name", item.name.clone()),
                ("hs_sku", item.sku.clone()),
                ("quantity", item.quantity.to_string()),
                ("price", item.price.clone()),
                ("hs_line_item_currency_code", deal.currency.clone()),
            ];
            let line_item = s.add("line_items", None, props, created);
            s.link(&deal_id, "line_items", line_item, vec![unlabeled(type_id::LINE_ITEM, None)]);
        }

        for note in &deal.notes {
            let id = s.add("notes", None, [("hs_note_body", note.body.clone()), ("hs_timestamp", stamp(note.at))], note.at);
            s.link(&deal_id, "notes", id, vec![unlabeled(type_id::NOTE, None)]);
        }

        for a in &deal.activities {
            let body = a.body.clone().unwrap_or_default();
            let (object, type_id, props) = match a.kind {
                "email" => (
                    "emails",
                    type_id::EMAIL,
                    [("hs_email_subject", a.subject.clone()), ("hs_email_text", body), ("hs_email_direction", "EMAIL".into())],
                ),
                "call" => (
                    "calls",
                    type_id::CALL,
                    [("hs_call_title", a.subject.clone()), ("hs_call_body", body), ("hs_call_status", "COMPLETED".into())],
                ),
                "meeting" => (
                    "meetings",
                    type_id::MEETING,
                    [("hs_meeting_title", a.subject.clone()), ("hs_meeting_body", body), ("hs_meeting_outcome", "COMPLETED".into())],
                ),
                "task" => (
                    "tasks",
                    type_id::TASK,
                    [("hs_task_subject", a.subject.clone()), ("hs_task_body", body), ("hs_task_status", "COMPLETED".into())],
                ),
                other => panic!("a sample activity of kind '{other}' has no HubSpot object"),
            };
            let mut props = props.to_vec();
            props.push(("hs_timestamp", stamp(a.at)));
            let id = s.add(object, None, props, a.at);
            s.link(&deal_id, object, id, vec![unlabeled(type_id, None)]);
        }
    }

    /// Adds a quote to deal `deal_id`: titled `title`, created at `created_at`, with `items` as
    /// line items of its own (in the deal's currency), apart from the deal's. Returns the quote's id.
    pub fn put_quote(&self, deal_id: &str, title: &str, created_at: DateTime<Utc>, items: &[SampleLineItem]) -> String {
        let mut s = self.state.store.lock().unwrap();
        let currency = s
            .deals
            .get(deal_id)
            .unwrap_or_else(|| panic!("the fake has no deal {deal_id}"))
            .properties
            .get("deal_currency_code")
            .cloned()
            .unwrap_or_default();
        let stamp = created_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let quote = s.add("quotes", None, [("hs_title", title.to_string()), ("hs_createdate", stamp)], created_at);
        s.link(deal_id, "quotes", quote.clone(), vec![unlabeled(type_id::QUOTE, None)]);
        s.links.entry(("quotes", quote.clone(), "line_items")).or_default();
        for item in items {
            let props = [
                ("name", item.name.clone()),
                ("hs_sku", item.sku.clone()),
                ("quantity", item.quantity.to_string()),
                ("price", item.price.clone()),
                ("hs_line_item_currency_code", currency.clone()),
            ];
            let line_item = s.add("line_items", None, props, created_at);
            s.link_from("quotes", &quote, "line_items", line_item, vec![unlabeled(type_id::QUOTE_LINE_ITEM, None)]);
        }
        quote
    }

    /// The private app token the fake accepts from now on (the connector's becomes refused).
    pub fn set_token(&self, token: &str) {
        *self.state.token.lock().unwrap() = token.to_string();
    }

    /// Moves deal `id` to pipeline stage `stage` (`closedlost`, `appointmentscheduled`, a custom
    /// stage's id), leaving its last modification as it is ([`FakeHubSpot::set_modified`]).
    pub fn set_stage(&self, id: &str, stage: &str) {
        self.set_property(id, "dealstage", stage);
    }

    /// Sets a property of deal `id` as HubSpot would store it (text), leaving its last
    /// modification as it is: `""` unsets it.
    pub fn set_property(&self, id: &str, name: &str, value: &str) {
        let mut s = self.state.store.lock().unwrap();
        let deal = s.deals.get_mut(id).unwrap_or_else(|| panic!("the fake has no deal {id}"));
        if value.is_empty() {
            deal.properties.remove(name);
        } else {
            deal.properties.insert(name.to_string(), value.to_string());
        }
    }

    /// Sets when deal `id` was last modified (`hs_lastmodifieddate`, `updatedAt`).
    pub fn set_modified(&self, id: &str, at: DateTime<Utc>) {
        let mut s = self.state.store.lock().unwrap();
        s.deals.get_mut(id).unwrap_or_else(|| panic!("the fake has no deal {id}")).updated_at = at;
    }

    /// Every deal search's request body, in order.
    pub fn searches(&self) -> Vec<Value> {
        self.state.searches.lock().unwrap().clone()
    }

    /// Serves at most `n` associations or search results a page, whatever the request's `limit`
    /// (0: as asked).
    pub fn set_page_size(&self, n: usize) {
        self.state.page_size.store(n, Ordering::SeqCst);
    }

    /// The app's limit: `max` requests per `interval_ms`, announced in every answer's
    /// `X-HubSpot-RateLimit-*` headers and enforced with `429` beyond it.
    pub fn app_limit(&self, max: usize, interval_ms: u64) {
        let mut l = self.state.limit.lock().unwrap();
        l.max = max.max(1);
        l.interval = Duration::from_millis(interval_ms.max(1));
        l.window.clear();
    }

    /// Every associations `paging.next.after` cursor handed out so far, in order.
    pub fn issued_cursors(&self) -> Vec<String> {
        self.state.cursors.lock().unwrap().clone()
    }

    /// Every note created through the API so far, in order.
    pub fn created_notes(&self) -> Vec<CreatedNote> {
        self.state.notes.lock().unwrap().clone()
    }
}

impl Record {
    /// A property as search compares it, those HubSpot keeps itself included.
    fn search_key(&self, id: &str, name: &str) -> Option<Key> {
        match name {
            "hs_object_id" => Some(Key::of(id)),
            "createdate" => Some(Key::at(self.created_at)),
            "hs_lastmodifieddate" => Some(Key::at(self.updated_at)),
            _ => self.properties.get(name).map(|v| Key::of(v)),
        }
    }

    fn new(properties: BTreeMap<String, String>, created_at: DateTime<Utc>, updated_at: DateTime<Utc>) -> Record {
        Record { properties, created_at, updated_at }
    }

    /// The record as the object APIs return it: the requested properties (`null` when unset),
    /// and those HubSpot always adds.
    fn json(&self, id: &str, requested: &[String]) -> Value {
        let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut props = serde_json::Map::new();
        for name in requested {
            props.insert(name.clone(), self.properties.get(name).map_or(Value::Null, |v| Value::String(v.clone())));
        }
        props.insert("hs_object_id".into(), json!(id));
        props.insert("createdate".into(), json!(stamp(self.created_at)));
        props.insert("hs_lastmodifieddate".into(), json!(stamp(self.updated_at)));
        json!({
            "id": id,
            "properties": props,
            "createdAt": stamp(self.created_at),
            "updatedAt": stamp(self.updated_at),
            "archived": false,
        })
    }
}

impl Store {
    /// Stores a record of `object` under `id` (a new numeric id when absent or not numeric).
    fn add<'a>(
        &mut self,
        object: &'static str,
        id: Option<&str>,
        props: impl IntoIterator<Item = (&'a str, String)>,
        at: DateTime<Utc>,
    ) -> String {
        let id = match id.filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
            Some(id) => id.to_string(),
            None => {
                self.next_id += 1;
                self.next_id.to_string()
            }
        };
        let props = props.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v)).collect();
        self.objects.entry(object).or_default().insert(id.clone(), Record::new(props, at, at));
        id
    }

    /// Associates deal `deal` with record `to` of `object`.
    fn link(&mut self, deal: &str, object: &'static str, to: String, types: Vec<Value>) {
        self.link_from("deals", deal, object, to, types);
    }

    fn link_from(&mut self, from_type: &'static str, from: &str, object: &'static str, to: String, types: Vec<Value>) {
        let links = self.links.entry((from_type, from.to_string(), object)).or_default();
        links.retain(|l| l.to != to);
        links.push(Link { to, types });
        links.sort_by_key(|l| l.to.parse::<u64>().unwrap_or(u64::MAX));
    }

    /// The `USER_DEFINED` association type of a label (HubSpot numbers them per portal).
    fn label(&mut self, label: &str) -> u32 {
        let next = 23 + 2 * self.labels.len() as u32;
        *self.labels.entry(label.to_string()).or_insert(next)
    }
}

fn unlabeled(type_id: u32, label: Option<&str>) -> Value {
    json!({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label})
}

/// HubSpot's error body (API usage guidelines, "Error responses").
fn error(category: &str, message: &str) -> Value {
    json!({"status": "error", "message": message, "correlationId": uuid::Uuid::new_v4().to_string(), "category": category})
}

/// HubSpot's `404` for an id it does not have (`OBJECT_NOT_FOUND`).
fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(error("OBJECT_NOT_FOUND", "resource not found"))
}

/// The query's pairs, keeping repeated keys (`properties=a&properties=b`).
fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default()
}

impl State {
    /// Checks the bearer token and the app's rolling limit; `Err` is the answer to give instead
    /// of the route's. `Ok` carries the limit headers for the answer.
    fn admit(&self, req: &HttpRequest) -> Result<Vec<(&'static str, String)>, Box<HttpResponse>> {
        let expected = format!("Bearer {}", self.token.lock().unwrap());
        if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            // CRM API, "Authentication": a missing, revoked or rotated private app token.
            return Err(Box::new(HttpResponse::Unauthorized().json(error(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at \
                 https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ))));
        }
        let mut l = self.limit.lock().unwrap();
        let now = Instant::now();
        let interval = l.interval;
        while l.window.front().is_some_and(|t| now.duration_since(*t) >= interval) {
            l.window.pop_front();
        }
        if l.window.len() >= l.max {
            // API usage guidelines, "Rate limits": the 429 body, naming the policy that was hit.
            return Err(Box::new(HttpResponse::TooManyRequests().json(json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": uuid::Uuid::new_v4().to_string(),
                "policyName": "TEN_SECONDLY_ROLLING",
            }))));
        }
        l.window.push_back(now);
        l.today += 1;
        // API usage guidelines, "Rate limit headers" (private apps also get the daily ones).
        Ok(vec![
            ("x-hubspot-ratelimit-daily", "250000".into()),
            ("x-hubspot-ratelimit-daily-remaining", 250_000usize.saturating_sub(l.today).to_string()),
            ("x-hubspot-ratelimit-interval-milliseconds", l.interval.as_millis().to_string()),
            ("x-hubspot-ratelimit-max", l.max.to_string()),
            ("x-hubspot-ratelimit-remaining", l.max.saturating_sub(l.window.len()).to_string()),
        ])
    }
}

/// An answer with the limit headers.
fn with_headers(mut resp: HttpResponse, headers: Vec<(&'static str, String)>) -> HttpResponse {
    use actix_web::http::header::{HeaderName, HeaderValue};
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// `GET /crm/v3/objects/deals/{dealId}`: CRM API | Deals, "Retrieve a deal" (`properties` as a
/// comma-separated list or repeated).
async fn get_deal(req: HttpRequest, state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let requested: Vec<String> = query_pairs(&req)
        .into_iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect::<Vec<_>>())
        .collect();
    let store = state.store.lock().unwrap();
    let resp = match store.deals.get(path.as_str()) {
        Some(deal) => HttpResponse::Ok().json(deal.json(&path, &requested)),
        None => not_found(),
    };
    with_headers(resp, headers)
}

/// `GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}`: Associations v4,
/// "List associations of an object by type" (`limit` up to 500, cursor `after`; `paging` only
/// when more pages follow). From deals, and from quotes
/// (`GET /crm/v4/objects/quotes/{quoteId}/associations/line_items`, the quote's line items).
async fn list_associations(req: HttpRequest, state: web::Data<State>, path: web::Path<(String, String, String)>) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let (from_type, from, to_type) = path.into_inner();
    if !["deals", "quotes"].contains(&from_type.as_str()) {
        let message = format!("The fake HubSpot lists associations from deals and quotes only, not {from_type}");
        return with_headers(HttpResponse::BadRequest().json(error("VALIDATION_ERROR", &message)), headers);
    }
    let query = query_pairs(&req);
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut limit = get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(DEFAULT_LIMIT).clamp(1, DEFAULT_LIMIT);
    let page_size = state.page_size.load(Ordering::SeqCst);
    if page_size > 0 {
        limit = limit.min(page_size);
    }
    let start = match get("after") {
        None => 0,
        Some(after) => match decode_cursor(&after) {
            Some(start) => start,
            None => return with_headers(HttpResponse::BadRequest().json(error("VALIDATION_ERROR", "Invalid paging cursor")), headers),
        },
    };
    let store = state.store.lock().unwrap();
    let links: &[Link] =
        store.links.iter().find(|((f, d, t), _)| *f == from_type && *d == from && *t == to_type).map_or(&[], |(_, l)| l.as_slice());
    let (items, next) = page(&links.iter().map(|l| (l.to.clone(), l.types.clone())).collect::<Vec<_>>(), start, limit);
    let results: Vec<Value> = items
        .into_iter()
        .map(|(to, types)| json!({"toObjectId": to.parse::<u64>().map_or(json!(to), |n| json!(n)), "associationTypes": types}))
        .collect();
    let mut body = json!({ "results": results });
    if let Some(next) = next {
        let after = BASE64.encode(next.to_string());
        state.cursors.lock().unwrap().push(after.clone());
        let host = req.connection_info().host().to_string();
        let link = format!("http://{host}/crm/v4/objects/{from_type}/{from}/associations/{to_type}?limit={limit}&after={after}");
        body["paging"] = json!({"next": {"after": after, "link": link}});
    }
    with_headers(HttpResponse::Ok().json(body), headers)
}

fn decode_cursor(after: &str) -> Option<usize> {
    String::from_utf8(BASE64.decode(after).ok()?).ok()?.parse().ok()
}

/// `POST /crm/v3/objects/deals/search`: CRM API | Search, "Search the CRM". The body's
/// `filterGroups` are ORed and each group's `filters` ANDed (`EQ`, `NEQ`, `LT`, `LTE`, `GT`,
/// `GTE`, `BETWEEN`, `IN`, `NOT_IN`, `HAS_PROPERTY`, `NOT_HAS_PROPERTY`; dates compare as times,
/// given in epoch milliseconds or ISO 8601), one sort on a property (`ASCENDING` or `DESCENDING`,
/// ties by id), `limit` up to 200 (10 by default) and `after`, the count of results already
/// served, as text. The answer's `total` counts every match; `paging.next` is there only when
/// more follow; paging past 10,000 results is a `400`.
async fn search_deals(req: HttpRequest, state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let invalid = |message: &str| with_headers(HttpResponse::BadRequest().json(error("VALIDATION_ERROR", message)), headers.clone());
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid input JSON on line 1");
    };
    state.searches.lock().unwrap().push(body.clone());

    let groups = match body.get("filterGroups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(groups)) => groups.clone(),
        Some(_) => return invalid("filterGroups must be an array"),
    };
    if groups.len() > SEARCH_MAX_GROUPS {
        return invalid(&format!("Too many filter groups: {}. The maximum is {SEARCH_MAX_GROUPS}.", groups.len()));
    }
    let mut filters: Vec<Vec<Filter>> = Vec::new();
    for group in &groups {
        let Some(list) = group["filters"].as_array() else {
            return invalid("Each filter group needs a filters array");
        };
        if list.len() > SEARCH_MAX_FILTERS {
            return invalid(&format!("Too many filters in a group: {}. The maximum is {SEARCH_MAX_FILTERS}.", list.len()));
        }
        match list.iter().map(Filter::parse).collect::<Result<Vec<_>, _>>() {
            Ok(f) => filters.push(f),
            Err(why) => return invalid(&why),
        }
    }
    let sort = match body.get("sorts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        [] => None,
        [s] => match (s["propertyName"].as_str(), s["direction"].as_str().unwrap_or("ASCENDING")) {
            (Some(name), "ASCENDING") => Some((name.to_string(), false)),
            (Some(name), "DESCENDING") => Some((name.to_string(), true)),
            _ => return invalid("A sort needs a propertyName and a direction of ASCENDING or DESCENDING"),
        },
        _ => return invalid("Only one sort is supported"),
    };
    let properties: Vec<String> =
        body["properties"].as_array().map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect()).unwrap_or_default();
    let mut limit = match &body["limit"] {
        Value::Null => SEARCH_DEFAULT_LIMIT,
        v => match v.as_u64().map(|l| l as usize) {
            Some(l) if (1..=SEARCH_MAX_LIMIT).contains(&l) => l,
            _ => return invalid(&format!("limit must be between 1 and {SEARCH_MAX_LIMIT}")),
        },
    };
    let page_size = state.page_size.load(Ordering::SeqCst);
    if page_size > 0 {
        limit = limit.min(page_size);
    }
    let start = match &body["after"] {
        Value::Null => 0,
        Value::String(a) => match a.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return invalid("Invalid paging cursor"),
        },
        Value::Number(n) => n.as_u64().unwrap_or(u64::MAX) as usize,
        _ => return invalid("Invalid paging cursor"),
    };
    if start >= SEARCH_MAX_RESULTS {
        return invalid(&format!("Paging past {SEARCH_MAX_RESULTS} results is not supported; narrow the search"));
    }

    let store = state.store.lock().unwrap();
    let mut matches: Vec<(&String, &Record, Option<Key>)> = store
        .deals
        .iter()
        .filter(|(id, r)| filters.is_empty() || filters.iter().any(|group| group.iter().all(|f| f.matches(r.search_key(id, &f.property)))))
        .map(|(id, r)| (id, r, sort.as_ref().and_then(|(name, _)| r.search_key(id, name))))
        .collect();
    // Unset sorts first; ties go by id.
    matches.sort_by(|(a_id, _, a), (b_id, _, b)| {
        let by_id = a_id.parse::<u64>().unwrap_or(u64::MAX).cmp(&b_id.parse::<u64>().unwrap_or(u64::MAX));
        let order = match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        };
        (if sort.as_ref().is_some_and(|(_, descending)| *descending) { order.reverse() } else { order }).then(by_id)
    });
    let total = matches.len();
    let matches: Vec<(&String, &Record)> = matches.into_iter().map(|(id, r, _)| (id, r)).collect();
    let (items, next) = page(&matches, start, limit);
    let results: Vec<Value> = items.into_iter().map(|(id, r)| r.json(id, &properties)).collect();
    let mut answer = json!({"total": total, "results": results});
    // HubSpot hands out the next cursor even when it lies past 10,000 (asking for it fails).
    if let Some(next) = next {
        answer["paging"] = json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}});
    }
    with_headers(HttpResponse::Ok().json(answer), headers)
}

/// One filter of a search request.
struct Filter {
    property: String,
    operator: String,
    values: Vec<Key>,
}

impl Filter {
    fn parse(v: &Value) -> Result<Filter, String> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(Key::of(s)),
            Value::Number(n) => Some(Key::of(&n.to_string())),
            Value::Bool(b) => Some(Key::of(&b.to_string())),
            _ => None,
        };
        let property = v["propertyName"].as_str().ok_or("A filter needs a propertyName")?.to_string();
        let operator = v["operator"].as_str().unwrap_or("EQ").to_string();
        let values = match operator.as_str() {
            "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => Vec::new(),
            "IN" | "NOT_IN" => {
                let list = v["values"].as_array().ok_or_else(|| format!("{operator} needs a values array"))?;
                list.iter().map(|x| text(x).ok_or_else(|| format!("{operator} values must be text"))).collect::<Result<_, _>>()?
            }
            "BETWEEN" => vec![text(&v["value"]).ok_or("BETWEEN needs a value")?, text(&v["highValue"]).ok_or("BETWEEN needs a highValue")?],
            "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" => vec![text(&v["value"]).ok_or_else(|| format!("{operator} needs a value"))?],
            other => return Err(format!("Unsupported operator: {other}")),
        };
        Ok(Filter { property, operator, values })
    }

    /// Whether a record whose property is `value` (`None`: unset) passes.
    fn matches(&self, value: Option<Key>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let Some(v) = value else {
            return matches!(self.operator.as_str(), "NOT_HAS_PROPERTY" | "NEQ" | "NOT_IN");
        };
        let cmp = |i: usize| v.cmp(&self.values[i]);
        match self.operator.as_str() {
            "HAS_PROPERTY" => true,
            "NOT_HAS_PROPERTY" => false,
            "EQ" => cmp(0) == Equal,
            "NEQ" => cmp(0) != Equal,
            "LT" => cmp(0) == Less,
            "LTE" => cmp(0) != Greater,
            "GT" => cmp(0) == Greater,
            "GTE" => cmp(0) != Less,
            "BETWEEN" => cmp(0) != Less && cmp(1) != Greater,
            "IN" => self.values.iter().any(|x| v.cmp(x) == Equal),
            "NOT_IN" => self.values.iter().all(|x| v.cmp(x) != Equal),
            _ => false,
        }
    }
}

/// A property value as HubSpot's search compares it: as a time when both sides read as times
/// (ISO 8601 or epoch milliseconds), else as numbers, else as text.
struct Key {
    text: String,
    time: Option<i64>,
    number: Option<f64>,
}

impl Key {
    fn of(s: &str) -> Key {
        let time = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<i64>().ok()
        } else {
            DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
        };
        Key { text: s.to_string(), time, number: s.parse::<f64>().ok().filter(|n| n.is_finite()) }
    }

    fn at(t: DateTime<Utc>) -> Key {
        let ms = t.timestamp_millis();
        Key { text: t.to_rfc3339_opts(SecondsFormat::Millis, true), time: Some(ms), number: None }
    }

    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        match ((self.time, other.time), (self.number, other.number)) {
            ((Some(a), Some(b)), _) => a.cmp(&b),
            (_, (Some(a), Some(b))) => a.total_cmp(&b),
            _ => self.text.cmp(&other.text),
        }
    }
}

/// `POST /crm/v3/objects/notes`: Activities | Notes, "Create a note". `properties` (text,
/// `hs_timestamp` required, ISO 8601 or epoch milliseconds; `hs_note_body` up to 65,536
/// characters) and `associations`, each `{"to": {"id"}, "types": [{"associationCategory",
/// "associationTypeId"}]}`; `201 Created` with the note as the object APIs return it. A deal the
/// fake does not have is HubSpot's `400` for an invalid association, and nothing is created.
async fn create_note(req: HttpRequest, state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let invalid = |message: &str| with_headers(HttpResponse::BadRequest().json(error("VALIDATION_ERROR", message)), headers.clone());
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid input JSON on line 1");
    };
    let Some(props) = request["properties"].as_object() else {
        return invalid("Some required fields were not set: [properties]");
    };
    let mut properties: Vec<(&str, String)> = Vec::new();
    for (name, value) in props {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => return invalid(&format!("Property values were not valid: {name} must be text")),
        };
        properties.push((name.as_str(), text));
    }
    let prop = |name: &str| properties.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let Some(timestamp) = prop("hs_timestamp") else {
        return invalid("Property values were not valid: hs_timestamp is required");
    };
    if Key::of(&timestamp).time.is_none() {
        return invalid(&format!("Property values were not valid: hs_timestamp '{timestamp}' is not a valid date"));
    }
    let body_text = prop("hs_note_body").unwrap_or_default();
    if body_text.chars().count() > NOTE_BODY_MAX {
        return invalid(&format!("Property values were not valid: hs_note_body is longer than {NOTE_BODY_MAX} characters"));
    }

    let mut deals: Vec<String> = Vec::new();
    let associations = match &request["associations"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        _ => return invalid("associations must be an array"),
    };
    let mut store = state.store.lock().unwrap();
    for a in &associations {
        let to = match &a["to"]["id"] {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => return invalid("Some required fields were not set: [to.id]"),
        };
        let Some(types) = a["types"].as_array().filter(|t| !t.is_empty()) else {
            return invalid("Some required fields were not set: [types]");
        };
        for t in types {
            match (t["associationCategory"].as_str(), t["associationTypeId"].as_u64()) {
                (Some("HUBSPOT_DEFINED"), Some(type_id::NOTE_TO_DEAL)) => {}
                (category, type_id) => {
                    return invalid(&format!(
                        "The fake HubSpot associates notes with deals only (HUBSPOT_DEFINED 214), not {} {}",
                        category.unwrap_or("?"),
                        type_id.map_or("?".to_string(), |t| t.to_string())
                    ));
                }
            }
        }
        if !store.deals.contains_key(&to) {
            // In HubSpot's order of fields (the message first), which a JSON map would sort.
            let answer = format!(
                r#"{{"status":"error","message":"One or more associations are invalid","correlationId":"{}","context":{{"INVALID_OBJECT_IDS":[{}],"objectId":[{}],"objectType":["DEAL"]}},"category":"VALIDATION_ERROR"}}"#,
                uuid::Uuid::new_v4(),
                json!(format!("DEAL={to} is not valid")),
                json!(to),
            );
            return with_headers(HttpResponse::BadRequest().content_type("application/json").body(answer), headers);
        }
        if !deals.contains(&to) {
            deals.push(to);
        }
    }

    let now = Utc::now();
    let id = store.add("notes", None, properties.iter().map(|(n, v)| (*n, v.clone())), now);
    for deal in &deals {
        store.link(deal, "notes", id.clone(), vec![unlabeled(type_id::NOTE, None)]);
    }
    let names: Vec<String> = properties.iter().map(|(n, _)| n.to_string()).collect();
    let created = store.objects["notes"][&id].json(&id, &names);
    drop(store);
    state.notes.lock().unwrap().push(CreatedNote { id, body: body_text, timestamp, deals, request });
    with_headers(HttpResponse::Created().json(created), headers)
}

/// `GET /crm/v3/owners/{ownerId}`: CRM API | Owners, "Retrieve an owner".
async fn get_owner(req: HttpRequest, state: web::Data<State>, path: web::Path<String>) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let store = state.store.lock().unwrap();
    let resp = match store.owners.get(path.as_str()) {
        Some(owner) => HttpResponse::Ok().json(owner),
        None => not_found(),
    };
    with_headers(resp, headers)
}

/// `POST /crm/v3/objects/{objectType}/batch/read`: CRM objects, "Retrieve a batch of objects"
/// (`{"properties": [...], "inputs": [{"id": ...}]}`, at most 100 inputs; `207 Multi-Status`
/// with `errors` and `numErrors` when some ids are unknown).
async fn batch_read(req: HttpRequest, state: web::Data<State>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let headers = match state.admit(&req) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let invalid = |message: &str| with_headers(HttpResponse::BadRequest().json(error("VALIDATION_ERROR", message)), headers.clone());
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid input JSON on line 1");
    };
    let properties: Vec<String> =
        body["properties"].as_array().map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect()).unwrap_or_default();
    let Some(inputs) = body["inputs"].as_array() else {
        return invalid("Some required fields were not set: [inputs]");
    };
    if inputs.len() > BATCH_MAX {
        return invalid(&format!("Too many inputs: {}. The maximum is {BATCH_MAX}.", inputs.len()));
    }
    let store = state.store.lock().unwrap();
    let Some(records) = ["companies", "contacts", "line_items", "notes", "emails", "calls", "meetings", "tasks", "quotes"]
        .iter()
        .find(|t| **t == path.as_str())
        .map(|t| store.objects.get(t))
    else {
        return invalid(&format!("Unable to infer object type from: {}", path.as_str()));
    };
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for id in inputs.iter().filter_map(|i| i["id"].as_str()) {
        match records.and_then(|r| r.get(id)) {
            Some(r) => results.push(r.json(id, &properties)),
            None => missing.push(id.to_string()),
        }
    }
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut answer = json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    let resp = if missing.is_empty() {
        HttpResponse::Ok().json(answer)
    } else {
        let object = path.trim_end_matches('s').to_uppercase();
        answer["numErrors"] = json!(1);
        answer["errors"] = json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."),
            "context": {"ids": missing},
        }]);
        HttpResponse::build(actix_web::http::StatusCode::MULTI_STATUS).json(answer)
    };
    with_headers(resp, headers)
}
