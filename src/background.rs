//! Background loops: the cancellation signal they share (once triggered, loops stop claiming
//! new work, finish what they hold, and return) and the one wake/poll/backoff loop that the
//! engine and the mailer both run.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Wake-ups for background loops, so new work is picked up at once instead of at the next poll.
#[derive(Clone, Default)]
pub struct Signals {
    pub engine: Arc<Notify>,
    pub mailer: Arc<Notify>,
    /// The engine's feeds (the webhook inbox).
    pub feeds: Arc<Notify>,
    /// Tells other processes on the same PostgreSQL database that work was scheduled.
    pub announce: Arc<Notify>,
}

impl Signals {
    /// New jobs are due now: wake this process's engine and tell the others.
    pub fn jobs_scheduled(&self) {
        self.engine.notify_one();
        self.announce.notify_one();
    }

    /// Emails were written to the outbox, due now: wake this process's mailer and tell the
    /// others.
    pub fn emails_queued(&self) {
        self.mailer.notify_one();
        self.announce.notify_one();
    }

    /// Events were stored for the engine to apply: wake this process's feeds and tell the
    /// others.
    pub fn events_stored(&self) {
        self.feeds.notify_one();
        self.announce.notify_one();
    }

    /// Shutdown: every loop that sleeps looks up.
    pub fn wake_all(&self) {
        self.engine.notify_waiters();
        self.mailer.notify_waiters();
        self.feeds.notify_waiters();
    }
}

#[derive(Clone, Default)]
pub struct Shutdown(Arc<(AtomicBool, Notify)>);

impl Shutdown {
    pub fn trigger(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }
    pub fn is_triggered(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }
    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        loop {
            let n = self.0.1.notified();
            if self.is_triggered() {
                return;
            }
            n.await;
        }
    }
}

impl Shutdown {
    /// Sleeps for `d`, or less if `wake` fires or shutdown is triggered.
    pub async fn idle(&self, wake: tokio::sync::futures::Notified<'_>, d: std::time::Duration) {
        tokio::select! {
            _ = wake => {},
            _ = tokio::time::sleep(d) => {},
            _ = self.wait() => {},
        }
    }
}

/// A background loop's pause after failures: 0.5 s doubling up to 10 s, reset on success.
#[derive(Debug, Default)]
pub struct ErrorBackoff {
    failures: u32,
}

impl ErrorBackoff {
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Logs the failure and waits before the next try (or until shutdown).
    pub async fn failed(&mut self, shutdown: &Shutdown, what: &str, error: &(dyn std::fmt::Display + Sync)) {
        self.failures += 1;
        let pause = Duration::from_millis((250u64 << self.failures.min(6)).min(10_000));
        tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "{what} cannot reach the database");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = shutdown.wait() => {},
        }
    }
}

/// Runs `round` until shutdown. A round returns how long to sleep before the next one
/// (`Duration::ZERO` to go again at once); the sleep ends early when `wake` is notified, so
/// new work is picked up at once. A failing round (the database is away) is logged and retried
/// after [`ErrorBackoff`]'s pause.
pub async fn run_loop<F, Fut, E>(shutdown: &Shutdown, wake: &Notify, what: &str, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration, E>>,
    E: std::fmt::Display + Sync,
{
    let mut backoff = ErrorBackoff::default();
    while !shutdown.is_triggered() {
        let woken = wake.notified();
        match round().await {
            Ok(sleep) => {
                backoff.succeeded();
                if !sleep.is_zero() {
                    shutdown.idle(woken, sleep).await;
                }
            }
            Err(e) => backoff.failed(shutdown, what, &e).await,
        }
    }
}

/// How long an idle loop sleeps: until the next item is due, at least `min` and at most `poll`
/// (the poll also notices work that other processes scheduled without telling).
pub fn sleep_until(
    next_due: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    min: Duration,
    poll: Duration,
) -> Duration {
    match next_due {
        Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO).clamp(min, poll.max(min)),
        None => poll,
    }
}
