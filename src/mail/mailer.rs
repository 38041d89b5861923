//! The mailer: claims due outbox rows under a lease, sends each (bounded by
//! `mail.send_timeout_secs`), and records the outcome. Transient failures and unknown outcomes
//! retry with capped exponential backoff; permanent rejections and exhausted attempts are
//! marked failed, visible on the dashboard and in metrics, and can be retried. A reminder or
//! escalation whose call was marked done meanwhile is skipped, never sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use lettre::message::Mailbox;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Semaphore;

use super::message::build_message_at;
use super::outbox::{self, ClaimedEmail, Recorded};
use super::transport::{MailTransport, SendOutcome, TransportError};
use crate::background::{Shutdown, Signals};
use crate::clock::SharedClock;
use crate::config::MailSettings;
use crate::db::lease::backoff;
use crate::metrics::Metrics;

/// Why a delivery round did not run.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("a send task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The mailer of one process.
#[derive(Clone)]
pub struct Mailer {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub settings: MailSettings,
    pub from: Mailbox,
    /// Longest wait between looks for due mail.
    pub poll: Duration,
    pub metrics: Arc<Metrics>,
    pub signals: Signals,
    pub shutdown: Shutdown,
    /// Identifies this process in outbox leases.
    pub instance_id: String,
}

impl Mailer {
    pub async fn run(self) {
        let transport = match MailTransport::from_settings(&self.settings) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::error!(error = %e, "mail transport cannot start; emails stay queued");
                self.shutdown.wait().await;
                return;
            }
        };
        crate::background::run_loop(&self.shutdown, &self.signals.mailer, "mailer", || async {
            if self.deliver_batch(&transport).await? > 0 {
                return Ok(Duration::ZERO);
            }
            let now = self.clock.now();
            let next = outbox::next_due_at(&self.db, now).await.unwrap_or(None);
            Ok::<_, MailerError>(crate::background::sleep_until(next, now, Duration::from_millis(10), self.poll))
        })
        .await;
    }

    /// Delivers every email due now, batch after batch (tests and tools).
    pub async fn run_due(&self) -> Result<usize, MailerError> {
        let transport = Arc::new(MailTransport::from_settings(&self.settings)?);
        let mut total = 0;
        loop {
            let n = self.deliver_batch(&transport).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Claims a batch and sends it with `mail.concurrency` sends in flight; returns how many
    /// were claimed.
    pub async fn deliver_batch(&self, transport: &Arc<MailTransport>) -> Result<usize, MailerError> {
        let cfg = &self.settings;
        let now = self.clock.now();
        let batch = outbox::claim_due(&self.db, &self.instance_id, now, self.lease(), (cfg.concurrency * 4) as u32).await?;
        let n = batch.len();
        if n == 0 {
            return Ok(0);
        }
        self.deliver(transport, batch).await
    }

    /// Sends a claimed batch with `mail.concurrency` sends in flight; returns how many it held.
    pub async fn deliver(&self, transport: &Arc<MailTransport>, batch: Vec<ClaimedEmail>) -> Result<usize, MailerError> {
        let n = batch.len();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = Vec::with_capacity(n);
        for email in batch {
            // The semaphore is never closed.
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let mailer = self.clone();
            let transport = transport.clone();
            tasks.push(tokio::spawn(async move {
                let r = mailer.deliver_one(&transport, email).await;
                drop(permit);
                r
            }));
        }
        let mut first_err: Option<MailerError> = None;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(e.into())),
                Err(e) => first_err = first_err.or(Some(e.into())),
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// How long a send may take before another mailer may take the email over.
    fn lease(&self) -> TimeDelta {
        // The lease outlasts the send timeout, so a slow send is not taken over mid-flight.
        TimeDelta::seconds((self.settings.send_timeout_secs + 30) as i64)
    }

    async fn deliver_one(&self, transport: &MailTransport, mut e: ClaimedEmail) -> Result<(), DbErr> {
        let cfg = &self.settings;
        // The batch was claimed with one lease, and this email may have waited for a send slot
        // since: renew the lease for this send, or give the email up if another mailer took it
        // over meanwhile; and judge staleness by the call's state now (a reminder claimed just
        // before "done" is not sent after it).
        match outbox::renew(&self.db, &e, self.clock.now(), self.lease()).await? {
            Some((call_state, promise_state)) => (e.call_state, e.promise_state) = (call_state, promise_state),
            None => {
                tracing::warn!(message_id = %e.email.message_id, "lease ran out before the send; another mailer owns this email now");
                return Ok(());
            }
        }
        let outcome = if let Some(why) = e.stale_because() {
            Recorded::Skipped(why)
        } else {
            match build_message_at(&e.email, &self.from, self.clock.now()) {
                Err(err) => Recorded::Failed { error: format!("cannot build the message: {err}"), unknown: false },
                Ok(message) => {
                    let started = std::time::Instant::now();
                    let sent = transport.send(&message, message.envelope()).await;
                    self.metrics.mail_send_seconds(started.elapsed().as_secs_f64());
                    let retry_at = self.clock.now() + backoff(e.attempts as u32, cfg.retry_base_secs, cfg.retry_max_secs);
                    let last = e.attempts as u32 >= cfg.max_attempts;
                    match sent {
                        SendOutcome::Delivered => Recorded::Sent,
                        SendOutcome::Permanent(err) => Recorded::Failed { error: format!("rejected: {err}"), unknown: false },
                        SendOutcome::Transient(err) if last => {
                            Recorded::Failed { error: format!("gave up after {} attempts: {err}", e.attempts), unknown: false }
                        }
                        SendOutcome::Unknown(err) if last => {
                            // Counted like any unknown outcome: a retry from the dashboard may
                            // deliver a second copy.
                            Recorded::Failed {
                                error: format!("gave up after {} attempts; last outcome unknown: {err}", e.attempts),
                                unknown: true,
                            }
                        }
                        SendOutcome::Transient(err) => Recorded::Retry { error: err, at: retry_at, unknown: false },
                        SendOutcome::Unknown(err) => {
                            tracing::warn!(message_id = %e.email.message_id, error = %err, "delivery outcome unknown; will resend (the recipient may get it twice)");
                            Recorded::Retry { error: format!("outcome unknown: {err}"), at: retry_at, unknown: true }
                        }
                    }
                }
            }
        };
        let now = self.clock.now();
        let ours = outbox::record(&self.db, e.id, &e.lease_token, e.kind, &outcome, now).await?;
        if !ours {
            tracing::warn!(message_id = %e.email.message_id, "lease lost while sending; another mailer owns this email now");
        }
        self.metrics.mail_outcome(e.kind, outcome.label());
        match &outcome {
            Recorded::Sent => tracing::info!(message_id = %e.email.message_id, kind = %e.kind, call_id = ?e.call_id, "email sent"),
            Recorded::Skipped(why) => tracing::info!(message_id = %e.email.message_id, kind = %e.kind, why = %why, "email skipped"),
            Recorded::Retry { error, .. } => {
                tracing::warn!(message_id = %e.email.message_id, attempt = e.attempts, error = %error, "email not sent; will retry")
            }
            Recorded::Failed { error, .. } => {
                tracing::error!(message_id = %e.email.message_id, kind = %e.kind, error = %error, "email failed; visible on the dashboard")
            }
        }
        Ok(())
    }
}
