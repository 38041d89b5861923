//! The pages over HTTP: the call page a rep opens from an email (a GET changes nothing; the
//! done form needs the link and the CSRF token), clear pages for bad links, the dashboard
//! behind a login, and CRM text escaped everywhere.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const PAYLOAD: &str = "<script>alert(1)</script>\" onmouseover=\"alert(2)";

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) html: String,
}

impl Page {
    pub(crate) async fn of(r: reqwest::Response) -> Page {
        Page { status: r.status(), headers: r.headers().clone(), html: r.text().await.unwrap() }
    }

    /// The page's text as a reader sees it (entities decoded).
    pub(crate) fn text(&self) -> String {
        self.html
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
    }

    /// The CSRF token of the page's first form.
    pub(crate) fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field in\n{}", self.html)) + 19;
        self.html[at..].chars().take_while(|c| *c != '"').collect()
    }

    /// The CSRF token of the form that posts to `action`.
    pub(crate) fn csrf_of(&self, action: &str) -> String {
        let form = self.html.find(&format!("action=\"{action}\"")).unwrap_or_else(|| panic!("no form to {action} in\n{}", self.html));
        Page { status: self.status, headers: HeaderMap::new(), html: self.html[form..].to_string() }.csrf()
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Page {
    Page::of(app.client.get(app.url(path)).send().await.unwrap()).await
}

pub(crate) async fn post_form(client: &reqwest::Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Page {
    Page::of(client.post(app.url(path)).form(form).send().await.unwrap()).await
}

/// A rep in Berlin, a proposal and an order: the call is due and its email holds the link.
async fn call_with_link(app: &TestApp, deal: &str) -> (i64, String) {
    assert_eq!(app.put_rep(REP, &json!({"name": "Ana Ávila", "timezone": "Europe/Berlin"})).await.status(), 200);
    app.put_proposal("generic", deal, &proposal(REP)).await;
    app.post_generic(&order_created(&format!("e-{deal}"), deal, REP, app.now())).await;
    app.settle().await;
    let mail = app.mails_to(REP).into_iter().last().expect("the recap email");
    let call = app.calls().await.into_iter().find(|c| c["deal_id"] == deal).unwrap();
    (call["id"].as_i64().unwrap(), call_link(&mail))
}

/// The token with one character in the signature changed.
fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}

fn token_of(link: &str) -> &str {
    link.split("?t=").nth(1).unwrap()
}

#[tokio::test]
async fn the_link_opens_the_call_page_and_a_get_changes_nothing() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let audit = app.count("audit_log").await;
    let jobs = app.count("jobs").await;

    let page = get(&app, &link).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert!(page.header("content-security-policy").contains("frame-ancestors 'none'"));
    assert!(page.header("content-type").starts_with("text/html"));
    let text = page.text();
    assert!(text.contains("Single sign-on with Okta"), "the recap's requirement");
    assert!(text.contains("Data residency in the EU") && text.contains("No commitment"), "the recap's gap");
    assert!(text.contains("Mon 23 Nov 2026, 14:00 CET (Europe/Berlin)"), "due in the rep's timezone:\n{text}");
    assert!(text.contains("Recap and invite</strong> to ana@seller.example, Mon 23 Nov 2026, 10:00 CET"), "the email history:\n{text}");
    assert!(text.contains("Reminder: Mon 23 Nov 2026, 14:00 CET"), "the next reminder:\n{text}");
    assert!(page.html.contains("id=\"done-form\""));

    // Opening it again (a mail scanner, the rep twice) writes nothing.
    assert_eq!(get(&app, &link).await.status, 200);
    assert_eq!(app.count("audit_log").await, audit);
    assert_eq!(app.count("jobs").await, jobs);
    assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["state"], "due");
    app.stop().await;
}

#[tokio::test]
async fn the_done_form_needs_the_link_and_the_csrf_token() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let page = get(&app, &link).await;
    let csrf = page.csrf();
    let token = token_of(&link).to_string();
    let action = format!("/calls/{id}/done");
    let audit = app.count("audit_log").await;
    let refused = [
        vec![("t", token.as_str()), ("outcome", "aligned")],
        vec![("t", token.as_str()), ("outcome", "aligned"), ("csrf", "forged-token")],
        vec![("t", token.as_str()), ("outcome", "aligned"), ("csrf", &csrf[..csrf.len() - 2])],
    ];
    for form in &refused {
        let r = post_form(&app.client, &app, &action, form).await;
        assert_eq!(r.status, 403, "{form:?}");
        assert!(r.text().contains("This form has expired"));
    }
    // Without the link token, or with a changed one, the CSRF token alone does not do.
    let tampered = tamper(&token);
    for t in ["", tampered.as_str()] {
        let r = post_form(&app.client, &app, &action, &[("t", t), ("outcome", "aligned"), ("csrf", &csrf)]).await;
        assert_eq!(r.status, 403, "token {t:?}");
    }
    // Another browser (no form cookie) cannot replay the form.
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(post_form(&stranger, &app, &action, &[("t", &token), ("outcome", "aligned"), ("csrf", &csrf)]).await.status, 403);
    // Not a form at all.
    let r = app.client.post(app.url(&action)).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.count("audit_log").await, audit, "nothing refused changed anything");
    assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["state"], "due");

    // No outcome: the form comes back with the notes kept.
    let r = post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("notes", "Talked about SSO")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Choose how the call went.") && r.text().contains(">Talked about SSO</textarea>"));
    assert_eq!(app.count("audit_log").await, audit);

    let notes = "Reset the SSO date to 10 Dec.\nEU hosting: follow up.";
    let r = post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("outcome", "adjusted"), ("notes", notes)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), link);
    let done = get(&app, &link).await;
    assert_eq!(done.status, 200);
    let text = done.text();
    assert!(text.contains("Call done") && text.contains("Adjusted") && text.contains(notes), "{text}");
    assert!(!done.html.contains("id=\"done-form\""), "no form once done");
    let call = app.get_json(&format!("/api/v1/calls/{id}")).await;
    assert_eq!(
        (call["state"].as_str(), call["outcome"].as_str(), call["completed_by"].as_str()),
        (Some("done"), Some("adjusted"), Some("rep"))
    );
    assert!(call["timers"].as_array().unwrap().is_empty(), "no reminder left");

    // Sent twice (a double click): harmless, the first outcome stays.
    let r = post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("outcome", "at_risk")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["outcome"], "adjusted");
    app.stop().await;
}

#[tokio::test]
async fn bad_links_get_pages_that_say_what_to_do() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let token = token_of(&link);

    let tampered = format!("/calls/{id}?t={}", tamper(token));
    let other = app.state.security.links.sign(id + 1, app.now() + chrono::TimeDelta::hours(1));
    let unknown = app.state.security.links.sign(999_999, app.now() + chrono::TimeDelta::hours(1));
    let cases = [
        (tampered, 403, "This link is not valid"),
        (format!("/calls/{}?t={token}", id + 1), 403, "This link is for another call"),
        (format!("/calls/{id}?t={other}"), 403, "This link is for another call"),
        (format!("/calls/{id}"), 403, "needs the link from your email"),
        (format!("/calls/{id}?t="), 403, "needs the link from your email"),
        (format!("/calls/999999?t={unknown}"), 404, "There is no call with this number"),
        ("/calls/abc".to_string(), 404, "Not found"),
        ("/calls/-3".to_string(), 404, "Not found"),
        (format!("/calls/{id}?t=%ZZ"), 403, "This link is not valid"),
    ];
    for (path, status, says) in cases {
        let page = get(&app, &path).await;
        assert_eq!(page.status, status, "{path}");
        assert!(page.header("content-type").starts_with("text/html"), "{path}");
        assert!(page.text().contains(says), "{path}: {}", page.text());
        assert!(!page.text().contains("Single sign-on"), "{path} shows no recap");
    }

    // Past links.ttl_hours (14 days): expired, and the page says to use the newest email.
    app.advance(chrono::TimeDelta::hours(337));
    let page = get(&app, &link).await;
    assert_eq!(page.status, 410);
    assert!(page.text().contains("This link has expired") && page.text().contains("newest email"), "{}", page.text());
    app.stop().await;
}

#[tokio::test]
async fn the_database_going_away_shows_a_503_page() {
    let app = TestApp::spawn_with(quick_outage()).await;
    let (_, link) = call_with_link(&app, "D-1").await;
    let outage = app.database_down().await;
    let page = get(&app, &link).await;
    assert_eq!(page.status, 503);
    assert!(page.text().contains("Temporarily unavailable"));
    outage.end().await;
    // Reloaded, the page comes back with the database (a first reload may still meet a
    // connection the outage cut).
    let mut statuses = Vec::new();
    while statuses.len() < 50 && statuses.last() != Some(&StatusCode::OK) {
        if !statuses.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        statuses.push(get(&app, &link).await.status);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::OK), "{statuses:?}");
    app.stop().await;
}

pub(crate) async fn log_in(app: &TestApp, token: &str) -> Page {
    let form = get(app, "/login").await;
    assert_eq!(form.status, 200);
    post_form(&app.client, app, "/login", &[("csrf", &form.csrf()), ("token", token), ("next", "/")]).await
}

#[tokio::test]
async fn the_dashboard_needs_a_login_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    let r = get(&app, "/").await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/login"));

    let wrong = log_in(&app, "not-the-token").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("This token is not valid."));
    assert!(wrong.headers.get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with("firstcall_session=")));
    assert_eq!(get(&app, "/").await.status, 303);

    // A login form posted without its CSRF token is refused.
    let r = post_form(&app.client, &app, "/login", &[("token", API_TOKEN)]).await;
    assert_eq!(r.status, 403);

    let ok = log_in(&app, API_TOKEN).await;
    assert_eq!((ok.status, ok.header("location")), (StatusCode::SEE_OTHER, "/"));
    let cookie = ok.header("set-cookie").to_string();
    assert!(cookie.starts_with("firstcall_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "public_url is http here: {cookie}");
    assert!(!cookie.contains(API_TOKEN), "the cookie does not carry the token");
    let board = get(&app, "/").await;
    assert_eq!(board.status, 200);
    assert!(board.text().contains("First calls") && board.text().contains("Schedule preview"));
    // The API takes the session too, as the dashboard's own requests would.
    assert_eq!(app.client.get(app.url("/api/v1/calls")).send().await.unwrap().status(), 200);
    // Logged in, any call page opens without a link.
    let (id, _) = call_with_link(&app, "D-1").await;
    assert_eq!(get(&app, &format!("/calls/{id}")).await.status, 200);

    let r = post_form(&app.client, &app, "/logout", &[("csrf", "wrong")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(get(&app, "/").await.status, 200, "still logged in");
    let r = post_form(&app.client, &app, "/logout", &[("csrf", &board.csrf())]).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(get(&app, "/").await.status, 303);
    assert_eq!(get(&app, &format!("/calls/{id}")).await.status, 403);

    // A bearer token opens the dashboard without a login.
    let r = app.api(reqwest::Method::GET, "/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn without_an_api_token_the_login_page_says_what_to_set_instead_of_a_token_form() {
    let app = TestApp::spawn_with(Options { overrides: vec![("api.tokens", json!([]))], ..Options::default() }).await;
    let page = get(&app, "/login").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("No API token is configured, so nobody can log in with one")
            && text.contains("FIRSTCALL__API__TOKENS")
            && text.contains("openssl rand -hex 32"),
        "{text}"
    );
    assert!(!text.contains("id=\"login-form\"") && !text.contains("name=\"token\""), "no token form that can never succeed: {text}");
    assert!(text.contains("id=\"email-form\""), "people still sign in with a link by email: {text}");
    assert_eq!(
        (get(&app, "/").await.status, get(&app, "/").await.header("location").to_string()),
        (StatusCode::SEE_OTHER, "/login".into())
    );
    app.stop().await;

    // With a token configured, the form is there and the explanation is not.
    let app = TestApp::spawn().await;
    let page = get(&app, "/login").await;
    assert!(page.text().contains("id=\"login-form\"") && !page.text().contains("No API token is configured"));
    app.stop().await;
}

/// A browser without a cookie jar, sending exactly the cookie it is given.
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> StatusCode {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client.get(app.url(path)).header("cookie", cookie).send().await.unwrap().status()
}

#[tokio::test]
async fn a_session_cookie_kept_after_logout_no_longer_opens_anything() {
    let app = TestApp::spawn().await;
    let (id, _) = call_with_link(&app, "D-1").await;
    let ok = log_in(&app, API_TOKEN).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let kept = ok.header("set-cookie").split(';').next().unwrap().to_string();
    // A second login (another browser) is a session of its own.
    let other = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = Page::of(other.get(app.url("/login")).send().await.unwrap()).await;
    let second = post_form(&other, &app, "/login", &[("csrf", &form.csrf()), ("token", API_TOKEN), ("next", "/")]).await;
    let second = second.header("set-cookie").split(';').next().unwrap().to_string();
    assert_ne!(kept, second, "each login is its own session");
    assert_eq!(get_with_cookie(&app, "/", &kept).await, StatusCode::OK);
    assert_eq!(get_with_cookie(&app, "/api/v1/calls", &kept).await, StatusCode::OK);

    let board = get(&app, "/").await;
    let r = post_form(&app.client, &app, "/logout", &[("csrf", &board.csrf())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Someone who copied the cookie before the logout (a shared computer, a proxy log) gets
    // nothing with it any more: the session ended on the server, not only in the browser.
    assert_eq!(get_with_cookie(&app, "/", &kept).await, StatusCode::SEE_OTHER);
    assert_eq!(get_with_cookie(&app, "/api/v1/calls", &kept).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get_with_cookie(&app, &format!("/calls/{id}"), &kept).await, StatusCode::FORBIDDEN);
    // The other browser's session is untouched.
    assert_eq!(get_with_cookie(&app, "/", &second).await, StatusCode::OK);
    // A forged or stale cookie value is simply not a session.
    assert_eq!(get_with_cookie(&app, "/", "firstcall_session=AAAA").await, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn a_call_marked_done_on_the_dashboard_is_recorded_as_done_from_the_dashboard() {
    // README: "Logged in, every call page opens without a link (`/calls/{id}`), and a call
    // marked done there is recorded as done from the dashboard."
    let app = TestApp::spawn().await;
    let (id, _) = call_with_link(&app, "D-1").await;
    assert_eq!(log_in(&app, API_TOKEN).await.status, StatusCode::SEE_OTHER);
    let path = format!("/calls/{id}");
    let page = get(&app, &path).await;
    assert_eq!(page.status, 200);
    // The done form as the page has it (the page's first form is the logout's).
    let at = page.html.find("id=\"done-form\"").expect("the done form is on the page");
    let form = &page.html[page.html[..at].rfind("<form").unwrap()..];
    let field = |prefix: &str| -> String {
        let at = form.find(prefix).unwrap_or_else(|| panic!("{prefix} in {form}")) + prefix.len();
        form[at..].chars().take_while(|c| *c != '"').collect()
    };
    let (action, csrf) = (field("action=\"").replace("&#x2f;", "/"), field("name=\"csrf\" value=\""));
    assert_eq!(action, format!("{path}/done"), "the form posts without a link token");
    let notes = "Budget moved to Q1; call again in January.";
    let r = post_form(&app.client, &app, &action, &[("csrf", &csrf), ("outcome", "at_risk"), ("notes", notes)]).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, path.as_str()), "back to the page, without a link token");
    let call = app.api(reqwest::Method::GET, &path.replace("/calls/", "/api/v1/calls/")).send().await.unwrap();
    let call: serde_json::Value = call.json().await.unwrap();
    assert_eq!(
        (call["state"].as_str(), call["outcome"].as_str(), call["notes"].as_str(), call["completed_by"].as_str()),
        (Some("done"), Some("at_risk"), Some(notes), Some("dashboard")),
        "{call}"
    );
    let done = get(&app, &path).await;
    assert!(done.text().contains("Marked done") && done.text().contains("(dashboard)"), "{}", done.text());
    let actors =
        app.column(&format!("SELECT actor FROM audit_log WHERE entity = 'call' AND entity_id = {id} AND action = 'completed'")).await;
    assert_eq!(actors, vec!["dashboard"], "the audit trail names the dashboard");
    app.stop().await;
}

/// The `Set-Cookie` of a login's session, and the cookie to send back (`name=value`).
async fn session_cookie(app: &TestApp) -> (String, String) {
    let ok = log_in(app, API_TOKEN).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let set = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .find(|c| c.starts_with("firstcall_session="))
        .expect("a session cookie");
    let pair = set.split(';').next().unwrap().to_string();
    (set, pair)
}

#[tokio::test]
async fn a_dashboard_session_lasts_12_hours_and_its_cookie_says_so() {
    // README: the session "lasts 12 hours".
    let app = TestApp::spawn().await;
    let (set, pair) = session_cookie(&app).await;
    assert!(set.split("; ").any(|a| a == "Max-Age=43200"), "the browser keeps it 12 hours: {set}");
    app.advance(chrono::TimeDelta::hours(12) - chrono::TimeDelta::minutes(1));
    assert_eq!(get_with_cookie(&app, "/", &pair).await, StatusCode::OK, "still open a minute before");
    assert_eq!(get_with_cookie(&app, "/api/v1/calls", &pair).await, StatusCode::OK);
    // A browser that kept the cookie longer (or a copy of it) opens nothing once the 12 hours are up.
    app.advance(chrono::TimeDelta::minutes(1));
    assert_eq!(get_with_cookie(&app, "/", &pair).await, StatusCode::SEE_OTHER, "back to the login");
    assert_eq!(get_with_cookie(&app, "/api/v1/calls", &pair).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    // README: the cookie is "HttpOnly, SameSite=Lax, Secure when `http.public_url` is https"
    // (over plain http it is not: `the_dashboard_needs_a_login_and_logout_ends_it`).
    let https = Options { overrides: vec![("http.public_url", json!("https://firstcall.test"))], ..Options::default() };
    let app = TestApp::spawn_with(https).await;
    let (set, pair) = session_cookie(&app).await;
    let attributes: Vec<&str> = set.split("; ").skip(1).collect();
    for wanted in ["Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {set}");
    }
    // The test talks plain http to the server, so it sends the cookie itself, as a browser
    // would over https.
    assert_eq!(get_with_cookie(&app, "/", &pair).await, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_lists_overdue_calls_first_and_filters() {
    let app = TestApp::spawn().await;
    let other = "bo@seller.example";
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.advance(chrono::TimeDelta::hours(2));
    app.post_generic(&order_created("e2", "D-2", other, app.now())).await;
    app.post_generic(&order_created("e3", "D-3", REP, app.now())).await;
    app.settle().await;
    let calls = app.calls().await;
    let id_of = |deal: &str| calls.iter().find(|c| c["deal_id"] == deal).unwrap()["id"].as_i64().unwrap();
    let (d1, d2, d3) = (id_of("D-1"), id_of("D-2"), id_of("D-3"));
    app.api(reqwest::Method::POST, &format!("/api/v1/calls/{d3}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    // D-1 is due at 13:00 UTC, D-2 at 15:00: at 14:00 D-1 is overdue.
    app.clock.set(monday_morning() + chrono::TimeDelta::hours(5));
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);

    let board = get(&app, "/?state=all").await;
    let pos = |page: &Page, id: i64| page.html.find(&format!("id=\"call-{id}\""));
    let (p1, p2, p3) = (pos(&board, d1).unwrap(), pos(&board, d2).unwrap(), pos(&board, d3).unwrap());
    assert!(p1 < p2 && p2 < p3, "overdue, then open by due time, then done: {p1} {p2} {p3}");
    assert!(board.html.contains(&format!("<tr id=\"call-{d1}\" class=\"overdue\"")));
    assert!(board.html.contains(&format!("href=\"/calls/{d1}\"")), "links to the call page");
    let count = |page: &Page, state: &str| {
        let needle = format!("id=\"count-{state}\"><strong>");
        let at = page.html.find(&needle).unwrap() + needle.len();
        page.html[at..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>()
    };
    assert_eq!(
        [count(&board, "open"), count(&board, "past-due"), count(&board, "due"), count(&board, "done")],
        ["2", "1", "2", "1"].map(String::from),
        "two open (both due), one of them past its due time, one done"
    );

    let done_only = get(&app, "/?state=done").await;
    assert!(pos(&done_only, d3).is_some() && pos(&done_only, d1).is_none() && pos(&done_only, d2).is_none());
    let open_only = get(&app, "/").await;
    assert!(pos(&open_only, d1).is_some() && pos(&open_only, d2).is_some() && pos(&open_only, d3).is_none(), "open calls by default");
    let bo = get(&app, &format!("/?rep={other}")).await;
    assert!(pos(&bo, d2).is_some() && pos(&bo, d1).is_none());
    assert_eq!(count(&bo, "due"), "1");
    let open_of_ana = get(&app, &format!("/?rep={REP}&state=open")).await;
    assert!(pos(&open_of_ana, d1).is_some() && pos(&open_of_ana, d3).is_none());

    let bad = get(&app, "/?state=lost").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("unknown state 'lost'"));
    // A rep filter that is no email address (here with a NUL, which PostgreSQL cannot compare)
    // is refused with the reason, never an error page.
    let bad_rep = get(&app, "/?rep=ana%00%C2%9E").await;
    assert_eq!(bad_rep.status, 400);
    assert!(bad_rep.text().contains("is not a valid email address"), "{}", bad_rep.text());
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_open_calls_by_default_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let done = order_created("e-done", "D-DONE", REP, app.now());
    app.post_generic(&done).await;
    app.settle().await;
    let done_id = app.calls().await[0]["id"].as_i64().unwrap();
    app.api(reqwest::Method::POST, &format!("/api/v1/calls/{done_id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    // 101 orders in one delivery: one more open call than a page holds.
    let batch: Vec<serde_json::Value> = (0..101).map(|n| order_created(&format!("e{n}"), &format!("D-{n:03}"), REP, app.now())).collect();
    assert_eq!(app.post_generic(&json!(batch)).await.status(), 200);
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);

    let rows = |page: &Page| page.html.matches("<tr id=\"call-").count();
    let first = get(&app, "/").await;
    assert_eq!(first.status, 200);
    assert_eq!(rows(&first), 100, "a page of open calls");
    assert!(!first.html.contains(&format!("id=\"call-{done_id}\"")), "a done call is not in the default view");
    let at = first.html.find("id=\"next-page\" href=\"").expect("a link to the next page") + "id=\"next-page\" href=\"".len();
    let next: String = first.html[at..].chars().take_while(|c| *c != '"').collect::<String>().replace("&amp;", "&");
    assert!(next.starts_with("/?") && next.contains("cursor="), "{next}");

    let second = get(&app, &next).await;
    assert_eq!(second.status, 200);
    assert_eq!(rows(&second), 1, "the one open call left");
    assert!(!second.html.contains("id=\"next-page\""), "the last page has no next link");
    assert!(!second.html.contains(&format!("id=\"call-{done_id}\"")));

    let closed = get(&app, "/?state=closed").await;
    assert_eq!(rows(&closed), 1);
    assert!(closed.html.contains(&format!("id=\"call-{done_id}\"")), "closed calls one choice away");
    assert!(first.html.contains("<option value=\"closed\"") && first.html.contains("<option value=\"all\""));
    let bad = get(&app, "/?cursor=not-a-cursor").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("cursor"), "{}", bad.text());
    app.stop().await;
}

#[tokio::test]
async fn the_rep_filter_offers_each_rep_with_calls_and_a_new_one_within_seconds() {
    let app = TestApp::spawn().await;
    let other = "otto@example.com";
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let offered = |page: &Page, rep: &str| page.html.contains(&format!("<option value=\"{rep}\""));
    let first = get(&app, "/").await;
    assert!(offered(&first, REP), "the rep of the open call is a choice");
    assert!(!offered(&first, other), "a rep without calls is not");

    app.post_generic(&order_created("e2", "D-2", other, app.now())).await;
    app.settle().await;
    // The list is read again at most every few seconds; the new rep is there once it has been.
    app.advance(firstcall::workflow::queries::RepChoices::FRESH_FOR);
    let later = get(&app, "/").await;
    assert!(offered(&later, REP) && offered(&later, other), "both reps with calls are choices");
    let filtered = get(&app, &format!("/?rep={other}")).await;
    assert_eq!(filtered.html.matches("<tr id=\"call-").count(), 1, "the new rep's one call");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_retries_dead_jobs_and_failed_emails() {
    let app = TestApp::spawn().await;
    app.smtp.set_mode(testkit::smtp::Mode::PermFail).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let call_id = app.calls().await[0]["id"].as_i64().unwrap();
    // A first step that names no call fails at once and, with one attempt, is dead.
    let _ = call_id;
    let bad = firstcall::engine::NewJob { kind: firstcall::engine::JobKind::CallStart, subject_id: None, payload: None, run_at: app.now() };
    firstcall::engine::enqueue(&app.state.db, bad, 1, app.now()).await.unwrap();
    app.settle().await;
    let job_id = app.get_json("/api/v1/jobs?state=dead").await["jobs"][0]["id"].as_i64().unwrap();
    let email_id = app.get_json("/api/v1/emails?state=failed").await["emails"][0]["id"].as_i64().unwrap();
    app.smtp.set_mode(testkit::smtp::Mode::Accept).await;

    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/").await;
    assert!(board.html.contains(&format!("id=\"retry-job-{job_id}\"")) && board.html.contains(&format!("id=\"retry-email-{email_id}\"")));
    let csrf = board.csrf();
    let job_retry = format!("/dashboard/jobs/{job_id}/retry");
    assert_eq!(post_form(&app.client, &app, &job_retry, &[("csrf", "nope")]).await.status, 403);
    assert_eq!(app.get_json("/api/v1/jobs?state=dead").await["jobs"].as_array().unwrap().len(), 1, "a refused retry changes nothing");

    let r = post_form(&app.client, &app, &job_retry, &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/?retried=job#ops"));
    assert!(app.get_json("/api/v1/jobs?state=pending").await["jobs"].as_array().unwrap().iter().any(|j| j["id"] == job_id));
    assert_eq!(post_form(&app.client, &app, &job_retry, &[("csrf", &csrf)]).await.status, 404, "no longer dead");

    let r = post_form(&app.client, &app, &format!("/dashboard/emails/{email_id}/retry"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(get(&app, "/?retried=email").await.text().contains("The email is queued again"));
    app.deliver().await;
    assert_eq!(app.mails_to(REP).len(), 1, "the retried recap went out");

    // Logged out, the buttons do nothing.
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(post_form(&stranger, &app, &job_retry, &[("csrf", &csrf)]).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn the_schedule_preview_shows_what_config_check_prints() {
    let app = TestApp::spawn().await;
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let page = get(&app, "/?at=2026-11-27T16:30&tz=America/New_York").await;
    assert_eq!(page.status, 200);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T21:30:00Z").unwrap().with_timezone(&chrono::Utc);
    let tz = firstcall::domain::Timezone::parse("America/New_York").unwrap();
    let expected = firstcall::workflow::preview::render(&app.state.config, at, tz, 5);
    assert!(page.text().contains(expected.trim_end()), "{}\n---\n{expected}", page.text());
    assert!(page.html.contains("value=\"2026-11-27T16:30\""), "the form keeps the time");

    let bad = get(&app, "/?at=next+friday&tz=Mars/Base").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("Timezone: 'Mars/Base' is not an IANA timezone"), "{}", bad.text());
    app.stop().await;
}

#[tokio::test]
async fn crm_text_is_shown_as_text_on_every_page() {
    let app = TestApp::spawn().await;
    assert_eq!(app.put_rep(REP, &json!({"name": format!("Ana {PAYLOAD}"), "timezone": "Europe/Berlin"})).await.status(), 200);
    let mut p = proposal(REP);
    p["requirements"][0]["text"] = json!(format!("SSO {PAYLOAD}"));
    p["account"]["name"] = json!(format!("Acme {PAYLOAD}"));
    app.put_proposal("generic", "D-1", &p).await;
    let mut order = order_created("e1", "D-1", REP, app.now());
    order["order"]["account_name"] = json!(format!("Acme {PAYLOAD}"));
    app.post_generic(&order).await;
    app.settle().await;
    let link = call_link(&app.mails_to(REP)[0]);
    let page = get(&app, &link).await;
    let escaped = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot; onmouseover=&quot;alert(2)";
    let escaped_in_recap = "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;alert(2)";
    for needle in ["Acme ", "Ana "] {
        assert!(page.html.contains(&format!("{needle}{escaped}")), "{needle} escaped on the call page");
    }
    assert!(page.html.contains(&format!("SSO {escaped_in_recap}")), "the requirement escaped in the recap");
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    let r = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/done"),
        &[("t", token_of(&link)), ("csrf", &page.csrf()), ("outcome", "aligned"), ("notes", PAYLOAD)],
    )
    .await;
    assert_eq!(r.status, 303);
    let done = get(&app, &link).await;
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/?state=all").await;
    for (name, p) in [("call page", &page), ("done page", &done), ("dashboard", &board)] {
        assert!(!p.html.contains("<script"), "{name} has a script tag");
        assert!(!p.html.contains("\" onmouseover="), "{name} has an injected attribute");
    }
    assert!(done.html.contains(escaped), "the notes escaped");
    assert!(board.html.contains(&format!("Acme {escaped}")) && board.html.contains(&format!("Ana {escaped}")));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_email_whose_last_send_may_have_arrived_says_so_next_to_retry() {
    let app = TestApp::spawn_with(Options { overrides: vec![("mail.max_attempts", json!(1))], ..Options::default() }).await;
    // The server takes the message and never answers: the one attempt's outcome is unknown.
    app.smtp.set_mode(testkit::smtp::Mode::StallData).await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let failed = app.get_json("/api/v1/emails?state=failed").await;
    assert_eq!(failed["emails"][0]["unknown_outcomes"], 1, "the last attempt may have been delivered: {failed}");
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/").await;
    let id = failed["emails"][0]["id"].as_i64().unwrap();
    let row = board.html.split("<tr>").find(|r| r.contains(&format!("id=\"retry-email-{id}\""))).expect("the failed email is listed");
    assert!(row.contains("may have been delivered"), "{row}");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_session_reads_the_api_but_cannot_write_to_it_without_a_token() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.settle().await;
    let id = app.calls().await[0]["id"].as_i64().unwrap();
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    // The browser sends the session cookie with every request to the site, also one a hostile
    // page makes it send: reading is fine, a write without a token is refused.
    let read = app.client.get(app.url("/api/v1/calls")).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write =
        app.client.post(app.url(&format!("/api/v1/calls/{id}/complete"))).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = write.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Bearer"), "{body}");
    assert_eq!(app.calls().await[0]["state"], "due", "the call was not marked done");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_the_events_waiting_to_be_applied_and_those_that_could_not_be() {
    let owned = TestApp::spawn().await;
    let app = &owned;
    assert_eq!(log_in(app, API_TOKEN).await.status, 303);
    let sent = |id: &str, deal: &str| {
        let raw = serde_json::to_vec(&order_created(id, deal, REP, app.now())).unwrap();
        async move { app.send_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await.json::<serde_json::Value>().await.unwrap() }
    };
    let first = sent("e1", "D-1").await["events"][0]["stored_id"].as_i64().unwrap();
    sent("e2", "D-2").await;
    app.advance(chrono::TimeDelta::seconds(90));
    let board = get(app, "/").await;
    let text = board.text();
    assert!(text.contains("2 stored events waiting to be applied (the oldest received 90 s ago)"), "{text}");
    // One of them cannot be read by this version; the other is applied.
    app.exec(&format!("UPDATE webhook_events SET transition = 'reopened' WHERE id = {first}")).await;
    app.apply_events().await;
    let board = get(app, "/").await;
    let text = board.text();
    assert!(text.contains("Every stored event is applied."), "{text}");
    let failed = &board.html[board.html.find("id=\"failed-events\"").expect("the failed events are listed")..];
    assert!(failed.contains("e1") && failed.contains("reopened"), "{failed}");
    let latest = &board.html[board.html.find("id=\"latest-events\"").expect("the latest events are listed")..];
    assert!(latest.contains("e2") && latest.contains("opened"), "{latest}");
    owned.stop().await;
}

#[tokio::test]
async fn the_dashboards_counts_stay_bounded_past_ten_thousand_calls() {
    use sea_orm::Iterable;
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    // 10,000 more open calls like the first one.
    let columns: Vec<String> =
        entity::calls::Column::iter().map(|c| sea_orm::IdenStatic::as_str(&c).to_string()).filter(|c| c != "id").collect();
    let copied: Vec<String> = columns.iter().map(|c| if c == "deal_id" { "deal_id || '-' || i".to_string() } else { c.clone() }).collect();
    app.exec(&format!(
        "INSERT INTO calls ({}) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) SELECT {} FROM calls, n",
        columns.join(", "),
        copied.join(", ")
    ))
    .await;
    assert_eq!(app.count("calls WHERE state = 'scheduled'").await, 10_001);
    let postgres = app.state.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    if postgres {
        app.exec("ANALYZE calls").await;
    }
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/").await;
    let shown = |id: &str| {
        let needle = format!("id=\"count-{id}\"><strong>");
        let at = board.html.find(&needle).unwrap_or_else(|| panic!("{needle}")) + needle.len();
        board.html[at..board.html[at..].find('<').unwrap() + at].to_string()
    };
    // Past ten thousand, PostgreSQL's statistics give the figure; without them, a floor.
    let many = if postgres { "about 10,001" } else { "10,000+" };
    assert_eq!([shown("open"), shown("scheduled"), shown("past-due"), shown("done")], [many, many, "0", "0"]);
    // One rep's counts read that rep's calls only.
    let ana = get(&app, &format!("/?rep={REP}")).await;
    assert!(ana.html.contains("id=\"count-scheduled\"><strong>10,000+</strong>"), "a rep's count has no estimate");
    app.stop().await;
}

#[tokio::test]
async fn a_promise_form_needs_the_link_the_csrf_token_and_a_promise_of_that_call() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let (other, _) = call_with_link(&app, "D-2").await;
    for call in [id, other] {
        let r = app
            .api(reqwest::Method::POST, &format!("/api/v1/calls/{call}/complete"))
            .json(&json!({"outcome": "aligned"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let promises = app.get_json("/api/v1/promises?limit=500").await["promises"].as_array().unwrap().clone();
    let of = |call: i64| promises.iter().filter(|p| p["call_id"] == call).map(|p| p["id"].as_i64().unwrap()).collect::<Vec<_>>();
    let (sso, foreign) = (of(id)[0], of(other)[0]);
    let page = get(&app, &link).await;
    assert!(
        page.text().contains("What was promised") && page.html.contains(&format!("id=\"deliver-{sso}\"")),
        "the promises and their actions"
    );
    let (csrf, token) = (page.csrf(), token_of(&link).to_string());
    let action = format!("/calls/{id}/promises/{sso}");
    let audit = app.count("audit_log").await;

    assert_eq!(post_form(&app.client, &app, &action, &[("t", &token), ("action", "delivered")]).await.status, 403, "no CSRF token");
    assert_eq!(post_form(&app.client, &app, &action, &[("t", ""), ("csrf", &csrf), ("action", "delivered")]).await.status, 403, "no link");
    // The link of one call does not reach another call's promise.
    let r = post_form(
        &app.client,
        &app,
        &format!("/calls/{id}/promises/{foreign}"),
        &[("t", &token), ("csrf", &csrf), ("action", "delivered")],
    )
    .await;
    assert_eq!(r.status, 404);
    // A slip without a reason, or to an earlier date, comes back saying what is wrong.
    let r =
        post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("action", "slip"), ("deliver_by", "2026-12-18")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Say why, in a sentence the customer could hear."), "{}", r.text());
    let early = [("t", token.as_str()), ("csrf", &csrf), ("action", "slip"), ("deliver_by", "2026-12-01"), ("reason", "x")];
    let r = post_form(&app.client, &app, &action, &early).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("The new date must be later than Thu 10 Dec 2026."), "{}", r.text());
    assert_eq!(app.count("audit_log").await, audit, "nothing refused changed anything");

    let r = post_form(
        &app.client,
        &app,
        &action,
        &[("t", &token), ("csrf", &csrf), ("action", "drop"), ("reason", "Customer moves to Azure AD")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), format!("{link}#promise-{sso}"));
    let after = get(&app, &link).await.text();
    assert!(after.contains("Dropped") && after.contains("Customer moves to Azure AD"), "{after}");
    // Delivered after dropped: a page that says why.
    let r = post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("action", "delivered")]).await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains("is dropped already"), "{}", r.text());
    let audit_rows =
        app.column(&format!("SELECT actor FROM audit_log WHERE entity = 'promise' AND entity_id = {sso} AND action = 'dropped'")).await;
    assert_eq!(audit_rows, vec!["rep"], "the change is audited as the rep's");
    app.stop().await;
}

#[tokio::test]
async fn the_done_form_records_dates_agreed_on_the_call_and_promises_made_on_it() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let page = get(&app, &link).await;
    assert!(page.html.contains("name=\"date.C1\"") && page.html.contains("value=\"2026-12-10\""), "the proposal's dates, to change");
    let (csrf, token) = (page.csrf(), token_of(&link).to_string());
    let action = format!("/calls/{id}/done");
    let form = |outcome: &'static str| {
        vec![
            ("t", token.clone()),
            ("csrf", csrf.clone()),
            ("outcome", outcome.to_string()),
            ("date.C1", "2026-12-18".to_string()),
            ("date.C2", "2027-02-01".to_string()),
            ("added_text_0", "Weekly check-in call during rollout".to_string()),
            ("added_date_0", "2026-12-04".to_string()),
            ("added_text_1", String::new()),
        ]
    };
    let as_refs = |f: &Vec<(&'static str, String)>| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let r = Page::of(app.client.post(app.url(&action)).form(&as_refs(&form("aligned"))).send().await.unwrap()).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("A date changed on the call: choose Adjusted (or At risk)."), "{}", r.text());
    assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["state"], "due");
    let r = Page::of(app.client.post(app.url(&action)).form(&as_refs(&form("adjusted"))).send().await.unwrap()).await;
    assert_eq!(r.status, 303);
    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    let dates: Vec<_> = promises.iter().map(|p| (p["text"].as_str().unwrap(), p["deliver_by"].as_str())).collect();
    assert_eq!(dates[0], ("SAML SSO configured with Okta", Some("2026-12-18")));
    assert_eq!(dates[3], ("Weekly check-in call during rollout", Some("2026-12-04")));
    assert_eq!(dates.len(), 4, "an empty row adds nothing");
    app.stop().await;
}

#[tokio::test]
async fn the_check_in_form_records_the_customers_answer_once_every_promise_is_delivered() {
    let app = TestApp::spawn().await;
    let (id, link) = call_with_link(&app, "D-1").await;
    let r =
        app.api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete")).json(&json!({"outcome": "aligned"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!get(&app, &link).await.html.contains("id=\"check-in\""), "no check-in while promises are open");
    for p in app.get_json("/api/v1/promises").await["promises"].as_array().unwrap() {
        let r = app.api(reqwest::Method::POST, &format!("/api/v1/promises/{}/delivered", p["id"])).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let page = get(&app, &link).await;
    assert!(page.html.contains("id=\"check-in-form\""), "{}", page.html);
    let (csrf, token) = (page.csrf(), token_of(&link).to_string());
    let action = format!("/calls/{id}/check-in");
    let r = post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("note", "Happy overall")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Choose what the customer said."));
    let r =
        post_form(&app.client, &app, &action, &[("t", &token), ("csrf", &csrf), ("answer", "satisfied"), ("note", "Happy overall")]).await;
    assert_eq!(r.status, 303);
    let text = get(&app, &link).await.text();
    assert!(text.contains("The customer is <strong id=\"check-in-answer\">Satisfied</strong>") && text.contains("Happy overall"), "{text}");
    assert_eq!(app.get_json(&format!("/api/v1/calls/{id}")).await["check_in"]["answered_by"], "rep");
    app.stop().await;
}

/// The text of the element with `id` in `html`, up to its section's end (a rough cut for
/// assertions on one part of a page).
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in\n{html}"));
    let end = html[start..].find("</section>").map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test]
async fn the_dashboard_lists_open_promises_overdue_first_and_the_deals_at_risk_and_the_charts_page_counts_them() {
    let app = TestApp::spawn().await;
    let (id, _) = call_with_link(&app, "D-1").await;
    let r = app
        .api(reqwest::Method::POST, &format!("/api/v1/calls/{id}/complete"))
        .json(&json!({"outcome": "at_risk", "notes": "Wants SSO before Christmas"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let promises = app.get_json("/api/v1/promises").await["promises"].as_array().unwrap().clone();
    let (sso, connector) = (promises[0]["id"].as_i64().unwrap(), promises[1]["id"].as_i64().unwrap());
    // The connector (due 1 February, needed by 10 January) slips further; SSO is due 10 December.
    let slip = json!({"deliver_by": "2027-02-15", "reason": "Salesforce sandbox not ready"});
    assert_eq!(
        app.api(reqwest::Method::POST, &format!("/api/v1/promises/{connector}/slip")).json(&slip).send().await.unwrap().status(),
        200
    );
    app.advance(chrono::DateTime::parse_from_rfc3339("2026-12-14T10:00:00Z").unwrap().with_timezone(&chrono::Utc) - app.now());
    assert_eq!(log_in(&app, API_TOKEN).await.status, 303);
    let board = get(&app, "/").await;
    assert_eq!(board.status, 200);
    let listed = section(&board.html, "promises");
    let (at_sso, at_connector) =
        (listed.find(&format!("id=\"promise-{sso}\"")).unwrap(), listed.find(&format!("id=\"promise-{connector}\"")).unwrap());
    assert!(at_sso < at_connector, "the overdue promise first:\n{listed}");
    assert!(listed.contains("Thu 10 Dec 2026 <span class=\"badge late\">overdue</span>"), "{listed}");
    let at_risk = &listed[listed.find("id=\"at-risk\"").unwrap()..];
    assert!(at_risk.contains("The first call was marked at risk, and promises are still open"), "{at_risk}");
    assert!(at_risk.contains("is due Mon 15 Feb 2027, after the customer needs it (Sun 10 Jan 2027)"), "{at_risk}");

    // The charts page: behind the login, one figure per question, with the numbers.
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(app.url("/insights")).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login?next=/insights"));
    let page = get(&app, "/insights").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.html.matches("<figure class=\"chart\"").count(), 5, "five charts");
    assert!(!page.html.contains("<script"), "no script on the page");
    let text = page.text();
    assert!(text.contains("ana@seller.example"), "the rep's median: {text}");
    assert!(text.contains("Must-have not covered"), "the recap's gap kinds: {text}");
    assert!(text.contains("Dec 2026"), "the promise months: {text}");
    app.stop().await;
}
