//! `GET /api/v1/calls`: open calls by default, most overdue first, a page at a time with an
//! opaque cursor that keeps its place while calls are added and changed between pages.

use std::collections::HashSet;

use base64::Engine;
use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::*;

const REP: &str = "ana@seller.example";

async fn complete(app: &TestApp, id: i64) {
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Orders placed an hour apart from Monday 09:00 (two at 09:00): calls due at 13:00 (two),
/// 14:00, 15:00 and 16:00, and two more at 09:00 that are done. Returns the done calls' ids in
/// the order they were marked done.
async fn calls_due_through_the_day(app: &TestApp) -> Vec<i64> {
    let t0 = app.now();
    let mut n = 0;
    for (hours, deals) in [(0, vec!["D-A", "D-B", "X-1", "X-2"]), (1, vec!["D-C"]), (2, vec!["D-D"]), (3, vec!["D-E"])] {
        app.clock.set(t0 + TimeDelta::hours(hours));
        for deal in deals {
            n += 1;
            let r = app.post_generic(&order_created(&format!("e{n}"), deal, REP, app.now())).await;
            assert_eq!(r.status(), 200);
        }
    }
    app.settle().await;
    let calls = app.calls().await;
    let mut done = vec![];
    // X-2 is marked done first, X-1 a minute later: X-1 is the most recently closed.
    for deal in ["X-2", "X-1"] {
        let id = calls.iter().find(|c| c["deal_id"] == deal).unwrap()["id"].as_i64().unwrap();
        complete(app, id).await;
        done.push(id);
        app.advance(TimeDelta::minutes(1));
    }
    done
}

fn ids(page: &Value) -> Vec<i64> {
    page["calls"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

fn query_of(cursor: &Value) -> String {
    cursor.as_str().map(|c| format!("&cursor={c}")).unwrap_or_default()
}

/// The calls of every page of the list with `filter`, one call a page (at most ten pages).
async fn one_a_page(app: &TestApp, filter: &str) -> Vec<i64> {
    let mut walked = vec![];
    let mut cursor = Value::Null;
    for _ in 0..10 {
        let page = app.get_json(&format!("/api/v1/calls?{filter}&limit=1{}", query_of(&cursor))).await;
        walked.extend(ids(&page));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    walked
}

#[tokio::test]
async fn the_call_list_shows_open_calls_by_default_most_overdue_first() {
    let app = TestApp::spawn().await;
    let done = calls_due_through_the_day(&app).await;
    app.clock.set(monday_morning() + TimeDelta::hours(5)); // 14:00: the 13:00 calls are overdue
    let page = app.get_json("/api/v1/calls").await;
    let due: Vec<&str> = page["calls"].as_array().unwrap().iter().map(|c| c["due_at"].as_str().unwrap()).collect();
    assert_eq!(
        due,
        ["2026-11-23T13:00:00Z", "2026-11-23T13:00:00Z", "2026-11-23T14:00:00Z", "2026-11-23T15:00:00Z", "2026-11-23T16:00:00Z"]
    );
    assert!(page["calls"][0]["overdue"].as_bool().unwrap());
    assert!(page["calls"].as_array().unwrap().iter().all(|c| c["state"] != "done"), "open calls only");
    assert_eq!(page["next_cursor"], Value::Null, "one page holds them all");

    // Closed calls on request: after the open ones, or alone.
    let all = app.get_json("/api/v1/calls?state=all").await;
    assert_eq!(ids(&all).len(), 7);
    assert_eq!(ids(&all)[5..], [done[1], done[0]], "closed ones last, the most recently closed first");
    assert_eq!(ids(&app.get_json("/api/v1/calls?state=closed").await), [done[1], done[0]]);
    assert_eq!(ids(&app.get_json("/api/v1/calls?state=done").await), [done[1], done[0]]);
    app.stop().await;
}

#[tokio::test]
async fn walking_every_page_returns_each_open_call_once_in_order_while_calls_change() {
    let app = TestApp::spawn().await;
    calls_due_through_the_day(&app).await;
    let open_at_start: HashSet<i64> = ids(&app.get_json("/api/v1/calls?limit=500").await).into_iter().collect();
    assert_eq!(open_at_start.len(), 5);

    let mut seen: Vec<Value> = vec![];
    let mut cursor = Value::Null;
    let mut completed_unseen = None;
    for page_no in 0.. {
        assert!(page_no < 10, "the walk ends");
        let page = app.get_json(&format!("/api/v1/calls?limit=2{}", query_of(&cursor))).await;
        assert!(page["calls"].as_array().unwrap().len() <= 2);
        seen.extend(page["calls"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
        match page_no {
            // A new order arrives, time passes: calls turn overdue and reminders go out.
            0 => {
                app.clock.set(monday_morning() + TimeDelta::hours(4));
                assert_eq!(app.post_generic(&order_created("e-new", "D-NEW", REP, app.now())).await.status(), 200);
                app.advance_and_settle(TimeDelta::hours(2), TimeDelta::minutes(30)).await;
            }
            // A call not listed yet is marked done: it leaves the list.
            1 => {
                let later = app.calls().await.into_iter().filter(|c| c["state"] != "done").map(|c| c["id"].as_i64().unwrap());
                let unseen = later.filter(|id| !seen.iter().any(|s| s["id"] == *id)).min().unwrap();
                complete(&app, unseen).await;
                completed_unseen = Some(unseen);
            }
            _ => {}
        }
    }
    let seen_ids: Vec<i64> = seen.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(seen_ids.iter().collect::<HashSet<_>>().len(), seen_ids.len(), "no call twice: {seen_ids:?}");
    let completed_unseen = completed_unseen.expect("more than two pages");
    for id in &open_at_start {
        assert!(*id == completed_unseen || seen_ids.contains(id), "call {id} was open throughout and is listed: {seen_ids:?}");
    }
    assert!(!seen_ids.contains(&completed_unseen), "a call closed before its page is not listed as open");
    let new = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-NEW").unwrap()["id"].as_i64().unwrap();
    assert!(seen_ids.contains(&new), "a call added after the cursor's place is listed");
    let keys: Vec<(String, i64)> = seen.iter().map(|c| (c["due_at"].as_str().unwrap().to_string(), c["id"].as_i64().unwrap())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by due time, then by id");
    app.stop().await;
}

#[tokio::test]
async fn pages_of_every_state_go_from_open_calls_to_the_most_recently_closed() {
    let app = TestApp::spawn().await;
    calls_due_through_the_day(&app).await;
    app.advance(TimeDelta::minutes(5));
    let open_first = ids(&app.get_json("/api/v1/calls?state=all&limit=500").await);
    let walked = one_a_page(&app, "state=all").await;
    assert_eq!(walked, open_first, "one at a time, the same calls in the same order");
    assert_eq!(walked.len(), 7);
    app.stop().await;
}

#[tokio::test]
async fn a_reps_calls_in_one_state_come_in_due_order_page_after_page() {
    let app = TestApp::spawn().await;
    let other = "bo@seller.example";
    // Two reps' orders interleaved through the morning; at 14:00 the 13:00 calls have turned
    // overdue and one of Ana's is done.
    let t0 = app.now();
    for (n, (minutes, rep)) in
        [(0, REP), (0, other), (30, REP), (60, other), (60, REP), (90, REP), (120, other), (120, REP)].into_iter().enumerate()
    {
        app.clock.set(t0 + TimeDelta::minutes(minutes));
        let r = app.post_generic(&order_created(&format!("e{n}"), &format!("D-{n}"), rep, app.now())).await;
        assert_eq!(r.status(), 200);
    }
    app.settle().await;
    let done = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-5").unwrap()["id"].as_i64().unwrap();
    complete(&app, done).await;
    app.advance_and_settle(TimeDelta::hours(5) - (app.now() - t0), TimeDelta::minutes(30)).await;
    let calls = app.calls().await;
    let expected = |states: &[&str]| {
        let mut keys: Vec<(String, i64)> = calls
            .iter()
            .filter(|c| c["rep_email"] == REP && states.contains(&c["state"].as_str().unwrap()))
            .map(|c| (c["due_at"].as_str().unwrap().to_string(), c["id"].as_i64().unwrap()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, id)| id).collect::<Vec<i64>>()
    };
    let (overdue, due) = (expected(&["overdue"]), expected(&["due"]));
    assert!(overdue.len() >= 2 && !due.is_empty(), "Ana has overdue and due calls: {calls:?}");
    for (filter, want) in [("overdue", overdue.clone()), ("due", due.clone()), ("open", expected(&["scheduled", "due", "overdue"]))] {
        let walked = one_a_page(&app, &format!("rep={REP}&state={filter}")).await;
        assert_eq!(walked, want, "Ana's {filter} calls, one a page, by due time: {calls:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_cursor_or_an_offset_is_refused_naming_the_parameter() {
    let app = TestApp::spawn().await;
    calls_due_through_the_day(&app).await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let bad_cursors = [
        "not a cursor!".to_string(),
        String::new(),
        b64("hello"),
        b64(r#"{"after":"open","due_at":"2026-11-23T13:00:00Z","id":1,"extra":1}"#),
        b64(r#"{"after":"sideways","due_at":"2026-11-23T13:00:00Z","id":1}"#),
        b64(r#"{"after":"open","due_at":"yesterday","id":1}"#),
        b64(r#"{"after":"closed","id":1}"#),
    ];
    for cursor in bad_cursors {
        let r = app.api(reqwest::Method::GET, &format!("/api/v1/calls?cursor={cursor}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "cursor {cursor:?}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["field"], "cursor", "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("next_cursor"), "says where a cursor comes from: {b}");
    }
    // A rep that is no email address: a NUL (which PostgreSQL cannot compare) and other bytes
    // schemathesis sends, or plain text.
    let bad_rep = "rep=%C2%9E%C3%9F%C3%A6%01e%C2%AB%0E11%C2%A1%00%F2%94%BF%99B%7D&limit=1150736";
    for (query, field) in [("offset=100", "offset"), ("limit=0", "limit"), ("state=lost", "state"), (bad_rep, "rep"), ("rep=ana", "rep")] {
        let r = app.api(reqwest::Method::GET, &format!("/api/v1/calls?{query}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["field"], field, "{b}");
    }
    let r = app.api(reqwest::Method::GET, "/api/v1/calls?offset=100").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("cursor"), "an offset is pointed to the cursor");
    app.stop().await;
}
