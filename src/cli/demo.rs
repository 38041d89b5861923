//! `firstcall demo`: the whole job on a running local service, through its public contract
//! only, as a CRM would do it. It writes a rep into the rep directory, stores a realistic
//! proposal for a new deal, sends a signed `order.created` to `/webhooks/generic`, waits for the
//! recap email, and prints where to read it, the rep's call page link and how to open the
//! dashboard. Each step names the request it makes, so the code below doubles as an example for
//! CRM admins wiring their own system.
//!
//! It creates a rep, a deal and a call, so it runs only against a service on loopback with
//! SQLite (the same rule as the development credentials, [`super::local`]).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::config::{Config, MailTransportKind};

/// The demo's rep and their manager (reserved `.example` addresses: nothing leaves the machine).
const REP: &str = "dana.reyes@seller.example";
const MANAGER: &str = "sam.ortiz@seller.example";
const REP_TIMEZONE: chrono_tz::Tz = chrono_tz::America::New_York;

/// Runs the demo against the service this configuration describes; `wait` bounds how long it
/// waits for the recap email.
pub async fn run(config: &Config, wait: Duration) -> anyhow::Result<()> {
    let s = &config.settings;
    if let Some(why) = super::local::refusal(s) {
        bail!("firstcall demo creates a rep, a deal and a call in the service it talks to, so it runs only against a local service: {why}");
    }
    let credentials = super::local::read(s).map_err(|e| anyhow!("no development credentials: {e}"))?;
    let base = local_url(&s.http.host, s.http.port);
    crate::crm::client::install_tls_provider();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let api = Api { http: &http, base: &base, token: &credentials.api_token };

    http.get(format!("{base}/healthz")).send().await.map_err(|_| {
        anyhow!("nothing answers at {base}: start the service first with `cargo run --release -- serve` (or `firstcall serve`), from this directory")
    })?;
    let now = Utc::now();
    let deal = format!("DEMO-{}", now.format("%Y%m%d-%H%M%S%3f"));
    println!("firstcall demo: a won deal, end to end, on {base}\n");

    // 1. The rep directory: who the rep is, their timezone and manager. firstcall emails only
    //    addresses it knows (or whose domain is in `mail.allowed_recipient_domains`).
    api.send(
        reqwest::Method::PUT,
        &format!("/api/v1/reps/{REP}"),
        &json!({"name": "Dana Reyes", "timezone": REP_TIMEZONE.name(), "manager_email": MANAGER}),
    )
    .await?;
    println!("  1. rep       PUT /api/v1/reps/{REP}: Dana Reyes, {}, manager {MANAGER}", REP_TIMEZONE.name());

    // 2. The proposal: what the customer asked for, what was promised, what was quoted.
    let proposal = sample_proposal(now);
    api.send(reqwest::Method::PUT, &format!("/api/v1/proposals/generic/{deal}"), &proposal).await?;
    println!(
        "  2. proposal  PUT /api/v1/proposals/generic/{deal}: {} requirements, {} commitments, {} contacts, {} line items",
        proposal["requirements"].as_array().map_or(0, Vec::len),
        proposal["commitments"].as_array().map_or(0, Vec::len),
        proposal["contacts"].as_array().map_or(0, Vec::len),
        proposal["line_items"].as_array().map_or(0, Vec::len),
    );

    // 3. The order, as the CRM's "deal won" webhook sends it: the raw body, signed with the
    //    generic webhook secret (`X-Firstcall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
    //    of "<t>.<body>">`).
    let body = serde_json::to_vec(&sample_order(&deal, now))?;
    let signature = crate::intake::signature::sign_generic(credentials.generic_webhook_secret.as_bytes(), now.timestamp(), &body);
    let r = http
        .post(format!("{base}/webhooks/generic"))
        .header("content-type", "application/json")
        .header("x-firstcall-signature", signature)
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST /webhooks/generic answered {status}: {answer}");
    }
    println!("  3. order     POST /webhooks/generic (signed order.created): {status}, {}", answer_summary(&answer));

    // 4. The engine applies the stored event: the call firstcall opened, and its first email.
    let deadline = Instant::now() + wait;
    let stored = answer["events"][0]["stored_id"].as_i64().context("the answer names the stored event")?;
    let event = api.wait_for_event(stored, deadline).await?;
    let id = event["call_id"].as_i64().with_context(|| format!("applying the event opened no call: {event}"))?;
    let call = api.get(&format!("/api/v1/calls/{id}")).await?;
    println!(
        "  4. call      GET /api/v1/events/{stored}: {}; call #{id} for {}, due {}",
        event["outcome"].as_str().unwrap_or("?"),
        call["rep_email"].as_str().unwrap_or("?"),
        rep_time(&call["due_at"])
    );
    let email = api.wait_for_first_email(id, deadline).await?;
    let message_id = email["message_id"].as_str().context("the email has a Message-ID")?;
    println!(
        "  5. recap     {} to {}: \"{}\"",
        email["state"].as_str().unwrap_or("?"),
        email["to"].as_str().unwrap_or("?"),
        email["subject"].as_str().unwrap_or("")
    );

    println!();
    let public = s.http.public_url.trim_end_matches('/');
    match s.mail.transport {
        MailTransportKind::File => {
            let path = std::path::Path::new(&s.mail.outbox_dir).join(format!("{message_id}.eml"));
            let eml = std::fs::read(&path).with_context(|| format!("the recap should be at {}", path.display()))?;
            println!("Read the recap:  {}  (open it in a mail app; the invite is attached)", path.display());
            match call_link(&eml, public) {
                Some(link) => println!("Call page:       {link}  (the rep's signed link from the email)"),
                None => println!("Call page:       the link in the email, {public}/calls/{id}?t=…"),
            }
        }
        MailTransportKind::Smtp => {
            println!("Read the recap:  sent by SMTP to {}:{} (Message-ID <{message_id}>)", s.mail.smtp.host, s.mail.smtp.port);
        }
    }
    println!("Dashboard:       {public}/  (log in with the API token below)");
    println!("API token:       {}  (development only, kept in {})", credentials.api_token, dev_file(config));
    println!("\nMark the call done on its page and the reminders stop; leave it open and they follow the schedule in config/default.toml.");
    Ok(())
}

/// A time the API gave, in the demo rep's timezone.
fn rep_time(at: &Value) -> String {
    let Some(at) = at.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else { return at.to_string() };
    at.with_timezone(&REP_TIMEZONE).format("%a %-d %b %Y, %H:%M %Z").to_string()
}

/// The service's address for requests from this machine.
fn local_url(host: &str, port: u16) -> String {
    let host = host.trim();
    if host.contains(':') { format!("http://[{host}]:{port}") } else { format!("http://{host}:{port}") }
}

fn dev_file(config: &Config) -> String {
    super::local::path(&config.settings).map_or_else(|| "the data directory".into(), |p| p.display().to_string())
}

/// What the service did with each event (`accepted`: stored; the engine applies it next).
fn answer_summary(answer: &Value) -> String {
    let outcomes: Vec<&str> =
        answer["events"].as_array().map(|e| e.iter().filter_map(|e| e["outcome"].as_str()).collect()).unwrap_or_default();
    if outcomes.is_empty() { answer.to_string() } else { outcomes.join(", ") }
}

/// The call page link in the email's text.
fn call_link(eml: &[u8], public_url: &str) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(eml)?;
    let text = message.body_text(0)?;
    let start = text.find(&format!("{public_url}/calls/"))?;
    Some(text[start..].chars().take_while(|c| !c.is_whitespace() && !matches!(c, '>' | '"' | ')')).collect())
}

/// The API with the bearer token.
struct Api<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: &'a str,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(self.token).json(body).send().await?;
        self.answer(method, path, r).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(self.token).send().await?;
        self.answer(reqwest::Method::GET, path, r).await
    }

    async fn answer(&self, method: reqwest::Method, path: &str, r: reqwest::Response) -> anyhow::Result<Value> {
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "{method} {path} answered 401: the running service does not accept the development token; \
                 was it started with FIRSTCALL__API__TOKENS set? ({body})"
            );
        }
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// The stored event once the engine has applied it (`GET /api/v1/events/{id}`).
    async fn wait_for_event(&self, id: i64, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            let event = self.get(&format!("/api/v1/events/{id}")).await?;
            match event["state"].as_str() {
                Some("applied") => return Ok(event),
                Some("failed") => bail!("the order event could not be applied: {}", event["error"]),
                _ if Instant::now() > deadline => {
                    bail!(
                        "the order event is still waiting to be applied: is the engine running? (GET /api/v1/events/{id}; see the service's log)"
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The call's first email once it has gone out (`GET /api/v1/calls/{id}`).
    async fn wait_for_first_email(&self, id: i64, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            let call = self.get(&format!("/api/v1/calls/{id}")).await?;
            let first = call["emails"].as_array().and_then(|e| e.iter().find(|e| e["kind"] == "first_call")).cloned();
            match first {
                Some(e) if e["state"] == "sent" => return Ok(e),
                _ if Instant::now() > deadline => {
                    let state = first.map_or_else(|| "not written yet".to_string(), |e| format!("{} ({})", e["state"], e["last_error"]));
                    bail!("the recap of call #{id} has not gone out: {state}; see GET /api/v1/calls/{id} and the service's log");
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The day `days` from `now`, as a proposal writes dates.
fn day(now: DateTime<Utc>, days: i64) -> String {
    (now + TimeDelta::days(days)).format("%Y-%m-%d").to_string()
}

fn at(now: DateTime<Utc>, days_ago: i64) -> String {
    (now - TimeDelta::days(days_ago)).format("%Y-%m-%dT15:00:00Z").to_string()
}

/// What the sales team knows about the deal: `PUT /api/v1/proposals/{source}/{deal}`.
fn sample_proposal(now: DateTime<Utc>) -> Value {
    json!({
        "account": {"name": "Northwind Logistics", "segment": "mid-market"},
        "rep_email": REP,
        "contacts": [
            {"name": "Priya Shah", "email": "priya.shah@northwind.example", "title": "VP Operations", "role": "decision_maker"},
            {"name": "Tom Becker", "email": "tom.becker@northwind.example", "title": "IT Manager", "role": "functional_decision_maker"},
            {"name": "Lena Park", "email": "lena.park@northwind.example", "title": "Procurement", "role": "other"}
        ],
        "requirements": [
            {"id": "R1", "text": "Single sign-on with Azure AD for all 120 dispatchers", "priority": "must", "need_by": day(now, 21), "stated_in": "Discovery call"},
            {"id": "R2", "text": "Customer data stays in the EU", "priority": "must", "stated_in": "Security questionnaire"},
            {"id": "R3", "text": "Live sync of shipments with their SAP system", "priority": "should", "need_by": day(now, 45), "stated_in": "Technical workshop"},
            {"id": "R4", "text": "Mobile app for drivers, offline capable", "priority": "nice", "stated_in": "Demo"}
        ],
        "commitments": [
            {"id": "C1", "text": "SSO with Azure AD configured during onboarding", "covers": ["R1"], "deliver_by": day(now, 14)},
            {"id": "C2", "text": "Hosting in our Frankfurt region, with a signed DPA", "covers": ["R2"], "deliver_by": day(now, 7)},
            {"id": "C3", "text": "SAP connector through the integration partner", "covers": ["R3"], "deliver_by": day(now, 60)},
            {"id": "C4", "text": "Named customer success manager for the first 90 days", "covers": []}
        ],
        "line_items": [
            {"sku": "PLAT-SEAT", "name": "Platform seats", "quantity": 120, "unit_price": "300.00", "currency": "USD", "rationale": "One seat per dispatcher"},
            {"sku": "ONB-PRO", "name": "Guided onboarding", "quantity": 1, "unit_price": "6000.00", "currency": "USD", "rationale": "SSO and EU hosting set up with their IT"},
            {"sku": "INT-SAP", "name": "SAP integration package", "quantity": 1, "unit_price": "6000.00", "currency": "USD", "rationale": "Partner-built connector"}
        ],
        "activities": [
            {"at": at(now, 40), "kind": "call", "summary": "Discovery: SSO and EU data residency are must-haves"},
            {"at": at(now, 30), "kind": "meeting", "summary": "Technical workshop with IT: SAP sync is the next priority"},
            {"at": at(now, 20), "kind": "proposal", "summary": "Proposal sent: platform, onboarding, SAP package"},
            {"at": at(now, 6), "kind": "quote", "summary": "Final quote; procurement asked for the DPA before signing"}
        ]
    })
}

/// The CRM's "deal won" event: `POST /webhooks/generic`.
fn sample_order(deal: &str, now: DateTime<Utc>) -> Value {
    json!({
        "id": format!("evt-{deal}"),
        "type": "order.created",
        "occurred_at": now.to_rfc3339(),
        "order": {
            "deal_id": deal,
            "amount": "48000.00",
            "currency": "USD",
            "rep_email": REP,
            "account_name": "Northwind Logistics",
            "segment": "mid-market",
            "line_items": [
                {"sku": "PLAT-SEAT", "name": "Platform seats", "quantity": 120, "unit_price": "300.00"},
                {"sku": "ONB-PRO", "name": "Guided onboarding", "quantity": 1, "unit_price": "6000.00"},
                {"sku": "INT-SAP", "name": "SAP integration package", "quantity": 1, "unit_price": "6000.00"}
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_proposal_and_order_are_what_the_api_and_webhook_accept() {
        let now = Utc::now();
        let body: crate::proposals::model::ProposalBody = serde_json::from_value(sample_proposal(now)).expect("the proposal API's shape");
        let proposal = body.parse().expect("a valid proposal");
        assert_eq!((proposal.requirements.len(), proposal.commitments.len(), proposal.line_items.len()), (4, 4, 3));
        let raw = serde_json::to_vec(&sample_order("DEMO-1", now)).unwrap();
        let window = crate::intake::event::EventWindow::new(now, 30);
        let events = crate::intake::generic::parse_generic(&raw, &window).expect("a valid generic event");
        assert_eq!(events.len(), 1);
        assert_eq!(local_url("::1", 8080), "http://[::1]:8080");
        assert_eq!(local_url("127.0.0.1", 8080), "http://127.0.0.1:8080");
        assert_eq!(rep_time(&json!("2026-11-30T18:00:00Z")), "Mon 30 Nov 2026, 13:00 EST");
    }
}
