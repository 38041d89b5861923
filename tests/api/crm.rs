//! The CRM connectors in the whole pipe: a won deal's webhook → the pull from the CRM (a fake
//! HubSpot, Pipedrive or Salesforce serving its documented endpoints) → the recap → the email,
//! on the test database (PostgreSQL, or SQLite with `FIRSTCALL_TEST_DB=sqlite`).

use chrono::TimeDelta;
use serde_json::{Value, json};
use testkit::crm::SampleDeal;
use testkit::crm::hubspot::FakeHubSpot;
use testkit::crm::pipedrive::FakePipedrive;
use testkit::crm::salesforce::FakeSalesforce;

use crate::helpers::*;

/// The HubSpot deal of the `closed_won_batch.json` fixture.
const HUBSPOT_DEAL: &str = "1246965";
/// The Salesforce opportunity of `closed_won.xml`.
const SALESFORCE_DEAL: &str = "0065e00000Bq3ZtAAJ";
/// The Pipedrive deal of `deal_won_v2.json`.
const PIPEDRIVE_DEAL: u64 = 746;

fn sample() -> SampleDeal {
    SampleDeal::acme(monday_morning() - TimeDelta::days(1))
}

async fn app_with(overrides: Vec<(&'static str, Value)>) -> TestApp {
    TestApp::spawn_with(Options { overrides, ..Options::default() }).await
}

/// The settings of an app whose HubSpot connector reads `fake`, with the reconciler asking every
/// `reconcile_minutes` (0: off; the webhook tests follow the webhooks alone).
fn hubspot_settings(fake: &FakeHubSpot, reconcile_minutes: u32) -> Vec<(&'static str, Value)> {
    vec![
        ("crm.hubspot.token", json!(testkit::crm::hubspot::TOKEN)),
        ("crm.hubspot.base_url", json!(fake.server.base_url)),
        ("crm.hubspot.requests_per_second", json!(50)),
        // So that HubSpot's amount changes are applied (they carry no currency).
        ("webhooks.hubspot.default_currency", json!("USD")),
        ("crm.reconcile_interval_minutes", json!(reconcile_minutes)),
    ]
}

/// A fake HubSpot holding `deal` (if any), and an app reading it.
async fn hubspot_with(deal: Option<&SampleDeal>, reconcile_minutes: u32) -> (TestApp, FakeHubSpot) {
    let fake = FakeHubSpot::start().await;
    if let Some(deal) = deal {
        fake.put_deal(HUBSPOT_DEAL, deal);
    }
    let app = app_with(hubspot_settings(&fake, reconcile_minutes)).await;
    (app, fake)
}

async fn hubspot(deal: &SampleDeal) -> (TestApp, FakeHubSpot) {
    hubspot_with(Some(deal), 0).await
}

/// With the reconciler on.
async fn hubspot_reconciling(deal: &SampleDeal) -> (TestApp, FakeHubSpot) {
    hubspot_with(Some(deal), 15).await
}

/// A fake Salesforce org holding `deal`, and an app reading it.
async fn salesforce(deal: &SampleDeal) -> (TestApp, FakeSalesforce) {
    let fake = FakeSalesforce::start().await;
    fake.put_deal(SALESFORCE_DEAL, deal);
    let app = app_with(vec![
        ("crm.salesforce.client_id", json!(testkit::crm::salesforce::CLIENT_ID)),
        ("crm.salesforce.client_secret", json!(testkit::crm::salesforce::CLIENT_SECRET)),
        ("crm.salesforce.base_url", json!(fake.server.base_url)),
        ("crm.salesforce.requests_per_second", json!(50)),
        ("crm.reconcile_interval_minutes", json!(0)),
    ])
    .await;
    (app, fake)
}

async fn post_hubspot_won(app: &TestApp) {
    let ts = app.now().timestamp_millis();
    let r = app.post_hubspot(&fixture("hubspot/closed_won_batch.json"), HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The mails whose subject starts with `prefix` (the fixtures' deals were won in March, so the
/// calls are overdue at once and escalations go out beside them).
fn mails_titled(app: &TestApp, prefix: &str) -> Vec<testkit::mail::ParsedMail> {
    app.mails().into_iter().filter(|m| m.subject.as_deref().is_some_and(|s| s.starts_with(prefix))).collect()
}

/// What every CRM's recap of the sample deal must show.
fn assert_recap_of_the_sample_deal(text: &str) {
    for expected in [
        "Single sign-on through Okta",
        "SAML SSO with the Okta connector",
        "Move five years of bookings off the old scheduler",
        "Dana Whitfield",
        "Priya Raman",
        "Pricing for 120 seats",
        "Security review with Priya",
        "Proposal walkthrough",
        "COULD NOT READ",
        "#promise migrate by end of March: Migration service",
    ] {
        assert!(text.contains(expected), "the recap lacks {expected:?}:\n{text}");
    }
    // The email's body is never quoted in the recap; only its subject is a step.
    assert!(!text.contains("the pricing you asked for is attached"), "{text}");
}

#[tokio::test]
async fn a_hubspot_deal_won_reaches_its_owner_with_the_crms_story_in_the_recap() {
    let (app, fake) = hubspot(&sample()).await;
    post_hubspot_won(&app).await;
    // The webhook names no owner: the call starts at the sales-ops inbox, waiting for the CRM.
    assert_eq!(app.calls().await[0]["rep_email"], "sales-ops@seller.example");
    app.settle().await;

    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1, "one recap, sent as soon as the CRM answered, not after the wait");
    let mail = &mails[0];
    assert_eq!(mail.to[0].address, "ana@seller.example", "the deal owner in HubSpot gets the call");
    let text = mail.text.clone().unwrap();
    assert_recap_of_the_sample_deal(&text);
    assert!(text.contains("420.00"), "the line items' prices: {text}");
    assert!(!text.contains("had not answered"), "{text}");
    let call = &app.calls().await[0];
    assert_eq!(call["rep_email"], "ana@seller.example");
    // The deal's line items are what was ordered (HubSpot's webhook carries none).
    let recap = app.get_json(&format!("/api/v1/calls/{}/recap", call["id"])).await;
    let ordered: Vec<(String, f64)> = recap["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap().to_string(), l["ordered"]["quantity"].as_f64().unwrap_or(0.0)))
        .collect();
    assert_eq!(ordered, [("PRO-SEAT".to_string(), 120.0), ("SSO-ADDON".to_string(), 1.0)], "{recap}");
    // The owners API, the deal, its associations and records were read; nothing was refused.
    assert!(!fake.server.requests_to("/crm/v3/owners/").is_empty());
    assert_eq!(fake.server.throttled(), 0);

    // The rep marks the call done: the outcome goes back to the deal as a HubSpot note.
    let r = complete(&app, &call["id"], json!({"outcome": "aligned", "notes": "Dana confirmed the SSO date."})).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let notes = fake.created_notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].deals, [HUBSPOT_DEAL]);
    assert!(notes[0].body.contains("First call after the order: done (aligned)"), "{}", notes[0].body);
    assert!(notes[0].body.contains("Dana confirmed the SSO date."), "{}", notes[0].body);
    app.stop().await;
}

#[tokio::test]
async fn the_rep_directorys_crm_id_overrides_the_owners_email_in_the_crm() {
    let (app, _fake) = hubspot(&sample()).await;
    // Ana works under another address in firstcall's directory, found by her HubSpot owner id.
    let rep = json!({"name": "Ana Lima", "timezone": "Europe/Lisbon", "crm_ids": {"hubspot": "5501"}});
    let r = app.put_rep("ana.lima@seller.example", &rep).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    post_hubspot_won(&app).await;
    app.settle().await;
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to[0].address, "ana.lima@seller.example");
    app.stop().await;
}

#[tokio::test]
async fn a_later_change_to_the_deal_is_read_again_and_sent_as_a_short_update() {
    let mut deal = sample();
    let (app, fake) = hubspot(&deal).await;
    post_hubspot_won(&app).await;
    app.settle().await;
    assert_eq!(mails_titled(&app, "First call with").len(), 1);

    // The rep notes a new requirement in HubSpot, and the deal's amount changes (a webhook).
    deal.notes.push(testkit::crm::SampleNote { at: deal.won_at, body: "<p>#need audit should: Export of the audit log to S3</p>".into() });
    fake.put_deal(HUBSPOT_DEAL, &deal);
    let ts = app.now().timestamp_millis();
    let r = app.post_hubspot(&fixture("hubspot/amount_change.json"), HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let updates = mails_titled(&app, "Recap update");
    assert_eq!(updates.len(), 1);
    let text = updates[0].text.clone().unwrap();
    assert!(text.contains("New requirement: Export of the audit log to S3 (should)"), "{text}");
    assert!(!text.contains("Single sign-on through Okta"), "only what changed: {text}");

    // The same deal read again (another change of the amount) changes nothing, and sends nothing.
    let body =
        String::from_utf8(fixture("hubspot/amount_change.json")).unwrap().replace("3816280200", "3816280201").replace("52000.5", "52100");
    let r = app.post_hubspot(body.as_bytes(), HUBSPOT_SECRET, ts).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.count("jobs WHERE kind = 'crm.enrich'").await, 1, "the deal is read again");
    app.settle().await;
    assert_eq!(mails_titled(&app, "Recap update").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_recap_compares_what_was_ordered_in_hubspot_with_the_quote() {
    let deal = sample();
    let (app, fake) = hubspot(&deal).await;
    // The quote proposed 100 seats at a lower price, and no SSO add-on.
    let seats =
        testkit::crm::SampleLineItem { sku: "PRO-SEAT".into(), name: "Pro seat (annual)".into(), quantity: 100.0, price: "400.00".into() };
    fake.put_quote(HUBSPOT_DEAL, "Acme - 100 seats", deal.won_at - TimeDelta::days(15), &[seats]);
    post_hubspot_won(&app).await;
    app.settle().await;
    let recap = app.get_json(&format!("/api/v1/calls/{}/recap", app.calls().await[0]["id"])).await;
    let items: Vec<(String, String, bool)> = recap["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap().into(), l["status"].as_str().unwrap().into(), l["quantity_changed"].as_bool().unwrap()))
        .collect();
    assert_eq!(items, [("PRO-SEAT".into(), "changed".into(), true), ("SSO-ADDON".into(), "added".into(), false)], "{recap}");
    app.stop().await;
}

#[tokio::test]
async fn when_the_crm_is_down_the_recap_goes_on_time_and_the_crms_story_follows_as_a_short_update() {
    let mut deal = sample();
    deal.owner = None;
    let (app, fake) = hubspot(&deal).await;
    fake.server.set_down(true);
    post_hubspot_won(&app).await;
    app.settle().await;
    assert!(app.mails().is_empty(), "the first email waits for the CRM up to crm.enrich_wait_secs");

    // The wait is over: the recap goes with what is on file, and says why it is thin.
    app.advance_and_settle(TimeDelta::seconds(121), TimeDelta::seconds(30)).await;
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1);
    let first = mails[0].text.clone().unwrap();
    assert!(first.contains("HubSpot had not answered when this was sent"), "{first}");
    assert!(first.contains("503"), "the reason is given: {first}");
    assert!(!first.contains("Single sign-on through Okta"), "{first}");

    // HubSpot is back: the engine's retry reads the deal, and the rep gets only what changed.
    fake.server.set_down(false);
    app.advance_and_settle(TimeDelta::minutes(10), TimeDelta::seconds(30)).await;
    let updates = mails_titled(&app, "Recap update");
    assert_eq!(updates.len(), 1, "one short update: {:?}", app.mails().iter().map(|m| m.subject.clone()).collect::<Vec<_>>());
    let update = updates[0].text.clone().unwrap();
    assert!(update.contains("New requirement: Single sign-on through Okta"), "{update}");
    assert!(update.contains("Decision maker on file: Dana Whitfield"), "{update}");
    assert!(update.contains("Could not read \"#promise migrate by end of March: Migration service\""), "{update}");
    assert!(!update.contains("REQUIREMENTS AND COMMITMENTS"), "a short update, not a second full recap: {update}");
    assert_eq!(mails_titled(&app, "First call with").len(), 1, "the full recap went once");
    // The call page shows the whole recap as it is now.
    let recap = app.get_json(&format!("/api/v1/calls/{}/recap", app.calls().await[0]["id"])).await;
    assert_eq!(recap["unreadable"][0]["line"], "#promise migrate by end of March: Migration service");
    app.stop().await;
}

#[tokio::test]
async fn a_deal_the_crm_does_not_have_is_recorded_and_the_recap_goes_at_once() {
    let (app, _fake) = hubspot_with(None, 0).await;
    post_hubspot_won(&app).await;
    app.settle().await;
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1, "the CRM answered that it has no such deal: nothing to wait for");
    assert!(!mails[0].text.clone().unwrap().contains("had not answered"));
    let history = app.column("SELECT action FROM audit_log WHERE entity = 'call' ORDER BY id").await;
    assert!(history.contains(&"crm_not_found".to_string()), "{history:?}");
    assert_eq!(app.count("jobs WHERE kind = 'crm.enrich'").await, 0, "not retried");
    app.stop().await;
}

#[tokio::test]
async fn proposal_data_pushed_through_the_api_wins_over_the_crms() {
    let (app, _fake) = hubspot(&sample()).await;
    let mut body = proposal("ana@seller.example");
    body["requirements"] = json!([{"id": "sso", "text": "SSO through Azure AD, as agreed in the contract", "priority": "must"}]);
    body["commitments"] = json!([]);
    assert!(app.put_proposal("hubspot", HUBSPOT_DEAL, &body).await.status().is_success());
    post_hubspot_won(&app).await;
    app.settle().await;
    let text = mails_titled(&app, "First call with")[0].text.clone().unwrap();
    assert!(text.contains("SSO through Azure AD, as agreed in the contract"), "{text}");
    assert!(!text.contains("Single sign-on through Okta"), "the API's `sso` replaces the CRM's: {text}");
    assert!(text.contains("Move five years of bookings"), "the CRM's other requirements stay: {text}");
    app.stop().await;
}

#[tokio::test]
async fn a_pipedrive_deal_won_reaches_its_owner_with_the_crms_story_in_the_recap() {
    let fake = FakePipedrive::start().await;
    fake.put_deal(PIPEDRIVE_DEAL, &sample());
    let app = app_with(vec![
        ("crm.pipedrive.api_token", json!(testkit::crm::pipedrive::TOKEN)),
        ("crm.pipedrive.base_url", json!(fake.server.base_url)),
        ("crm.pipedrive.requests_per_second", json!(50)),
        ("crm.reconcile_interval_minutes", json!(0)),
    ])
    .await;
    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to[0].address, "ana@seller.example");
    assert_recap_of_the_sample_deal(&mails[0].text.clone().unwrap());
    assert_eq!(fake.server.throttled(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_salesforce_opportunity_won_reaches_its_owner_with_the_crms_story_in_the_recap() {
    let (app, _fake) = salesforce(&sample()).await;
    assert_eq!(app.post_salesforce(&fixture("salesforce/closed_won.xml")).await.status(), 200);
    app.settle().await;
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1);
    // The outbound message names the owner's email itself: the order's word on the rep wins.
    assert_eq!(mails[0].to[0].address, "ana.silva@example.com");
    assert_recap_of_the_sample_deal(&mails[0].text.clone().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn a_won_deal_whose_webhook_never_came_is_found_by_the_reconciler() {
    let (app, fake) = hubspot_reconciling(&sample()).await;
    // No webhook: the reconciler's first question, planned at start-up, finds the deal.
    app.settle().await;
    let calls = app.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["deal_id"], HUBSPOT_DEAL);
    let mails = mails_titled(&app, "First call with");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to[0].address, "ana@seller.example");
    assert_recap_of_the_sample_deal(&mails[0].text.clone().unwrap());
    assert!(!fake.server.requests_to("/crm/v3/objects/deals/search").is_empty());
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(API_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"crm_reconciled_total{source="hubspot",outcome="opened"} 1"#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_deal_found_by_its_webhook_and_by_the_reconciler_has_one_call() {
    let (app, _fake) = hubspot_reconciling(&sample()).await;
    post_hubspot_won(&app).await;
    app.settle().await;
    // The reconciler asks again every 15 minutes and finds the same deal each time.
    app.advance_and_settle(TimeDelta::minutes(35), TimeDelta::minutes(5)).await;
    assert_eq!(app.calls().await.len(), 1);
    assert_eq!(mails_titled(&app, "First call with").len(), 1);
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(API_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"crm_reconciled_total{source="hubspot",outcome="known"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"crm_reconciled_total{source="hubspot",outcome="opened"} 0"#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn the_reconcilers_cursor_is_kept_in_the_database_and_moves_to_the_newest_deal_seen() {
    let deal = sample();
    let (app, fake) = hubspot_reconciling(&deal).await;
    app.settle().await;
    // The next question is planned with its cursor at the newest modification seen (less a few
    // minutes of overlap): a restart finds it there and resumes from it.
    let cursor = app.column("SELECT CAST(payload AS TEXT) FROM jobs WHERE kind = 'crm.reconcile'").await;
    assert_eq!(cursor.len(), 1, "{cursor:?}");
    let cursor: Value = serde_json::from_str(&cursor[0]).unwrap();
    let since: chrono::DateTime<chrono::Utc> = serde_json::from_value(cursor["since"].clone()).unwrap();
    assert_eq!(since, deal.won_at - TimeDelta::minutes(5), "{cursor}");
    // A restart: another process starts on the same database and plans the reconciler's first
    // question (from 48 hours back) unless one is planned: the planned one keeps its cursor.
    let config = test_config(app.db.url(), app.smtp.port(), &Options { overrides: hubspot_settings(&fake, 15), ..Options::default() });
    let services = firstcall::startup::Services { http: true, engine: false, mailer: false };
    let clock: firstcall::clock::SharedClock = app.clock.clone();
    let restarted = firstcall::startup::Application::build(config, clock, services).await.unwrap().spawn();
    restarted.stop().await;
    let after = app.column("SELECT CAST(payload AS TEXT) FROM jobs WHERE kind = 'crm.reconcile'").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(serde_json::from_str::<Value>(&after[0]).unwrap(), cursor, "the cursor survives the restart");
    // A second deal won later is found by the next question, and only it is new.
    let mut later = sample();
    later.won_at = app.now();
    fake.put_deal("1246999", &later);
    app.advance_and_settle(TimeDelta::minutes(16), TimeDelta::minutes(4)).await;
    let deals: Vec<String> = app.calls().await.iter().map(|c| c["deal_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(deals.len(), 2, "{deals:?}");
    assert!(deals.contains(&"1246999".to_string()));
    app.stop().await;
}

async fn pipedrive_app(deal: &SampleDeal) -> (TestApp, FakePipedrive) {
    let fake = FakePipedrive::start().await;
    fake.put_deal(PIPEDRIVE_DEAL, deal);
    let app = app_with(vec![
        ("crm.pipedrive.api_token", json!(testkit::crm::pipedrive::TOKEN)),
        ("crm.pipedrive.base_url", json!(fake.server.base_url)),
        ("crm.pipedrive.requests_per_second", json!(50)),
        ("crm.reconcile_interval_minutes", json!(0)),
    ])
    .await;
    (app, fake)
}

async fn complete(app: &TestApp, id: &Value, body: Value) -> reqwest::Response {
    app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn a_call_marked_done_is_recorded_on_the_pipedrive_deal_with_its_outcome_and_notes() {
    let (app, fake) = pipedrive_app(&sample()).await;
    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let id = app.calls().await[0]["id"].clone();
    let r = complete(&app, &id, json!({"outcome": "adjusted", "notes": "Moved SSO to February; Dana agreed & signed off."})).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let notes = fake.added_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let content = notes[0]["content"].as_str().unwrap();
    assert_eq!(notes[0]["deal_id"], json!(PIPEDRIVE_DEAL));
    assert!(content.contains("First call after the order: done (expectations adjusted)"), "{content}");
    assert!(content.contains("Moved SSO to February; Dana agreed &amp; signed off."), "{content}");
    assert!(content.contains(&format!("/calls/{id}")), "a link to the call page: {content}");
    let history = app.column(&format!("SELECT action FROM audit_log WHERE entity = 'call' AND entity_id = {id} ORDER BY id")).await;
    assert_eq!(history.last().map(String::as_str), Some("written_to_crm"), "{history:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_call_cancelled_with_its_order_is_recorded_on_the_pipedrive_deal() {
    let (app, fake) = pipedrive_app(&sample()).await;
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await.status(), 200);
    app.settle().await;
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_lost_v2.json"), PIPEDRIVE_AUTH).await.status(), 200);
    app.settle().await;
    assert_eq!(app.calls().await[0]["state"], "cancelled");
    let notes = fake.added_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0]["content"].as_str().unwrap().contains("cancelled (the order was cancelled)"), "{notes:?}");
    app.stop().await;
}

#[tokio::test]
async fn marking_done_never_waits_for_the_crm_and_a_write_that_keeps_failing_is_retried_from_the_dashboard() {
    let (app, fake) = salesforce(&sample()).await;
    assert_eq!(app.post_salesforce(&fixture("salesforce/closed_won.xml")).await.status(), 200);
    app.settle().await;
    let id = app.calls().await[0]["id"].clone();
    // Salesforce goes down: marking done still answers at once.
    fake.server.set_down(true);
    let r = complete(&app, &id, json!({"outcome": "at_risk", "notes": "Expects SSO in January; we promised February."})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "done");
    // The engine keeps asking for hours, then leaves the write on the dashboard with Retry.
    app.advance_and_settle(TimeDelta::hours(10), TimeDelta::minutes(10)).await;
    assert!(fake.created_tasks().is_empty());
    let dead = app.get_json("/api/v1/jobs?state=dead").await["jobs"].as_array().unwrap().clone();
    let job = dead.iter().find(|j| j["kind"] == "crm.write_back").unwrap_or_else(|| panic!("{dead:?}"));
    assert!(job["last_error"].as_str().unwrap().contains("503"), "{job}");
    // Sales ops see it on the dashboard, named, and retry it there once Salesforce is back.
    fake.server.set_down(false);
    assert_eq!(crate::pages::log_in(&app, API_TOKEN).await.status, 303);
    let board = crate::pages::get(&app, "/").await;
    assert!(board.html.contains(&format!("id=\"retry-job-{}\"", job["id"])), "{}", board.html);
    assert!(board.html.contains("outcome on the CRM deal"), "{}", board.html);
    let retry = format!("/dashboard/jobs/{}/retry", job["id"]);
    let r = crate::pages::post_form(&app.client, &app, &retry, &[("csrf", &board.csrf())]).await;
    assert_eq!(r.status, 303);
    app.settle().await;
    let tasks = fake.created_tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["WhatId"], SALESFORCE_DEAL);
    assert_eq!(tasks[0]["Status"], "Completed");
    assert!(tasks[0]["Subject"].as_str().unwrap().contains("at risk"), "{tasks:?}");
    assert!(tasks[0]["Description"].as_str().unwrap().contains("Expects SSO in January"), "{tasks:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_check_in_answer_is_recorded_on_the_pipedrive_deal() {
    let (app, fake) = pipedrive_app(&sample()).await;
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await.status(), 200);
    app.settle().await;
    let id = app.calls().await[0]["id"].clone();
    assert_eq!(complete(&app, &id, json!({"outcome": "aligned"})).await.status(), 200);
    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    assert!(!promises.is_empty(), "the #promise lines of the deal's notes are promises");
    for p in &promises {
        let r = app.api(reqwest::Method::POST, &format!("/api/v1/promises/{}/delivered", p["id"])).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/check-in"))
        .json(&json!({"answer": "unhappy", "note": "Migration ran two weeks late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.settle().await;
    let notes = fake.added_notes();
    assert_eq!(notes.len(), 2, "the call done and the check-in: {notes:?}");
    // Both writes were due at once; the CRM may get them in either order.
    let content =
        notes.iter().filter_map(|n| n["content"].as_str()).find(|c| c.contains("Check-in")).unwrap_or_else(|| panic!("{notes:?}"));
    assert!(content.contains("Check-in after delivery: the customer is unhappy"), "{content}");
    assert!(content.contains("Migration ran two weeks late"), "{content}");
    app.stop().await;
}
