//! The outbox: every email is a row written in the same transaction as the state change that
//! causes it. The mailer claims due rows under a lease, sends them, and records the outcome;
//! a crash between sending and recording leads to a resend with the same `Message-ID`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult};

use super::message::OutgoingEmail;
use crate::engine::queue::stmt;

/// What kind of email a row is; reminders and escalations are not sent for a call that is no
/// longer open by the time the mailer gets to them.
pub mod kinds {
    pub const FIRST_CALL: &str = "first_call";
    pub const REMINDER: &str = "reminder";
    pub const ESCALATION: &str = "escalation";
    pub const CANCELLATION: &str = "cancellation";
    pub const REASSIGNED: &str = "reassigned";
}

/// A composed email ready for the outbox: the message, and the call and kind it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmail {
    pub call_id: Option<i64>,
    pub kind: &'static str,
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
        kind: Set(new.kind.to_string()),
        to_addr: Set(e.to_addr),
        to_name: Set(e.to_name),
        subject: Set(e.subject),
        body_text: Set(e.body_text),
        body_html: Set(e.body_html),
        ics: Set(e.ics),
        ics_method: Set(e.ics_method),
        state: Set("pending".into()),
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
    pub kind: String,
    pub attempts: i32,
    pub lease_token: String,
    pub call_state: Option<String>,
    /// What is sent: the outbox row's message columns.
    #[sea_orm(nested)]
    pub email: OutgoingEmail,
}

/// Claims up to `limit` due emails until `now + lease`. An email still carrying an earlier
/// lease was claimed by a mailer that stopped before recording what happened (killed, or cut off
/// from the database mid-send): that attempt may have been delivered, so it counts as an unknown
/// outcome, and the resend as a possible duplicate.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    owner: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
    limit: u32,
) -> Result<Vec<ClaimedEmail>, DbErr> {
    let backend = db.get_database_backend();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let until = crate::clock::truncate(now + lease);
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE emails SET lease_owner = $1, lease_token = $2, lease_until = $3, attempts = attempts + 1, updated_at = $4, \
         unknown_outcomes = unknown_outcomes + CASE WHEN lease_token IS NULL THEN 0 ELSE 1 END \
         WHERE id IN (SELECT id FROM emails WHERE state = 'pending' AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4) \
         ORDER BY next_attempt_at, id LIMIT $5 {lock}) \
         RETURNING id"
    );
    #[derive(FromQueryResult)]
    struct Id {
        id: i64,
    }
    let ids: Vec<i64> = Id::find_by_statement(stmt(
        backend,
        &sql,
        vec![owner.into(), token.clone().into(), until.into(), now.into(), (limit as i64).into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let list = ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT e.id, e.message_id, e.call_id, e.kind, e.to_addr, e.to_name, e.subject, e.body_text, e.body_html, e.ics, e.ics_method, \
         e.attempts, e.lease_token, c.state AS call_state FROM emails e LEFT JOIN calls c ON c.id = e.call_id WHERE e.id IN ({list}) AND e.lease_token = $1 ORDER BY e.id"
    );
    ClaimedEmail::find_by_statement(stmt(backend, &sql, vec![token.into()])).all(db).await
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
    Failed(String),
}

/// Records the outcome, if the lease is still ours. Returns false when another mailer took the
/// email over meanwhile (its outcome wins).
pub async fn record(db: &impl ConnectionTrait, id: i64, token: &str, outcome: &Recorded, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let (state, next, error, unknown, sent_at): (&str, DateTime<Utc>, Option<String>, i32, Option<DateTime<Utc>>) = match outcome {
        Recorded::Sent => ("sent", now, None, 0, Some(now)),
        Recorded::Skipped(why) => ("skipped", now, Some(why.clone()), 0, None),
        Recorded::Retry { error, at, unknown } => ("pending", *at, Some(error.clone()), i32::from(*unknown), None),
        Recorded::Failed(error) => ("failed", now, Some(error.clone()), 0, None),
    };
    let sql = "UPDATE emails SET state = $1, next_attempt_at = $2, last_error = $3, unknown_outcomes = unknown_outcomes + $4, sent_at = $5, \
               lease_owner = NULL, lease_token = NULL, lease_until = NULL, updated_at = $6 WHERE id = $7 AND lease_token = $8";
    let error = error.map(|e| e.chars().take(2000).collect::<String>());
    let values = vec![
        state.into(),
        crate::clock::truncate(next).into(),
        error.into(),
        unknown.into(),
        sent_at.into(),
        now.into(),
        id.into(),
        token.into(),
    ];
    Ok(db.execute_raw(stmt(backend, sql, values)).await?.rows_affected() == 1)
}

/// Puts a failed email back in the queue, due now. False if no failed email has that id.
pub async fn retry_failed(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = "UPDATE emails SET state = 'pending', next_attempt_at = $1, attempts = 0, updated_at = $1 WHERE id = $2 AND state = 'failed'";
    Ok(db.execute_raw(stmt(backend, sql, vec![now.into(), id.into()])).await?.rows_affected() == 1)
}

/// When the earliest pending email is due, if any.
pub async fn next_due_at(db: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        at: Option<DateTime<Utc>>,
    }
    let backend = db.get_database_backend();
    let sql = "SELECT MIN(next_attempt_at) AS at FROM emails WHERE state = 'pending'";
    Ok(Row::find_by_statement(stmt(backend, sql, vec![])).one(db).await?.and_then(|r| r.at))
}
