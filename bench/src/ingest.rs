//! The webhook load generator: `connections` keep-alive connections, each posting unique signed
//! `order.created` events back to back until the time is up. Only a 200 naming the event as
//! accepted counts; latency is measured per request into an HDR histogram.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct IngestReport {
    pub accepted: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_error: Option<String>,
}

impl IngestReport {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.seconds.max(1e-9)
    }

    pub fn summary(&self) -> String {
        format!(
            "accepted {} events in {:.1} s = {:.0} events/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} errors{}",
            self.accepted,
            self.seconds,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )
    }
}

/// The deal id of [`order_created`]'s event for `tag`, `conn` and `n`.
pub fn deal_id(tag: &str, conn: usize, n: u64) -> String {
    format!("D-{tag}-{conn}-{n}")
}

/// An `order.created` event of about 1 KB, unique by `tag`, `conn` and `n`.
pub fn order_created(tag: &str, conn: usize, n: u64) -> Vec<u8> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "id": format!("evt-{tag}-{conn}-{n}"),
        "type": "order.created",
        "occurred_at": at,
        "order": {
            "deal_id": deal_id(tag, conn, n),
            "amount": "48250.00",
            "currency": "USD",
            "rep_email": format!("rep{}@bench.example", (conn * 7 + n as usize) % 500),
            "account_name": "Northwind Logistics International",
            "segment": "mid-market",
            "line_items": [
                {"sku": "PLAT-ENT", "name": "Platform, enterprise edition (annual)", "quantity": 1, "unit_price": "36000.00"},
                {"sku": "SEAT-PRO", "name": "Professional seats for the operations team", "quantity": 150, "unit_price": "49.00"},
                {"sku": "ONB-REMOTE", "name": "Remote onboarding, four sessions with a solutions engineer", "quantity": 1, "unit_price": "2500.00"},
                {"sku": "SUP-PREM", "name": "Premium support, 24/7 with a named technical account manager", "quantity": 1, "unit_price": "2400.00"},
                {"sku": "TRAIN-ADM", "name": "Administrator training for two people", "quantity": 2, "unit_price": "0.00"}
            ]
        }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

pub async fn run(base_url: &str, secret: &str, connections: usize, duration: Duration, tag: &str) -> anyhow::Result<IngestReport> {
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?;
    let url = format!("{}/webhooks/generic", base_url.trim_end_matches('/'));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for conn in 0..connections {
        let (client, url, secret, tag) = (client.clone(), url.clone(), secret.to_string(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds are valid");
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None::<String>);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = order_created(&tag, conn, n);
                let t = Instant::now();
                let outcome = post_event(&client, &url, &secret, body).await;
                let us = t.elapsed().as_micros() as u64;
                match outcome {
                    Ok(()) => {
                        ok += 1;
                        let _ = hist.record(us.max(1));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (ok, errors, first_error, hist)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds are valid");
    let (mut accepted, mut errors, mut first_error) = (0, 0, None);
    for t in tasks {
        let (ok, err, fe, hist) = t.await?;
        accepted += ok;
        errors += err;
        if first_error.is_none() {
            first_error = fe;
        }
        total.add(&hist)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    Ok(IngestReport { accepted, errors, seconds, p50_ms: ms(0.5), p99_ms: ms(0.99), max_ms: total.max() as f64 / 1000.0, first_error })
}

/// One accepted event of a paced load: its deal, when its request was sent and when its 200
/// arrived.
#[derive(Debug, Clone)]
pub struct Answered {
    pub deal: String,
    pub sent: Instant,
    pub answered: Instant,
}

/// What a paced load did.
#[derive(Debug)]
pub struct Paced {
    /// Requests sent (each a new event).
    pub sent: u64,
    /// Events answered 200 and accepted.
    pub accepted: u64,
    /// Each accepted event's deal and times, when `keep` was asked.
    pub answered: Vec<Answered>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// From `start` to the last answer (a request sent just before the end may be answered after it).
    pub seconds: f64,
    /// Response latency of the accepted events, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A steady load: `rate` new `order.created` events a second for `duration` from `start`, over
/// `connections` keep-alive connections, each sending its share on a fixed schedule (event `j`
/// of connection `k` at `start + (j × connections + k) / rate`). A connection that falls behind
/// its schedule sends at once until it has caught up; what is not sent by the end is not sent
/// (then `sent` falls short of rate × duration: the server did not keep up).
pub struct PacedLoad<'a> {
    pub base_url: &'a str,
    pub secret: &'a str,
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
    /// Makes the events and deals unique.
    pub tag: &'a str,
    pub start: Instant,
    /// Keep each accepted event's deal and times (else only the counts and the histogram).
    pub keep: bool,
}

pub async fn paced(load: &PacedLoad<'_>) -> anyhow::Result<Paced> {
    let PacedLoad { base_url, secret, rate, duration, connections, tag, start, keep } = *load;
    anyhow::ensure!(rate > 0.0 && rate.is_finite(), "the offered rate must be a positive number of events a second, not {rate}");
    let connections = connections.max(1);
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(Duration::from_secs(30)).tcp_nodelay(true).build()?;
    let url = format!("{}/webhooks/generic", base_url.trim_end_matches('/'));
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for conn in 0..connections {
        let (client, url, secret, tag) = (client.clone(), url.clone(), secret.to_string(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds are valid");
            let (mut sent, mut ok, mut errors, mut first_error, mut answered) = (0u64, 0u64, 0u64, None::<String>, Vec::new());
            for j in 0u64.. {
                let at = start + Duration::from_secs_f64((j as f64 * connections as f64 + conn as f64) / rate);
                // Nothing is sent after the end, also not by a connection behind its schedule.
                if at >= deadline || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let n = j + 1;
                let body = order_created(&tag, conn, n);
                let t = Instant::now();
                sent += 1;
                match post_event(&client, &url, &secret, body).await {
                    Ok(()) => {
                        let done = Instant::now();
                        ok += 1;
                        let _ = hist.record((done.duration_since(t).as_micros() as u64).max(1));
                        if keep {
                            answered.push(Answered { deal: deal_id(&tag, conn, n), sent: t, answered: done });
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (sent, ok, errors, first_error, answered, hist)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds are valid");
    let mut out =
        Paced { sent: 0, accepted: 0, answered: Vec::new(), errors: 0, first_error: None, seconds: 0.0, p50_ms: 0.0, p99_ms: 0.0 };
    for t in tasks {
        let (sent, ok, errors, first_error, answered, hist) = t.await?;
        out.sent += sent;
        out.accepted += ok;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first_error;
        }
        out.answered.extend(answered);
        total.add(&hist)?;
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.p50_ms = total.value_at_quantile(0.5) as f64 / 1000.0;
    out.p99_ms = total.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(out)
}

/// Posts one signed event; `Ok` only for a 2xx naming it accepted, else what came back.
pub async fn post_event(client: &reqwest::Client, url: &str, secret: &str, body: Vec<u8>) -> Result<(), String> {
    let sig = firstcall::intake::signature::sign_generic(secret.as_bytes(), chrono::Utc::now().timestamp(), &body);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header(firstcall::intake::signature::GENERIC_SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await;
    match r {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(b) if status.is_success() && contains(&b, b"\"accepted\":1") => Ok(()),
                Ok(b) => Err(format!("{status}: {}", String::from_utf8_lossy(&b[..b.len().min(200)]))),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
