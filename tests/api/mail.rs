//! The mail as reps receive it (over SMTP, and as the `.eml` files of the default file
//! transport), and the outbox under SMTP trouble: every email arrives, once, whatever the server
//! does meanwhile.

use std::collections::HashMap;

use chrono::TimeDelta;
use sea_orm::EntityTrait;
use serde_json::json;
use testkit::smtp::Mode;

use crate::helpers::*;

const REP: &str = "ana@seller.example";

#[tokio::test]
async fn the_first_call_mail_has_text_html_the_invite_and_the_signed_link() {
    let app = TestApp::spawn().await;
    app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "Europe/Madrid"})).await;
    app.put_proposal("generic", "D-1", &proposal(REP)).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let mails = app.mails_to(REP);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.structure, "multipart/mixed[multipart/alternative[text/plain,text/html,text/calendar],application/ics]");
    assert_eq!(m.to[0].name.as_deref(), Some("Ana Ávila"));
    assert_eq!(m.from[0].address, "firstcall@seller.example");
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    assert_eq!(m.message_id.as_deref(), Some(format!("call-{id}.first_call.0@firstcall.test").as_str()));
    let link = format!("http://firstcall.test/calls/{id}?t=");
    assert!(m.text.as_deref().unwrap().contains(&link), "text has the link");
    assert!(m.html.as_deref().unwrap().contains(&link), "html has the link");
    let token = m.text.as_deref().unwrap().split(&link).nth(1).unwrap().split_whitespace().next().unwrap();
    assert!(app.state.security.links.verify(token, id, app.now()).is_ok(), "the link is signed for this call");
    let cal = m.calendar.as_ref().unwrap();
    assert_eq!(cal.method.as_deref(), Some("REQUEST"));
    for field in [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Madrid",
        "DTSTART;TZID=Europe/Madrid:",
        "ORGANIZER",
        "ATTENDEE",
        "UID:call-",
        "SEQUENCE:0",
        "DTSTAMP:",
    ] {
        assert!(cal.body.contains(field), "{field} in {}", cal.body);
    }
    let attachment = m.attachments.iter().find(|a| a.filename.as_deref() == Some("invite.ics")).unwrap();
    assert_eq!(String::from_utf8_lossy(&attachment.bytes).replace("\r\n", "\n"), cal.body.replace("\r\n", "\n"));
    // The recap itself: requirement, commitment date, a gap (R2 has no commitment).
    let text = m.text.as_deref().unwrap();
    assert!(text.contains("Single sign-on with Okta") && text.contains("Data residency in the EU"));
    app.stop().await;
}

#[tokio::test]
async fn crm_text_is_escaped_in_html_and_cannot_inject_headers() {
    let app = TestApp::spawn().await;
    let mut p = proposal(REP);
    p["requirements"][0]["text"] = json!("<script>alert('x')</script>");
    p["account"]["name"] = json!("Evil\" onmouseover=\"alert(1)");
    app.put_proposal("generic", "D-1", &p).await;
    let mut ev = order_created("e1", "D-1", REP, app.now());
    ev["order"]["account_name"] = json!("Acme\r\nBcc: thief@evil.example\r\nX-Injected: 1");
    app.post_generic(&ev).await;
    app.settle().await;
    let raw = app.smtp.messages();
    assert_eq!(raw.len(), 1);
    assert!(raw[0].rcpt_to.iter().all(|r| !r.contains("evil")), "no extra recipient: {:?}", raw[0].rcpt_to);
    let m = raw[0].parse();
    assert_eq!(m.header_count("Bcc"), 0);
    assert_eq!(m.header_count("X-Injected"), 0);
    assert!(!m.subject.as_deref().unwrap().contains('\n'));
    let html = m.html.as_deref().unwrap();
    assert!(!html.contains("<script>alert"), "script is escaped");
    assert!(html.contains("&lt;script&gt;"), "and still shown as text");
    assert!(!html.contains("\" onmouseover=\"alert(1)"), "attribute payload escaped");
    assert!(m.text.as_deref().unwrap().contains("<script>alert('x')</script>"), "plain text shows it as written");
    app.stop().await;
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_arrives_exactly_once() {
    let app = TestApp::spawn().await;
    app.smtp.set_mode(Mode::Down).await;
    for i in 0..3 {
        app.post_generic(&order_created(&format!("e{i}"), &format!("D-{i}"), REP, app.now())).await;
    }
    app.settle().await;
    assert!(app.smtp.messages().is_empty());
    let pending = app.get_json("/api/v1/emails?state=pending").await;
    assert_eq!(pending["emails"].as_array().unwrap().len(), 3);
    assert!(pending["emails"].as_array().unwrap().iter().all(|e| e["attempts"].as_i64().unwrap() >= 1 && e["last_error"].is_string()));
    // Still down a while later: retried, still queued.
    app.advance_and_settle(TimeDelta::seconds(30), TimeDelta::seconds(5)).await;
    assert!(app.smtp.messages().is_empty());
    // The server is back.
    app.smtp.set_mode(Mode::Accept).await;
    app.advance_and_settle(TimeDelta::minutes(5), TimeDelta::seconds(10)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in app.mails() {
        *seen.entry(m.message_id.unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "every mail arrived: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_temporary_rejection_is_retried_and_a_permanent_one_is_recorded() {
    let app = TestApp::spawn().await;
    app.smtp.set_mode(Mode::TempFail).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert!(app.get_json("/api/v1/emails?state=pending").await["emails"][0]["last_error"].as_str().unwrap().contains("451"));
    app.smtp.set_mode(Mode::Accept).await;
    app.advance_and_settle(TimeDelta::minutes(2), TimeDelta::seconds(10)).await;
    assert_eq!(app.mails_to(REP).len(), 1);

    app.smtp.set_mode(Mode::PermFail).await;
    app.post_generic(&order_created("e2", "D-2", "bob@seller.example", app.now())).await;
    app.settle().await;
    let failed = app.get_json("/api/v1/emails?state=failed").await;
    let failed = failed["emails"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "a 5xx is final: recorded, not retried");
    assert!(failed[0]["last_error"].as_str().unwrap().contains("550"));
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("firstcall_emails_failed 1"), "{metrics}");
    // An operator fixes the address or the server and retries it.
    app.smtp.set_mode(Mode::Accept).await;
    let r = app.api(reqwest::Method::POST, &format!("/api/v1/emails/{}/retry", failed[0]["id"])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.settle().await;
    assert_eq!(app.mails_to("bob@seller.example").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_send_with_an_unknown_outcome_is_retried_and_counted() {
    let app = TestApp::spawn().await;
    app.smtp.set_mode(Mode::StallData).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let pending = app.get_json("/api/v1/emails?state=pending").await;
    assert_eq!(pending["emails"][0]["unknown_outcomes"], 1, "{pending}");
    app.smtp.set_mode(Mode::Accept).await;
    app.advance_and_settle(TimeDelta::minutes(2), TimeDelta::seconds(10)).await;
    let mails = app.mails_to(REP);
    assert_eq!(mails.len(), 1, "the stalled transfer never completed; the retry arrived");
    let sent = app.get_json("/api/v1/emails?state=sent").await;
    assert_eq!(sent["emails"][0]["unknown_outcomes"], 1, "the possible duplicate stays on record");
    app.stop().await;
}

#[tokio::test]
async fn a_mailer_that_dies_mid_send_leaves_an_unknown_outcome_on_record() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.run_jobs().await;
    // A mailer claims the email and is killed before it can record anything.
    let claimed = firstcall::mail::outbox::claim_due(&app.state.db, "killed-mailer", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    app.deliver().await;
    assert!(app.smtp.messages().is_empty(), "the lease holds while it is valid");
    app.advance_with_leases(TimeDelta::seconds(90)).await;
    app.settle().await;
    assert_eq!(app.mails_to(REP).len(), 1);
    let sent = app.get_json("/api/v1/emails?state=sent").await;
    assert_eq!(sent["emails"][0]["unknown_outcomes"], 1, "the first attempt may have gone out: {sent}");
    app.stop().await;
}

/// Every entry of a directory, hidden ones included, with its content, sorted by name.
fn files_in(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The embedded default transport: the first-call mail lands in `mail.outbox_dir` as one `.eml`
/// file named by its Message-ID, and a mail client reading it sees the recap, the invite and the
/// signed link; running everything again writes nothing more.
#[tokio::test]
async fn the_file_transport_writes_one_eml_a_mail_client_can_read() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().join("outbox");
    let app = TestApp::spawn_with(Options {
        overrides: vec![("mail.transport", json!("file")), ("mail.outbox_dir", json!(dir.to_str().unwrap()))],
        ..Default::default()
    })
    .await;
    app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "Europe/Madrid"})).await;
    assert!(app.put_proposal("generic", "D-1", &proposal(REP)).await.status().is_success());
    assert!(app.post_generic(&order_created("e1", "D-1", REP, app.now())).await.status().is_success());
    app.settle().await;

    assert!(app.smtp.messages().is_empty(), "nothing went over SMTP");
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let rows = entity::emails::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(rows.len(), 1, "one email recorded");
    let row = &rows[0];
    assert_eq!(row.state, entity::emails::EmailState::Sent);
    assert_eq!(row.message_id, format!("call-{id}.first_call.0@firstcall.test"));

    let files = files_in(&dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [format!("{}.eml", row.message_id)], "exactly the one message, no temporary file left");
    let m = testkit::mail::parse(&files[0].1);

    assert_eq!(m.to, [testkit::mail::MailAddress { name: Some("Ana Ávila".into()), address: REP.into() }]);
    assert_eq!(m.from[0].address, "firstcall@seller.example");
    assert_eq!(m.message_id.as_deref(), Some(row.message_id.as_str()), "the Message-ID stored in emails");
    assert_eq!(m.subject.as_deref(), Some(row.subject.as_str()));
    assert!(row.subject.starts_with("First call with Acme Corp"), "{}", row.subject);
    assert_eq!(m.structure, "multipart/mixed[multipart/alternative[text/plain,text/html,text/calendar],application/ics]");

    // The recap: requirements from the proposal, in both bodies.
    let text = m.text.as_deref().unwrap();
    let html = m.html.as_deref().unwrap();
    for requirement in ["Single sign-on with Okta", "Data residency in the EU"] {
        assert!(text.contains(requirement), "{requirement} in the text:\n{text}");
        assert!(html.contains(requirement), "{requirement} in the html");
    }

    // The signed link to the call page, in both bodies.
    let prefix = format!("http://firstcall.test/calls/{id}?t=");
    let link = format!("http://firstcall.test{}", call_link(&m));
    assert!(link.starts_with(&prefix), "{link}");
    assert!(html.contains(&link.replace('&', "&amp;")), "html has the link");
    let token = link.strip_prefix(&prefix).unwrap();
    assert!(app.state.security.links.verify(token, id, app.now()).is_ok(), "the link is signed for this call");

    // The invite: a request, titled and described with the one invite text.
    let cal = m.calendar.as_ref().expect("a text/calendar part");
    assert_eq!(cal.method.as_deref(), Some("REQUEST"));
    assert_eq!(cal.body.replace("\r\n", "\n"), row.ics.as_deref().unwrap().replace("\r\n", "\n"), "the invite stored in emails");
    let calendar = ical::IcalParser::new(cal.body.as_bytes()).next().expect("one calendar").expect("the invite parses");
    assert_eq!(calendar.events.len(), 1);
    // Values read after unfolding exactly as RFC 5545 3.1 says (CRLF and one space removed,
    // nothing else): the ical crate also trims the space a fold may end a line with.
    let unfolded = cal.body.replace("\r\n ", "").replace("\r\n\t", "");
    let prop = |name: &str| -> &str {
        let mut values = unfolded.split("\r\n").filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if rest.starts_with(';') { rest.split_once(':').map(|(_, v)| v) } else { rest.strip_prefix(':') }
        });
        let value = values.next().unwrap_or_else(|| panic!("no {name} in\n{}", cal.body));
        assert!(values.next().is_none(), "one {name} in\n{}", cal.body);
        value
    };
    assert_eq!(prop("METHOD"), "REQUEST");
    assert_eq!(prop("SUMMARY"), "First call: Acme Corp");
    assert_eq!(prop("UID"), format!("call-{id}@firstcall.test"));
    assert_eq!(prop("SEQUENCE"), "0");
    assert_eq!(prop("URL"), link);
    assert_eq!(prop("ATTENDEE"), format!("mailto:{REP}"));
    let description = prop("DESCRIPTION");
    assert!(description.starts_with("First call after the order (CRM deal D-1).\\n"), "{description}");
    assert!(description.contains(" to address\\, first: "), "names the first gap: {description}");
    assert!(description.ends_with(&format!("\\nRecap\\, agenda and done form: {link}")), "{description}");

    // Nothing more to do: no second file, the first one untouched, still one email.
    app.settle().await;
    assert_eq!(files_in(&dir), files, "a second settle writes nothing");
    assert_eq!(app.count("emails").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_mailer_whose_lease_ran_out_before_its_turn_sends_nothing() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.run_jobs().await;
    // Mailer A claims the email, then waits behind a slow batch past its lease...
    let stale = firstcall::mail::outbox::claim_due(&app.state.db, "mailer-a", app.now(), TimeDelta::seconds(30), 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    app.advance_with_leases(TimeDelta::seconds(31)).await;
    // ...meanwhile mailer B takes it over and sends it.
    app.deliver().await;
    assert_eq!(app.mails_to(REP).len(), 1);
    // Mailer A's turn comes: its lease is gone, so it sends nothing.
    let transport = std::sync::Arc::new(firstcall::mail::transport::MailTransport::from_settings(&app.mailer.settings).unwrap());
    app.mailer.deliver(&transport, stale).await.unwrap();
    assert_eq!(app.mails_to(REP).len(), 1, "one copy: the mailer that lost its lease did not send");
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_claimed_before_the_call_was_marked_done_is_not_sent() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    // Monday 14:00: the reminder is written to the outbox and a mailer claims it...
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-23T14:00:00Z").unwrap().into());
    app.run_jobs().await;
    let claimed = firstcall::mail::outbox::claim_due(&app.state.db, "mailer-a", app.now(), TimeDelta::seconds(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // ...then the rep marks the call done before the mailer gets to send it.
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let transport = std::sync::Arc::new(firstcall::mail::transport::MailTransport::from_settings(&app.mailer.settings).unwrap());
    app.mailer.deliver(&transport, claimed).await.unwrap();
    assert_eq!(app.mails_to(REP).len(), 1, "only the recap; the reminder was not sent after done");
    let skipped = app.get_json("/api/v1/emails?state=skipped").await;
    assert_eq!(skipped["emails"].as_array().unwrap().len(), 1, "{skipped}");
    app.stop().await;
}
