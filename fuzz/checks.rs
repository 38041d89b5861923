//! The properties every fuzz target checks, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the bounded corpus run in the test suite
//! (`tests/fuzz_corpus.rs`), so both check exactly the same thing.
//!
//! Each check takes arbitrary bytes and panics only when a property is broken: the parsers
//! answer every body with events or an error (never a panic), the signature checks accept a
//! header only when it carries the real signature, and the notes markup reads any note into
//! well-formed items and reasons.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use firstcall::config::{HubspotWebhook, SalesforceWebhook, Secret};
use firstcall::intake::event::{EventWindow, IntakeEvent};
use firstcall::intake::signature::{sign_generic, sign_hubspot_v3, verify_basic_auth, verify_generic, verify_hubspot_v3};

const SECRET: &str = "fuzz-secret-0123456789";
const BASIC: &str = "pipedrive:fuzz-password-1";
const URI: &str = "https://firstcall.example.com/webhooks/hubspot";

static SECRETS: LazyLock<Vec<Secret>> = LazyLock::new(|| vec![Secret::from_value(SECRET)]);
static BASIC_CREDENTIALS: LazyLock<Vec<Secret>> = LazyLock::new(|| vec![Secret::from_value(BASIC)]);
static HUBSPOT: LazyLock<HubspotWebhook> = LazyLock::new(|| HubspotWebhook {
    client_secrets: Default::default(),
    closed_won_stages: vec!["closedwon".into()],
    tolerance_secs: 300,
    default_currency: firstcall::domain::Currency::parse("USD").ok(),
});
static SALESFORCE: LazyLock<SalesforceWebhook> = LazyLock::new(|| SalesforceWebhook {
    organization_ids: vec!["00D5e000000KQ2eEAG".into()],
    owner_email_field: "Owner_Email__c".into(),
    default_currency: None,
    path_secrets: Default::default(),
});

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).single().expect("a valid time")
}

/// The parsers' clock: a day after the fixtures' events (March 2026), so the seeds parse.
fn window() -> EventWindow {
    EventWindow::new(Utc.with_ymd_and_hms(2026, 3, 7, 0, 0, 0).single().expect("a valid time"), 30)
}

/// What every accepted event promises: a dedupe key, and a time inside the window.
fn check_events(events: &[IntakeEvent]) {
    let w = window();
    for e in events {
        assert!(!e.dedupe_key.is_empty(), "an event without a dedupe key");
        assert!(w.check(e.occurred_at, "occurred_at").is_ok(), "an event time outside the window: {}", e.occurred_at);
    }
}

/// A property check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The targets, by name: the cargo-fuzz binary names and the corpus directories.
pub const TARGETS: [(&str, Check); 6] = [
    ("parse_generic", parse_generic),
    ("parse_hubspot", parse_hubspot),
    ("parse_pipedrive", parse_pipedrive),
    ("parse_salesforce", parse_salesforce),
    ("signatures", signatures),
    ("parse_notes", parse_notes),
];

pub fn parse_generic(body: &[u8]) {
    if let Ok(events) = firstcall::intake::generic::parse_generic(body, &window()) {
        check_events(&events);
        for e in events {
            assert!(e.raw.trim_start().starts_with('{'), "an event's raw part is the JSON object it came from");
        }
    }
}

pub fn parse_hubspot(body: &[u8]) {
    if let Ok(events) = firstcall::intake::hubspot::parse_hubspot(body, &HUBSPOT, &window()) {
        check_events(&events);
    }
}

pub fn parse_pipedrive(body: &[u8]) {
    if let Ok(events) = firstcall::intake::pipedrive::parse_pipedrive(body, &window()) {
        check_events(&events);
    }
}

/// Also: the org read before the fields (what the webhook checks first) is the org of the batch
/// the fields make, so a message cannot pass the org check as one org and be stored as another.
pub fn parse_salesforce(body: &[u8]) {
    use firstcall::intake::salesforce::{check_organization, parse_salesforce, read_outbound_message};
    let parsed = parse_salesforce(body, &SALESFORCE, &window());
    if let Ok(batch) = &parsed {
        check_events(&batch.events);
    }
    match read_outbound_message(body) {
        Ok(message) => {
            let org = message.organization_id();
            if let Ok(batch) = &parsed {
                assert_eq!(org, Some(batch.organization_id.as_str()), "the org read first differs from the batch's");
            }
            if org.is_none() {
                assert!(check_organization(org, &SALESFORCE).is_err(), "a message naming no org passed the org check");
            }
        }
        Err(_) => assert!(parsed.is_err(), "a body that cannot be read was parsed"),
    }
}

/// The input is split into two header values and a body at the first two `\n`s; the parts need
/// not be UTF-8 (a header that is not becomes absent, as HTTP would have it).
pub fn signatures(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let first = parts.next().and_then(|h| std::str::from_utf8(h).ok());
    let second = parts.next().and_then(|h| std::str::from_utf8(h).ok());
    let body = parts.next().unwrap_or_default();
    let now = now();

    // Arbitrary headers: whatever they say, they verify only if they carry the real signature.
    if verify_generic(first, body, &SECRETS, now, 300).is_ok() {
        let header = first.unwrap_or_default();
        let t = header.split(',').find_map(|p| p.trim().strip_prefix("t=")).and_then(|t| t.trim().parse::<i64>().ok());
        let real = t.map(|t| sign_generic(SECRET.as_bytes(), t, body)).unwrap_or_default();
        let v1 = real.split_once(",v1=").map(|(_, v)| v.to_string()).unwrap_or_default();
        // Hex is case-insensitive: the same signature bytes may be written in capitals.
        assert!(!v1.is_empty() && header.to_ascii_lowercase().contains(&v1), "{header:?} verified without the real signature");
    }
    if verify_hubspot_v3(first, second, "POST", URI, body, &SECRETS, now, 300).is_ok() {
        let ts = second.unwrap_or_default().trim().parse::<i64>().unwrap_or_default();
        let real = sign_hubspot_v3(SECRET.as_bytes(), "POST", URI, body, ts);
        assert_eq!(first.map(str::trim), Some(real.as_str()), "a HubSpot signature verified without being the real one");
    }
    if verify_basic_auth(first, &BASIC_CREDENTIALS, now).is_ok() {
        let decoded = first.and_then(|h| h.trim().split_once(' ')).and_then(|(_, b64)| BASE64.decode(b64.trim()).ok());
        assert_eq!(decoded.as_deref(), Some(BASIC.as_bytes()), "{first:?} passed basic auth without the credentials");
    }

    // The real signature of this body verifies; the same signature over another body does not.
    let good = sign_generic(SECRET.as_bytes(), now.timestamp(), body);
    assert_eq!(verify_generic(Some(&good), body, &SECRETS, now, 300), Ok(()));
    let mut other = body.to_vec();
    other.push(b' ');
    assert!(verify_generic(Some(&good), &other, &SECRETS, now, 300).is_err(), "a signature verified another body");
    let ms = now.timestamp_millis().to_string();
    let hub = sign_hubspot_v3(SECRET.as_bytes(), "POST", URI, body, now.timestamp_millis());
    assert_eq!(verify_hubspot_v3(Some(&hub), Some(&ms), "POST", URI, body, &SECRETS, now, 300), Ok(()));
    assert!(verify_hubspot_v3(Some(&hub), Some(&ms), "POST", URI, &other, &SECRETS, now, 300).is_err());
}

/// The input is a plain-text note and, read as HTML, a note written an hour earlier, so the items
/// of the one amend those of the other. Whatever it says, the items have distinct lower-case
/// labels for ids and text, every commitment covers its own id first, and every unreadable line
/// comes with a reason and is quoted within its length.
pub fn parse_notes(data: &[u8]) {
    use firstcall::crm::markup::LINE_MAX;
    use firstcall::crm::{Note, read_notes, text_of_html};
    use firstcall::proposals::model::TEXT_MAX;
    let text = String::from_utf8_lossy(data);
    let html = text_of_html(&text);
    let items = read_notes([
        Note { text: &text, at: now(), stated_in: "plain".into() },
        Note { text: &html, at: now() - chrono::TimeDelta::hours(1), stated_in: "html".into() },
    ]);
    let label = |id: &str| !id.is_empty() && id == id.to_lowercase() && !id.contains(|c: char| c.is_whitespace() || c == ',' || c == ':');
    let text_ok = |t: &str| !t.is_empty() && t == t.trim() && t.chars().count() <= TEXT_MAX && !t.contains(char::is_control);
    let mut ids = std::collections::HashSet::new();
    for r in &items.requirements {
        assert!(label(r.id.as_str()) && ids.insert(&r.id), "requirement id {:?}", r.id);
        assert!(text_ok(&r.text), "requirement text {:?}", r.text);
    }
    let mut ids = std::collections::HashSet::new();
    for c in &items.commitments {
        assert!(label(c.id.as_str()) && ids.insert(&c.id), "commitment id {:?}", c.id);
        assert!(text_ok(&c.text), "commitment text {:?}", c.text);
        assert_eq!(c.covers.first(), Some(&c.id), "a commitment's first cover is its id");
        assert!(c.covers.iter().all(|l| label(l.as_str())), "covers {:?}", c.covers);
    }
    for u in &items.unreadable {
        assert!(!u.reason.is_empty() && u.line.chars().count() <= LINE_MAX + 1, "unreadable {u:?}");
        assert!(!u.line.contains(char::is_control), "a control character in {:?}", u.line);
    }
}
