//! The final read of mail, from outside the service: which `Message-ID`s the test's own orders
//! imply, which calls the API says each deal got, and what the SMTP sink received of each, with
//! the sink's own verdict on every copy (accepted, stalled, cut). The service's outbox is not
//! read: an email it never queued, or a copy it sent twice while counting once, shows here.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use testkit::{SmtpSink, Verdict};

use crate::report::Row;
use crate::service::{API_TOKEN, PUBLIC_HOST};

/// The `Message-ID` firstcall gives an email about a call: `call-{id}.{kind}.{n}@{host}` (see
/// `message_id` in `src/workflow/compose.rs`). The first email is `first_call` numbered by the
/// invite's sequence (0 for a call never rescheduled); reminders are `reminder` numbered 1, 2, …
pub fn message_id(call_id: i64, kind: &str, n: u32) -> String {
    format!("call-{call_id}.{kind}.{n}@{PUBLIC_HOST}")
}

/// The `Message-ID` firstcall gives an email about a promise:
/// `promise-{id}.{kind}.{YYYYMMDD of its date}.{n}@{host}` (see `promise_message_id` in
/// `src/workflow/compose.rs`); its reminders are `reminder` numbered 1, 2, …
pub fn promise_message_id(promise_id: i64, kind: &str, deliver_by: chrono::NaiveDate, n: u32) -> String {
    format!("promise-{promise_id}.{kind}.{}.{n}@{PUBLIC_HOST}", deliver_by.format("%Y%m%d"))
}

/// Every call the API lists (open and closed), by deal.
/// [`calls_by_deal`] once every one of `deals` has a call, or as read at `deadline`: the
/// service answers a webhook once its event is stored and opens the call right after.
pub async fn calls_of_deals(base_url: &str, deals: &[String], deadline: Instant) -> anyhow::Result<HashMap<String, Vec<i64>>> {
    loop {
        let calls = calls_by_deal(base_url).await?;
        if deals.iter().all(|d| calls.contains_key(d)) || Instant::now() > deadline {
            return Ok(calls);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn calls_by_deal(base_url: &str) -> anyhow::Result<HashMap<String, Vec<i64>>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client.get(format!("{base_url}/api/v1/calls")).bearer_auth(API_TOKEN);
        let mut query = vec![("state", "all".to_string()), ("limit", "500".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        req = req.query(&query);
        let page: serde_json::Value = req.send().await?.error_for_status()?.json().await?;
        for call in page["calls"].as_array().into_iter().flatten() {
            let (Some(id), Some(deal)) = (call["id"].as_i64(), call["deal_id"].as_str()) else {
                anyhow::bail!("a call without id or deal_id in GET /api/v1/calls: {call}");
            };
            out.entry(deal.to_string()).or_default().push(id);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(out),
        }
    }
}

/// The copies of one `Message-ID` the sink received.
#[derive(Debug, Default, Clone)]
pub struct Copies {
    /// When each copy the sink answered `250` arrived, in order.
    pub accepted: Vec<Instant>,
    /// Copies whose sender cannot know they arrived: stalled (no verdict) or cut before the `250`.
    pub unknown: usize,
}

impl Copies {
    pub fn total(&self) -> usize {
        self.accepted.len() + self.unknown
    }
}

/// What the sink received, by `Message-ID`.
pub struct Received(pub HashMap<String, Copies>);

impl Received {
    pub fn read(smtp: &SmtpSink) -> Received {
        let mut by_id: HashMap<String, Copies> = HashMap::new();
        for d in smtp.deliveries() {
            let copies = by_id.entry(d.message.parse().message_id.unwrap_or_default()).or_default();
            match d.verdict {
                Verdict::Accepted => copies.accepted.push(d.at),
                Verdict::Stalled | Verdict::Cut => copies.unknown += 1,
            }
        }
        Received(by_id)
    }

    /// Expected ids with no accepted copy.
    pub fn missing<'a>(&self, expected: &'a BTreeSet<String>) -> Vec<&'a String> {
        expected.iter().filter(|id| self.0.get(*id).is_none_or(|c| c.accepted.is_empty())).collect()
    }
}

/// Reads the sink until every expected id was accepted once, or `deadline`; returns the last read.
pub async fn wait_for(smtp: &SmtpSink, expected: &BTreeSet<String>, deadline: Instant) -> Received {
    loop {
        let received = Received::read(smtp);
        if received.missing(expected).is_empty() || Instant::now() >= deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sink's mail against the expected ids, as counts.
#[derive(Debug, Default)]
pub struct Judged {
    pub expected: usize,
    pub arrived: usize,
    pub lost: Vec<String>,
    /// Copies beyond the first.
    pub duplicated: usize,
    /// Extra copies that neither a stall or cut at the sink nor `excuse` accounts for.
    pub unexplained: Vec<String>,
    /// Copies whose sender could not know the outcome (stalled or cut at the sink).
    pub unknown: usize,
    /// Ids nobody expected (a reminder beyond the schedule's maximum, a stray email).
    pub unexpected: Vec<String>,
}

/// Judges `received` against `expected`. Each stalled or cut copy allows one more copy (the
/// sender had to send again); `excuse` may allow further ones for a fault the promise injected
/// (it gets the copies of one id and returns how many extra copies that fault explains).
pub fn judge(received: &Received, expected: &BTreeSet<String>, excuse: impl Fn(&Copies) -> usize) -> Judged {
    let mut j = Judged { expected: expected.len(), ..Judged::default() };
    for id in expected {
        let copies = received.0.get(id).cloned().unwrap_or_default();
        j.unknown += copies.unknown;
        if copies.accepted.is_empty() {
            j.lost.push(id.clone());
            continue;
        }
        j.arrived += 1;
        let extra = copies.total() - 1;
        j.duplicated += extra;
        if extra > copies.unknown + excuse(&copies) {
            j.unexplained.push(format!("{id} arrived {} times ({} of them stalled or cut)", copies.total(), copies.unknown));
        }
    }
    let mut unexpected: Vec<String> = received.0.keys().filter(|id| !expected.contains(*id)).cloned().collect();
    unexpected.sort();
    j.unexpected = unexpected;
    j
}

impl Judged {
    /// One line for the notes: how many of `what` arrived, since `since` (the load's end).
    pub fn summary(&self, what: &str, since: Instant) -> String {
        format!(
            "{} of {} {what} at the SMTP server {:.1} s after the load ended ({} copies beyond the first)",
            self.arrived,
            self.expected,
            since.elapsed().as_secs_f64(),
            self.duplicated
        )
    }

    /// Failures for `row`, naming a few ids of each kind; `what` names the emails ("first emails").
    pub fn fail_into(&self, row: &mut Row, what: &str) {
        let few = |ids: &[String]| ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if !self.lost.is_empty() {
            row.failures.push(format!(
                "{} of {} {what} never reached the SMTP server, e.g. {}",
                self.lost.len(),
                self.expected,
                few(&self.lost)
            ));
        }
        if !self.unexplained.is_empty() {
            row.failures.push(format!(
                "{} {what} arrived more than once without a stall or cut to explain it: {}",
                self.unexplained.len(),
                few(&self.unexplained)
            ));
        }
        if !self.unexpected.is_empty() {
            row.failures.push(format!(
                "{} emails nobody expected reached the SMTP server: {}",
                self.unexpected.len(),
                few(&self.unexpected)
            ));
        }
    }
}

/// The expected first email of every call of the `deals` (by the API), and the deals the API
/// shows with no call or with more than one.
pub fn first_emails<'a>(calls: &HashMap<String, Vec<i64>>, deals: impl Iterator<Item = &'a str>) -> (BTreeSet<String>, Vec<String>) {
    let mut expected = BTreeSet::new();
    let mut odd = Vec::new();
    for deal in deals {
        let ids = calls.get(deal).map(Vec::as_slice).unwrap_or(&[]);
        if ids.len() != 1 {
            odd.push(format!("deal {deal} has {} calls", ids.len()));
        }
        expected.extend(ids.iter().map(|id| message_id(*id, "first_call", 0)));
    }
    (expected, odd)
}
