//! Fake Salesforce org: the OAuth 2.0 client credentials token endpoint and the REST API's query
//! resources, as firstcall's connector uses them. It knows two query shapes, the connector's:
//! - an opportunity by id (`… FROM Opportunity WHERE Id = '<id>'`) with the standard fields the
//!   outer `SELECT` names and the related lists its subqueries name (`OpportunityContactRoles`,
//!   `OpportunityLineItems`, `Tasks`, `Events`, `Notes`);
//! - the won opportunities modified since a time (`… FROM Opportunity WHERE IsWon = true AND
//!   LastModifiedDate >= <dateTime> ORDER BY LastModifiedDate ASC, Id ASC [LIMIT n]`): it
//!   evaluates the bound and the limit, sorts, and answers in batches with `nextRecordsUrl`.
//!
//! It also creates tasks (`POST /services/data/<version>/sobjects/Task/`), as the connector
//! records a call's outcome: it checks the fields as an org does (a known field set, required
//! picklists with their values, string lengths, an ISO date, a `WhatId` that is an opportunity
//! of the org), keeps every task created ([`FakeSalesforce::created_tasks`]) and lists a task on
//! an opportunity under its `Tasks`, so a later query of the opportunity reads it.
//!
//! It does not parse SOQL in general. Every opportunity a test puts is won (`StageName` `Closed
//! Won`) and last modified when it was won, unless the test moves its stage or its
//! `LastModifiedDate`, or sets any field to what it likes (a malformed row).
//!
//! What a test can switch: the batch size of query results and related lists (to make the
//! connector follow `nextRecordsUrl` locators), expiring every issued token (the next API call
//! answers `401 INVALID_SESSION_ID`) or refusing every session, and an org without
//! multi-currency (asking for `CurrencyIsoCode` answers `400 INVALID_FIELD`). It counts token
//! requests and keeps the SOQL of every query.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::{FakeServer, SampleDeal, page};

/// The external client app's consumer key and secret the fake accepts.
pub const CLIENT_ID: &str = "3MVG9VwZxxW3bBQjhE6m21CG2nSS4WC.GNbZCtKeQxFH7218ns6xOLCNnJVKnZFTZWKzt2qwSFqt2taMt5mcr";
pub const CLIENT_SECRET: &str = "8A4BE698BCA216718ECB0B1DCA294C69732EAD9472A1790F8FED38DD2E02B5FA";

/// The related lists the fake serves, in the order the connector names them.
const RELATED: [&str; 5] = ["OpportunityContactRoles", "OpportunityLineItems", "Tasks", "Events", "Notes"];

/// A running fake org.
pub struct FakeSalesforce {
    pub server: FakeServer,
    state: Arc<State>,
}

struct State {
    instance_url: Mutex<String>,
    /// Access tokens issued and not expired.
    tokens: Mutex<HashSet<String>>,
    token_requests: AtomicUsize,
    issued: AtomicU64,
    /// Batch size set by the test (0: Salesforce's, 2000 rows for a query, 200 for a related list).
    page_size: AtomicUsize,
    /// The SOQL of every query received, decoded.
    queries: Mutex<Vec<String>>,
    multi_currency: AtomicBool,
    /// Every API call answers 401, even with a token just issued (a revoked app).
    sessions_refused: AtomicBool,
    deals: Mutex<HashMap<String, Opportunity>>,
    /// Query locators: the records of one related list as one query found them, and its batch size.
    cursors: Mutex<HashMap<String, (Vec<Value>, usize)>>,
    /// Every task created through the API, as stored (with `Id` and `CreatedDate`), in order.
    created_tasks: Mutex<Vec<Value>>,
}

struct Opportunity {
    fields: Map<String, Value>,
    related: HashMap<&'static str, Vec<Value>>,
}

impl FakeSalesforce {
    pub async fn start() -> FakeSalesforce {
        let state = Arc::new(State {
            instance_url: Mutex::new(String::new()),
            tokens: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            issued: AtomicU64::new(0),
            page_size: AtomicUsize::new(0),
            queries: Mutex::default(),
            multi_currency: AtomicBool::new(true),
            sessions_refused: AtomicBool::new(false),
            deals: Mutex::default(),
            cursors: Mutex::default(),
            created_tasks: Mutex::default(),
        });
        let data = web::Data::from(state.clone());
        let server = FakeServer::start(move |cfg| {
            cfg.app_data(data.clone())
                .route("/services/oauth2/token", web::post().to(token))
                .route("/services/data/{version}/query", web::get().to(query))
                .route("/services/data/{version}/query/{locator}", web::get().to(query_more))
                .route("/services/data/{version}/sobjects/{sobject}/", web::post().to(create))
                .route("/services/data/{version}/sobjects/{sobject}", web::post().to(create));
        })
        .await;
        *state.instance_url.lock().unwrap() = server.base_url.clone();
        FakeSalesforce { server, state }
    }

    /// Stores `deal` as opportunity `id` with its owner, account, contact roles, line items,
    /// tasks (emails, calls, tasks), events (meetings) and notes (plain text, as classic notes
    /// keep it). The sample's notes field is the opportunity's `Description`. It is won
    /// (`StageName` `Closed Won`), closed on the day of `won_at` and last modified at `won_at`.
    pub fn put_deal(&self, id: &str, deal: &SampleDeal) {
        let n = self.state.issued.fetch_add(1, Ordering::SeqCst) * 100;
        let attributes = |kind: &str, id: &str| json!({"type": kind, "url": format!("/services/data/v62.0/sobjects/{kind}/{id}")});
        let mut fields = Map::new();
        fields.insert("attributes".into(), attributes("Opportunity", id));
        fields.insert("Id".into(), json!(id));
        fields.insert("Name".into(), json!(deal.name));
        fields.insert("Amount".into(), json!(deal.amount.parse::<f64>().ok()));
        fields.insert("CloseDate".into(), json!(deal.won_at.format("%Y-%m-%d").to_string()));
        fields.insert("StageName".into(), json!("Closed Won"));
        fields.insert("IsClosed".into(), json!(true));
        fields.insert("IsWon".into(), json!(true));
        fields.insert("LastModifiedDate".into(), json!(datetime(deal.won_at)));
        fields.insert("CurrencyIsoCode".into(), json!(deal.currency));
        fields.insert("Description".into(), json!(deal.notes_field));
        let owner_id = deal.owner.as_ref().map(|o| record_id("005", o.id.parse().unwrap_or(n + 2)));
        fields.insert("OwnerId".into(), json!(owner_id));
        let account_id = record_id("001", n + 1);
        fields.insert("Account".into(), json!({"attributes": attributes("Account", &account_id), "Name": deal.account}));
        fields.insert(
            "Owner".into(),
            match &deal.owner {
                Some(o) => {
                    let user = record_id("005", o.id.parse().unwrap_or(n + 2));
                    json!({"attributes": attributes("User", &user), "Email": o.email, "Name": format!("{} {}", o.first_name, o.last_name)})
                }
                None => Value::Null,
            },
        );

        let mut related: HashMap<&'static str, Vec<Value>> = HashMap::new();
        related.insert(
            "OpportunityContactRoles",
            deal.contacts
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let contact = record_id("003", c.id.parse().unwrap_or(n + 10 + i as u64));
                    json!({
                        "attributes": attributes("OpportunityContactRole", &record_id("00K", n + 10 + i as u64)),
                        "ContactId": contact,
                        "Role": c.role,
                        "IsPrimary": i == 0,
                        "Contact": {
                            "attributes": attributes("Contact", &contact),
                            "Name": format!("{} {}", c.first_name, c.last_name),
                            "Email": c.email,
                            "Title": c.title,
                        },
                    })
                })
                .collect(),
        );
        related.insert(
            "OpportunityLineItems",
            deal.line_items
                .iter()
                .enumerate()
                .map(|(i, li)| {
                    json!({
                        "attributes": attributes("OpportunityLineItem", &record_id("00k", n + 20 + i as u64)),
                        "ProductCode": li.sku,
                        // Salesforce names an opportunity product after the opportunity and the product.
                        "Name": format!("{} {}", deal.name, li.name),
                        "Product2": {"attributes": attributes("Product2", &record_id("01t", n + 20 + i as u64)), "Name": li.name},
                        "Quantity": li.quantity,
                        "UnitPrice": li.price.parse::<f64>().ok(),
                        "Description": null,
                    })
                })
                .collect(),
        );
        let (mut tasks, mut events) = (Vec::new(), Vec::new());
        for (i, a) in deal.activities.iter().enumerate() {
            let k = n + 30 + i as u64;
            if a.kind == "meeting" {
                events.push(json!({
                    "attributes": attributes("Event", &record_id("00U", k)),
                    "Subject": a.subject,
                    "Description": a.body,
                    "StartDateTime": datetime(a.at),
                    "CreatedDate": datetime(a.at),
                }));
            } else {
                let subtype = match a.kind {
                    "email" => "Email",
                    "call" => "Call",
                    _ => "Task",
                };
                tasks.push(json!({
                    "attributes": attributes("Task", &record_id("00T", k)),
                    "Subject": a.subject,
                    "Description": a.body,
                    "ActivityDate": a.at.format("%Y-%m-%d").to_string(),
                    "CreatedDate": datetime(a.at),
                    "TaskSubtype": subtype,
                }));
            }
        }
        related.insert("Tasks", tasks);
        related.insert("Events", events);
        related.insert(
            "Notes",
            deal.notes
                .iter()
                .enumerate()
                .map(|(i, note)| {
                    let body = plain_text(&note.body);
                    json!({
                        "attributes": attributes("Note", &record_id("002", n + 50 + i as u64)),
                        "Title": body.lines().next().unwrap_or_default(),
                        "Body": body,
                        "CreatedDate": datetime(note.at),
                    })
                })
                .collect(),
        );
        self.state.deals.lock().unwrap().insert(id.to_string(), Opportunity { fields, related });
    }

    /// Query results and related lists come in batches of `n` records (unless set, 2000 and 200).
    pub fn set_page_size(&self, n: usize) {
        self.state.page_size.store(n.max(1), Ordering::SeqCst);
    }

    /// Moves opportunity `id` to `stage`, as a rep does: `Closed Won` is closed and won,
    /// `Closed Lost` closed and not won, any other stage (`Negotiation/Review`) open.
    pub fn set_stage(&self, id: &str, stage: &str) {
        self.set_field(id, "StageName", json!(stage));
        self.set_field(id, "IsClosed", json!(stage.starts_with("Closed")));
        self.set_field(id, "IsWon", json!(stage == "Closed Won"));
    }

    /// Sets opportunity `id`'s `LastModifiedDate` (a change after it was won).
    pub fn set_last_modified(&self, id: &str, at: chrono::DateTime<chrono::Utc>) {
        self.set_field(id, "LastModifiedDate", json!(datetime(at)));
    }

    /// Sets field `name` of opportunity `id` to `value` as it is, malformed if the test likes
    /// (`null` for `Id`, `"yesterday"` for `CloseDate`).
    pub fn set_field(&self, id: &str, name: &str, value: Value) {
        let mut deals = self.state.deals.lock().unwrap();
        let opp = deals.get_mut(id).unwrap_or_else(|| panic!("no opportunity {id} in the fake org"));
        opp.fields.insert(name.to_string(), value);
    }

    /// Every task created through the API so far, as the org stored it: the fields sent, with
    /// `Id`, `CreatedDate`, `IsClosed`, and the defaults of `Status` and `Priority` when absent.
    pub fn created_tasks(&self) -> Vec<Value> {
        self.state.created_tasks.lock().unwrap().clone()
    }

    /// The SOQL of every query received so far (decoded), in order.
    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }

    /// Every issued token stops working, as when sessions time out: the next API call with one
    /// answers `401 INVALID_SESSION_ID`.
    pub fn expire_tokens(&self) {
        self.state.tokens.lock().unwrap().clear();
    }

    /// Every API call answers `401 INVALID_SESSION_ID`, new tokens included (the integration
    /// user was deactivated after the token was issued).
    pub fn set_sessions_refused(&self, refused: bool) {
        self.state.sessions_refused.store(refused, Ordering::SeqCst);
    }

    /// How many token requests arrived (granted or refused).
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// An org without multi-currency: `CurrencyIsoCode` does not exist.
    pub fn set_multi_currency(&self, on: bool) {
        self.state.multi_currency.store(on, Ordering::SeqCst);
    }
}

/// An 18-character Salesforce id: the key prefix, `n`, and the case-safe suffix Salesforce adds
/// to the 15-character id (a letter per five characters, with a bit per upper-case letter).
pub fn record_id(prefix: &str, n: u64) -> String {
    let short = format!("{prefix}Dn{n:0>width$}", width = 15 - prefix.len() - 2);
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut id = short.clone();
    for chunk in short.as_bytes().chunks(5) {
        let bits = chunk.iter().enumerate().filter(|(_, c)| c.is_ascii_uppercase()).fold(0, |acc, (i, _)| acc | (1 << i));
        id.push(SUFFIX[bits] as char);
    }
    id
}

/// `2026-10-05T12:00:00.000+0000`, as Salesforce writes a dateTime.
fn datetime(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// A rich-text sample note as the plain text a classic note holds: one line per paragraph.
fn plain_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let with_breaks = html.replace("</p>", "\n").replace("<br>", "\n").replace("<br/>", "\n");
    for c in with_breaks.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.trim_end().to_string()
}

/// Salesforce's error body: a list of `{message, errorCode}`.
fn error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!([{"message": message, "errorCode": code}]))
}

/// Documented: "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration" and the
/// Connect REST API quick start's token example (`POST /services/oauth2/token` with
/// `grant_type=client_credentials&client_id=…&client_secret=…` answers `access_token`,
/// `signature`, `instance_url`, `id`, `token_type`, `issued_at`); refused credentials answer
/// `400 {"error":"invalid_client","error_description":"invalid client credentials"}`.
async fn token(state: web::Data<State>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let refuse =
        |error: &str, description: &str| HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}));
    if field("grant_type") != "client_credentials" {
        return refuse("unsupported_grant_type", "grant type not supported");
    }
    if field("client_id") != CLIENT_ID {
        return refuse("invalid_client_id", "client identifier invalid");
    }
    if field("client_secret") != CLIENT_SECRET {
        return refuse("invalid_client", "invalid client credentials");
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst);
    let access_token = format!("00DDn00000Fake1!AR8AQ{n:08}.fakeSessionJU8Jt9W8k7FySsPAkvCnsadT_AbJTSW5T");
    state.tokens.lock().unwrap().insert(access_token.clone());
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let instance_url = state.instance_url.lock().unwrap().clone();
    HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "signature": format!("nUFHwtfIGLKDTHcLWmDBG8frv0t+HQGl/iCZFIQ{n:04}="),
        "token_format": "opaque",
        "instance_url": instance_url,
        "id": format!("https://login.salesforce.com/id/00DDn00000Fake1AAA/{}", record_id("005", 9000)),
        "token_type": "Bearer",
        "issued_at": issued_at,
    }))
}

/// Documented: REST API "Status Codes and Error Responses": 401 "The session ID or OAuth token
/// has expired or is invalid", body `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
fn session_refused(state: &State, req: &HttpRequest) -> Option<HttpResponse> {
    let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(t) if !state.sessions_refused.load(Ordering::SeqCst) && state.tokens.lock().unwrap().contains(t) => None,
        _ => Some(error(actix_web::http::StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")),
    }
}

/// Documented: "Execute a SOQL Query" (`GET /services/data/vXX.X/query?q=…` answers
/// `{"totalSize","done","records":[{"attributes":{"type","url"},…}]}`) and "Understanding Query
/// Results" (a subquery's rows nest in the parent record as a query result of their own, with
/// `nextRecordsUrl` when there are more, `null` when there are none). An id with no record
/// answers `{"totalSize":0,"done":true,"records":[]}`.
async fn query(state: web::Data<State>, req: HttpRequest, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    if let Some(refused) = session_refused(&state, &req) {
        return refused;
    }
    let version = path.into_inner();
    let soql = q.get("q").map(String::as_str).unwrap_or_default();
    state.queries.lock().unwrap().push(soql.to_string());
    if soql.contains(WON_MARKER) {
        return won(&state, &version, soql);
    }
    let marker = "FROM Opportunity WHERE Id = '";
    let Some(id) = soql.split_once(marker).and_then(|(_, rest)| rest.split_once('\'')).map(|(id, _)| id) else {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "the fake org answers only queries of one opportunity by Id",
        );
    };
    let wanted = outer_fields(soql);

    let deals = state.deals.lock().unwrap();
    let Some(opp) = deals.get(id) else {
        return HttpResponse::Ok().json(json!({"totalSize": 0, "done": true, "records": []}));
    };
    let mut record = match select(&state, opp, &wanted) {
        Ok(record) => record,
        Err(field) => return no_such_field(soql, &field),
    };
    let size = state.batch_size(200);
    for rel in RELATED.into_iter().filter(|rel| soql.contains(&format!("FROM {rel})"))) {
        let rows = opp.related.get(rel).cloned().unwrap_or_default();
        let value = if rows.is_empty() {
            Value::Null
        } else {
            let n = state.issued.fetch_add(1, Ordering::SeqCst);
            let locator = record_id("01g", 500_000 + n);
            let body = batch(&version, &locator, &rows, 0, size);
            state.cursors.lock().unwrap().insert(locator, (rows, size));
            body
        };
        record.insert(rel.to_string(), value);
    }
    HttpResponse::Ok().json(json!({"totalSize": 1, "done": true, "records": [record]}))
}

/// How the fake recognises the won query.
const WON_MARKER: &str = "FROM Opportunity WHERE IsWon = true";

/// The won opportunities query. Documented: "Execute a SOQL Query" (as above; a query whose
/// rows do not fit one batch answers `"done": false` and `nextRecordsUrl`
/// `/services/data/v62.0/query/01gD0000002HU6KIAW-2000`), the Query resource ("up to 2,000
/// records can be returned at a time"; `totalSize` counts every row the query found), SOQL "Date
/// Formats and Date Literals in WHERE" (a `dateTime` is written unquoted:
/// `WHERE CreatedDate > 2005-10-08T01:02:03Z`), `ORDER BY` and `LIMIT`; Opportunity's `IsWon`.
fn won(state: &State, version: &str, soql: &str) -> HttpResponse {
    let bad = |code: &str, message: &str| error(actix_web::http::StatusCode::BAD_REQUEST, code, message);
    if !soql.contains(" ORDER BY LastModifiedDate ASC, Id ASC") {
        return bad("MALFORMED_QUERY", "the fake org answers won opportunities only by LastModifiedDate, then Id");
    }
    let Some((_, literal)) = soql.split_once("LastModifiedDate >= ") else {
        return bad("MALFORMED_QUERY", "the fake org answers won opportunities only from a LastModifiedDate");
    };
    let literal = literal.split_whitespace().next().unwrap_or_default();
    if literal.starts_with('\'') {
        return bad(
            "INVALID_FIELD",
            "value of filter criterion for field 'LastModifiedDate' must be of type dateTime and should not be enclosed in quotes",
        );
    }
    let Ok(bound) = chrono::DateTime::parse_from_rfc3339(literal) else {
        return bad("MALFORMED_QUERY", &format!("line 1:0 no viable alternative at character '{literal}'"));
    };
    let limit = match soql.split_once(" LIMIT ").map(|(_, n)| n.trim().parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("MALFORMED_QUERY", "unexpected token after LIMIT"),
    };
    let wanted = outer_fields(soql);

    let deals = state.deals.lock().unwrap();
    let mut found: Vec<(chrono::DateTime<chrono::FixedOffset>, &String, &Opportunity)> = deals
        .iter()
        .filter(|(_, o)| o.fields.get("IsWon") == Some(&json!(true)))
        .filter_map(|(id, o)| {
            let modified = o.fields.get("LastModifiedDate")?.as_str()?;
            let modified = chrono::DateTime::parse_from_str(modified, "%Y-%m-%dT%H:%M:%S%.f%z").ok()?;
            (modified >= bound).then_some((modified, id, o))
        })
        .collect();
    found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut rows = Vec::new();
    for (_, _, opp) in found.into_iter().take(limit) {
        match select(state, opp, &wanted) {
            Ok(record) => rows.push(Value::Object(record)),
            Err(field) => return no_such_field(soql, &field),
        }
    }
    drop(deals);
    if rows.is_empty() {
        return HttpResponse::Ok().json(json!({"totalSize": 0, "done": true, "records": []}));
    }
    let size = state.batch_size(2000);
    let locator = record_id("01g", 500_000 + state.issued.fetch_add(1, Ordering::SeqCst));
    let body = batch(version, &locator, &rows, 0, size);
    state.cursors.lock().unwrap().insert(locator, (rows, size));
    HttpResponse::Ok().json(body)
}

/// The fields the outer `SELECT` names.
fn outer_fields(soql: &str) -> Vec<&str> {
    let outer = soql.strip_prefix("SELECT ").unwrap_or_default();
    let outer = outer.split("(SELECT").next().unwrap_or_default().split(" FROM ").next().unwrap_or_default();
    outer.split(',').map(str::trim).filter(|f| !f.is_empty()).collect()
}

/// The record with the `wanted` fields of `opp` (a relationship field, `Owner.Email`, brings its
/// whole parent), or the name of a field the org does not have.
fn select(state: &State, opp: &Opportunity, wanted: &[&str]) -> Result<Map<String, Value>, String> {
    let mut record = Map::new();
    record.insert("attributes".into(), opp.fields["attributes"].clone());
    for field in wanted {
        let root = field.split('.').next().unwrap_or(field);
        let found = opp.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(root));
        let missing = root.eq_ignore_ascii_case("CurrencyIsoCode") && !state.multi_currency.load(Ordering::SeqCst);
        match found {
            Some((k, v)) if !missing => {
                record.insert(k.clone(), v.clone());
            }
            _ => return Err(root.to_string()),
        }
    }
    Ok(record)
}

/// Salesforce's answer to a field the org does not have: it echoes the query, points at the
/// field, and names it.
fn no_such_field(soql: &str, field: &str) -> HttpResponse {
    let message = format!("\n{soql}\n^\nERROR at Row:1:Column:8\nNo such column '{field}' on entity 'Opportunity'.");
    error(actix_web::http::StatusCode::BAD_REQUEST, "INVALID_FIELD", &message)
}

impl State {
    /// The batch size the test set, or Salesforce's `default`.
    fn batch_size(&self, default: usize) -> usize {
        match self.page_size.load(Ordering::SeqCst) {
            0 => default,
            n => n,
        }
    }
}

/// Documented: "Execute a SOQL Query", retrieving the remaining results: `GET` the
/// `nextRecordsUrl` (`/services/data/v62.0/query/01gD0000002HU6KIAW-2000`), which answers the
/// next batch in the same shape.
async fn query_more(state: web::Data<State>, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Some(refused) = session_refused(&state, &req) {
        return refused;
    }
    let (version, locator) = path.into_inner();
    let found = locator.rsplit_once('-').and_then(|(cursor, start)| {
        let start: usize = start.parse().ok()?;
        let cursors = state.cursors.lock().unwrap();
        let (rows, size) = cursors.get(cursor)?;
        Some(batch(&version, cursor, rows, start, *size))
    });
    match found {
        Some(body) => HttpResponse::Ok().json(body),
        None => error(actix_web::http::StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    }
}

/// One batch of a query result from `start`, with the locator of the next when there is one.
fn batch(version: &str, cursor: &str, rows: &[Value], start: usize, size: usize) -> Value {
    let (records, next) = page(rows, start, size);
    let mut body = json!({"totalSize": rows.len(), "done": next.is_none(), "records": records});
    if let Some(next) = next {
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{cursor}-{next}"));
    }
    body
}

/// The Task fields the fake lets a create set (a subset of the object's createable fields).
const TASK_FIELDS: [&str; 10] =
    ["WhatId", "WhoId", "OwnerId", "Subject", "Description", "Status", "Priority", "ActivityDate", "TaskSubtype", "Type"];
/// The values of `Task.Status` and `Task.Priority` in a default org.
const TASK_STATUSES: [&str; 5] = ["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"];
const TASK_PRIORITIES: [&str; 3] = ["High", "Normal", "Low"];

/// Creates a record. Documented: REST API "Create a Record" and "sObject Basic Information"
/// (`POST /services/data/vXX.X/sobjects/Account/` with a JSON body of field values answers
/// `201 {"id":"001D000000IqhSLIAZ","errors":[],"success":true}`; an `Id` in the body answers
/// `400 [{"message":"The Id field should not be specified in the sobject data.","errorCode":"INVALID_FIELD"}]`),
/// and the Task object reference (`WhatId`, a polymorphic reference labelled Related To;
/// `Subject` up to 255 characters; `Description`, Comments, a 32,000-character text area;
/// `ActivityDate` a date; `Status` and `Priority` required picklists, defaulted on create;
/// `IsClosed` set by a closed status such as `Completed`). Field errors name the field:
/// `[{"message":…,"errorCode":…,"fields":["WhatId"]}]`; a `WhatId` of no record the user can see
/// is `INVALID_CROSS_REFERENCE_KEY` ("invalid cross reference id"), an id of an object a task
/// cannot be related to (a task, a contact, a lead) or not an id `FIELD_INTEGRITY_EXCEPTION`.
/// Only Task is known here; another object answers as an unknown one,
/// `404 [{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]`.
async fn create(state: web::Data<State>, req: HttpRequest, path: web::Path<(String, String)>, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Some(refused) = session_refused(&state, &req) {
        return refused;
    }
    let (_version, sobject) = path.into_inner();
    if sobject != "Task" {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist");
    }
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            &format!("Content-Type header specified in HTTP request is not supported: {content_type}"),
        );
    }
    let bad = |code: &str, message: &str, field: Option<&str>| {
        let mut e = json!({"message": message, "errorCode": code});
        if let Some(f) = field {
            e["fields"] = json!([f]);
        }
        HttpResponse::BadRequest().json(json!([e]))
    };
    let mut fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return bad("JSON_PARSER_ERROR", "Cannot deserialize instance of Task from a value that is not an object", None),
        Err(e) => return bad("JSON_PARSER_ERROR", &format!("Unexpected character at [line:{},column:{}]", e.line(), e.column()), None),
    };
    if fields.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
        return bad("INVALID_FIELD", "The Id field should not be specified in the sobject data.", None);
    }
    if let Some(unknown) = fields.keys().find(|k| !TASK_FIELDS.contains(&k.as_str())) {
        return bad("INVALID_FIELD", &format!("No such column '{unknown}' on sobject of type Task"), None);
    }
    for (field, values, default) in [("Status", &TASK_STATUSES[..], "Not Started"), ("Priority", &TASK_PRIORITIES[..], "Normal")] {
        match fields.get(field) {
            None => {
                fields.insert(field.into(), json!(default));
            }
            Some(Value::String(v)) if values.contains(&v.as_str()) => {}
            Some(Value::Null) => return bad("REQUIRED_FIELD_MISSING", &format!("Required fields are missing: [{field}]"), Some(field)),
            Some(Value::String(v)) if v.is_empty() => {
                return bad("REQUIRED_FIELD_MISSING", &format!("Required fields are missing: [{field}]"), Some(field));
            }
            Some(v) => {
                let v = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
                return bad(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    &format!("{field}: bad value for restricted picklist field: {v}"),
                    Some(field),
                );
            }
        }
    }
    for (field, max) in [("Subject", 255), ("Description", 32_000)] {
        match fields.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) if v.chars().count() <= max => {}
            Some(Value::String(v)) => {
                let start: String = v.chars().take(20).collect();
                return bad("STRING_TOO_LONG", &format!("{field}: data value too large: {start}... (max length={max})"), Some(field));
            }
            Some(other) => return bad("JSON_PARSER_ERROR", &format!("Cannot deserialize instance of string from {other}"), Some(field)),
        }
    }
    match fields.get("ActivityDate") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() && d.len() == 10 => {}
        Some(other) => {
            return bad(
                "JSON_PARSER_ERROR",
                &format!("Cannot deserialize instance of date from VALUE_STRING value {other} or request may be missing a required field"),
                Some("ActivityDate"),
            );
        }
    }

    let mut deals = state.deals.lock().unwrap();
    let what = match fields.get("WhatId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            let incorrect =
                || bad("FIELD_INTEGRITY_EXCEPTION", &format!("Related To ID: id value of incorrect type: {id}"), Some("WhatId"));
            let is_id = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !is_id || ["00T", "00U", "003", "00Q", "005"].iter().any(|p| id.starts_with(p)) {
                return incorrect();
            }
            // A 15-character id is the 18-character one without its case-safe suffix.
            match deals.keys().find(|k| k.get(..15) == id.get(..15)).cloned() {
                Some(key) => Some(key),
                None => return bad("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", Some("WhatId")),
            }
        }
        Some(other) => return bad("JSON_PARSER_ERROR", &format!("Cannot deserialize instance of reference from {other}"), Some("WhatId")),
    };

    let n = state.issued.fetch_add(1, Ordering::SeqCst);
    let id = record_id("00T", 700_000 + n);
    let created = datetime(chrono::Utc::now());
    // `Completed` is the closed status of a default org.
    let closed = fields.get("Status") == Some(&json!("Completed"));
    fields.insert("attributes".into(), json!({"type": "Task", "url": format!("/services/data/v62.0/sobjects/Task/{id}")}));
    fields.insert("Id".into(), json!(id));
    fields.insert("CreatedDate".into(), json!(created));
    fields.insert("IsClosed".into(), json!(closed));
    fields.entry("TaskSubtype").or_insert(json!("Task"));
    if let Some(key) = what {
        let opp = deals.get_mut(&key).expect("found above");
        // As the connector's subquery selects it.
        let row = ["attributes", "Subject", "Description", "ActivityDate", "CreatedDate", "TaskSubtype"]
            .iter()
            .map(|k| (k.to_string(), fields.get(*k).cloned().unwrap_or(Value::Null)))
            .collect::<Map<String, Value>>();
        opp.related.entry("Tasks").or_default().push(Value::Object(row));
    }
    drop(deals);
    state.created_tasks.lock().unwrap().push(Value::Object(fields));
    HttpResponse::Created().json(json!({"id": id, "success": true, "errors": []}))
}
