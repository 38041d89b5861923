//! The first-call workflow end to end: recap and invite at once, reminders on the schedule,
//! escalation up the manager chain, done/cancel/reassign, and the engine's guarantees (leases,
//! backoff to dead, exactly-once steps with several engines).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const MANAGER: &str = "mo@seller.example";
const DIRECTOR: &str = "dee@seller.example";

async fn directory(app: &TestApp, rep_tz: &str) {
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": rep_tz, "manager_email": MANAGER})).await.status(), 200);
    assert_eq!(app.put_rep(MANAGER, &json!({"name": "Mo Manager", "timezone": rep_tz, "manager_email": DIRECTOR})).await.status(), 200);
    assert_eq!(app.put_rep(DIRECTOR, &json!({"name": "Dee Director", "timezone": rep_tz})).await.status(), 200);
}

fn kinds(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.message_id.clone().unwrap_or_default().split('.').nth(1).unwrap_or("").to_string()).collect()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn order_to_recap_reminders_escalation_and_done() {
    let app = TestApp::spawn().await;
    directory(&app, "UTC").await;
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;

    // At once: the recap with the invite, to the rep.
    let first = app.mails_to(REP);
    assert_eq!(first.len(), 1);
    let m = &first[0];
    assert!(m.subject.as_deref().unwrap().contains("Acme Corp"), "{:?}", m.subject);
    assert!(m.text.as_deref().unwrap().contains("Single sign-on with Okta"));
    assert!(m.html.as_deref().unwrap().contains("Single sign-on with Okta"));
    let cal = m.calendar.as_ref().expect("an invite");
    assert_eq!(cal.method.as_deref(), Some("REQUEST"));
    assert!(cal.body.contains("SEQUENCE:0"));
    assert!(m.attachments.iter().any(|a| a.filename.as_deref() == Some("invite.ics")));
    let call = &app.calls().await[0];
    assert_eq!(call["state"], "due");
    // 4 business hours after Monday 09:00 UTC.
    assert_eq!(call["due_at"], "2026-11-23T13:00:00Z");

    // Monday: reminder at 14:00 (overdue), escalation to the manager 8 hours overdue (21:00).
    app.advance_and_settle(TimeDelta::hours(13), TimeDelta::minutes(30)).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call", "reminder"]);
    let to_manager = app.mails_to(MANAGER);
    assert_eq!(kinds(&to_manager), vec!["escalation"]);
    assert!(to_manager[0].text.as_deref().unwrap().contains("Ana Ávila"), "the manager learns whose call is late");
    assert!(app.mails_to(DIRECTOR).is_empty());

    // Wednesday 13:00 is 48 hours overdue: the manager's manager.
    app.advance_and_settle(TimeDelta::hours(41), TimeDelta::minutes(30)).await;
    assert_eq!(kinds(&app.mails_to(DIRECTOR)), vec!["escalation"]);
    assert_eq!(app.mails_to(MANAGER).len(), 1, "each step fires once");
    let reminders = kinds(&app.mails_to(REP)).iter().filter(|k| *k == "reminder").count();
    assert_eq!(reminders, 5, "Mon 14, Tue 9 and 14, Wed 9 and 14... up to Wed 13:00 (Wed 14:00 not yet)");

    // Done: no more mail, ever.
    let id = call["id"].as_i64().unwrap();
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"))
        .json(&json!({"outcome": "adjusted", "notes": "Reset SSO date"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = app.mails().len();
    app.advance_and_settle(TimeDelta::days(7), TimeDelta::hours(1)).await;
    assert_eq!(app.mails().len(), before);
    let detail = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_eq!(detail["state"], "done");
    assert_eq!(detail["outcome"], "adjusted");
    assert!(detail["timers"].as_array().unwrap().is_empty(), "no timer left: {detail}");
    app.stop().await;
}

#[tokio::test]
async fn a_completion_with_an_unknown_field_is_refused_and_the_call_stays_open() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"))
        .json(&json!({"outcome": "aligned", "note": "All good"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "invalid");
    assert_eq!(b["error"]["field"], "note", "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("did you mean `notes`?"), "{b}");
    let detail = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_ne!(detail["state"], "done", "{detail}");
    assert!(detail["outcome"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn marking_done_twice_is_harmless_and_a_cancelled_call_cannot_be_done() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let done = |outcome: &'static str| {
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": outcome})).send()
    };
    assert_eq!(done("aligned").await.unwrap().status(), 200);
    let again = done("at_risk").await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["outcome"], "aligned", "the first outcome stays");
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "great"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        app.api(reqwest::Method::POST, "/api/v1/calls/999999/complete").json(&json!({"outcome": "aligned"})).send().await.unwrap().status(),
        404
    );

    app.post_generic(&order_created("e2", "D-2", REP, app.now())).await;
    app.post_generic(&order_event("c2", "order.cancelled", "D-2", app.now(), json!({}))).await;
    let cancelled = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-2").unwrap();
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{}/complete", cancelled["id"]))
        .json(&json!({"outcome": "aligned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn due_times_follow_the_reps_timezone_and_calendar() {
    let app = TestApp::spawn_with(Options { start: utc("2026-11-27T20:00:00Z"), ..Options::default() }).await;
    // Friday 15:00 in New York: 2 business hours left on Friday, 2 on Monday.
    directory(&app, "America/New_York").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    assert_eq!(app.calls().await[0]["due_at"], "2026-11-30T16:00:00Z");
    // A rep in Sydney, where the working day crosses midnight UTC.
    app.put_rep("syd@seller.example", &json!({"name": "Sy", "timezone": "Australia/Sydney"})).await;
    app.post_generic(&order_created("e2", "D-2", "syd@seller.example", app.now())).await;
    let syd = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-2").unwrap();
    // Saturday 07:00 in Sydney: Monday 09:00 AEDT (Sunday 22:00 UTC) + 4 hours.
    assert_eq!(syd["due_at"], "2026-11-30T02:00:00Z");
    app.stop().await;
}

#[tokio::test]
async fn due_times_and_reminders_skip_holidays_and_follow_a_dst_change() {
    // Friday 12 March 2027, 15:00 in New York (EST, UTC-5). Clocks go forward on Sunday the 14th,
    // and Monday the 15th is a holiday in the config.
    let app = TestApp::spawn_with(Options {
        start: utc("2027-03-12T20:00:00Z"),
        overrides: vec![("defaults.holidays", json!(["2027-03-15"]))],
        ..Options::default()
    })
    .await;
    directory(&app, "America/New_York").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Two business hours on Friday, none on the holiday, two on Tuesday: 11:00 EDT (UTC-4).
    assert_eq!(app.calls().await[0]["due_at"], "2027-03-16T15:00:00Z");
    // The next reminder is Tuesday 09:00 local, on the summer offset.
    let pending = app.get_json("/api/v1/jobs?state=pending").await;
    let remind = pending["jobs"].as_array().unwrap().iter().find(|j| j["kind"] == "call.remind").expect("a reminder planned").clone();
    assert_eq!(remind["run_at"], "2027-03-16T13:00:00Z");
    app.stop().await;
}

#[tokio::test]
async fn reminders_fire_in_the_reps_timezone_inside_business_hours() {
    let app = TestApp::spawn().await;
    directory(&app, "Asia/Tokyo").await;
    // Monday 09:00 UTC is 18:00 in Tokyo: after hours. Due Tuesday 13:00 JST (04:00 UTC).
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert_eq!(app.calls().await[0]["due_at"], "2026-11-24T04:00:00Z");
    app.advance_and_settle(TimeDelta::hours(24), TimeDelta::minutes(15)).await;
    let reminders: Vec<_> = app.mails_to(REP).into_iter().filter(|m| m.message_id.as_deref().unwrap().contains(".reminder.")).collect();
    // Tuesday 09:00 and 14:00 JST = 00:00 and 05:00 UTC.
    assert_eq!(reminders.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_order_withdraws_the_invite_and_stops_reminders() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.advance(TimeDelta::hours(1));
    app.post_generic(&order_event("c1", "order.cancelled", "D-1", app.now(), json!({}))).await;
    app.settle().await;
    let mails = app.mails_to(REP);
    assert_eq!(kinds(&mails), vec!["first_call", "cancellation"]);
    let cal = mails[1].calendar.as_ref().expect("a calendar cancellation");
    assert_eq!(cal.method.as_deref(), Some("CANCEL"));
    assert!(cal.body.contains("SEQUENCE:1"));
    let uid = |body: &str| body.lines().find(|l| l.starts_with("UID:")).unwrap().to_string();
    assert_eq!(uid(&cal.body), uid(&mails[0].calendar.as_ref().unwrap().body), "the same event is cancelled");
    app.advance_and_settle(TimeDelta::days(5), TimeDelta::hours(1)).await;
    assert_eq!(app.mails().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_reassigned_deal_moves_the_call_invite_and_reminders() {
    let app = TestApp::spawn().await;
    let bo = "bo@seller.example";
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.advance(TimeDelta::minutes(30));
    app.post_generic(&order_event("u1", "order.updated", "D-1", app.now(), json!({"rep_email": bo}))).await;
    app.settle().await;
    let old = app.mails_to(REP);
    assert_eq!(kinds(&old), vec!["first_call", "reassigned"]);
    assert_eq!(old[1].calendar.as_ref().unwrap().method.as_deref(), Some("CANCEL"));
    let new = app.mails_to(bo);
    assert_eq!(kinds(&new), vec!["first_call"]);
    assert!(new[0].calendar.as_ref().unwrap().body.contains("SEQUENCE:1"));
    assert_eq!(app.calls().await[0]["rep_email"], bo);
    app.advance_and_settle(TimeDelta::hours(6), TimeDelta::minutes(30)).await;
    assert_eq!(app.mails_to(REP).len(), 2, "the old rep gets nothing more");
    assert!(kinds(&app.mails_to(bo)).contains(&"reminder".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_already_queued_is_not_sent_once_the_call_is_done() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.clock.set(utc("2026-11-23T14:00:00Z"));
    assert!(app.run_jobs().await > 0, "the reminder step ran and queued its mail");
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    app.deliver().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"]);
    let skipped = app.get_json("/api/v1/emails?state=skipped").await;
    assert_eq!(skipped["emails"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_step_claimed_when_the_call_is_marked_done_sends_nothing() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.clock.set(utc("2026-11-23T14:00:00Z"));
    // A worker claims the due reminder...
    let lease = firstcall::engine::claim_due(&app.state.db, "worker-a", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
    assert!(lease.rows.iter().any(|j| j.kind == "call.remind"));
    // ...the rep marks the call done meanwhile...
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    // ...then the worker runs its step.
    app.engine.execute(lease).await.unwrap();
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"]);
    app.stop().await;
}

#[tokio::test]
async fn a_worker_that_dies_mid_job_loses_its_lease_and_the_step_runs_once() {
    let app = TestApp::spawn().await;
    app.run_jobs().await; // the retention sweep planned at start-up runs, then waits an hour
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    // A worker claims the first step and dies without finishing it.
    let lease = firstcall::engine::claim_due(&app.state.db, "dead-worker", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
    assert_eq!(lease.rows.len(), 1);
    assert_eq!(app.run_jobs().await, 0, "the lease holds while it is valid");
    app.advance_with_leases(TimeDelta::seconds(61)).await;
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"]);
    // The dead worker wakes up and tries to finish: its lease is gone, nothing is committed.
    app.engine.execute(lease).await.unwrap();
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"], "the step ran exactly once");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_step_backs_off_and_ends_dead_until_retried() {
    let app = TestApp::spawn_with(Options {
        overrides: vec![("engine.max_attempts", json!(4)), ("engine.retry_base_secs", json!(10))],
        ..Options::default()
    })
    .await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    let call_id = app.calls().await[0]["id"].as_i64().unwrap();
    // A first step that names no call: it fails every time.
    let _ = call_id;
    let bad = firstcall::engine::NewJob { kind: firstcall::engine::JobKind::CallStart, subject_id: None, payload: None, run_at: app.now() };
    firstcall::engine::enqueue(&app.state.db, bad, 4, app.now()).await.unwrap();
    let mut run_ats = Vec::new();
    for _ in 0..10 {
        app.settle().await;
        let pending = app.get_json("/api/v1/jobs?state=pending").await;
        match pending["jobs"].as_array().unwrap().iter().find(|j| j["kind"] == "call.start") {
            Some(j) => {
                let at: DateTime<Utc> = serde_json::from_value(j["run_at"].clone()).unwrap();
                run_ats.push(at);
                app.clock.set(at);
            }
            None => break,
        }
    }
    let gaps: Vec<i64> = run_ats.windows(2).map(|w| (w[1] - w[0]).num_seconds()).collect();
    assert_eq!(run_ats.len(), 3, "three retries after the first failure: {run_ats:?}");
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "backoff grows: {gaps:?}");
    let dead = app.get_json("/api/v1/jobs?state=dead").await;
    let job = dead["jobs"].as_array().unwrap().iter().find(|j| j["kind"] == "call.start").expect("dead job").clone();
    assert_eq!(job["attempts"], 4);
    assert!(job["last_error"].as_str().unwrap().contains("needs a call"), "{job}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("firstcall_jobs_dead 1"), "{metrics}");
    let r = app.api(reqwest::Method::POST, &format!("/api/v1/jobs/{}/retry", job["id"])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.get_json("/api/v1/jobs?state=pending").await["jobs"].as_array().unwrap().iter().any(|j| j["id"] == job["id"]));
    app.stop().await;
}

#[tokio::test]
async fn two_engines_on_one_database_run_every_step_exactly_once() {
    let app = TestApp::spawn_with(Options { overrides: vec![("engine.batch_size", json!(50))], ..Options::default() }).await;
    app.run_jobs().await; // the retention sweep planned at start-up runs, then waits an hour
    let events: Vec<_> = (0..1000).map(|i| order_created(&format!("e{i}"), &format!("D-{i}"), REP, app.now())).collect();
    let raw = serde_json::to_vec(&events).unwrap();
    assert_eq!(app.post_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await.status(), 200);
    // A second engine process on the same database.
    let other = app.another_process(&Options::default()).await;
    // Engine A holds a lease on a batch; engine B, running meanwhile, must skip it and take the rest.
    let lease = firstcall::engine::claim_due(&app.state.db, "engine-a", app.now(), chrono::TimeDelta::seconds(300), 50).await.unwrap();
    assert_eq!(lease.rows.len(), 50);
    let b = other.engine.run_due().await.unwrap();
    assert_eq!(b, 950, "engine B ran every step but the ones engine A holds");
    app.engine.execute(lease).await.unwrap();
    // Then both race over another thousand.
    let events: Vec<_> = (1000..2000).map(|i| order_created(&format!("e{i}"), &format!("D-{i}"), REP, app.now())).collect();
    let raw = serde_json::to_vec(&events).unwrap();
    assert_eq!(app.post_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await.status(), 200);
    let (a, b) = tokio::join!(app.engine.run_due(), other.engine.run_due());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 1000, "each of the 1000 first steps claimed once ({a} + {b})");
    // Every call got exactly one recap mail in the outbox.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mails = entity::emails::Entity::find().filter(entity::emails::Column::Kind.eq("first_call")).all(&app.state.db).await.unwrap();
    let mut per_call: HashMap<i64, usize> = HashMap::new();
    for m in mails {
        *per_call.entry(m.call_id.unwrap()).or_default() += 1;
    }
    assert_eq!(per_call.len(), 2000);
    assert!(per_call.values().all(|n| *n == 1));
    app.stop().await;
}

#[tokio::test]
async fn a_loop_holding_a_large_batch_does_not_hide_the_next_due_job_from_the_others() {
    use firstcall::engine::{self as queue, JobKind, NewJob};
    let engine = queue::enqueue_many;
    let app = TestApp::spawn().await;
    let now = app.now();
    let job = |secs: i64| NewJob { kind: JobKind::Noop, subject_id: None, payload: None, run_at: now + TimeDelta::seconds(secs) };
    // A backlog of 120 jobs due now, then one due in 30 s.
    engine(&app.state.db, (0..120).map(|_| job(0)).chain([job(30)]), 4, now).await.unwrap();
    assert_eq!(queue::next_due_at(&app.state.db, now).await.unwrap(), Some(now));
    // One loop takes 100 of the backlog: the 20 it left are still due now for the other loops,
    // which must not sleep until its lease runs out.
    let held = queue::claim_due(&app.state.db, "loop-a", now, TimeDelta::seconds(60), 100).await.unwrap();
    assert_eq!(held.rows.len(), 100);
    assert_eq!(queue::next_due_at(&app.state.db, now).await.unwrap(), Some(now));
    // Once the rest is held too, the next one is the job due in 30 s, not a lease's end.
    queue::claim_due(&app.state.db, "loop-b", now, TimeDelta::seconds(60), 100).await.unwrap();
    assert_eq!(queue::next_due_at(&app.state.db, now).await.unwrap(), Some(now + TimeDelta::seconds(30)));
    // A lease that ran out makes its jobs due again.
    app.advance_with_leases(TimeDelta::seconds(61)).await;
    assert_eq!(queue::next_due_at(&app.state.db, app.now()).await.unwrap(), Some(now));
    app.stop().await;
}

#[tokio::test]
async fn the_engines_step_that_writes_nothing_completes_as_a_step_under_its_lease() {
    use firstcall::engine::{self as queue, JobKind, NewJob};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn().await;
    app.run_jobs().await; // the jobs planned at start-up run, then wait
    let now = app.now();
    let job = NewJob { kind: JobKind::NoopStep, subject_id: None, payload: None, run_at: now };
    queue::enqueue_many(&app.state.db, [job.clone(), job], 4, now).await.unwrap();
    let left = || async {
        entity::jobs::Entity::find().filter(entity::jobs::Column::Kind.eq(JobKind::NoopStep)).all(&app.state.db).await.unwrap()
    };
    // A worker claims both and stalls past its lease; another takes them over.
    let stale = queue::claim_due(&app.state.db, "stale", now, TimeDelta::seconds(60), 10).await.unwrap();
    assert_eq!(stale.rows.len(), 2);
    app.advance_with_leases(TimeDelta::seconds(61)).await;
    let fresh = queue::claim_due(&app.state.db, "fresh", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
    assert_eq!(fresh.rows.len(), 2);
    // The stale worker completes nothing; the one holding the lease completes both, without error.
    app.engine.execute(stale).await.unwrap();
    let held = left().await;
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|j| j.last_error.is_none()), "{held:?}");
    app.engine.execute(fresh).await.unwrap();
    assert!(left().await.is_empty(), "{:?}", left().await);
    app.stop().await;
}

#[tokio::test]
async fn end_to_end_with_the_real_clock_and_a_seconds_cron() {
    let schedules = json!([{
        "name": "fast",
        "due_within_business_hours": 1,
        "reminder_cron": "*/2 * * * * *",
        "business_hours": {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
    }]);
    let app = TestApp::spawn_with(Options { real_time: true, overrides: vec![("schedules", schedules)], ..Options::default() }).await;
    let r = app.post_generic(&order_created("e1", "D-1", REP, chrono::Utc::now())).await;
    assert_eq!(r.status(), 200);
    // About four seconds on a quiet machine; the wait ends as soon as the third mail arrives, and
    // allows for a machine busy with the rest of the suite.
    let mails = app.wait_for_mails(3, Duration::from_secs(40)).await;
    assert!(mails.len() >= 3, "recap and two reminders within seconds, got {}", mails.len());
    assert_eq!(kinds(&mails[..3]), vec!["first_call", "reminder", "reminder"]);
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_done = app.smtp.messages().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(app.smtp.messages().len(), after_done, "no mail after done");
    app.stop().await;
}

#[tokio::test]
async fn without_a_manager_on_file_escalations_go_to_sales_ops_with_the_reason() {
    let app = TestApp::spawn().await;
    app.put_rep(REP, &json!({"name": "Ana", "timezone": "UTC"})).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.advance_and_settle(TimeDelta::hours(13), TimeDelta::minutes(30)).await;
    let ops = app.mails_to("sales-ops@seller.example");
    assert_eq!(kinds(&ops), vec!["escalation"]);
    assert!(ops[0].text.as_deref().unwrap().contains("has no manager in the rep directory"), "{:?}", ops[0].text);
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_edit_applies_to_open_calls_from_their_next_reminder() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Monday 14:00: first reminder under the shipped schedule (09:00 and 14:00).
    app.advance_and_settle(TimeDelta::hours(5), TimeDelta::minutes(30)).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call", "reminder"]);
    // Sales ops change the default schedule to remind at 11:00 and 16:00, at most 3 times, and
    // redeploy: a new process on the same database with the new config.
    let schedules = json!([{
        "name": "default",
        "due_within_business_hours": 4,
        "reminder_cron": "0 11,16 * * 1-5",
        "max_reminders": 3,
        "business_hours": {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
    }]);
    let edited = app.another_process(&Options { overrides: vec![("schedules", schedules)], ..Options::default() }).await;
    let run = |until: &str| {
        let target = chrono::DateTime::parse_from_rfc3339(until).unwrap().with_timezone(&chrono::Utc);
        let (engine, mailer) = (edited.engine.clone(), edited.mailer.clone());
        let clock = app.clock.clone();
        async move {
            while firstcall::clock::Clock::now(&*clock) < target {
                clock.advance(TimeDelta::minutes(30));
                engine.run_due().await.unwrap();
                mailer.run_due().await.unwrap();
            }
        }
    };
    // The reminder already planned for Tuesday 09:00 fires as planned; from then on the new
    // cron and limit apply: Tuesday 11:00, and no more after the third reminder.
    run("2026-11-26T00:00:00Z").await;
    let sent: Vec<String> = app
        .smtp
        .messages()
        .iter()
        .map(|m| m.parse())
        .filter(|m| m.message_id.as_deref().unwrap().contains(".reminder."))
        .map(|m| m.header("Date").unwrap_or_default().to_string())
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[1].contains("09:00:00"), "{sent:?}");
    assert!(sent[2].contains("11:00:00"), "{sent:?}");
}

/// A handler that records the subjects it was given and fails on the ones it is told to.
struct Recording {
    seen: std::sync::Mutex<Vec<Option<i64>>>,
    fail_on: i64,
}

impl firstcall::engine::Handler for Recording {
    fn run<'a>(
        &'a self,
        _txn: &'a sea_orm::DatabaseTransaction,
        job: &'a firstcall::engine::ClaimedJob,
        _now: DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'a, Result<firstcall::engine::Effects, firstcall::engine::StepError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(job.subject_id);
            if job.subject_id == Some(self.fail_on) {
                return Err(firstcall::engine::StepError::Failed("told to fail".into()));
            }
            Ok(firstcall::engine::Effects::default())
        })
    }
}

#[tokio::test]
async fn the_engine_runs_whatever_handler_a_workflow_registers() {
    use firstcall::engine::{self, JobKind, NewJob, Registry};
    let app = TestApp::spawn_with(Options { overrides: vec![("engine.retry_base_secs", json!(10))], ..Options::default() }).await;
    app.run_jobs().await; // the retention sweep planned at start-up runs, then waits an hour
    // A workflow of its own: the engine hands it its jobs' subjects and knows nothing else.
    let handler = std::sync::Arc::new(Recording { seen: Default::default(), fail_on: 7 });
    let mut registry = Registry::default();
    registry.register(JobKind::CallRemind, handler.clone());
    let engine = firstcall::engine::Engine { handlers: std::sync::Arc::new(registry), ..app.engine.clone() };
    let now = app.now();
    let jobs =
        [NewJob::new(JobKind::CallRemind, 41, now), NewJob::new(JobKind::CallRemind, 7, now), NewJob::new(JobKind::CallOverdue, 42, now)];
    engine::enqueue_many(&app.state.db, jobs, 2, now).await.unwrap();
    assert_eq!(engine.run_due().await.unwrap(), 3);
    assert_eq!(*handler.seen.lock().unwrap(), vec![Some(41), Some(7)], "each registered job ran once; the unregistered kind did not");
    // The failing job and the one with no handler wait for a retry; the done one is gone.
    let pending = app.get_json("/api/v1/jobs?state=pending").await;
    let mut errors: Vec<String> = pending["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] != "retention.sweep")
        .map(|j| j["last_error"].as_str().unwrap().to_string())
        .collect();
    errors.sort();
    assert_eq!(errors, vec!["no handler for job kind 'call.overdue'".to_string(), "told to fail".to_string()]);
    // After the last attempt both are dead, visible to the operator.
    app.advance(TimeDelta::seconds(20));
    assert_eq!(engine.run_due().await.unwrap(), 2);
    let dead = app.get_json("/api/v1/jobs?state=dead").await["jobs"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 2);
    assert_eq!(handler.seen.lock().unwrap().len(), 3);
    // Subject 7 gets a new reminder planned meanwhile: its dead one is not retried beside it (one
    // pending job per kind and subject); the other dead job is.
    assert!(engine::enqueue(&app.state.db, NewJob::new(JobKind::CallRemind, 7, app.now()), 2, app.now()).await.unwrap());
    assert!(
        !engine::enqueue(&app.state.db, NewJob::new(JobKind::CallRemind, 7, app.now()), 2, app.now()).await.unwrap(),
        "one pending per kind"
    );
    let retry = |id: &serde_json::Value| app.api(reqwest::Method::POST, &format!("/api/v1/jobs/{id}/retry")).send();
    let remind = dead.iter().find(|j| j["kind"] == "call.remind").unwrap();
    let overdue = dead.iter().find(|j| j["kind"] == "call.overdue").unwrap();
    assert_eq!(retry(&remind["id"]).await.unwrap().status(), 409);
    assert_eq!(retry(&overdue["id"]).await.unwrap().status(), 200);
    app.stop().await;
}

/// A handler with slow work outside the database (a CRM that paces its requests), counting
/// how often its work and its step ran.
struct SlowOutside {
    prepared: std::sync::atomic::AtomicUsize,
    ran: std::sync::atomic::AtomicUsize,
    takes: std::time::Duration,
}

impl firstcall::engine::Handler for SlowOutside {
    fn prepares(&self) -> bool {
        true
    }

    fn prepare<'a>(
        &'a self,
        _job: &'a firstcall::engine::ClaimedJob,
        _now: DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'a, Result<serde_json::Value, firstcall::engine::StepError>> {
        Box::pin(async move {
            self.prepared.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(self.takes).await;
            Ok(json!("read"))
        })
    }

    fn run<'a>(
        &'a self,
        _txn: &'a sea_orm::DatabaseTransaction,
        job: &'a firstcall::engine::ClaimedJob,
        _now: DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'a, Result<firstcall::engine::Effects, firstcall::engine::StepError>> {
        Box::pin(async move {
            assert_eq!(job.prepared, Some(json!("read")), "the step gets what the outside work read");
            self.ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(firstcall::engine::Effects::default())
        })
    }
}

#[tokio::test]
async fn outside_work_that_outlasts_its_lease_keeps_the_job_and_runs_once() {
    use firstcall::engine::{self, JobKind, NewJob, Registry};
    use std::sync::atomic::Ordering::SeqCst;
    let app = TestApp::spawn_with(Options { overrides: vec![("engine.lease_secs", json!(2))], ..Options::default() }).await;
    app.run_jobs().await;
    let handler = std::sync::Arc::new(SlowOutside { prepared: 0.into(), ran: 0.into(), takes: Duration::from_millis(3500) });
    let mut registry = Registry::default();
    registry.register(JobKind::CrmEnrich, handler.clone());
    let engine = firstcall::engine::Engine { handlers: std::sync::Arc::new(registry), ..app.engine.clone() };
    engine::enqueue(&app.state.db, NewJob::new(JobKind::CrmEnrich, 1, app.now()), 3, app.now()).await.unwrap();
    // The database-only loops leave it to the outside-work loops.
    assert_eq!(engine.run_batch().await.unwrap(), 0);
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_io_batch().await.unwrap() }
    });
    // Past the 2-second lease (on both clocks), another worker looks for due work: the lease was
    // renewed while the work went on, so it finds none.
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.advance(TimeDelta::milliseconds(2600));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(engine.run_io_batch().await.unwrap(), 0, "the job is still held by the first worker");
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!((handler.prepared.load(SeqCst), handler.ran.load(SeqCst)), (1, 1));
    assert_eq!(app.count("jobs WHERE kind = 'crm.enrich'").await, 0, "done");
    app.stop().await;
}

/// The dates (`Date` header) of the reminders the rep received.
fn reminder_dates(app: &TestApp) -> Vec<String> {
    app.mails_to(REP)
        .into_iter()
        .filter(|m| m.message_id.as_deref().unwrap_or("").contains(".reminder."))
        .map(|m| m.header("Date").unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_reminder_tick_that_runs_late_outside_business_hours_waits_for_the_next_tick() {
    // Friday 27 November 2026, 10:00 UTC; the default schedule reminds at 09:00 and 14:00 on
    // working days, in business hours 09:00-17:00.
    let app = TestApp::spawn_with(Options { start: utc("2026-11-27T10:00:00Z"), ..Options::default() }).await;
    directory(&app, "UTC").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // The engine is down from before Friday 14:00 until Saturday 03:00: the Friday tick runs late.
    app.clock.set(utc("2026-11-28T03:00:00Z"));
    app.settle().await;
    assert_eq!(reminder_dates(&app), Vec::<String>::new(), "no reminder at 03:00 on a Saturday");
    // The next tick inside business hours: Monday 09:00.
    app.clock.set(utc("2026-11-30T09:00:00Z"));
    app.settle().await;
    let dates = reminder_dates(&app);
    assert_eq!(dates.len(), 1, "{dates:?}");
    assert!(dates[0].contains("30 Nov 2026 09:00:00"), "{dates:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_renamed_schedule_keeps_its_calls_on_the_schedule_their_order_matches() {
    let schedules = |big: &str| {
        json!([
            {"name": big, "match": {"min_amount": "10000", "currency": "USD"}, "due_within_business_hours": 4,
             "reminder_cron": "0 10 * * 1-5", "business_hours": {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}},
            {"name": "default", "due_within_business_hours": 4, "reminder_cron": "0 9,14 * * 1-5",
             "business_hours": {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}},
        ])
    };
    let app = TestApp::spawn_with(Options { overrides: vec![("schedules", schedules("big"))], ..Options::default() }).await;
    directory(&app, "UTC").await;
    // 12,000 USD: the "big" schedule, reminders at 10:00.
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert_eq!(app.calls().await[0]["schedule"], "big");
    // Sales ops rename "big" to "large" and redeploy: a new process with the new config.
    let edited = app.another_process(&Options { overrides: vec![("schedules", schedules("large"))], ..Options::default() }).await;
    app.run_other_until(&edited, utc("2026-11-24T12:00:00Z")).await;
    // Monday 10:00 was planned before the edit; after it the order still matches the renamed
    // schedule (10:00), not the catch-all one (09:00 and 14:00).
    let dates = reminder_dates(&app);
    assert_eq!(dates.len(), 2, "{dates:?}");
    assert!(dates[0].contains("23 Nov 2026 10:00:00") && dates[1].contains("24 Nov 2026 10:00:00"), "{dates:?}");
    app.stop().await;
}

/// The call's pending timers of one kind.
async fn pending_of_kind(app: &TestApp, kind: &str) -> usize {
    let pending = app.get_json("/api/v1/jobs?state=pending").await;
    pending["jobs"].as_array().unwrap().iter().filter(|j| j["kind"] == kind).count()
}

#[tokio::test]
async fn two_changes_in_one_webhook_batch_leave_one_reminder_chain() {
    let app = TestApp::spawn().await;
    let (bo, cy) = ("bo@seller.example", "cy@seller.example");
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    app.advance(TimeDelta::minutes(30));
    // Two owner changes in one request: each re-plans the call.
    let t = app.now();
    let batch = json!([
        order_event("u1", "order.updated", "D-1", t - TimeDelta::seconds(2), json!({"rep_email": bo})),
        order_event("u2", "order.updated", "D-1", t - TimeDelta::seconds(1), json!({"rep_email": cy})),
    ]);
    let raw = serde_json::to_vec(&batch).unwrap();
    assert_eq!(app.post_generic_raw(&raw, GENERIC_SECRET, t.timestamp()).await.status(), 200);
    app.settle().await;
    assert_eq!(pending_of_kind(&app, "call.remind").await, 1, "one pending reminder for the call");
    // A working day of ticks: one reminder per tick, not two.
    app.advance_and_settle(TimeDelta::hours(8), TimeDelta::minutes(30)).await;
    let reminders: Vec<String> = reminder_dates_to(&app, cy);
    let mut unique = reminders.clone();
    unique.dedup();
    assert_eq!(reminders, unique, "each tick reminded once: {reminders:?}");
    assert_eq!(pending_of_kind(&app, "call.remind").await, 1);
    app.stop().await;
}

/// The dates (`Date` header) of the reminders `to` received.
fn reminder_dates_to(app: &TestApp, to: &str) -> Vec<String> {
    app.mails_to(to)
        .into_iter()
        .filter(|m| m.message_id.as_deref().unwrap_or("").contains(".reminder."))
        .map(|m| m.header("Date").unwrap_or_default().to_string())
        .collect()
}

/// A schedule for the tests below: hourly reminders in UTC office hours, due at the end of the day.
fn schedule(name: &str, matcher: Option<serde_json::Value>, escalation: serde_json::Value) -> serde_json::Value {
    let mut s = json!({
        "name": name, "due_within_business_hours": 8, "reminder_cron": "0 * * * *", "escalation": escalation,
        "business_hours": {"start": "09:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
    });
    if let Some(m) = matcher {
        s["match"] = m;
    }
    s
}

#[tokio::test]
async fn the_first_schedule_whose_match_fits_an_order_applies_by_amount_currency_source_and_segment() {
    // README: "The first `[[schedules]]` entry whose `match` fits an order applies; one without
    // `match` must exist." Bounds are in their currency: `min_amount` is "at least",
    // `max_amount` "below"; segments compare without case.
    let schedules = json!([
        schedule("from-salesforce", Some(json!({"sources": ["salesforce"]})), json!([])),
        schedule("enterprise", Some(json!({"segments": ["enterprise"]})), json!([])),
        schedule("big-usd", Some(json!({"min_amount": "50000", "currency": "USD"})), json!([])),
        schedule("small-eur", Some(json!({"max_amount": "1000", "currency": "EUR"})), json!([])),
        schedule("default", None, json!([])),
    ]);
    let app = TestApp::spawn_with(Options { overrides: vec![("schedules", schedules)], ..Options::default() }).await;
    // (deal, amount, currency, segment, the schedule it must get)
    let cases = [
        ("D-1", "60000.00", "USD", None, "big-usd"),
        ("D-2", "50000.00", "USD", None, "big-usd"),
        ("D-3", "49999.99", "USD", None, "default"),
        ("D-4", "60000.00", "EUR", None, "default"),
        ("D-5", "999.99", "EUR", None, "small-eur"),
        ("D-6", "1000.00", "EUR", None, "default"),
        ("D-7", "500.00", "USD", Some("Enterprise"), "enterprise"),
        ("D-8", "500.00", "EUR", Some("smb"), "small-eur"),
        ("D-9", "60000.00", "USD", Some("enterprise"), "enterprise"),
    ];
    for (deal, amount, currency, segment, _) in cases {
        let mut order = order_created(&format!("e-{deal}"), deal, REP, app.now());
        order["order"]["amount"] = json!(amount);
        order["order"]["currency"] = json!(currency);
        if let Some(seg) = segment {
            order["order"]["segment"] = json!(seg);
        }
        assert_eq!(app.post_generic(&order).await.status(), 200, "{deal}");
    }
    // 48,000 USD from Salesforce: its source comes first.
    let sf = app.post_salesforce(&fixture("salesforce/closed_won.xml")).await;
    assert_eq!(sf.status(), 200, "{}", sf.text().await.unwrap());
    app.settle().await;
    let calls = app.calls().await;
    let got: HashMap<String, String> =
        calls.iter().map(|c| (c["deal_id"].as_str().unwrap().to_string(), c["schedule"].as_str().unwrap().to_string())).collect();
    for (deal, amount, currency, segment, expected) in cases {
        assert_eq!(got.get(deal).map(String::as_str), Some(expected), "{deal}: {amount} {currency}, segment {segment:?}");
    }
    let salesforce: Vec<&serde_json::Value> = calls.iter().filter(|c| c["source"] == "salesforce").collect();
    assert_eq!(salesforce.len(), 1, "{calls:?}");
    assert_eq!(salesforce[0]["schedule"], "from-salesforce");
    app.stop().await;
}

#[tokio::test]
async fn an_escalation_after_n_reminders_goes_with_the_nth_reminder_and_not_before() {
    // README: `{ after_reminders = 2, to = "manager" }`; steps fire in order, each once.
    let escalation = json!([{"after_reminders": 2, "to": "manager"}, {"after_reminders": 4, "to": "manager_of_manager"}]);
    let schedules = json!([schedule("default", None, escalation)]);
    let app = TestApp::spawn_with(Options { overrides: vec![("schedules", schedules)], ..Options::default() }).await;
    directory(&app, "UTC").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Monday 09:00 order, due 17:00, so nothing is overdue while the hourly reminders go out.
    assert_eq!(app.calls().await[0]["due_at"], "2026-11-23T17:00:00Z");
    for n in 1..=5usize {
        app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
        let reminders = kinds(&app.mails_to(REP)).iter().filter(|k| *k == "reminder").count();
        assert_eq!(reminders, n, "one reminder an hour");
        let to_manager = kinds(&app.mails_to(MANAGER));
        let to_director = kinds(&app.mails_to(DIRECTOR));
        assert_eq!(to_manager, if n >= 2 { vec!["escalation"] } else { vec![] }, "the manager after reminder {n}");
        assert_eq!(to_director, if n >= 4 { vec!["escalation"] } else { vec![] }, "the manager's manager after reminder {n}");
    }
    assert!(kinds(&app.mails_to(REP)).iter().all(|k| k != "escalation"), "the rep is not escalated to");
    app.stop().await;
}

#[tokio::test]
async fn escalation_steps_inserted_or_moved_while_a_call_is_open_never_send_a_step_twice() {
    // Sales ops insert a step before the one a call already had and another after it, and
    // redeploy (a new process with the new config, on the same database): the step sent before
    // is not sent again, the one inserted before it is passed, the one after it goes when due.
    let (ops, vp) = ("ops@seller.example", "vp@seller.example");
    let before = json!([{"after_reminders": 2, "to": "manager"}, {"after_reminders": 4, "to": "manager_of_manager"}]);
    let app =
        TestApp::spawn_with(Options { overrides: vec![("schedules", json!([schedule("default", None, before)]))], ..Options::default() })
            .await;
    directory(&app, "UTC").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Monday 09:00: reminders at 10:00 and 11:00, the manager with the second.
    app.advance_and_settle(TimeDelta::hours(2), TimeDelta::minutes(30)).await;
    assert_eq!(kinds(&app.mails_to(MANAGER)), ["escalation"]);

    let edited = json!([
        {"after_reminders": 1, "to": ops},
        {"after_reminders": 2, "to": "manager"},
        {"after_reminders": 3, "to": vp},
        {"after_reminders": 4, "to": "manager_of_manager"},
    ]);
    let next = app
        .another_process(&Options { overrides: vec![("schedules", json!([schedule("default", None, edited)]))], ..Options::default() })
        .await;
    // Reminders 3, 4 and 5 at 12:00, 13:00 and 14:00, run by the process with the edited schedule.
    app.run_other_until(&next, utc("2026-11-23T14:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(REP)).iter().filter(|k| *k == "reminder").count(), 5);
    assert_eq!(kinds(&app.mails_to(MANAGER)), ["escalation"], "the manager had the step before the edit, once");
    assert!(app.mails_to(ops).is_empty(), "a step inserted before the one the call had is passed");
    assert_eq!(kinds(&app.mails_to(vp)), ["escalation"], "the step inserted after it goes with reminder 3");
    assert_eq!(kinds(&app.mails_to(DIRECTOR)), ["escalation"], "the manager's manager with reminder 4");
    let ids: Vec<String> = [MANAGER, vp, DIRECTOR].iter().flat_map(|a| app.mails_to(a)).filter_map(|m| m.message_id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "each escalation has its own Message-ID: {ids:?}");
    let call = &app.calls().await[0];
    assert_eq!(call["escalation_level"], 3, "{call}");
    let steps = app.column("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'escalated' ORDER BY id").await;
    let steps: Vec<String> =
        steps.iter().map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["step"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(steps, ["manager", vp, "manager_of_manager"], "the audit names each step sent");
    app.stop().await;
}

/// The configuration version each audit entry of `action` names, in order.
async fn versions_in_audit(app: &TestApp, action: &str) -> Vec<String> {
    let details = app.column(&format!("SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = '{action}' ORDER BY id")).await;
    details
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["config_version"].as_str().unwrap_or("none").to_string())
        .collect()
}

#[tokio::test]
async fn each_process_records_its_configuration_version_and_every_reminder_and_escalation_names_its_own() {
    let before = json!([{"after_reminders": 2, "to": "manager"}]);
    let app = TestApp::spawn_with(Options {
        overrides: vec![("schedules", json!([schedule("default", None, before.clone())]))],
        ..Options::default()
    })
    .await;
    directory(&app, "UTC").await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Reminders at 10:00 and 11:00 and the manager with the second, by the first process.
    app.advance_and_settle(TimeDelta::hours(2), TimeDelta::minutes(30)).await;
    // A rolling redeploy: a process with an edited schedule (a step added) takes over.
    let edited = json!([{"after_reminders": 2, "to": "manager"}, {"after_reminders": 3, "to": DIRECTOR}]);
    let next = app
        .another_process(&Options { overrides: vec![("schedules", json!([schedule("default", None, edited)]))], ..Options::default() })
        .await;
    app.run_other_until(&next, utc("2026-11-23T13:30:00Z")).await;
    let loads = firstcall::config_versions::loads(&app.state.db).await.unwrap();
    assert_eq!(loads.len(), 2, "{loads:?}");
    let (old, new) = (loads[0].version.clone(), loads[1].version.clone());
    assert_ne!(old, new, "the edited schedule is another version");
    assert_eq!(loads[1].instance_id, next.engine.instance_id, "the load names its process");
    let written = firstcall::config_versions::recorded(&app.state.db, &new).await.unwrap().expect("the new version's schedules are kept");
    assert_eq!(written.schedules.schedules[0].escalation.len(), 2, "as the edit wrote them");

    assert_eq!(
        versions_in_audit(&app, "reminded").await,
        [old.clone(), old.clone(), new.clone(), new.clone()],
        "each reminder names the version it ran under"
    );
    assert_eq!(versions_in_audit(&app, "escalated").await, [old.clone(), new.clone()], "so does each escalation");

    // A third process with the first configuration: another load of the same version.
    let again = app
        .another_process(&Options { overrides: vec![("schedules", json!([schedule("default", None, before)]))], ..Options::default() })
        .await;
    let loads = firstcall::config_versions::loads(&app.state.db).await.unwrap();
    assert_eq!(loads.iter().map(|l| l.version.as_str()).collect::<Vec<_>>(), [&old, &new, &old]);
    assert_eq!(app.column("SELECT count(*) FROM config_versions").await, ["2"]);
    drop(again);
    app.stop().await;
}

#[tokio::test]
async fn config_check_against_running_names_each_changed_key_against_what_the_newest_serve_runs() {
    let running = json!([schedule("default", None, json!([{"after_reminders": 2, "to": "manager"}]))]);
    let with = |schedules: &Value| Options { overrides: vec![("schedules", schedules.clone())], ..Options::default() };
    let app = TestApp::spawn_with(with(&running)).await;
    let version = firstcall::config_versions::loads(&app.state.db).await.unwrap()[0].version.clone();
    let config = |schedules: &Value| crate::helpers::test_config(app.db.url(), app.smtp.port(), &with(schedules));

    let same = firstcall::cli::compare_with_running(&config(&running), app.now()).await.unwrap();
    assert!(same.contains(&format!("against what runs: version {version}")), "{same}");
    assert!(same.contains("no change: these schedules and templates are what runs"), "{same}");

    let mut edit = schedule("default", None, json!([{"after_reminders": 2, "to": "manager"}, {"after_reminders": 4, "to": DIRECTOR}]));
    edit["reminder_cron"] = json!("30 * * * *");
    let edited = json!([edit]);
    let out = firstcall::cli::compare_with_running(&config(&edited), app.now()).await.unwrap();
    assert!(out.contains(&format!("against what runs: version {version}")), "{out}");
    assert!(!out.contains(&format!("this edit: version {version}")), "an edit is another version: {out}");
    let changes: Vec<&str> = out.lines().filter(|l| l.starts_with("  schedule")).map(str::trim).collect();
    assert_eq!(
        changes,
        [
            "schedule \"default\": escalation[1].after_reminders: (not set) -> 4",
            "schedule \"default\": escalation[1].to: (not set) -> \"dee@seller.example\"",
            "schedule \"default\": reminder_cron: \"0 * * * *\" -> \"30 * * * *\"",
        ],
        "{out}"
    );
    assert!(out.contains("  templates: unchanged"), "{out}");

    // A one-off command that loaded the edit (a recap, say) runs nothing: the comparison is still
    // with what serve runs.
    let _tool = app.another_process(&with(&edited)).await;
    let again = firstcall::cli::compare_with_running(&config(&edited), app.now()).await.unwrap();
    assert_eq!(again, out);
    app.stop().await;
}

/// Promises about PostgreSQL alone, so these run on PostgreSQL whatever `FIRSTCALL_TEST_DB`
/// says, and the SQLite pass of `scripts/test.sh` leaves them out (`--skip postgres_only::`,
/// counted as filtered out) instead of reporting them passed there:
/// - leases are judged by the database's clock, which matters to replicas sharing a PostgreSQL
///   database; SQLite serves the processes of one machine, which share its clock;
/// - row locks that other writers skip exist on PostgreSQL; SQLite has one writer at a time.
mod postgres_only {
    use super::*;

    async fn on_postgresql() -> TestApp {
        TestApp::spawn_with(Options { backend: Some(testkit::db::Backend::Postgres), ..Options::default() }).await
    }

    #[tokio::test]
    async fn a_replica_whose_clock_runs_ahead_does_not_take_over_a_live_lease() {
        let app = on_postgresql().await;
        app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
        // Replica A claims the first step for 60 s...
        let lease = firstcall::engine::claim_due(&app.state.db, "replica-a", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
        assert!(lease.rows.iter().any(|j| j.kind == "call.start"), "{:?}", lease.rows);
        // ...replica B, whose clock is two minutes ahead, must still see A's lease as live.
        let ahead = app.now() + TimeDelta::minutes(2);
        let taken = firstcall::engine::claim_due(&app.state.db, "replica-b", ahead, TimeDelta::seconds(60), 10).await.unwrap();
        assert!(taken.rows.is_empty(), "B took over a lease that A still holds");
        assert_eq!(firstcall::engine::next_due_at(&app.state.db, ahead).await.unwrap(), None, "B has nothing to wake up for");
        app.engine.execute(lease).await.unwrap();
        app.run_jobs().await;
        // The same for the outbox: A's mailer holds the email, B's must leave it alone.
        let held = firstcall::mail::outbox::claim_due(&app.state.db, "replica-a", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
        assert_eq!(held.len(), 1);
        let taken = firstcall::mail::outbox::claim_due(&app.state.db, "replica-b", ahead, TimeDelta::seconds(60), 10).await.unwrap();
        assert!(taken.is_empty(), "B's mailer took over an email that A's still holds");
        app.stop().await;
    }

    #[tokio::test]
    async fn a_reminder_held_by_a_running_batch_is_not_doubled_by_a_replan() {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let app = on_postgresql().await;
        app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
        app.settle().await;
        // A running batch holds the reminder's row locked (as the engine does while its step runs)...
        let batch = app.state.db.begin().await.unwrap();
        batch.execute_unprepared("SELECT id FROM jobs WHERE kind = 'call.remind' FOR UPDATE").await.unwrap();
        // ...while the deal changes owner: the re-plan cannot remove the held reminder.
        let r = app.post_generic(&order_event("u1", "order.updated", "D-1", app.now(), json!({"rep_email": "bo@seller.example"}))).await;
        assert_eq!(r.status(), 200);
        batch.rollback().await.unwrap();
        app.settle().await;
        assert_eq!(pending_of_kind(&app, "call.remind").await, 1, "one reminder chain after the re-plan");
        app.stop().await;
    }
}
