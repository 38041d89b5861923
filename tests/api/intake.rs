//! Order intake as CRM admins see it: every source's real payloads, signatures, duplicate and
//! out-of-order deliveries, and every class of bad input, each checked to write nothing.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

async fn body(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_signed_order_opens_one_call_for_its_rep() {
    let app = TestApp::spawn().await;
    let raw = fixture("generic/order_created.json");
    let r = app.post_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    assert_eq!(b["accepted"], 1);
    assert_eq!(b["events"][0]["outcome"], "accepted");
    assert_eq!(app.outcomes(&b).await, ["opened"]);
    let calls = app.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["deal_id"], "D-1042");
    assert_eq!(calls[0]["rep_email"], "ana.silva@example.com");
    assert_eq!(calls[0]["state"], "scheduled");
    // The raw event is kept exactly as received.
    use sea_orm::EntityTrait;
    let ev = entity::webhook_events::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(ev.dedupe_key, "evt_01HV6M3T9QX4N2B7");
    assert_eq!(serde_json::from_str::<Value>(&ev.payload).unwrap(), serde_json::from_slice::<Value>(&raw).unwrap());
    app.stop().await;
}

#[tokio::test]
async fn ten_concurrent_identical_deliveries_make_one_order_and_one_call() {
    let app = TestApp::spawn().await;
    let raw = fixture("generic/order_created.json");
    let t = app.now().timestamp();
    let sends = (0..10).map(|_| app.post_generic_raw(&raw, GENERIC_SECRET, t));
    let responses = futures_util::future::join_all(sends).await;
    let mut outcomes = Vec::new();
    let mut stored = Vec::new();
    for r in responses {
        assert_eq!(r.status(), 200, "every delivery is acknowledged");
        let b = body(r).await;
        stored.push(b["events"][0]["stored_id"].clone());
        outcomes.extend(app.outcomes(&b).await);
    }
    assert!(stored.iter().all(|s| *s == stored[0]), "every delivery names the one stored event: {stored:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "opened").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 9, "{outcomes:?}");
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("calls").await, 1);
    assert_eq!(app.count("webhook_events").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_orders_is_acknowledged_only_once_each_is_stored_with_its_call_and_timer() {
    let app = TestApp::spawn().await;
    let at = app.now();
    let sends = (0..40).map(|i| {
        let ev = order_created(&format!("evt-burst-{i}"), &format!("D-burst-{i}"), "ana.silva@example.com", at);
        let app = &app;
        async move { (i, app.post_generic(&ev).await) }
    });
    for (i, r) in futures_util::future::join_all(sends).await {
        assert_eq!(r.status(), 200);
        let b = body(r).await;
        assert_eq!(b["events"][0]["id"], format!("evt-burst-{i}"), "each request is answered about its own event");
        assert_eq!(app.outcomes(&b).await, ["opened"]);
    }
    assert_eq!(app.count("webhook_events").await, 40);
    assert_eq!(app.count("orders").await, 40);
    assert_eq!(app.count("calls").await, 40);
    assert_eq!(app.count("jobs WHERE kind = 'call.start'").await, 40, "each call has its first timer");
    // Each stored event records what became of it and its order; each order's change is audited.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let orders = entity::orders::Entity::find().all(&app.state.db).await.unwrap();
    for ev in entity::webhook_events::Entity::find().all(&app.state.db).await.unwrap() {
        assert_eq!(ev.outcome, "opened", "{}", ev.dedupe_key);
        let order = orders.iter().find(|o| Some(&o.deal_id) == ev.deal_id.as_ref()).unwrap();
        assert_eq!(ev.order_id, Some(order.id), "{}", ev.dedupe_key);
    }
    let audited = entity::audit_log::Entity::find().filter(entity::audit_log::Column::Entity.eq("order")).all(&app.state.db).await.unwrap();
    assert_eq!(audited.len(), 40);
    assert!(orders.iter().all(|o| audited.iter().any(|a| a.entity_id == o.id && a.to_state.as_deref() == Some("open"))));
    app.stop().await;
}

#[tokio::test]
async fn the_same_transition_under_a_new_event_id_does_nothing_twice() {
    let app = TestApp::spawn().await;
    let now = app.now();
    let first = body(app.post_generic(&order_created("e1", "D-7", "ana@seller.example", now)).await).await;
    assert_eq!(app.outcomes(&first).await, ["opened"]);
    let again = body(app.post_generic(&order_created("e2", "D-7", "ana@seller.example", now)).await).await;
    assert_eq!(again["events"][0]["outcome"], "accepted", "a new event id is a new event");
    assert_eq!(app.outcomes(&again).await, ["recorded"]);
    assert_eq!(app.count("calls").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_cancel_that_arrives_before_its_create_wins() {
    let app = TestApp::spawn().await;
    let now = app.now();
    let created_at = now - TimeDelta::minutes(10);
    let cancelled_at = now - TimeDelta::minutes(5);
    let cancel = order_event("c1", "order.cancelled", "D-9", cancelled_at, json!({}));
    assert_eq!(app.outcomes(&body(app.post_generic(&cancel).await).await).await, ["recorded"]);
    let create = order_created("e1", "D-9", "ana@seller.example", created_at);
    assert_eq!(app.outcomes(&body(app.post_generic(&create).await).await).await, ["stale"]);
    assert_eq!(app.count("calls").await, 0, "no call for an order cancelled after it was placed");
    // An update after the cancel changes facts but never reopens the order.
    let update = order_event("u1", "order.updated", "D-9", now, json!({"amount": "99.00", "currency": "USD"}));
    assert_eq!(app.post_generic(&update).await.status(), 200);
    assert_eq!(app.count("calls").await, 0);
    use sea_orm::EntityTrait;
    let order = entity::orders::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(order.status, entity::orders::OrderStatus::Cancelled);
    assert_eq!(order.amount_minor, Some(9900));
    app.stop().await;
}

#[tokio::test]
async fn a_deal_won_again_after_a_cancel_gets_a_new_call() {
    let app = TestApp::spawn().await;
    let now = app.now();
    app.post_generic(&order_created("e1", "D-3", "ana@seller.example", now - TimeDelta::hours(3))).await;
    app.post_generic(&order_event("c1", "order.cancelled", "D-3", now - TimeDelta::hours(2), json!({}))).await;
    let calls = app.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["state"], "cancelled");
    let r = body(app.post_generic(&order_created("e2", "D-3", "ana@seller.example", now - TimeDelta::hours(1))).await).await;
    assert_eq!(app.outcomes(&r).await, ["opened"]);
    let states: Vec<String> = app.calls().await.iter().map(|c| c["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(states, vec!["scheduled", "cancelled"]);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_applies_each_event() {
    let app = TestApp::spawn().await;
    let r = app.post_generic_raw(&fixture("generic/batch.json"), GENERIC_SECRET, app.now().timestamp()).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    let answered: Vec<&str> = b["events"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(answered, vec!["accepted"; 3]);
    assert_eq!(app.outcomes(&b).await, vec!["opened", "recorded", "recorded"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_signatures_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let raw = fixture("generic/order_created.json");
    let t = app.now().timestamp();
    let before = app.intake_counts().await;
    let sig = firstcall::intake::signature::sign_generic(GENERIC_SECRET.as_bytes(), t, &raw);
    let mut tampered = raw.clone();
    tampered[20] ^= 1;
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("tampered body", Some(sig.clone()), tampered),
        ("wrong secret", Some(firstcall::intake::signature::sign_generic(b"not-the-secret-123", t, &raw)), raw.clone()),
        ("too old", Some(firstcall::intake::signature::sign_generic(GENERIC_SECRET.as_bytes(), t - 301, &raw)), raw.clone()),
        ("from the future", Some(firstcall::intake::signature::sign_generic(GENERIC_SECRET.as_bytes(), t + 301, &raw)), raw.clone()),
        ("missing header", None, raw.clone()),
        ("garbage header", Some("v1=zz".into()), raw.clone()),
    ];
    for (what, header, body_bytes) in cases {
        let mut req = app.client.post(app.url("/webhooks/generic")).header("content-type", "application/json").body(body_bytes);
        if let Some(h) = header {
            req = req.header("X-Firstcall-Signature", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let b = body(r).await;
        assert!(b["error"]["message"].as_str().unwrap().len() > 10, "{what}: explains itself");
    }
    assert_eq!(app.intake_counts().await, before, "a refused request writes nothing");
    app.stop().await;
}

#[tokio::test]
async fn each_class_of_bad_input_gets_its_status_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.now().timestamp();
    let before = app.intake_counts().await;
    let sign = |b: &[u8]| firstcall::intake::signature::sign_generic(GENERIC_SECRET.as_bytes(), t, b);

    // Not JSON: 400.
    let raw = b"{\"id\": \"e1\", \"type\": ".to_vec();
    let r = app
        .client
        .post(app.url("/webhooks/generic"))
        .header("content-type", "application/json")
        .header("X-Firstcall-Signature", sign(&raw))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["error"]["code"], "malformed");

    // Valid JSON missing a required field: 422 naming it.
    let raw = serde_json::to_vec(&json!({"id": "e1", "type": "order.created", "occurred_at": "2026-11-23T08:00:00Z", "order": {"amount": "10.00", "currency": "USD"}})).unwrap();
    let r = app
        .client
        .post(app.url("/webhooks/generic"))
        .header("content-type", "application/json")
        .header("X-Firstcall-Signature", sign(&raw))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert!(b["error"]["field"].as_str().unwrap().contains("deal_id"), "{b}");

    // Wrong content type: 415.
    let raw = fixture("generic/order_created.json");
    let r = app
        .client
        .post(app.url("/webhooks/generic"))
        .header("content-type", "text/plain")
        .header("X-Firstcall-Signature", sign(&raw))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Over the size limit: 413.
    let big = vec![b' '; 1024 * 1024 + 10];
    let r = app
        .client
        .post(app.url("/webhooks/generic"))
        .header("content-type", "application/json")
        .header("X-Firstcall-Signature", sign(&big))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    assert_eq!(app.intake_counts().await, before);
    app.stop().await;
}

#[tokio::test]
async fn a_nul_character_anywhere_is_refused_naming_the_field_and_nothing_is_stored() {
    // PostgreSQL cannot store U+0000 in text: every door refuses it with the field, on both backends.
    let app = TestApp::spawn().await;
    let refused = |r: reqwest::Response| async move {
        let status = r.status();
        let b = body(r).await;
        assert_eq!(status, 422, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("NUL character"), "{b}");
        b["error"]["field"].as_str().unwrap_or_default().to_string()
    };
    let before = app.intake_counts().await;
    let mut order = order_created("e-nul", "D-NUL", "ana@seller.example", app.now());
    order["order"]["line_items"][1]["name"] = json!("On\u{0}boarding");
    assert_eq!(refused(app.post_generic(&order).await).await, "order.line_items[1].name");
    order["order"]["line_items"][1]["name"] = json!("Onboarding");
    order["order"]["account_name"] = json!("Acme\u{0}");
    assert_eq!(
        refused(app.post_generic(&json!([order_created("e-ok", "D-OK", "ana@seller.example", app.now()), order])).await).await,
        "[1].order.account_name"
    );
    assert_eq!(app.intake_counts().await, before, "nothing of the batch is stored");

    let mut p = proposal("ana@seller.example");
    p["requirements"][2]["text"] = json!("Salesforce\u{0} sync");
    assert_eq!(refused(app.put_proposal("generic", "D-NUL", &p).await).await, "requirements[2].text");
    let rep = json!({"name": "Ana", "timezone": "UTC", "crm_ids": {"hubspot": "41\u{0}"}});
    assert_eq!(refused(app.put_rep("ana@seller.example", &rep).await).await, "crm_ids.hubspot");
    assert_eq!((app.count("proposals").await, app.count("reps").await), (0, 0));

    assert_eq!(app.post_generic(&order_created("e-1", "D-1", "ana@seller.example", app.now())).await.status(), 200);
    app.settle().await;
    let call = app.calls().await.remove(0);
    let id = call["id"].as_i64().unwrap();
    let done = json!({"outcome": "aligned", "notes": "all good\u{0}"});
    let r = app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&done).send().await.unwrap();
    assert_eq!(refused(r).await, "notes");
    assert_eq!(app.calls().await[0]["state"], call["state"], "the call is not marked done");
    app.stop().await;
}

#[tokio::test]
async fn the_database_going_away_answers_503_so_the_crm_retries() {
    // On both backends: what "the database is away" means for each is in `database_down`.
    let app = TestApp::spawn_with(quick_outage()).await;
    let outage = app.database_down().await;
    let r = app.post_generic(&order_created("e1", "D-1", "ana@seller.example", app.now())).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(body(r).await["error"]["code"], "unavailable");
    outage.end().await;
    // The CRM retries, as a 503 asks, and the same process takes the event once the database
    // is back (a first retry may still meet a connection the outage cut). The event is new to
    // it: the refused attempt stored nothing.
    let mut refused = Vec::new();
    let r = loop {
        let r = app.post_generic(&order_created("e1", "D-1", "ana@seller.example", app.now())).await;
        if r.status() != 503 || refused.len() == 50 {
            break r;
        }
        refused.push(r.status().as_u16());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(r.status(), 200, "after {refused:?}");
    let b = body(r).await;
    assert_eq!(b["events"][0]["outcome"], "accepted");
    assert_eq!(app.outcomes(&b).await, ["opened"]);
    app.stop().await;
}

#[tokio::test]
async fn hubspot_batches_are_verified_and_applied() {
    let app = TestApp::spawn().await;
    let raw = fixture("hubspot/closed_won_batch.json");
    let ts = app.now().timestamp_millis();
    let r = app.post_hubspot(&raw, HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    assert!(app.outcomes(&b).await.iter().any(|o| o == "opened"), "{b}");
    assert_eq!(app.count("calls").await, 1);
    // Redelivered with a later timestamp and attempt number: acknowledged, nothing new.
    let r = app.post_hubspot(&raw, HUBSPOT_SECRET, ts + 1000).await;
    assert_eq!(r.status(), 200);
    assert!(body(r).await["events"].as_array().unwrap().iter().all(|e| e["outcome"] == "duplicate"));
    assert_eq!(app.count("calls").await, 1);
    // Tampered, wrong secret, stale: 401.
    let before = app.intake_counts().await;
    let sig = firstcall::intake::signature::sign_hubspot_v3(
        HUBSPOT_SECRET.as_bytes(),
        "POST",
        "http://firstcall.test/webhooks/hubspot",
        &raw,
        ts,
    );
    let tampered = String::from_utf8(raw.clone()).unwrap().replace("closedwon", "closedwoN").into_bytes();
    assert_eq!(app.post_hubspot_signed(&tampered, &sig, ts).await.status(), 401);
    assert_eq!(app.post_hubspot_signed(&raw, &sig, ts + 1).await.status(), 401, "the timestamp is part of what is signed");
    assert_eq!(app.post_hubspot(&raw, "another-client-secret-123", ts).await.status(), 401);
    assert_eq!(app.post_hubspot(&raw, HUBSPOT_SECRET, ts - 301_000).await.status(), 401);
    assert_eq!(app.post_hubspot(&raw, HUBSPOT_SECRET, ts + 301_000).await.status(), 401);
    assert_eq!(app.intake_counts().await, before);
    // The deal leaves closed-won: its call is cancelled.
    let r = app.post_hubspot(&fixture("hubspot/deal_lost.json"), HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    assert_eq!(app.outcomes(&b).await, ["cancelled"], "{b}");
    assert_eq!(app.calls().await[0]["state"], "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn pipedrive_v2_webhooks_use_basic_auth() {
    let app = TestApp::spawn().await;
    let before = app.intake_counts().await;
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), "pipedrive:wrong-password").await.status(), 401);
    let r = app
        .client
        .post(app.url("/webhooks/pipedrive"))
        .header("content-type", "application/json")
        .body(fixture("pipedrive/deal_won_v2.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.intake_counts().await, before);

    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.outcomes(&body(r).await).await, ["opened"]);
    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(body(r).await["events"][0]["outcome"], "duplicate");
    // A person changed: not a deal, nothing to do, still acknowledged.
    let r = app.post_pipedrive(&fixture("pipedrive/person_change_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200);
    let r = app.post_pipedrive(&fixture("pipedrive/deal_lost_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200);
    let calls = app.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["state"], "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn salesforce_outbound_messages_are_acknowledged_the_soap_way() {
    let app = TestApp::spawn().await;
    let raw = fixture("salesforce/closed_won.xml");
    let r = app.post_salesforce(&raw).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let text = r.text().await.unwrap();
    assert!(text.contains("<Ack>true</Ack>"), "{text}");
    assert_eq!(app.count("calls").await, 1);
    // Salesforce repeats a message: acknowledged again, nothing done twice.
    assert!(app.post_salesforce(&raw).await.text().await.unwrap().contains("<Ack>true</Ack>"));
    assert_eq!(app.count("calls").await, 1);
    // Another org: refused with a SOAP fault, nothing written.
    let before = app.intake_counts().await;
    let foreign = String::from_utf8(raw.clone()).unwrap().replace("00D5e000000KQ2eEAG", "00D000000000001AAA");
    let r = app.post_salesforce(foreign.as_bytes()).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Fault"));
    // Not XML: a SOAP fault with 400.
    let r = app.post_salesforce(b"<not-soap").await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.intake_counts().await, before);
    app.stop().await;
}

#[tokio::test]
async fn a_salesforce_message_from_another_org_is_refused_before_its_fields_are_read() {
    let app = TestApp::spawn().await;
    let raw = String::from_utf8(fixture("salesforce/closed_won.xml")).unwrap();
    let before = app.intake_counts().await;
    // A sender outside the org learns nothing about which fields a message needs: 401, not 422.
    let foreign_incomplete = raw.replace("00D5e000000KQ2eEAG", "00D000000000001AAA").replace("<sf:IsWon>true</sf:IsWon>", "");
    let r = app.post_salesforce(foreign_incomplete.as_bytes()).await;
    assert_eq!(r.status(), 401);
    let fault = r.text().await.unwrap();
    assert!(fault.contains("Fault") && fault.contains("00D000000000001AAA") && !fault.contains("IsWon"), "{fault}");
    // A message that names no organization at all is not from the org either.
    let anonymous = raw.replace("<OrganizationId>00D5e000000KQ2eEAG</OrganizationId>", "").replace("<sf:IsWon>true</sf:IsWon>", "");
    let r = app.post_salesforce(anonymous.as_bytes()).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("OrganizationId"));
    // Nor is a body that is not an outbound message.
    let r = app.post_salesforce(b"<?xml version=\"1.0\"?><order><IsWon>true</IsWon></order>").await;
    assert_eq!(r.status(), 401);
    // From the org, the same missing field is named.
    let incomplete = raw.replace("<sf:IsWon>true</sf:IsWon>", "");
    let r = app.post_salesforce(incomplete.as_bytes()).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("IsWon"));
    assert_eq!(app.intake_counts().await, before, "nothing stored");
    // Without a configured path secret, a URL with one is refused rather than quietly accepted.
    let r = app
        .client
        .post(app.url("/webhooks/salesforce/a-secret-segment-123"))
        .header("content-type", "text/xml")
        .body(raw.clone().into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS"));
    assert_eq!(app.intake_counts().await, before, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn proposals_are_versioned_by_content() {
    let app = TestApp::spawn().await;
    let p = proposal("ana@seller.example");
    let r = app.put_proposal("hubspot", "1246965", &p).await;
    assert_eq!(r.status(), 201);
    assert_eq!(body(r).await["version"], 1);
    let r = app.put_proposal("hubspot", "1246965", &p).await;
    assert_eq!(r.status(), 200, "an identical body changes nothing");
    let b = body(r).await;
    assert_eq!((b["version"].clone(), b["changed"].clone()), (json!(1), json!(false)));
    let mut changed = p.clone();
    changed["requirements"][0]["text"] = json!("SSO with Okta and Azure AD");
    let r = app.put_proposal("hubspot", "1246965", &changed).await;
    assert_eq!(r.status(), 201);
    assert_eq!(body(r).await["version"], 2);
    assert_eq!(app.get_json("/api/v1/proposals/hubspot/1246965").await["version"], 2);
    assert_eq!(app.count("proposal_requirements").await, 6, "each version keeps its parts");
    app.stop().await;
}

#[tokio::test]
async fn bad_proposals_are_refused_with_the_field() {
    let app = TestApp::spawn().await;
    let mut p = proposal("ana@seller.example");
    p["requirements"][1]["priority"] = json!("urgent");
    let r = app.put_proposal("generic", "D-1", &p).await;
    assert_eq!(r.status(), 422);
    assert_eq!(body(r).await["error"]["field"], "requirements[1].priority");
    let r = app.client.put(app.url("/api/v1/proposals/generic/D-1")).json(&proposal("ana@seller.example")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = app
        .client
        .put(app.url("/api/v1/proposals/generic/D-1"))
        .bearer_auth("wrong-token-123456")
        .json(&proposal("ana@seller.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.put_proposal("zoho", "D-1", &proposal("ana@seller.example")).await.status(), 404);
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/proposals/generic/D-1")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/proposals/generic/D-1")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.count("proposals").await, 0);
    app.stop().await;
}

/// API bodies are strict: a field the API does not know is a 422 naming its JSON path, never
/// silently dropped (a commitment with `requirement_ids` instead of `covers` would otherwise be
/// stored as covering nothing and show as an over-promise in every recap).
#[tokio::test]
async fn unknown_proposal_fields_are_refused_with_their_path_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let mut p = proposal("ana@seller.example");
    p["commitments"][0] = json!({"id": "C1", "text": "SAML SSO configured with Okta", "requirement_ids": ["R1"]});
    let r = app.put_proposal("generic", "D-1", &p).await;
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert_eq!(b["error"]["code"], "invalid");
    assert_eq!(b["error"]["field"], "commitments[0].requirement_ids", "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(!message.contains("did you mean"), "requirement_ids is not close to any known name: {message}");
    assert!(message.contains("`covers`") && message.contains("`deliver_by`"), "the known fields are listed: {message}");
    let r = app.api(reqwest::Method::GET, "/api/v1/proposals/generic/D-1").send().await.unwrap();
    assert_eq!(r.status(), 404, "nothing stored");

    // With a version on file, a refused body leaves it as it was.
    let good = proposal("ana@seller.example");
    assert_eq!(app.put_proposal("generic", "D-1", &good).await.status(), 201);
    let before = app.get_json("/api/v1/proposals/generic/D-1").await;
    let mut near = good.clone();
    near["commitments"][1]["cover"] = json!(["R2"]);
    let r = app.put_proposal("generic", "D-1", &near).await;
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert_eq!(b["error"]["field"], "commitments[1].cover");
    assert!(b["error"]["message"].as_str().unwrap().contains("did you mean `covers`?"), "{b}");
    assert_eq!(app.get_json("/api/v1/proposals/generic/D-1").await, before, "the stored version is unchanged");
    assert_eq!(app.count("proposals").await, 1);

    // Near misses at every depth name the close known field.
    for (edit, field, suggestion) in [
        (
            json!({"requirements": [{"id": "R1", "text": "SSO", "priority": "must", "needed_by": "2026-12-01"}]}),
            "requirements[0].needed_by",
            "need_by",
        ),
        (json!({"account": {"name": "Acme", "segmnt": "smb"}}), "account.segmnt", "segment"),
        (json!({"rep": "ana@seller.example"}), "rep", "rep_email"),
        (
            json!({"line_items": [{"sku": "P", "name": "Pro", "quantity": 1, "unit_price": "1.00", "currency": "USD", "unitprice": 1}]}),
            "line_items[0].unitprice",
            "unit_price",
        ),
        (json!({"contacts": [{"name": "Dana", "email_address": "dana@acme.example"}]}), "contacts[0].email_address", "email"),
        (
            json!({"activities": [{"at": "2026-10-02T14:00:00Z", "kind": "call", "summary": "x", "kinds": "call"}]}),
            "activities[0].kinds",
            "kind",
        ),
    ] {
        let mut p = json!({"account": {"name": "Acme"}});
        for (k, v) in edit.as_object().unwrap() {
            p[k] = v.clone();
        }
        let r = app.put_proposal("generic", "D-2", &p).await;
        assert_eq!(r.status(), 422, "{p}");
        let b = body(r).await;
        assert_eq!(b["error"]["field"], field, "{b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("did you mean `{suggestion}`?")), "{message}");
    }
    let r = app.api(reqwest::Method::GET, "/api/v1/proposals/generic/D-2").send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn unknown_rep_fields_are_refused_with_their_name() {
    let app = TestApp::spawn().await;
    let r = app.put_rep("ana@seller.example", &json!({"name": "Ana", "timezone": "Europe/Madrid", "manager": "mo@seller.example"})).await;
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert_eq!(b["error"]["code"], "invalid");
    assert_eq!(b["error"]["field"], "manager", "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("did you mean `manager_email`?"), "{b}");
    let r = app.put_rep("ana@seller.example", &json!({"name": "Ana", "timezone": "Europe/Madrid", "phone": "+34 600"})).await;
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert_eq!(b["error"]["field"], "phone", "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(!message.contains("did you mean") && message.contains("`timezone`") && message.contains("`crm_ids`"), "{message}");
    let r = app.api(reqwest::Method::GET, "/api/v1/reps/ana@seller.example").send().await.unwrap();
    assert_eq!(r.status(), 404, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn the_rep_directory_checks_timezones() {
    let app = TestApp::spawn().await;
    let r = app
        .put_rep(
            "ana@seller.example",
            &json!({"name": "Ana", "timezone": "Europe/Madrid", "manager_email": "mo@seller.example", "crm_ids": {"hubspot": "45678"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = app.get_json("/api/v1/reps/ana@seller.example").await;
    assert_eq!(got["timezone"], "Europe/Madrid");
    assert_eq!(got["crm_ids"]["hubspot"], "45678");
    let r = app.put_rep("ana@seller.example", &json!({"name": "Ana", "timezone": "Europe/Atlantis"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(body(r).await["error"]["field"], "timezone");
    app.stop().await;
}

#[tokio::test]
async fn an_order_without_a_proposal_still_gets_its_call_and_picks_the_proposal_up_later() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-5", "ana@seller.example", app.now())).await;
    let call_id = app.calls().await[0]["id"].as_i64().unwrap();
    let recap = app.get_json(&format!("/api/v1/calls/{call_id}/recap")).await;
    assert!(recap["proposal"].is_null());
    assert!(recap.to_string().contains("no_proposal_on_file"), "{recap}");
    assert_eq!(app.put_proposal("generic", "D-5", &proposal("ana@seller.example")).await.status(), 201);
    let recap = app.get_json(&format!("/api/v1/calls/{call_id}/recap")).await;
    assert_eq!(recap["proposal"]["version"], 1);
    assert!(!recap.to_string().contains("no_proposal_on_file"));
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_batch_applies_new_deals_together_and_the_rest_in_order() {
    let app = TestApp::spawn().await;
    let now = app.now();
    app.post_generic(&order_created("e-old", "D-0", "ana@seller.example", now - TimeDelta::hours(1))).await;
    let mut events: Vec<Value> = (1..=30).map(|i| order_created(&format!("e{i}"), &format!("D-{i}"), "ana@seller.example", now)).collect();
    events.push(order_created("e5", "D-5", "ana@seller.example", now)); // the same event twice in one delivery
    events.push(order_created("e-again", "D-0", "ana@seller.example", now)); // a deal already open
    events.push(order_created("e31", "D-31", "ana@seller.example", now - TimeDelta::minutes(2)));
    events.push(order_event("c31", "order.cancelled", "D-31", now - TimeDelta::minutes(1), json!({})));
    let r = app.post_generic(&Value::Array(events)).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    let outcomes = app.outcomes(&b).await;
    assert_eq!(&outcomes[..30], &["opened"; 30][..]);
    assert_eq!(&outcomes[30..], &["duplicate", "recorded", "opened", "cancelled"]);
    assert_eq!(b["accepted"], 33);
    assert_eq!(b["duplicates"], 1);
    // Every new call has its order, its first timer, and the events their outcome and order.
    assert_eq!(app.count("orders").await, 32);
    assert_eq!(app.count("calls").await, 32);
    let calls = app.calls().await;
    assert_eq!(calls.iter().filter(|c| c["state"] == "cancelled").count(), 1);
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let starts = entity::jobs::Entity::find().filter(entity::jobs::Column::Kind.eq("call.start")).all(&app.state.db).await.unwrap();
    assert_eq!(starts.len(), 31, "one first step per call still open");
    let events = entity::webhook_events::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(events.len(), 34);
    assert!(events.iter().all(|e| e.order_id.is_some() && e.outcome != "pending"), "every event records its outcome");
    let opened_audits =
        entity::audit_log::Entity::find().filter(entity::audit_log::Column::Action.eq("opened")).all(&app.state.db).await.unwrap();
    assert_eq!(opened_audits.len(), 32, "one audit row per opened call");
    // The calls are real: the first steps send every rep the recap.
    app.settle().await;
    assert_eq!(app.mails_to("ana@seller.example").len(), 31);
    app.stop().await;
}

/// A HubSpot deal won at `occurred_at_ms` (Unix milliseconds), as one notification in a batch.
fn hubspot_won_at(occurred_at_ms: i64) -> Vec<u8> {
    serde_json::to_vec(&json!([{
        "eventId": 3816279340u64, "subscriptionId": 25, "portalId": 62515, "appId": 1160452,
        "occurredAt": occurred_at_ms, "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
        "objectId": 1246965, "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI"
    }]))
    .unwrap()
}

#[tokio::test]
async fn event_times_far_in_the_past_or_future_are_refused_naming_the_field_and_storing_nothing() {
    let app = TestApp::spawn().await;
    let now = app.now();
    let ts = now.timestamp_millis();
    let before = app.intake_counts().await;
    let refused = |b: &Value, field: &str| {
        assert_eq!(b["error"]["code"], "invalid", "{b}");
        assert_eq!(b["error"]["field"], field, "{b}");
    };

    // HubSpot: the Unix epoch, 2001, and two days ahead.
    for occurred in [0, 1_000_000_000_000, (now + TimeDelta::days(2)).timestamp_millis()] {
        let r = app.post_hubspot(&hubspot_won_at(occurred), HUBSPOT_SECRET, ts).await;
        assert_eq!(r.status(), 422, "occurredAt {occurred}");
        refused(&body(r).await, "[0].occurredAt");
    }
    // Generic: the field of the event that is out of range, in a batch.
    let batch = json!([
        order_created("e-ok", "D-1", "ana@seller.example", now),
        order_created("e-old", "D-2", "ana@seller.example", now - TimeDelta::days(9000)),
    ]);
    let r = app.post_generic(&batch).await;
    assert_eq!(r.status(), 422);
    refused(&body(r).await, "[1].occurred_at");
    let r = app.post_generic(&order_created("e-ahead", "D-3", "ana@seller.example", now + TimeDelta::hours(25))).await;
    assert_eq!(r.status(), 422);
    refused(&body(r).await, "occurred_at");
    // Pipedrive and Salesforce: their own timestamp fields.
    let pd = String::from_utf8(fixture("pipedrive/deal_won_v2.json")).unwrap().replace("2026-03-02T14:05:00.481Z", "2001-09-09T01:46:40Z");
    let r = app.post_pipedrive(pd.as_bytes(), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 422);
    refused(&body(r).await, "meta.timestamp");
    let sf =
        String::from_utf8(fixture("salesforce/closed_won.xml")).unwrap().replace("2026-03-02T14:05:00.000Z", "1970-01-01T00:00:00.000Z");
    let r = app.post_salesforce(sf.as_bytes()).await;
    assert_eq!(r.status(), 422);
    let fault = r.text().await.unwrap();
    assert!(fault.contains("Notification[0].sObject.LastModifiedDate"), "{fault}");

    assert_eq!(app.intake_counts().await, before, "nothing stored: no event, order, call, timer or audit row");

    // A clock a few minutes fast at the CRM is still accepted (and applied as now).
    let r = app.post_hubspot(&hubspot_won_at((now + TimeDelta::minutes(5)).timestamp_millis()), HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.outcomes(&body(r).await).await, ["opened"]);
    app.stop().await;
}

#[tokio::test]
async fn the_oldest_accepted_event_time_is_configurable() {
    // 30 days, as shipped in config/default.toml (the harness widens it for its fixtures).
    let opts = Options { overrides: vec![("webhooks.max_event_age_days", json!(30))], ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let now = app.now();
    let r = app.post_generic(&order_created("e-31d", "D-1", "ana@seller.example", now - TimeDelta::days(31))).await;
    assert_eq!(r.status(), 422);
    let b = body(r).await;
    assert_eq!(b["error"]["field"], "occurred_at", "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("webhooks.max_event_age_days"), "the admin learns what to change: {b}");
    assert_eq!(app.count("webhook_events").await, 0);
    // A backfill within the bound is taken, and its call runs its first step.
    let r = app.post_generic(&order_created("e-29d", "D-2", "ana@seller.example", now - TimeDelta::days(29))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.count("calls").await, 1);
    app.settle().await;
    assert_eq!(app.count("jobs WHERE state = 'dead'").await, 0, "no step fails for an accepted time");
    let call = &app.calls().await[0];
    let page = app.api(reqwest::Method::GET, &format!("/api/v1/calls/{}", call["id"])).send().await.unwrap();
    assert_eq!(page.status(), 200);
    app.stop().await;
}

/// Every order of `0..n`, the identity first, for delivering a deal's history in every order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in (0..=p.len()).rev() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[tokio::test]
async fn a_deals_history_delivered_in_any_order_ends_as_delivered_in_order() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn().await;
    let now = app.now();
    let t = |minutes: i64| now - TimeDelta::minutes(60 - minutes);
    let (ana, bo) = ("ana@seller.example", "bo@seller.example");
    // Won, lost, won again by another rep, then the amount changes.
    let rewon = |deal: &str, p: &str| {
        vec![
            order_event(&format!("{p}-1"), "order.created", deal, t(1), json!({"rep_email": ana, "amount": "100.00", "currency": "USD"})),
            order_event(&format!("{p}-2"), "order.cancelled", deal, t(2), json!({})),
            order_event(&format!("{p}-3"), "order.created", deal, t(3), json!({"rep_email": bo})),
            order_event(&format!("{p}-4"), "order.updated", deal, t(4), json!({"amount": "200.00", "currency": "USD"})),
        ]
    };
    // Won, lost, won again, lost again.
    let relost = |deal: &str, p: &str| {
        vec![
            order_event(&format!("{p}-1"), "order.created", deal, t(1), json!({"rep_email": ana, "amount": "100.00", "currency": "USD"})),
            order_event(&format!("{p}-2"), "order.cancelled", deal, t(2), json!({})),
            order_event(&format!("{p}-3"), "order.created", deal, t(3), json!({"rep_email": bo})),
            order_event(&format!("{p}-4"), "order.cancelled", deal, t(4), json!({})),
        ]
    };
    for name in ["rewon", "relost"] {
        let history = |deal: &str, p: &str| if name == "rewon" { rewon(deal, p) } else { relost(deal, p) };
        let mut finals = Vec::new();
        for (i, order) in permutations(4).into_iter().enumerate() {
            let deal = format!("{name}-{i}");
            let events = history(&deal, &deal);
            for &k in &order {
                assert_eq!(app.post_generic(&events[k]).await.status(), 200);
            }
            let o = entity::orders::Entity::find()
                .filter(entity::orders::Column::DealId.eq(deal.as_str()))
                .one(&app.state.db)
                .await
                .unwrap()
                .unwrap();
            let open_calls = entity::calls::Entity::find()
                .filter(entity::calls::Column::DealId.eq(deal.as_str()))
                .filter(entity::calls::Column::State.is_in(entity::calls::CallState::OPEN))
                .all(&app.state.db)
                .await
                .unwrap();
            let open_rep = open_calls.first().map(|c| c.rep_email.clone());
            finals.push((order.clone(), (o.status, o.rep_email, o.amount_minor, open_calls.len(), open_rep)));
        }
        // The first permutation is the order the events happened in.
        assert_eq!(finals[0].0, vec![0, 1, 2, 3]);
        let in_order = finals[0].1.clone();
        for (order, end) in &finals {
            assert_eq!(end, &in_order, "{name}: delivered in the order {order:?}");
        }
        let expected = match name {
            "rewon" => (entity::orders::OrderStatus::Open, Some(bo.to_string()), Some(20000), 1, Some(bo.to_string())),
            _ => (entity::orders::OrderStatus::Cancelled, Some(bo.to_string()), Some(10000), 0, None),
        };
        assert_eq!(in_order, expected, "{name} delivered in order");
    }
    app.stop().await;
}

/// Posts a generic event and returns the answer without letting the engine apply it.
async fn send_unapplied(app: &TestApp, event: &Value) -> Value {
    let raw = serde_json::to_vec(event).unwrap();
    let r = app.send_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await;
    assert_eq!(r.status(), 200);
    body(r).await
}

#[tokio::test]
async fn a_webhook_is_answered_once_its_event_is_stored_and_the_engine_applies_it_after() {
    let app = TestApp::spawn().await;
    let before = app.intake_counts().await;
    let b = send_unapplied(&app, &order_created("e1", "D-1", "ana@seller.example", app.now())).await;
    assert_eq!((b["accepted"].as_i64(), b["duplicates"].as_i64()), (Some(1), Some(0)));
    assert_eq!(b["events"][0]["id"], "e1");
    assert_eq!(b["events"][0]["outcome"], "accepted");
    let stored = b["events"][0]["stored_id"].as_i64().expect("the stored event's id");
    // Stored, not applied yet: one row, no order, no call.
    let mut one_event = before;
    one_event[0] += 1;
    assert_eq!(app.intake_counts().await, one_event);
    let pending = app.get_json(&format!("/api/v1/events/{stored}")).await;
    assert_eq!(pending["state"], "pending", "{pending}");
    assert!(pending["outcome"].is_null() && pending["call_id"].is_null(), "{pending}");
    assert_eq!(
        (pending["source"].as_str(), pending["crm_event_id"].as_str(), pending["deal_id"].as_str()),
        (Some("generic"), Some("e1"), Some("D-1"))
    );
    // A redelivery before the engine ran names the same stored event.
    let again = send_unapplied(&app, &order_created("e1", "D-1", "ana@seller.example", app.now())).await;
    assert_eq!(again["events"][0]["outcome"], "duplicate");
    assert_eq!(again["events"][0]["stored_id"].as_i64(), Some(stored));

    assert_eq!(app.apply_events().await, 1);
    let applied = app.get_json(&format!("/api/v1/events/{stored}")).await;
    assert_eq!(applied["state"], "applied", "{applied}");
    assert_eq!(applied["outcome"], "opened");
    let calls = app.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(applied["call_id"], calls[0]["id"]);
    assert_eq!(applied["order_id"], calls[0]["order_id"]);
    assert!(applied["applied_at"].is_string() && applied["error"].is_null(), "{applied}");
    assert_eq!(app.apply_events().await, 0, "an applied event is not applied again");
    assert_eq!(app.count("calls").await, 1);

    // An unknown id is 404; the API token is required.
    let r = app.api(reqwest::Method::GET, &format!("/api/v1/events/{}", stored + 1000)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(body(r).await["error"]["code"], "not_found");
    let r = app.client.get(app.url(&format!("/api/v1/events/{stored}"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_events_of_one_deal_are_applied_in_the_order_they_were_stored_across_batches() {
    // Two events a batch: the deal's three events and another deal's land in two batches.
    let opts = Options { overrides: vec![("webhooks.apply_batch_size", json!(2))], ..Options::default() };
    let app = TestApp::spawn_with(opts).await;
    let now = app.now();
    let mut stored = Vec::new();
    for event in [
        order_created("c-1", "D-1", "ana@seller.example", now - TimeDelta::minutes(3)),
        order_created("c-2", "D-2", "ana@seller.example", now - TimeDelta::minutes(3)),
        order_event("u-1", "order.updated", "D-1", now - TimeDelta::minutes(2), json!({"rep_email": "bo@seller.example"})),
        order_event("x-1", "order.cancelled", "D-1", now - TimeDelta::minutes(1), json!({})),
    ] {
        stored.push(send_unapplied(&app, &event).await["events"][0]["stored_id"].as_i64().unwrap());
    }
    assert_eq!(app.apply_events().await, 4);
    let mut outcomes = Vec::new();
    for id in &stored {
        outcomes.push(app.get_json(&format!("/api/v1/events/{id}")).await["outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(outcomes, ["opened", "opened", "updated", "cancelled"]);
    let calls = app.calls().await;
    let d1 = calls.iter().find(|c| c["deal_id"] == "D-1").unwrap();
    assert_eq!((d1["state"].as_str(), d1["rep_email"].as_str()), (Some("cancelled"), Some("bo@seller.example")));
    app.stop().await;
}

#[tokio::test]
async fn a_stored_event_that_cannot_be_applied_is_marked_failed_and_the_rest_are_applied() {
    let app = TestApp::spawn().await;
    let first = send_unapplied(&app, &order_created("e1", "D-1", "ana@seller.example", app.now())).await["events"][0]["stored_id"]
        .as_i64()
        .unwrap();
    let second = send_unapplied(&app, &order_created("e2", "D-2", "ana@seller.example", app.now())).await["events"][0]["stored_id"]
        .as_i64()
        .unwrap();
    // A row this version cannot read (written by a newer one, or edited by hand).
    app.exec(&format!("UPDATE webhook_events SET transition = 'reopened' WHERE id = {first}")).await;
    assert_eq!(app.apply_events().await, 2);
    let failed = app.get_json(&format!("/api/v1/events/{first}")).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("reopened"), "{failed}");
    assert!(failed["outcome"].is_null());
    assert_eq!(app.get_json(&format!("/api/v1/events/{second}")).await["outcome"], "opened");
    assert_eq!(app.count("calls").await, 1);
    assert_eq!(app.apply_events().await, 0, "a failed event is kept, not taken again");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"firstcall_events_applied_total{source="generic",outcome="failed"} 1"#), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn two_processes_applying_the_inbox_at_once_apply_each_event_once() {
    let app = TestApp::spawn().await;
    let events: Vec<Value> =
        (0..120).map(|i| order_created(&format!("e{i}"), &format!("D-{i}"), "ana@seller.example", app.now())).collect();
    for chunk in events.chunks(10) {
        send_unapplied(&app, &Value::Array(chunk.to_vec())).await;
    }
    let other = app.another_process(&Options::default()).await;
    let (a, b) = tokio::join!(app.engine.run_feeds(), other.engine.run_feeds());
    let (a, b) = (a.unwrap(), b.unwrap());
    // Whoever took what, together they took every event once.
    assert_eq!(a + b, 120, "{a} + {b}");
    assert_eq!(app.count("webhook_events WHERE outcome = 'opened'").await, 120);
    assert_eq!(app.count("orders").await, 120);
    assert_eq!(app.count("calls").await, 120);
    assert_eq!(app.count("jobs WHERE kind = 'call.start'").await, 120);
    assert_eq!(app.count("audit_log WHERE entity = 'order'").await, 120);
    app.stop().await;
}
