//! Fake Pipedrive: the v1 and v2 endpoints firstcall's Pipedrive connector reads, on a
//! [`FakeServer`], with bodies modelled on the examples of Pipedrive's API reference
//! (developers.pipedrive.com, API v1 and v2; each route names its endpoint).
//!
//! A [`SampleDeal`] is stored the way Pipedrive keeps it: numeric ids; the account is an
//! organization; each contact is a person and a participant of the deal (the first one is also
//! the deal's main person), its role the person's job title; notes are notes; emails, calls,
//! meetings and tasks are activities of those types; line items are the deal's products.
//!
//! Notes can be added (`POST /api/v1/notes`, "Add a note"): a note added to a deal is stored with
//! the deal's notes, so `GET /api/v1/notes?deal_id=` lists it after; [`FakePipedrive::notes_of`]
//! gives a deal's notes and [`FakePipedrive::added_notes`] the bodies the fake was sent.
//!
//! [`FakePipedrive::put_deal`] stores a won deal updated when it was won;
//! [`FakePipedrive::set_deal_status`] and [`FakePipedrive::set_deal_update_time`] make it open,
//! lost or changed later, and the list of deals filters and pages by what they set.
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

/// The user the API token belongs to: the author of the notes added through the API.
pub const API_USER_ID: u64 = 5599;

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
    /// The bodies of `POST /api/v1/notes` requests, in order, as sent.
    added_notes: Vec<Value>,
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
                .route("/api/v2/deals", web::get().to(list_deals))
                .route("/api/v2/deals/{id}", web::get().to(get_deal))
                .route("/api/v1/users/{id}", web::get().to(get_user))
                .route("/api/v2/organizations", web::get().to(list_organizations))
                .route("/api/v2/organizations/{id}", web::get().to(get_organization))
                .route("/api/v1/deals/{id}/participants", web::get().to(get_participants))
                .route("/api/v2/persons", web::get().to(get_persons))
                .route("/api/v2/deals/{id}/products", web::get().to(get_deal_products))
                .route("/api/v1/notes", web::get().to(get_notes))
                .route("/api/v1/notes", web::post().to(add_note))
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

    /// Sets deal `id`'s status (`open`, `won`, `lost` or `deleted`) with the times Pipedrive
    /// keeps for it: a won deal's `won_time` is its update time unless it had one, and a deal no
    /// longer won has none (a lost one has a `lost_time`, a closed one a `close_time`).
    pub fn set_deal_status(&self, id: u64, status: &str) {
        assert!(["open", "won", "lost", "deleted"].contains(&status), "not a Pipedrive deal status: {status}");
        self.edit_deal(id, |d| {
            let updated = d["update_time"].clone();
            d["status"] = json!(status);
            d["is_deleted"] = json!(status == "deleted");
            if status == "won" {
                if d["won_time"].is_null() {
                    d["won_time"] = updated.clone();
                }
            } else {
                d["won_time"] = Value::Null;
                d["local_won_date"] = Value::Null;
            }
            d["lost_time"] = if status == "lost" { updated.clone() } else { Value::Null };
            match status {
                "won" => d["close_time"] = d["won_time"].clone(),
                "lost" => d["close_time"] = updated,
                "open" => d["close_time"] = Value::Null,
                _ => {}
            }
        });
    }

    /// Sets deal `id`'s `update_time`, as a change after it was won does (its `won_time` stays).
    pub fn set_deal_update_time(&self, id: u64, at: DateTime<Utc>) {
        self.edit_deal(id, |d| d["update_time"] = json!(v2_time(at)));
    }

    /// Changes deal `id` as Pipedrive would send it (any field, even one Pipedrive would never
    /// send broken). The list of deals filters and sorts by the `update_time` and `status` it
    /// then holds, and by the id it was put under.
    pub fn edit_deal(&self, id: u64, edit: impl FnOnce(&mut Value)) {
        let mut st = self.state.store.lock().unwrap();
        edit(st.deals.get_mut(&id).unwrap_or_else(|| panic!("no deal {id} was put")));
    }

    /// The `next_cursor` of a `GET /api/v2/deals` page sorted by `update_time` ascending whose
    /// last deal is `id`, updated at `at`: the documented cursor's fields
    /// (`{"field":…,"fieldValue":…,"sortDirection":…,"id":…}`), base64url.
    pub fn update_time_cursor(at: DateTime<Utc>, id: u64) -> String {
        deals_cursor("update_time", &json!(v2_time(at)), "asc", id)
    }

    /// The notes of deal `id`, oldest first, as `GET /api/v1/notes?deal_id=` lists them: those
    /// put with the deal and those added since.
    pub fn notes_of(&self, id: u64) -> Vec<Value> {
        self.state.store.lock().unwrap().notes.iter().filter(|n| n["deal_id"] == id).cloned().collect()
    }

    /// The JSON bodies of the `POST /api/v1/notes` requests the fake was sent (every one that was
    /// JSON, added or refused), in order.
    pub fn added_notes(&self) -> Vec<Value> {
        self.state.store.lock().unwrap().added_notes.clone()
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

/// GET /api/v2/deals: "Get all deals" (API v2 Deals reference and its example answer).
/// `status` (comma separated: open, won, lost, deleted; every deal not deleted when omitted),
/// `updated_since` (an `update_time` later than or equal to it) and `updated_until` (earlier
/// than it), both RFC 3339 as `2025-01-01T10:20:00Z`; `sort_by` (id, update_time, add_time; id
/// by default) and `sort_direction` (asc by default). v2 pages whose `next_cursor` holds the
/// last deal's sort value and id, as the documented example does
/// (`eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6Nywic29ydERpcmVjdGlvbiI6ImFzYyIsImlkIjo3fQ` is
/// `{"field":"id","fieldValue":7,"sortDirection":"asc","id":7}`): the next page starts after
/// that deal, so a deal updated while the pages are read moves to a later page.
async fn list_deals(req: HttpRequest, st: web::Data<State>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let bad = |what: &str| HttpResponse::BadRequest().json(json!({"success": false, "error": what, "code": 400}));
    let statuses: Option<Vec<&str>> = q.get("status").map(|s| s.split(',').map(str::trim).collect());
    if statuses.as_ref().is_some_and(|s| s.iter().any(|s| !["open", "won", "lost", "deleted"].contains(s))) {
        return bad("status: must be one of open, won, lost, deleted");
    }
    let mut bounds = [None, None];
    for (n, name) in ["updated_since", "updated_until"].into_iter().enumerate() {
        if let Some(v) = q.get(name) {
            match DateTime::parse_from_rfc3339(v) {
                Ok(t) => bounds[n] = Some(t.with_timezone(&Utc)),
                Err(_) => return bad(&format!("{name}: must be a date and time in RFC3339 format")),
            }
        }
    }
    let [since, until] = bounds;
    let sort_by = q.get("sort_by").map_or("id", String::as_str);
    if !["id", "update_time", "add_time"].contains(&sort_by) {
        return bad("sort_by: must be one of id, update_time, add_time");
    }
    let direction = q.get("sort_direction").map_or("asc", String::as_str);
    if !["asc", "desc"].contains(&direction) {
        return bad("sort_direction: must be one of asc, desc");
    }

    let mut deals: Vec<(i64, u64, Value)> = {
        let store = st.store.lock().unwrap();
        store
            .deals
            .iter()
            .filter(|(_, d)| {
                let status = d["status"].as_str().unwrap_or_default();
                let deleted = status == "deleted" || d["is_deleted"] == true;
                match &statuses {
                    None => !deleted,
                    Some(list) => list.iter().any(|s| if *s == "deleted" { deleted } else { !deleted && *s == status }),
                }
            })
            .filter(|(_, d)| {
                let updated = time_of(&d["update_time"]);
                since.is_none_or(|s| updated.is_some_and(|u| u >= s)) && until.is_none_or(|u| updated.is_some_and(|t| t < u))
            })
            .map(|(id, d)| (sort_value(sort_by, *id, d), *id, d.clone()))
            .collect()
    };
    deals.sort_by_key(|(value, id, _)| (*value, *id));
    if direction == "desc" {
        deals.reverse();
    }
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => {
            let Some((value, id)) = decode_deals_cursor(c, sort_by, direction) else {
                return bad("Invalid cursor");
            };
            let after = |v: i64, i: u64| if direction == "asc" { (v, i) > (value, id) } else { (v, i) < (value, id) };
            deals.iter().position(|(v, i, _)| after(*v, *i)).unwrap_or(deals.len())
        }
    };
    let end = (start + st.limit(&q)).min(deals.len());
    let next = (end < deals.len() && end > start).then(|| {
        let (_, id, d) = &deals[end - 1];
        let value = if sort_by == "id" { json!(id) } else { d[sort_by].clone() };
        deals_cursor(sort_by, &value, direction, *id)
    });
    let data: Vec<Value> = deals[start..end].iter().map(|(_, _, d)| d.clone()).collect();
    st.ok(json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}))
}

/// GET /api/v2/organizations: "Get all organizations", filtered by `ids` (up to 100), in id
/// order, v2 pages.
async fn list_organizations(req: HttpRequest, st: web::Data<State>, q: Query) -> HttpResponse {
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let ids: Option<Vec<u64>> = q.get("ids").map(|ids| ids.split(',').filter_map(|i| i.trim().parse().ok()).collect());
    if ids.as_ref().is_some_and(|ids| ids.len() > 100) {
        return HttpResponse::BadRequest().json(json!({"success": false, "error": "ids: up to 100 ids are allowed", "code": 400}));
    }
    let items: Vec<Value> = {
        let store = st.store.lock().unwrap();
        let mut orgs: Vec<(&u64, &Value)> =
            store.organizations.iter().filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id))).collect();
        orgs.sort_by_key(|(id, _)| **id);
        orgs.into_iter().map(|(_, o)| o.clone()).collect()
    };
    st.v2_page(&items, &q)
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

/// A v1 error answer: Pipedrive's error schema (core API concepts, "Responses").
fn v1_error(status: actix_web::http::StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "success": false, "error": error,
        "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data": null, "additional_data": null
    }))
}

/// POST /api/v1/notes: "Add a note" (API v1 Notes reference; Pipedrive has no notes in v2). A
/// JSON body with `content` (HTML, required) and the item the note is attached to (`deal_id`,
/// or one of `lead_id`, `person_id`, `org_id`, `project_id`). The answer is the documented
/// `200` with the note, in the shape of the reference's example, which `GET /api/v1/notes`
/// then lists with the deal's notes.
///
/// The reference documents no other answer. The fake answers as Pipedrive's general rules say:
/// a `deal_id` Pipedrive does not have is a resource not found, `404` (Pipedrive's status-code
/// table), and a body that is not JSON, has no content or names no item is invalid or missing
/// data, `400`; both with the documented error schema (the `error` texts are the fake's).
async fn add_note(req: HttpRequest, st: web::Data<State>, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Some(r) = st.refuse(&req) {
        return r;
    }
    let Ok(sent) = serde_json::from_slice::<Value>(&body) else {
        return v1_error(StatusCode::BAD_REQUEST, "The request body is not JSON.");
    };
    let mut store = st.store.lock().unwrap();
    store.added_notes.push(sent.clone());
    let content = sent["content"].as_str().unwrap_or_default();
    if content.trim().is_empty() {
        return v1_error(StatusCode::BAD_REQUEST, "Note content must be given.");
    }
    // v1 takes a number, or a number as text.
    let deal_id = match &sent["deal_id"] {
        Value::Null => None,
        v => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(id) => Some(id),
            None => return v1_error(StatusCode::BAD_REQUEST, "deal_id must be an integer."),
        },
    };
    if deal_id.is_none() && ["lead_id", "person_id", "org_id", "project_id"].iter().all(|k| sent[*k].is_null()) {
        return v1_error(StatusCode::BAD_REQUEST, "The note must be attached to a deal, lead, person, organization or project.");
    }
    let deal = match deal_id {
        None => None,
        Some(id) => match store.deals.get(&id) {
            Some(d) => Some((id, d.clone())),
            None => return v1_error(StatusCode::NOT_FOUND, "Deal not found"),
        },
    };
    let id = store.id();
    let now = v1_time(Utc::now());
    let org_id = deal.as_ref().map_or(Value::Null, |(_, d)| d["org_id"].clone());
    let org_name = org_id.as_u64().and_then(|o| store.organizations.get(&o)).map_or(Value::Null, |o| o["name"].clone());
    let note = json!({
        "id": id, "active_flag": true, "add_time": now, "content": content,
        "deal": deal.as_ref().map(|(_, d)| json!({"title": d["title"]})), "lead_id": sent["lead_id"],
        "deal_id": deal.as_ref().map(|(id, _)| *id), "last_update_user_id": API_USER_ID,
        "org_id": org_id, "organization": if org_name.is_null() { Value::Null } else { json!({"name": org_name}) },
        "person": null, "person_id": sent["person_id"], "project_id": sent["project_id"], "project": null,
        "pinned_to_lead_flag": false, "pinned_to_deal_flag": false, "pinned_to_organization_flag": false,
        "pinned_to_person_flag": false, "pinned_to_project_flag": false, "update_time": now,
        "user": {"email": "firstcall@seller.example", "icon_url": null, "is_you": true, "name": "firstcall"},
        "user_id": API_USER_ID
    });
    store.notes.push(note.clone());
    drop(store);
    st.ok(json!({"success": true, "data": note}))
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

/// A v2 time as the instant it names (none when it does not read).
fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// Where a deal sorts by `field`: its id, or the Unix second of its time (a missing time first).
fn sort_value(field: &str, id: u64, d: &Value) -> i64 {
    match field {
        "id" => id as i64,
        _ => time_of(&d[field]).map_or(i64::MIN, |t| t.timestamp()),
    }
}

/// A `GET /api/v2/deals` cursor: the last deal's sort field, value and id, and the direction.
fn deals_cursor(field: &str, value: &Value, direction: &str, id: u64) -> String {
    URL_SAFE_NO_PAD.encode(json!({"field": field, "fieldValue": value, "sortDirection": direction, "id": id}).to_string())
}

/// The sort value and id a deals cursor names, when it was made for this sort.
fn decode_deals_cursor(c: &str, sort_by: &str, direction: &str) -> Option<(i64, u64)> {
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    if v["field"] != sort_by || v["sortDirection"] != direction {
        return None;
    }
    let id = v["id"].as_u64()?;
    let value = if sort_by == "id" { v["fieldValue"].as_i64()? } else { time_of(&v["fieldValue"])?.timestamp() };
    Some((value, id))
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
