//! Builds the application once, for `main` and tests alike: connects the database, applies
//! migrations, binds the HTTP listener and starts the background services (engine, mailer).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use sea_orm::DatabaseConnection;

use crate::app::AppState;
use crate::background::{Shutdown, Signals};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::engine::{Engine, Registry};
use crate::mail::composer::Composer;
use crate::mail::mailer::Mailer;
use crate::metrics::Metrics;
use crate::reload::{Loader, Reloader, Runtime};
use crate::retention::Retention;
use crate::workflow::FirstCall;
use crate::workflow::orders::{Intake, Writers};

/// What to run besides the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Services {
    pub http: bool,
    pub engine: bool,
    pub mailer: bool,
}

pub struct Application {
    port: u16,
    server: Option<Server>,
    pub state: AppState,
    /// The engine, with every workflow's handlers registered (running in the background when
    /// asked for; tests drive it by hand).
    pub engine: Engine,
    pub mailer: Mailer,
    /// Reloads `config/` at run time and says the process is alive (run in the background by
    /// a `serve` or `worker`; tests call it by hand).
    pub reloader: Arc<Reloader>,
    /// Whether this process serves or works (not a one-off command).
    runs: bool,
    shutdown: Shutdown,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config, clock: SharedClock, services: Services) -> anyhow::Result<Application> {
        let db = crate::db::connect(&config.settings.database)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the database at {}: {e}", redact_url(&config.settings.database.url)))?;
        Self::build_with_db(config, clock, services, db).await
    }

    pub async fn build_with_db(
        config: Config,
        clock: SharedClock,
        services: Services,
        db: DatabaseConnection,
    ) -> anyhow::Result<Application> {
        if config.settings.database.migrate_on_start {
            let applied = crate::db::migrate(&db).await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
        }
        let security = crate::security::Security::load(&config.settings, &db, clock.now())
            .await
            .map_err(|e| anyhow::anyhow!("cannot load secrets: {e}"))?;
        if security.link_key_from_database {
            tracing::warn!(
                "no link-signing key is configured: links in emails and the forms' CSRF tokens are signed with a key kept in \
                 plain text in the database, so anyone who can read the database can forge them; set \
                 FIRSTCALL__LINKS__SIGNING_KEYS to a long random key (see the production checklist in the README)"
            );
        }
        if config.settings.mail.allowed_recipient_domains.is_empty() && crate::reps::directory_is_empty(&db).await.unwrap_or(false) {
            tracing::warn!(
                "mail.allowed_recipient_domains is empty and the rep directory has no reps, so every call goes to {} \
                 (defaults.unassigned_email): firstcall emails only addresses in the rep directory (PUT /api/v1/reps/{{email}}) \
                 or in mail.allowed_recipient_domains (e.g. FIRSTCALL__MAIL__ALLOWED_RECIPIENT_DOMAINS=seller.example)",
                config.settings.defaults.unassigned_email
            );
        }
        // A template that cannot render would fail every email: refuse to start instead.
        let templates =
            crate::mail::templates::Templates::load_checked(&config.templates_dir()).map_err(|e| anyhow::anyhow!("templates: {e}"))?;
        let templates_digest = *templates.digest();
        let instance_id = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
        let role = if services.http {
            "serve"
        } else if services.engine || services.mailer {
            "worker"
        } else {
            "tool"
        };
        let previous =
            crate::config_versions::newest_running(&db).await.map_err(|e| anyhow::anyhow!("cannot read the running configuration: {e}"))?;
        let loaded = crate::config_versions::record_load(&db, &config, &templates_digest, &instance_id, role, clock.now())
            .await
            .map_err(|e| anyhow::anyhow!("cannot record the configuration version: {e}"))?;
        let config_version = loaded.version;
        // A process that brings a configuration no process ran before (a deploy of an edit)
        // re-plans the open calls of the schedules it changed, as a reload would; one restarted
        // with a configuration that ran before does not.
        let replan = match previous.filter(|_| loaded.introduced && role != "tool") {
            Some(p) => crate::config_versions::recorded(&db, &p.version)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the running configuration: {e}"))?
                .map(|r| crate::config::changes::changed_schedules(&r.schedules, &config.schedule_content()))
                .unwrap_or_default(),
            None => vec![],
        };
        tracing::info!(version = %config_version, "configuration loaded: its schedules and templates are version {config_version}");
        let config = Arc::new(config);
        let settings = &config.settings;
        let composer = Composer {
            templates: Arc::new(templates),
            links: security.links.clone(),
            public_url: settings.http.public_url.clone(),
            link_ttl: chrono::TimeDelta::hours(settings.links.ttl_hours as i64),
            from: config.mail_from.clone(),
        };
        let connectors = crate::crm::Connectors::from_settings(settings).map_err(|e| anyhow::anyhow!("CRM connectors: {e}"))?;
        for source in connectors.sources() {
            tracing::info!(crm = %source, "CRM connector on: won deals are read from the CRM before the first email");
        }
        let first_call = crate::workflow::Live::new(FirstCall {
            config: config.clone(),
            config_version,
            composer: Arc::new(composer),
            connectors: Arc::new(connectors),
        });
        let signals = Signals::default();
        let shutdown = Shutdown::default();
        let metrics = Arc::new(Metrics::new());

        // Every workflow registers its job kinds with the engine.
        let mut handlers = Registry::default();
        first_call.register(&mut handlers);
        let reconciler = Arc::new(crate::workflow::reconcile::Reconciler { fc: first_call.clone(), metrics: metrics.clone() });
        reconciler.register(&mut handlers);
        // The webhook inbox: events stored by the intake, applied by the engine.
        handlers.feed(Arc::new(crate::workflow::orders::inbox::Inbox { fc: first_call.clone(), metrics: metrics.clone() }));
        let retention = Arc::new(Retention::new(&config));
        retention.register(&mut handlers);
        let engine = Engine {
            db: db.clone(),
            clock: clock.clone(),
            settings: settings.engine.clone(),
            handlers: Arc::new(handlers),
            metrics: metrics.clone(),
            signals: signals.clone(),
            shutdown: shutdown.clone(),
            instance_id: instance_id.clone(),
        };
        let mailer = Mailer {
            db: db.clone(),
            clock: clock.clone(),
            settings: settings.mail.clone(),
            from: config.mail_from.clone(),
            poll: Duration::from_millis(settings.engine.poll_interval_ms.max(10)),
            metrics: metrics.clone(),
            signals: signals.clone(),
            shutdown: shutdown.clone(),
            instance_id: instance_id.clone(),
        };
        if !replan.is_empty() {
            let job = crate::workflow::replan::job(&first_call.get().config_version, replan, clock.now());
            crate::engine::enqueue(&db, job, settings.engine.max_attempts, clock.now())
                .await
                .map_err(|e| anyhow::anyhow!("cannot plan the re-plan of open calls: {e}"))?;
        }
        let dir = config.dir.clone();
        let runtime = Runtime {
            live: first_call.clone(),
            db: db.clone(),
            clock: clock.clone(),
            instance_id: instance_id.clone(),
            role,
            metrics: metrics.clone(),
            signals: signals.clone(),
            shutdown: shutdown.clone(),
        };
        let load: Loader =
            Arc::new(move || crate::config::ConfigSource { dir: dir.clone(), ..crate::config::ConfigSource::default() }.load());
        let reloader = Arc::new(Reloader::new(runtime, load, &config.settings));
        if services.http || services.engine {
            // Plans the retention sweep unless a process already did: the one that serves or
            // works runs it (tests drive the engine by hand).
            retention.seed(&db, clock.now()).await.map_err(|e| anyhow::anyhow!("cannot plan the retention sweep: {e}"))?;
            reconciler.seed(&db, clock.now()).await.map_err(|e| anyhow::anyhow!("cannot plan the CRM reconciler: {e}"))?;
        }
        let intake =
            Intake::start(Writers { db: db.clone(), clock: clock.clone(), first_call: first_call.clone(), signals: signals.clone() });
        let state = AppState {
            intake,
            rep_choices: Arc::default(),
            rate_limits: Arc::new(crate::security::RateLimits::new(settings.http.rate_limit_per_minute)),
            failed_auth: Arc::new(crate::security::FailedAuth::new(
                settings.http.failed_auth_limit,
                Duration::from_secs(settings.http.failed_auth_window_secs),
            )),
            security: Arc::new(security),
            first_call,
            db,
            instance_id: instance_id.clone(),
            config: config.clone(),
            clock,
            signals,
            metrics,
        };
        let mut port = 0;
        let mut server = None;
        if services.http {
            let s = &config.settings.http;
            let listener =
                TcpListener::bind((s.host.as_str(), s.port)).map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", s.host, s.port))?;
            port = listener.local_addr()?.port();
            server = Some(run_http(listener, state.clone())?);
        }
        let mut background = Vec::new();
        if crate::db::is_postgres(&state.db) && (services.http || services.engine) {
            // Tells the other processes' engines when this one stored events or scheduled jobs.
            background.push(tokio::spawn(crate::engine::notify::publish(state.db.clone(), state.signals.clone(), shutdown.clone())));
        }
        if services.engine {
            background.push(tokio::spawn(engine.clone().run()));
        }
        if services.mailer {
            background.push(tokio::spawn(mailer.clone().run()));
        }
        let runs = services.http || services.engine;
        Ok(Application { port, server, state, engine, mailer, reloader, runs, shutdown, background })
    }

    /// Reloads with `load` instead of the config directory as found at start-up, and names the
    /// settings that need a restart against `started_with` (`serve` passes them as loaded,
    /// before it adds development credentials).
    pub fn reload_with(mut self, load: Loader, started_with: &crate::config::Settings) -> Self {
        self.reloader = Arc::new(self.reloader.reloading_with(load, started_with));
        self
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (or the server stops): then stops claiming work, lets
    /// in-flight steps and requests finish, and returns.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        if self.runs {
            let dir = self.state.config.dir.clone();
            self.background.push(tokio::spawn(self.reloader.clone().run(dir)));
        }
        match self.server.take() {
            Some(server) => {
                // actix handles SIGTERM/SIGINT itself: it stops accepting and drains requests.
                server.await?;
            }
            None => wait_for_signal().await,
        }
        self.shutdown.trigger();
        self.state.signals.wake_all();
        for h in self.background.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Starts serving in the background (tests): returns at once.
    pub fn spawn(mut self) -> RunningApp {
        let server = self.server.take();
        let handle = server.as_ref().map(|s| s.handle());
        if let Some(server) = server {
            tokio::spawn(server);
        }
        RunningApp {
            port: self.port,
            state: self.state,
            engine: self.engine,
            mailer: self.mailer,
            reloader: self.reloader,
            shutdown: self.shutdown,
            http: handle,
            background: self.background,
        }
    }
}

/// An application serving in the background.
pub struct RunningApp {
    pub port: u16,
    pub state: AppState,
    pub engine: Engine,
    pub mailer: Mailer,
    pub reloader: Arc<Reloader>,
    shutdown: Shutdown,
    http: Option<actix_web::dev::ServerHandle>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningApp {
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        self.state.signals.wake_all();
        if let Some(h) = self.http.take() {
            h.stop(true).await;
        }
        for h in self.background.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

fn run_http(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let http = state.config.settings.http.clone();
    let data = web::Data::new(state);
    let (timeout, workers) = (http.client_timeout_secs, http.workers);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(|cfg| crate::http::configure(cfg, &http))
            .configure(crate::openapi::configure)
            .configure(crate::pages::configure)
            .default_service(web::to(crate::http::not_found))
            .wrap(actix_web::middleware::from_fn(crate::http::request_context))
    })
    .listen(listener)?
    .client_request_timeout(Duration::from_secs(timeout))
    .client_disconnect_timeout(Duration::from_secs(2))
    .shutdown_timeout(30);
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "firstcall".into())
}

/// A database URL with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
