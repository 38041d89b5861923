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
                return Some(
                    HttpResponse::TooManyRequests()
                        .insert_header(("Retry-After", after.to_string()))
                        .json(serde_json::json!({"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"})),
                );
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
