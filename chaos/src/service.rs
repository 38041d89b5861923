//! The real `firstcall` binary as child processes: a config directory of our own (the
//! repository's defaults and templates plus a fast schedule), settings and secrets in the
//! environment as in production, each process's log in a file, and the signals a fault test
//! needs (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveTime;

pub const GENERIC_SECRET: &str = "chaos-generic-secret-0123456789";
pub const API_TOKEN: &str = "chaos-api-token-0123456789";
/// The host of `http.public_url`, which ends every `Message-ID` the service writes.
pub const PUBLIC_HOST: &str = "firstcall.chaos";

/// How reminders fire in a run: every `every_secs` seconds, at most `max` per call; `None` for
/// (practically) never.
#[derive(Debug, Clone, Copy)]
pub struct Reminders {
    pub every_secs: Option<u32>,
    pub max: u32,
}

impl Reminders {
    pub const NEVER: Reminders = Reminders { every_secs: None, max: 1 };

    fn cron(&self) -> String {
        match self.every_secs {
            Some(s) => format!("*/{s} * * * * *"),
            // Midnight on 1 January: never during a run.
            None => "0 0 0 1 1 *".into(),
        }
    }
}

/// The calendar a promise's service runs on: its schedule's business hours start at
/// `business_start` (in the rep's timezone: UTC, `defaults.timezone`, for the reps the tests
/// use, none of them in the rep directory) and end at 23:59, every day of the week;
/// `promise_days_before` is `promises.remind_business_days_before` when set (the repository's
/// default otherwise). A promise's reminders come at the start of business hours.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub business_start: NaiveTime,
    pub promise_days_before: Option<Vec<u32>>,
}

impl Default for Calendar {
    /// Business hours all day, every day; the default promise reminders.
    fn default() -> Self {
        Calendar { business_start: NaiveTime::MIN, promise_days_before: None }
    }
}

/// Where the binary is and the settings every process of one promise shares.
pub struct Setup {
    pub binary: PathBuf,
    /// This promise's own directory: config, logs.
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Setup {
    /// A setup for one promise: `dir/config` holds the repository's `default.toml`, a link to its
    /// templates, and `chaos.toml` with the schedule (picked with `FIRSTCALL_ENV=chaos`).
    pub fn new(binary: &Path, repo: &Path, dir: PathBuf, db_url: &str, smtp_port: u16, reminders: Reminders) -> anyhow::Result<Setup> {
        Self::with_calendar(binary, repo, dir, db_url, smtp_port, reminders, &Calendar::default())
    }

    /// [`Setup::new`] with a calendar of the promise's own: when the schedule's business hours
    /// start, and which business days before a promise's date its owner is reminded.
    pub fn with_calendar(
        binary: &Path,
        repo: &Path,
        dir: PathBuf,
        db_url: &str,
        smtp_port: u16,
        reminders: Reminders,
        calendar: &Calendar,
    ) -> anyhow::Result<Setup> {
        let config = dir.join("config");
        fs::create_dir_all(&config)?;
        fs::copy(repo.join("config/default.toml"), config.join("default.toml")).context("copy config/default.toml")?;
        let templates = config.join("templates");
        if !templates.exists() {
            std::os::unix::fs::symlink(repo.join("config/templates"), &templates).context("link config/templates")?;
        }
        let mut schedule = format!(
            "[[schedules]]\nname = \"chaos\"\ndue_within_business_hours = 1\nreminder_cron = \"{}\"\nmax_reminders = {}\n\
             business_hours = {{ start = \"{}\", end = \"23:59\", days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"] }}\n\
             escalation = []\n",
            reminders.cron(),
            reminders.max,
            calendar.business_start.format("%H:%M")
        );
        if let Some(days) = &calendar.promise_days_before {
            let days: Vec<String> = days.iter().map(u32::to_string).collect();
            schedule.push_str(&format!("\n[promises]\nremind_business_days_before = [{}]\n", days.join(", ")));
        }
        fs::write(config.join("chaos.toml"), schedule)?;
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("FIRSTCALL_ENV", "chaos"),
            ("FIRSTCALL__HTTP__HOST", "127.0.0.1"),
            ("FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE", "0"),
            ("FIRSTCALL__HTTP__WORKERS", "2"),
            ("FIRSTCALL__DATABASE__MAX_CONNECTIONS", "8"),
            ("FIRSTCALL__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
            ("FIRSTCALL__LOG__LEVEL", "info"),
            ("FIRSTCALL__MAIL__TRANSPORT", "smtp"),
            ("FIRSTCALL__MAIL__SMTP__HOST", "127.0.0.1"),
            ("FIRSTCALL__MAIL__SMTP__POOL_SIZE", "2"),
            ("FIRSTCALL__MAIL__SMTP__CONNECT_TIMEOUT_SECS", "2"),
            ("FIRSTCALL__MAIL__FROM", "firstcall <firstcall@seller.example>"),
            ("FIRSTCALL__MAIL__SEND_TIMEOUT_SECS", "2"),
            ("FIRSTCALL__MAIL__RETRY_BASE_SECS", "1"),
            ("FIRSTCALL__MAIL__RETRY_MAX_SECS", "3"),
            ("FIRSTCALL__MAIL__MAX_ATTEMPTS", "1000"),
            ("FIRSTCALL__ENGINE__POLL_INTERVAL_MS", "200"),
            ("FIRSTCALL__ENGINE__LEASE_SECS", "5"),
            ("FIRSTCALL__ENGINE__RETRY_BASE_SECS", "1"),
            ("FIRSTCALL__ENGINE__RETRY_MAX_SECS", "3"),
            ("FIRSTCALL__ENGINE__MAX_ATTEMPTS", "1000"),
            ("FIRSTCALL__API__TOKENS", API_TOKEN),
            ("FIRSTCALL__LINKS__SIGNING_KEYS", "chaos-link-signing-key-0123456789"),
            ("FIRSTCALL__WEBHOOKS__GENERIC__SECRETS", GENERIC_SECRET),
            ("FIRSTCALL__DEFAULTS__UNASSIGNED_EMAIL", "sales-ops@seller.example"),
            ("FIRSTCALL__MAIL__ALLOWED_RECIPIENT_DOMAINS", "seller.example"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert("FIRSTCALL__HTTP__PUBLIC_URL".into(), format!("http://{PUBLIC_HOST}"));
        env.insert("FIRSTCALL_CONFIG_DIR".into(), config.display().to_string());
        env.insert("FIRSTCALL__DATABASE__URL".into(), db_url.to_string());
        env.insert("FIRSTCALL__MAIL__SMTP__PORT".into(), smtp_port.to_string());
        Ok(Setup { binary: binary.to_path_buf(), dir, env })
    }

    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Starts `firstcall <command>` as `name`: its log goes to `dir/name.log` (appended across
    /// restarts), its database sessions carry `application_name=name` and its job leases the
    /// owner `name-…`, so a final read can tell the processes apart.
    pub fn spawn(&self, name: &str, command: &str, port: Option<u16>) -> anyhow::Result<Service> {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(command).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        for (k, _) in std::env::vars() {
            if k.starts_with("FIRSTCALL") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&self.env).env("HOSTNAME", name).env("NO_COLOR", "1");
        let url = &self.env["FIRSTCALL__DATABASE__URL"];
        let sep = if url.contains('?') { '&' } else { '?' };
        cmd.env("FIRSTCALL__DATABASE__URL", format!("{url}{sep}application_name={name}"));
        if let Some(p) = port {
            cmd.env("FIRSTCALL__HTTP__PORT", p.to_string());
        }
        let child = cmd.spawn().with_context(|| format!("start {}", self.binary.display()))?;
        Ok(Service { child, name: name.to_string(), port, log: log_path })
    }
}

/// A running `firstcall` process.
pub struct Service {
    child: Child,
    pub name: String,
    pub port: Option<u16>,
    pub log: PathBuf,
}

impl Service {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.unwrap_or(0))
    }

    /// Waits until `/healthz` answers (HTTP processes) or the process has run a moment (workers).
    pub async fn ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited during start-up ({status}); log:\n{}", self.name, tail(&self.log, 30));
            }
            match self.port {
                Some(_) => {
                    if let Ok(r) = client.get(format!("{}/healthz", self.base_url())).send().await
                        && r.status().is_success()
                    {
                        return Ok(());
                    }
                }
                None if started.elapsed() > Duration::from_secs(1) => return Ok(()),
                None => {}
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} not ready after {timeout:?}; log:\n{}", self.name, tail(&self.log, 30));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// True while the process runs (a stopped process still runs).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// SIGKILL: no shutdown, no flush, connections cut mid-request.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM and wait (SIGKILL after `grace`).
    pub async fn stop(&mut self, grace: Duration) {
        self.resume();
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
