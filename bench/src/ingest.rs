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

/// An `order.created` event of about 1 KB, unique by `tag`, `conn` and `n`.
pub fn order_created(tag: &str, conn: usize, n: u64) -> Vec<u8> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "id": format!("evt-{tag}-{conn}-{n}"),
        "type": "order.created",
        "occurred_at": at,
        "order": {
            "deal_id": format!("D-{tag}-{conn}-{n}"),
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
                let sig = firstcall::intake::signature::sign_generic(secret.as_bytes(), chrono::Utc::now().timestamp(), &body);
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(firstcall::intake::signature::GENERIC_SIGNATURE_HEADER, sig)
                    .body(body)
                    .send()
                    .await;
                let outcome = match r {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(b) if status.is_success() && contains(&b, b"\"accepted\":1") => Ok(()),
                            Ok(b) => Err(format!("{status}: {}", String::from_utf8_lossy(&b[..b.len().min(200)]))),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
