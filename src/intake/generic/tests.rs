use chrono::{TimeZone, Utc};

use super::*;
use crate::intake::MAX_EVENTS_PER_REQUEST;

const CREATED: &str = include_str!("../../../tests/fixtures/generic/order_created.json");
const BATCH: &str = include_str!("../../../tests/fixtures/generic/batch.json");
const CANCELLED: &str = include_str!("../../../tests/fixtures/generic/order_cancelled.json");

fn usd(minor: i64) -> Money {
    Money { minor, currency: Currency::parse("USD").unwrap() }
}

fn invalid(body: &str) -> (String, String) {
    match parse_generic(body.as_bytes(), &window()) {
        Err(PayloadError::Invalid { field, reason }) => (field, reason),
        other => panic!("{body}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_single_created_event_carries_every_fact() {
    let events = parse_generic(CREATED.as_bytes(), &window()).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.source, Source::Generic);
    assert_eq!(e.dedupe_key, "evt_01HV6M3T9QX4N2B7");
    assert_eq!(e.event_type, "order.created");
    assert_eq!(e.transition, Transition::Created);
    assert_eq!(e.deal_id.as_str(), "D-1042");
    assert_eq!(e.occurred_at, Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0).unwrap());
    assert_eq!(e.facts.amount, Some(usd(4_800_000)));
    assert_eq!(e.facts.rep_email.as_ref().map(EmailAddress::as_str), Some("ana.silva@example.com"));
    assert_eq!(e.facts.owner_ref.as_deref(), Some("u-417"));
    assert_eq!(e.facts.segment.as_deref(), Some("enterprise"));
    assert_eq!(e.facts.account_name.as_deref(), Some("Acme GmbH"));
    let items = e.facts.line_items.as_ref().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1],
        OrderedItem { sku: "ONB-PRO".into(), name: "Onboarding package".into(), quantity: 2.0, unit_price: Some(usd(600_000)) }
    );
    assert_eq!(e.raw, CREATED.trim());
}

#[test]
fn a_batch_maps_each_type_and_keeps_each_events_own_text() {
    let events = parse_generic(BATCH.as_bytes(), &window()).unwrap();
    let transitions: Vec<_> = events.iter().map(|e| e.transition).collect();
    assert_eq!(transitions, [Transition::Created, Transition::Updated, Transition::Cancelled]);
    let created = &events[0];
    assert_eq!(created.deal_id.as_str(), "7781");
    assert_eq!(created.occurred_at, Utc.with_ymd_and_hms(2026, 3, 2, 13, 5, 0).unwrap());
    assert_eq!(created.facts.amount.as_ref().map(|m| (m.minor, m.currency.as_str())), Some((125_050, "EUR")));
    assert_eq!(created.facts.owner_ref.as_deref(), Some("417"));
    // Kept as sent: escaping is the renderer's job.
    assert_eq!(created.facts.account_name.as_deref(), Some("Müller & Söhne <Berlin>"));
    assert!(created.raw.starts_with('{') && created.raw.contains("evt_01HV6M3T9QX4N2B8") && !created.raw.contains("evt_01HV6M3T9QX4N2B9"));
    let updated = &events[1];
    assert_eq!(updated.facts.rep_email.as_ref().map(EmailAddress::as_str), Some("bo.chen@example.com"));
    assert_eq!(updated.facts.line_items, Some(vec![]));
    assert_eq!(updated.facts.amount, None);
    for e in &events {
        let reparsed: serde_json::Value = serde_json::from_str(&e.raw).unwrap();
        assert_eq!(reparsed["id"], e.dedupe_key.as_str());
    }
    let cancelled = parse_generic(CANCELLED.as_bytes(), &window()).unwrap();
    assert_eq!(cancelled[0].transition, Transition::Cancelled);
    assert_eq!(cancelled[0].facts, OrderFacts::default());
    assert_eq!(parse_generic(b"[]", &window()).unwrap(), vec![]);
}

#[test]
fn not_json_is_malformed() {
    for body in ["", "{", "order.created", "{\"id\": }", "[{}", "\u{feff}{}"] {
        assert!(matches!(parse_generic(body.as_bytes(), &window()), Err(PayloadError::Malformed(_))), "{body:?}");
    }
    assert!(matches!(parse_generic(&[0xff, 0xfe, b'{', b'}'], &window()), Err(PayloadError::Malformed(_))));
}

#[test]
fn invalid_events_name_the_field() {
    let event = |order: &str| format!(r#"{{"id":"evt_1","type":"order.created","occurred_at":"2026-03-02T14:05:00Z","order":{order}}}"#);
    let cases: Vec<(String, &str, &str)> = vec![
        ("42".into(), "(body)", "object"),
        ("[1]".into(), "[0]", "object"),
        (r#"{"type":"order.created","occurred_at":"2026-03-02T14:05:00Z","order":{"deal_id":"D"}}"#.into(), "id", "required"),
        (r#"{"id":"","type":"order.created","occurred_at":"2026-03-02T14:05:00Z","order":{"deal_id":"D"}}"#.into(), "id", "required"),
        (r#"{"id":7,"type":"order.created","occurred_at":"2026-03-02T14:05:00Z","order":{"deal_id":"D"}}"#.into(), "id", "string"),
        (r#"{"id":"e","type":"order.won","occurred_at":"2026-03-02T14:05:00Z","order":{"deal_id":"D"}}"#.into(), "type", "order.won"),
        (r#"{"id":"e","type":"order.created","occurred_at":"yesterday","order":{"deal_id":"D"}}"#.into(), "occurred_at", "RFC 3339"),
        (r#"{"id":"e","type":"order.created","occurred_at":"2026-03-02T14:05:00Z"}"#.into(), "order", "required"),
        (event("[]"), "order", "object"),
        (event("{}"), "order.deal_id", "required"),
        (event(r#"{"deal_id":"   "}"#), "order.deal_id", "required"),
        (event(r#"{"deal_id":true}"#), "order.deal_id", "id"),
        (event(r#"{"deal_id":"D","amount":"12.00"}"#), "order.currency", "order.amount"),
        (event(r#"{"deal_id":"D","amount":"12.001","currency":"USD"}"#), "order.amount", "decimals"),
        (event(r#"{"deal_id":"D","amount":"-5","currency":"USD"}"#), "order.amount", "negative"),
        (event(r#"{"deal_id":"D","amount":"5","currency":"dollars"}"#), "order.currency", "currency code"),
        (event(r#"{"deal_id":"D","rep_email":"ana at example"}"#), "order.rep_email", "email"),
        (event(r#"{"deal_id":"D","line_items":{}}"#), "order.line_items", "array"),
        (event(r#"{"deal_id":"D","line_items":[{"sku":"A","quantity":1}]}"#), "order.line_items[0].name", "required"),
        (event(r#"{"deal_id":"D","line_items":[{"name":"A","quantity":0}]}"#), "order.line_items[0].quantity", "greater than 0"),
        (event(r#"{"deal_id":"D","line_items":[{"name":"A"}]}"#), "order.line_items[0].quantity", "required"),
        (
            event(r#"{"deal_id":"D","line_items":[{"name":"A","quantity":1,"unit_price":"9"}]}"#),
            "order.currency",
            "order.line_items[0].unit_price",
        ),
    ];
    for (body, field, reason_part) in cases {
        let (f, reason) = invalid(&body);
        assert_eq!(f, field, "{body}: {reason}");
        assert!(reason.contains(reason_part), "{body}: {reason:?} should mention {reason_part:?}");
    }
    let batch = format!(
        r#"[{},{{"id":"e2","type":"order.cancelled","occurred_at":"2026-03-02T14:05:00Z","order":{{}}}}]"#,
        event(r#"{"deal_id":"D"}"#)
    );
    assert_eq!(invalid(&batch).0, "[1].order.deal_id");
}

#[test]
fn batches_over_the_limit_are_refused() {
    let one = CANCELLED.trim();
    let body = format!("[{}]", vec![one; MAX_EVENTS_PER_REQUEST + 1].join(","));
    let (field, reason) = invalid(&body);
    assert_eq!(field, "(body)");
    assert!(reason.contains("1001"));
    let body = format!("[{}]", vec![one; MAX_EVENTS_PER_REQUEST].join(","));
    assert_eq!(parse_generic(body.as_bytes(), &window()).unwrap().len(), MAX_EVENTS_PER_REQUEST);
}

#[test]
fn truncated_bodies_are_refused_without_panicking() {
    for fixture in [CREATED, BATCH] {
        for end in 0..fixture.trim_end().len() {
            if let Some(prefix) = fixture.get(..end) {
                assert!(parse_generic(prefix.as_bytes(), &window()).is_err(), "{prefix:?}");
            }
        }
    }
    let padded = format!("  \n{BATCH}");
    assert_eq!(parse_generic(padded.as_bytes(), &window()).unwrap().len(), 3);
}

#[test]
fn an_occurred_at_outside_the_window_is_refused_naming_the_field() {
    for at in ["1970-01-01T00:00:00Z", "2001-09-09T01:46:40Z", "2026-03-08T00:00:01Z"] {
        let (field, _) = invalid(&CREATED.replace("2026-03-02T14:05:00Z", at));
        assert_eq!(field, "occurred_at", "{at}");
    }
    let batch = format!("[{}, {}]", CANCELLED.trim(), CREATED.replace("2026-03-02T14:05:00Z", "2001-09-09T01:46:40Z"));
    assert_eq!(invalid(&batch).0, "[1].occurred_at");
    // The bound is inclusive: exactly 30 days back, and up to a day ahead, are taken.
    assert_eq!(parse_generic(CREATED.replace("2026-03-02T14:05:00Z", "2026-02-05T00:00:00Z").as_bytes(), &window()).unwrap().len(), 1);
    assert_eq!(parse_generic(CREATED.replace("2026-03-02T14:05:00Z", "2026-03-08T00:00:00Z").as_bytes(), &window()).unwrap().len(), 1);
}

/// firstcall's clock a day after the fixtures' events, with the shipped 30-day bound.
fn window() -> crate::intake::event::EventWindow {
    crate::intake::event::EventWindow::new(chrono::DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z").unwrap().to_utc(), 30)
}
