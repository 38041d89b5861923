//! Sales ops' edits of `config/` applied to a running `serve` or `worker`, without a restart.
//! On SIGHUP, and when a file under `config/` changes (debounced), the configuration is loaded
//! again and checked in full (every setting, every schedule, every template rendered against the
//! sample recap) before its schedules, holidays and templates replace the running ones. An edit
//! that does not pass is refused with its file, key and reason, in the log and on the dashboard,
//! and the running configuration stays. Settings that only take effect at start-up (addresses,
//! secrets, pools) are named as such. An accepted version is recorded with its load, and the open
//! calls of the schedules it changed are re-planned by the engine (`config.replan`).
//!
//! The same object says the process is alive every few seconds and warns, in the log and in
//! the `config_stale` metric, while the process runs another version than the newest running one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};

use crate::background::{Shutdown, Signals};
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, Settings};
use crate::mail::composer::Composer;
use crate::mail::templates::{TemplateError, Templates};
use crate::metrics::Metrics;
use crate::workflow::{FirstCall, Live};

/// Loads the configuration as the process did at start-up (files and environment).
pub type Loader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The settings a running process takes from an edit; every other setting needs a restart.
pub const RELOADED: [&str; 2] = ["schedules", "defaults.holidays"];

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// The schedules and templates are the ones that run (a file was saved unchanged, or only
    /// settings that need a restart changed).
    Unchanged { version: String, restart_needed: Vec<String> },
    /// The edit runs now.
    Accepted {
        from: String,
        to: String,
        /// What the edit changed in the schedules, one line each.
        changes: Vec<String>,
        /// The schedules whose open calls are re-planned.
        replanned: Vec<String>,
        restart_needed: Vec<String>,
    },
}

/// Why an edit was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("templates: {0}")]
    Templates(#[from] TemplateError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What a process's reloader works with: the workflow in force and the process's shared parts.
#[derive(Clone)]
pub struct Runtime {
    pub live: Arc<Live>,
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub instance_id: String,
    /// `serve`, `worker` or `tool`.
    pub role: &'static str,
    pub metrics: Arc<Metrics>,
    pub signals: Signals,
    pub shutdown: Shutdown,
}

/// One process's configuration at run time: reloads, heartbeats, staleness.
pub struct Reloader {
    rt: Runtime,
    load: Loader,
    /// The settings as loaded at start-up (before development credentials were added): what an
    /// edit is compared with to name the settings that need a restart.
    started_with: serde_json::Value,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
    /// The newest version this process last said it lags behind, so it says so once per version.
    said_stale: std::sync::Mutex<Option<String>>,
}

impl Reloader {
    /// Reloads with `load`, naming the settings that differ from `started_with` as needing a
    /// restart.
    pub fn new(rt: Runtime, load: Loader, started_with: &Settings) -> Reloader {
        let started_with = serde_json::to_value(started_with).unwrap_or_default();
        Reloader { rt, load, started_with, busy: Default::default(), said_stale: Default::default() }
    }

    /// The same process's reloader, loading with `load` instead.
    pub fn reloading_with(&self, load: Loader, started_with: &Settings) -> Reloader {
        Reloader::new(self.rt.clone(), load, started_with)
    }

    /// Loads `config/` again (`trigger` says why, for the log) and puts it in force if it passes
    /// every check; otherwise the running configuration stays and the refusal is logged and
    /// recorded for the dashboard.
    pub async fn reload(&self, trigger: &str) -> Result<Reloaded, Refused> {
        let _one = self.busy.lock().await;
        let running = self.rt.live.get();
        match self.accept(&running).await {
            Ok(r) => {
                match &r {
                    Reloaded::Unchanged { version, restart_needed } => {
                        tracing::info!(trigger, %version, "config/ reloaded: the schedules and templates are unchanged (version {version})");
                        say_restart_needed(restart_needed);
                        self.note_refusal(None).await;
                        self.rt.metrics.config_reloaded("unchanged");
                    }
                    Reloaded::Accepted { from, to, changes, replanned, restart_needed } => {
                        tracing::info!(
                            trigger, from = %from, to = %to, changes = %changes.join("; "), replanned = %replanned.join(", "),
                            "config/ reloaded: version {to} replaces {from}"
                        );
                        say_restart_needed(restart_needed);
                        self.rt.metrics.config_reloaded("accepted");
                    }
                }
                Ok(r)
            }
            Err(refused) => {
                tracing::error!(
                    trigger, running = %running.config_version,
                    "config/ edit refused, version {} keeps running: {refused}", running.config_version
                );
                self.rt.metrics.config_reloaded("refused");
                self.note_refusal(Some(&refused.to_string())).await;
                Err(refused)
            }
        }
    }

    /// Records for the dashboard the edit this process refused (`None`: it loaded the last one).
    async fn note_refusal(&self, reason: Option<&str>) {
        if let Err(e) = crate::config_versions::record_refusal(&self.rt.db, &self.rt.instance_id, reason, self.rt.clock.now()).await {
            tracing::warn!("cannot record the outcome of the reload for the dashboard: {e}");
        }
    }

    async fn accept(&self, running: &FirstCall) -> Result<Reloaded, Refused> {
        let fresh = (self.load)()?;
        // A template that cannot render would fail every email: refused, as at start-up.
        let templates = Templates::load_checked(&running.config.templates_dir())?;
        let restart_needed =
            crate::config::changes::changed_keys(&self.started_with, &serde_json::to_value(&fresh.settings).unwrap_or_default(), &RELOADED);
        let mut config = (*running.config).clone();
        config.settings.schedules = fresh.settings.schedules;
        config.settings.defaults.holidays = fresh.settings.defaults.holidays;
        config.schedules = fresh.schedules;
        let version = config.version(templates.digest());
        if version == running.config_version {
            return Ok(Reloaded::Unchanged { version, restart_needed });
        }
        let (before, after) = (running.config.schedule_content(), config.schedule_content());
        let changes = crate::config::changes::schedule_changes(&before, &after);
        let replanned = crate::config::changes::changed_schedules(&before, &after);
        let now = self.rt.clock.now();
        let version =
            crate::config_versions::record_load(&self.rt.db, &config, templates.digest(), &self.rt.instance_id, self.rt.role, now)
                .await?
                .version;
        let composer = Composer {
            templates: Arc::new(templates),
            links: running.composer.links.clone(),
            public_url: running.composer.public_url.clone(),
            link_ttl: running.composer.link_ttl,
            from: running.composer.from.clone(),
        };
        let first_call = FirstCall {
            config: Arc::new(config),
            config_version: version.clone(),
            composer: Arc::new(composer),
            connectors: running.connectors.clone(),
        };
        let attempts = first_call.max_attempts();
        self.rt.live.replace(first_call);
        if !replanned.is_empty() {
            let job = crate::workflow::replan::job(&version, replanned.clone(), now);
            crate::engine::enqueue(&self.rt.db, job, attempts, now).await?;
            self.rt.signals.jobs_scheduled();
        }
        Ok(Reloaded::Accepted { from: running.config_version.clone(), to: version, changes, replanned, restart_needed })
    }

    /// Says this process is alive, and whether it lags behind the newest version running: the
    /// newest when it has for more than a minute (logged once per version, and in the
    /// `config_stale` metric).
    pub async fn beat(&self) -> Result<Option<String>, DbErr> {
        let now = self.rt.clock.now();
        crate::config_versions::heartbeat(&self.rt.db, &self.rt.instance_id, now).await?;
        let running = crate::config_versions::running(&self.rt.db, now).await?;
        let own = self.rt.live.get().config_version.clone();
        let newest = running
            .iter()
            .find(|p| p.instance_id == self.rt.instance_id)
            .and_then(|me| crate::config_versions::stale(me, &running, now))
            .map(|p| (p.version.clone(), p.instance_id.clone(), p.introduced_at));
        self.rt.metrics.config_stale.set(newest.is_some() as i64);
        let mut said = self.said_stale.lock().unwrap_or_else(|e| e.into_inner());
        match &newest {
            Some((version, by, at)) if said.as_deref() != Some(version.as_str()) => {
                tracing::warn!(
                    running = %own, newest = %version,
                    "this process runs configuration version {own}, but {by} has run {version} since {at}: \
                     reload it (SIGHUP) or give it the same config/"
                );
                *said = Some(version.clone());
            }
            None => *said = None,
            _ => {}
        }
        Ok(newest.map(|(v, _, _)| v))
    }

    /// Runs until shutdown: reloads on SIGHUP and when a file under `dir` changes, says the
    /// process is alive every [`crate::config_versions::HEARTBEAT_SECS`], and takes the process off
    /// the list of running ones when it stops.
    pub async fn run(self: Arc<Self>, dir: PathBuf) {
        let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
        let _watcher = watch(&dir, tx);
        let mut hangup = hangups();
        let mut beat = tokio::time::interval(Duration::from_secs(crate::config_versions::HEARTBEAT_SECS));
        loop {
            tokio::select! {
                _ = self.rt.shutdown.wait() => break,
                _ = beat.tick() => {
                    if let Err(e) = self.beat().await {
                        tracing::warn!("cannot record that this process is alive: {e}");
                    }
                }
                Some(()) = next_hangup(&mut hangup) => {
                    let _ = self.reload("SIGHUP").await;
                }
                Some(()) = changed.recv() => {
                    settle(&mut changed).await;
                    let _ = self.reload("a file under config/ changed").await;
                }
            }
        }
        if let Err(e) = crate::config_versions::stopped(&self.rt.db, &self.rt.instance_id).await {
            tracing::warn!("cannot take this process off the list of running ones: {e}");
        }
    }
}

fn say_restart_needed(keys: &[String]) {
    if !keys.is_empty() {
        tracing::warn!(
            settings = %keys.join(", "),
            "config/ changes settings that only take effect at start-up (addresses, secrets, pools, ...): restart to apply {}",
            keys.join(", ")
        );
    }
}

/// Watches `dir` (and below) and sends on `tx` when a file is created, written, renamed or
/// removed there (reading a file is no change: the reload itself reads them all); `None` (and a
/// log line) where the directory cannot be watched, e.g. it does not exist (the built-in
/// defaults).
fn watch(dir: &std::path::Path, tx: tokio::sync::mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    if !dir.is_dir() {
        tracing::info!(dir = %dir.display(), "no config directory to watch: the built-in defaults run; SIGHUP still reloads");
        return None;
    }
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !matches!(e.kind, EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    });
    match watcher {
        Ok(mut w) => match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot watch config/ for changes ({e}); reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::warn!("cannot watch config/ for changes ({e}); reload with SIGHUP");
            None
        }
    }
}

/// Waits until no change has come for [`SETTLE`]: an editor's save, or a deployment copying
/// several files, is one burst and gives one reload.
async fn settle(changed: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    while let Ok(Some(())) = tokio::time::timeout(SETTLE, changed.recv()).await {}
}

/// How long `config/` must be quiet after a change before it is loaded again.
const SETTLE: Duration = Duration::from_millis(500);

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!("cannot listen for SIGHUP ({e}); config/ reloads when its files change"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

#[cfg(unix)]
async fn next_hangup(h: &mut Hangups) -> Option<()> {
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) -> Option<()> {
    std::future::pending().await
}
