//! A CRM as the fault tests play it: signs generic order events with its own HMAC code (not
//! firstcall's), delivers them, and classifies every delivery the way a Jepsen history does:
//! `ok` (2xx: stored), `failed` (refused connection or an error status: certainly not stored) or
//! `unknown` (the connection broke or timed out after the request went out: maybe stored).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::service::GENERIC_SECRET;

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    Unknown(String),
}

pub struct Crm {
    client: reqwest::Client,
}

impl Crm {
    pub fn new() -> anyhow::Result<Crm> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(64).build()?;
        Ok(Crm { client })
    }

    /// `X-Firstcall-Signature` for `body` signed now.
    pub fn sign(body: &[u8]) -> String {
        let t = Utc::now().timestamp().to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(GENERIC_SECRET.as_bytes()).expect("HMAC takes any key");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Posts `body` to `/webhooks/generic`, signed at the moment of sending.
    pub async fn deliver(&self, base_url: &str, body: &[u8]) -> (Outcome, Option<u16>) {
        let sent = self
            .client
            .post(format!("{base_url}/webhooks/generic"))
            .header("content-type", "application/json")
            .header("X-Firstcall-Signature", Self::sign(body))
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => (Outcome::Ok, Some(r.status().as_u16())),
            Ok(r) => (Outcome::Failed(format!("HTTP {}", r.status().as_u16())), Some(r.status().as_u16())),
            // Nothing reached the service: the port was closed (killed, restarting).
            Err(e) if e.is_connect() => (Outcome::Failed("connection refused".into()), None),
            Err(e) => (Outcome::Unknown(error_chain(&e)), None),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// A generic `order.created` event for deal `deal`, with its own event id.
pub fn order_created(event_id: &str, deal: &str, rep: &str) -> serde_json::Value {
    json!({
        "id": event_id,
        "type": "order.created",
        "occurred_at": Utc::now().to_rfc3339(),
        "order": {
            "deal_id": deal,
            "amount": "1200.00",
            "currency": "USD",
            "rep_email": rep,
            "account_name": "Chaos Corp",
            "line_items": [{"sku": "PRO", "name": "Pro seats", "quantity": 10, "unit_price": "120.00"}]
        }
    })
}

/// `count` unique order events (`<prefix>-evt-<i>` for deal `<prefix>-<i>`), each as a request
/// body of its own, keyed by event id.
pub fn unique_orders(prefix: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let id = format!("{prefix}-evt-{i}");
            let body = serde_json::to_vec(&order_created(&id, &format!("{prefix}-{i}"), "rep@seller.example")).expect("JSON");
            (id, body)
        })
        .collect()
}

/// The deal of an event made by [`unique_orders`] or [`batched_orders`].
pub fn deal_of(event_id: &str) -> String {
    event_id.replacen("-evt-", "-", 1)
}

/// The same events in batches of `size` per request (a batch is acknowledged or not as a whole),
/// keyed by the batch's first event id.
pub fn batched_orders(prefix: &str, count: usize, size: usize) -> Vec<(String, Vec<u8>)> {
    let events: Vec<serde_json::Value> =
        (0..count).map(|i| order_created(&format!("{prefix}-evt-{i}"), &format!("{prefix}-{i}"), "rep@seller.example")).collect();
    events
        .chunks(size.max(1))
        .map(|chunk| (chunk[0]["id"].as_str().unwrap_or_default().to_string(), serde_json::to_vec(chunk).expect("JSON")))
        .collect()
}

/// Every delivery of every event, by event id: the history a final read is checked against.
#[derive(Default)]
pub struct History {
    deliveries: Mutex<HashMap<String, Vec<Outcome>>>,
}

/// Counts over a history.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub operations: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Events with at least one `ok` delivery.
    pub acknowledged: usize,
}

impl History {
    pub fn record(&self, event_id: &str, outcome: Outcome) {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).entry(event_id.to_string()).or_default().push(outcome);
    }

    pub fn acknowledged(&self, event_id: &str) -> bool {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).get(event_id).is_some_and(|d| d.contains(&Outcome::Ok))
    }

    pub fn tally(&self) -> Tally {
        let d = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = Tally::default();
        for outcomes in d.values() {
            t.operations += outcomes.len();
            t.ok += outcomes.iter().filter(|o| **o == Outcome::Ok).count();
            t.failed += outcomes.iter().filter(|o| matches!(o, Outcome::Failed(_))).count();
            t.unknown += outcomes.iter().filter(|o| matches!(o, Outcome::Unknown(_))).count();
            t.acknowledged += usize::from(outcomes.contains(&Outcome::Ok));
        }
        t
    }

    /// A few distinct reasons for `unknown` outcomes, for the log.
    pub fn unknown_reasons(&self) -> Vec<String> {
        let d = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        let mut reasons: Vec<String> =
            d.values().flatten().filter_map(|o| if let Outcome::Unknown(r) = o { Some(r.clone()) } else { None }).collect();
        reasons.sort();
        reasons.dedup();
        reasons.truncate(3);
        reasons
    }
}

/// Re-sends each event not yet acknowledged, as a CRM's retry queue would, until every one is
/// acknowledged or `rounds` passes found the service still refusing.
pub async fn resend_unacknowledged(
    crm: &Crm,
    base_url: &str,
    events: &[(String, Vec<u8>)],
    history: &History,
    rounds: usize,
) -> anyhow::Result<()> {
    for round in 0..rounds {
        let pending: Vec<&(String, Vec<u8>)> = events.iter().filter(|(id, _)| !history.acknowledged(id)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let sends = pending.into_iter().map(|(id, body)| async move {
            let (outcome, _) = crm.deliver(base_url, body).await;
            history.record(id, outcome);
        });
        futures_util::stream::iter(sends).buffer_unordered(32).collect::<Vec<()>>().await;
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let left = events.iter().filter(|(id, _)| !history.acknowledged(id)).count();
    anyhow::ensure!(left == 0, "{left} events still not acknowledged after {rounds} rounds of re-sending");
    Ok(())
}
