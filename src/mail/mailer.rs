//! The mailer: claims due outbox rows under a lease, sends each (bounded by
//! `mail.send_timeout_secs`), and records the outcome. Transient failures and unknown outcomes
//! retry with capped exponential backoff; permanent rejections and exhausted attempts are
//! marked failed, visible on the dashboard and in metrics, and can be retried. A reminder or
//! escalation whose call was marked done meanwhile is skipped, never sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::DbErr;
use tokio::sync::Semaphore;

use super::message::build_message_at;
use super::outbox::{self, ClaimedEmail, Recorded};
use super::transport::{MailTransport, SendOutcome};
use crate::startup::AppState;

pub async fn run(state: AppState) {
    let transport = match MailTransport::from_settings(&state.config.settings.mail) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!(error = %e, "mail transport cannot start; emails stay queued");
            state.shutdown.wait().await;
            return;
        }
    };
    let poll = Duration::from_millis(state.config.settings.engine.poll_interval_ms.max(10));
    let mut backoff = crate::shutdown::ErrorBackoff::default();
    while !state.shutdown.is_triggered() {
        let wake = state.signals.mailer.notified();
        match deliver_batch(&state, &transport).await {
            Ok(n) => {
                backoff.succeeded();
                if n > 0 {
                    continue;
                }
                let sleep = match outbox::next_due_at(&state.db).await {
                    Ok(Some(at)) => (at - state.clock.now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(10), poll),
                    _ => poll,
                };
                state.shutdown.idle(wake, sleep).await;
            }
            Err(e) => backoff.failed(&state.shutdown, "mailer", &e).await,
        }
    }
}

/// Delivers every email due now, batch after batch (tests and tools).
pub async fn run_due(state: &AppState) -> Result<usize, DbErr> {
    let transport = Arc::new(MailTransport::from_settings(&state.config.settings.mail).map_err(|e| DbErr::Custom(e.to_string()))?);
    let mut total = 0;
    loop {
        let n = deliver_batch(state, &transport).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Claims a batch and sends it with `mail.concurrency` sends in flight; returns how many were
/// claimed.
pub async fn deliver_batch(state: &AppState, transport: &Arc<MailTransport>) -> Result<usize, DbErr> {
    let cfg = &state.config.settings.mail;
    let now = state.clock.now();
    // The lease outlasts the send timeout, so a slow send is not taken over mid-flight.
    let lease = TimeDelta::seconds((cfg.send_timeout_secs + 30) as i64);
    let batch = outbox::claim_due(&state.db, &state.instance_id, now, lease, (cfg.concurrency * 4) as u32).await?;
    let n = batch.len();
    if n == 0 {
        return Ok(0);
    }
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    let mut tasks = Vec::with_capacity(n);
    for email in batch {
        let permit = permits.clone().acquire_owned().await.map_err(|e| DbErr::Custom(e.to_string()))?;
        let state = state.clone();
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let r = deliver_one(&state, &transport, email).await;
            drop(permit);
            r
        }));
    }
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => first_err = first_err.or(Some(DbErr::Custom(e.to_string()))),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

async fn deliver_one(state: &AppState, transport: &MailTransport, e: ClaimedEmail) -> Result<(), DbErr> {
    let cfg = &state.config.settings.mail;
    let stale = matches!(e.kind.as_str(), outbox::kinds::REMINDER | outbox::kinds::ESCALATION)
        && e.call_state.as_deref().is_some_and(|s| s == "done" || s == "cancelled");
    let outcome = if stale {
        Recorded::Skipped(format!("call is {}", e.call_state.as_deref().unwrap_or("closed")))
    } else {
        match build_message_at(&e.email, &state.config.mail_from, state.clock.now()) {
            Err(err) => Recorded::Failed(format!("cannot build the message: {err}")),
            Ok(message) => {
                let started = std::time::Instant::now();
                let sent = transport.send(&message, message.envelope()).await;
                state.metrics.mail_send_seconds(started.elapsed().as_secs_f64());
                let retry_at = state.clock.now() + crate::engine::backoff(e.attempts as u32, cfg.retry_base_secs, cfg.retry_max_secs);
                let last = e.attempts as u32 >= cfg.max_attempts;
                match sent {
                    SendOutcome::Delivered => Recorded::Sent,
                    SendOutcome::Permanent(err) => Recorded::Failed(format!("rejected: {err}")),
                    SendOutcome::Transient(err) if last => Recorded::Failed(format!("gave up after {} attempts: {err}", e.attempts)),
                    SendOutcome::Unknown(err) if last => {
                        Recorded::Failed(format!("gave up after {} attempts; last outcome unknown: {err}", e.attempts))
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
    let now = state.clock.now();
    let ours = outbox::record(&state.db, e.id, &e.lease_token, &outcome, now).await?;
    if !ours {
        tracing::warn!(message_id = %e.email.message_id, "lease lost while sending; another mailer owns this email now");
    }
    state.metrics.mail_outcome(&e.kind, &outcome);
    match &outcome {
        Recorded::Sent => tracing::info!(message_id = %e.email.message_id, kind = %e.kind, call_id = ?e.call_id, "email sent"),
        Recorded::Skipped(why) => tracing::info!(message_id = %e.email.message_id, kind = %e.kind, why = %why, "email skipped"),
        Recorded::Retry { error, .. } => {
            tracing::warn!(message_id = %e.email.message_id, attempt = e.attempts, error = %error, "email not sent; will retry")
        }
        Recorded::Failed(error) => {
            tracing::error!(message_id = %e.email.message_id, kind = %e.kind, error = %error, "email failed; visible on the dashboard")
        }
    }
    Ok(())
}
