//! Child processes: the real `firstcall` binary (`serve` or `worker`) configured through the
//! environment as an operator would, and the graphile-worker reference under Node.js. Output
//! goes to log files under the run's output directory; memory is read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The API token every firstcall the bench starts accepts (also for the dashboard and call pages).
pub const API_TOKEN: &str = "bench-api-token";

/// How to start firstcall.
#[derive(Debug, Clone)]
pub struct Launch {
    pub bin: PathBuf,
    /// `serve` or `worker`.
    pub command: &'static str,
    pub db_url: String,
    pub smtp_port: u16,
    /// Extra `FIRSTCALL__…` settings for this figure.
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

pub struct Firstcall {
    child: Child,
    pub port: u16,
    pub pid: u32,
}

/// A free TCP port on loopback (bound and released; good enough for one run).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_file(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

impl Firstcall {
    pub fn start(l: &Launch) -> anyhow::Result<Firstcall> {
        let port = free_port()?;
        let (out, err) = log_file(&l.log)?;
        let mut cmd = Command::new(&l.bin);
        cmd.arg(l.command)
            .current_dir(crate::repo_root())
            .env("FIRSTCALL__DATABASE__URL", &l.db_url)
            .env("FIRSTCALL__HTTP__PORT", port.to_string())
            .env("FIRSTCALL__HTTP__PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("FIRSTCALL__WEBHOOKS__GENERIC__SECRETS", crate::figures::WEBHOOK_SECRET)
            .env("FIRSTCALL__API__TOKENS", API_TOKEN)
            .env("FIRSTCALL__LINKS__SIGNING_KEYS", "bench-link-signing-key-0123456789abcdef")
            .env("FIRSTCALL__MAIL__TRANSPORT", "smtp")
            .env("FIRSTCALL__MAIL__SMTP__HOST", "127.0.0.1")
            .env("FIRSTCALL__MAIL__SMTP__PORT", l.smtp_port.to_string())
            .env("FIRSTCALL__MAIL__ALLOWED_RECIPIENT_DOMAINS", "bench.example")
            .env("FIRSTCALL__LOG__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (k, v) in &l.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", l.bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow::anyhow!("firstcall exited at once"))?;
        Ok(Firstcall { child, port, pid })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `/readyz` answers 200 (database reachable, schema current); returns how long
    /// that took from `since`.
    pub async fn wait_ready(&mut self, since: Instant, timeout: Duration) -> anyhow::Result<Duration> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let url = format!("{}/readyz", self.base_url());
        while since.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("firstcall exited before it was ready ({status})");
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(since.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        anyhow::bail!("firstcall was not ready within {timeout:?}")
    }

    pub fn rss_kib(&self) -> Option<u64> {
        status_kib(self.pid, "VmRSS:")
    }

    /// The peak resident set since start.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid, "VmHWM:")
    }

    /// SIGTERM, then a graceful wait; killed if it takes too long.
    pub async fn stop(mut self) {
        terminate(&mut self.child, self.pid).await;
    }
}

async fn terminate(child: &mut Child, pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// The graphile-worker reference: `bench/graphile/worker.cjs` under Node.js with the package
/// installed in `dir`, in one of its configurations.
pub struct Graphile {
    child: Child,
    pid: u32,
}

impl Graphile {
    pub async fn start(dir: &Path, db_url: &str, mode: &str, log: &Path) -> anyhow::Result<Graphile> {
        let script = crate::repo_root().join("bench/graphile/worker.cjs");
        let (_, err) = log_file(log)?;
        let mut child = Command::new("node")
            .arg(&script)
            .arg(mode)
            .current_dir(dir)
            .env("DATABASE_URL", db_url)
            // Per-job success lines are console output, not queue work; firstcall logs none either.
            .env("NO_LOG_SUCCESS", "1")
            .env("NODE_PATH", dir.join("node_modules"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start node: {e}"))?;
        let pid = child.id().ok_or_else(|| anyhow::anyhow!("node exited at once"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout from node"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.trim() == "ready" {
                    return Ok(());
                }
            }
            anyhow::bail!("graphile-worker exited before it was ready (see {})", log.display())
        })
        .await
        .map_err(|_| anyhow::anyhow!("graphile-worker was not ready within 60 s"))?;
        ready?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Graphile { child, pid })
    }

    pub async fn stop(mut self) {
        terminate(&mut self.child, self.pid).await;
    }
}
