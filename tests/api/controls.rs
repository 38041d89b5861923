//! The rep steers their call: snooze its reminders or book it with the customer, from the API and
//! from the call page's forms. Reminders wait, the due time and the invite follow (same event,
//! higher SEQUENCE), and a move past sales ops' limit tells the manager at once.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::pages::{get, post_form};

const REP: &str = "ana@seller.example";
const MANAGER: &str = "mo@seller.example";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A rep in UTC with a manager; an order on Monday 23 November at 09:00 UTC: the call is due at
/// 13:00 and the recap with its invite has gone to the rep.
async fn open_call(app: &TestApp) -> i64 {
    open_call_in(app, "UTC", "2026-11-23T13:00:00Z").await
}

/// The same with the rep (and manager) in `tz`, the call due at `due`.
async fn open_call_in(app: &TestApp, tz: &str, due: &str) -> i64 {
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": tz, "manager_email": MANAGER})).await.status(), 200);
    assert_eq!(app.put_rep(MANAGER, &json!({"name": "Mo Manager", "timezone": tz})).await.status(), 200);
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let call = &app.calls().await[0];
    assert_eq!(call["due_at"], due);
    call["id"].as_i64().unwrap()
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app.api(reqwest::Method::POST, path).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The kind of each email (`call-1.reminder.1@…` → `reminder`).
fn kinds(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.message_id.clone().unwrap_or_default().split('.').nth(1).unwrap_or("").to_string()).collect()
}

fn ics_line<'a>(m: &'a testkit::mail::ParsedMail, key: &str) -> &'a str {
    let body = &m.calendar.as_ref().expect("an invite").body;
    body.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in\n{body}"))
}

/// Moves the clock to `t` in half-hour steps, running what is due on the way.
async fn run_until(app: &TestApp, t: DateTime<Utc>) {
    app.advance_and_settle(t - app.now(), TimeDelta::minutes(30)).await;
}

#[tokio::test]
async fn a_snooze_holds_reminders_until_its_time_and_moves_the_invite_and_the_escalation_clock() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    let (status, call) = post(
        &app,
        &format!("/api/v1/calls/{id}/snooze"),
        json!({"until": "2026-11-24T14:00:00Z", "reason": "Waiting for the customer to pick a slot"}),
    )
    .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["snoozed_until"], "2026-11-24T14:00:00Z");
    assert_eq!(call["due_at"], "2026-11-24T14:00:00Z", "a snooze past the due time carries it along");
    assert_eq!(call["first_due_at"], "2026-11-23T13:00:00Z");
    app.settle().await;

    // The invite moves: the same event, a higher SEQUENCE, ending at the new due time.
    let mails = app.mails_to(REP);
    assert_eq!(kinds(&mails), vec!["first_call", "first_call"], "the updated invite, at once");
    assert_eq!(ics_line(&mails[0], "SEQUENCE:"), "SEQUENCE:0");
    assert_eq!(ics_line(&mails[1], "SEQUENCE:"), "SEQUENCE:1");
    assert_eq!(ics_line(&mails[1], "UID:"), ics_line(&mails[0], "UID:"), "the same event");
    assert!(ics_line(&mails[1], "DTEND").ends_with("20261124T140000"), "{}", ics_line(&mails[1], "DTEND"));

    // Monday 14:00 and Tuesday 09:00 would have reminded, and 8 hours overdue (Monday 21:00)
    // escalated: nothing until Tuesday 14:00.
    run_until(&app, utc("2026-11-24T13:30:00Z")).await;
    assert_eq!(app.mails_to(REP).len(), 2, "no reminder while snoozed");
    assert!(app.mails_to(MANAGER).is_empty(), "no escalation: the due time moved, and one business day is within the limit");
    let upcoming = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_eq!(upcoming["state"], "due", "{upcoming}");

    // The snooze ends at 14:00, a reminder tick: the rep is reminded then.
    run_until(&app, utc("2026-11-24T14:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call", "first_call", "reminder"]);
    // Audited with who and why.
    let audit = app.column(&format!("SELECT actor || ' ' || action || ' ' || CAST(detail AS TEXT) FROM audit_log WHERE entity = 'call' AND entity_id = {id} AND action = 'snoozed'")).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].starts_with("api snoozed ") && audit[0].contains("Waiting for the customer to pick a slot"), "{audit:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_snooze_before_the_due_time_moves_only_the_reminders() {
    let app = TestApp::spawn().await;
    // In Tokyo, Monday 09:00 UTC is 18:00: the call is due Tuesday 13:00 JST (04:00 UTC), and the
    // first reminder tick is Tuesday 09:00 JST (00:00 UTC).
    let id = open_call_in(&app, "Asia/Tokyo", "2026-11-24T04:00:00Z").await;
    // Snoozed until 11:00 JST: before the due time, which stands, and the invite with it.
    let (status, call) = post(
        &app,
        &format!("/api/v1/calls/{id}/snooze"),
        json!({"until": "2026-11-24T11:00:00+09:00", "reason": "In a workshop all morning"}),
    )
    .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["due_at"], "2026-11-24T04:00:00Z");
    assert_eq!(call["snoozed_until"], "2026-11-24T02:00:00Z");
    assert!(call["first_due_at"].is_string(), "{call}");
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"], "no updated invite: the due time did not move");
    run_until(&app, utc("2026-11-24T03:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"], "no 09:00 JST reminder");
    // The next tick after the snooze, 14:00 JST, finds the call overdue.
    run_until(&app, utc("2026-11-24T05:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call", "reminder"]);
    assert_eq!(app.calls().await[0]["state"], "overdue");
    // The escalation clock did not move: 8 hours overdue (12:00 UTC) tells the manager.
    run_until(&app, utc("2026-11-24T11:30:00Z")).await;
    assert!(app.mails_to(MANAGER).is_empty());
    run_until(&app, utc("2026-11-24T12:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(MANAGER)), vec!["escalation"]);
    app.stop().await;
}

#[tokio::test]
async fn a_booking_past_the_limit_moves_the_invite_and_tells_the_manager_at_once() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    // Monday 30 November is five business days after Monday 23 November: past the limit of 3.
    let body = json!({"at": "2026-11-30T10:00:00+00:00", "with": "Larry Page (CTO)", "reason": "Larry is away this week"});
    let (status, call) = post(&app, &format!("/api/v1/calls/{id}/book"), body).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["booked_at"], "2026-11-30T10:00:00Z");
    assert_eq!(call["booked_with"], "Larry Page (CTO)");
    assert_eq!(call["due_at"], "2026-11-30T10:30:00Z", "due at the end of the booked call (30 minutes)");
    app.settle().await;

    let alert = app.mails_to(MANAGER);
    assert_eq!(kinds(&alert), vec!["alert"], "the manager is told at once");
    let text = alert[0].text.as_deref().unwrap();
    assert!(text.contains("booked past its limit") && text.contains("Acme Corp"), "{text}");
    assert!(text.contains("5 business days") && text.contains("the limit is 3"), "{text}");
    assert!(text.contains("Larry Page (CTO)") && text.contains("Larry is away this week"), "{text}");
    let invite = &app.mails_to(REP)[1];
    assert!(ics_line(invite, "DTSTART;").ends_with("20261130T100000"), "the invite starts at the booked time");
    assert_eq!(ics_line(invite, "SEQUENCE:"), "SEQUENCE:1");

    // Nothing more until the booked call: no reminder, no escalation.
    run_until(&app, utc("2026-11-30T10:00:00Z")).await;
    assert_eq!(app.mails_to(REP).len(), 2);
    assert_eq!(app.mails_to(MANAGER).len(), 1);
    // Not marked done by Monday 14:00: reminded.
    run_until(&app, utc("2026-11-30T14:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(REP))[2..], ["reminder"]);
    let detail = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_eq!(detail["state"], "overdue");
    app.stop().await;
}

#[tokio::test]
async fn a_booking_within_the_limit_tells_nobody_else() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    // Thursday is three business days after Monday.
    let body = json!({"at": "2026-11-26T14:00:00Z", "reason": "The customer's first free slot"});
    let (status, call) = post(&app, &format!("/api/v1/calls/{id}/book"), body).await;
    assert_eq!(status, 200, "{call}");
    assert!(call["booked_with"].is_null());
    app.settle().await;
    assert!(app.mails_to(MANAGER).is_empty());
    // Booking again moves it again, counted from the first due time.
    let (status, _) =
        post(&app, &format!("/api/v1/calls/{id}/book"), json!({"at": "2026-11-27T09:00:00Z", "reason": "Moved by the customer"})).await;
    assert_eq!(status, 200);
    app.settle().await;
    assert_eq!(kinds(&app.mails_to(MANAGER)), vec!["alert"], "four business days after the first due time");
    assert_eq!(ics_line(app.mails_to(REP).last().unwrap(), "SEQUENCE:"), "SEQUENCE:2");
    app.stop().await;
}

#[tokio::test]
async fn wrong_input_is_refused_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    let audit = app.count("audit_log").await;
    let path = format!("/api/v1/calls/{id}/snooze");
    for (body, field) in [
        (json!({"until": "2026-11-23T08:00:00Z", "reason": "x"}), "until"),
        (json!({"until": "2026-11-24 14:00", "reason": "x"}), "until"),
        (json!({"until": "2027-03-01T09:00:00Z", "reason": "x"}), "until"),
        (json!({"reason": "x"}), "until"),
        (json!({"until": "2026-11-24T14:00:00Z"}), "reason"),
        (json!({"until": "2026-11-24T14:00:00Z", "reason": "   "}), "reason"),
    ] {
        let (status, answer) = post(&app, &path, body.clone()).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (422, Some(field)), "{body} → {answer}");
    }
    let (status, answer) =
        post(&app, &format!("/api/v1/calls/{id}/book"), json!({"at": "2026-11-24T14:00:00Z", "with": "x".repeat(201), "reason": "x"}))
            .await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("with")), "{answer}");
    let (status, answer) = post(&app, &path, json!({"until": "2026-11-24T14:00:00Z", "reason": "x", "minutes": 5})).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("minutes")), "an unknown field: {answer}");
    let (status, _) = post(&app, "/api/v1/calls/999/snooze", json!({"until": "2026-11-24T14:00:00Z", "reason": "x"})).await;
    assert_eq!(status, 404);
    assert_eq!(app.count("audit_log").await, audit, "nothing refused was recorded");
    let (status, _) = post(&app, &format!("/api/v1/calls/{id}/complete"), json!({"outcome": "aligned"})).await;
    assert_eq!(status, 200);
    let (status, answer) = post(&app, &path, json!({"until": "2026-11-24T14:00:00Z", "reason": "x"})).await;
    assert_eq!(status, 409, "a call marked done cannot be snoozed: {answer}");
    let unauthenticated =
        app.client.post(app.url(&path)).json(&json!({"until": "2026-11-24T14:00:00Z", "reason": "x"})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_call_page_books_and_snoozes_from_the_emails_link_in_the_reps_timezone() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "Europe/Berlin"})).await.status(), 200);
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let link = call_link(&app.mails_to(REP)[0]);
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let token = link.split("?t=").nth(1).unwrap().to_string();
    let page = get(&app, &link).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("id=\"book-form\"") && page.html.contains("id=\"snooze-form\""), "{}", page.html);
    assert!(page.html.contains("Times are in Europe&#x2f;Berlin"), "{}", page.html);
    let csrf = page.csrf();

    // A form without a reason comes back saying what is missing; nothing changes.
    let audit = app.count("audit_log").await;
    let refused =
        post_form(&app.client, &app, &format!("/calls/{id}/book"), &[("t", &token), ("csrf", &csrf), ("at", "2026-11-25T15:00")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.html.contains("id=\"steer-error\"") && refused.html.contains("Say why"), "{}", refused.html);
    let unreadable = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/snooze"),
        &[("t", &token), ("csrf", &csrf), ("until", "next week"), ("reason", "x")],
    )
    .await;
    assert_eq!(unreadable.status, 422);
    assert!(unreadable.html.contains("id=\"steer-error\">Give the date and time, e.g. 2026-12-03 14:00."), "{}", unreadable.html);
    let past = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/snooze"),
        &[("t", &token), ("csrf", &csrf), ("until", "2026-11-23T09:00"), ("reason", "x")],
    )
    .await;
    assert_eq!(past.status, 422, "09:00 in Berlin is 08:00 UTC, before now");
    assert!(past.html.contains("The time must be later than now."), "{}", past.html);
    assert_eq!(app.count("audit_log").await, audit);
    // A forged CSRF token is refused.
    let forged = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/book"),
        &[("t", &token), ("csrf", "forged"), ("at", "2026-11-25T15:00"), ("reason", "x")],
    )
    .await;
    assert_eq!(forged.status, 403);

    // Booked for Wednesday 15:00 in Berlin (14:00 UTC).
    let form = [
        ("t", token.as_str()),
        ("csrf", &csrf),
        ("at", "2026-11-25T15:00"),
        ("with", "Larry"),
        ("reason", "The customer's CTO is travelling"),
    ];
    let r = post_form(&app.client, &app, &format!("/calls/{id}/book"), &form).await;
    assert_eq!(r.status, 303, "back to the page");
    let r = get(&app, &link).await;
    assert!(r.html.contains("id=\"booked\">Wed 25 Nov 2026, 15:00 CET (Europe&#x2f;Berlin) with Larry"), "{}", r.html);
    let call = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_eq!(call["booked_at"], "2026-11-25T14:00:00Z");
    let actor = app.column(&format!("SELECT actor FROM audit_log WHERE entity_id = {id} AND action = 'booked'")).await;
    assert_eq!(actor, vec!["rep".to_string()], "the link's holder");

    // Snoozed until Tuesday 10:00 Berlin.
    let r = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/snooze"),
        &[("t", &token), ("csrf", &csrf), ("until", "2026-11-24T10:00"), ("reason", "Travelling")],
    )
    .await;
    assert_eq!(r.status, 303);
    let r = get(&app, &link).await;
    assert!(r.html.contains("id=\"snoozed-until\">Tue 24 Nov 2026, 10:00 CET (Europe&#x2f;Berlin)"), "{}", r.html);
    app.stop().await;
}

const OPS: &str = "sales-ops@seller.example";
const BO: &str = "bo@partner.example";

#[tokio::test]
async fn sales_ops_hand_a_call_from_their_inbox_to_a_rep_who_then_gets_the_invite_and_the_reminders() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(BO, &json!({"name": "Bo Berg", "timezone": "UTC", "manager_email": MANAGER})).await.status(), 200);
    // The CRM names an address firstcall may not email: the call is with sales ops.
    app.post_generic(&order_created("e1", "D-1", "eve@evil.example", app.now())).await;
    app.settle().await;
    let call = &app.calls().await[0];
    let id = call["id"].as_i64().unwrap();
    assert_eq!(call["rep_email"], OPS);
    assert!(call["fallback_reason"].is_string());
    assert_eq!(kinds(&app.mails_to(OPS)), vec!["first_call"]);

    // Not to somebody firstcall may not email either.
    let audit = app.count("audit_log").await;
    let (status, answer) = post(&app, &format!("/api/v1/calls/{id}/reassign"), json!({"rep": "mallory@evil.example", "reason": "x"})).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("rep")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("add them to the directory first"), "{answer}");
    assert_eq!(app.count("audit_log").await, audit);

    // Three hours later, to Bo (in the directory, another domain): due four business hours from now.
    app.advance_and_settle(TimeDelta::hours(3), TimeDelta::minutes(30)).await;
    let (status, moved) =
        post(&app, &format!("/api/v1/calls/{id}/reassign"), json!({"rep": BO, "reason": "Bo owns the Acme account"})).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["rep_email"], BO);
    assert!(moved["fallback_reason"].is_null());
    assert_eq!(moved["due_at"], "2026-11-23T16:00:00Z");
    app.settle().await;
    let ops = app.mails_to(OPS);
    assert_eq!(kinds(&ops), vec!["first_call", "reassigned"], "sales ops' invite is withdrawn");
    assert_eq!(ops[1].calendar.as_ref().unwrap().method.as_deref(), Some("CANCEL"));
    let bo = app.mails_to(BO);
    assert_eq!(kinds(&bo), vec!["first_call"], "the recap and the invite, at once");
    assert_eq!(ics_line(&bo[0], "UID:"), ics_line(&ops[0], "UID:"), "the same event");
    assert_eq!(ics_line(&bo[0], "SEQUENCE:"), "SEQUENCE:1");
    // The reminders go to Bo now; the order's next update leaves him the call.
    app.post_generic(&order_event("u1", "order.updated", "D-1", app.now(), json!({"amount": "52000.00"}))).await;
    run_until(&app, utc("2026-11-24T09:30:00Z")).await;
    assert_eq!(app.calls().await[0]["rep_email"], BO, "the rep sales ops picked stands");
    assert!(kinds(&app.mails_to(BO)).contains(&"reminder".to_string()), "{:?}", kinds(&app.mails_to(BO)));
    assert_eq!(app.mails_to(OPS).len(), 2, "nothing more to sales ops");
    let audit = app
        .column(&format!("SELECT actor || ' ' || CAST(detail AS TEXT) FROM audit_log WHERE entity_id = {id} AND action = 'reassigned'"))
        .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].starts_with("api ") && audit[0].contains("Bo owns the Acme account"), "{audit:?}");
    app.stop().await;
}

#[tokio::test]
async fn sales_ops_cancel_a_call_and_the_rep_hears_who_did_and_why() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    let (status, answer) = post(&app, &format!("/api/v1/calls/{id}/cancel"), json!({})).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("reason")), "{answer}");
    let (status, call) = post(&app, &format!("/api/v1/calls/{id}/cancel"), json!({"reason": "The customer chose another vendor"})).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["state"], "cancelled");
    app.settle().await;
    let mails = app.mails_to(REP);
    assert_eq!(kinds(&mails), vec!["first_call", "cancellation"]);
    assert_eq!(mails[1].subject.as_deref(), Some("Cancelled: first call with Acme Corp"));
    let text = mails[1].text.as_deref().unwrap();
    assert!(text.contains("is off: sales ops (API) cancelled it: The customer chose another vendor."), "{text}");
    assert_eq!(mails[1].calendar.as_ref().unwrap().method.as_deref(), Some("CANCEL"));
    // Again: harmless. Nothing more is sent.
    let (status, again) = post(&app, &format!("/api/v1/calls/{id}/cancel"), json!({"reason": "twice"})).await;
    assert_eq!((status, &again["cancelled_at"]), (200, &call["cancelled_at"]));
    run_until(&app, utc("2026-11-25T09:00:00Z")).await;
    assert_eq!(app.mails_to(REP).len(), 2);
    assert!(app.mails_to(MANAGER).is_empty());
    // A call marked done cannot be cancelled or handed over.
    app.post_generic(&order_created("e2", "D-2", REP, app.now())).await;
    app.settle().await;
    let other = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-2").unwrap()["id"].as_i64().unwrap();
    assert_eq!(post(&app, &format!("/api/v1/calls/{other}/complete"), json!({"outcome": "aligned"})).await.0, 200);
    assert_eq!(post(&app, &format!("/api/v1/calls/{other}/cancel"), json!({"reason": "x"})).await.0, 409);
    assert_eq!(post(&app, &format!("/api/v1/calls/{other}/reassign"), json!({"rep": MANAGER, "reason": "x"})).await.0, 409);
    app.stop().await;
}

#[tokio::test]
async fn only_a_dashboard_sign_in_hands_over_or_cancels_from_the_call_page() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(BO, &json!({"name": "Bo Berg", "timezone": "UTC"})).await.status(), 200);
    app.post_generic(&order_created("e1", "D-1", "eve@evil.example", app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    // The link in sales ops' email opens the page, without sales ops' controls; posting them is refused.
    let link = call_link(&app.mails_to(OPS)[0]);
    let token = link.split("?t=").nth(1).unwrap().to_string();
    let page = get(&app, &link).await;
    assert!(!page.html.contains("id=\"assign-form\""), "a link holder does not hand calls over");
    let csrf = page.csrf();
    let r = post_form(&app.client, &app, &format!("/calls/{id}/reassign"), &[("t", &token), ("csrf", &csrf), ("rep", BO), ("reason", "x")])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.calls().await[0]["rep_email"], OPS);

    // Signed in: the dashboard's row and the call page say "Pick the rep".
    crate::pages::log_in(&app, API_TOKEN).await;
    let board = get(&app, "/").await;
    assert!(board.html.contains(&format!("id=\"pick-{id}\">Pick the rep</a>")), "{}", board.html);
    let page = get(&app, &format!("/calls/{id}")).await;
    assert!(page.html.contains("<h2>Pick the rep</h2>") && page.html.contains("<details id=\"assign\" open>"), "{}", page.html);
    // The call's forms' token (the first on the page is the header's logout form's).
    let form = &page.html[page.html.find("id=\"assign-form\"").unwrap()..];
    let at = form.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf: String = form[at..].chars().take_while(|c| *c != '"').collect();
    // Signed in, the rep's controls work too, recorded as the dashboard's.
    let r = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/snooze"),
        &[("csrf", &csrf), ("until", "2026-11-24T09:00"), ("reason", "Finding the right rep")],
    )
    .await;
    assert_eq!(r.status, 303);
    let actor = app.column(&format!("SELECT actor FROM audit_log WHERE entity_id = {id} AND action = 'snoozed'")).await;
    assert_eq!(actor, vec!["dashboard".to_string()]);
    let refused = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/reassign"),
        &[("csrf", &csrf), ("rep", "mallory@evil.example"), ("reason", "x")],
    )
    .await;
    assert_eq!(refused.status, 422);
    assert!(refused.html.contains("id=\"ops-error\"") && refused.html.contains("add them to the directory first"), "{}", refused.html);
    assert!(refused.html.contains("value=\"mallory@evil.example\""), "what was typed stays");
    let r =
        post_form(&app.client, &app, &format!("/calls/{id}/reassign"), &[("csrf", &csrf), ("rep", BO), ("reason", "Bo owns the account")])
            .await;
    assert_eq!(r.status, 303);
    assert_eq!(app.calls().await[0]["rep_email"], BO);
    let actor = app.column(&format!("SELECT actor FROM audit_log WHERE entity_id = {id} AND action = 'reassigned'")).await;
    assert_eq!(actor, vec!["dashboard".to_string()]);
    assert!(!get(&app, "/").await.html.contains(&format!("id=\"pick-{id}\"")), "handed over: nothing to pick");
    app.settle().await;

    let r = post_form(&app.client, &app, &format!("/calls/{id}/cancel"), &[("csrf", &csrf), ("reason", "Duplicate of deal D-7")]).await;
    assert_eq!(r.status, 303);
    let page = get(&app, &format!("/calls/{id}")).await;
    assert!(page.html.contains("id=\"cancelled-by\">Cancelled by sales ops (dashboard): Duplicate of deal D-7."), "{}", page.html);
    app.settle().await;
    let bo = app.mails_to(BO);
    assert_eq!(kinds(&bo), vec!["first_call", "cancellation"]);
    app.stop().await;
}

#[tokio::test]
async fn the_call_page_shows_what_happened_to_the_call_who_did_it_and_why() {
    let app = TestApp::spawn().await;
    let id = open_call(&app).await;
    let body = json!({"at": "2026-11-24T10:00:00Z", "with": "Larry Page", "reason": "Larry is travelling today"});
    assert_eq!(post(&app, &format!("/api/v1/calls/{id}/book"), body).await.0, 200);
    run_until(&app, utc("2026-11-24T14:30:00Z")).await;
    let link = call_link(&app.mails_to(REP)[0]);
    let page = get(&app, &link).await;
    let trail = &page.html[page.html.find("id=\"trail-list\"").expect("the trail")..];
    let entries: Vec<&str> = trail.split("<li>").skip(1).map(|e| e.split("</li>").next().unwrap()).collect();
    let expected = [
        ("Opened for ana@seller.example, due Mon 23 Nov 2026, 13:00 UTC", "generic webhook"),
        ("Now due", "firstcall"),
        ("Booked with the customer for Tue 24 Nov 2026, 10:00 UTC with Larry Page: Larry is travelling today", "API"),
    ];
    for (i, (what, who)) in expected.iter().enumerate() {
        assert!(entries[i].contains(what) && entries[i].contains(&format!("({who})")), "entry {i}: {}\n{entries:#?}", entries[i]);
    }
    assert!(entries.iter().any(|e| e.contains("Reminder 1 sent")), "{entries:#?}");
    assert!(entries.iter().all(|e| !e.contains('{')), "no raw detail: {entries:#?}");
    app.stop().await;
}
