//! Fake CRM servers: real HTTP servers on loopback that serve the REST endpoints firstcall's
//! connectors use, with bodies modelled on each vendor's documented examples (each fake names
//! the endpoints and examples it follows). The connector code under test is the production code;
//! only its base URL points here.
//!
//! [`FakeServer`] is what every fake shares: it records each request (method, path, query,
//! `Authorization`, the status answered) and applies faults switched at run time, before the
//! fake's own routes see the request:
//! - a rate limit of N requests per second (a sliding one-second window): beyond it the answer
//!   is `429` with `Retry-After`;
//! - the next N requests answer `500`;
//! - down: every request answers `503`.

pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, HttpServer, web};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    /// Other headers a fake may need to check (`x-api-token`, `content-type`).
    pub api_token: Option<String>,
    pub status: u16,
    pub at: Instant,
}

/// Faults switched at run time.
#[derive(Debug, Default)]
pub struct Faults {
    /// Requests allowed per second (0: no limit).
    pub limit_per_second: AtomicU32,
    /// The `Retry-After` of a 429, in seconds (0: 1 s).
    pub retry_after_secs: AtomicU32,
    /// The next this many requests answer 500.
    pub fail_next: AtomicU32,
    /// Every request answers 503.
    pub down: AtomicBool,
    window: Mutex<VecDeque<Instant>>,
}

impl Faults {
    /// The answer a fault gives instead of the route, if any.
    fn intercept(&self) -> Option<HttpResponse> {
        if self.down.load(Ordering::SeqCst) {
            return Some(HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "error", "message": "Service Unavailable"})));
        }
        if self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Some(HttpResponse::InternalServerError().json(serde_json::json!({"status": "error", "message": "internal error"})));
        }
        let limit = self.limit_per_second.load(Ordering::SeqCst);
        if limit > 0 {
            let now = Instant::now();
            let mut w = self.window.lock().unwrap();
            while w.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                w.pop_front();
            }
            if w.len() >= limit as usize {
                let after = self.retry_after_secs.load(Ordering::SeqCst).max(1);
                return Some(HttpResponse::TooManyRequests().insert_header(("Retry-After", after.to_string())).json(
                    serde_json::json!({"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"}),
                ));
            }
            w.push_back(now);
        }
        None
    }
}

/// A running fake: its base URL, what it received, and its faults.
pub struct FakeServer {
    pub base_url: String,
    pub faults: Arc<Faults>,
    log: Arc<Mutex<Vec<Recorded>>>,
    handle: ServerHandle,
}

impl FakeServer {
    /// Starts a server on a free loopback port with the routes `configure` adds.
    pub async fn start<F>(configure: F) -> FakeServer
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let faults = Arc::new(Faults::default());
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (f, l) = (faults.clone(), log.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (f, l) = (f.clone(), l.clone());
            App::new()
                .wrap_fn(move |req: ServiceRequest, srv| {
                    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(String::from);
                    let mut rec = Recorded {
                        method: req.method().to_string(),
                        path: req.path().to_string(),
                        query: req.query_string().to_string(),
                        authorization: header("authorization"),
                        api_token: header("x-api-token"),
                        status: 0,
                        at: Instant::now(),
                    };
                    let (f, l) = (f.clone(), l.clone());
                    let intercepted = f.intercept();
                    let fut = match intercepted {
                        Some(resp) => {
                            let (http_req, _) = req.into_parts();
                            futures_util::future::Either::Left(std::future::ready(Ok(ServiceResponse::new(http_req, resp))))
                        }
                        None => futures_util::future::Either::Right(actix_web::dev::Service::call(srv, req)),
                    };
                    async move {
                        let res: ServiceResponse<BoxBody> = fut.await.map(|r: ServiceResponse<_>| r.map_body(|_, b| b.boxed()))?;
                        rec.status = res.status().as_u16();
                        l.lock().unwrap().push(rec);
                        Ok::<_, actix_web::Error>(res)
                    }
                })
                .configure(configure.clone())
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeServer { base_url: format!("http://127.0.0.1:{port}"), faults, log, handle }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }

    /// How many requests were answered 429.
    pub fn throttled(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 429).count()
    }

    /// The most requests received within any one second.
    pub fn busiest_second(&self) -> usize {
        let times: Vec<Instant> = self.requests().iter().map(|r| r.at).collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Sets the rate limit (0: none) and the `Retry-After` its 429s carry.
    pub fn limit(&self, per_second: u32, retry_after_secs: u32) {
        self.faults.limit_per_second.store(per_second, Ordering::SeqCst);
        self.faults.retry_after_secs.store(retry_after_secs, Ordering::SeqCst);
    }

    /// The next `n` requests answer 500.
    pub fn fail_next(&self, n: u32) {
        self.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request answers 503 while `down`.
    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A page of `items` from `start` of at most `limit`, and where the next page starts.
pub fn page<T: Clone>(items: &[T], start: usize, limit: usize) -> (Vec<T>, Option<usize>) {
    let end = (start + limit.max(1)).min(items.len());
    let page = items.get(start..end).map(<[T]>::to_vec).unwrap_or_default();
    (page, (end < items.len()).then_some(end))
}

/// A deal as a test states it, the same for every CRM: each fake's `put_deal` stores it in its
/// vendor's own shapes (HubSpot objects and associations, Pipedrive deals and persons,
/// Salesforce records), so one test can run against all three.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleDeal {
    pub name: String,
    /// The customer's company.
    pub account: String,
    pub owner: Option<SampleOwner>,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    /// The deal amount, a decimal.
    pub amount: String,
    pub contacts: Vec<SampleContact>,
    pub line_items: Vec<SampleLineItem>,
    /// Notes on the deal (HTML allowed, as HubSpot and Pipedrive store rich text).
    pub notes: Vec<SampleNote>,
    /// Emails, calls, meetings and tasks on the deal.
    pub activities: Vec<SampleActivity>,
    /// The text of the deal field the connector is configured to read `#need`/`#promise` lines
    /// from (`notes_property` / `notes_field`).
    pub notes_field: Option<String>,
    /// When the deal was won (its close date) and last modified.
    pub won_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleOwner {
    /// The CRM's user / owner id (numeric text for HubSpot and Pipedrive, `005…` for Salesforce).
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleContact {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub title: Option<String>,
    /// The CRM's role name: HubSpot association label, Salesforce `OpportunityContactRole.Role`,
    /// Pipedrive person's job title.
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleLineItem {
    pub sku: String,
    pub name: String,
    pub quantity: f64,
    /// Unit price, a decimal.
    pub price: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleNote {
    pub at: chrono::DateTime<chrono::Utc>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleActivity {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `email`, `call`, `meeting` or `task`.
    pub kind: &'static str,
    pub subject: String,
    /// A call's or task's description (read for `#need`/`#promise` lines); an email's body.
    pub body: Option<String>,
}

impl SampleDeal {
    /// A won deal with an owner, three contacts (decision maker, technical buyer, no role), two
    /// line items, two notes with `#need`/`#promise` lines (one malformed), and an email, a
    /// call and a meeting: `won_at` is the close date; notes and activities come before it.
    pub fn acme(won_at: chrono::DateTime<chrono::Utc>) -> SampleDeal {
        let days = |d: i64| won_at - chrono::TimeDelta::days(d);
        SampleDeal {
            name: "Acme Corp - 120 seats".into(),
            account: "Acme Corp".into(),
            owner: Some(SampleOwner {
                id: "5501".into(),
                email: "ana@seller.example".into(),
                first_name: "Ana".into(),
                last_name: "Lima".into(),
            }),
            currency: "USD".into(),
            amount: "64400.00".into(),
            contacts: vec![
                SampleContact {
                    id: "701".into(),
                    first_name: "Dana".into(),
                    last_name: "Whitfield".into(),
                    email: Some("dana@acme.example".into()),
                    title: Some("COO".into()),
                    role: Some("Economic Buyer".into()),
                },
                SampleContact {
                    id: "702".into(),
                    first_name: "Priya".into(),
                    last_name: "Raman".into(),
                    email: Some("priya@acme.example".into()),
                    title: Some("IT Director".into()),
                    role: Some("Technical Buyer".into()),
                },
                SampleContact {
                    id: "703".into(),
                    first_name: "Sam".into(),
                    last_name: "Otieno".into(),
                    email: None,
                    title: None,
                    role: None,
                },
            ],
            line_items: vec![
                SampleLineItem { sku: "PRO-SEAT".into(), name: "Pro seat (annual)".into(), quantity: 120.0, price: "420.00".into() },
                SampleLineItem { sku: "SSO-ADDON".into(), name: "SSO add-on".into(), quantity: 1.0, price: "14000.00".into() },
            ],
            notes: vec![
                SampleNote {
                    at: days(30),
                    body: "<p>Discovery with Dana and Priya.</p><p>#need sso must by 2027-01-15: Single sign-on through Okta</p>\
                           <p>#need migrate should: Move five years of bookings off the old scheduler</p>"
                        .into(),
                },
                SampleNote {
                    at: days(10),
                    body: "<p>Proposal review.</p><p>#promise sso by 2027-01-10: SAML SSO with the Okta connector</p>\
                           <p>#promise migrate by end of March: Migration service</p>"
                        .into(),
                },
            ],
            activities: vec![
                SampleActivity {
                    at: days(25),
                    kind: "email",
                    subject: "Pricing for 120 seats".into(),
                    body: Some("Hi Dana, the pricing you asked for is attached.".into()),
                },
                SampleActivity { at: days(20), kind: "call", subject: "Security review with Priya".into(), body: None },
                SampleActivity { at: days(12), kind: "meeting", subject: "Proposal walkthrough".into(), body: None },
            ],
            notes_field: None,
            won_at,
        }
    }
}
