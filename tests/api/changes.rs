//! Changes after the recap: a proposal edited, or an order changed, after the rep's recap went
//! out gives one short email listing only what changed, gathered over the quiet period; the call
//! page marks what is new since the rep last opened it.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::pages::get;

const REP: &str = "ana@seller.example";

fn kinds(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.message_id.clone().unwrap_or_default().split('.').nth(1).unwrap_or("").to_string()).collect()
}

/// A call whose recap has gone to Ana, and the proposal it was built from.
async fn recap_sent(app: &TestApp) -> (i64, Value) {
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "UTC"})).await.status(), 200);
    let p = proposal(REP);
    app.put_proposal("generic", "D-1", &p).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"]);
    (app.calls().await[0]["id"].as_i64().unwrap(), p)
}

async fn minutes(app: &TestApp, n: i64) {
    app.advance_and_settle(TimeDelta::minutes(n), TimeDelta::minutes(1)).await;
}

#[tokio::test]
async fn three_proposal_edits_within_the_quiet_period_give_one_email_listing_all_three() {
    let app = TestApp::spawn().await;
    let (id, mut p) = recap_sent(&app).await;

    // Three edits, three minutes apart: a new requirement, a commitment moved, a requirement
    // that became a must.
    p["requirements"].as_array_mut().unwrap().push(json!({"id": "R4", "text": "Audit log export", "priority": "should"}));
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
    minutes(&app, 3).await;
    p["commitments"][1]["deliver_by"] = json!("2027-02-15");
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
    minutes(&app, 3).await;
    p["requirements"][2]["priority"] = json!("must");
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
    // The same body again is no edit.
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 200);

    // Quiet for ten minutes after the last edit: nothing before, one email then.
    minutes(&app, 9).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"], "still gathering");
    minutes(&app, 2).await;
    let mails = app.mails_to(REP);
    assert_eq!(kinds(&mails), vec!["first_call", "recap_changed"], "one email for three edits");
    let update = &mails[1];
    assert_eq!(update.subject.as_deref(), Some("Changed since your recap: first call with Acme Corp"));
    let text = update.text.as_deref().unwrap();
    assert!(text.contains("The deal with Acme Corp changed after your recap went out"), "{text}");
    for line in [
        "- New requirement: Audit log export (should)",
        "- Commitment moved: Native Salesforce connector: Mon 1 Feb 2027 → Mon 15 Feb 2027",
        "- Requirement changed: Salesforce sync (must, needed by Sun 10 Jan 2027) (was: Salesforce sync (should, needed by Sun 10 Jan 2027))",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("Single sign-on"), "only what changed: {text}");
    assert!(update.calendar.is_none(), "no invite: the call did not move");

    // Nothing more changed: nothing more is sent.
    minutes(&app, 30).await;
    assert_eq!(app.mails_to(REP).len(), 2);
    let audit = app.column(&format!("SELECT actor FROM audit_log WHERE entity_id = {id} AND action = 'recap_changed'")).await;
    assert_eq!(audit, vec!["engine".to_string()]);
    app.stop().await;
}

#[tokio::test]
async fn an_order_whose_amount_and_items_change_is_told_and_edits_after_done_are_not() {
    let app = TestApp::spawn().await;
    let (id, mut p) = recap_sent(&app).await;
    let mut order = order_created("e2", "D-1", REP, app.now())["order"].clone();
    order["amount"] = json!("14450.00");
    order["line_items"][0]["quantity"] = json!(150);
    let r = app.post_generic(&order_event("e2", "order.updated", "D-1", app.now(), order)).await;
    assert_eq!(r.status(), 200);
    minutes(&app, 11).await;
    let mails = app.mails_to(REP);
    assert_eq!(kinds(&mails), vec!["first_call", "recap_changed"]);
    let text = mails[1].text.as_deref().unwrap();
    assert!(text.contains("- Order amount: 14,450.00 USD (was 12,000.00 USD)"), "{text}");
    assert!(text.contains("- New gap: “Pro seats” (PRO-100) was ordered differently from the proposal (quantity 100 → 150)"), "{text}");
    assert!(text.contains("- Ordered item changed: Pro seats, 150 × 49.00 USD (was 100 × 49.00 USD)"), "{text}");

    // Marked done: a later edit tells nobody.
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    p["requirements"].as_array_mut().unwrap().push(json!({"id": "R9", "text": "Something new", "priority": "nice"}));
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
    minutes(&app, 15).await;
    assert_eq!(kinds(&app.mails_to(REP)).iter().filter(|k| *k == "recap_changed").count(), 1, "nothing after done");
    app.stop().await;
}

#[tokio::test]
async fn edits_that_never_stop_are_told_at_the_latest_after_max_wait_and_edits_before_the_first_email_are_in_it() {
    let overrides = vec![("recap_changes.quiet_minutes", json!(10)), ("recap_changes.max_wait_minutes", json!(20))];
    let app = TestApp::spawn_with(Options { overrides, ..Options::default() }).await;
    let (_, mut p) = recap_sent(&app).await;
    // An edit every five minutes for half an hour: the quiet period never comes, the latest does.
    for n in 0..6 {
        p["commitments"][2]["text"] = json!(format!("Dedicated success manager, {} hours a month", n + 1));
        assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
        minutes(&app, 5).await;
    }
    let told = kinds(&app.mails_to(REP)).iter().filter(|k| *k == "recap_changed").count();
    assert_eq!(told, 1, "once, 20 minutes after the first edit");
    app.stop().await;
}

#[tokio::test]
async fn the_call_page_marks_what_is_new_since_the_rep_last_opened_it() {
    let app = TestApp::spawn().await;
    let (_, mut p) = recap_sent(&app).await;
    let link = call_link(&app.mails_to(REP)[0]);
    let first = get(&app, &link).await;
    assert_eq!(first.status, 200);
    assert!(!first.html.contains("id=\"changed\""), "nothing changed yet");

    p["commitments"][0]["deliver_by"] = json!("2026-12-20");
    assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
    minutes(&app, 11).await;
    let changes_before = app.count("audit_log").await;
    let again = get(&app, &link).await;
    assert!(again.html.contains("New since you last opened this page"), "{}", again.html);
    assert!(again.html.contains("Commitment moved: SAML SSO configured with Okta: Thu 10 Dec 2026 → Sun 20 Dec 2026"), "{}", again.html);
    assert_eq!(app.count("audit_log").await, changes_before, "opening the page writes nothing");
    // Opened once more: nothing is new.
    let third = get(&app, &link).await;
    assert!(!third.html.contains("id=\"changed\""), "{}", third.html);
    // Someone who never opened it (another browser) sees the change as new.
    let stranger = reqwest::Client::new().get(app.url(&link)).send().await.unwrap().text().await.unwrap();
    assert!(stranger.contains("New since you last opened this page"));
    app.stop().await;
}
