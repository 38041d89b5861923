//! The promise ledger: a call marked done turns the proposal's commitments into promises,
//! each reminded to its owner ahead of its date in the owner's timezone, until it is delivered,
//! slipped to a new date or dropped.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const ONBOARDING: &str = "oona@seller.example";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The rep in UTC, the onboarding manager in New York; the proposal names the onboarding manager
/// as the owner of the SSO promise (due Thursday 10 December). The call is marked done at once.
async fn done_deal(app: &TestApp) -> Vec<Value> {
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "UTC"})).await.status(), 200);
    assert_eq!(app.put_rep(ONBOARDING, &json!({"name": "Oona Onboarding", "timezone": "America/New_York"})).await.status(), 200);
    let mut p = proposal(REP);
    p["commitments"][0]["owner"] = json!(ONBOARDING);
    assert!(app.put_proposal("generic", "D-1", &p).await.status().is_success());
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.settle().await;
    let listed = app.get_json("/api/v1/promises").await;
    listed["promises"].as_array().unwrap().clone()
}

fn promise_mails(app: &TestApp, to: &str) -> Vec<testkit::mail::ParsedMail> {
    app.mails_to(to).into_iter().filter(|m| m.message_id.as_deref().is_some_and(|id| id.starts_with("promise-"))).collect()
}

/// Moves the clock to `t` (nothing is due on the way), then runs what is due.
async fn jump_to(app: &TestApp, t: DateTime<Utc>) {
    app.advance(t - app.now());
    app.settle().await;
}

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.api(reqwest::Method::POST, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn done_makes_promises_reminded_at_lead_times_in_the_owners_timezone_until_delivered() {
    let app = TestApp::spawn().await;
    let promises = done_deal(&app).await;
    assert_eq!(promises.len(), 3, "one per commitment: {promises:?}");
    let sso = &promises[0];
    assert_eq!(sso["text"], "SAML SSO configured with Okta");
    assert_eq!(sso["owner_email"], ONBOARDING, "the commitment names its owner");
    assert_eq!(sso["deliver_by"], "2026-12-10");
    assert_eq!(sso["need_by"], "2026-12-15", "the customer's date of the requirement it answers");
    assert_eq!(sso["must_have"], true);
    assert_eq!(sso["covers"], json!(["R1"]));
    assert_eq!(sso["state"], "open");
    assert_eq!(promises[1]["owner_email"], REP, "the rep by default");
    assert_eq!(promises[1]["must_have"], false);
    assert!(promises[2]["deliver_by"].is_null(), "an undated promise is kept too");
    let sso_id = sso["id"].as_i64().unwrap();

    // Five business days before Thursday 10 December is Thursday 3 December, at 09:00 in New
    // York (14:00 UTC): nothing at 09:00 UTC or 13:30 UTC.
    jump_to(&app, utc("2026-12-03T09:30:00Z")).await;
    app.advance_and_settle(TimeDelta::hours(4), TimeDelta::minutes(30)).await;
    assert!(promise_mails(&app, ONBOARDING).is_empty(), "not before 09:00 in the owner's timezone");
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let first = promise_mails(&app, ONBOARDING);
    assert_eq!(first.len(), 1, "one reminder at 14:00 UTC");
    let m = &first[0];
    assert_eq!(m.subject.as_deref(), Some("Due in 7 days: your promise to Acme Corp (must-have)"));
    let text = m.text.as_deref().unwrap();
    assert!(text.contains("Hi Oona Onboarding"), "{text}");
    assert!(text.contains("SAML SSO configured with Okta") && text.contains("Thu 10 Dec 2026"), "{text}");
    assert!(text.contains("Single sign-on with Okta") && text.contains("needs it by Tue 15 Dec 2026"), "{text}");
    assert!(text.contains("#promises"), "the call page's promises: {text}");
    assert!(m.html.as_deref().unwrap().contains("Mark it on the call page"));
    assert!(promise_mails(&app, REP).is_empty(), "the rep's own promises are due in February");
    // Its link opens the call page at the promises, where it is marked; opening it changes nothing.
    let audit = app.count("audit_log").await;
    let page = app.client.get(app.url(&call_link(m))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("id=\"deliver-{sso_id}\"")) && html.contains("SAML SSO configured with Okta"), "{html}");
    assert_eq!(app.count("audit_log").await, audit, "a GET of the link changes nothing");

    // One business day before: Wednesday 9 December, 09:00 New York.
    jump_to(&app, utc("2026-12-09T13:30:00Z")).await;
    assert_eq!(promise_mails(&app, ONBOARDING).len(), 1);
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let second = promise_mails(&app, ONBOARDING);
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].subject.as_deref(), Some("Due tomorrow: your promise to Acme Corp (must-have)"));

    // Delivered: no reminder on the day, nor after.
    let (status, body) = post(&app, &format!("/api/v1/promises/{sso_id}/delivered"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "delivered");
    assert!(body["closed_at"].is_string());
    app.advance_and_settle(TimeDelta::days(3), TimeDelta::hours(1)).await;
    assert_eq!(promise_mails(&app, ONBOARDING).len(), 2, "nothing after delivery");
    // Delivered again: the same answer, nothing changes.
    let (status, again) = post(&app, &format!("/api/v1/promises/{sso_id}/delivered"), None).await;
    assert_eq!((status, &again["closed_at"]), (200, &body["closed_at"]));
    let closed = app.get_json("/api/v1/promises?state=closed").await;
    assert_eq!(closed["promises"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().len(), 2, "two still open");
    app.stop().await;
}

#[tokio::test]
async fn a_slip_moves_the_reminders_a_drop_stops_them_and_bad_marks_change_nothing() {
    let app = TestApp::spawn().await;
    let promises = done_deal(&app).await;
    let (sso, connector, manager) =
        (promises[0]["id"].as_i64().unwrap(), promises[1]["id"].as_i64().unwrap(), promises[2]["id"].as_i64().unwrap());

    for (body, field, says) in [
        (json!({"reason": "Okta tenant not ready"}), "deliver_by", "is required"),
        (json!({"deliver_by": "10/01/2027", "reason": "x"}), "deliver_by", "is not a date"),
        (json!({"deliver_by": "2026-12-09", "reason": "x"}), "deliver_by", "is not later"),
        (json!({"deliver_by": "2027-01-08"}), "reason", "is required"),
        (json!({"deliver_by": "2027-01-08", "reason": "x", "why": "y"}), "why", "is not a known field"),
    ] {
        let (status, b) = post(&app, &format!("/api/v1/promises/{sso}/slip"), Some(body.clone())).await;
        assert_eq!(status, 422, "{body} -> {b}");
        assert_eq!(b["error"]["field"], field, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(says), "{b}");
    }
    assert_eq!(post(&app, "/api/v1/promises/999999/delivered", None).await.0, 404);
    assert_eq!(app.get_json("/api/v1/promises").await["promises"][0]["state"], "open", "a refused mark changes nothing");

    // Slipped to Friday 8 January: the December reminders are gone, the January ones come.
    let (status, b) =
        post(&app, &format!("/api/v1/promises/{sso}/slip"), Some(json!({"deliver_by": "2027-01-08", "reason": "Okta tenant not ready"})))
            .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (b["state"].as_str(), b["deliver_by"].as_str(), b["agreed_deliver_by"].as_str()),
        (Some("slipped"), Some("2027-01-08"), Some("2026-12-10"))
    );
    assert_eq!(b["reason"], "Okta tenant not ready");
    jump_to(&app, utc("2026-12-11T00:00:00Z")).await;
    assert!(promise_mails(&app, ONBOARDING).is_empty(), "no reminder for the old date");
    // Five business days before 8 January: Friday 1 January 2027, 09:00 New York.
    jump_to(&app, utc("2027-01-01T13:30:00Z")).await;
    assert!(promise_mails(&app, ONBOARDING).is_empty());
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let january = promise_mails(&app, ONBOARDING);
    assert_eq!(january.len(), 1, "the new date's first reminder");
    assert!(
        january[0].text.as_deref().unwrap().contains("Fri 8 Jan 2027")
            && january[0].text.as_deref().unwrap().contains("Okta tenant not ready")
    );

    // Dropped, with a reason; dropped again changes nothing; delivered after that is refused.
    let (status, b) = post(&app, &format!("/api/v1/promises/{manager}/drop"), Some(json!({"reason": "Customer chose self-serve"}))).await;
    assert_eq!((status, b["state"].as_str()), (200, Some("dropped")), "{b}");
    assert_eq!(
        post(&app, &format!("/api/v1/promises/{manager}/drop"), Some(json!({"reason": "again"}))).await.1["reason"],
        "Customer chose self-serve"
    );
    let (status, b) = post(&app, &format!("/api/v1/promises/{manager}/delivered"), None).await;
    assert_eq!(status, 409, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("is dropped already"), "{b}");

    // A reminder written to the outbox and not yet sent when its promise is delivered is not sent.
    jump_to(&app, utc("2027-01-25T08:30:00Z")).await;
    app.advance(TimeDelta::hours(1));
    app.run_jobs().await;
    let queued = format!("SELECT state FROM emails WHERE kind = 'promise_reminder' AND to_addr = '{REP}'");
    assert_eq!(app.column(&queued).await, vec!["pending"], "the connector's first reminder is written");
    let (status, _) = post(&app, &format!("/api/v1/promises/{connector}/delivered"), None).await;
    assert_eq!(status, 200);
    app.deliver().await;
    assert!(promise_mails(&app, REP).is_empty(), "a delivered promise's reminder is not sent");
    assert_eq!(
        app.column("SELECT last_error FROM emails WHERE kind = 'promise_reminder' AND state = 'skipped'").await,
        vec!["promise is delivered"]
    );

    // Filters.
    let mine = app.get_json(&format!("/api/v1/promises?state=all&owner={ONBOARDING}")).await;
    assert_eq!(mine["promises"].as_array().unwrap().len(), 1);
    let r = app.api(reqwest::Method::GET, "/api/v1/promises?state=late").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["message"].as_str().unwrap().contains("unknown state 'late'"), "{b}");
    app.stop().await;
}

#[tokio::test]
async fn promises_page_with_a_cursor_and_an_owner_that_is_not_an_address_is_refused() {
    let app = TestApp::spawn().await;
    done_deal(&app).await;
    let first = app.get_json("/api/v1/promises?state=all&limit=2").await;
    assert_eq!(first["promises"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = app.get_json(&format!("/api/v1/promises?state=all&limit=2&cursor={cursor}")).await;
    assert_eq!(second["promises"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    assert_ne!(second["promises"][0]["id"], first["promises"][1]["id"]);
    for (query, param) in [("owner=not-an-address", "owner"), ("cursor=abc", "cursor"), ("limit=0", "limit")] {
        let r = app.api(reqwest::Method::GET, &format!("/api/v1/promises?{query}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["field"], param, "{b}");
    }
    // A commitment's owner must be an email address.
    let mut p = proposal(REP);
    p["commitments"][0]["owner"] = json!("onboarding team");
    let r = app.put_proposal("generic", "D-2", &p).await;
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["field"], "commitments[0].owner", "{b}");
    app.stop().await;
}

const MANAGER: &str = "mo@seller.example";
const DIRECTOR: &str = "dee@seller.example";

fn subjects(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.subject.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn an_overdue_promise_is_reminded_each_working_morning_and_escalates_up_its_owners_chain() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.put_rep(MANAGER, &json!({"name": "Mo Manager", "timezone": "America/New_York", "manager_email": DIRECTOR})).await.status(),
        200
    );
    assert_eq!(app.put_rep(DIRECTOR, &json!({"name": "Dee Director", "timezone": "America/New_York"})).await.status(), 200);
    let promises = done_deal(&app).await;
    assert_eq!(
        app.put_rep(ONBOARDING, &json!({"name": "Oona Onboarding", "timezone": "America/New_York", "manager_email": MANAGER}))
            .await
            .status(),
        200
    );
    let sso = promises[0]["id"].as_i64().unwrap();
    app.advance_and_settle(utc("2026-12-10T20:00:00Z") - app.now(), TimeDelta::hours(6)).await;
    assert_eq!(promise_mails(&app, ONBOARDING).len(), 3, "5 and 1 business days before, and on the day");

    // Due Thursday 10 December in New York: overdue from midnight there (05:00 UTC); the
    // schedule's first step is 8 hours overdue (13:00 UTC), to the owner's manager.
    app.advance_and_settle(utc("2026-12-11T12:30:00Z") - app.now(), TimeDelta::minutes(30)).await;
    assert!(promise_mails(&app, MANAGER).is_empty(), "not before 8 hours overdue");
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let to_manager = promise_mails(&app, MANAGER);
    assert_eq!(subjects(&to_manager), ["Overdue by 1 day: Oona Onboarding's promise to Acme Corp (must-have)"]);
    let text = to_manager[0].text.as_deref().unwrap();
    assert!(text.contains("Hi Mo Manager") && text.contains("SAML SSO configured with Okta"), "{text}");
    // Friday 09:00 New York: the owner's first overdue reminder.
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let to_owner = promise_mails(&app, ONBOARDING);
    assert_eq!(to_owner.len(), 4);
    assert_eq!(to_owner[3].subject.as_deref(), Some("Overdue by 1 day: your promise to Acme Corp (must-have)"));
    // 48 hours overdue (Sunday 05:00 UTC): the manager's manager; no reminder on the weekend.
    app.advance_and_settle(utc("2026-12-13T06:00:00Z") - app.now(), TimeDelta::hours(1)).await;
    assert_eq!(subjects(&promise_mails(&app, DIRECTOR)), ["Overdue by 3 days: Oona Onboarding's promise to Acme Corp (must-have)"]);
    assert_eq!(promise_mails(&app, ONBOARDING).len(), 4, "weekends are not working days");
    assert_eq!(promise_mails(&app, MANAGER).len(), 1, "each step once");
    // Monday morning: another reminder; then delivered, and nothing more.
    jump_to(&app, utc("2026-12-14T15:00:00Z")).await;
    assert_eq!(promise_mails(&app, ONBOARDING).len(), 5);
    assert_eq!(post(&app, &format!("/api/v1/promises/{sso}/delivered"), None).await.0, 200);
    app.advance_and_settle(TimeDelta::days(4), TimeDelta::hours(2)).await;
    assert_eq!([ONBOARDING, MANAGER, DIRECTOR].map(|a| promise_mails(&app, a).len()), [5, 1, 1], "nothing after delivery");
    app.stop().await;
}

#[tokio::test]
async fn a_slip_past_the_customers_date_a_must_have_dropped_and_a_call_at_risk_alert_the_reps_manager() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "UTC", "manager_email": MANAGER})).await.status(), 200);
    assert_eq!(app.put_rep(MANAGER, &json!({"name": "Mo Manager", "timezone": "UTC"})).await.status(), 200);
    assert!(app.put_proposal("generic", "D-1", &proposal(REP)).await.status().is_success());
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"))
        .json(&json!({"outcome": "at_risk", "notes": "Okta tenant belongs to the parent company"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.settle().await;
    let alerts = app.mails_to(MANAGER);
    assert_eq!(subjects(&alerts), ["The first call with Acme Corp was marked at risk"]);
    let text = alerts[0].text.as_deref().unwrap();
    assert!(
        text.contains("Okta tenant belongs to the parent company") && text.contains("Single sign-on with Okta"),
        "notes and recap: {text}"
    );

    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    let (sso, connector) = (promises[0]["id"].as_i64().unwrap(), promises[1]["id"].as_i64().unwrap());
    // Still before the customer's date (15 December): no alert.
    let slip = |to: &str| json!({"deliver_by": to, "reason": "Okta admin on leave"});
    assert_eq!(post(&app, &format!("/api/v1/promises/{sso}/slip"), Some(slip("2026-12-14"))).await.0, 200);
    app.settle().await;
    assert_eq!(app.mails_to(MANAGER).len(), 1);
    // Past it: the manager hears at once, with what changed.
    assert_eq!(post(&app, &format!("/api/v1/promises/{sso}/slip"), Some(slip("2026-12-18"))).await.0, 200);
    app.settle().await;
    let alerts = app.mails_to(MANAGER);
    assert_eq!(
        alerts[1].subject.as_deref(),
        Some("A promise to Acme Corp slipped past the date the customer needs it by (Tue 15 Dec 2026)")
    );
    let text = alerts[1].text.as_deref().unwrap();
    assert!(text.contains("New date: Fri 18 Dec 2026 (was Mon 14 Dec 2026)") && text.contains("Why: Okta admin on leave"), "{text}");
    // Dropping a should-have is the rep's call; dropping a must-have is the manager's business.
    assert_eq!(post(&app, &format!("/api/v1/promises/{connector}/drop"), Some(json!({"reason": "Out of scope"}))).await.0, 200);
    app.settle().await;
    assert_eq!(app.mails_to(MANAGER).len(), 2);
    assert_eq!(post(&app, &format!("/api/v1/promises/{sso}/drop"), Some(json!({"reason": "Customer moves to Azure AD"}))).await.0, 200);
    app.settle().await;
    let alerts = app.mails_to(MANAGER);
    assert_eq!(subjects(&alerts[2..]), ["A promise to Acme Corp that answers a must-have was dropped"]);
    assert!(alerts[2].text.as_deref().unwrap().contains("Why: Customer moves to Azure AD"));
    app.stop().await;
}

#[tokio::test]
async fn dates_agreed_on_the_call_and_promises_made_on_it_are_kept_and_a_bad_one_keeps_the_call_open() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "UTC"})).await.status(), 200);
    assert!(app.put_proposal("generic", "D-1", &proposal(REP)).await.status().is_success());
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let complete = |body: Value| {
        let app = &app;
        async move { post(app, &format!("/api/v1/calls/{id}/complete"), Some(body)).await }
    };
    for (body, field, says) in [
        (json!({"outcome": "aligned", "dates": {"C1": "2026-12-18"}}), "outcome", "choose adjusted"),
        (json!({"outcome": "adjusted", "dates": {"C9": "2026-12-18"}}), "dates.C9", "no commitment with this id (it has C1, C2, C3)"),
        (json!({"outcome": "adjusted", "dates": {"C1": "18 Dec"}}), "dates.C1", "is not a date"),
        (json!({"outcome": "adjusted", "added": [{"deliver_by": "2026-12-04"}]}), "added[0].text", "is required"),
        (json!({"outcome": "adjusted", "added": [{"text": "Weekly call", "owner": "ops team"}]}), "added[0].owner", ""),
    ] {
        let (status, b) = complete(body.clone()).await;
        assert_eq!(status, 422, "{body} -> {b}");
        assert_eq!(b["error"]["field"], field, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(says), "{b}");
    }
    assert_eq!(app.calls().await[0]["state"], "due", "a refused completion leaves the call open");
    assert!(app.get_json("/api/v1/promises?state=all").await["promises"].as_array().unwrap().is_empty());

    let (status, b) = complete(json!({
        "outcome": "adjusted",
        "dates": {"C1": "2026-12-18", "C2": "2027-02-01"},
        "added": [{"text": "Weekly check-in call during rollout", "deliver_by": "2026-12-04", "owner": ONBOARDING}]
    }))
    .await;
    assert_eq!(status, 200, "{b}");
    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    assert_eq!(promises.len(), 4);
    assert_eq!(
        (promises[0]["deliver_by"].as_str(), promises[0]["agreed_deliver_by"].as_str()),
        (Some("2026-12-18"), Some("2026-12-18")),
        "the date agreed on the call"
    );
    assert_eq!(promises[1]["deliver_by"], "2027-02-01", "the same date as the proposal's is no change");
    let added = &promises[3];
    assert_eq!(
        (added["text"].as_str(), added["deliver_by"].as_str(), added["owner_email"].as_str()),
        (Some("Weekly check-in call during rollout"), Some("2026-12-04"), Some(ONBOARDING))
    );
    assert!(added["commitment_id"].is_null());
    let moved = app
        .column(&format!(
            "SELECT actor FROM audit_log WHERE entity = 'promise' AND entity_id = {} AND action = 'promised'",
            promises[0]["id"]
        ))
        .await;
    assert_eq!(moved, vec!["api"], "who set the date is audited");
    let detail = app
        .column(&format!("SELECT CAST(detail AS TEXT) FROM audit_log WHERE entity = 'promise' AND entity_id = {}", promises[0]["id"]))
        .await;
    let detail: Value = serde_json::from_str(&detail[0]).unwrap();
    assert_eq!(detail["proposal_deliver_by"], "2026-12-10", "what the proposal said: {detail}");
    app.stop().await;
}

#[tokio::test]
async fn every_promise_delivered_brings_a_check_in_whose_answer_is_kept() {
    let app = TestApp::spawn().await;
    let promises = done_deal(&app).await;
    let call = promises[0]["call_id"].as_i64().unwrap();
    let answer = |body: Value| {
        let app = &app;
        async move { post(app, &format!("/api/v1/calls/{call}/check-in"), Some(body)).await }
    };
    let (status, b) = answer(json!({"answer": "satisfied"})).await;
    assert_eq!(status, 409, "no check-in while promises are open: {b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("once every promise of the call is delivered"), "{b}");
    let ids: Vec<i64> = promises.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(post(&app, &format!("/api/v1/promises/{}/delivered", ids[0]), None).await.0, 200);
    assert_eq!(post(&app, &format!("/api/v1/promises/{}/drop", ids[2]), Some(json!({"reason": "Not needed after all"}))).await.0, 200);
    assert!(app.get_json(&format!("/api/v1/calls/{call}")).await["check_in"].is_null(), "one is still open");
    assert_eq!(post(&app, &format!("/api/v1/promises/{}/delivered", ids[1]), None).await.0, 200);
    // Seven days after the last delivery, at the start of the rep's business day.
    let detail = app.get_json(&format!("/api/v1/calls/{call}")).await;
    assert_eq!(detail["check_in"]["due_at"], "2026-11-30T09:00:00Z", "{detail}");
    assert!(detail["check_in"]["sent_at"].is_null());

    let check_ins = |app: &TestApp| {
        app.mails_to(REP).into_iter().filter(|m| m.subject.as_deref().is_some_and(|s| s.starts_with("Check in"))).collect::<Vec<_>>()
    };
    jump_to(&app, utc("2026-11-30T08:30:00Z")).await;
    assert!(check_ins(&app).is_empty());
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let mails = check_ins(&app);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject.as_deref(), Some("Check in with Acme Corp: every promise is delivered"));
    let text = mails[0].text.as_deref().unwrap();
    assert!(text.contains("Delivered Mon 23 Nov 2026, promised for Thu 10 Dec 2026: SAML SSO configured with Okta"), "{text}");
    assert!(text.contains("Dropped Mon 23 Nov 2026: Dedicated success manager (why: Not needed after all)"), "{text}");
    assert!(text.contains("Now call Dana Decider (CFO)") && text.contains("#check-in"), "{text}");

    let (status, b) = answer(json!({"answer": "thrilled"})).await;
    assert_eq!((status, b["error"]["field"].as_str()), (422, Some("answer")), "{b}");
    let (status, b) = answer(json!({"answer": "mixed", "note": "SSO was great; the connector came late"})).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!((b["answer"].as_str(), b["answered_by"].as_str()), (Some("mixed"), Some("api")));
    let (status, again) = answer(json!({"answer": "satisfied"})).await;
    assert_eq!((status, again["answer"].as_str()), (200, Some("mixed")), "the first answer stays");
    let detail = app.get_json(&format!("/api/v1/calls/{call}")).await;
    assert_eq!(detail["check_in"]["note"], "SSO was great; the connector came late");
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(API_TOKEN).send().await.unwrap().text().await.unwrap();
    for line in [
        "firstcall_promises{state=\"delivered\"} 2",
        "firstcall_promises{state=\"dropped\"} 1",
        "firstcall_promises{state=\"open\"} 0",
        "firstcall_promise_marks_total{state=\"delivered\"} 2",
        "firstcall_check_in_answers_total{answer=\"mixed\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    app.advance_and_settle(TimeDelta::days(10), TimeDelta::hours(6)).await;
    assert_eq!(check_ins(&app).len(), 1, "one check-in");
    app.stop().await;
}
