//! The test harness: starts the real application on a random port against a fresh database
//! (PostgreSQL by default, SQLite with `FIRSTCALL_TEST_DB=sqlite`) and a real SMTP capture
//! server on loopback, and gives the test an HTTP client, a controllable clock and the mails.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use firstcall::app::AppState;
use firstcall::clock::{ManualClock, SharedClock, SystemClock};
use firstcall::config::{Config, ConfigSource};
use firstcall::engine::Engine;
use firstcall::mail::mailer::Mailer;
use firstcall::startup::{Application, RunningApp, Services};
use serde_json::{Value, json};
use testkit::db::{Backend, TestDb};
use testkit::smtp::SmtpSink;

pub const API_TOKEN: &str = "test-api-token-0123456789";
pub const GENERIC_SECRET: &str = "generic-secret-0123456789";
pub const HUBSPOT_SECRET: &str = "hubspot-client-secret-0123456789";
pub const PIPEDRIVE_AUTH: &str = "pipedrive:pipedrive-password-123";
pub const SALESFORCE_ORG: &str = "00D5e000000KQ2eEAG";

/// Monday 23 November 2026, 09:00 UTC: a working morning in Europe.
pub fn monday_morning() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap().with_timezone(&Utc)
}

#[derive(Clone)]
pub struct Options {
    /// Use the system clock and run the engine and mailer in the background, as in production.
    pub real_time: bool,
    pub start: DateTime<Utc>,
    pub overrides: Vec<(&'static str, Value)>,
    /// Override the config directory (defaults to the repository's `config/`).
    pub config_dir: Option<std::path::PathBuf>,
    /// The database backend whatever `FIRSTCALL_TEST_DB` asks for: for a promise that holds on
    /// one backend only, so its test never runs against the other.
    pub backend: Option<Backend>,
}

impl Default for Options {
    fn default() -> Self {
        Options { real_time: false, start: monday_morning(), overrides: vec![], config_dir: None, backend: None }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    /// The engine and mailer, driven by hand unless the options ask for real time.
    pub engine: Engine,
    pub mailer: Mailer,
    /// Reloads the test's configuration (its options, with its config directory as edited),
    /// as SIGHUP does.
    pub reloader: Arc<firstcall::reload::Reloader>,
    pub smtp: SmtpSink,
    pub db: TestDb,
    running: Option<RunningApp>,
}

pub fn config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// The settings every test starts from: the repository's config, a test database, the SMTP
/// sink, known secrets, and quiet background loops.
pub fn test_config(db_url: &str, smtp_port: u16, opts: &Options) -> Config {
    try_test_config(db_url, smtp_port, opts).unwrap_or_else(|e| panic!("test config: {e}"))
}

/// [`test_config`], or what is wrong with it (a test's edit of its config directory).
pub fn try_test_config(db_url: &str, smtp_port: u16, opts: &Options) -> Result<Config, firstcall::config::ConfigError> {
    let source = ConfigSource { dir: opts.config_dir.clone().unwrap_or_else(config_dir), env_name: None, use_env: false };
    let mut pairs: Vec<(&str, Value)> = vec![
        ("database.url", json!(db_url)),
        ("database.max_connections", json!(8)),
        ("http.port", json!(0)),
        ("http.workers", json!(1)),
        ("http.public_url", json!("http://firstcall.test")),
        ("log.level", json!("warn")),
        ("mail.transport", json!("smtp")),
        ("mail.smtp.host", json!("127.0.0.1")),
        ("mail.smtp.port", json!(smtp_port)),
        ("mail.smtp.pool_size", json!(2)),
        ("mail.from", json!("firstcall <firstcall@seller.example>")),
        ("mail.send_timeout_secs", json!(3)),
        ("mail.retry_base_secs", json!(1)),
        ("api.tokens", json!([API_TOKEN])),
        ("links.signing_keys", json!(["link-signing-key-0123456789"])),
        ("webhooks.generic.secrets", json!([GENERIC_SECRET])),
        ("webhooks.hubspot.client_secrets", json!([HUBSPOT_SECRET])),
        ("webhooks.pipedrive.basic_auth", json!([PIPEDRIVE_AUTH])),
        ("webhooks.salesforce.organization_ids", json!([SALESFORCE_ORG])),
        // The fixtures are real payloads from March 2026 and the clock starts in November.
        ("webhooks.max_event_age_days", json!(365)),
        ("defaults.unassigned_email", json!("sales-ops@seller.example")),
        // The reps' domains in these tests and the fixtures; any other address is not emailed.
        ("mail.allowed_recipient_domains", json!(["seller.example", "example.com"])),
        ("engine.poll_interval_ms", json!(if opts.real_time { 100 } else { 1000 })),
    ];
    pairs.extend(opts.overrides.iter().cloned());
    let figment = source.figment().merge(Config::overrides(&pairs));
    source.load_with(figment)
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        firstcall::crm::client::install_tls_provider();
        let db = match opts.backend {
            Some(Backend::Postgres) => TestDb::postgres().await,
            Some(Backend::Sqlite) => TestDb::sqlite(),
            None => TestDb::create().await,
        };
        let smtp = SmtpSink::start().await;
        let config = test_config(db.url(), smtp.port(), &opts);
        let clock = ManualClock::new(opts.start);
        let shared: SharedClock = if opts.real_time { Arc::new(SystemClock) } else { clock.clone() };
        let services = Services { http: true, engine: opts.real_time, mailer: opts.real_time };
        let started_with = config.settings.clone();
        let (url, port, reload_opts) = (db.url().to_string(), smtp.port(), opts.clone());
        let app = Application::build(config, shared, services)
            .await
            .expect("application starts")
            .reload_with(Arc::new(move || try_test_config(&url, port, &reload_opts)), &started_with);
        let running = app.spawn();
        TestApp {
            address: format!("http://127.0.0.1:{}", running.port),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap(),
            clock,
            state: running.state.clone(),
            engine: running.engine.clone(),
            mailer: running.mailer.clone(),
            reloader: running.reloader.clone(),
            smtp,
            db,
            running: Some(running),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.state.clock.now()
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Moves time on by `by` for everything, leases included. On PostgreSQL leases run on the
    /// database's clock, which the test clock does not move: held leases are moved back by `by`
    /// instead, as if that much time had passed on the database server.
    pub async fn advance_with_leases(&self, by: TimeDelta) {
        use sea_orm::ConnectionTrait;
        self.clock.advance(by);
        if self.state.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            for table in ["jobs", "emails"] {
                let sql = format!(
                    "UPDATE {table} SET lease_until = lease_until - INTERVAL '{} milliseconds' WHERE lease_until IS NOT NULL",
                    by.num_milliseconds()
                );
                self.state.db.execute_unprepared(&sql).await.unwrap();
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(API_TOKEN)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.api(reqwest::Method::GET, path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Posts a generic order event signed with the test secret at the app's current time.
    pub async fn post_generic(&self, body: &Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        self.post_generic_raw(&raw, GENERIC_SECRET, self.now().timestamp()).await
    }

    /// Posts a signed generic webhook and, once it is answered, lets the engine apply what was
    /// stored (as the service does right after the answer).
    pub async fn post_generic_raw(&self, raw: &[u8], secret: &str, t: i64) -> reqwest::Response {
        let r = self.send_generic_raw(raw, secret, t).await;
        self.then_apply(r).await
    }

    /// Posts a signed generic webhook; what it stored stays pending until the engine runs.
    pub async fn send_generic_raw(&self, raw: &[u8], secret: &str, t: i64) -> reqwest::Response {
        let sig = firstcall::intake::signature::sign_generic(secret.as_bytes(), t, raw);
        self.client
            .post(self.url("/webhooks/generic"))
            .header("content-type", "application/json")
            .header("X-Firstcall-Signature", sig)
            .body(raw.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn put_proposal(&self, source: &str, deal: &str, body: &Value) -> reqwest::Response {
        self.api(reqwest::Method::PUT, &format!("/api/v1/proposals/{source}/{deal}")).json(body).send().await.unwrap()
    }

    pub async fn put_rep(&self, email: &str, body: &Value) -> reqwest::Response {
        self.api(reqwest::Method::PUT, &format!("/api/v1/reps/{email}")).json(body).send().await.unwrap()
    }

    /// Applies every stored webhook event that is still pending; returns how many.
    pub async fn apply_events(&self) -> usize {
        self.engine.run_feeds().await.expect("the inbox is applied")
    }

    /// After a webhook's 2xx, applies what it stored.
    async fn then_apply(&self, r: reqwest::Response) -> reqwest::Response {
        if r.status().is_success() {
            self.apply_events().await;
        }
        r
    }

    /// What became of each event of a webhook's answer: `duplicate` as answered, else the
    /// outcome of applying it (`GET /api/v1/events/{stored_id}`).
    pub async fn outcomes(&self, answer: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for e in answer["events"].as_array().expect("events") {
            if e["outcome"] == "duplicate" {
                out.push("duplicate".to_string());
                continue;
            }
            let stored = self.get_json(&format!("/api/v1/events/{}", e["stored_id"])).await;
            out.push(stored["outcome"].as_str().unwrap_or("pending").to_string());
        }
        out
    }

    /// Runs every timer due at the current (test) time.
    pub async fn run_jobs(&self) -> usize {
        self.engine.run_due().await.expect("engine runs")
    }

    /// Delivers every email due now to the SMTP sink.
    pub async fn deliver(&self) -> usize {
        self.mailer.run_due().await.expect("mailer runs")
    }

    /// Runs timers and delivers mail until nothing more is due now.
    pub async fn settle(&self) {
        loop {
            let j = self.run_jobs().await;
            let m = self.deliver().await;
            if j == 0 && m == 0 {
                return;
            }
        }
    }

    /// Moves the clock forward step by step, settling at each step, so every timer in between
    /// fires at its time.
    pub async fn advance_and_settle(&self, total: TimeDelta, step: TimeDelta) {
        let end = self.now() + total;
        while self.now() < end {
            let next = (self.now() + step).min(end);
            self.clock.set(next);
            self.settle().await;
        }
    }

    /// All mails received so far, parsed.
    pub fn mails(&self) -> Vec<testkit::mail::ParsedMail> {
        self.smtp.messages().iter().map(|m| m.parse()).collect()
    }

    pub fn mails_to(&self, addr: &str) -> Vec<testkit::mail::ParsedMail> {
        self.smtp.messages().iter().filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(addr))).map(|m| m.parse()).collect()
    }

    pub async fn wait_for_mails(&self, n: usize, timeout: Duration) -> Vec<testkit::mail::ParsedMail> {
        self.smtp.wait_for(n, timeout).await.iter().map(|m| m.parse()).collect()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// For a test of an outage: requests give up waiting for a connection after a second.
pub fn quick_outage() -> Options {
    Options { overrides: vec![("database.connect_timeout_secs", json!(1))], ..Options::default() }
}

/// The database kept from the service, from [`TestApp::database_down`] until [`Outage::end`].
pub enum Outage {
    Postgres(String),
    Sqlite(sea_orm::DatabaseTransaction),
}

impl Outage {
    /// The database is back.
    pub async fn end(self) {
        match self {
            Outage::Postgres(name) => testkit::db::terminate_connections(&name, false).await,
            Outage::Sqlite(held) => held.rollback().await.expect("release the SQLite connection"),
        }
    }
}

/// A generic `order.created` event for `deal`.
pub fn order_created(id: &str, deal: &str, rep: &str, at: DateTime<Utc>) -> Value {
    json!({
        "id": id,
        "type": "order.created",
        "occurred_at": at.to_rfc3339(),
        "order": {
            "deal_id": deal,
            "amount": "12000.00",
            "currency": "USD",
            "rep_email": rep,
            "account_name": "Acme Corp",
            "line_items": [
                {"sku": "PRO-100", "name": "Pro seats", "quantity": 100, "unit_price": "49.00"},
                {"sku": "ONB", "name": "Onboarding", "quantity": 1, "unit_price": "2000.00"}
            ]
        }
    })
}

pub fn order_event(id: &str, kind: &str, deal: &str, at: DateTime<Utc>, order: Value) -> Value {
    let mut o = order;
    o["deal_id"] = json!(deal);
    json!({"id": id, "type": kind, "occurred_at": at.to_rfc3339(), "order": o})
}

/// A realistic proposal for `deal` with one gap of each kind.
pub fn proposal(rep: &str) -> Value {
    json!({
        "account": {"name": "Acme Corp", "segment": "mid-market"},
        "rep_email": rep,
        "contacts": [
            {"name": "Dana Decider", "email": "dana@acme.example", "title": "CFO", "role": "decision_maker"},
            {"name": "Fran Function", "email": "fran@acme.example", "title": "Head of IT", "role": "functional_decision_maker"}
        ],
        "requirements": [
            {"id": "R1", "text": "Single sign-on with Okta", "priority": "must", "need_by": "2026-12-15", "stated_in": "Discovery call, 2 Oct"},
            {"id": "R2", "text": "Data residency in the EU", "priority": "must", "stated_in": "Security review"},
            {"id": "R3", "text": "Salesforce sync", "priority": "should", "need_by": "2027-01-10"}
        ],
        "commitments": [
            {"id": "C1", "text": "SAML SSO configured with Okta", "covers": ["R1"], "deliver_by": "2026-12-10"},
            {"id": "C2", "text": "Native Salesforce connector", "covers": ["R3"], "deliver_by": "2027-02-01"},
            {"id": "C3", "text": "Dedicated success manager", "covers": []}
        ],
        "line_items": [
            {"sku": "PRO-100", "name": "Pro seats", "quantity": 100, "unit_price": "49.00", "currency": "USD", "rationale": "One seat per support agent"},
            {"sku": "ONB", "name": "Onboarding", "quantity": 1, "unit_price": "2500.00", "currency": "USD", "rationale": "Two-week guided rollout"}
        ],
        "activities": [
            {"at": "2026-10-02T14:00:00Z", "kind": "call", "summary": "Discovery: SSO and EU hosting are must-haves"},
            {"at": "2026-10-20T10:00:00Z", "kind": "proposal", "summary": "Proposal sent"},
            {"at": "2026-11-05T16:00:00Z", "kind": "quote", "summary": "Final quote with onboarding"}
        ]
    })
}

pub fn fixture(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

impl TestApp {
    /// Rows in a table, read straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.state.db.get_database_backend();
        let row = self
            .state
            .db
            .query_one_raw(Statement::from_string(backend, format!("SELECT COUNT(*) AS n FROM {table}")))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    /// Row counts of every table a webhook can write to.
    pub async fn intake_counts(&self) -> [i64; 5] {
        [
            self.count("webhook_events").await,
            self.count("orders").await,
            self.count("calls").await,
            self.count("jobs").await,
            self.count("audit_log").await,
        ]
    }

    pub async fn post_hubspot(&self, body: &[u8], secret: &str, timestamp_ms: i64) -> reqwest::Response {
        let uri = "http://firstcall.test/webhooks/hubspot";
        let sig = firstcall::intake::signature::sign_hubspot_v3(secret.as_bytes(), "POST", uri, body, timestamp_ms);
        self.post_hubspot_signed(body, &sig, timestamp_ms).await
    }

    /// Posts `body` with a given signature (e.g. one made for another body).
    pub async fn post_hubspot_signed(&self, body: &[u8], sig: &str, timestamp_ms: i64) -> reqwest::Response {
        let r = self
            .client
            .post(self.url("/webhooks/hubspot"))
            .header("content-type", "application/json")
            .header("X-HubSpot-Signature-v3", sig)
            .header("X-HubSpot-Request-Timestamp", timestamp_ms.to_string())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        self.then_apply(r).await
    }

    pub async fn post_pipedrive(&self, body: &[u8], credentials: &str) -> reqwest::Response {
        use base64::Engine;
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        let r = self
            .client
            .post(self.url("/webhooks/pipedrive"))
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        self.then_apply(r).await
    }

    pub async fn post_salesforce(&self, body: &[u8]) -> reqwest::Response {
        let r = self
            .client
            .post(self.url("/webhooks/salesforce"))
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        self.then_apply(r).await
    }

    /// Takes the database away from the running service until [`Outage::end`]. On PostgreSQL
    /// the server refuses new connections and ends the open ones, as when it goes down. On
    /// SQLite the database lives in the process behind one connection, so what the service meets
    /// when it cannot have its database is that connection held elsewhere: the outage holds it
    /// (in a transaction that also takes the file's write lock), and every request waits
    /// `database.connect_timeout_secs` for it and gives up, as it would for an unreachable server.
    pub async fn database_down(&self) -> Outage {
        match self.db.backend() {
            Backend::Postgres => {
                testkit::db::terminate_connections(self.db.name(), true).await;
                Outage::Postgres(self.db.name().to_string())
            }
            Backend::Sqlite => {
                use sea_orm::TransactionTrait;
                Outage::Sqlite(self.state.db.begin().await.expect("the SQLite connection is free to take"))
            }
        }
    }

    /// Every call, open and closed, as the API lists them.
    pub async fn calls(&self) -> Vec<Value> {
        self.get_json("/api/v1/calls?state=all&limit=500").await["calls"].as_array().unwrap().clone()
    }

    /// Runs a statement straight against the database (setting up what no API can).
    pub async fn exec(&self, sql: &str) {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.state.db.get_database_backend();
        self.state.db.execute_raw(Statement::from_string(backend, sql.to_string())).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of every row of a query, as text.
    /// Another process on this app's database, SMTP sink and clock, configured by `opts` (say,
    /// with sales ops' edit of the schedules, as after a redeploy); its engine and mailer are
    /// driven by hand.
    pub async fn another_process(&self, opts: &Options) -> Application {
        firstcall::startup::Application::build(
            test_config(self.db.url(), self.smtp.port(), opts),
            self.state.clock.clone(),
            firstcall::startup::Services { http: false, engine: false, mailer: false },
        )
        .await
        .expect("another process starts")
    }

    /// Another `worker` on the same database and clock, reloading with `opts`. Its mailer runs
    /// in the background; the test runs its engine (`engine.run_due`).
    pub async fn another_worker(&self, opts: &Options) -> Application {
        let config = test_config(self.db.url(), self.smtp.port(), opts);
        let started_with = config.settings.clone();
        let (url, port, reload_opts) = (self.db.url().to_string(), self.smtp.port(), opts.clone());
        firstcall::startup::Application::build(
            config,
            self.state.clock.clone(),
            firstcall::startup::Services { http: false, engine: false, mailer: true },
        )
        .await
        .expect("another worker starts")
        .reload_with(Arc::new(move || try_test_config(&url, port, &reload_opts)), &started_with)
    }

    /// Moves the clock in half-hour steps until `until`, running `process`'s engine and mailer
    /// (not this app's) after each step.
    pub async fn run_other_until(&self, process: &Application, until: DateTime<Utc>) {
        while self.now() < until {
            self.advance(TimeDelta::minutes(30));
            process.engine.run_due().await.unwrap();
            process.mailer.run_due().await.unwrap();
        }
    }

    pub async fn column(&self, sql: &str) -> Vec<String> {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.state.db.get_database_backend();
        let rows =
            self.state.db.query_all_raw(Statement::from_string(backend, sql.to_string())).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                r.try_get_by_index::<Option<String>>(0)
                    .map(|v| v.unwrap_or_default())
                    .or_else(|_| r.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            })
            .collect()
    }
}

/// The call-page link in an email (`/calls/{id}?t=…`, path and query), to open against the test
/// server: the email's address points at `http.public_url`.
pub fn call_link(mail: &testkit::mail::ParsedMail) -> String {
    let text = mail.text.as_deref().unwrap_or_default();
    let start = text.find("http://firstcall.test/calls/").unwrap_or_else(|| panic!("no call link in the email:\n{text}"));
    let url: String = text[start..].chars().take_while(|c| !c.is_whitespace() && !matches!(c, '>' | '"' | ')')).collect();
    url.trim_start_matches("http://firstcall.test").to_string()
}
