//! Fake Pipedrive: the v1 and v2 endpoints firstcall's Pipedrive connector reads, on a
//! [`FakeServer`], with bodies modelled on the examples of Pipedrive's API reference
//! (developers.pipedrive.com, API v1 and v2; each route names its endpoint).
//!
//! A [`SampleDeal`] is stored the way Pipedrive keeps it: numeric ids; the account is an
//! organization; each contact is a person and a participant of the deal (the first one is also
//! the deal's main person), its role the person's job title; notes are notes; emails, calls,
//! meetings and tasks are activities of those types; line items are the deal's products.
//!
//! Every route wants the API token in the `x-api-token` header ([`TOKEN`] until
//! [`FakePipedrive::set_token`] changes it) and answers Pipedrive's documented `401` otherwise.
//! Lists are paged as Pipedrive pages them (v1 `start`/`next_start`, v2 opaque cursors), at most
//! [`FakePipedrive::set_page_size`] items a page. Successful answers carry Pipedrive's limit
//! headers (`x-ratelimit-limit`, `-remaining`, `-reset`) over a sliding 2-second window of
//! [`FakePipedrive::set_window_limit`] requests; the headers only advise, the 429s come from
//! [`FakeServer::limit`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{FakeServer, SampleDeal, page};

/// The API token the fake accepts until [`FakePipedrive::set_token`].
pub const TOKEN: &str = "3f1c9e0a7b6d4c2e8f5a1b3c5d7e9f0a2b4c6d8e";
/// The key of the deal custom field (a long text) holding a [`SampleDeal`]'s `notes_field`:
/// Pipedrive names custom fields by 40-character hashes.
pub const NOTES_FIELD_KEY: &str = "d4de1c1518b4531717c676029a45911c340390a6";

/// Pipedrive's page when `limit` is not given, and its most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
/// The window of Pipedrive's limit headers.
const WINDOW: Duration = Duration::from_secs(2);

pub struct FakePipedrive {
    pub server: FakeServer,
    state: Arc<State>,
}

struct State {
    store: Mutex<Store>,
    token: Mutex<String>,
    page_size: AtomicUsize,
    window_limit: AtomicU32,
    window: Mutex<VecDeque<Instant>>,
}

#[derive(Default)]
struct Store {
    /// v2 deals by id.
    deals: HashMap<u64, Value>,
    /// v1 users by id.
    users: HashMap<u64, Value>,
    /// v2 organizations by id.
    organizations: HashMap<u64, Value>,
    /// v2 persons by id (in id order, as `GET /api/v2/persons` sorts by default).
    persons: BTreeMap<u64, Value>,
    /// v1 deal participants by deal.
    participants: HashMap<u64, Vec<Value>>,
    /// v2 deal products by deal.
    products: HashMap<u64, Vec<Value>>,
    /// v1 notes, each with its `deal_id`.
    notes: Vec<Value>,
    /// v2 activities, each with its `deal_id`.
    activities: Vec<Value>,
    next_id: u64,
}

impl Store {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        9000 + self.next_id
    }
}

impl FakePipedrive {
    pub async fn start() -> FakePipedrive {
        let state = Arc::new(State {
            store: Mutex::default(),
            token: Mutex::new(TOKEN.to_string()),
            page_size: AtomicUsize::new(MAX_LIMIT),
            // The Advanced plan's api_token limit, the example of Pipedrive's rate limiting page.
            window_limit: AtomicU32::new(40),
            window: Mutex::default(),
        });
        let s = state.clone();
        let server = FakeServer::start(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(s.clone()))
                .route("/api/v2/deals/{id}", web::get().to(get_deal))
                .route("/api/v1/users/{id}", web::get().to(get_user))
                .route("/api/v2/organizations/{id}", web::get().to(get_organization))
                .route("/api/v1/deals/{id}/participants", web::get().to(get_participants))
                .route("/api/v2/persons", web::get().to(get_persons))
                .route("/api/v2/deals/{id}/products", web::get().to(get_deal_products))
                .route("/api/v1/notes", web::get().to(get_notes))
                .route("/api/v2/activities", web::get().to(get_activities));
        })
        .await;
        FakePipedrive { server, state }
    }

    /// Stores `deal` as Pipedrive deal `id`, replacing what was stored under that id.
    pub fn put_deal(&self, id: u64, deal: &SampleDeal) {
        let mut st = self.state.store.lock().unwrap();
        st.notes.retain(|n| n["deal_id"] != id);
        st.activities.retain(|a| a["deal_id"] != id);
        let won = v2_time(deal.won_at);
        let owner_id = deal.owner.as_ref().map(|o| numeric(&o.id));
        let org_id = st.id();
        let person_ids: Vec<u64> = deal.contacts.iter().map(|c| numeric(&c.id)).collect();

        // GET /api/v1/users/{id}: the "Get one user" example.
        if let Some(o) = &deal.owner {
            st.users.insert(
                numeric(&o.id),
                json!({
                    "id": numeric(&o.id), "name": format!("{} {}", o.first_name, o.last_name),
                    "default_currency": deal.currency, "locale": "en_US", "lang": 1, "email": o.email,
                    "phone": null, "activated": true, "last_login": v1_time(deal.won_at),
                    "created": "2024-01-22 10:43:47", "modified": v1_time(deal.won_at), "has_created_company": false,
                    "access": [{"app": "sales", "admin": false, "permission_set_id": "f07d229d-088a-4144-a40f-1fe64295d180"}],
                    "active_flag": true, "timezone_name": "Europe/Berlin", "timezone_offset": "+01:00", "role_id": 1,
                    "icon_url": null, "is_you": false, "is_deleted": false
                }),
            );
        }
        // GET /api/v2/organizations/{id}: the "Get details of a organization" example.
        st.organizations.insert(
            org_id,
            json!({
                "id": org_id, "name": deal.account, "owner_id": owner_id, "add_time": won, "update_time": won,
                "is_deleted": false, "visible_to": 3, "label_ids": [], "address": null, "custom_fields": {}
            }),
        );
        // GET /api/v2/persons: the "Get all persons" example; job_title is there when contact
        // sync is on, as it is here.
        for c in &deal.contacts {
            let pid = numeric(&c.id);
            let mut person = json!({
                "id": pid, "name": format!("{} {}", c.first_name, c.last_name), "first_name": c.first_name,
                "last_name": c.last_name, "owner_id": owner_id, "org_id": org_id, "add_time": won, "update_time": won,
                "emails": c.email.iter().map(|e| json!({"value": e, "primary": true, "label": "work"})).collect::<Vec<_>>(),
                "phones": [], "is_deleted": false, "visible_to": 3, "label_ids": [], "picture_id": null, "custom_fields": {}
            });
            if let Some(role) = &c.role {
                person["job_title"] = json!(role);
            }
            st.persons.insert(pid, person);
        }
        // GET /api/v1/deals/{id}/participants: the "List participants of a deal" example.
        let participants = deal
            .contacts
            .iter()
            .map(|c| {
                let pid = numeric(&c.id);
                let name = format!("{} {}", c.first_name, c.last_name);
                let emails: Vec<Value> = c.email.iter().map(|e| json!({"label": "work", "value": e, "primary": true})).collect();
                json!({
                    "id": pid + 100_000,
                    "person_id": {"active_flag": true, "name": name, "email": emails, "phone": [], "value": pid},
                    "add_time": v1_time(deal.won_at), "active_flag": true,
                    "related_item_data": {"deal_id": id, "title": deal.name},
                    "person": {"id": pid, "name": name, "first_name": c.first_name, "last_name": c.last_name,
                               "email": emails, "phone": [], "org_name": deal.account, "active_flag": true},
                    "added_by_user_id": owner_id.map(|u| json!({"id": u, "value": u})),
                    "related_item_type": "deal", "related_item_id": id
                })
            })
            .collect();
        st.participants.insert(id, participants);
        // GET /api/v2/deals/{id}/products: the "List products attached to a deal" example.
        let mut products = Vec::new();
        for (n, item) in deal.line_items.iter().enumerate() {
            let attachment = st.id();
            let price = number(&item.price);
            products.push(json!({
                "id": attachment, "sum": price.as_f64().unwrap_or(0.0) * item.quantity, "tax": 0, "deal_id": id,
                "name": item.name, "product_id": attachment + 500, "product_variation_id": null, "order_nr": n + 1,
                "add_time": won, "update_time": won, "comments": "", "currency": deal.currency, "discount": 0,
                "quantity": item.quantity, "item_price": price, "tax_method": "inclusive", "discount_type": "percentage",
                "is_enabled": true, "billing_frequency": "one-time", "billing_frequency_cycles": null, "billing_start_date": null
            }));
        }
        st.products.insert(id, products);
        // GET /api/v1/notes: the "Get all notes" example.
        for note in &deal.notes {
            let nid = st.id();
            st.notes.push(json!({
                "id": nid, "active_flag": true, "add_time": v1_time(note.at), "content": note.body,
                "deal": {"title": deal.name}, "lead_id": null, "deal_id": id, "last_update_user_id": owner_id,
                "org_id": org_id, "organization": {"name": deal.account}, "person": null, "person_id": null,
                "project_id": null, "project": null, "pinned_to_lead_flag": false, "pinned_to_deal_flag": false,
                "pinned_to_organization_flag": false, "pinned_to_person_flag": false, "pinned_to_project_flag": false,
                "update_time": v1_time(note.at),
                "user": deal.owner.as_ref().map(|o| json!({"email": o.email, "icon_url": null, "is_you": true,
                                                          "name": format!("{} {}", o.first_name, o.last_name)})),
                "user_id": owner_id
            }));
        }
        // GET /api/v2/activities: the "Get all activities" example.
        for a in &deal.activities {
            let aid = st.id();
            st.activities.push(json!({
                "id": aid, "subject": a.subject, "type": a.kind, "owner_id": owner_id, "creator_user_id": owner_id,
                "is_deleted": false, "add_time": v2_time(a.at), "update_time": v2_time(a.at), "deal_id": id,
                "lead_id": null, "person_id": person_ids.first(), "org_id": org_id, "project_id": null,
                "due_date": a.at.format("%Y-%m-%d").to_string(), "due_time": a.at.format("%H:%M:%S").to_string(),
                "duration": "00:30:00", "busy": a.kind == "meeting", "done": true, "marked_as_done_time": v2_time(a.at),
                "location": null,
                "participants": person_ids.first().map(|p| vec![json!({"person_id": p, "primary": true})]).unwrap_or_default(),
                "conference_meeting_client": null, "conference_meeting_url": null, "conference_meeting_id": null,
                "public_description": null, "priority": null, "note": a.body
            }));
        }
        // GET /api/v2/deals/{id}: the "Get details of a deal" example.
        let mut custom_fields = serde_json::Map::new();
        custom_fields.insert(NOTES_FIELD_KEY.into(), deal.notes_field.as_ref().map_or(Value::Null, |t| json!(t)));
        st.deals.insert(
            id,
            json!({
                "id": id, "title": deal.name, "creator_user_id": owner_id, "owner_id": owner_id, "value": number(&deal.amount),
                "person_id": person_ids.first(), "org_id": org_id, "stage_id": 5, "pipeline_id": 1, "currency": deal.currency,
                "add_time": v2_time(deal.won_at - chrono::TimeDelta::days(45)), "update_time": won, "stage_change_time": won,
                "status": "won", "is_archived": false, "is_deleted": false, "probability": null, "lost_reason": null,
                "visible_to": 3, "close_time": won, "won_time": won, "lost_time": null,
                "local_won_date": deal.won_at.format("%Y-%m-%d").to_string(), "local_lost_date": null,
                "local_close_date": deal.won_at.format("%Y-%m-%d").to_string(),
                "expected_close_date": deal.won_at.format("%Y-%m-%d").to_string(), "label_ids": [],
                "origin": "ManuallyCreated", "origin_id": null, "channel": null, "channel_id": null,
                "acv": null, "arr": null, "mrr": null, "custom_fields": custom_fields
            }),
        );
    }

    /// At most `n` items a page, whatever `limit` the request asks (to force pagination).
    pub fn set_page_size(&self, n: usize) {
        self.state.page_size.store(n.clamp(1, MAX_LIMIT), Ordering::SeqCst);
    }

    /// The API token the fake accepts from now on: a token that was good is refused, as after
    /// the user regenerates it.
    pub fn set_token(&self, token: &str) {
        *self.state.token.lock().unwrap() = token.to_string();
    }

    /// The requests per 2-second window that `x-ratelimit-limit` announces (`-remaining` counts
    /// down to 0 within it).
    pub fn set_window_limit(&self, n: u32) {
        self.state.window_limit.store(n.max(1), Ordering::SeqCst);
    }

    /// The v2 cursor of the page that starts at item `offset`, as `next_cursor` gives it.
    pub fn cursor_at(offset: usize) -> String {
        URL_SAFE_NO_PAD.encode(json!({"field": "id", "offset": offset, "sortDirection": "asc"}).to_string())
    }
}

impl State {
    /// Pipedrive's `401` when the token is missing or not the one accepted (the "unauthorized
    /// response" example).
    fn refuse(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let sent = req.headers().get("x-api-token").and_then(|v| v.to_str().ok());
        let good = self.token.lock().unwrap();
        (sent != Some(good.as_str()))
            .then(|| HttpResponse::Unauthorized().json(json!({"success": false, "error": "unauthorized access", "errorCode": 401})))
    }

    /// A `200` with `body` and the limit headers of Pipedrive's rate limiting page.
    fn ok(&self, body: Value) -> HttpResponse {
        let limit = self.window_limit.load(Ordering::SeqCst);
        let now = Instant::now();
        let mut w = self.window.lock().unwrap();
        while w.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            w.pop_front();
        }
        w.push_back(now);
        let remaining = limit.saturating_sub(w.len() as u32);
        // Whole seconds until the oldest request of the window leaves it.
        let reset = w.front().map_or(WINDOW, |t| WINDOW.saturating_sub(now.duration_since(*t)));
        let reset = reset.as_millis().div_ceil(1000).max(1);
        HttpResponse::Ok()
            .insert_header(("x-ratelimit-limit", limit.to_string()))
            .insert_header(("x-ratelimit-remaining", remaining.to_string()))
            .insert_header(("x-ratelimit-reset", reset.to_string()))
            .json(body)
    }

    /// The page size a request gets: its `limit` (Pipedrive's default 100, at most 500), at most
    /// the fake's page size.
    fn limit(&self, q: &HashMap<String, String>) -> usize {
        let asked = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        asked.min(self.page_size.load(Ordering::SeqCst))
    }

    /// A v1 list page: `data` (null when empty, as Pipedrive answers) and
    /// `additional_data.pagination`.
    fn v1_page(&self, items: &[Value], q: &HashMap<String, String>) -> HttpResponse {
        let start = q.get("start").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
        let limit = self.limit(q);
        let (data, next) = page(items, start, limit);
        let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": next.is_some()});
        if let Some(n) = next {
            pagination["next_start"] = json!(n);
        }
        let data = if data.is_empty() { Value::Null } else { Value::Array(data) };
        self.ok(json!({"success": true, "data": data, "additional_data": {"pagination": pagination}}))
    }

    /// A v2 list page: `data` and `additional_data.next_cursor` (null on the last page).
    fn v2_page(&self, items: &[Value], q: &HashMap<String, String>) -> HttpResponse {
        let start = match q.get("cursor").map(|c| decode_cursor(c)) {
            None => 0,
            Some(Some(offset)) => offset,
            Some(None) => return HttpResponse::BadRequest().json(json!({"success": false, "error": "Invalid cursor", "code": 400})),
        };
        let (data, next) = page(items, start, self.limit(q));
        self.ok(json!({"success": true, "data": data, "additional_data": {"next_cursor": next.map(FakePipedrive::cursor_at)}}))
    }
}

type Query = web::Query<HashMap<String, String>>;

/// The `404` of Pipedrive's v2 API (the example the v2 Deals reference documents).
fn v2_not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "success": false, "error": "Entity was not found", "error_info": "Object was not found.", "data": null, "additional_data": null
    }))
}

/// GET /api/v2/deals/{id}: "Get details of a deal".
async fn get_deal(req: HttpRequest, st: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let deal = id.parse::<u64>().ok().and_then(|id| st.store.lock().unwrap().deals.get(&id).cloned());
    match deal {
        Some(d) => st.ok(json!({"success": true, "data": d})),
        None => v2_not_found(),
    }
}

/// GET /api/v1/users/{id}: "Get one user" (its 404 example for an unknown user).
async fn get_user(req: HttpRequest, st: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let user = id.parse::<u64>().ok().and_then(|id| st.store.lock().unwrap().users.get(&id).cloned());
    match user {
        Some(u) => st.ok(json!({"success": true, "data": u})),
        None => HttpResponse::NotFound().json(json!({"success": false, "error": "User not found or not accessible."})),
    }
}

/// GET /api/v2/organizations/{id}: "Get details of a organization".
async fn get_organization(req: HttpRequest, st: web::Data<State>, id: web::Path<String>) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let org = id.parse::<u64>().ok().and_then(|id| st.store.lock().unwrap().organizations.get(&id).cloned());
    match org {
        Some(o) => st.ok(json!({"success": true, "data": o})),
        None => v2_not_found(),
    }
}

/// GET /api/v1/deals/{id}/participants: "List participants of a deal", v1 pages.
async fn get_participants(req: HttpRequest, st: web::Data<State>, id: web::Path<String>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let items = id.parse::<u64>().ok().and_then(|id| st.store.lock().unwrap().participants.get(&id).cloned());
    match items {
        Some(items) => st.v1_page(&items, &q),
        None => v2_not_found(),
    }
}

/// GET /api/v2/persons: "Get all persons", filtered by `ids` (up to 100), v2 pages.
async fn get_persons(req: HttpRequest, st: web::Data<State>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let ids: Option<Vec<u64>> = q.get("ids").map(|ids| ids.split(',').filter_map(|i| i.trim().parse().ok()).collect());
    if ids.as_ref().is_some_and(|ids| ids.len() > 100) {
        return HttpResponse::BadRequest().json(json!({"success": false, "error": "ids: up to 100 ids are allowed", "code": 400}));
    }
    let items: Vec<Value> = {
        let store = st.store.lock().unwrap();
        store.persons.iter().filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id))).map(|(_, p)| p.clone()).collect()
    };
    st.v2_page(&items, &q)
}

/// GET /api/v2/deals/{id}/products: "List products attached to a deal", v2 pages.
async fn get_deal_products(req: HttpRequest, st: web::Data<State>, id: web::Path<String>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let items = id.parse::<u64>().ok().and_then(|id| st.store.lock().unwrap().products.get(&id).cloned());
    match items {
        Some(items) => st.v2_page(&items, &q),
        None => v2_not_found(),
    }
}

/// GET /api/v1/notes: "Get all notes", filtered by `deal_id`, v1 pages.
async fn get_notes(req: HttpRequest, st: web::Data<State>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let items = by_deal(&st.store.lock().unwrap().notes, &q);
    st.v1_page(&items, &q)
}

/// GET /api/v2/activities: "Get all activities", filtered by `deal_id`, v2 pages.
async fn get_activities(req: HttpRequest, st: web::Data<State>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let items = by_deal(&st.store.lock().unwrap().activities, &q);
    st.v2_page(&items, &q)
}

/// The items of the deal `deal_id` names; every item without one.
fn by_deal(items: &[Value], q: &HashMap<String, String>) -> Vec<Value> {
    let deal = q.get("deal_id").map(|d| d.parse::<u64>().unwrap_or(0));
    items.iter().filter(|i| deal.is_none_or(|d| i["deal_id"] == d)).cloned().collect()
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v["offset"].as_u64().map(|o| o as usize)
}

/// A sample's id as Pipedrive's number.
fn numeric(id: &str) -> u64 {
    id.parse().unwrap_or_else(|_| panic!("Pipedrive ids are numbers: '{id}'"))
}

/// A decimal as the JSON number Pipedrive sends.
fn number(decimal: &str) -> Value {
    serde_json::from_str::<serde_json::Number>(decimal).map(Value::Number).unwrap_or_else(|_| panic!("not a decimal: '{decimal}'"))
}

/// v2 times: RFC 3339 in UTC.
fn v2_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// v1 times: `YYYY-MM-DD HH:MM:SS` in UTC.
fn v1_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
