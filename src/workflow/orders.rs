//! The webhook inbox. A verified event is acknowledged once its one row is durable: the raw
//! event with its dedupe key and what the intake read from it (transition and facts), gated by
//! the unique `(source, dedupe_key)` with `ON CONFLICT DO NOTHING`, so a redelivery finds its key
//! and is a duplicate. The engine applies stored events to orders, calls and timers afterwards
//! (`inbox`), in order, in batches; `GET /api/v1/events/{id}` tells what applying one did.
//!
//! Commits are grouped: requests queue for a few writers, each of which takes every request
//! waiting, stores their events with one multi-row statement and commits once, answering each
//! only after that commit (a request whose rows the database refuses is taken out and answered
//! with its error, the others stored again without it). A burst of webhooks then costs one
//! statement and one durable flush per group instead of several of each per event. `apply` is
//! the per-event path the applier and the reconciler share; `batch` applies won deals firstcall
//! has never seen set-wise.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

mod apply;
mod batch;
pub mod inbox;

pub use apply::PENDING;

use super::FirstCall;
use crate::background::Signals;
use crate::clock::SharedClock;
use crate::db::ErrorKind;
use crate::intake::event::IntakeEvent;
use entity::webhook_events;

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
    /// Told when events were stored, so the applier takes them at once.
    pub signals: Signals,
}

/// What became of one event when it was applied (the reconciler's events, and the record of
/// a stored webhook event once the engine applied it).
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

/// What the intake did with one event of a webhook request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The CRM's event id (the dedupe key).
    pub id: String,
    pub deal_id: String,
    /// `accepted` (stored now; the engine applies it next) or `duplicate` (stored before;
    /// nothing is done again).
    #[schema(example = "accepted")]
    pub outcome: &'static str,
    /// firstcall's id of the stored event: `GET /api/v1/events/{stored_id}` tells what applying
    /// it did. A duplicate names the event first stored with its key.
    pub stored_id: i64,
}

/// Requests a writer takes into one transaction at most.
const MAX_GROUP: usize = 64;

type Reply = oneshot::Sender<Result<Vec<Receipt>, IntakeError>>;

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
    /// Starts the writers: up to a quarter of the database pool on PostgreSQL (the rest stays
    /// free for the engine, the mailer and the API), one on SQLite, which has a single
    /// connection.
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

    /// Stores a request's events, and returns once they are committed.
    pub async fn accept(&self, events: &[IntakeEvent]) -> Result<Vec<Receipt>, IntakeError> {
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

/// One transaction for a group of requests. If the database refuses a row (a value it cannot
/// store), the group is stored again request by request: a request that fails is taken out and
/// answered with its error, the rest committed without it.
async fn commit_group(w: &Writers, group: Vec<Pending>) {
    // A client that went away was never answered and will send its events again.
    let mut group: Vec<Pending> = group.into_iter().filter(|p| !p.reply.is_closed()).collect();
    let mut conflicts = 0;
    while !group.is_empty() {
        let requests: Vec<&[IntakeEvent]> = group.iter().map(|p| p.events.as_slice()).collect();
        let e = match store_group(&w.db, &requests, w.clock.now()).await {
            Ok(receipts) => return answer(w, group, receipts),
            Err(e) => e,
        };
        match crate::db::error_kind(&e) {
            ErrorKind::Unavailable => return fail_all(group, &e),
            ErrorKind::Conflict if conflicts < 5 => conflicts += 1,
            _ if group.len() == 1 => {
                let _ = group.remove(0).reply.send(Err(IntakeError::from(&e)));
            }
            _ => {
                tracing::debug!(error = %e, "group not stored together; storing request by request");
                for p in group {
                    Box::pin(commit_group(w, vec![p])).await;
                }
                return;
            }
        }
    }
}

/// Stores the group's events in one transaction; returns each request's receipts in its
/// events' order.
async fn store_group(db: &DatabaseConnection, requests: &[&[IntakeEvent]], now: DateTime<Utc>) -> Result<Vec<Vec<Receipt>>, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let receipts = store(&txn, requests, now).await?;
    txn.commit().await?;
    Ok(receipts)
}

/// Every event whose key is new is stored once, pending; a later delivery of the same key, in
/// this group or before, finds it taken and is a duplicate. Rows are written in the order the
/// events arrived, which is the order the engine applies them in (two groups holding the same
/// keys in opposite orders can deadlock; the loser is stored again).
async fn store(db: &impl ConnectionTrait, requests: &[&[IntakeEvent]], now: DateTime<Utc>) -> Result<Vec<Vec<Receipt>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Stored {
        id: i64,
        source: String,
        dedupe_key: String,
    }
    let events: Vec<&IntakeEvent> = requests.iter().flat_map(|r| r.iter()).collect();
    let mut firsts = std::collections::HashSet::new();
    let order: Vec<usize> = (0..events.len()).filter(|&i| firsts.insert((events[i].source, events[i].dedupe_key.as_str()))).collect();
    let backend = db.get_database_backend();
    let mut new: HashMap<(&str, &str), i64> = HashMap::new();
    let mut stored: Vec<Stored> = Vec::new();
    for chunk in order.chunks(500) {
        let rows = chunk.iter().map(|&i| apply::event_row(events[i], apply::occurred(events[i], now), now));
        let mut insert = webhook_events::Entity::insert_many(rows)
            .on_conflict(OnConflict::columns([webhook_events::Column::Source, webhook_events::Column::DedupeKey]).do_nothing().to_owned());
        // Only the keys come back, not the payloads.
        let q = sea_orm::QueryTrait::query(&mut insert);
        q.returning(Query::returning().columns([
            webhook_events::Column::Id,
            webhook_events::Column::Source,
            webhook_events::Column::DedupeKey,
        ]));
        stored.extend(Stored::find_by_statement(backend.build(&*q)).all(db).await?);
    }
    for s in &stored {
        new.insert((s.source.as_str(), s.dedupe_key.as_str()), s.id);
    }
    // Keys stored before: their first delivery's id.
    let mut earlier: HashMap<(String, String), i64> = HashMap::new();
    let seen: Vec<&&IntakeEvent> = events.iter().filter(|e| !new.contains_key(&(e.source.as_str(), e.dedupe_key.as_str()))).collect();
    for source in crate::domain::Source::ALL {
        let keys: Vec<&str> = seen.iter().filter(|e| e.source == source).map(|e| e.dedupe_key.as_str()).collect();
        if keys.is_empty() {
            continue;
        }
        let found: Vec<(i64, String)> = webhook_events::Entity::find()
            .select_only()
            .columns([webhook_events::Column::Id, webhook_events::Column::DedupeKey])
            .filter(webhook_events::Column::Source.eq(source.as_str()))
            .filter(webhook_events::Column::DedupeKey.is_in(keys))
            .into_tuple()
            .all(db)
            .await?;
        for (id, key) in found {
            earlier.insert((source.as_str().to_string(), key), id);
        }
    }
    let mut out = Vec::with_capacity(requests.len());
    let mut first = std::collections::HashSet::new();
    for r in requests {
        let mut receipts = Vec::with_capacity(r.len());
        for ev in r.iter() {
            let key = (ev.source.as_str(), ev.dedupe_key.as_str());
            let (outcome, stored_id) = match new.get(&key) {
                // The first delivery of a key in the group is the one stored.
                Some(id) if first.insert(key) => ("accepted", *id),
                Some(id) => ("duplicate", *id),
                None => {
                    let id = earlier
                        .get(&(key.0.to_string(), key.1.to_string()))
                        .copied()
                        .ok_or_else(|| DbErr::Custom(format!("event {} of {} was neither stored nor found", ev.dedupe_key, ev.source)))?;
                    ("duplicate", id)
                }
            };
            receipts.push(Receipt { id: ev.dedupe_key.clone(), deal_id: ev.deal_id.to_string(), outcome, stored_id });
        }
        out.push(receipts);
    }
    Ok(out)
}

/// Answers every request of the group with the error (the database went away: none is stored).
fn fail_all(group: Vec<Pending>, e: &DbErr) {
    let error = IntakeError::Unavailable(e.to_string());
    for p in group {
        let _ = p.reply.send(Err(error.clone()));
    }
}

fn answer(w: &Writers, group: Vec<Pending>, receipts: Vec<Vec<Receipt>>) {
    if receipts.iter().any(|r| r.iter().any(|r| r.outcome == "accepted")) {
        w.signals.events_stored();
    }
    for (p, r) in group.into_iter().zip(receipts) {
        let _ = p.reply.send(Ok(r));
    }
}

/// Stores and applies `events` inside the caller's transaction, one after another (the
/// reconciler feeds what it finds in a CRM through here).
pub async fn apply_events(
    db: &impl sea_orm::ConnectionTrait,
    fc: &FirstCall,
    events: &[IntakeEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<EventResult>, DbErr> {
    apply::apply_all(db, fc, now, events).await
}
