use chrono::TimeZone;
use serde_json::json;

use super::*;

const WON: &str = include_str!("../../../tests/fixtures/pipedrive/deal_won_v2.json");
const LOST: &str = include_str!("../../../tests/fixtures/pipedrive/deal_lost_v2.json");
const DELETED: &str = include_str!("../../../tests/fixtures/pipedrive/deal_deleted_v2.json");
const VALUE_CHANGED: &str = include_str!("../../../tests/fixtures/pipedrive/deal_value_changed_v2.json");
const REOPENED: &str = include_str!("../../../tests/fixtures/pipedrive/deal_reopened_v2.json");
const STAGE_MOVED: &str = include_str!("../../../tests/fixtures/pipedrive/deal_stage_moved_open_v2.json");
const PERSON: &str = include_str!("../../../tests/fixtures/pipedrive/person_change_v2.json");

fn parse(body: &str) -> Vec<IntakeEvent> {
    parse_pipedrive(body.as_bytes(), &window()).unwrap()
}

fn one(body: &str) -> IntakeEvent {
    let mut events = parse(body);
    assert_eq!(events.len(), 1, "{body}");
    events.remove(0)
}

/// A fixture with some of its JSON replaced.
fn edit(fixture: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    f(&mut v);
    v.to_string()
}

fn invalid(body: &str) -> (String, String) {
    match parse_pipedrive(body.as_bytes(), &window()) {
        Err(PayloadError::Invalid { field, reason }) => (field, reason),
        other => panic!("{body}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_deal_becoming_won_creates_the_order_with_its_facts() {
    let e = one(WON);
    assert_eq!(e.source, Source::Pipedrive);
    assert_eq!(e.transition, Transition::Created);
    assert_eq!(e.dedupe_key, "9c2e3f5a-4b1d-4e7a-8c6b-1f0e2d3c4b5a");
    assert_eq!(e.event_type, "change.deal");
    assert_eq!(e.deal_id.as_str(), "746");
    assert_eq!(e.occurred_at, Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0).unwrap() + chrono::Duration::milliseconds(481));
    assert_eq!(e.facts.amount.as_ref().map(|m| (m.minor, m.currency.as_str())), Some((4_800_000, "EUR")));
    assert_eq!(e.facts.owner_ref.as_deref(), Some("23821159"));
    assert_eq!(e.facts.account_name.as_deref(), Some("Acme GmbH - Platform rollout"));
    assert_eq!(e.raw, WON.trim());
    // A deal created as won is an order too.
    let created = edit(WON, |v| {
        v["meta"]["action"] = json!("create");
        v["previous"] = json!(null);
    });
    assert_eq!(one(&created).transition, Transition::Created);
    assert_eq!(one(&created).event_type, "create.deal");
}

#[test]
fn lost_deleted_and_reopened_deals_cancel() {
    let lost = one(LOST);
    assert_eq!((lost.transition, lost.facts.clone()), (Transition::Cancelled, OrderFacts::default()));
    let deleted = one(DELETED);
    assert_eq!((deleted.transition, deleted.event_type.as_str(), deleted.deal_id.as_str()), (Transition::Cancelled, "delete.deal", "746"));
    assert_eq!(one(REOPENED).transition, Transition::Cancelled);
    let status_deleted = edit(LOST, |v| v["data"]["status"] = json!("deleted"));
    assert_eq!(one(&status_deleted).transition, Transition::Cancelled);
    let flagged_deleted = edit(VALUE_CHANGED, |v| {
        v["data"]["is_deleted"] = json!(true);
        v["previous"] = json!({"is_deleted": false});
    });
    assert_eq!(one(&flagged_deleted).transition, Transition::Cancelled);
    // Without entity_id, the deal id comes from what is left of the deal.
    let no_entity_id = edit(DELETED, |v| v["meta"].as_object_mut().unwrap().remove("entity_id").map(drop).unwrap_or(()));
    assert_eq!(one(&no_entity_id).deal_id.as_str(), "746");
}

#[test]
fn changes_to_a_won_deal_update_the_order() {
    let e = one(VALUE_CHANGED);
    assert_eq!(e.transition, Transition::Updated);
    assert_eq!(e.facts.amount.as_ref().map(|m| m.minor), Some(5_200_050));
    let owner = edit(VALUE_CHANGED, |v| v["previous"] = json!({"owner_id": 1}));
    assert_eq!(one(&owner).transition, Transition::Updated);
    // A won deal's stage or label changing is nothing to an order.
    let label = edit(VALUE_CHANGED, |v| v["previous"] = json!({"label_ids": [3]}));
    assert_eq!(parse(&label), vec![]);
    let org_named = edit(VALUE_CHANGED, |v| v["data"]["org_name"] = json!("Acme GmbH"));
    assert_eq!(one(&org_named).facts.account_name.as_deref(), Some("Acme GmbH"));
}

#[test]
fn open_deals_and_other_entities_produce_nothing() {
    assert_eq!(parse(STAGE_MOVED), vec![]);
    assert_eq!(parse(PERSON), vec![]);
    let created_open = edit(STAGE_MOVED, |v| {
        v["meta"]["action"] = json!("create");
        v["previous"] = json!(null);
    });
    assert_eq!(parse(&created_open), vec![]);
    let created_lost = edit(LOST, |v| {
        v["meta"]["action"] = json!("create");
        v["previous"] = json!(null);
    });
    assert_eq!(parse(&created_lost), vec![]);
    let lost_again = edit(LOST, |v| v["previous"] = json!({"lost_reason": "Budget"}));
    assert_eq!(parse(&lost_again), vec![]);
    let future_action = edit(WON, |v| v["meta"]["action"] = json!("archive"));
    assert_eq!(parse(&future_action), vec![]);
}

#[test]
fn timestamps_may_also_be_unix_seconds_or_milliseconds() {
    let secs = edit(WON, |v| v["meta"]["timestamp"] = json!(1_772_460_300));
    let millis = edit(WON, |v| v["meta"]["timestamp"] = json!("1772460300000"));
    let expected = Utc.timestamp_opt(1_772_460_300, 0).unwrap();
    assert_eq!(one(&secs).occurred_at, expected);
    assert_eq!(one(&millis).occurred_at, expected);
    let numeric_ids = edit(WON, |v| {
        v["meta"]["id"] = json!(991);
        v["meta"]["entity_id"] = json!(746);
    });
    assert_eq!((one(&numeric_ids).dedupe_key.as_str(), one(&numeric_ids).deal_id.as_str()), ("991", "746"));
}

#[test]
fn malformed_and_invalid_bodies_name_the_field() {
    for body in ["", "{", "meta", "{\"meta\":}"] {
        assert!(matches!(parse_pipedrive(body.as_bytes(), &window()), Err(PayloadError::Malformed(_))), "{body:?}");
    }
    let drop_meta = |key: &'static str| edit(WON, move |v| drop(v["meta"].as_object_mut().unwrap().remove(key)));
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("[{WON}]"), "(body)", "object"),
        (edit(WON, |v| drop(v.as_object_mut().unwrap().remove("meta"))), "meta", "required"),
        (edit(WON, |v| v["meta"] = json!("x")), "meta", "object"),
        (drop_meta("version"), "meta.version", "2.0"),
        (edit(WON, |v| v["meta"]["version"] = json!("1.0")), "meta.version", "not supported"),
        (edit(WON, |v| v["meta"]["v"] = json!(1)), "meta.version", "v1"),
        (drop_meta("action"), "meta.action", "required"),
        (drop_meta("entity"), "meta.entity", "required"),
        (drop_meta("id"), "meta.id", "required"),
        (drop_meta("timestamp"), "meta.timestamp", "required"),
        (edit(WON, |v| v["meta"]["timestamp"] = json!("last tuesday")), "meta.timestamp", "RFC 3339"),
        (edit(WON, |v| v["data"] = json!(null)), "data", "required"),
        (edit(WON, |v| v["data"] = json!([1])), "data", "object"),
        (edit(WON, |v| v["data"]["status"] = json!(3)), "data.status", "string"),
        (edit(WON, |v| v["data"]["currency"] = json!("euro")), "data.currency", "currency"),
        (edit(WON, |v| v["data"]["value"] = json!("much")), "data.value", "decimal"),
        (edit(WON, |v| v["data"]["owner_id"] = json!({"id": 1})), "data.owner_id", "id"),
        (
            edit(DELETED, |v| {
                v["meta"]["entity_id"] = json!("");
                v["previous"] = json!(null);
            }),
            "meta.entity_id",
            "required",
        ),
    ];
    for (body, field, reason_part) in cases {
        let (f, reason) = invalid(&body);
        assert_eq!(f, field, "{reason}");
        assert!(reason.contains(reason_part), "{field}: {reason:?} should mention {reason_part:?}");
    }
}

#[test]
fn truncated_bodies_are_refused_without_panicking() {
    for fixture in [WON, DELETED] {
        for end in 0..fixture.trim_end().len() {
            assert!(parse_pipedrive(&fixture.as_bytes()[..end], &window()).is_err(), "{end}");
        }
    }
}

#[test]
fn a_timestamp_outside_the_window_is_refused_naming_the_field() {
    for at in ["\"1970-01-01T00:00:00Z\"", "1000000000", "\"2026-03-09T00:00:00Z\""] {
        let (field, _) = invalid(&WON.replace("\"2026-03-02T14:05:00.481Z\"", at));
        assert_eq!(field, "meta.timestamp", "{at}");
    }
}

/// firstcall's clock a day after the fixtures' events, with the shipped 30-day bound.
fn window() -> crate::intake::event::EventWindow {
    crate::intake::event::EventWindow::new(chrono::DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z").unwrap().to_utc(), 30)
}
