//! Retention: the engine removes old data after the days configured in `[retention]`, a batch
//! at a time; nothing an open call needs goes, and a CRM's redelivery of an event inside the
//! event window is still recognised as a duplicate.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";

fn retention(batch_size: u32) -> Options {
    Options {
        overrides: vec![
            ("webhooks.max_event_age_days", json!(30)),
            ("retention.sent_email_bodies_days", json!(30)),
            ("retention.webhook_events_days", json!(40)),
            ("retention.dead_jobs_days", json!(30)),
            ("retention.orders_never_won_days", json!(60)),
            ("retention.batch_size", json!(batch_size)),
            ("retention.interval_minutes", json!(60)),
        ],
        ..Options::default()
    }
}

async fn posted(r: reqwest::Response) -> Value {
    let status = r.status();
    let b: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {b}");
    b
}

async fn complete(app: &TestApp, id: i64) {
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

fn call_of(calls: &[Value], deal: &str) -> i64 {
    calls.iter().find(|c| c["deal_id"] == deal).unwrap_or_else(|| panic!("no call for {deal}"))["id"].as_i64().unwrap()
}

/// A timer that fails at once (it names no call) and is dead after its one attempt, then made
/// to look as if it were about `call` (an operator would see it beside that call).
async fn dead_job_about(app: &TestApp, call: i64) {
    let bad = firstcall::engine::NewJob { kind: firstcall::engine::JobKind::CallStart, subject_id: None, payload: None, run_at: app.now() };
    firstcall::engine::enqueue(&app.state.db, bad, 1, app.now()).await.unwrap();
    app.settle().await;
    app.exec(&format!("UPDATE jobs SET subject_id = {call} WHERE state = 'dead' AND subject_id IS NULL")).await;
}

#[tokio::test]
async fn old_data_goes_after_its_days_and_what_an_open_call_needs_stays() {
    let app = TestApp::spawn_with(retention(500)).await;
    let t0 = app.now();
    app.put_proposal("generic", "D-OPEN", &proposal(REP)).await;
    // Won deals: one stays open, one is done, one was won and then lost.
    for deal in ["D-OPEN", "D-DONE", "D-LOST"] {
        posted(app.post_generic(&order_created(&format!("e-{deal}"), deal, REP, t0)).await).await;
    }
    app.settle().await;
    posted(app.post_generic(&order_event("c-D-LOST", "order.cancelled", "D-LOST", t0, json!({}))).await).await;
    // Deals never won: one only updated, one lost without ever being won.
    posted(app.post_generic(&order_event("u-D-PIPE", "order.updated", "D-PIPE", t0, json!({"amount": "10.00", "currency": "USD"}))).await)
        .await;
    posted(app.post_generic(&order_event("c-D-GONE", "order.cancelled", "D-GONE", t0, json!({}))).await).await;
    app.settle().await;
    let calls = app.calls().await;
    let (open, done, lost) = (call_of(&calls, "D-OPEN"), call_of(&calls, "D-DONE"), call_of(&calls, "D-LOST"));
    complete(&app, done).await;
    dead_job_about(&app, open).await;
    dead_job_about(&app, done).await;

    // 35 days on, a deal moves in the pipeline: its event is 26 days old at the end.
    app.clock.set(t0 + TimeDelta::days(35));
    let recent = order_event("u-D-NEW", "order.updated", "D-NEW", app.now(), json!({"amount": "20.00", "currency": "USD"}));
    posted(app.post_generic(&recent).await).await;
    app.settle().await;

    app.clock.set(t0 + TimeDelta::days(61));
    app.settle().await;

    // Emails of closed calls lose their text; the open call's keep it, whatever their age.
    for (id, removed) in [(done, true), (lost, true), (open, false)] {
        let detail = app.get_json(&format!("/api/v1/calls/{id}")).await;
        let emails = detail["emails"].as_array().unwrap();
        assert!(!emails.is_empty(), "call {id} has emails");
        for e in emails {
            assert_eq!(e["body_removed_at"].is_string(), removed, "call {id}: {e}");
        }
    }
    let open_bodies = app.column(&format!("SELECT body_text FROM emails WHERE call_id = {open} AND kind = 'first_call'")).await;
    assert!(open_bodies[0].contains("Single sign-on with Okta"), "the open call's recap is kept whole");
    let done_bodies = app.column(&format!("SELECT body_text FROM emails WHERE call_id = {done}")).await;
    assert!(done_bodies.iter().all(String::is_empty), "{done_bodies:?}");
    let page = app.api(reqwest::Method::GET, &format!("/calls/{done}")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("text removed after 30 days"), "the call page says why the text is gone");

    // Orders of deals never won go after 60 untouched days; a won deal's order stays.
    let deals = app.column("SELECT deal_id FROM orders ORDER BY deal_id").await;
    assert_eq!(deals, ["D-DONE", "D-LOST", "D-NEW", "D-OPEN"]);
    assert_eq!(app.calls().await.len(), 3, "no call is removed");

    // Events older than 40 days are gone; the recent one is still a duplicate when redelivered.
    assert_eq!(app.column("SELECT dedupe_key FROM webhook_events").await, ["u-D-NEW"]);
    assert_eq!(posted(app.post_generic(&recent).await).await["events"][0]["outcome"], "duplicate");
    assert_eq!(app.count("webhook_events").await, 1);
    // A removed event, redelivered, is outside the event window and refused: it cannot apply twice.
    let old = app.post_generic(&order_created("e-D-OPEN", "D-OPEN", REP, t0)).await;
    assert_eq!(old.status(), 422);

    // Dead timers go after 30 days unless their call is still open.
    let dead = app.get_json("/api/v1/jobs?state=dead").await;
    let dead: Vec<i64> = dead["jobs"].as_array().unwrap().iter().map(|j| j["call_id"].as_i64().unwrap()).collect();
    assert_eq!(dead, [open]);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivery_inside_the_event_window_is_a_duplicate_whatever_the_retention_days() {
    let mut opts = retention(500);
    opts.overrides.push(("retention.webhook_events_days", json!(1)));
    let app = TestApp::spawn_with(opts).await;
    let t0 = app.now();
    let event = order_event("u-1", "order.updated", "D-1", t0, json!({"amount": "10.00", "currency": "USD"}));
    posted(app.post_generic(&event).await).await;
    app.settle().await;

    // 20 days is past the configured day but inside the 30-day event window: the event is kept.
    app.clock.set(t0 + TimeDelta::days(20));
    app.settle().await;
    assert_eq!(posted(app.post_generic(&event).await).await["events"][0]["outcome"], "duplicate");
    assert_eq!(app.count("webhook_events").await, 1);

    // Past the window (and the day of leeway for events dated ahead), it goes.
    app.clock.set(t0 + TimeDelta::days(32));
    app.settle().await;
    assert_eq!(app.count("webhook_events").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn retention_works_in_batches_until_everything_old_is_gone() {
    let app = TestApp::spawn_with(retention(2)).await;
    let t0 = app.now();
    for deal in ["D-1", "D-2", "D-3"] {
        posted(app.post_generic(&order_created(&format!("e-{deal}"), deal, REP, t0)).await).await;
    }
    for n in 1..=5 {
        let deal = format!("P-{n}");
        posted(app.post_generic(&order_event(&format!("u-{deal}"), "order.updated", &deal, t0, json!({}))).await).await;
    }
    app.settle().await;
    for c in app.calls().await {
        complete(&app, c["id"].as_i64().unwrap()).await;
    }
    assert_eq!((app.count("webhook_events").await, app.count("orders").await, app.count("emails").await), (8, 8, 3));
    let removed = "emails WHERE body_removed_at IS NOT NULL";

    app.clock.set(t0 + TimeDelta::days(61));
    assert_eq!(app.engine.run_batch().await.unwrap(), 1, "one sweep is due");
    assert_eq!(app.count("webhook_events").await, 6, "two events per run");
    assert_eq!(app.count(removed).await, 2, "two email texts per run");

    // A full batch brings the next run within seconds; the rest goes over the next runs.
    let mut runs = 1;
    while app.count("webhook_events").await > 0 || app.count("orders").await > 3 || app.count(removed).await < 3 {
        assert!(runs < 10, "retention keeps making progress");
        app.advance(TimeDelta::seconds(1));
        assert_eq!(app.engine.run_batch().await.unwrap(), 1, "the sweep runs again soon after a full batch");
        runs += 1;
    }
    assert_eq!(app.column("SELECT deal_id FROM orders ORDER BY deal_id").await, ["D-1", "D-2", "D-3"]);

    // Once nothing old is left (the walk through the orders may take a run more to see it), the
    // sweep waits for its interval.
    let mut waits = false;
    for _ in 0..3 {
        app.advance(TimeDelta::seconds(1));
        app.run_jobs().await;
        let pending = app.get_json("/api/v1/jobs?state=pending").await;
        let sweeps: Vec<&Value> = pending["jobs"].as_array().unwrap().iter().filter(|j| j["kind"] == "retention.sweep").collect();
        assert_eq!(sweeps.len(), 1, "one sweep planned: {pending}");
        let next = chrono::DateTime::parse_from_rfc3339(sweeps[0]["run_at"].as_str().unwrap()).unwrap();
        if next > app.now() + TimeDelta::minutes(59) {
            assert!(next <= app.now() + TimeDelta::minutes(60), "{next}");
            waits = true;
            break;
        }
    }
    assert!(waits, "the sweep waits for its interval once nothing is left");
    assert_eq!(app.column("SELECT deal_id FROM orders ORDER BY deal_id").await, ["D-1", "D-2", "D-3"]);
    app.stop().await;
}

#[tokio::test]
async fn a_stored_event_is_never_removed_before_it_is_applied() {
    let mut opts = retention(500);
    opts.overrides.push(("retention.webhook_events_days", json!(1)));
    let app = TestApp::spawn_with(opts).await;
    let t0 = app.now();
    let raw = serde_json::to_vec(&order_created("e-1", "D-1", REP, t0)).unwrap();
    assert_eq!(app.send_generic_raw(&raw, GENERIC_SECRET, t0.timestamp()).await.status(), 200);
    // No engine applied it (say, no worker ran for a month); the retention sweep runs alone.
    app.clock.set(t0 + TimeDelta::days(32));
    let mut steps = 0;
    while app.engine.run_batch().await.unwrap() > 0 {
        steps += 1;
    }
    assert!(steps > 0, "the sweep ran");
    assert_eq!(app.column("SELECT outcome FROM webhook_events").await, ["pending"]);
    // Applied, it is old data like any other, and the next sweep removes it.
    assert_eq!(app.apply_events().await, 1);
    assert_eq!(app.count("calls").await, 1);
    app.advance(TimeDelta::hours(2));
    app.settle().await;
    assert_eq!(app.count("webhook_events").await, 0);
    app.stop().await;
}
