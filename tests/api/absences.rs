//! Out of office: sales ops record that a rep is away and who covers. Meanwhile the recap,
//! invite and reminders go to the delegate with the rep in copy, and the call is due, and
//! escalates, on the delegate's clock.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const DELEGATE: &str = "ben@seller.example";
const MANAGER: &str = "mo@seller.example";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.api(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Ana works in UTC, Ben, who covers for her, in New York; Mo manages both.
async fn directory(app: &TestApp) {
    for (email, name, tz) in [(REP, "Ana Ávila", "UTC"), (DELEGATE, "Ben Brooks", "America/New_York")] {
        assert_eq!(app.put_rep(email, &json!({"name": name, "timezone": tz, "manager_email": MANAGER})).await.status(), 200);
    }
    assert_eq!(app.put_rep(MANAGER, &json!({"name": "Mo Manager", "timezone": "UTC"})).await.status(), 200);
}

fn kinds(mails: &[testkit::mail::ParsedMail]) -> Vec<String> {
    mails.iter().map(|m| m.message_id.clone().unwrap_or_default().split('.').nth(1).unwrap_or("").to_string()).collect()
}

async fn run_until(app: &TestApp, t: DateTime<Utc>) {
    app.advance_and_settle(t - app.now(), TimeDelta::minutes(30)).await;
}

#[tokio::test]
async fn while_the_rep_is_away_the_delegate_gets_the_call_with_the_rep_in_copy_on_the_delegates_clock() {
    let app = TestApp::spawn().await;
    directory(&app).await;
    let (status, absence) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/reps/{REP}/absences"),
        Some(json!({"first_day": "2026-11-23", "last_day": "2026-11-27", "delegate": DELEGATE, "reason": "Holiday"})),
    )
    .await;
    assert_eq!(status, 201, "{absence}");
    assert_eq!(absence["delegate_email"], DELEGATE);
    assert_eq!(absence["created_by"], "api");
    let (_, listed) = send(&app, reqwest::Method::GET, &format!("/api/v1/reps/{REP}/absences"), None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // Monday 09:00 UTC is 04:00 in New York: four of Ben's business hours end at 13:00 EST
    // (18:00 UTC), not at 13:00 UTC as on Ana's clock.
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let call = &app.calls().await[0];
    assert_eq!(call["rep_email"], REP, "the call stays Ana's");
    assert_eq!(call["covered_by"], DELEGATE);
    assert_eq!(call["due_at"], "2026-11-23T18:00:00Z");

    let first = &app.mails_to(DELEGATE)[0];
    assert_eq!(first.to[0].address, DELEGATE);
    assert_eq!(first.cc.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), vec![REP], "Ana in copy");
    assert_eq!(app.mails_to(REP).len(), 1, "the copy reaches Ana");
    let text = first.text.as_deref().unwrap();
    assert!(text.starts_with("Hi Ben Brooks,"), "{text}");
    assert!(text.contains("Ana Ávila is out of office until Fri 27 Nov 2026, and you are covering"), "{text}");
    assert!(text.contains("13:00 EST (America/New_York)"), "the due time on Ben's clock: {text}");
    assert!(first.html.as_deref().unwrap().contains("id=\"covering\""));
    let ics = first.calendar.as_ref().unwrap().body.replace("\r\n ", "");
    let attendee = ics.lines().find(|l| l.starts_with("ATTENDEE")).unwrap();
    assert!(attendee.to_lowercase().ends_with(&format!("mailto:{DELEGATE}")), "the invite is Ben's: {attendee}");

    // On Ana's clock the call would have escalated 8 hours overdue, at 21:00 UTC; on Ben's it
    // escalates at 02:00 UTC. Ben's 09:00 and 14:00 EST reminders went to him, Ana in copy.
    run_until(&app, utc("2026-11-24T01:30:00Z")).await;
    assert!(app.mails_to(MANAGER).is_empty(), "no escalation on Ana's clock");
    let to_ben = app.mails_to(DELEGATE);
    assert_eq!(kinds(&to_ben), vec!["first_call", "reminder", "reminder"]);
    assert_eq!(to_ben[2].cc[0].address, REP);
    run_until(&app, utc("2026-11-24T02:30:00Z")).await;
    assert_eq!(kinds(&app.mails_to(MANAGER)), vec!["escalation"], "8 hours overdue on Ben's clock");

    // Ana is back early: sales ops remove the absence. The call goes back to her clock and her
    // inbox: the updated invite goes to her alone.
    let id = absence["id"].as_i64().unwrap();
    let (status, removed) = send(&app, reqwest::Method::DELETE, &format!("/api/v1/reps/{REP}/absences/{id}"), None).await;
    assert_eq!(status, 200, "{removed}");
    app.settle().await;
    let call = &app.calls().await[0];
    assert_eq!(call["covered_by"], Value::Null);
    assert_eq!(call["due_at"], "2026-11-23T13:00:00Z");
    let to_ana = app.mails_to(REP);
    let last = to_ana.last().unwrap();
    assert_eq!(kinds(std::slice::from_ref(last)), vec!["first_call"]);
    assert_eq!(last.to[0].address, REP);
    assert!(last.cc.is_empty());
    assert_eq!(app.mails_to(DELEGATE).len(), 3, "nothing more to Ben");
    assert_eq!(kinds(&app.mails_to(MANAGER)), vec!["escalation"], "the escalation is not sent twice");
    let audit = app.column("SELECT actor || ' ' || action FROM audit_log WHERE entity = 'absence' ORDER BY id").await;
    assert_eq!(audit, vec!["api absence_recorded", "api absence_removed"]);
    app.stop().await;
}

#[tokio::test]
async fn an_absence_recorded_later_moves_the_calls_due_during_it_and_sends_the_invite_to_the_delegate() {
    let app = TestApp::spawn().await;
    directory(&app).await;
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert_eq!(app.calls().await[0]["due_at"], "2026-11-23T13:00:00Z");
    assert_eq!(kinds(&app.mails_to(REP)), vec!["first_call"]);

    // Ana falls ill at 10:00: Ben covers today.
    app.advance_and_settle(TimeDelta::hours(1), TimeDelta::minutes(30)).await;
    let body = json!({"first_day": "2026-11-23", "last_day": "2026-11-23", "delegate": DELEGATE});
    let (status, absence) = send(&app, reqwest::Method::POST, &format!("/api/v1/reps/{REP}/absences"), Some(body)).await;
    assert_eq!(status, 201, "{absence}");
    assert_eq!(absence["reason"], Value::Null);
    app.settle().await;
    let call = &app.calls().await[0];
    assert_eq!(call["covered_by"], DELEGATE);
    assert_eq!(call["due_at"], "2026-11-23T18:00:00Z", "due on Ben's clock");
    let to_ben = app.mails_to(DELEGATE);
    assert_eq!(kinds(&to_ben), vec!["first_call"], "the moved invite, to Ben");
    assert_eq!(to_ben[0].cc[0].address, REP);
    assert!(to_ben[0].calendar.as_ref().unwrap().body.contains("SEQUENCE:1"));
    // Tuesday Ana is back: the 09:00 EST reminder (14:00 UTC) goes to her alone.
    run_until(&app, utc("2026-11-24T14:30:00Z")).await;
    let to_ana = app.mails_to(REP);
    let reminders: Vec<_> = to_ana.iter().filter(|m| kinds(std::slice::from_ref(m)) == ["reminder"]).collect();
    let last = reminders.last().expect("a reminder");
    assert_eq!(last.to[0].address, REP);
    assert!(last.cc.is_empty(), "Ana is back: no copy, no delegate");
    app.stop().await;
}

#[tokio::test]
async fn a_promise_reminder_due_while_its_owner_is_away_goes_to_who_covers_with_the_owner_in_copy() {
    let app = TestApp::spawn().await;
    directory(&app).await;
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let (status, _) = send(&app, reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"), Some(json!({"outcome": "aligned"}))).await;
    assert_eq!(status, 200);
    app.settle().await;
    // Ana owes the SSO set-up for Thursday 10 December: reminded five business days before
    // (Thursday 3 December) and the day before, at 09:00 UTC. She is away 2 to 4 December.
    let body = json!({"first_day": "2026-12-02", "last_day": "2026-12-04", "delegate": DELEGATE, "reason": "Conference"});
    assert_eq!(send(&app, reqwest::Method::POST, &format!("/api/v1/reps/{REP}/absences"), Some(body)).await.0, 201);
    let promise_mails = |to: &str| -> Vec<testkit::mail::ParsedMail> {
        app.mails_to(to).into_iter().filter(|m| m.message_id.as_deref().is_some_and(|id| id.starts_with("promise-"))).collect()
    };
    app.advance(utc("2026-12-03T09:30:00Z") - app.now());
    app.settle().await;
    let to_ben = promise_mails(DELEGATE);
    assert_eq!(to_ben.len(), 1, "the reminder goes to who covers");
    assert_eq!(to_ben[0].to[0].address, DELEGATE);
    assert_eq!(to_ben[0].cc.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), vec![REP], "Ana in copy");
    let text = to_ben[0].text.as_deref().unwrap();
    assert!(text.starts_with("Hi Ben Brooks,"), "{text}");
    assert!(text.contains("Ana Ávila is out of office until Fri 4 Dec 2026, and you are covering for them"), "{text}");
    assert!(text.contains("SAML SSO configured with Okta"), "{text}");
    // Back on Wednesday 9 December: the day-before reminder is Ana's alone.
    app.advance(utc("2026-12-09T09:30:00Z") - app.now());
    app.settle().await;
    assert_eq!(promise_mails(DELEGATE).len(), 1, "nothing more to Ben");
    let last = promise_mails(REP).into_iter().last().unwrap();
    assert_eq!(last.to[0].address, REP);
    assert!(last.cc.is_empty());
    assert!(last.text.as_deref().unwrap().starts_with("Hi Ana Ávila,"));
    app.stop().await;
}

#[tokio::test]
async fn a_bad_absence_is_refused_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    directory(&app).await;
    let path = format!("/api/v1/reps/{REP}/absences");
    let ok = json!({"first_day": "2026-11-30", "last_day": "2026-12-04", "delegate": DELEGATE});
    let cases = [
        (json!({"last_day": "2026-12-04", "delegate": DELEGATE}), "first_day", "is required"),
        (json!({"first_day": "30/11/2026", "last_day": "2026-12-04", "delegate": DELEGATE}), "first_day", "not a day such as"),
        (json!({"first_day": "2026-11-30", "last_day": "2026-12-04"}), "delegate", "is required"),
        (
            json!({"first_day": "2026-11-30", "last_day": "2026-12-04", "delegate": "zoe@elsewhere.example"}),
            "delegate",
            "not in the rep directory",
        ),
        (json!({"first_day": "2026-11-30", "last_day": "2026-12-04", "delegate": REP}), "delegate", "cannot cover for themselves"),
        (json!({"first_day": "2026-12-04", "last_day": "2026-11-30", "delegate": DELEGATE}), "last_day", "is before first_day"),
        (json!({"first_day": "2026-11-01", "last_day": "2026-11-20", "delegate": DELEGATE}), "last_day", "has passed"),
        (json!({"first_day": "2026-12-01", "last_day": "2028-01-01", "delegate": DELEGATE}), "last_day", "at most 366 days"),
        (json!({"first_day": "9999-12-30", "last_day": "9999-12-31", "delegate": DELEGATE}), "first_day", "more than 731 days ahead"),
    ];
    for (body, field, says) in cases {
        let (status, err) = send(&app, reqwest::Method::POST, &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
        assert!(err.to_string().contains(says), "{body}: {err}");
    }
    let (status, err) = send(&app, reqwest::Method::POST, &path, Some(json!({"first_day": "2026-11-30", "extra": 1}))).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("extra")), "{err}");
    assert_eq!(app.count("rep_absences").await, 0, "nothing recorded");

    assert_eq!(send(&app, reqwest::Method::POST, &path, Some(ok.clone())).await.0, 201);
    let overlapping = json!({"first_day": "2026-12-04", "last_day": "2026-12-08", "delegate": MANAGER});
    let (status, err) = send(&app, reqwest::Method::POST, &path, Some(overlapping)).await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("first_day")), "{err}");
    assert!(err.to_string().contains("overlaps the absence from 2026-11-30 to 2026-12-04"), "{err}");
    let nobody = send(&app, reqwest::Method::POST, "/api/v1/reps/nobody@seller.example/absences", Some(ok)).await;
    assert_eq!(nobody.0, 404, "{}", nobody.1);
    assert_eq!(send(&app, reqwest::Method::DELETE, &format!("{path}/999"), None).await.0, 404);
    let unauthenticated = reqwest::Client::new().get(app.url(&path)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(app.count("rep_absences").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn sales_ops_record_and_remove_an_absence_on_the_page_and_the_call_page_and_preview_say_who_covers() {
    use crate::pages::{get, log_in, post_form};
    let owned = TestApp::spawn().await;
    let app = &owned;
    directory(app).await;
    assert_eq!(get(app, "/absences").await.status, 303, "signed out: to the login");
    log_in(app, API_TOKEN).await;
    let page = get(app, "/absences").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("id=\"no-absences\""), "{}", page.html);
    let csrf = page.csrf();

    // A form without who covers comes back saying so, with what was typed; a forged one is refused.
    let form = |delegate: &'static str, csrf: String| {
        vec![
            ("csrf", csrf),
            ("rep", REP.to_string()),
            ("first_day", "2026-11-23".to_string()),
            ("last_day", "2026-11-27".to_string()),
            ("delegate", delegate.to_string()),
            ("reason", "Holiday".to_string()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(&app.client, app, "/absences", &pairs).await
    };
    let refused = post(form("", csrf.clone())).await;
    assert_eq!(refused.status, 422);
    assert!(refused.html.contains("Who covers: is required"), "{}", refused.html);
    assert!(refused.html.contains("value=\"2026-11-27\""), "what was typed stays");
    let stranger = post(form("zoe@elsewhere.example", csrf.clone())).await;
    assert_eq!(stranger.status, 422);
    assert!(stranger.html.contains("Who covers: zoe@elsewhere.example is not in the rep directory"), "{}", stranger.html);
    assert_eq!(post(form(DELEGATE, "forged".into())).await.status, 403);
    assert_eq!(app.count("rep_absences").await, 0, "nothing recorded");

    let recorded = post(form(DELEGATE, csrf.clone())).await;
    assert_eq!(recorded.status, 303);
    let listed = get(app, "/absences?done=recorded").await;
    assert!(
        listed.html.contains("Ana Ávila (ana@seller.example)") && listed.html.contains("Ben Brooks (ben@seller.example)"),
        "{}",
        listed.html
    );
    assert!(listed.html.contains("Mon 23 Nov 2026 to Fri 27 Nov 2026") && listed.html.contains(">away</span>"), "{}", listed.html);
    let audit = app.column("SELECT actor || ' ' || action FROM audit_log WHERE entity = 'absence'").await;
    assert_eq!(audit, vec!["dashboard absence_recorded"]);

    // The schedule preview for Ana is on Ben's clock, and says so.
    let preview = get(app, "/?who=ana%40seller.example&at=2026-11-23T09%3A00#preview").await;
    assert_eq!(preview.status, 200);
    assert!(
        preview.html.contains(
            "Ana Ávila (ana@seller.example) is out of office then (until Fri 27 Nov 2026): Ben Brooks (ben@seller.example) covers"
        ),
        "{}",
        preview.html
    );
    assert!(preview.html.contains("America&#x2f;New_York"), "{}", preview.html);
    let nobody = get(app, "/?who=zoe%40elsewhere.example#preview").await;
    assert_eq!(nobody.status, 400);
    assert!(nobody.html.contains("Rep: zoe@elsewhere.example is not in the rep directory"), "{}", nobody.html);

    // A call opened now: its page says who covers.
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let call = get(app, &format!("/calls/{id}")).await;
    assert!(
        call.html.contains("Ana Ávila is out of office until Fri 27 Nov 2026: Ben Brooks (ben@seller.example) is covering"),
        "{}",
        call.html
    );
    assert!(call.html.contains("id=\"planned-by\""), "{}", call.html);

    // Removed: the list is empty and the call page no longer says it.
    let id_absence = app.column("SELECT CAST(id AS TEXT) FROM rep_absences").await.remove(0);
    let removed = post_form(&app.client, app, &format!("/absences/{id_absence}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(removed.status, 303);
    assert!(get(app, "/absences").await.html.contains("id=\"no-absences\""));
    assert!(!get(app, &format!("/calls/{id}")).await.html.contains("id=\"covering\""));
    assert_eq!(post_form(&app.client, app, &format!("/absences/{id_absence}/remove"), &[("csrf", &csrf)]).await.status, 404);
    owned.stop().await;
}
