use chrono::{DateTime, Utc};

use super::*;
use crate::config::SecretList;
use crate::domain::Currency;
use crate::intake::MAX_EVENTS_PER_REQUEST;

const CLOSED_WON: &str = include_str!("../../../tests/fixtures/hubspot/closed_won_batch.json");
const LOST: &str = include_str!("../../../tests/fixtures/hubspot/deal_lost.json");
const DELETION: &str = include_str!("../../../tests/fixtures/hubspot/deal_deletion.json");
const AMOUNT: &str = include_str!("../../../tests/fixtures/hubspot/amount_change.json");
const OBJECTS: &str = include_str!("../../../tests/fixtures/hubspot/object_subscriptions_batch.json");

fn cfg() -> HubspotWebhook {
    HubspotWebhook {
        client_secrets: SecretList::None,
        closed_won_stages: vec!["closedwon".into(), "contractsigned".into()],
        tolerance_secs: 300,
        default_currency: None,
    }
}

fn parse(body: &str) -> Vec<IntakeEvent> {
    parse_hubspot(body.as_bytes(), &cfg(), &window()).unwrap()
}

fn invalid(body: &str) -> (String, String) {
    match parse_hubspot(body.as_bytes(), &cfg(), &window()) {
        Err(PayloadError::Invalid { field, reason }) => (field, reason),
        other => panic!("{body}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn closed_won_stage_creates_the_order_and_an_owner_change_updates_it() {
    let events = parse(CLOSED_WON);
    assert_eq!(events.len(), 2, "the contact creation and the dealname change are ignored");
    let won = &events[0];
    assert_eq!(won.source, Source::Hubspot);
    assert_eq!(won.transition, Transition::Created);
    assert_eq!(won.deal_id.as_str(), "1246965");
    assert_eq!(won.dedupe_key, "62515:25:3816279340");
    assert_eq!(won.event_type, "deal.propertyChange");
    assert_eq!(won.occurred_at, DateTime::<Utc>::from_timestamp_millis(1_772_460_300_000).unwrap());
    assert_eq!(won.facts, OrderFacts::default());
    let raw: serde_json::Value = serde_json::from_str(&won.raw).unwrap();
    assert_eq!(raw["eventId"], 3_816_279_340u64);
    assert!(!won.raw.contains("contact.creation"));
    let owner = &events[1];
    assert_eq!(owner.transition, Transition::Updated);
    assert_eq!(owner.facts.owner_ref.as_deref(), Some("52550153"));
    assert_eq!(owner.dedupe_key, "62515:27:3816279341");
}

#[test]
fn other_stages_and_deletions_cancel() {
    let lost = parse(LOST);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].transition, Transition::Cancelled);
    let deleted = parse(DELETION);
    assert_eq!((deleted[0].transition, deleted[0].event_type.as_str()), (Transition::Cancelled, "deal.deletion"));
}

#[test]
fn amount_changes_need_a_known_currency() {
    assert_eq!(parse(AMOUNT), vec![]);
    let cfg = HubspotWebhook { default_currency: Some(Currency::parse("USD").unwrap()), ..cfg() };
    let events = parse_hubspot(AMOUNT.as_bytes(), &cfg, &window()).unwrap();
    assert_eq!(events[0].transition, Transition::Updated);
    assert_eq!(events[0].facts.amount.as_ref().map(|m| (m.minor, m.currency.as_str())), Some((5_200_050, "USD")));
    let bad = AMOUNT.replace("52000.5", "lots");
    match parse_hubspot(bad.as_bytes(), &cfg, &window()) {
        Err(PayloadError::Invalid { field, .. }) => assert_eq!(field, "[0].propertyValue"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn generic_object_subscriptions_are_read_for_deals_only() {
    let events = parse(OBJECTS);
    assert_eq!(events.len(), 2, "the contact (0-1) change is ignored");
    assert_eq!((events[0].transition, events[0].deal_id.as_str()), (Transition::Created, "9031"));
    assert_eq!((events[1].transition, events[1].deal_id.as_str()), (Transition::Cancelled, "9032"));
    // Both carry eventId 100: HubSpot does not promise unique event ids.
    assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
}

#[test]
fn cleared_owners_and_unknown_deal_events_produce_nothing() {
    let event = |fields: &str| {
        format!(
            r#"[{{"eventId":1,"subscriptionId":2,"portalId":3,"appId":4,"occurredAt":1772460300000,"attemptNumber":0,"objectId":5,{fields}}}]"#
        )
    };
    for fields in [
        r#""subscriptionType":"deal.propertyChange","propertyName":"hubspot_owner_id","propertyValue":"""#,
        r#""subscriptionType":"deal.propertyChange","propertyName":"amount","propertyValue":"10""#,
        r#""subscriptionType":"deal.creation","changeFlag":"NEW""#,
        r#""subscriptionType":"deal.restore""#,
        r#""subscriptionType":"company.propertyChange","propertyName":"dealstage","propertyValue":"closedwon""#,
        r#""subscriptionType":"object.creation","objectTypeId":"0-3""#,
    ] {
        assert_eq!(parse(&event(fields)), vec![], "{fields}");
    }
    let numeric_stage = event(r#""subscriptionType":"deal.propertyChange","propertyName":"dealstage","propertyValue":12"#);
    assert_eq!(parse(&numeric_stage)[0].transition, Transition::Cancelled);
}

#[test]
fn malformed_and_invalid_batches_name_the_field() {
    assert!(matches!(parse_hubspot(b"[{", &cfg(), &window()), Err(PayloadError::Malformed(_))));
    assert!(matches!(parse_hubspot(b"", &cfg(), &window()), Err(PayloadError::Malformed(_))));
    let base = r#""eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":1772460300000,"subscriptionType":"deal.propertyChange","objectId":5,"propertyName":"dealstage","propertyValue":"closedwon""#;
    let without = |key: &str| {
        let fields: Vec<&str> = base.split(',').filter(|f| !f.starts_with(&format!("\"{key}\""))).collect();
        format!("[{{\"attemptNumber\":0}},{{{}}}]", fields.join(","))
    };
    assert_eq!(invalid(r#"{"eventId":1}"#).0, "(body)");
    assert_eq!(invalid(r#"["x"]"#).0, "[0]");
    for key in ["eventId", "subscriptionType", "objectId", "portalId", "subscriptionId", "occurredAt", "propertyName", "propertyValue"] {
        let (field, reason) = invalid(&without(key).replacen(r#"{"attemptNumber":0},"#, "", 1));
        assert_eq!(field, format!("[0].{key}"), "{reason}");
    }
    // The first element lacks eventId: the path names it.
    assert_eq!(invalid(&without("nothing")).0, "[0].subscriptionType");
    let bad_time = format!("[{{{}}}]", base.replace("1772460300000", "\"yesterday\""));
    assert_eq!(invalid(&bad_time).0, "[0].occurredAt");
    let bad_id = format!("[{{{}}}]", base.replace("\"objectId\":5", "\"objectId\":{}"));
    assert_eq!(invalid(&bad_id).0, "[0].objectId");
}

#[test]
fn batches_over_the_limit_are_refused() {
    let one = r#"{"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":1,"subscriptionType":"contact.creation","objectId":5}"#;
    let body = format!("[{}]", vec![one; MAX_EVENTS_PER_REQUEST + 1].join(","));
    assert_eq!(invalid(&body).0, "(body)");
}

#[test]
fn truncated_bodies_are_refused_without_panicking() {
    for fixture in [CLOSED_WON, OBJECTS] {
        for end in 0..fixture.trim_end().len() {
            assert!(parse_hubspot(&fixture.as_bytes()[..end], &cfg(), &window()).is_err(), "{end}");
        }
    }
}

#[test]
fn an_occurred_at_outside_the_window_is_refused_naming_the_field() {
    // 1970, 2001, and two days after the window's "now" (2026-03-07).
    for at in ["0", "1000000000000", "1773014400000"] {
        let body = LOST.replace("1772546700000", at);
        let (field, reason) = invalid(&body);
        assert_eq!(field, "[0].occurredAt", "{at}");
        assert!(reason.contains("now (2026-03-07T00:00:00Z)"), "{reason}");
    }
    let (_, reason) = invalid(&LOST.replace("1772546700000", "0"));
    assert!(reason.contains("1970-01-01T00:00:00Z is more than 30 days before now"), "{reason}");
    // A few minutes ahead is taken as sent (the store applies it as now).
    assert_eq!(parse(&LOST.replace("1772546700000", "1772841900000")).len(), 1);
    // A notification firstcall ignores is not judged by its time.
    let contact = LOST.replace("deal.propertyChange", "contact.propertyChange").replace("1772546700000", "0");
    assert!(parse(&contact).is_empty());
}

/// firstcall's clock a day after the fixtures' events, with the shipped 30-day bound.
fn window() -> crate::intake::event::EventWindow {
    crate::intake::event::EventWindow::new(chrono::DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z").unwrap().to_utc(), 30)
}
