//! A cancellation signal shared by background loops: once triggered, loops stop claiming

//! new work, finish what they hold, and return.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

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
        let pause = std::time::Duration::from_millis((250u64 << self.failures.min(6)).min(10_000));
        tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "{what} cannot reach the database");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = shutdown.wait() => {},
        }
    }
}
