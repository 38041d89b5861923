//! The HTTP side every connector shares: one client per connector with its base URL, one pace
//! per connector (every request of the process to that CRM takes a place in it first: at most
//! the configured number in any one second, as the CRM counts them), and one reading of the
//! answer:
//! - `429` with `Retry-After` (seconds or an HTTP date) pauses the whole connector until then;
//!   a pause up to `crm.max_rate_wait_secs` is waited out and the request sent again, a longer
//!   one is a [`CrmError::RateLimited`] the engine retries later;
//! - the CRMs' documented limit headers (`X-HubSpot-RateLimit-Remaining` with
//!   `X-HubSpot-RateLimit-Interval-Milliseconds`; Pipedrive's `x-ratelimit-remaining` with
//!   `x-ratelimit-reset`) pause the connector when the window is used up, before a 429 comes;
//! - `401`/`403` is [`CrmError::Unauthorized`] (a connector with refreshable tokens refreshes
//!   and tries once more), `404` [`CrmError::NotFound`], `5xx`, timeouts and refused connections
//!   [`CrmError::Unavailable`], retried with backoff by the engine.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// Why a request to a CRM did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmError {
    /// The credentials were refused (after one refresh, where the connector can refresh).
    #[error("the CRM refused firstcall's credentials ({0}); check the token and its scopes")]
    Unauthorized(String),
    /// The CRM asked firstcall to wait longer than it waits in-process.
    #[error("the CRM's rate limit is used up; it asked to wait {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// Down, slow, or failing on its side (5xx, timeout, connection refused): retried later.
    #[error("the CRM did not answer: {0}")]
    Unavailable(String),
    /// The record does not exist (or firstcall may not see it).
    #[error("not found in the CRM: {0}")]
    NotFound(String),
    /// The CRM refused the request or answered something firstcall cannot read.
    #[error("the CRM's answer was not usable: {0}")]
    Invalid(String),
}

impl CrmError {
    /// Whether trying again later may succeed (everything but a missing record).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, CrmError::NotFound(_))
    }
}

/// What a connector has sent, for metrics, the bench and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    /// Answers that were 429.
    pub throttled: AtomicU64,
    pub failures: AtomicU64,
}

/// One connector's HTTP client, base URL and pace.
pub struct Http {
    name: &'static str,
    client: reqwest::Client,
    base_url: String,
    pace: Pace,
    paused_until: Mutex<Option<Instant>>,
    max_rate_wait: Duration,
    pub counters: Counters,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("name", &self.name).field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// Installs the process's TLS provider (ring, the one lettre uses too) once. Every program that
/// builds an HTTP client calls it first (the connectors do, and so do the test, bench and fault
/// harnesses): without it the HTTP client cannot pick a provider and refuses to build.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Http {
    /// A client for the CRM at `base_url` (no trailing slash needed) making at most
    /// `requests_per_second`, each within `timeout`.
    pub fn new(
        name: &'static str,
        base_url: &str,
        requests_per_second: u32,
        timeout: Duration,
        max_rate_wait: Duration,
    ) -> Result<Http, String> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("firstcall/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| format!("{name}: cannot build an HTTP client: {e}"))?;
        let pace = Pace { per_second: requests_per_second.max(1) as usize, state: Mutex::default(), freed: tokio::sync::Notify::new() };
        Ok(Http {
            name,
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            pace,
            paused_until: Mutex::new(None),
            max_rate_wait,
            counters: Counters::default(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `path` (starting with `/`) on the base URL; a full URL (a `nextRecordsUrl` is a path, a
    /// token endpoint may be elsewhere) is kept as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") { path.to_string() } else { format!("{}{path}", self.base_url) }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    fn pause_left(&self) -> Option<Duration> {
        let p = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.and_then(|until| until.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Sends the request `build` makes (called again for each try), after the connector's pause
    /// and a place in its pace; returns the answer when it is a success (2xx).
    pub async fn send(&self, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Response, CrmError> {
        let mut waited = Duration::ZERO;
        loop {
            if let Some(left) = self.pause_left() {
                if waited + left > self.max_rate_wait {
                    return Err(CrmError::RateLimited { retry_after: left });
                }
                tokio::time::sleep(left).await;
                waited += left;
            }
            let slot = self.pace.slot().await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let sent = build(&self.client).send().await;
            drop(slot);
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    let what = if e.is_timeout() { "timed out".to_string() } else { without_url(&e) };
                    return Err(CrmError::Unavailable(format!("{}: {what}", self.name)));
                }
            };
            self.observe_limit_headers(&resp);
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                let after = retry_after(resp.headers(), SystemTime::now()).unwrap_or(Duration::from_secs(1));
                tracing::warn!(
                    crm = self.name,
                    retry_after_ms = after.as_millis() as u64,
                    "rate limited by the CRM; pausing the connector"
                );
                self.pause_for(after);
                continue;
            }
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            let body = snippet(resp).await;
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CrmError::Unauthorized(format!("{} {status}: {body}", self.name)),
                StatusCode::NOT_FOUND | StatusCode::GONE => CrmError::NotFound(format!("{} {status}: {body}", self.name)),
                s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                    CrmError::Unavailable(format!("{} {status}: {body}", self.name))
                }
                _ => CrmError::Invalid(format!("{} {status}: {body}", self.name)),
            });
        }
    }

    /// [`Http::send`], reading the answer as JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(&self, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<T, CrmError> {
        let resp = self.send(build).await?;
        let url = resp.url().path().to_string();
        let bytes = resp.bytes().await.map_err(|e| CrmError::Unavailable(format!("{}: reading {url}: {}", self.name, without_url(&e))))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map_err(|e| CrmError::Invalid(format!("{}: {url}: {e}", self.name)))
    }

    /// Pauses the connector when the CRM says its window is used up.
    fn observe_limit_headers(&self, resp: &Response) {
        let h = resp.headers();
        let num = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
        // HubSpot: remaining in the current interval, and the interval's length.
        if num("x-hubspot-ratelimit-remaining") == Some(0.0) {
            let ms = num("x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000.0);
            self.pause_for(Duration::from_millis(ms.clamp(0.0, 86_400_000.0) as u64));
        }
        // Pipedrive: remaining in the window, and seconds until it resets.
        if num("x-ratelimit-remaining") == Some(0.0) {
            let secs = num("x-ratelimit-reset").unwrap_or(2.0);
            self.pause_for(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)));
        }
    }
}

/// A connector's pace: at most `per_second` requests in any one second as the CRM counts them. A
/// request goes when fewer than `per_second` are under way or were answered within the last
/// second. Counting from the answer, which the CRM sent after it counted the request, keeps the
/// CRM's count within the limit whatever the network's delays (a token bucket with a burst lets
/// one more through in some second).
struct Pace {
    per_second: usize,
    state: Mutex<PaceState>,
    /// Told when a request under way is answered.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct PaceState {
    under_way: usize,
    /// When the requests of the last second were answered, oldest first.
    answered: VecDeque<Instant>,
}

/// A request's place in the pace, given back (as answered now) when dropped.
struct Slot<'a>(&'a Pace);

impl Pace {
    async fn slot(&self) -> Slot<'_> {
        const SECOND: Duration = Duration::from_secs(1);
        loop {
            let mut freed = std::pin::pin!(self.freed.notified());
            freed.as_mut().enable();
            let oldest = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while s.answered.front().is_some_and(|t| now.duration_since(*t) >= SECOND) {
                    s.answered.pop_front();
                }
                if s.under_way + s.answered.len() < self.per_second {
                    s.under_way += 1;
                    return Slot(self);
                }
                s.answered.front().map(|t| (*t + SECOND).saturating_duration_since(now))
            };
            match oldest {
                Some(left) => tokio::time::sleep(left).await,
                // Every place is under way: the first answer starts the wait.
                None => freed.await,
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.under_way = s.under_way.saturating_sub(1);
        s.answered.push_back(Instant::now());
        drop(s);
        self.0.freed.notify_waiters();
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(Duration::from_secs(86_400)))
}

/// An error's text without the URL (which may carry a query with ids, never secrets, but is
/// long): the kind and the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), url.path());
    }
    s
}

/// The start of an error answer, for the log and the job's last error.
async fn snippet(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::domain::printable_up_to(&flat, 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(42))).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(42)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[tokio::test]
    async fn the_pace_lets_no_more_than_the_rate_through_in_any_second() {
        let pace = Pace { per_second: 2, state: Mutex::default(), freed: tokio::sync::Notify::new() };
        let start = Instant::now();
        drop(pace.slot().await);
        drop(pace.slot().await);
        // The third waits for the first answer to be a second old.
        drop(pace.slot().await);
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert!(start.elapsed() < Duration::from_millis(1500));
    }
}
