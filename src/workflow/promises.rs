//! The promise ledger: what the vendor promised the customer, followed after the first call.
//!
//! When a call is marked done, [`open_ledger`] turns each commitment of the deal's newest
//! proposal into a promise (inside the transaction that marks the call done): its text, the
//! requirements it answers (and so the customer's earliest `need_by`, and whether one is a
//! must-have), its date, and its owner (the commitment's `owner`, else the call's rep). Each
//! dated promise gets a `promise.remind` timer at the first of its reminder times
//! ([`super::timing::promise_reminder_times`]); each reminder plans the next.
//!
//! [`mark`] is the one place a promise's state changes (delivered, slipped to a new date,
//! dropped), together with its audit entry and its timers: a promise delivered or dropped has no
//! timer left, one slipped is planned again for its new date. A reminder already in the outbox
//! for a promise closed meanwhile is not sent (the mailer reads the promise's state).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;

use super::FirstCall;
use crate::audit::{self, Change};
use crate::domain::EmailAddress;
use crate::engine::{self, ClaimedJob, Effects, Handler, JobKind, NewJob, StepError};
use crate::proposals::model::Priority;
use entity::calls;
pub use entity::promises::{Model as Promise, PromiseState};

/// The longest reason for a slip or a drop.
pub const REASON_MAX_CHARS: usize = 1000;

/// Turns the commitments of the deal's newest proposal into promises of `call` (just marked
/// done, inside its transaction) and plans their first reminders. A call whose deal already has
/// promises from this call adds none (marking done twice changes nothing).
pub async fn open_ledger(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    now: DateTime<Utc>,
) -> Result<Vec<Promise>, DbErr> {
    use entity::promises;
    if promises::Entity::find().filter(promises::Column::CallId.eq(call.id)).one(db).await?.is_some() {
        return Ok(vec![]);
    }
    let Some(stored) = crate::proposals::store::latest(db, &call.source, &call.deal_id).await? else {
        return Ok(vec![]);
    };
    let proposal = stored.proposal;
    let mut made = Vec::with_capacity(proposal.commitments.len());
    for (i, c) in proposal.commitments.iter().enumerate() {
        let answered: Vec<_> = proposal.requirements.iter().filter(|r| c.covers.contains(&r.id)).collect();
        let am = promises::ActiveModel {
            call_id: Set(call.id),
            source: Set(call.source.clone()),
            deal_id: Set(call.deal_id.clone()),
            position: Set(i as i32),
            commitment_id: Set(Some(c.id.clone())),
            text: Set(c.text.clone()),
            covers: Set(json!(c.covers)),
            need_by: Set(answered.iter().filter_map(|r| r.need_by).min()),
            must_have: Set(answered.iter().any(|r| r.priority == Priority::Must)),
            owner_email: Set(c.owner.as_ref().map_or_else(|| call.rep_email.clone(), |o| o.to_string())),
            deliver_by: Set(c.deliver_by),
            agreed_deliver_by: Set(c.deliver_by),
            state: Set(PromiseState::Open),
            reason: Set(None),
            reminders_sent: Set(0),
            escalation_level: Set(0),
            escalated_steps: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            closed_at: Set(None),
            ..Default::default()
        };
        made.push(am.insert(db).await?);
    }
    audit::record_many(
        db,
        made.iter().map(|p| Change {
            actor: "engine",
            entity: "promise",
            entity_id: p.id,
            action: "promised",
            from_state: None,
            to_state: Some(p.state.as_str()),
            detail: Some(json!({"call": call.id, "owner": p.owner_email, "deliver_by": p.deliver_by, "proposal_version": stored.version})),
        }),
        now,
    )
    .await?;
    let mut jobs = Vec::new();
    for p in &made {
        if let Some(at) = next_reminder(db, fc, call, p, now).await? {
            jobs.push(NewJob::new(JobKind::PromiseRemind, p.id, at));
        }
    }
    engine::enqueue_many(db, jobs, fc.max_attempts(), now).await?;
    Ok(made)
}

/// The first reminder of `promise` after `after`: its reminder times are counted on the call's
/// schedule's working days, at the start of the owner's business day in the owner's timezone.
async fn next_reminder(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: &Promise,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let Some(deliver_by) = promise.deliver_by else {
        return Ok(None);
    };
    let schedule = super::replan::schedule_of(db, &fc.config, call).await?;
    let tz = owner_of(db, fc, promise).await?.timezone;
    let times = super::timing::promise_reminder_times(
        deliver_by,
        &fc.config.settings.promises.remind_business_days_before,
        &schedule.business_hours,
        tz.0,
    );
    Ok(times.into_iter().find(|t| *t > after))
}

/// The promise's owner as the rep directory knows them.
pub async fn owner_of(db: &impl ConnectionTrait, fc: &FirstCall, promise: &Promise) -> Result<crate::reps::Recipient, DbErr> {
    let defaults = &fc.config.settings.defaults;
    let email = EmailAddress::parse(&promise.owner_email).unwrap_or_else(|_| defaults.unassigned_email.clone());
    crate::reps::recipient(db, &email, defaults.timezone).await
}

/// A change of a promise's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Delivered,
    /// Moved to a new date, with the reason.
    Slip {
        to: NaiveDate,
        reason: String,
    },
    Drop {
        reason: String,
    },
}

impl Mark {
    fn state(&self) -> PromiseState {
        match self {
            Mark::Delivered => PromiseState::Delivered,
            Mark::Slip { .. } => PromiseState::Slipped,
            Mark::Drop { .. } => PromiseState::Dropped,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Mark::Delivered => "delivered",
            Mark::Slip { .. } => "slipped",
            Mark::Drop { .. } => "dropped",
        }
    }
}

/// Why a promise could not be marked.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("no promise has id {0}")]
    NotFound(i64),
    /// Delivered or dropped already; only the same mark again is accepted (and changes nothing).
    #[error("promise {id} is {state} already; a {state} promise cannot be marked {wanted}")]
    Closed { id: i64, state: &'static str, wanted: &'static str },
    /// A slip to a date that is not later than the promise's current one.
    #[error("promise {id} is due {current}; a slip moves it to a later date, and {to} is not later")]
    NotLater { id: i64, current: NaiveDate, to: NaiveDate },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Marks a promise delivered, slipped or dropped, with its audit entry, in one transaction: its
/// pending reminder is dropped, and a slipped promise is planned again for its new date.
/// Marking a promise delivered (or dropped) again changes nothing and returns it as it is
/// (`false`).
pub async fn mark(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    id: i64,
    mark: Mark,
    actor: &str,
) -> Result<(Promise, bool), MarkError> {
    use entity::promises;
    let txn = crate::db::begin_write(db).await?;
    let promise = promises::Entity::find_by_id(id).lock_exclusive().one(&txn).await?.ok_or(MarkError::NotFound(id))?;
    let to = mark.state();
    if !promise.state.is_open() {
        if promise.state == to {
            return Ok((promise, false));
        }
        return Err(MarkError::Closed { id, state: promise.state.as_str(), wanted: to.as_str() });
    }
    if let (Mark::Slip { to: new, .. }, Some(current)) = (&mark, promise.deliver_by)
        && *new <= current
    {
        return Err(MarkError::NotLater { id, current, to: *new });
    }
    let from = promise.state;
    let mut detail = json!({"deliver_by": promise.deliver_by});
    let mut am = promise.into_active_model();
    am.state = Set(to);
    am.updated_at = Set(now);
    match &mark {
        Mark::Delivered => am.closed_at = Set(Some(now)),
        Mark::Slip { to: new, reason } => {
            detail["to_deliver_by"] = json!(new);
            detail["reason"] = json!(reason);
            am.deliver_by = Set(Some(*new));
            am.reason = Set(Some(reason.clone()));
            // The reminders of the new date are counted afresh.
            am.reminders_sent = Set(0);
        }
        Mark::Drop { reason } => {
            detail["reason"] = json!(reason);
            am.reason = Set(Some(reason.clone()));
            am.closed_at = Set(Some(now));
        }
    }
    let promise = am.update(&txn).await?;
    audit::record(
        &txn,
        Change {
            actor,
            entity: "promise",
            entity_id: id,
            action: mark.action(),
            from_state: Some(from.as_str()),
            to_state: Some(to.as_str()),
            detail: Some(detail),
        },
        now,
    )
    .await?;
    engine::cancel_pending(&txn, id, &[JobKind::PromiseRemind]).await?;
    if promise.state.is_open() {
        let call = calls::Entity::find_by_id(promise.call_id)
            .one(&txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("call {} of promise {}", promise.call_id, promise.id)))?;
        if let Some(at) = next_reminder(&txn, fc, &call, &promise, now).await? {
            engine::enqueue(&txn, NewJob::new(JobKind::PromiseRemind, id, at), fc.max_attempts(), now).await?;
        }
    }
    txn.commit().await?;
    Ok((promise, true))
}

/// The promises of a call, in ledger order.
pub async fn of_call(db: &impl ConnectionTrait, call_id: i64) -> Result<Vec<Promise>, DbErr> {
    use entity::promises;
    promises::Entity::find()
        .filter(promises::Column::CallId.eq(call_id))
        .order_by_asc(promises::Column::Position)
        .order_by_asc(promises::Column::Id)
        .all(db)
        .await
}

/// A page of promises in the given states (of one owner, if given), in id order after `after`,
/// and whether more follow.
pub async fn page(
    db: &impl ConnectionTrait,
    states: &[PromiseState],
    owner: Option<&EmailAddress>,
    after: Option<i64>,
    limit: u64,
) -> Result<(Vec<Promise>, bool), DbErr> {
    use entity::promises;
    let mut q = promises::Entity::find().filter(promises::Column::State.is_in(states.iter().copied()));
    if let Some(owner) = owner {
        q = q.filter(promises::Column::OwnerEmail.eq(owner.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(promises::Column::Id.gt(after));
    }
    let mut rows = q.order_by_asc(promises::Column::Id).limit(limit + 1).all(db).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// The engine's handler for the ledger's job kinds.
pub struct Steps(pub Arc<super::Live>);

impl Steps {
    /// The job kinds of the promise ledger.
    pub const JOB_KINDS: [JobKind; 1] = [JobKind::PromiseRemind];
}

impl Handler for Steps {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(async move { run(txn, &self.0.get(), job, now).await })
    }
}

pub async fn run(db: &impl ConnectionTrait, fc: &FirstCall, job: &ClaimedJob, now: DateTime<Utc>) -> Result<Effects, StepError> {
    let Some(id) = job.subject_id else {
        return Err(StepError::Failed(format!("job kind {} needs a promise", job.kind)));
    };
    let Some(promise) = entity::promises::Entity::find_by_id(id).lock_exclusive().one(db).await? else {
        return Ok(Effects::default());
    };
    match job.kind() {
        Some(JobKind::PromiseRemind) => remind(db, fc, promise, now).await,
        _ => Err(StepError::Failed(format!("the promise ledger has no step for job kind '{}'", job.kind))),
    }
}

/// Reminds the owner of an open promise, and plans its next reminder.
async fn remind(db: &impl ConnectionTrait, fc: &FirstCall, promise: Promise, now: DateTime<Utc>) -> Result<Effects, StepError> {
    let mut fx = Effects::default();
    if !promise.state.is_open() {
        return Ok(fx);
    }
    let call = calls::Entity::find_by_id(promise.call_id)
        .one(db)
        .await?
        .ok_or_else(|| StepError::Failed(format!("call {} of promise {} is gone", promise.call_id, promise.id)))?;
    let n = promise.reminders_sent + 1;
    let email = super::compose::promise_reminder(db, fc, &call, &promise, n, now).await?;
    if crate::mail::outbox::enqueue(db, email, now).await? {
        fx.emails += 1;
    }
    let id = promise.id;
    let mut am = promise.into_active_model();
    am.reminders_sent = Set(n);
    am.updated_at = Set(now);
    let promise = am.update(db).await?;
    audit::record(
        db,
        Change {
            actor: "engine",
            entity: "promise",
            entity_id: id,
            action: "reminded",
            from_state: None,
            to_state: None,
            detail: Some(json!({"reminder": n, "deliver_by": promise.deliver_by, "config_version": fc.config_version})),
        },
        now,
    )
    .await?;
    if let Some(at) = next_reminder(db, fc, &call, &promise, now).await? {
        engine::enqueue(db, NewJob::new(JobKind::PromiseRemind, id, at), fc.max_attempts(), now).await?;
    }
    Ok(fx)
}
