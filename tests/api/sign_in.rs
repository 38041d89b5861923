//! Sign-in per person: a one-time link emailed to an address of the rep directory (or a sales-ops
//! address), single use, short-lived, stored hashed, limited per address and per client; what
//! each role sees (a rep their calls, a manager their team's down the chain, sales ops all); the
//! home page; audit entries that name the person; logout that ends the session on the server.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::pages::{Page, post_form};

const ANA: &str = "ana@seller.example";
const MAX: &str = "max@seller.example";
const MIA: &str = "mia@seller.example";
const ZED: &str = "zed@seller.example";
const ZOE: &str = "zoe@seller.example";
const OPS: &str = "ops@seller.example";

/// Mia heads sales; Max reports to her and Ana to Max. Zed reports to Zoe, in another team.
async fn directory(app: &TestApp) {
    for (email, name, manager) in [
        (MIA, "Mia Head", None),
        (MAX, "Max Lead", Some(MIA)),
        (ANA, "Ana Ávila", Some(MAX)),
        (ZOE, "Zoe Other", None),
        (ZED, "Zed Else", Some(ZOE)),
    ] {
        let body = json!({"name": name, "timezone": "UTC", "manager_email": manager});
        assert_eq!(app.put_rep(email, &body).await.status(), 200);
    }
}

fn with_ops() -> Options {
    Options { overrides: vec![("sign_in.sales_ops", json!([OPS]))], ..Options::default() }
}

/// A call for `rep`'s deal; its id.
async fn call_for(app: &TestApp, deal: &str, rep: &str) -> i64 {
    call_with(app, deal, rep, &proposal(rep)).await
}

/// A call for `rep`'s deal with this proposal; its id.
async fn call_with(app: &TestApp, deal: &str, rep: &str, proposal: &Value) -> i64 {
    app.put_proposal("generic", deal, proposal).await;
    app.post_generic(&order_created(&format!("e-{deal}"), deal, rep, app.now())).await;
    app.settle().await;
    app.calls().await.into_iter().find(|c| c["deal_id"] == deal).unwrap()["id"].as_i64().unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

/// Asks for a link for `email` from `client`'s browser, as the sign-in page does.
async fn ask(client: &reqwest::Client, app: &TestApp, email: &str) -> Page {
    let form = Page::of(client.get(app.url("/login")).send().await.unwrap()).await;
    post_form(client, app, "/login/email", &[("csrf", &form.csrf()), ("email", email), ("next", "/")]).await
}

/// The link in the newest sign-in email to `to`, as a path with its query.
async fn link_in_mail(app: &TestApp, to: &str) -> String {
    app.deliver().await;
    let mail =
        app.mails_to(to).into_iter().rfind(|m| m.subject.as_deref() == Some("Your firstcall sign-in link")).expect("a sign-in email");
    let text = mail.text.unwrap();
    let url = text.lines().find(|l| l.starts_with("http://firstcall.test/login/link?")).unwrap_or_else(|| panic!("no link in {text}"));
    url.trim_start_matches("http://firstcall.test").to_string()
}

/// Opens the link (the page with the button) and presses the button.
async fn use_link(client: &reqwest::Client, app: &TestApp, link: &str) -> Page {
    let shown = Page::of(client.get(app.url(link)).send().await.unwrap()).await;
    if shown.status != StatusCode::OK {
        return shown;
    }
    let secret = link.split("t=").nth(1).unwrap().split('&').next().unwrap();
    post_form(client, app, "/login/link", &[("csrf", &shown.csrf()), ("t", secret), ("next", "/")]).await
}

/// Signs `email` in on a browser of its own.
async fn signed_in(app: &TestApp, email: &str) -> reqwest::Client {
    let client = browser();
    assert_eq!(ask(&client, app, email).await.status, StatusCode::OK);
    let link = link_in_mail(app, email).await;
    let done = use_link(&client, app, &link).await;
    // Sales ops land on the dashboard, everyone else on their home page.
    let landing = if email == OPS { "/" } else { "/home" };
    assert_eq!((done.status, done.header("location")), (StatusCode::SEE_OTHER, landing), "{}", done.html);
    client
}

async fn open(client: &reqwest::Client, app: &TestApp, path: &str) -> Page {
    Page::of(client.get(app.url(path)).send().await.unwrap()).await
}

#[tokio::test]
async fn a_rep_signs_in_with_a_one_time_link_and_sees_only_their_own_calls_and_promises() {
    let app = TestApp::spawn_with(with_ops()).await;
    directory(&app).await;
    let ana_call = call_for(&app, "D-ANA", ANA).await;
    let zed_call = call_for(&app, "D-ZED", ZED).await;
    // A deal of Ana's already called: its commitments are promises she owes.
    let done_call = call_for(&app, "D-DONE", ANA).await;
    // And a deal of Zed's on which Ana owes the SSO set-up.
    let mut owed = proposal(ZED);
    owed["commitments"][0]["owner"] = json!(ANA);
    owed["commitments"][0]["text"] = json!("Okta set-up for Zed's customer");
    let owed_call = call_with(&app, "D-OWED", ZED, &owed).await;
    for id in [done_call, owed_call] {
        let r = app
            .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"))
            .json(&json!({"outcome": "aligned"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    app.settle().await;

    let client = browser();
    let asked = ask(&client, &app, ANA).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.text().contains("Check your email."), "{}", asked.html);
    let link = link_in_mail(&app, ANA).await;
    let mail = app.mails_to(ANA).into_iter().last().unwrap();
    assert!(mail.text.as_deref().unwrap().starts_with("Hello Ana Ávila,"), "{:?}", mail.text);
    assert!(mail.text.as_deref().unwrap().contains("It works once, for 15 minutes"));
    assert!(mail.html.as_deref().unwrap().contains("Sign in to firstcall</a>"));

    // Stored hashed: the database holds the SHA-256 of the secret, never the secret; the email's
    // text is gone from the outbox once sent.
    let secret = link.split("t=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let stored = app.column("SELECT id FROM sign_in_links").await;
    assert_eq!(stored, vec![hex::encode(Sha256::digest(secret.as_bytes()))]);
    let kept = app.column("SELECT body_text || '|' || body_html FROM emails WHERE kind = 'sign_in'").await;
    assert_eq!(kept, vec!["|"], "the sent link is not kept in the outbox");
    assert!(!app.column("SELECT body_text FROM emails WHERE kind <> 'sign_in'").await.iter().any(|t| t.contains(&secret)));

    // Opening the link changes nothing (a mail scanner may fetch it); the button signs in.
    assert_eq!(open(&client, &app, &link).await.status, StatusCode::OK);
    let shown = open(&client, &app, &link).await;
    assert!(shown.text().contains("Sign in as ana@seller.example"), "{}", shown.html);
    let done = post_form(&client, &app, "/login/link", &[("csrf", &shown.csrf()), ("t", &secret), ("next", "/")]).await;
    assert_eq!((done.status, done.header("location")), (StatusCode::SEE_OTHER, "/home"));
    assert_eq!(app.column("SELECT person FROM sessions").await, vec![ANA]);

    // Used: the link is refused with a page that says so, on another browser too.
    let again = use_link(&browser(), &app, &link).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.text().contains("This sign-in link was already used"), "{}", again.html);
    let replay = post_form(&client, &app, "/login/link", &[("csrf", &shown.csrf()), ("t", &secret), ("next", "/")]).await;
    assert_eq!(replay.status, StatusCode::GONE);

    // Home: Ana's open call and her promises; nothing of Zed's.
    let home = open(&client, &app, "/home").await;
    assert_eq!(home.status, StatusCode::OK);
    let text = home.text();
    assert!(text.contains("Hello, Ana Ávila"), "{text}");
    assert!(text.contains(&format!("data-call=\"{ana_call}\"")), "her open call: {text}");
    assert!(!text.contains(&format!("data-call=\"{zed_call}\"")), "not Zed's: {text}");
    assert!(!text.contains(&format!("data-call=\"{done_call}\"")), "a done call is not open: {text}");
    assert!(text.contains("SAML SSO configured with Okta") && text.contains("by Thu 10 Dec 2026"), "her promises: {text}");
    assert!(!text.contains("id=\"team-calls\""), "a rep has no team section");
    assert!(
        text.contains("Okta set-up for Zed&#x27;s customer") || text.contains("Okta set-up for Zed's customer"),
        "a promise she owes on Zed's deal: {text}"
    );

    // Her call opens; Zed's is refused, saying why; the dashboard sends her home; sales ops'
    // pages and forms refuse her; the API is for machines.
    assert_eq!(open(&client, &app, &format!("/calls/{ana_call}")).await.status, StatusCode::OK);
    let owed_page = open(&client, &app, &format!("/calls/{owed_call}")).await;
    assert_eq!(owed_page.status, StatusCode::OK, "the call of a promise she owes opens");
    assert!(owed_page.text().contains("Okta set-up for Zed's customer"));
    let other = open(&client, &app, &format!("/calls/{zed_call}")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.text().contains("Not your call") && other.text().contains("Ana Ávila (rep)"), "{}", other.html);
    let dash = open(&client, &app, "/").await;
    assert_eq!((dash.status, dash.header("location")), (StatusCode::SEE_OTHER, "/home"));
    assert_eq!(open(&client, &app, "/insights").await.status, StatusCode::FORBIDDEN);
    let csrf = home.csrf();
    let retry = post_form(&client, &app, "/dashboard/jobs/1/retry", &[("csrf", &csrf)]).await;
    assert_eq!(retry.status, StatusCode::FORBIDDEN);
    assert!(retry.text().contains("Sales ops only"));
    let api = client.get(app.url("/api/v1/calls")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.json::<Value>().await.unwrap()["error"]["code"], "bearer_required");
    // No reassign or cancel for a rep, even with a well-formed form.
    let call_page = open(&client, &app, &format!("/calls/{ana_call}")).await;
    assert!(!call_page.html.contains("id=\"ops\""));
    let csrf = call_page.csrf_of(&format!("/calls/{ana_call}/snooze"));
    let cancel = post_form(&client, &app, &format!("/calls/{ana_call}/cancel"), &[("csrf", &csrf), ("reason", "mine")]).await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);

    // What she does is audited under her name, and the call's history says who.
    let snooze = post_form(
        &client,
        &app,
        &format!("/calls/{ana_call}/snooze"),
        &[("csrf", &csrf), ("until", "2026-11-23T15:00"), ("reason", "Customer at a trade fair")],
    )
    .await;
    assert_eq!(snooze.status, StatusCode::SEE_OTHER, "{}", snooze.html);
    let actors =
        app.column(&format!("SELECT actor FROM audit_log WHERE entity = 'call' AND entity_id = {ana_call} AND action = 'snoozed'")).await;
    assert_eq!(actors, vec![ANA]);
    let trail = open(&client, &app, &format!("/calls/{ana_call}")).await.text();
    assert!(trail.contains("Ana Ávila (ana@seller.example)"), "{trail}");

    // Logging out ends the session on the server: the same cookie opens nothing any more.
    let cookie = app.column("SELECT id FROM sessions").await;
    assert_eq!(cookie.len(), 1);
    let out = post_form(&client, &app, "/logout", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("sessions").await, 0);
    let after = open(&client, &app, "/home").await;
    assert_eq!((after.status, after.header("location")), (StatusCode::SEE_OTHER, "/login?next=/home"));
    app.stop().await;
}

#[tokio::test]
async fn a_manager_sees_and_hands_over_their_teams_calls_down_the_chain_and_no_others() {
    let app = TestApp::spawn_with(with_ops()).await;
    directory(&app).await;
    let ana_call = call_for(&app, "D-ANA", ANA).await;
    let zed_call = call_for(&app, "D-ZED", ZED).await;

    // Mia is Ana's manager's manager.
    let mia = signed_in(&app, MIA).await;
    let home = open(&mia, &app, "/home").await.text();
    assert!(home.contains("Your team's calls"), "{home}");
    assert!(home.contains(&format!("data-call=\"{ana_call}\"")) && home.contains("Ana Ávila"), "{home}");
    assert!(!home.contains(&format!("data-call=\"{zed_call}\"")), "{home}");
    let page = open(&mia, &app, &format!("/calls/{ana_call}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("id=\"ops\"") && page.text().contains("Manager"), "the manager's card");
    assert_eq!(open(&mia, &app, &format!("/calls/{zed_call}")).await.status, StatusCode::FORBIDDEN);

    // She may hand Ana's call to Max (her team), not to Zed.
    let csrf = page.csrf_of(&format!("/calls/{ana_call}/reassign"));
    let refused =
        post_form(&mia, &app, &format!("/calls/{ana_call}/reassign"), &[("csrf", &csrf), ("rep", ZED), ("reason", "Zed knows them")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().contains("zed@seller.example is not in your team"), "{}", refused.html);
    assert_eq!(app.calls().await.into_iter().find(|c| c["id"] == ana_call).unwrap()["rep_email"], ANA, "unchanged");
    let handed =
        post_form(&mia, &app, &format!("/calls/{ana_call}/reassign"), &[("csrf", &csrf), ("rep", MAX), ("reason", "Ana is swamped")]).await;
    assert_eq!(handed.status, StatusCode::SEE_OTHER, "{}", handed.html);
    app.settle().await;
    assert_eq!(app.calls().await.into_iter().find(|c| c["id"] == ana_call).unwrap()["rep_email"], MAX);
    let actors = app
        .column(&format!("SELECT actor FROM audit_log WHERE entity = 'call' AND entity_id = {ana_call} AND action = 'reassigned'"))
        .await;
    assert_eq!(actors, vec![MIA]);

    // Cancelling: the rep's email names the manager.
    let page = open(&mia, &app, &format!("/calls/{ana_call}")).await;
    let cancelled = post_form(
        &mia,
        &app,
        &format!("/calls/{ana_call}/cancel"),
        &[("csrf", &page.csrf_of(&format!("/calls/{ana_call}/cancel"))), ("reason", "Duplicate order")],
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER, "{}", cancelled.html);
    app.settle().await;
    let notice = app.mails_to(MAX).into_iter().last().unwrap();
    assert!(notice.text.as_deref().unwrap().contains("Mia Head (manager) cancelled it: Duplicate order"), "{:?}", notice.text);

    // Absences: Mia records Ana's (her team), not Zed's; Ana records her own.
    let absences = open(&mia, &app, "/absences").await;
    let record = |rep: &'static str, delegate: &'static str, csrf: String| {
        let (app, mia) = (&app, &mia);
        async move {
            post_form(
                mia,
                app,
                "/absences",
                &[
                    ("csrf", &csrf),
                    ("rep", rep),
                    ("first_day", "2026-11-30"),
                    ("last_day", "2026-12-02"),
                    ("delegate", delegate),
                    ("reason", ""),
                ],
            )
            .await
        }
    };
    assert_eq!(record(ANA, MAX, absences.csrf()).await.status, StatusCode::SEE_OTHER);
    let not_hers = record(ZED, ZOE, absences.csrf()).await;
    assert_eq!(not_hers.status, StatusCode::FORBIDDEN);
    assert!(not_hers.text().contains("not for zed@seller.example"), "{}", not_hers.html);
    let ana = signed_in(&app, ANA).await;
    let own = open(&ana, &app, "/absences").await;
    assert!(own.html.contains(&format!("value=\"{ANA}\"")), "her own address is filled in");
    let form = [
        ("csrf", own.csrf()),
        ("rep", ANA.into()),
        ("first_day", "2026-12-07".into()),
        ("last_day", "2026-12-08".into()),
        ("delegate", MAX.into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut mistyped = form.clone();
    mistyped[1].1 = "ana at seller";
    let refused = post_form(&ana, &app, "/absences", &mistyped).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "a mistyped address is a mistake, not someone else's");
    assert!(refused.text().contains("Rep: 'ana at seller' is not a valid email address"), "{}", refused.html);
    assert_eq!(post_form(&ana, &app, "/absences", &form).await.status, StatusCode::SEE_OTHER);
    let recorded = app.column("SELECT created_by || ' ' || rep_email FROM rep_absences ORDER BY id").await;
    assert_eq!(recorded, vec![format!("{MIA} {ANA}"), format!("{ANA} {ANA}")]);

    // Sales ops see every call and the dashboard.
    let ops = signed_in(&app, OPS).await;
    assert_eq!(open(&ops, &app, &format!("/calls/{zed_call}")).await.status, StatusCode::OK);
    let dash = open(&ops, &app, "/").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(dash.text().contains("ops@seller.example (sales ops)"));
    app.stop().await;
}

#[tokio::test]
async fn expired_reused_and_wrong_links_are_refused_with_a_clear_page_and_asking_is_limited() {
    let app = TestApp::spawn_with(Options {
        overrides: vec![("sign_in.per_client_per_hour", json!(7)), ("sign_in.per_address_per_hour", json!(3))],
        ..Options::default()
    })
    .await;
    directory(&app).await;
    let client = browser();

    // Expired after 15 minutes, whether opened or pressed.
    ask(&client, &app, ANA).await;
    let link = link_in_mail(&app, ANA).await;
    app.advance(TimeDelta::minutes(15));
    let expired = open(&client, &app, &link).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.text().contains("This sign-in link has expired"), "{}", expired.html);
    assert!(expired.html.contains("id=\"error-sign-in\""), "a way to ask for a new one");
    let form = open(&client, &app, "/login").await;
    let secret = link.split("t=").nth(1).unwrap().split('&').next().unwrap();
    let pressed = post_form(&client, &app, "/login/link", &[("csrf", &form.csrf()), ("t", secret)]).await;
    assert_eq!(pressed.status, StatusCode::GONE);
    assert_eq!(app.count("sessions").await, 0);

    // A link changed by hand names no link.
    let mut forged = secret.to_string();
    forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
    let wrong = open(&client, &app, &format!("/login/link?t={forged}")).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.text().contains("This sign-in link is not valid"));

    // An address outside the directory gets the same answer and no email; a non-address is
    // refused naming what is wrong.
    let before = app.mails().len();
    let nobody = ask(&client, &app, "nobody@seller.example").await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert!(nobody.text().contains("Check your email."));
    app.deliver().await;
    assert_eq!(app.mails().len(), before, "no email for an address that may not sign in");
    let bad = ask(&client, &app, "ana at seller").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().contains("is not a valid email address"), "{}", bad.html);
    let empty = ask(&client, &app, "  ").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text().contains("Enter your email address."));

    // Per address: Ana asked once; two more pass, the fourth in the hour waits, and says how long.
    assert_eq!(ask(&client, &app, ANA).await.status, StatusCode::OK);
    assert_eq!(ask(&client, &app, ANA).await.status, StatusCode::OK);
    let limited = ask(&client, &app, ANA).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("retry-after"), "2700", "the first link of the hour was asked 45 minutes ago");
    assert!(limited.text().contains("for this address") && limited.text().contains("Wait 45 minutes"), "{}", limited.html);
    app.deliver().await;
    assert_eq!(app.mails_to(ANA).len(), 3, "no email for the refused one");
    // Another address from the same client still may, until the client's own limit.
    for n in 0..3 {
        assert_eq!(ask(&client, &app, MAX).await.status, StatusCode::OK, "link {n}");
    }
    let per_client = ask(&client, &app, MIA).await;
    assert_eq!(per_client.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(per_client.text().contains("from your network address"), "{}", per_client.html);

    // The newest of Ana's links still signs her in, once; an hour later she may ask again.
    let newest = link_in_mail(&app, ANA).await;
    assert_eq!(use_link(&client, &app, &newest).await.status, StatusCode::SEE_OTHER);
    app.advance(TimeDelta::minutes(46));
    assert_eq!(ask(&browser(), &app, ANA).await.status, StatusCode::OK);
    app.stop().await;
}
