//! The outbox: every email is a row written in the same transaction as the state change that
//! causes it. The mailer claims due rows from the lease queue ([`crate::db::lease`]), sends
//! them, and records the outcome; a crash between sending and recording leads to a resend with
//! the same `Message-ID`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, FromQueryResult};

use super::message::OutgoingEmail;
use crate::db::lease::{Finish, Queue};
use crate::db::{id_list, stmt};
use entity::calls::CallState;
pub use entity::emails::{EmailKind, EmailState};
use entity::promises::PromiseState;

/// The `emails` table as a lease queue. A row claimed again while it still carries a lease was
/// held by a mailer that stopped before recording what happened (killed, or cut off from the
/// database mid-send): that attempt may have been delivered, so it counts as an unknown
/// outcome, and the resend as a possible duplicate.
pub const QUEUE: Queue = Queue {
    table: "emails",
    due: "next_attempt_at",
    dead_state: "failed",
    on_claim: "unknown_outcomes = unknown_outcomes + CASE WHEN lease_token IS NULL THEN 0 ELSE 1 END",
};

/// A composed email ready for the outbox: the message, and the call and kind it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmail {
    pub call_id: Option<i64>,
    /// The promise it is about, if any ([`EmailKind::needs_open_promise`]).
    pub promise_id: Option<i64>,
    pub kind: EmailKind,
    pub email: OutgoingEmail,
}

/// Writes the email into the outbox (inside the caller's transaction). A second write of the
/// same `Message-ID` is ignored, so a step that runs again cannot queue the same mail twice.
pub async fn enqueue(db: &impl ConnectionTrait, new: NewEmail, now: DateTime<Utc>) -> Result<bool, DbErr> {
    use entity::emails;
    let e = new.email;
    let am = emails::ActiveModel {
        message_id: Set(e.message_id),
        call_id: Set(new.call_id),
        promise_id: Set(new.promise_id),
        kind: Set(new.kind),
        to_addr: Set(e.to_addr),
        to_name: Set(e.to_name),
        cc_addr: Set(e.cc_addr),
        cc_name: Set(e.cc_name),
        subject: Set(e.subject),
        body_text: Set(e.body_text),
        body_html: Set(e.body_html),
        ics: Set(e.ics),
        ics_method: Set(e.ics_method),
        state: Set(EmailState::Pending),
        attempts: Set(0),
        unknown_outcomes: Set(0),
        next_attempt_at: Set(now),
        lease_owner: Set(None),
        lease_token: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        sent_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let r = emails::Entity::insert(am).on_conflict_do_nothing_on([emails::Column::MessageId]).exec(db).await?;
    Ok(matches!(r, sea_orm::TryInsertResult::Inserted(_)))
}

/// An email the mailer holds a lease on, with the state of its call.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ClaimedEmail {
    pub id: i64,
    pub call_id: Option<i64>,
    pub promise_id: Option<i64>,
    pub kind: EmailKind,
    pub attempts: i32,
    pub lease_token: String,
    pub call_state: Option<CallState>,
    /// Read right before the send ([`renew`]).
    #[sea_orm(skip)]
    pub promise_state: Option<PromiseState>,
    /// What is sent: the outbox row's message columns.
    #[sea_orm(nested)]
    pub email: OutgoingEmail,
}

impl ClaimedEmail {
    /// Why the email is not sent: a reminder or escalation whose call closed meanwhile, a
    /// promise reminder whose promise was delivered or dropped.
    pub fn stale_because(&self) -> Option<String> {
        if self.kind.needs_open_call() && self.call_state.is_some_and(|s| !s.is_open()) {
            return Some(format!("call is {}", self.call_state.map(|s| s.as_str()).unwrap_or("closed")));
        }
        match self.promise_state {
            Some(s) if self.kind.needs_open_promise() && !s.is_open() => Some(format!("promise is {}", s.as_str())),
            _ => None,
        }
    }
}

/// Claims up to `limit` emails due by `now`, for `lease` (on the database's clock on PostgreSQL).
pub async fn claim_due(
    db: &impl ConnectionTrait,
    owner: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
    limit: u32,
) -> Result<Vec<ClaimedEmail>, DbErr> {
    #[derive(FromQueryResult)]
    struct Id {
        id: i64,
    }
    let lease = QUEUE.claim::<Id>(db, owner, now, lease, limit, "id").await?;
    if lease.rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<i64> = lease.rows.iter().map(|r| r.id).collect();
    let sql = format!(
        "SELECT e.id, e.message_id, e.call_id, e.promise_id, e.kind, e.to_addr, e.to_name, e.cc_addr, e.cc_name, e.subject, e.body_text, e.body_html, e.ics, e.ics_method, \
         e.attempts, e.lease_token, c.state AS call_state FROM emails e LEFT JOIN calls c ON c.id = e.call_id WHERE e.id IN ({}) AND e.lease_token = $1 ORDER BY e.id",
        id_list(&ids)
    );
    ClaimedEmail::find_by_statement(stmt(db.get_database_backend(), &sql, vec![lease.token.into()])).all(db).await
}

/// Right before a send: extends the email's lease by `lease` if it is still held under `token`,
/// and reads the states of its call and promise as they are now. `None` when another mailer
/// took the email over (its lease ran out while this one waited its turn): this one must not
/// send it.
pub async fn renew(
    db: &impl ConnectionTrait,
    e: &ClaimedEmail,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> Result<Option<(Option<CallState>, Option<PromiseState>)>, DbErr> {
    if !QUEUE.renew(db, e.id, &e.lease_token, now, lease).await? {
        return Ok(None);
    }
    let call = match e.call_id {
        Some(call) => entity::calls::Entity::find_by_id(call).one(db).await?.map(|c| c.state),
        None => None,
    };
    let promise = match e.promise_id {
        Some(p) => entity::promises::Entity::find_by_id(p).one(db).await?.map(|p| p.state),
        None => None,
    };
    Ok(Some((call, promise)))
}

/// How a delivery attempt ended, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Sent,
    /// Not sent because its call is no longer open (a reminder after the call was done).
    Skipped(String),
    Retry {
        error: String,
        at: DateTime<Utc>,
        unknown: bool,
    },
    /// Not sent, and not tried again unless an operator retries it. `unknown`: the last
    /// attempt's outcome is unknown, so the message may have arrived.
    Failed {
        error: String,
        unknown: bool,
    },
}

impl Recorded {
    /// The outcome's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Recorded::Sent => "sent",
            Recorded::Skipped(_) => "skipped",
            Recorded::Retry { unknown: true, .. } => "unknown",
            Recorded::Retry { .. } => "retry",
            Recorded::Failed { .. } => "failed",
        }
    }
}

/// What an email whose body carries a secret ([`EmailKind::carries_secret`]) keeps once it went
/// or failed for good: its subject, recipient and outcome, not its text and HTML.
fn without_body(kind: EmailKind, now: DateTime<Utc>) -> Vec<(&'static str, sea_orm::Value)> {
    if !kind.carries_secret() {
        return vec![];
    }
    vec![("body_text = {}", "".into()), ("body_html = {}", "".into()), ("body_removed_at = {}", now.into())]
}

/// Records the outcome, if the lease is still ours. Returns false when another mailer took the
/// email over meanwhile (its outcome wins).
pub async fn record(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    kind: EmailKind,
    outcome: &Recorded,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let finish = match outcome {
        Recorded::Sent => Finish {
            state: EmailState::Sent.as_str(),
            due: now,
            error: None,
            set: [vec![("sent_at = {}", now.into())], without_body(kind, now)].concat(),
        },
        Recorded::Skipped(why) => Finish { state: EmailState::Skipped.as_str(), due: now, error: Some(why.clone()), set: vec![] },
        Recorded::Retry { error, at, unknown } => Finish {
            state: EmailState::Pending.as_str(),
            due: *at,
            error: Some(error.clone()),
            set: vec![("unknown_outcomes = unknown_outcomes + {}", i32::from(*unknown).into())],
        },
        Recorded::Failed { error, unknown } => Finish {
            state: EmailState::Failed.as_str(),
            due: now,
            error: Some(error.clone()),
            set: [vec![("unknown_outcomes = unknown_outcomes + {}", i32::from(*unknown).into())], without_body(kind, now)].concat(),
        },
    };
    QUEUE.finish(db, id, Some(token), finish, now).await
}

/// Puts a failed email back in the queue, due now. False if no failed email has that id.
pub async fn retry_failed(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    QUEUE.retry_dead(db, id, now).await
}

/// When the earliest email a claim could take is due, if any.
pub async fn next_due_at(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbErr> {
    QUEUE.next_due_at(db, now).await
}
