//! The `firstcall` binary as operators run it: config checks and previews, layered config and
//! its errors, migrations, the embedded default start, logs, graceful shutdown, `recap`, `demo`
//! and the development credentials it runs with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_firstcall");

fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A copy of the repository's config directory to edit.
fn config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_config().join("default.toml"), dir.path().join("default.toml")).unwrap();
    dir
}

fn firstcall(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    // Only what a test sets: no FIRSTCALL_* from the developer's shell.
    for (k, _) in std::env::vars() {
        if k.starts_with("FIRSTCALL") {
            c.env_remove(k);
        }
    }
    c
}

fn run(mut c: impl std::borrow::BorrowMut<Command>) -> (Output, String, String) {
    let out = c.borrow_mut().output().expect("run firstcall");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stdout, stderr)
}

#[test]
fn config_check_previews_each_schedule_in_the_reps_timezone() {
    let (out, stdout, stderr) = run(firstcall(&[
        "--config-dir",
        repo_config().to_str().unwrap(),
        "config",
        "check",
        "--at",
        "2026-11-27T16:30:00Z",
        "--tz",
        "America/New_York",
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("configuration OK"));
    // Friday 11:30 in New York; default: 4 business hours, 09:00-17:00 -> 15:30 the same day.
    let default = stdout.split("schedule \"default\"").nth(1).expect("default schedule listed");
    assert!(default.contains("call due:    Fri 2026-11-27 15:30 EST"), "{stdout}");
    assert!(default.contains("reminder 1:  Fri 2026-11-27 14:00 EST"), "{stdout}");
    assert!(default.contains("reminder 2:  Mon 2026-11-30 09:00 EST"), "{stdout}");
    assert!(default.contains("escalate 1:  Fri 2026-11-27 23:30 EST to the rep's manager"), "{stdout}");
    assert!(default.contains("overdue; step \"manager\")"), "each step is shown with its name: {stdout}");
    // Enterprise: 2 business hours inside 08:00-18:00 -> 13:30.
    let enterprise = stdout.split("schedule \"enterprise\"").nth(1).unwrap();
    assert!(enterprise.contains("call due:    Fri 2026-11-27 13:30 EST"), "{stdout}");
    assert!(stdout.contains("templates:"), "templates were checked: {stdout}");
}

#[test]
fn config_check_against_running_says_when_nothing_runs_yet() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/firstcall.db", dir.path().display());
    let check = || {
        let mut c = firstcall(&["--config-dir", repo_config().to_str().unwrap(), "config", "check", "--against-running"]);
        c.env("FIRSTCALL__DATABASE__URL", &url);
        run(c)
    };
    // No database file: said, and none is created.
    let (out, _, stderr) = check();
    assert!(!out.status.success());
    assert!(stderr.contains("no database at") && stderr.contains("firstcall.db"), "{stderr}");
    assert!(!dir.path().join("firstcall.db").exists(), "the check creates no database");
    // A database nobody has served from yet.
    let (migrated, _, stderr) =
        run(firstcall(&["--config-dir", repo_config().to_str().unwrap(), "migrate"]).env("FIRSTCALL__DATABASE__URL", &url));
    assert!(migrated.status.success(), "{stderr}");
    let (out, stdout, stderr) = check();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("against what runs: no serve or worker has recorded its configuration"), "{stdout}");
}

#[test]
fn a_bad_value_in_a_file_is_reported_with_file_key_and_reason() {
    let dir = config_copy();
    let path = dir.path().join("default.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("reminder_cron = \"0 9,14 * * 1-5\"", "reminder_cron = \"0 9 * *\"");
    std::fs::write(&path, text).unwrap();
    let (out, _, stderr) = run(firstcall(&["--config-dir", dir.path().to_str().unwrap(), "config", "check"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("default.toml"), "{stderr}");
    assert!(stderr.contains("reminder_cron"), "{stderr}");
    assert!(stderr.contains("4 fields"), "{stderr}");
}

#[test]
fn a_bad_environment_variable_is_named() {
    let (out, _, stderr) =
        run(firstcall(&["--config-dir", repo_config().to_str().unwrap(), "config", "check"]).env("FIRSTCALL__HTTP__PORT", "eighty"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("FIRSTCALL__HTTP__PORT"), "{stderr}");
    assert!(stderr.contains("http.port"), "{stderr}");
}

#[test]
fn layers_apply_in_order_file_then_environment_file_then_variables() {
    let dir = config_copy();
    std::fs::write(dir.path().join("staging.toml"), "[http]\nport = 9100\n[mail]\ntransport = \"smtp\"\n").unwrap();
    let cfg = dir.path().to_str().unwrap();
    let (_, stdout, _) = run(firstcall(&["--config-dir", cfg, "config", "check"]));
    assert!(stdout.contains("listen:    127.0.0.1:8080"), "{stdout}");
    assert!(stdout.contains("mail:      File"), "{stdout}");
    let (_, stdout, _) = run(firstcall(&["--config-dir", cfg, "config", "check"]).env("FIRSTCALL_ENV", "staging"));
    assert!(stdout.contains("listen:    127.0.0.1:9100"), "{stdout}");
    assert!(stdout.contains("mail:      Smtp"), "{stdout}");
    let (_, stdout, _) =
        run(firstcall(&["--config-dir", cfg, "config", "check"]).env("FIRSTCALL_ENV", "staging").env("FIRSTCALL__HTTP__PORT", "9200"));
    assert!(stdout.contains("listen:    127.0.0.1:9200"), "{stdout}");
}

#[test]
fn a_secret_written_in_a_config_file_stops_start_up() {
    let dir = config_copy();
    std::fs::write(dir.path().join("production.toml"), "[api]\ntokens = [\"committed-token-123\"]\n").unwrap();
    let (out, _, stderr) =
        run(firstcall(&["--config-dir", dir.path().to_str().unwrap(), "config", "check"]).env("FIRSTCALL_ENV", "production"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("production.toml") && stderr.contains("api.tokens") && stderr.contains("FIRSTCALL__API__TOKENS"), "{stderr}");
    assert!(!stderr.contains("committed-token-123"), "the secret is not echoed");
}

#[tokio::test]
async fn migrate_creates_the_schema_once_on_an_empty_postgres_database() {
    let db = testkit::db::TestDb::postgres().await;
    let (out, stdout, stderr) =
        run(firstcall(&["--config-dir", repo_config().to_str().unwrap(), "migrate"]).env("FIRSTCALL__DATABASE__URL", db.url()));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("applied"), "{stdout}");
    let settings = firstcall::config::DatabaseSettings {
        url: db.url().to_string(),
        max_connections: 1,
        connect_timeout_secs: 5,
        migrate_on_start: false,
        intake_writers: 0,
    };
    let conn = firstcall::db::connect(&settings).await.unwrap();
    assert!(firstcall::db::schema_is_current(&conn).await.unwrap());
    drop(conn);
    let (out, stdout, _) =
        run(firstcall(&["--config-dir", repo_config().to_str().unwrap(), "migrate"]).env("FIRSTCALL__DATABASE__URL", db.url()));
    assert!(out.status.success());
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `firstcall serve` in `cwd` with no config directory there: the built-in defaults.
    fn start(cwd: &Path, envs: &[(&str, &str)]) -> Server {
        Self::start_on(cwd, free_port(), envs)
    }

    fn start_on(cwd: &Path, port: u16, envs: &[(&str, &str)]) -> Server {
        firstcall::crm::client::install_tls_provider();
        let log = cwd.join("serve.log");
        let mut c = firstcall(&["serve"]);
        c.current_dir(cwd)
            .env("FIRSTCALL__HTTP__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in envs {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let s = Server { child, port, log };
        s.wait_ready();
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = reqwest::blocking::get(self.url("/healthz"))
                && r.status().is_success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("firstcall did not answer /healthz: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait; returns the exit status and how long it took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("firstcall did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
}

#[test]
fn serve_starts_on_sqlite_with_nothing_configured_and_stops_cleanly_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    let r = reqwest::blocking::get(server.url("/readyz")).unwrap();
    assert_eq!(r.status(), 200);
    assert!(cwd.path().join("data/firstcall.db").exists(), "the embedded database lives under ./data/");
    // No rep directory and no allowed domains yet: the operator is told where calls will go, and why.
    let log = server.log();
    let warning = log.lines().find(|l| l.contains("WARN") && l.contains("mail.allowed_recipient_domains"));
    let warning = warning.unwrap_or_else(|| panic!("no warning naming mail.allowed_recipient_domains: {log}"));
    assert!(warning.contains("sales-ops@localhost") && warning.contains("rep directory"), "{warning}");
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful exit: {status}");
}

#[test]
fn json_logs_carry_the_request_id() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[("FIRSTCALL__LOG__FORMAT", "json")]);
    let r = reqwest::blocking::Client::new().get(server.url("/healthz")).header("x-request-id", "trace-me-42").send().unwrap();
    assert_eq!(r.status(), 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let line = log.lines().find(|l| l.contains("trace-me-42")).unwrap_or_else(|| panic!("no log line for the request: {log}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert!(v.to_string().contains("\"request_id\":\"trace-me-42\""), "{v}");
    server.terminate();
}

#[test]
fn recap_prints_a_deals_recap_from_the_database() {
    let cwd = tempfile::tempdir().unwrap();
    let secret = "cli-test-secret-123";
    let server =
        Server::start(cwd.path(), &[("FIRSTCALL__WEBHOOKS__GENERIC__SECRETS", secret), ("FIRSTCALL__API__TOKENS", "cli-test-token-123")]);
    let client = reqwest::blocking::Client::new();
    let proposal = serde_json::json!({"account": {"name": "Acme <Labs>"}, "requirements": [{"id": "R1", "text": "SSO with Okta", "priority": "must"}]});
    let r = client.put(server.url("/api/v1/proposals/generic/D-77")).bearer_auth("cli-test-token-123").json(&proposal).send().unwrap();
    assert_eq!(r.status(), 201);
    let event = serde_json::json!({"id": "e1", "type": "order.created", "occurred_at": "2026-11-23T09:00:00Z", "order": {"deal_id": "D-77", "rep_email": "ana@example.com"}});
    let body = serde_json::to_vec(&event).unwrap();
    let t = chrono::Utc::now().timestamp();
    let sig = firstcall::intake::signature::sign_generic(secret.as_bytes(), t, &body);
    let r = client
        .post(server.url("/webhooks/generic"))
        .header("content-type", "application/json")
        .header("X-Firstcall-Signature", sig)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The engine applies the stored event right after the answer.
    let answer: serde_json::Value = r.json().unwrap();
    let event = server.url(&format!("/api/v1/events/{}", answer["events"][0]["stored_id"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.get(&event).bearer_auth("cli-test-token-123").send().unwrap().json::<serde_json::Value>().unwrap()["state"] != "applied" {
        assert!(std::time::Instant::now() < deadline, "the event was not applied");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.terminate();
    let (out, stdout, stderr) = run(firstcall(&["recap", "--source", "generic", "--deal", "D-77"]).current_dir(cwd.path()));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("SSO with Okta"), "{stdout}");
    let (_, json, _) = run(firstcall(&["recap", "--source", "generic", "--deal", "D-77", "--format", "json"]).current_dir(cwd.path()));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON recap");
    assert_eq!(v["requirements"][0]["id"], "R1");
    let (_, html, _) = run(firstcall(&["recap", "--source", "generic", "--deal", "D-77", "--format", "html"]).current_dir(cwd.path()));
    assert!(html.contains("Acme &lt;Labs&gt;") || !html.contains("<Labs>"), "escaped: {html}");
    let (out, _, stderr) = run(firstcall(&["recap", "--source", "generic", "--deal", "nope"]).current_dir(cwd.path()));
    assert!(!out.status.success());
    assert!(stderr.contains("no call for generic/nope"), "{stderr}");
}

#[test]
fn an_smtp_password_in_clear_text_to_another_host_stops_start_up() {
    let check = |host: &str, tls: &str| {
        run(firstcall(&["--config-dir", repo_config().to_str().unwrap(), "config", "check"])
            .env("FIRSTCALL__MAIL__TRANSPORT", "smtp")
            .env("FIRSTCALL__MAIL__SMTP__HOST", host)
            .env("FIRSTCALL__MAIL__SMTP__TLS", tls)
            .env("FIRSTCALL__MAIL__SMTP__USERNAME", "firstcall")
            .env("FIRSTCALL__MAIL__SMTP__PASSWORD", "smtp-password-123"))
    };
    let (out, _, stderr) = check("smtp.example.com", "none");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FIRSTCALL__MAIL__SMTP__TLS") && stderr.contains("mail.smtp.tls"), "origin and key: {stderr}");
    assert!(stderr.contains("clear text") && stderr.contains("smtp.example.com"), "reason: {stderr}");
    assert!(!stderr.contains("smtp-password-123"), "the password is not echoed");
    // With TLS, or to a relay on this machine, the same credentials are fine.
    for (host, tls) in
        [("smtp.example.com", "starttls"), ("smtp.example.com", "tls"), ("localhost", "none"), ("127.0.0.1", "none"), ("::1", "none")]
    {
        let (out, _, stderr) = check(host, tls);
        assert!(out.status.success(), "{host} {tls}: {stderr}");
    }
}

#[test]
fn a_generated_link_signing_key_is_announced_at_start_up() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    let log = server.log();
    server.terminate();
    let line = log
        .lines()
        .find(|l| l.contains("FIRSTCALL__LINKS__SIGNING_KEYS"))
        .unwrap_or_else(|| panic!("no start-up warning naming the variable: {log}"));
    assert!(line.contains("WARN"), "a warning: {line}");
    assert!(line.contains("database"), "says where the key is kept: {line}");

    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[("FIRSTCALL__LINKS__SIGNING_KEYS", "cli-link-signing-key-0123456789")]);
    let log = server.log();
    server.terminate();
    assert!(!log.contains("FIRSTCALL__LINKS__SIGNING_KEYS"), "no warning with a configured key: {log}");
}

/// A line of `demo`'s summary: the value after `label`.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    let line = stdout.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no '{label}' line: {stdout}"));
    line[label.len()..].split_whitespace().next().unwrap_or_else(|| panic!("nothing after '{label}': {line}"))
}

#[test]
fn demo_shows_the_whole_job_on_the_embedded_default() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let env = [("FIRSTCALL__HTTP__PORT", port.to_string()), ("FIRSTCALL__HTTP__PUBLIC_URL", public_url.clone())];
    let demo = || {
        let mut c = firstcall(&["demo"]);
        c.current_dir(cwd.path()).envs(env.iter().map(|(k, v)| (k, v)));
        run(c)
    };
    // Before the service runs, demo says to start it.
    let (out, _, stderr) = demo();
    assert!(!out.status.success());
    assert!(stderr.contains("start the service first"), "{stderr}");

    let server = Server::start_on(cwd.path(), port, &[("FIRSTCALL__HTTP__PUBLIC_URL", &public_url)]);
    let log = server.log();
    let next = log.lines().find(|l| l.contains("development credentials")).unwrap_or_else(|| panic!("no next step in the log: {log}"));
    assert!(next.contains("demo") && next.contains("data/dev-credentials.json"), "says what to do next: {next}");
    assert!(!log.contains("every webhook answers 401"), "the generic webhook has its development secret: {log}");

    let (out, stdout, stderr) = demo();
    assert!(out.status.success(), "{stdout}{stderr}");
    for step in [
        "PUT /api/v1/reps/",
        "PUT /api/v1/proposals/generic/DEMO-",
        "POST /webhooks/generic (signed order.created): 200 OK, accepted",
        ": opened; call #",
    ] {
        assert!(stdout.contains(step), "names the request {step:?}: {stdout}");
    }

    // The recap email, as the file transport wrote it.
    let eml_path = cwd.path().join(printed(&stdout, "Read the recap:"));
    assert!(eml_path.starts_with(cwd.path().join("outbox")), "{}", eml_path.display());
    let eml = std::fs::read(&eml_path).unwrap_or_else(|e| panic!("{}: {e}", eml_path.display()));
    let mail = mail_parser::MessageParser::default().parse(&eml).expect("a MIME message");
    assert_eq!(mail.to().and_then(|t| t.first()).and_then(|a| a.address()), Some("dana.reyes@seller.example"));
    assert!(mail.subject().unwrap_or_default().contains("Northwind Logistics"), "{:?}", mail.subject());
    let text = mail.body_text(0).unwrap_or_default();
    for expected in ["Single sign-on with Azure AD", "Priya Shah", "Hosting in our Frankfurt region", "Platform seats"] {
        assert!(text.contains(expected), "the recap shows {expected:?}:\n{text}");
    }
    assert!(
        mail.parts.iter().any(|p| mail_parser::MimeHeaders::is_content_type(p, "text", "calendar")
            && String::from_utf8_lossy(p.contents()).contains("BEGIN:VCALENDAR")),
        "the invite is attached"
    );

    // The call page, from the rep's signed link.
    let link = printed(&stdout, "Call page:");
    assert!(link.starts_with(&format!("{public_url}/calls/")) && link.contains("?t="), "{link}");
    assert!(text.contains(link), "the link is the one in the email");
    let page = reqwest::blocking::get(link).unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("Northwind Logistics") && html.contains("Single sign-on with Azure AD"), "{html}");

    // The dashboard, opened with the printed token.
    let dashboard = printed(&stdout, "Dashboard:");
    assert_eq!(dashboard, format!("{public_url}/"));
    let token = printed(&stdout, "API token:");
    let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(client.get(dashboard).send().unwrap().status(), 303, "not without logging in");
    let board = client.get(dashboard).bearer_auth(token).send().unwrap();
    assert_eq!(board.status(), 200);
    assert!(board.text().unwrap().contains("dana.reyes@seller.example"));
    let login = client.get(server.url("/login")).send().unwrap().text().unwrap();
    assert!(
        login.contains("id=\"dev-credentials\"") && login.contains("dev-credentials.json"),
        "the login page says where the token is: {login}"
    );

    // A second run is a second deal, with a call of its own.
    let (out, again, stderr) = demo();
    assert!(out.status.success(), "{stderr}");
    assert_ne!(printed(&again, "Call page:"), link);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn development_credentials_and_demo_refuse_a_public_address_and_postgresql() {
    let db = testkit::db::TestDb::postgres().await;
    for (env, names) in [
        (vec![("FIRSTCALL__HTTP__HOST", "0.0.0.0".to_string())], "0.0.0.0"),
        (vec![("FIRSTCALL__DATABASE__URL", db.url().to_string())], "PostgreSQL"),
    ] {
        let cwd = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = tokio::task::block_in_place(|| Server::start(cwd.path(), &env));
        let log = server.log();
        let warning = log.lines().find(|l| l.contains("no API token is configured")).unwrap_or_else(|| panic!("{names}: {log}"));
        assert!(warning.contains("WARN") && warning.contains("FIRSTCALL__API__TOKENS") && warning.contains(names), "{warning}");
        assert!(log.contains("every webhook answers 401"), "{log}");
        assert!(!cwd.path().join("data/dev-credentials.json").exists(), "{names}: nothing generated");
        let login = tokio::task::block_in_place(|| reqwest::blocking::get(server.url("/login")).unwrap().text().unwrap());
        assert!(login.contains("No API token is configured, so nobody can log in with one"), "{login}");

        let (out, _, stderr) = tokio::task::block_in_place(|| {
            let mut c = firstcall(&["demo"]);
            c.current_dir(cwd.path()).env("FIRSTCALL__HTTP__PORT", server.port.to_string()).envs(env.iter().copied());
            run(c)
        });
        assert!(!out.status.success());
        assert!(stderr.contains("runs only against a local service") && stderr.contains(names), "{names}: {stderr}");
        tokio::task::block_in_place(|| server.terminate());
    }
}

/// Waits up to 15 s for a log line containing every one of `parts`; returns it.
fn wait_for_log(server: &Server, parts: &[&str]) -> String {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Some(line) = server.log().lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no log line with {parts:?} within 15 s:\n{}", server.log());
}

#[test]
fn serve_reloads_config_on_sighup_and_when_a_file_changes_and_refuses_an_invalid_edit() {
    let cwd = tempfile::tempdir().unwrap();
    let config = cwd.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::copy(repo_config().join("default.toml"), config.join("default.toml")).unwrap();
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(config.join("default.toml")).unwrap();
        assert!(text.contains(from), "default.toml has no {from}");
        std::fs::write(config.join("default.toml"), text.replace(from, to)).unwrap();
    };
    let server = Server::start(cwd.path(), &[]);
    let started = wait_for_log(&server, &["configuration loaded"]);
    let v1 = started.split("version ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    // SIGHUP with nothing edited: the same version keeps running.
    unsafe_kill(server.child.id(), "HUP");
    wait_for_log(&server, &["SIGHUP", "the schedules and templates are unchanged", &v1]);
    // Reading config/ (as every load does) is no change: nothing is loaded again until a file is
    // written.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.log().matches("config/ reloaded").count(), 1, "one reload, the SIGHUP's:\n{}", server.log());

    // Saving an edit is enough: the file change is noticed and the new version runs.
    edit(r#"reminder_cron = "0 9,14 * * 1-5""#, r#"reminder_cron = "30 10,15 * * 1-5""#);
    let accepted = wait_for_log(&server, &["config/ reloaded: version", &format!("replaces {v1}")]);
    assert!(accepted.contains("reminder_cron"), "the log says what changed: {accepted}");

    // An edit that does not pass is refused with file, key and reason; the process keeps serving.
    edit(r#"reminder_cron = "30 10,15 * * 1-5""#, r#"reminder_cron = "every monday""#);
    let refused = wait_for_log(&server, &["config/ edit refused"]);
    assert!(refused.contains("default.toml") && refused.contains("reminder_cron"), "{refused}");
    assert_eq!(reqwest::blocking::get(server.url("/readyz")).unwrap().status(), 200);

    // Settings that only take effect at start-up (the listen address, a limit) are named as such.
    edit(r#"reminder_cron = "every monday""#, r#"reminder_cron = "0 9,14 * * 1-5""#);
    edit("body_limit_bytes = ", "body_limit_bytes = 1");
    edit(r#"host = "127.0.0.1""#, r#"host = "0.0.0.0""#);
    wait_for_log(&server, &["restart to apply http.body_limit_bytes, http.host"]);
    assert_eq!(reqwest::blocking::get(server.url("/readyz")).unwrap().status(), 200, "still on the address it started with");
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful exit: {status}");
}
