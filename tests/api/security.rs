//! Security as an attacker or an auditor would probe it: secrets never reach the logs, tokens and
//! link keys rotate with an overlap, a call link opens one call until it expires, CRM text cannot
//! inject markup into mail or headers into messages, and abusive clients (too fast, too slow, too
//! big) are cut off while the service keeps answering everyone else.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const REP: &str = "ana@seller.example";
const SMTP_USER: &str = "firstcall";
const SMTP_PASSWORD: &str = "smtp-password-5f1c2e9a";
const LINK_KEY: &str = "link-signing-key-0123456789";
const HUBSPOT_CRM_TOKEN: &str = testkit::crm::hubspot::TOKEN;
const PIPEDRIVE_CRM_TOKEN: &str = "pipedrive-api-token-8c1d5e";
const SALESFORCE_CRM_SECRET: &str = "salesforce-client-secret-3b9f07";

/// What a client on a raw socket saw of the server: what it read back, when the first byte of
/// that arrived, and when the server closed the connection, each counted from the client's start.
struct Seen {
    answer: String,
    first_byte: Option<Duration>,
    closed: Duration,
}

impl Seen {
    /// When the server gave up on the client: its answer, or the cut if it sent none.
    fn gave_up(&self) -> Duration {
        self.first_byte.unwrap_or(self.closed)
    }
}

/// Reads until the server closes the connection (end of stream or reset). A connection still
/// open `within` after `since` fails the test: the server kept a client it should have cut off.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), since: Instant, within: Duration) -> Seen {
    let mut out = Vec::new();
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open {within:?} after the client started; it sent: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Seen { answer: String::from_utf8_lossy(&out).into_owned(), first_byte, closed: since.elapsed() };
            }
            Ok(Ok(n)) => {
                first_byte.get_or_insert_with(|| since.elapsed());
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

fn link_in(mail: &testkit::mail::ParsedMail) -> (i64, String) {
    let text = mail.text.as_deref().unwrap_or_default();
    let start = text.find("/calls/").expect("the mail links to the call page") + "/calls/".len();
    let rest = &text[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (id, token) = rest[..end].split_once("?t=").expect("the link carries a token");
    (id.parse().expect("call id"), token.to_string())
}

#[tokio::test]
async fn secrets_never_appear_in_the_logs() {
    // The real binary, logging at debug level, its output captured as an operator would see it.
    let db = testkit::db::TestDb::create().await;
    let smtp = testkit::SmtpSink::start_with_auth(SMTP_USER, SMTP_PASSWORD).await;
    let hubspot = testkit::crm::hubspot::FakeHubSpot::start().await;
    for deal in ["1246965", "1246978"] {
        hubspot.put_deal(deal, &testkit::crm::SampleDeal::acme(chrono::Utc::now()));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_firstcall"))
        .arg("serve")
        .env("FIRSTCALL_CONFIG_DIR", config_dir())
        .env("NO_COLOR", "1")
        .env("FIRSTCALL__LOG__LEVEL", "debug")
        .env("FIRSTCALL__DATABASE__URL", db.url())
        .env("FIRSTCALL__HTTP__PORT", port.to_string())
        .env("FIRSTCALL__HTTP__PUBLIC_URL", "http://firstcall.test")
        .env("FIRSTCALL__MAIL__TRANSPORT", "smtp")
        .env("FIRSTCALL__MAIL__SMTP__HOST", "127.0.0.1")
        .env("FIRSTCALL__MAIL__SMTP__PORT", smtp.port().to_string())
        .env("FIRSTCALL__MAIL__SMTP__USERNAME", SMTP_USER)
        .env("FIRSTCALL__MAIL__SMTP__PASSWORD", SMTP_PASSWORD)
        .env("FIRSTCALL__MAIL__FROM", "firstcall <firstcall@seller.example>")
        .env("FIRSTCALL__API__TOKENS", API_TOKEN)
        .env("FIRSTCALL__SIGN_IN__SALES_OPS", "ops@seller.example")
        .env("FIRSTCALL__LINKS__SIGNING_KEYS", LINK_KEY)
        .env("FIRSTCALL__WEBHOOKS__GENERIC__SECRETS", GENERIC_SECRET)
        .env("FIRSTCALL__WEBHOOKS__HUBSPOT__CLIENT_SECRETS", HUBSPOT_SECRET)
        .env("FIRSTCALL__WEBHOOKS__PIPEDRIVE__BASIC_AUTH", PIPEDRIVE_AUTH)
        .env("FIRSTCALL__WEBHOOKS__SALESFORCE__ORGANIZATION_IDS", format!("[{SALESFORCE_ORG:?}]"))
        .env("FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS", SALESFORCE_PATH_SECRET)
        // CRM connectors: HubSpot's reads the fake; Pipedrive's and Salesforce's find nobody
        // listening, so their failures are logged too.
        .env("FIRSTCALL__CRM__HUBSPOT__TOKEN", HUBSPOT_CRM_TOKEN)
        .env("FIRSTCALL__CRM__HUBSPOT__BASE_URL", &hubspot.server.base_url)
        .env("FIRSTCALL__CRM__PIPEDRIVE__API_TOKEN", PIPEDRIVE_CRM_TOKEN)
        .env("FIRSTCALL__CRM__PIPEDRIVE__BASE_URL", "http://127.0.0.1:9")
        .env("FIRSTCALL__CRM__SALESFORCE__BASE_URL", "http://127.0.0.1:9")
        .env("FIRSTCALL__CRM__SALESFORCE__CLIENT_ID", "firstcall-client-id")
        .env("FIRSTCALL__CRM__SALESFORCE__CLIENT_SECRET", SALESFORCE_CRM_SECRET)
        .env_remove("RUST_LOG")
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("the firstcall binary starts");
    let base = format!("http://127.0.0.1:{port}");
    firstcall::crm::client::install_tls_provider();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the service came up: {}", std::fs::read_to_string(log.path()).unwrap_or_default());

    // Every way a secret could be presented, right and wrong, each with its exact outcome: a
    // refusal that turned into a 500 (or an acceptance of a wrong secret) is a failure here too.
    let now = chrono::Utc::now();
    // The real clock: the event happened just now (events older than max_event_age_days are refused).
    let raw =
        String::from_utf8(fixture("generic/order_created.json")).unwrap().replace("2026-03-02T14:05:00Z", &now.to_rfc3339()).into_bytes();
    let post = |path: &str, body: Vec<u8>| client.post(format!("{base}{path}")).header("content-type", "application/json").body(body);
    let mut outcomes: Vec<(&str, u16, String)> = Vec::new();
    async fn seen(r: reqwest::Response) -> (u16, String) {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        let code = serde_json::from_str::<Value>(&body).ok().and_then(|b| b["error"]["code"].as_str().map(String::from));
        (status, code.unwrap_or(body))
    }
    let wrong = firstcall::intake::signature::sign_generic(b"wrong-generic-secret-1", now.timestamp(), &raw);
    let (st, code) = seen(post("/webhooks/generic", raw.clone()).header("X-Firstcall-Signature", wrong).send().await.unwrap()).await;
    outcomes.push(("generic, wrong secret", st, code));
    let good = firstcall::intake::signature::sign_generic(GENERIC_SECRET.as_bytes(), now.timestamp(), &raw);
    let (st, _) = seen(post("/webhooks/generic", raw.clone()).header("X-Firstcall-Signature", good).send().await.unwrap()).await;
    outcomes.push(("generic, right secret", st, String::new()));

    let uri = "http://firstcall.test/webhooks/hubspot";
    let ms = now.timestamp_millis().to_string();
    let hub = String::from_utf8(fixture("hubspot/closed_won_batch.json")).unwrap();
    let hub = hub.replace("1772460300000", &ms).replace("1772460301000", &ms).into_bytes();
    for (what, secret) in [("hubspot, wrong secret", "wrong-hubspot-secret"), ("hubspot, right secret", HUBSPOT_SECRET)] {
        let sig = firstcall::intake::signature::sign_hubspot_v3(secret.as_bytes(), "POST", uri, &hub, now.timestamp_millis());
        let r = post("/webhooks/hubspot", hub.clone())
            .header("X-HubSpot-Signature-v3", sig)
            .header("X-HubSpot-Request-Timestamp", now.timestamp_millis().to_string())
            .send()
            .await
            .unwrap();
        let (st, code) = seen(r).await;
        outcomes.push((what, st, if st == 200 { String::new() } else { code }));
    }
    let pd = String::from_utf8(fixture("pipedrive/deal_won_v2.json")).unwrap();
    let pd = pd.replace("2026-03-02T14:05:00.481Z", &now.to_rfc3339()).into_bytes();
    for (what, creds) in [("pipedrive, wrong password", "pipedrive:not-the-password"), ("pipedrive, right password", PIPEDRIVE_AUTH)] {
        let (user, password) = creds.split_once(':').unwrap();
        let (st, code) = seen(post("/webhooks/pipedrive", pd.clone()).basic_auth(user, Some(password)).send().await.unwrap()).await;
        outcomes.push((what, st, if st == 200 { String::new() } else { code }));
    }
    for (what, token) in [("api, wrong token", "not-the-api-token"), ("api, right token", API_TOKEN)] {
        let (st, code) = seen(client.get(format!("{base}/api/v1/calls")).bearer_auth(token).send().await.unwrap()).await;
        outcomes.push((what, st, if st == 200 { String::new() } else { code }));
    }
    // The Salesforce path secret is part of the URL, which the request log records; the org id
    // is checked behind it.
    let sf = String::from_utf8(fixture("salesforce/closed_won.xml")).unwrap().replace("2026-03-02T14:05:00.000Z", &now.to_rfc3339());
    let foreign = sf.replace(SALESFORCE_ORG, "00D000000000001AAA");
    for (what, path, body) in [
        ("salesforce, right path secret", format!("/webhooks/salesforce/{SALESFORCE_PATH_SECRET}"), sf.clone()),
        ("salesforce, wrong path secret", format!("/webhooks/salesforce/{SALESFORCE_PATH_SECRET}x"), sf.clone()),
        ("salesforce, another org", format!("/webhooks/salesforce/{SALESFORCE_PATH_SECRET}"), foreign),
    ] {
        let r = client.post(format!("{base}{path}")).header("content-type", "text/xml").body(body).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let outcome = if body.contains("<Ack>true</Ack>") {
            "ack"
        } else if body.contains("path secret") {
            "fault: path secret"
        } else if body.contains("Fault") && body.contains("organization") {
            "fault: organization"
        } else {
            "other"
        };
        outcomes.push((what, status, if outcome == "other" { body } else { outcome.into() }));
    }
    // The dashboard login trades a token for a session cookie.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let mut session = String::new();
    for (what, token) in [("login, wrong token", "not-the-api-token"), ("login, right token", API_TOKEN)] {
        let form = browser.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let at = form.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        let csrf: String = form[at..].chars().take_while(|c| *c != '"').collect();
        let r =
            browser.post(format!("{base}/login")).form(&[("csrf", csrf.as_str()), ("token", token), ("next", "/")]).send().await.unwrap();
        if let Some(c) =
            r.headers().get_all("set-cookie").iter().filter_map(|c| c.to_str().ok()).find(|c| c.starts_with("firstcall_session="))
        {
            session = c.trim_start_matches("firstcall_session=").split(';').next().unwrap().to_string();
        }
        outcomes.push((what, r.status().as_u16(), String::new()));
    }
    let (st, _) = seen(browser.get(format!("{base}/")).send().await.unwrap()).await;
    outcomes.push(("dashboard, session cookie", st, String::new()));

    // The recap goes out through SMTP with the password, its link signed with the link key.
    let mails = smtp.wait_for(2, Duration::from_secs(30)).await;
    assert!(!mails.is_empty(), "mail was sent");
    assert_eq!(smtp.logins().first().map(String::as_str), Some(SMTP_USER));
    let (call, link_token) = link_in(&mails[0].parse());
    let page = |t: String| client.get(format!("{base}/calls/{call}?t={t}")).send();
    outcomes.push(("call link, as signed", page(link_token.clone()).await.unwrap().status().as_u16(), String::new()));
    let mut changed = link_token.clone();
    let last = changed.pop().unwrap();
    changed.push(if last == 'A' { 'B' } else { 'A' });
    outcomes.push(("call link, changed", page(changed).await.unwrap().status().as_u16(), String::new()));
    // A person signs in with a one-time link sent by email.
    let person = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let csrf_in = |html: &str| -> String {
        let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        html[at..].chars().take_while(|c| *c != '"').collect()
    };
    let form = person.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let r = person
        .post(format!("{base}/login/email"))
        .form(&[("csrf", csrf_in(&form).as_str()), ("email", "ops@seller.example")])
        .send()
        .await
        .unwrap();
    outcomes.push(("sign-in link, asked", r.status().as_u16(), String::new()));
    let mut sign_in = None;
    for n in mails.len() + 1.. {
        let sent = smtp.wait_for(n, Duration::from_secs(30)).await;
        assert!(sent.len() >= n, "no sign-in email within 30 s");
        sign_in = sent.iter().map(|m| m.parse()).find(|m| m.subject.as_deref() == Some("Your firstcall sign-in link"));
        if sign_in.is_some() {
            break;
        }
    }
    let sign_in = sign_in.expect("the sign-in email");
    let text = sign_in.text.unwrap_or_default();
    let sign_in_secret: String =
        text.split("/login/link?t=").nth(1).expect("a link").chars().take_while(|c| !c.is_whitespace() && *c != '&').collect();
    let shown = person.get(format!("{base}/login/link?t={sign_in_secret}")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_in(&shown)), ("t", sign_in_secret.clone())];
    let r = person.post(format!("{base}/login/link")).form(&form).send().await.unwrap();
    let person_session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.strip_prefix("firstcall_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_default();
    outcomes.push(("sign-in link, used", r.status().as_u16(), String::new()));
    let again = person.post(format!("{base}/login/link")).form(&form).send().await.unwrap();
    outcomes.push(("sign-in link, used again", again.status().as_u16(), String::new()));
    // The HubSpot connector read the won deals with its token.
    let reads = hubspot.server.requests();
    assert!(
        reads.iter().any(|r| r.status == 200 && r.authorization.as_deref() == Some(&format!("Bearer {HUBSPOT_CRM_TOKEN}"))),
        "the connector used its token: {reads:?}"
    );

    let expected: Vec<(&str, u16, String)> = [
        ("generic, wrong secret", 401, "invalid_signature"),
        ("generic, right secret", 200, ""),
        ("hubspot, wrong secret", 401, "invalid_signature"),
        ("hubspot, right secret", 200, ""),
        ("pipedrive, wrong password", 401, "invalid_signature"),
        ("pipedrive, right password", 200, ""),
        ("api, wrong token", 401, "bad_token"),
        ("api, right token", 200, ""),
        ("salesforce, right path secret", 200, "ack"),
        ("salesforce, wrong path secret", 401, "fault: path secret"),
        ("salesforce, another org", 401, "fault: organization"),
        ("login, wrong token", 401, ""),
        ("login, right token", 303, ""),
        ("dashboard, session cookie", 200, ""),
        ("call link, as signed", 200, ""),
        ("call link, changed", 403, ""),
        ("sign-in link, asked", 200, ""),
        ("sign-in link, used", 303, ""),
        ("sign-in link, used again", 410, ""),
    ]
    .into_iter()
    .map(|(w, s, c)| (w, s, c.to_string()))
    .collect();
    assert_eq!(outcomes, expected);

    terminate(&mut child);
    let output = std::fs::read_to_string(log.path()).unwrap();
    assert!(output.contains("webhook rejected"), "the rejections were logged: {output}");
    assert!(output.contains("email sent"), "the delivery was logged");
    assert!(output.contains("mail send attempt"), "debug output was captured too");
    assert!(output.contains("/webhooks/salesforce/{path_secret}"), "the secret URL's requests were logged, masked");
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let pipedrive_password = PIPEDRIVE_AUTH.split(':').nth(1).unwrap();
    assert!(!session.is_empty() && !link_token.is_empty() && !person_session.is_empty() && !sign_in_secret.is_empty());
    for secret in [
        session.clone(),
        person_session.clone(),
        sign_in_secret.clone(),
        link_token.clone(),
        HUBSPOT_CRM_TOKEN.to_string(),
        PIPEDRIVE_CRM_TOKEN.to_string(),
        SALESFORCE_CRM_SECRET.to_string(),
        GENERIC_SECRET.to_string(),
        HUBSPOT_SECRET.to_string(),
        pipedrive_password.to_string(),
        b64(PIPEDRIVE_AUTH),
        API_TOKEN.to_string(),
        LINK_KEY.to_string(),
        SMTP_PASSWORD.to_string(),
        b64(SMTP_PASSWORD),
        b64(&format!("\0{SMTP_USER}\0{SMTP_PASSWORD}")),
        SALESFORCE_PATH_SECRET.to_string(),
    ] {
        assert!(!output.contains(&secret), "a secret ({}…) appears in the log", &secret[..6]);
    }
}

/// SIGTERM and wait, so the log is complete.
fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn api_tokens_rotate_with_an_overlap_and_can_be_stored_as_hashes() {
    let now = monday_morning();
    let hashed = "token-kept-only-as-a-hash-42";
    let tokens = json!([
        "new-api-token-0123456789",
        {"value": "old-api-token-0123456789", "expires_at": (now + TimeDelta::hours(1)).to_rfc3339()},
        {"sha256": hex::encode(firstcall::config::secrets::sha256(hashed.as_bytes()))},
    ]);
    let app = TestApp::spawn_with(Options { overrides: vec![("api.tokens", tokens)], ..Options::default() }).await;
    let get = |token: &'static str| app.client.get(app.url("/api/v1/calls")).bearer_auth(token).send();
    assert_eq!(get("new-api-token-0123456789").await.unwrap().status(), 200);
    assert_eq!(get("old-api-token-0123456789").await.unwrap().status(), 200, "the old token works during the overlap");
    assert_eq!(get(hashed).await.unwrap().status(), 200, "a token configured only by its hash works");
    app.advance(TimeDelta::hours(1));
    let r = get("old-api-token-0123456789").await.unwrap();
    assert_eq!(r.status(), 401, "the old token stops at its expires_at");
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["message"].as_str().unwrap().contains("expired"), "{b}");
    assert_eq!(get("new-api-token-0123456789").await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_call_link_opens_its_own_call_until_it_expires_and_survives_a_key_rotation() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    app.post_generic(&order_created("e2", "D-2", REP, app.now())).await;
    app.settle().await;
    let mails = app.mails_to(REP);
    let (call, token) = link_in(&mails[0]);
    let (other, _) = link_in(&mails[1]);
    assert_ne!(call, other);
    let links = &app.state.security.links;
    let now = app.now();
    assert_eq!(links.verify(&token, call, now), Ok(()));
    assert_eq!(links.verify(&token, other, now), Err(firstcall::links::LinkError::WrongCall), "bound to one call");
    let ttl = TimeDelta::hours(app.state.config.settings.links.ttl_hours as i64);
    assert_eq!(links.verify(&token, call, now + ttl - TimeDelta::seconds(1)), Ok(()));
    assert!(matches!(links.verify(&token, call, now + ttl), Err(firstcall::links::LinkError::Expired { .. })), "it expires");

    // Rotation: a new key signs, the old one still verifies links already sent until it expires.
    let retire_at = now + TimeDelta::days(2);
    let keys = json!(["a-brand-new-link-key-987654", {"value": LINK_KEY, "expires_at": retire_at.to_rfc3339()}]);
    let rotated = TestApp::spawn_with(Options { overrides: vec![("links.signing_keys", keys)], ..Options::default() }).await;
    let r = &rotated.state.security.links;
    assert_eq!(r.verify(&token, call, retire_at - TimeDelta::seconds(1)), Ok(()), "old links work during the overlap");
    assert!(r.verify(&token, call, retire_at).is_err(), "and stop when the old key retires");
    let fresh = r.sign(call, now + ttl);
    assert_eq!(r.verify(&fresh, call, retire_at + TimeDelta::hours(1)), Ok(()));
    assert!(links.verify(&fresh, call, now).is_err(), "new links are signed with the new key");
    rotated.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn crm_text_cannot_inject_markup_into_mail_or_headers_into_messages() {
    let app = TestApp::spawn().await;
    let script = "<script>alert('x')</script>";
    let attr = "\" onmouseover=\"alert(1)\" x=\"";
    let img = "'><img src=x onerror=alert(2)>";
    let hostile = format!("{script}{attr}{img}");
    let r = app.put_rep(REP, &json!({"name": format!("Ana {hostile}"), "timezone": "Europe/Lisbon"})).await;
    assert_eq!(r.status(), 200);
    // A name that tries to start a header of its own is refused at the door.
    let r = app.put_rep(REP, &json!({"name": "Ana\r\nBcc: victim@evil.example", "timezone": "Europe/Lisbon"})).await;
    assert_eq!(r.status(), 422);
    let mut p = proposal(REP);
    p["account"]["name"] = json!(format!("Acme {hostile}"));
    p["requirements"][0]["text"] = json!(format!("SSO {hostile}"));
    p["commitments"][0]["text"] = json!(format!("SAML {hostile}"));
    p["line_items"][0]["rationale"] = json!(format!("Seats {hostile}"));
    p["contacts"][0]["name"] = json!(format!("Dana {hostile}"));
    p["activities"][0]["summary"] = json!(format!("Discovery {hostile}"));
    assert!(app.put_proposal("generic", "D-1", &p).await.status().is_success());
    let mut order = order_created("e1", "D-1", REP, app.now());
    order["order"]["account_name"] = json!(format!("Acme {hostile}\r\nBcc: victim@evil.example\r\nX-Injected: 1"));
    order["order"]["line_items"][0]["name"] = json!(format!("Pro {hostile}"));
    assert_eq!(app.post_generic(&order).await.status(), 200);
    app.settle().await;
    app.advance_and_settle(TimeDelta::hours(8), TimeDelta::hours(1)).await;

    let captured = app.smtp.messages();
    assert!(captured.len() >= 2, "the recap and a reminder arrived");
    let subjects: Vec<String> = captured.iter().filter_map(|m| m.parse().subject).collect();
    assert!(subjects.iter().any(|s| s.contains("Bcc: victim@evil.example")), "the payload reached the subject, on its line: {subjects:?}");
    for m in &captured {
        assert_eq!(m.rcpt_to, vec![REP.to_string()], "nobody else receives it");
        let mail = m.parse();
        let html = mail.html.as_deref().unwrap_or_default();
        for raw in ["<script", "<img", "\" onmouseover", "onerror=alert(2)>"] {
            assert!(!html.contains(raw), "{raw} reached the HTML unescaped");
        }
        assert!(html.contains("&lt;script&gt;"), "the text is shown, escaped");
        for (name, value) in &mail.headers {
            assert!(!name.eq_ignore_ascii_case("bcc") && !name.eq_ignore_ascii_case("x-injected"), "injected header {name}: {value}");
        }
        let subject = mail.subject.unwrap_or_default();
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert!(mail.to.iter().all(|t| t.address == REP), "{:?}", mail.to);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_and_other_sources_do_not() {
    let app = TestApp::spawn_with(Options { overrides: vec![("http.rate_limit_per_minute", json!(3))], ..Options::default() }).await;
    for i in 0..3 {
        assert_eq!(app.post_generic(&order_created(&format!("e{i}"), &format!("D-{i}"), REP, app.now())).await.status(), 200);
    }
    let before = app.intake_counts().await;
    let r = app.post_generic(&order_created("e3", "D-3", REP, app.now())).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some(), "tells the CRM when to retry");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    assert_eq!(app.intake_counts().await, before, "a refused request writes nothing");
    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200, "another CRM keeps its own budget");
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_however_they_are_sent() {
    let app = TestApp::spawn_with(Options { overrides: vec![("http.body_limit_bytes", json!(4096))], ..Options::default() }).await;
    let before = app.intake_counts().await;
    // Chunked, so no Content-Length announces the size up front.
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let head = "POST /webhooks/generic HTTP/1.1\r\nHost: firstcall.test\r\nContent-Type: application/json\r\n\
                X-Firstcall-Signature: t=1,v1=00\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..10 {
        // The server may stop reading once the limit is passed.
        let _ = stream.write_all(format!("400\r\n{}\r\n", " ".repeat(1024)).as_bytes()).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let answer = read_until_closed(&mut stream, Instant::now(), Duration::from_secs(20)).await.answer;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    let mut big = proposal(REP);
    big["requirements"][0]["text"] = json!("x".repeat(5000));
    assert_eq!(app.put_proposal("generic", "D-1", &big).await.status(), 413);
    assert_eq!(app.intake_counts().await, before);
    assert_eq!(app.count("proposals").await, 0);
    app.stop().await;
}

/// How a raw client misbehaves (or not) after connecting.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Headers that never end, a line every 250 ms (slowloris).
    HeadersDribbled,
    /// Half a request line of headers, then silence.
    HeadersStalled,
    /// Complete headers, then the body a byte every 250 ms, never reaching its length.
    BodyDribbled,
    /// Complete headers, one byte of the body, then silence.
    BodyStalled,
    /// The whole request, a byte every 5 ms: about a second, well within the timeout.
    SlowButInTime,
}

/// Plays `pace` against the server and returns what the client saw, counted from before the
/// connection was opened.
async fn slow_client(addr: &str, pace: Pace, within: Duration) -> Seen {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let body = "{\"id\": \"slow\"}";
    let head = format!(
        "POST /webhooks/generic HTTP/1.1\r\nHost: firstcall.test\r\nContent-Type: application/json\r\n\
         X-Firstcall-Signature: t=1,v1=00\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        match pace {
            Pace::SlowButInTime => body.len(),
            _ => 200,
        }
    );
    let writer = tokio::spawn(async move {
        // The server may hang up at any point; that is what is being measured, so a failed write ends the dribble.
        let every = |ms| tokio::time::sleep(Duration::from_millis(ms));
        match pace {
            Pace::HeadersDribbled => {
                let _ = wr.write_all(b"POST /webhooks/generic HTTP/1.1\r\nHost: firstcall.test\r\n").await;
                for i in 0.. {
                    every(250).await;
                    if wr.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            Pace::HeadersStalled => {
                let _ = wr.write_all(b"POST /webhooks/generic HTTP/1.1\r\nHost: firstc").await;
            }
            Pace::BodyDribbled => {
                let _ = wr.write_all(format!("{head}{{").as_bytes()).await;
                for _ in 0..150 {
                    every(250).await;
                    if wr.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
            Pace::BodyStalled => {
                let _ = wr.write_all(format!("{head}{{").as_bytes()).await;
            }
            Pace::SlowButInTime => {
                for b in format!("{head}{body}").bytes() {
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    every(5).await;
                }
            }
        }
        // Keep the write half open: a client that has stopped sending has not hung up.
        every(60_000).await;
        drop(wr);
    });
    let read = read_until_closed(&mut rd, started, within).await;
    writer.abort();
    read
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_the_client_timeout_and_the_service_keeps_answering() {
    // README: "a client slower than `http.client_timeout_secs` gets 408 or is cut off while
    // others are served". Measured from outside, on raw sockets: the server gives up on each
    // slow client (answers 408 or hangs up) after the timeout, not before (slower than it is
    // what gets a client cut off), and the connection is closed within a margin (after a 408,
    // actix waits up to 2 s for the client to hang up first; plus scheduling on a busy machine).
    let timeout = Duration::from_secs(2);
    let margin = Duration::from_secs(5);
    let app =
        TestApp::spawn_with(Options { overrides: vec![("http.client_timeout_secs", json!(timeout.as_secs()))], ..Options::default() })
            .await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let within = timeout + margin;
    let paces = [Pace::HeadersDribbled, Pace::HeadersStalled, Pace::BodyDribbled, Pace::BodyStalled];
    let clients = futures_util::future::join_all(paces.map(|pace| slow_client(&addr, pace, within)));
    // Everyone else is served meanwhile, promptly.
    let others = async {
        let mut served = Vec::new();
        let until = Instant::now() + timeout + Duration::from_millis(500);
        while Instant::now() < until {
            let asked = Instant::now();
            let status = app.client.get(app.url("/healthz")).send().await.unwrap().status();
            served.push((status.as_u16(), asked.elapsed()));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        served
    };
    let (cut, served) = tokio::join!(clients, others);
    assert!(served.len() >= 8 && served.iter().all(|(s, took)| *s == 200 && *took < Duration::from_secs(2)), "{served:?}");
    for (pace, seen) in paces.iter().zip(&cut) {
        let answer = &seen.answer;
        assert!(seen.gave_up() >= timeout, "{pace:?}: given up on after {:?}, before the {timeout:?} timeout: {answer:?}", seen.gave_up());
        match pace {
            Pace::BodyDribbled | Pace::BodyStalled => {
                assert!(answer.starts_with("HTTP/1.1 408"), "{pace:?}: a body too slow gets 408: {answer:?}")
            }
            _ => assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{pace:?}: headers too slow are cut off: {answer:?}"),
        }
    }
    // A client slow but within the timeout is answered (its signature is wrong: 401), not cut off.
    let answer = slow_client(&addr, Pace::SlowButInTime, within).await.answer;
    assert!(answer.starts_with("HTTP/1.1 401"), "a request sent slowly but in time is read and answered: {answer:?}");
    assert_eq!(app.count("webhook_events").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_page_offset_is_refused_pointing_to_the_cursor_and_a_huge_limit_is_capped() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    for offset in ["0", "9223372036854775807", "9223372036854775808", "18446744073709551615", "99999999999999999999"] {
        let r = app.api(reqwest::Method::GET, &format!("/api/v1/calls?offset={offset}")).send().await;
        let r = r.unwrap_or_else(|e| panic!("offset {offset}: the connection was dropped: {e}"));
        assert_eq!(r.status(), 400, "offset {offset}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["field"], "offset", "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("cursor"), "{b}");
    }
    for limit in ["9223372036854775807", "18446744073709551615"] {
        let r = app.api(reqwest::Method::GET, &format!("/api/v1/calls?limit={limit}")).send().await;
        let r = r.unwrap_or_else(|e| panic!("limit {limit}: the connection was dropped: {e}"));
        assert_eq!(r.status(), 200, "limit {limit}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["calls"].as_array().unwrap().len(), 1, "limit {limit}");
    }
    app.stop().await;
}

#[tokio::test]
async fn what_the_api_answers_to_hostile_requests_is_documented_in_its_openapi() {
    let app = TestApp::spawn().await;
    app.post_generic(&order_created("e1", "D-1", REP, app.now())).await;
    let call = app.calls().await[0]["id"].as_i64().unwrap();
    let doc = app.get_json("/openapi.json").await;
    let complete = format!("/api/v1/calls/{call}/complete");
    // (method, OpenAPI path, request path, content type, body)
    type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, &'a [u8]);
    let cases: Vec<Case> = vec![
        ("put", "/api/v1/reps/{email}", format!("/api/v1/reps/{REP}"), None, b"{}"),
        ("put", "/api/v1/reps/{email}", format!("/api/v1/reps/{REP}"), Some("application/json"), b"\0"),
        ("post", "/api/v1/calls/{id}/complete", complete.clone(), None, b"{}"),
        ("post", "/api/v1/calls/{id}/complete", complete, Some("application/json"), b"\0"),
        ("put", "/api/v1/proposals/{source}/{deal_id}", "/api/v1/proposals/no-such-crm/D-1".into(), Some("application/json"), b"{}"),
    ];
    for (method, template, path, content_type, body) in cases {
        let mut req = app.api(method.to_uppercase().parse().unwrap(), &path).body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let status = req.send().await.unwrap().status();
        let documented = &doc["paths"][template][method]["responses"];
        assert!(
            documented.get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which its OpenAPI does not list: {documented}"
        );
    }
    app.stop().await;
}

/// Sends `attempt` until it answers 429 (at most `cap` times) and returns the statuses seen
/// before that and the 429 response.
async fn fail_until_limited<F, Fut>(cap: usize, mut attempt: F) -> (Vec<u16>, Option<reqwest::Response>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let mut before = Vec::new();
    for _ in 0..cap {
        let r = attempt().await;
        if r.status() == 429 {
            return (before, Some(r));
        }
        before.push(r.status().as_u16());
    }
    (before, None)
}

#[tokio::test]
async fn unsigned_webhooks_do_not_spend_the_budget_of_the_crm_they_claim_to_be() {
    let app = TestApp::spawn_with(Options { overrides: vec![("http.rate_limit_per_minute", json!(3))], ..Options::default() }).await;
    let raw = serde_json::to_vec(&order_created("e1", "D-1", REP, app.now())).unwrap();
    // A burst of forged requests, more than the whole budget: unsigned, and signed with a wrong secret.
    let mut forged = Vec::new();
    for _ in 0..4 {
        let r = app
            .client
            .post(app.url("/webhooks/generic"))
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        forged.push(r.status().as_u16());
        forged.push(app.post_generic_raw(&raw, "not-the-generic-secret", app.now().timestamp()).await.status().as_u16());
        forged.push(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), "pipedrive:wrong-password").await.status().as_u16());
    }
    let r = app.post_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await;
    assert_eq!(r.status(), 200, "the CRM's signed event is accepted after forged ones answered {forged:?}: {}", r.text().await.unwrap());
    assert!(forged.iter().all(|s| *s == 401), "{forged:?}");
    let r = app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await;
    assert_eq!(r.status(), 200, "so is Pipedrive's, with the right password");
    // The budget still counts the source's authentic requests.
    for i in 2..4 {
        assert_eq!(app.post_generic(&order_created(&format!("e{i}"), &format!("D-{i}"), REP, app.now())).await.status(), 200);
    }
    assert_eq!(app.post_generic(&order_created("e4", "D-4", REP, app.now())).await.status(), 429);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failed_webhook_authentication_from_one_address_gets_429_and_the_crm_still_gets_through() {
    let app = TestApp::spawn().await;
    let raw = serde_json::to_vec(&order_created("e1", "D-1", REP, app.now())).unwrap();
    let before = app.intake_counts().await;
    let (refused, limited) = fail_until_limited(100, || app.post_generic_raw(&raw, "not-the-generic-secret", app.now().timestamp())).await;
    let limited = limited.expect("many failures from one address end in 429");
    let limit = app.state.config.settings.http.failed_auth_limit as usize;
    assert!(refused.len() >= limit && refused.iter().all(|s| *s == 401), "401 for the first {limit} failures: {refused:?}");
    assert!(limited.headers().get("retry-after").is_some(), "says when to retry");
    assert_eq!(limited.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    // Failures from the same address count against all sources.
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), "pipedrive:wrong-password").await.status(), 429);
    assert_eq!(app.intake_counts().await, before, "nothing stored");
    // Only failures are limited: correctly signed events from the same address are accepted.
    assert_eq!(app.post_generic_raw(&raw, GENERIC_SECRET, app.now().timestamp()).await.status(), 200);
    assert_eq!(app.post_pipedrive(&fixture("pipedrive/deal_won_v2.json"), PIPEDRIVE_AUTH).await.status(), 200);
    app.stop().await;
}

const SALESFORCE_PATH_SECRET: &str = "sf-path-7f3a9c2e41b8d605";

#[tokio::test]
async fn the_salesforce_endpoint_with_a_path_secret_refuses_every_other_url_as_a_failed_attempt() {
    let overrides = vec![("webhooks.salesforce.path_secrets", json!([SALESFORCE_PATH_SECRET])), ("http.failed_auth_limit", json!(4))];
    let app = TestApp::spawn_with(Options { overrides, ..Options::default() }).await;
    let raw = fixture("salesforce/closed_won.xml");
    let post = |path: String| app.client.post(app.url(&path)).header("content-type", "text/xml").body(raw.clone()).send();
    let before = app.intake_counts().await;
    // The bare endpoint, a wrong secret, the secret with more or less to it, another case.
    let mut refused = Vec::new();
    for path in [
        "/webhooks/salesforce".to_string(),
        "/webhooks/salesforce/not-the-path-secret".to_string(),
        format!("/webhooks/salesforce/{}", &SALESFORCE_PATH_SECRET[..SALESFORCE_PATH_SECRET.len() - 1]),
        format!("/webhooks/salesforce/{}", SALESFORCE_PATH_SECRET.to_uppercase()),
    ] {
        let r = post(path.clone()).await.unwrap();
        refused.push((path, r.status().as_u16(), r.text().await.unwrap()));
    }
    for (path, status, body) in &refused {
        assert_eq!(*status, 401, "{path}: {body}");
        assert!(body.contains("Fault") && body.contains("path secret"), "{path}: {body}");
        assert!(!body.contains(SALESFORCE_PATH_SECRET), "{path}: the refusal repeats the secret");
    }
    assert_eq!(app.intake_counts().await, before, "nothing stored");
    // Each refusal counted as a failed attempt: the next one from this address gets 429.
    assert_eq!(post("/webhooks/salesforce/still-not-it".into()).await.unwrap().status(), 429);
    // The right URL still works from the same address, and Salesforce gets its Ack.
    let r = post(format!("/webhooks/salesforce/{SALESFORCE_PATH_SECRET}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<Ack>true</Ack>"));
    app.apply_events().await;
    assert_eq!(app.count("calls").await, 1);
    // The org is still checked behind the secret.
    let foreign = String::from_utf8(raw.clone()).unwrap().replace("00D5e000000KQ2eEAG", "00D000000000001AAA");
    let r = app
        .client
        .post(app.url(&format!("/webhooks/salesforce/{SALESFORCE_PATH_SECRET}")))
        .header("content-type", "text/xml")
        .body(foreign)
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 429), "{}", r.status());
    app.stop().await;
}

#[tokio::test]
async fn wrong_api_tokens_from_one_address_are_throttled_and_the_right_token_still_works() {
    let app = TestApp::spawn().await;
    // Successful requests are never charged, however many.
    for _ in 0..60 {
        assert_eq!(app.api(reqwest::Method::GET, "/api/v1/calls").send().await.unwrap().status(), 200);
    }
    let wrong = || app.client.get(app.url("/api/v1/calls")).bearer_auth("not-the-api-token").send();
    let first = wrong().await.unwrap();
    assert_eq!(first.status(), 401, "the successes before did not count");
    let (refused, limited) = fail_until_limited(100, || async { wrong().await.unwrap() }).await;
    let limited = limited.expect("many wrong tokens from one address end in 429");
    let limit = app.state.config.settings.http.failed_auth_limit as usize;
    assert!(refused.len() + 1 >= limit && refused.iter().all(|s| *s == 401), "401 for the first {limit} failures: {refused:?}");
    let retry: u64 = limited.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // A malformed Authorization header is a failed attempt too.
    let r = app.client.get(app.url("/api/v1/calls")).header("authorization", "Basic Zm9vOmJhcg==").send().await.unwrap();
    assert_eq!(r.status(), 429);
    // The right token still works from the same address, and is not charged.
    for _ in 0..3 {
        assert_eq!(app.api(reqwest::Method::GET, "/api/v1/calls").send().await.unwrap().status(), 200);
    }
    // A request without any credentials is not an attempt: it is told to authenticate.
    assert_eq!(app.client.get(app.url("/api/v1/calls")).send().await.unwrap().status(), 401);
    // Every route that takes a token documents the 429.
    let doc = app.get_json("/openapi.json").await;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["security"].to_string().contains("bearer") || path.starts_with("/webhooks/") {
                assert!(op["responses"].get("429").is_some(), "{method} {path} can answer 429 but does not document it");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_tokens_on_the_login_form_are_throttled_with_a_page_saying_to_wait() {
    let app = TestApp::spawn().await;
    let form = app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let at = form.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf: String = form[at..].chars().take_while(|c| *c != '"').collect();
    let login =
        |token: &'static str| app.client.post(app.url("/login")).form(&[("csrf", csrf.as_str()), ("token", token), ("next", "/")]).send();
    let (refused, limited) = fail_until_limited(100, || async { login("not-the-token").await.unwrap() }).await;
    let limited = limited.expect("many wrong tokens from one address end in 429");
    let limit = app.state.config.settings.http.failed_auth_limit as usize;
    assert!(refused.len() >= limit && refused.iter().all(|s| *s == 401), "401 for the first {limit} failures: {refused:?}");
    assert!(limited.headers().get("retry-after").is_some(), "says when to retry");
    assert!(limited.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = limited.text().await.unwrap();
    assert!(page.contains("Too many failed attempts"), "{page}");
    assert!(!page.contains("firstcall_session"));
    // The right token still logs in from the same address.
    let ok = login(API_TOKEN).await.unwrap();
    assert_eq!(ok.status(), 303);
    assert!(ok.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("firstcall_session=")));
    app.stop().await;
}
