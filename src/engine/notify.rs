//! PostgreSQL LISTEN/NOTIFY between processes sharing a database: a process that schedules work
//! announces it on a channel, and every engine listening wakes at once instead of at its next
//! poll. Purely an accelerator: the bounded poll still finds everything.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::background::{Shutdown, Signals};

pub const CHANNEL: &str = "firstcall_jobs";

/// Forwards notifications from other processes to this process's engine.
pub async fn listen(db: DatabaseConnection, signals: Signals, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let pool = db.get_postgres_connection_pool().clone();
        match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::debug!(error = %e, "cannot LISTEN; relying on polling");
                } else {
                    loop {
                        tokio::select! {
                            n = listener.recv() => match n {
                                Ok(_) => {
                                    signals.engine.notify_one();
                                    signals.feeds.notify_one();
                                }
                                Err(_) => break,
                            },
                            _ = shutdown.wait() => return,
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot LISTEN; relying on polling"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {},
            _ = shutdown.wait() => return,
        }
    }
}

/// Announces locally scheduled work to other processes, coalescing bursts into one NOTIFY.
pub async fn publish(db: DatabaseConnection, signals: Signals, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        tokio::select! {
            _ = signals.announce.notified() => {},
            _ = shutdown.wait() => return,
        }
        let _ = db.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
