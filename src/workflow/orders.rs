//! Stores verified CRM events and applies them to orders and calls. Each request's events are
//! applied together: the raw event with its dedupe key, the order's new state, and the
//! workflow's change (a new call with its first timer, a cancellation, a re-plan). The HTTP
//! layer answers 2xx only after they are committed, so an acknowledged event is never lost, and
//! a redelivered event finds its key and does nothing twice.
//!
//! Commits are grouped: requests queue for a few writers, each of which takes every request
//! waiting, applies them in one transaction and commits them all at once, answering each only
//! after that commit (a request that fails is answered with its error and the others are applied
//! again without it). A burst of webhooks then costs one durable flush per group instead of one
//! per request. `batch` writes a group set-wise; `apply` is the per-event path.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

mod apply;
mod batch;

use super::FirstCall;
use crate::background::Signals;
use crate::clock::SharedClock;
use crate::db::ErrorKind;
use crate::intake::event::IntakeEvent;

/// Why a request's events were not stored. In every case nothing of the request was stored,
/// and the CRM may send it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The database cannot be reached, or the writers stopped.
    #[error("not stored: the database is unavailable ({0})")]
    Unavailable(String),
    /// Other requests kept changing the same deals at the same time.
    #[error("not stored: concurrent changes to the same deals; retry")]
    Conflict,
    /// The database refused the request's rows.
    #[error("not stored: {0}")]
    Rejected(String),
}

impl From<&DbErr> for IntakeError {
    fn from(e: &DbErr) -> Self {
        match crate::db::error_kind(e) {
            ErrorKind::Unavailable => IntakeError::Unavailable(e.to_string()),
            ErrorKind::Conflict => IntakeError::Conflict,
            ErrorKind::Duplicate | ErrorKind::Other => IntakeError::Rejected(e.to_string()),
        }
    }
}

/// What storing a group of requests needs.
#[derive(Clone)]
pub struct Writers {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub first_call: Arc<super::Live>,
    /// Told when calls were opened, so the engine starts them at once.
    pub signals: Signals,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventResult {
    /// The CRM's event id (the dedupe key).
    pub id: String,
    pub deal_id: String,
    /// `opened` (a first call was scheduled), `cancelled`, `updated`, `recorded` (stored; no
    /// change needed), `duplicate` (seen before; nothing done again), or `stale` (older than
    /// what is already known; kept for the record).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
}

/// Requests a writer takes into one transaction at most.
const MAX_GROUP: usize = 64;

type Reply = oneshot::Sender<Result<Vec<EventResult>, IntakeError>>;

struct Pending {
    events: Vec<IntakeEvent>,
    reply: Reply,
}

/// The queue in front of the group-commit writers.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the writers: half the database pool on PostgreSQL (the rest stays free for the
    /// engine, the mailer and the API), one on SQLite, which has a single connection.
    pub fn start(w: Writers) -> Intake {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let db_settings = &w.first_call.get().config.settings.database;
        let writers = if !crate::db::is_postgres(&w.db) {
            1
        } else if db_settings.intake_writers > 0 {
            db_settings.intake_writers
        } else {
            (db_settings.max_connections / 4).clamp(1, 4)
        };
        let queue = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(writer(w.clone(), queue.clone()));
        }
        Intake { queue: tx }
    }

    /// Stores and applies a request's events together, and returns once they are committed.
    pub async fn accept(&self, events: &[IntakeEvent]) -> Result<Vec<EventResult>, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let gone = || IntakeError::Unavailable("the intake writer stopped".into());
        self.queue.send(Pending { events: events.to_vec(), reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn writer(w: Writers, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(p) => group.push(p),
                None => return,
            }
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
        }
        commit_group(&w, group).await;
    }
}

/// One transaction for a group of requests, written set-wise (`batch`). If that fails for one
/// request's sake (a constraint, a bad row), the group is applied again request by request: a
/// request that fails is taken out and answered with its error, the rest committed without it.
/// A deadlock with another group is retried as it is.
async fn commit_group(w: &Writers, group: Vec<Pending>) {
    // A client that went away was never answered and will send its events again.
    let group: Vec<Pending> = group.into_iter().filter(|p| !p.reply.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    for attempt in 1..=3 {
        match commit_set_wise(w, &group).await {
            Ok(applied) => return answer(w, group, applied),
            Err(batch::GroupError::Db(e)) => match crate::db::error_kind(&e) {
                ErrorKind::Unavailable => return fail_all(group, &e),
                ErrorKind::Conflict if attempt < 3 => continue,
                _ => {
                    tracing::debug!(error = %e, "group not applied set-wise; applying request by request");
                    break;
                }
            },
            Err(batch::GroupError::NotSetWise(why)) => {
                tracing::debug!(why = %why, "group not applied set-wise; applying request by request");
                break;
            }
        }
    }
    commit_one_by_one(w, group).await
}

async fn commit_set_wise(w: &Writers, group: &[Pending]) -> Result<Vec<Vec<EventResult>>, batch::GroupError> {
    let txn = crate::db::begin_write(&w.db).await?;
    let requests: Vec<&[IntakeEvent]> = group.iter().map(|p| p.events.as_slice()).collect();
    let applied = batch::apply_group(&txn, &w.first_call.get(), &requests, w.clock.now()).await?;
    // The raw events, the orders and the calls with their first timers of every request in
    // the group commit together; only then does each CRM get its 2xx.
    txn.commit().await?;
    Ok(applied)
}

/// Answers every request of the group with the error (the database went away: none is stored).
fn fail_all(group: Vec<Pending>, e: &DbErr) {
    let error = IntakeError::Unavailable(e.to_string());
    for p in group {
        let _ = p.reply.send(Err(error.clone()));
    }
}

fn answer(w: &Writers, group: Vec<Pending>, applied: Vec<Vec<EventResult>>) {
    if applied.iter().any(|results| results.iter().any(|r| r.call_id.is_some())) {
        w.signals.jobs_scheduled();
    }
    for (p, results) in group.into_iter().zip(applied) {
        let _ = p.reply.send(Ok(results));
    }
}

/// Stores and applies `events` inside the caller's transaction, one after another, as a webhook's
/// would be (the reconciler feeds what it finds in a CRM through here).
pub async fn apply_events(
    db: &impl sea_orm::ConnectionTrait,
    fc: &FirstCall,
    events: &[IntakeEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<EventResult>, DbErr> {
    apply::apply_all(db, fc, now, events).await
}

async fn commit_one_by_one(w: &Writers, mut group: Vec<Pending>) {
    let mut conflicts = 0;
    while !group.is_empty() {
        let txn = match crate::db::begin_write(&w.db).await {
            Ok(t) => t,
            Err(e) => return fail_all(group, &e),
        };
        let mut applied = Vec::with_capacity(group.len());
        let mut failure = None;
        for (i, p) in group.iter().enumerate() {
            match apply::apply_all(&txn, &w.first_call.get(), w.clock.now(), &p.events).await {
                Ok(results) => applied.push(results),
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if let Some((i, e)) = failure {
            let _ = txn.rollback().await;
            let kind = crate::db::error_kind(&e);
            if kind == ErrorKind::Unavailable {
                return fail_all(group, &e);
            }
            conflicts += usize::from(kind == ErrorKind::Conflict);
            if kind != ErrorKind::Conflict || conflicts > 5 {
                let _ = group.remove(i).reply.send(Err(IntakeError::from(&e)));
            }
            continue;
        }
        // A failed commit answers 503 (the CRM retries; a commit that did land makes the retry
        // a duplicate).
        match txn.commit().await {
            Ok(()) => return answer(w, group, applied),
            Err(e) => return fail_all(group, &e),
        }
    }
}
