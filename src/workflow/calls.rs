//! Changes to calls, made inside the caller's transaction together with the audit row and the
//! timers they need. The call row is locked first (PostgreSQL `FOR UPDATE`; SQLite has a single
//! writer), so a change and a step for the same call never interleave.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;

use super::{CallOutcome, CallState, FirstCall};
use crate::audit::{self, Change};
use crate::domain::Money;
use crate::engine::{self, JobKind, NewJob};
use entity::{calls, orders};

/// Moves a call to `to`, writing the row and its audit entry together (inside the caller's
/// transaction): the one place a call's state is written. `action` names the change in the
/// audit trail; `change` sets the columns that go with it.
#[allow(clippy::too_many_arguments)]
pub async fn transition(
    db: &impl ConnectionTrait,
    call: calls::Model,
    to: CallState,
    action: &str,
    actor: &str,
    detail: Option<serde_json::Value>,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut calls::ActiveModel),
) -> Result<calls::Model, DbErr> {
    let from = call.state;
    let id = call.id;
    let mut am = call.into_active_model();
    am.state = Set(to);
    change(&mut am);
    am.updated_at = Set(now);
    let call = am.update(db).await?;
    audit::record(
        db,
        Change { actor, entity: "call", entity_id: id, action, from_state: Some(from.as_str()), to_state: Some(to.as_str()), detail },
        now,
    )
    .await?;
    Ok(call)
}

pub async fn lock(db: &impl ConnectionTrait, id: i64) -> Result<Option<calls::Model>, DbErr> {
    calls::Entity::find_by_id(id).lock_exclusive().one(db).await
}

/// The open call of an order, locked.
pub async fn open_call_of_order(db: &impl ConnectionTrait, order_id: i64) -> Result<Option<calls::Model>, DbErr> {
    calls::Entity::find()
        .filter(calls::Column::OrderId.eq(order_id))
        .filter(calls::Column::State.is_in(CallState::OPEN))
        .order_by_desc(calls::Column::Id)
        .lock_exclusive()
        .one(db)
        .await
}

pub fn order_amount(order: &orders::Model) -> Option<Money> {
    let currency = crate::domain::Currency::parse(order.currency.as_deref()?).ok()?;
    Some(Money { minor: order.amount_minor?, currency })
}

/// Cancels the open call of a cancelled order. Pending timers are dropped; when the rep already
/// has the invite, a step sends the calendar cancellation.
pub async fn cancel_for_order(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    order: &orders::Model,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let Some(call) = open_call_of_order(db, order.id).await? else {
        return Ok(None);
    };
    Ok(Some(cancel(db, fc, call, actor, None, now).await?.id))
}

/// Who cancelled a call by hand, and why, as the rep's cancellation email says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByHand {
    /// `sales ops (dashboard)`.
    pub by: String,
    pub reason: String,
}

/// Cancels an open call (locked by the caller), with its audit entry (and, by hand, who and why): pending
/// timers are dropped; when the rep already has the invite, a step sends the calendar
/// cancellation; with a CRM connector, the deal hears of it.
pub async fn cancel(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: calls::Model,
    actor: &str,
    by_hand: Option<ByHand>,
    now: DateTime<Utc>,
) -> Result<calls::Model, DbErr> {
    let was = call.state;
    let id = call.id;
    let payload = by_hand.map(|b| json!({"by": b.by, "reason": b.reason}));
    let call =
        transition(db, call, CallState::Cancelled, "cancelled", actor, payload.clone(), now, |am| am.cancelled_at = Set(Some(now))).await?;
    engine::cancel_pending(db, id, &FirstCall::timer_kinds()).await?;
    if let Some(job) = super::write_back::job(fc, &call, "cancelled", now) {
        engine::enqueue(db, job, fc.crm_attempts(), now).await?;
    }
    if was != CallState::Scheduled {
        let job = NewJob::new(JobKind::CallCancelled, id, now);
        let job = match payload {
            Some(p) => job.with_payload(p),
            None => job,
        };
        engine::enqueue(db, job, fc.max_attempts(), now).await?;
    }
    Ok(call)
}

/// Re-plans the open call after the order changed: a different rep moves the call (and its
/// invite and reminders) to them, or to sales ops when firstcall may not email them; a different
/// schedule or due time reschedules it.
pub async fn replan_for_order(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    order: &orders::Model,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let Some(call) = open_call_of_order(db, order.id).await? else {
        return Ok(None);
    };
    let plan = super::opening::plan_many(db, fc, &[order], now).await?.remove(0);
    let (mut rep, schedule_name, mut fallback_reason) = (plan.rep, plan.schedule, plan.fallback_reason);
    // A rep sales ops picked by hand stands.
    if call.rep_by_hand.is_some()
        && let Ok(picked) = crate::domain::EmailAddress::parse(&call.rep_email)
    {
        (rep, fallback_reason) = (picked, None);
    }
    // A due time the rep moved (booked with the customer, snoozed), or set when sales ops handed
    // the call over, stands.
    let stands = call.first_due_at.is_some() || call.rep_by_hand.is_some();
    let due_at = if stands { call.due_at } else { plan.due_at };
    let covered_by = if stands { call.covered_by.clone() } else { plan.covered_by.map(|d| d.to_string()) };
    let reassigned = rep.as_str() != call.rep_email;
    let rescheduled = due_at != call.due_at || schedule_name != call.schedule_name;
    // Still with sales ops, for another refused address: only the reason changes.
    let rerouted = fallback_reason != call.fallback_reason;
    if !reassigned && !rescheduled && !rerouted {
        return Ok(None);
    }
    let id = call.id;
    let old_rep = call.rep_email.clone();
    let old_due = call.due_at;
    let invite_sent = call.state != CallState::Scheduled;
    // An overdue call moved to a later due time is due again.
    let to = if call.state == CallState::Overdue && due_at > now { CallState::Due } else { call.state };
    let mut detail =
        json!({"from_rep": old_rep, "to_rep": rep.as_str(), "from_due_at": old_due, "due_at": due_at, "schedule": schedule_name});
    if let Some(reason) = &fallback_reason {
        detail["fallback_reason"] = json!(reason);
    }
    let action = if reassigned {
        "reassigned"
    } else if rescheduled {
        "rescheduled"
    } else {
        "rerouted"
    };
    transition(db, call, to, action, actor, Some(detail), now, |am| {
        am.rep_email = Set(rep.to_string());
        am.schedule_name = Set(schedule_name.clone());
        am.due_at = Set(due_at);
        am.fallback_reason = Set(fallback_reason.clone());
        am.covered_by = Set(covered_by.clone());
        if invite_sent && (reassigned || rescheduled) {
            am.invite_sequence = Set(am.invite_sequence.as_ref() + 1);
        }
    })
    .await?;
    if invite_sent && (reassigned || rescheduled) {
        // Timers were planned for the old rep or due time; the step plans them again.
        engine::cancel_pending(db, id, &[JobKind::CallRemind, JobKind::CallOverdue, JobKind::CallEscalate]).await?;
        let payload = json!({"reassigned_from": if reassigned { Some(old_rep) } else { None }, "rescheduled": rescheduled});
        engine::enqueue(db, NewJob::new(JobKind::CallUpdated, id, now).with_payload(payload), fc.max_attempts(), now).await?;
    }
    Ok(Some(id))
}

/// What the rep says when marking a call done: how it went, notes for the team, and what was
/// agreed on it (dates moved, promises added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub outcome: CallOutcome,
    pub notes: Option<String>,
    pub agreed: super::promises::Agreed,
}

/// Why a call could not be marked done.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    #[error("no call has id {0}")]
    NotFound(i64),
    #[error("call {0} was cancelled (the order was cancelled); it cannot be marked done")]
    Cancelled(i64),
    /// What was agreed on the call does not fit the deal (a date for a commitment it lacks).
    #[error(transparent)]
    Agreed(#[from] super::promises::AgreedError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Marks a call done with the rep's outcome. Marking it done again changes nothing and returns
/// the call as it is. Every reminder or escalation still pending is dropped; a step already
/// running re-checks the state under the same row lock and sends nothing.
pub async fn complete(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    id: i64,
    completion: Completion,
    actor: &str,
) -> Result<(calls::Model, bool), CompleteError> {
    let Completion { outcome, notes, agreed } = completion;
    let txn = crate::db::begin_write(db).await?;
    let call = lock(&txn, id).await?.ok_or(CompleteError::NotFound(id))?;
    match call.state {
        CallState::Done => return Ok((call, false)),
        CallState::Cancelled => return Err(CompleteError::Cancelled(id)),
        _ => {}
    }
    let notes = notes.filter(|n| !n.trim().is_empty());
    let detail = json!({"outcome": outcome.as_str()});
    let call = transition(&txn, call, CallState::Done, "completed", actor, Some(detail), now, |am| {
        am.outcome = Set(Some(outcome));
        am.notes = Set(notes);
        am.completed_at = Set(Some(now));
        am.completed_by = Set(Some(actor.to_string()));
    })
    .await?;
    engine::cancel_pending(&txn, id, &FirstCall::timer_kinds()).await?;
    // What was promised to the customer is followed from now on.
    super::promises::open_ledger(&txn, fc, &call, &agreed, actor, now).await??;
    // A call marked at risk: the rep's manager hears of it at once.
    if outcome == CallOutcome::AtRisk {
        let alert = super::promises::Alert {
            key: "at_risk".into(),
            headline: "The first call with {account} was marked at risk".into(),
            changes: vec![format!("Rep: {}", call.rep_email), format!("Notes: {}", call.notes.as_deref().unwrap_or("none given"))],
        };
        let email = super::compose::manager_alert(&txn, fc, &call, None, alert, actor, now)
            .await
            .map_err(|e| DbErr::Custom(format!("the alert to the manager: {e}")))?;
        crate::mail::outbox::enqueue(&txn, email, now).await?;
    }
    // With a CRM connector, the outcome is recorded on the deal (the engine's job: marking done
    // never waits for the CRM).
    if let Some(job) = super::write_back::job(fc, &call, "done", now) {
        engine::enqueue(&txn, job, fc.crm_attempts(), now).await?;
    }
    // Done, its outcome, the removal of its timers, the promises and the write-back commit
    // together.
    txn.commit().await?;
    Ok((call, true))
}
