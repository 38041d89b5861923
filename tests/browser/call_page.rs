//! What a rep and sales ops do in the browser: open the link from the email, read the recap,
//! mark the call done, see it done on the dashboard; bad links; phone and desktop layouts; CRM
//! text that tries to inject script.

use chrono::TimeDelta;
use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{artifacts, png_size, set_viewport, text_of, with_browser};
use crate::helpers::*;

const REP: &str = "ana@seller.example";

/// A rep in Berlin, the proposal and the order; returns the call id and the link from its email.
async fn call_from_email(app: &TestApp, rep_name: &str, proposal_body: serde_json::Value, account: &str) -> (i64, String) {
    assert_eq!(app.put_rep(REP, &json!({"name": rep_name, "timezone": "Europe/Berlin"})).await.status(), 200);
    app.put_proposal("generic", "D-1", &proposal_body).await;
    let mut order = order_created("e1", "D-1", REP, app.now());
    order["order"]["account_name"] = json!(account);
    assert_eq!(app.post_generic(&order).await.status(), 200);
    app.settle().await;
    let mails = app.mails_to(REP);
    assert_eq!(mails.len(), 1, "the recap email");
    (app.calls().await[0]["id"].as_i64().unwrap(), call_link(&mails[0]))
}

async fn open(client: &Client, app: &TestApp, path: &str) {
    client.goto(&app.url(path)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click #{id}: {e}"));
}

/// Clicks `id`, a button that submits a form, and waits for the page the answer brings.
async fn submit(client: &Client, id: &str) {
    client.execute("window.leftBehind = true", vec![]).await.unwrap();
    click(client, id).await;
    for _ in 0..200 {
        let old = client.execute("return window.leftBehind === true", vec![]).await.map(|v| v.as_bool() == Some(true)).unwrap_or(true);
        if !old {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("#{id} brought no new page within 10 s");
}

async fn type_into(client: &Client, id: &str, text: &str) {
    client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}")).send_keys(text).await.unwrap();
}

async fn log_in(client: &Client, app: &TestApp) {
    open(client, app, "/").await;
    text_of(client, "login-form").await;
    type_into(client, "token", API_TOKEN).await;
    click(client, "login").await;
    text_of(client, "calls").await;
}

#[tokio::test]
async fn a_rep_marks_the_call_done_from_the_email_and_sales_ops_see_it_done() {
    let app = TestApp::spawn().await;
    let (id, link) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    with_browser(|client| async move {
        open(&client, &app, &link).await;
        let recap = text_of(&client, "recap").await;
        assert!(recap.contains("Single sign-on with Okta"), "a requirement: {recap}");
        assert!(recap.contains("Data residency in the EU") && recap.contains("has no commitment"), "a gap: {recap}");
        assert_eq!(text_of(&client, "due").await, "Mon 23 Nov 2026, 14:00 CET (Europe/Berlin)");
        assert!(text_of(&client, "history").await.contains("Recap and invite"));

        click(&client, "outcome-adjusted").await;
        type_into(&client, "notes", "Moved SSO to 10 Dec; EU hosting follows in Q1.").await;
        click(&client, "submit-done").await;
        let done = text_of(&client, "done").await;
        assert!(done.contains("Adjusted") && done.contains("Moved SSO to 10 Dec; EU hosting follows in Q1."), "{done}");
        assert_eq!(text_of(&client, "call-state").await, "Done");
        assert!(client.find(Locator::Id("done-form")).await.is_err(), "no form once done");

        log_in(&client, &app).await;
        // The dashboard opens on open calls; a done call is among the closed ones.
        open(&client, &app, "/?state=closed").await;
        let row = text_of(&client, &format!("call-{id}")).await;
        assert!(row.contains("Acme Corp") && row.contains("Done") && row.contains("Adjusted"), "{row}");
        std::fs::write(artifacts().join("dashboard-desktop.png"), client.screenshot().await.unwrap()).unwrap();
        // From the dashboard, the call page opens without a link.
        client.find(Locator::Css(&format!("#call-{id} a"))).await.unwrap().click().await.unwrap();
        assert!(text_of(&client, "done").await.contains("Adjusted"));
        assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["completed_by"], "rep");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tampered_and_expired_links_show_what_to_do() {
    let app = TestApp::spawn().await;
    let (_, link) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    let mut tampered: Vec<char> = link.chars().collect();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == 'x' { 'y' } else { 'x' };
    let tampered: String = tampered.into_iter().collect();
    let clock = app.clock.clone();
    with_browser(|client| async move {
        open(&client, &app, &tampered).await;
        let page = text_of(&client, "error").await;
        assert!(page.contains("This link is not valid"), "{page}");
        assert!(client.find(Locator::Id("recap")).await.is_err());

        // links.ttl_hours is 336 (14 days).
        clock.advance(TimeDelta::hours(337));
        open(&client, &app, &link).await;
        let page = text_of(&client, "error").await;
        assert!(page.contains("This link has expired") && page.contains("newest email"), "{page}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_call_page_reads_on_a_phone_and_a_desktop() {
    let app = TestApp::spawn().await;
    let (_, link) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    with_browser(|client| async move {
        for (name, width, height) in [("phone", 375u32, 812u32), ("desktop", 1280, 900)] {
            open(&client, &app, &link).await;
            set_viewport(&client, width, height).await;
            text_of(&client, "recap").await;
            let viewport = client
                .execute("return [window.innerWidth, window.innerHeight, document.documentElement.scrollWidth]", vec![])
                .await
                .unwrap();
            let size = |i: usize| viewport[i].as_u64().unwrap();
            assert_eq!((size(0), size(1)), (width as u64, height as u64), "{name}: the page is {width} × {height} px");
            assert!(size(2) <= size(0), "{name}: the page scrolls sideways ({} px in {} px)", size(2), size(0));
            let png = client.screenshot().await.unwrap();
            assert_eq!(png_size(&png), (width, height), "{name} screenshot size");
            let path = artifacts().join(format!("call-page-{name}.png"));
            std::fs::write(&path, &png).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), png.len() as u64);
            // The form further down, as the rep sees it after the call.
            let form = client.find(Locator::Id("mark-done")).await.unwrap().screenshot().await.unwrap();
            let (form_width, _) = png_size(&form);
            assert!(form_width <= width, "{name}: the form is {form_width} px wide");
            std::fs::write(artifacts().join(format!("call-form-{name}.png")), &form).unwrap();
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_recap_email_reads_on_a_phone() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "Europe/Berlin"})).await.status(), 200);
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    assert_eq!(app.post_generic(&order_created("e1", "D-1", REP, app.now())).await.status(), 200);
    app.settle().await;
    let mail = app.mails_to(REP).pop().expect("the recap email");
    // The HTML part as a mail app shows it, from a file (no server behind it).
    let file = artifacts().join("recap-email.html");
    std::fs::write(&file, mail.html.as_deref().expect("an HTML part")).unwrap();
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        client.goto(&format!("file://{}", file.display())).await.unwrap();
        set_viewport(&client, width, height).await;
        let shown: String =
            client.execute("return document.body.innerText", vec![]).await.unwrap().as_str().unwrap_or_default().to_string();
        for expected in ["Single sign-on with Okta", "Dana Decider", "Pro seats"] {
            assert!(shown.contains(expected), "the recap shows {expected:?}: {shown}");
        }
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the email scrolls sideways on a phone ({scroll} px in {width} px)");
        let png = client.screenshot().await.unwrap();
        assert_eq!(png_size(&png), (width, height));
        std::fs::write(artifacts().join("recap-email-phone.png"), &png).unwrap();
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn script_in_crm_text_shows_as_text_and_never_runs() {
    let app = TestApp::spawn().await;
    let payload =
        r#"<img id="injected" src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>" onmouseover="alert(1)"#;
    let mut body = proposal(REP);
    body["requirements"][0]["text"] = json!(format!("SSO {payload}"));
    let (id, link) = call_from_email(&app, &format!("Ana {payload}"), body, &format!("Acme {payload}")).await;
    with_browser(|client| async move {
        open(&client, &app, &link).await;
        assert_eq!(text_of(&client, "account").await, format!("Acme {payload}"));
        assert!(text_of(&client, "rep").await.starts_with(&format!("Ana {payload}")));
        assert!(text_of(&client, "recap").await.contains(&format!("SSO {payload}")));
        click(&client, "outcome-at_risk").await;
        type_into(&client, "notes", payload).await;
        click(&client, "submit-done").await;
        assert_eq!(text_of(&client, "notes-done").await, payload);
        let pages = [("call page", link.clone()), ("dashboard", "/?state=all".to_string())];
        log_in(&client, &app).await;
        for (name, path) in pages {
            open(&client, &app, &path).await;
            let found =
                client.execute("return [document.querySelectorAll('#injected, script').length, document.title]", vec![]).await.unwrap();
            assert_eq!(found[0], 0, "{name}: an injected element");
            assert_ne!(found[1], "pwned", "{name}: injected script ran");
            assert!(client.get_alert_text().await.is_err(), "{name}: an alert is open");
        }
        assert!(text_of(&client, &format!("call-{id}")).await.contains(&format!("Acme {payload}")));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_a_rep_moves_a_promise_and_marks_another_delivered_from_the_email_link() {
    let app = TestApp::spawn().await;
    let (id, link) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    let (sso, connector) = (promises[0]["id"].as_i64().unwrap(), promises[1]["id"].as_i64().unwrap());
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        open(&client, &app, &link).await;
        set_viewport(&client, width, height).await;
        let section = text_of(&client, "promises").await;
        assert!(section.contains("SAML SSO configured with Okta") && section.contains("Native Salesforce connector"), "{section}");
        assert!(section.contains("Thu 10 Dec 2026") && section.contains("Needed by"), "{section}");

        // It will be late: a new date and why, without the reason first (the page says what is missing).
        click(&client, &format!("late-{sso}")).await;
        client.execute(&format!("document.getElementById('slip-date-{sso}').value = '2026-12-18'"), vec![]).await.unwrap();
        client.execute(&format!("document.getElementById('slip-reason-{sso}').removeAttribute('required')"), vec![]).await.unwrap();
        submit(&client, &format!("slip-{sso}")).await;
        assert_eq!(text_of(&client, &format!("promise-error-{sso}")).await, "Say why, in a sentence the customer could hear.");
        assert_eq!(text_of(&client, &format!("promise-state-{sso}")).await, "Open", "nothing changed");
        client.execute(&format!("document.getElementById('slip-date-{sso}').value = '2026-12-18'"), vec![]).await.unwrap();
        type_into(&client, &format!("slip-reason-{sso}"), "Okta admin is on leave until the 17th").await;
        submit(&client, &format!("slip-{sso}")).await;
        assert_eq!(text_of(&client, &format!("promise-state-{sso}")).await, "Slipped");
        assert_eq!(text_of(&client, &format!("promise-reason-{sso}")).await, "Okta admin is on leave until the 17th");
        assert!(text_of(&client, &format!("promise-{sso}")).await.contains("Fri 18 Dec 2026"));

        submit(&client, &format!("deliver-{connector}")).await;
        assert_eq!(text_of(&client, &format!("promise-state-{connector}")).await, "Delivered");
        assert!(client.find(Locator::Id(&format!("deliver-{connector}"))).await.is_err(), "no actions once delivered");

        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the page scrolls sideways on a phone ({scroll} px in {width} px)");
        let shot = client.find(Locator::Id("promises")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("call-promises-phone.png"), &shot).unwrap();
        let api = app.get_json("/api/v1/promises?state=all").await;
        assert_eq!(api["promises"][0]["state"], "slipped");
        assert_eq!(api["promises"][0]["deliver_by"], "2026-12-18");
        assert_eq!(api["promises"][1]["state"], "delivered");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_a_rep_books_the_call_with_the_customer_from_the_email_link() {
    let app = TestApp::spawn().await;
    let (id, link) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        open(&client, &app, &link).await;
        set_viewport(&client, width, height).await;
        let section = text_of(&client, "steer").await;
        assert!(section.contains("Times are in Europe/Berlin"), "{section}");

        // Booked for Wednesday 15:00 in Berlin, first without a reason (the page says what is missing).
        click(&client, "book-open").await;
        client.execute("document.getElementById('book-at').value = '2026-11-25T15:00'", vec![]).await.unwrap();
        type_into(&client, "book-with", "Larry, CTO").await;
        client.execute("document.getElementById('book-reason').removeAttribute('required')", vec![]).await.unwrap();
        submit(&client, "book-submit").await;
        assert_eq!(text_of(&client, "steer-error").await, "Say why, for your manager and the call's history.");
        assert!(client.find(Locator::Id("booked")).await.is_err(), "nothing changed");
        client.execute("document.getElementById('book-at').value = '2026-11-25T15:00'", vec![]).await.unwrap();
        type_into(&client, "book-with", "Larry, CTO").await;
        type_into(&client, "book-reason", "Larry is travelling until Wednesday").await;
        submit(&client, "book-submit").await;
        assert_eq!(text_of(&client, "booked").await, "Wed 25 Nov 2026, 15:00 CET (Europe/Berlin) with Larry, CTO");
        assert!(text_of(&client, "due").await.starts_with("Wed 25 Nov 2026, 15:30"), "due at the end of the booked call");
        // And no reminders before Tuesday 10:00 in Berlin.
        click(&client, "snooze-open").await;
        client.execute("document.getElementById('snooze-until').value = '2026-11-24T10:00'", vec![]).await.unwrap();
        type_into(&client, "snooze-reason", "Travelling on Monday").await;
        submit(&client, "snooze-submit").await;
        assert_eq!(text_of(&client, "snoozed-until").await, "Tue 24 Nov 2026, 10:00 CET (Europe/Berlin)");

        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the page scrolls sideways on a phone ({scroll} px in {width} px)");
        let shot = client.find(Locator::Id("steer")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("call-booked-phone.png"), &shot).unwrap();
        // The call's history says who booked it and why, and fits the phone.
        click(&client, "trail-open").await;
        let trail = text_of(&client, "trail-list").await;
        assert!(trail.contains("Booked with the customer for Wed 25 Nov 2026, 15:00 CET (Europe/Berlin) with Larry, CTO: Larry is travelling until Wednesday (the rep (email link))"), "{trail}");
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the history scrolls sideways on a phone ({scroll} px in {width} px)");
        // The updated invite went to the rep: the same event at the booked time, a higher SEQUENCE.
        app.settle().await;
        let mails = app.mails_to(REP);
        assert_eq!(mails.len(), 2, "the recap and the updated invite");
        let invite = &mails[1].calendar.as_ref().expect("an invite").body;
        assert!(invite.contains("SEQUENCE:1") && invite.contains("DTSTART;TZID=Europe/Berlin:20261125T150000"), "{invite}");
        assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["booked_with"], "Larry, CTO");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_sales_ops_pick_the_rep_for_a_call_in_their_inbox() {
    let app = TestApp::spawn().await;
    let bo = "bo@partner.example";
    assert_eq!(app.put_rep(bo, &json!({"name": "Bo Berg", "timezone": "UTC"})).await.status(), 200);
    // The CRM names an address firstcall may not email: the call is with sales ops.
    assert_eq!(app.post_generic(&order_created("e1", "D-1", "eve@evil.example", app.now())).await.status(), 200);
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        set_viewport(&client, width, height).await;
        log_in(&client, &app).await;
        open(&client, &app, &format!("/calls/{id}")).await;
        let ops = text_of(&client, "ops").await;
        assert!(ops.starts_with("Pick the rep"), "{ops}");
        type_into(&client, "assign-rep", bo).await;
        type_into(&client, "assign-reason", "Bo owns the account").await;
        let shot = client.find(Locator::Id("ops")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("call-pick-rep-phone.png"), &shot).unwrap();
        submit(&client, "assign-submit").await;
        assert!(text_of(&client, "rep").await.contains(bo), "the page shows the new rep");
        assert!(client.find(Locator::Id("fallback-reason")).await.is_err(), "no longer with sales ops");
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the page scrolls sideways on a phone ({scroll} px in {width} px)");
        app.settle().await;
        assert_eq!(app.mails_to(bo).len(), 1, "the recap and invite go to the rep picked");
        // Then cancelled, with a reason the rep reads.
        click(&client, "cancel-open").await;
        type_into(&client, "cancel-reason", "The customer chose another vendor").await;
        submit(&client, "cancel-submit").await;
        assert_eq!(
            text_of(&client, "cancelled-by").await,
            "Cancelled by sales ops (dashboard): The customer chose another vendor. There is nothing to mark."
        );
        app.settle().await;
        let mails = app.mails_to(bo);
        assert_eq!(mails.len(), 2, "the calendar cancellation");
        assert!(mails[1].text.as_deref().unwrap().contains("sales ops (dashboard) cancelled it: The customer chose another vendor"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_charts_read_on_a_phone_and_a_desktop() {
    let app = TestApp::spawn().await;
    let (id, _) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    app.advance(TimeDelta::hours(2));
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "adjusted"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    with_browser(|client| async move {
        log_in(&client, &app).await;
        for (name, width, height) in [("phone", 375u32, 812u32), ("desktop", 1280, 900)] {
            open(&client, &app, "/insights").await;
            set_viewport(&client, width, height).await;
            let figure = text_of(&client, "chart-per-week").await;
            assert!(figure.contains("First calls on time, per week"), "{figure}");
            let found = client.execute("return document.querySelectorAll('figure.chart svg').length", vec![]).await.unwrap();
            assert_eq!(found, 5, "{name}: five charts drawn");
            let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
            assert!(scroll <= width as u64, "{name}: the page scrolls sideways ({scroll} px in {width} px)");
            let png = client.screenshot().await.unwrap();
            assert_eq!(png_size(&png), (width, height));
            std::fs::write(artifacts().join(format!("charts-{name}.png")), &png).unwrap();
            let chart = client.find(Locator::Id("chart-order-to-call")).await.unwrap().screenshot().await.unwrap();
            std::fs::write(artifacts().join(format!("chart-order-to-call-{name}.png")), &chart).unwrap();
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_sales_ops_record_that_a_rep_is_away_and_the_call_goes_to_who_covers() {
    let app = TestApp::spawn().await;
    let ben = "ben@seller.example";
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "UTC"})).await.status(), 200);
    assert_eq!(app.put_rep(ben, &json!({"name": "Ben Brooks", "timezone": "America/New_York"})).await.status(), 200);
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        set_viewport(&client, width, height).await;
        log_in(&client, &app).await;
        click(&client, "absences-link").await;
        text_of(&client, "no-absences").await;
        type_into(&client, "a-rep", REP).await;
        client.execute("document.getElementById('a-first').value = '2026-11-23'", vec![]).await.unwrap();
        client.execute("document.getElementById('a-last').value = '2026-11-27'", vec![]).await.unwrap();
        // Without who covers, the browser's own check is passed and the page says what is missing.
        client.execute("document.getElementById('a-delegate').removeAttribute('required')", vec![]).await.unwrap();
        submit(&client, "absence-submit").await;
        assert_eq!(text_of(&client, "absence-error").await, "Who covers: is required: who covers, a rep in the directory");
        type_into(&client, "a-delegate", ben).await;
        type_into(&client, "a-reason", "Holiday").await;
        let shot = client.find(Locator::Id("record")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("absence-phone.png"), &shot).unwrap();
        submit(&client, "absence-submit").await;
        let listed = text_of(&client, "absence-list").await;
        assert!(listed.contains("Ana Ávila") && listed.contains("Ben Brooks") && listed.contains("Holiday"), "{listed}");
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the page scrolls sideways on a phone ({scroll} px in {width} px)");

        // An order now: Ben gets the recap, Ana the copy, and the call page says who covers.
        assert_eq!(app.post_generic(&order_created("e1", "D-1", REP, app.now())).await.status(), 200);
        app.settle().await;
        let to_ben = app.mails_to(ben);
        assert_eq!(to_ben.len(), 1);
        assert_eq!(to_ben[0].cc[0].address, REP);
        let id = app.calls().await[0]["id"].as_i64().unwrap();
        open(&client, &app, &format!("/calls/{id}")).await;
        assert!(text_of(&client, "covering").await.starts_with("Ana Ávila is out of office until Fri 27 Nov 2026: Ben Brooks"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_the_call_page_marks_what_changed_since_the_rep_last_opened_it() {
    let app = TestApp::spawn().await;
    let mut p = proposal(REP);
    let (_, link) = call_from_email(&app, "Ana Ávila", p.clone(), "Acme Corp").await;
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        set_viewport(&client, width, height).await;
        open(&client, &app, &link).await;
        assert!(client.find(Locator::Id("changed")).await.is_err(), "nothing changed yet");
        // The proposal is edited after the recap went out; the change email goes after the
        // quiet period.
        p["commitments"][0]["deliver_by"] = json!("2026-12-20");
        p["requirements"].as_array_mut().unwrap().push(json!({"id": "R4", "text": "Audit log export", "priority": "should"}));
        assert_eq!(app.put_proposal("generic", "D-1", &p).await.status(), 201);
        app.advance_and_settle(TimeDelta::minutes(11), TimeDelta::minutes(1)).await;
        assert_eq!(app.mails_to(REP).len(), 2, "the change email");
        open(&client, &app, &link).await;
        let changed = text_of(&client, "changed").await;
        assert!(changed.starts_with("New since you last opened this page"), "{changed}");
        assert!(changed.contains("New requirement: Audit log export (should)"), "{changed}");
        assert!(changed.contains("Commitment moved: SAML SSO configured with Okta"), "{changed}");
        let shot = client.find(Locator::Id("changed")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("call-changed-phone.png"), &shot).unwrap();
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the page scrolls sideways on a phone ({scroll} px in {width} px)");
        // Opened again: nothing is new.
        open(&client, &app, &link).await;
        assert!(client.find(Locator::Id("changed")).await.is_err(), "seen");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn on_a_phone_a_rep_and_their_manager_sign_in_with_the_link_from_their_email_and_see_their_calls_only() {
    const MO: &str = "mo@seller.example";
    let app = TestApp::spawn().await;
    let zed = "zed@seller.example";
    let (own, _) = call_from_email(&app, "Ana Ávila", proposal(REP), "Acme Corp").await;
    assert_eq!(app.put_rep(MO, &json!({"name": "Mo Manager", "timezone": "UTC"})).await.status(), 200);
    let ana = json!({"name": "Ana Ávila", "timezone": "Europe/Berlin", "manager_email": MO});
    assert_eq!(app.put_rep(REP, &ana).await.status(), 200);
    assert_eq!(app.put_rep(zed, &json!({"name": "Zed Else", "timezone": "UTC"})).await.status(), 200);
    app.put_proposal("generic", "D-2", &proposal(zed)).await;
    assert_eq!(app.post_generic(&order_created("e2", "D-2", zed, app.now())).await.status(), 200);
    app.settle().await;
    let other = app.calls().await.into_iter().find(|c| c["deal_id"] == "D-2").unwrap()["id"].as_i64().unwrap();
    with_browser(|client| async move {
        let (width, height) = (375u32, 812u32);
        set_viewport(&client, width, height).await;
        open(&client, &app, "/home").await;
        type_into(&client, "email", REP).await;
        submit(&client, "send-link").await;
        assert!(text_of(&client, "link-sent").await.starts_with("Check your email."));
        app.deliver().await;
        let mail = app.mails_to(REP).into_iter().last().unwrap();
        let text = mail.text.unwrap();
        let link = text
            .lines()
            .find(|l| l.starts_with("http://firstcall.test/login/link?"))
            .unwrap()
            .trim_start_matches("http://firstcall.test")
            .to_string();
        assert!(link.contains("next=%2Fhome"), "back to where she started: {link}");

        open(&client, &app, &link).await;
        assert_eq!(text_of(&client, "sign-in-link").await.lines().next().unwrap(), format!("Sign in as {REP}"));
        submit(&client, "use-link").await;
        let home = text_of(&client, "my-calls").await;
        assert!(home.contains("Acme Corp"), "{home}");
        assert_eq!(text_of(&client, "me").await, "Ana Ávila (rep)");
        let shot = client.screenshot().await.unwrap();
        std::fs::write(artifacts().join("home-phone.png"), &shot).unwrap();
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the home page scrolls sideways on a phone ({scroll} px in {width} px)");
        client.find(Locator::LinkText("Acme Corp")).await.unwrap().click().await.unwrap();
        text_of(&client, "recap").await;
        assert!(client.current_url().await.unwrap().path().ends_with(&format!("/calls/{own}")));

        // Another team's call: refused, saying why, with the way home.
        open(&client, &app, &format!("/calls/{other}")).await;
        assert_eq!(text_of(&client, "error").await.lines().next().unwrap(), "Not your call");
        click(&client, "error-home").await;
        text_of(&client, "my-calls").await;

        // The link again: used, and the page says so.
        open(&client, &app, &link).await;
        let used = text_of(&client, "error").await;
        assert!(used.starts_with("This sign-in link was already used"), "{used}");
        let shot = client.find(Locator::Id("error")).await.unwrap().screenshot().await.unwrap();
        assert!(png_size(&shot).0 <= width);
        std::fs::write(artifacts().join("sign-in-used-phone.png"), &shot).unwrap();

        // Logging out ends it.
        open(&client, &app, "/home").await;
        submit(&client, "logout").await;
        open(&client, &app, "/home").await;
        text_of(&client, "email-form").await;

        // Mo, Ana's manager, lets his first link expire, then signs in with a new one and sees
        // Ana's call as his team's.
        let link_for = |app: &TestApp| {
            let text = app.mails_to(MO).into_iter().last().unwrap().text.unwrap();
            text.lines()
                .find(|l| l.starts_with("http://firstcall.test/login/link?"))
                .unwrap()
                .trim_start_matches("http://firstcall.test")
                .to_string()
        };
        type_into(&client, "email", MO).await;
        submit(&client, "send-link").await;
        app.deliver().await;
        let first = link_for(&app);
        app.advance(TimeDelta::minutes(16));
        open(&client, &app, &first).await;
        let expired = text_of(&client, "error").await;
        assert!(expired.starts_with("This sign-in link has expired"), "{expired}");
        click(&client, "error-sign-in").await;
        type_into(&client, "email", MO).await;
        submit(&client, "send-link").await;
        app.deliver().await;
        open(&client, &app, &link_for(&app)).await;
        submit(&client, "use-link").await;
        let team = text_of(&client, "team-calls").await;
        assert!(team.contains("Acme Corp") && team.contains("Ana Ávila"), "{team}");
        client.find(Locator::LinkText("Acme Corp")).await.unwrap().click().await.unwrap();
        assert_eq!(text_of(&client, "ops").await.lines().next().unwrap(), "Manager");
        let scroll = client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap().as_u64().unwrap();
        assert!(scroll <= width as u64, "the call page scrolls sideways on a phone ({scroll} px in {width} px)");
        app.stop().await;
    })
    .await;
}
