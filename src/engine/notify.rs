//! PostgreSQL LISTEN/NOTIFY between processes sharing a database: a process that schedules work
//! announces it on a channel, and every engine listening wakes at once instead of at its next
//! poll. Purely an accelerator: the bounded poll still finds everything.

use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::startup::AppState;

pub const CHANNEL: &str = "firstcall_jobs";

/// Forwards notifications from other processes to this process's engine.
pub async fn listen(state: AppState) {
    while !state.shutdown.is_triggered() {
        let pool = state.db.get_postgres_connection_pool().clone();
        match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::debug!(error = %e, "cannot LISTEN; relying on polling");
                } else {
                    loop {
                        tokio::select! {
                            n = listener.recv() => match n {
                                Ok(_) => state.signals.engine.notify_one(),
                                Err(_) => break,
                            },
                            _ = state.shutdown.wait() => return,
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot LISTEN; relying on polling"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {},
            _ = state.shutdown.wait() => return,
        }
    }
}

/// Announces locally scheduled work to other processes, coalescing bursts into one NOTIFY.
pub async fn publish(state: AppState) {
    while !state.shutdown.is_triggered() {
        tokio::select! {
            _ = state.signals.announce.notified() => {},
            _ = state.shutdown.wait() => return,
        }
        let _ = state.db.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
