//! The rep steers their own call: books it with the customer ("Thursday 14:00 with Larry") or
//! snoozes its reminders until a time, with a reason. Reminders pause until then; the due time,
//! and with it the overdue flip and the escalation clock, follow a booking (and a snooze past the
//! due time). The invite moves with the due time (same UID, higher SEQUENCE). Moving the due time
//! more than `controls.move_business_days` business days past the one the call had first is
//! allowed, and the rep's manager is told at once. Sales ops hand a call to another rep, or cancel
//! it, by hand. Each change is audited with who and why.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr};
use serde_json::json;

use super::{CallState, FirstCall, calls, recipients, replan, timing};
use crate::domain::EmailAddress;
use crate::engine::{self, JobKind, NewJob};
use crate::mail::templates::local_time;
use entity::calls as call_entity;

/// What the rep asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steer {
    /// The call is booked with the customer at `at` (the invite starts then), with `with`.
    Book { at: DateTime<Utc>, with: Option<String>, reason: String },
    /// No reminder before `until`.
    Snooze { until: DateTime<Utc>, reason: String },
}

impl Steer {
    /// The field that holds the time, and the time.
    fn time(&self) -> (&'static str, DateTime<Utc>) {
        match self {
            Steer::Book { at, .. } => ("at", *at),
            Steer::Snooze { until, .. } => ("until", *until),
        }
    }

    fn reason(&self) -> &str {
        match self {
            Steer::Book { reason, .. } | Steer::Snooze { reason, .. } => reason,
        }
    }
}

/// Why a call could not be booked or snoozed.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("no call has id {0}")]
    NotFound(i64),
    #[error("call {id} is {state}; only an open call can be booked or snoozed")]
    Closed { id: i64, state: &'static str },
    /// The time is not ahead, or too far ahead (`field`, why).
    #[error("{field}: {reason}")]
    Time { field: &'static str, reason: String },
    /// The rep a call was to be handed to may not be emailed.
    #[error("rep: {0}")]
    Rep(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Books the call or snoozes its reminders, in one transaction with its audit entry, its
/// timers, the updated invite (when the due time moved) and the manager's alert (when it moved
/// past the limit), and returns the call as changed. Only an open call can be steered.
pub async fn steer(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    id: i64,
    steer: Steer,
    actor: &str,
) -> Result<call_entity::Model, SteerError> {
    let controls = &fc.config.settings.controls;
    let (field, at) = steer.time();
    if at <= now {
        return Err(SteerError::Time { field, reason: "must be later than now".into() });
    }
    if at > now + TimeDelta::days(controls.max_days_ahead.into()) {
        let reason = format!("is more than {} days ahead (controls.max_days_ahead)", controls.max_days_ahead);
        return Err(SteerError::Time { field, reason });
    }
    let txn = crate::db::begin_write(db).await?;
    let call = calls::lock(&txn, id).await?.ok_or(SteerError::NotFound(id))?;
    if !call.state.is_open() {
        return Err(SteerError::Closed { id, state: call.state.as_str() });
    }
    let schedule = replan::schedule_of(&txn, &fc.config, &call).await?;
    let tz = replan::rep_tz(&txn, &fc.config, &call).await?;
    // A booking's due time is the end of the call it booked (the invite starts at the booked
    // time); a snooze past the due time carries the due time along.
    let minutes = TimeDelta::minutes(fc.config.settings.defaults.call_minutes.into());
    let due_at = match &steer {
        Steer::Book { at, .. } => *at + minutes,
        Steer::Snooze { until, .. } => call.due_at.max(*until),
    };
    let first_due = call.first_due_at.unwrap_or(call.due_at);
    let moved_days = timing::business_days_later(&schedule.business_hours, tz.0, first_due, due_at);
    let moved = due_at != call.due_at;
    // The manager hears when a change moves the due time past the limit (a snooze that leaves it
    // where an earlier move put it says nothing new).
    let past_limit = (moved && moved_days > controls.move_business_days).then_some(moved_days);
    let invite_sent = call.state != CallState::Scheduled;
    // An overdue call moved to a later due time is due again.
    let to = if call.state == CallState::Overdue && due_at > now { CallState::Due } else { call.state };
    let mut detail = json!({
        "from_due_at": call.due_at, "due_at": due_at, "reason": steer.reason(),
        "moved_business_days": moved_days, "limit_business_days": controls.move_business_days,
    });
    let action = match &steer {
        Steer::Book { at, with, .. } => {
            detail["booked_at"] = json!(at);
            detail["with"] = json!(with);
            "booked"
        }
        Steer::Snooze { until, .. } => {
            detail["snoozed_until"] = json!(until);
            "snoozed"
        }
    };
    let call = calls::transition(&txn, call, to, action, actor, Some(detail), now, |am| {
        am.due_at = Set(due_at);
        am.first_due_at = Set(Some(first_due));
        am.snoozed_until = Set(Some(at));
        if let Steer::Book { at, with, .. } = &steer {
            am.booked_at = Set(Some(*at));
            am.booked_with = Set(with.clone());
        }
        if moved && invite_sent {
            am.invite_sequence = Set(am.invite_sequence.as_ref() + 1);
        }
    })
    .await?;
    if invite_sent {
        if moved {
            // The updated invite and recap go to the rep; its step plans the timers again.
            engine::cancel_pending(&txn, id, &[JobKind::CallRemind, JobKind::CallOverdue, JobKind::CallEscalate]).await?;
            let payload = json!({"rescheduled": true});
            engine::enqueue(&txn, NewJob::new(JobKind::CallUpdated, id, now).with_payload(payload), fc.max_attempts(), now).await?;
        } else {
            // The due time stands: only the next reminder moves past the snooze.
            engine::cancel_pending(&txn, id, &[JobKind::CallRemind]).await?;
            if let Some(next) = replan::next_reminder(&call, schedule, tz, now) {
                engine::enqueue(&txn, NewJob::new(JobKind::CallRemind, id, next), fc.max_attempts(), now).await?;
            }
        }
    }
    if let Some(days) = past_limit {
        let headline = match &steer {
            Steer::Book { .. } => "The first call with {account} was booked past its limit",
            Steer::Snooze { .. } => "The first call with {account} was snoozed past its limit",
        };
        let mut changes = vec![
            format!("Rep: {}", call.rep_email),
            format!(
                "Due: {}, {days} business days after {} (the limit is {})",
                local_time(due_at, tz.0),
                local_time(first_due, tz.0),
                controls.move_business_days
            ),
        ];
        if let Steer::Book { at, with, .. } = &steer {
            let with = with.as_deref().map(|w| format!(" with {w}")).unwrap_or_default();
            changes.push(format!("Booked for {}{with}", local_time(*at, tz.0)));
        }
        changes.push(format!("Reason: {}", steer.reason()));
        let alert = super::promises::Alert { key: format!("moved.{}", due_at.timestamp()), headline: headline.into(), changes };
        let email = super::compose::manager_alert(&txn, fc, &call, None, alert, actor, now)
            .await
            .map_err(|e| DbErr::Custom(format!("the alert to the manager: {e}")))?;
        crate::mail::outbox::enqueue(&txn, email, now).await?;
    }
    txn.commit().await?;
    Ok(call)
}

/// Hands an open call to `to` by hand, with a reason: the new rep gets the recap and the invite
/// (the same event, a higher SEQUENCE) at once, the old one a cancellation of theirs, and the
/// call starts afresh for the new rep: due under its schedule in their timezone from now, no
/// reminders or escalations counted, no booking or snooze. The rep picked stands when the order
/// is updated. Handing it to its own rep changes nothing. Returns the call and whether it changed.
pub async fn reassign(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    id: i64,
    to: EmailAddress,
    reason: String,
    actor: &str,
) -> Result<(call_entity::Model, bool), SteerError> {
    let txn = crate::db::begin_write(db).await?;
    let call = calls::lock(&txn, id).await?.ok_or(SteerError::NotFound(id))?;
    if !call.state.is_open() {
        return Err(SteerError::Closed { id, state: call.state.as_str() });
    }
    if call.rep_email == to.as_str() {
        return Ok((call, false));
    }
    let who = crate::reps::recipient(&txn, &to, fc.config.settings.defaults.timezone).await?;
    if !recipients::may_email(&fc.config, &who) {
        return Err(SteerError::Rep(format!(
            "{to} is not in the rep directory nor in mail.allowed_recipient_domains: add them to the directory first"
        )));
    }
    // A rep out of office now: the call is due on the clock of who covers for them.
    let cover = crate::reps::absences::cover(&txn, &who, now, fc.config.settings.defaults.timezone)
        .await?
        .map(|c| c.delegate)
        .filter(|d| recipients::may_email(&fc.config, d));
    let schedule = replan::schedule_of(&txn, &fc.config, &call).await?;
    let due_at = timing::first_call_due_at(schedule, cover.as_ref().unwrap_or(&who).timezone.0, now);
    let (old, old_due) = (call.rep_email.clone(), call.due_at);
    let invite_sent = call.state != CallState::Scheduled;
    let to_state = if call.state == CallState::Overdue && due_at > now { CallState::Due } else { call.state };
    let detail =
        json!({"from_rep": old, "to_rep": to.as_str(), "reason": reason, "by_hand": true, "from_due_at": old_due, "due_at": due_at});
    let call = calls::transition(&txn, call, to_state, "reassigned", actor, Some(detail), now, |am| {
        am.rep_email = Set(to.to_string());
        am.rep_by_hand = Set(Some(actor.to_string()));
        am.fallback_reason = Set(None);
        am.due_at = Set(due_at);
        am.reminders_sent = Set(0);
        am.last_reminder_at = Set(None);
        am.escalation_level = Set(0);
        am.escalated_steps = Set(None);
        am.booked_at = Set(None);
        am.booked_with = Set(None);
        am.snoozed_until = Set(None);
        am.first_due_at = Set(None);
        am.covered_by = Set(cover.as_ref().map(|d| d.email.to_string()));
        if invite_sent {
            am.invite_sequence = Set(am.invite_sequence.as_ref() + 1);
        }
    })
    .await?;
    if invite_sent {
        engine::cancel_pending(&txn, id, &[JobKind::CallRemind, JobKind::CallOverdue, JobKind::CallEscalate]).await?;
        let payload = json!({"reassigned_from": old, "rescheduled": true});
        engine::enqueue(&txn, NewJob::new(JobKind::CallUpdated, id, now).with_payload(payload), fc.max_attempts(), now).await?;
    }
    txn.commit().await?;
    Ok((call, true))
}

/// Cancels an open call by hand, with a reason: its rep gets the calendar cancellation saying
/// who cancelled it and why, and nothing more is sent. Cancelling it again changes nothing; a
/// call marked done cannot be cancelled. Returns the call and whether it changed.
pub async fn cancel(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    id: i64,
    reason: String,
    actor: &str,
    by: &str,
) -> Result<(call_entity::Model, bool), SteerError> {
    let txn = crate::db::begin_write(db).await?;
    let call = calls::lock(&txn, id).await?.ok_or(SteerError::NotFound(id))?;
    match call.state {
        CallState::Cancelled => return Ok((call, false)),
        CallState::Done => return Err(SteerError::Closed { id, state: call.state.as_str() }),
        _ => {}
    }
    let call = calls::cancel(&txn, fc, call, actor, Some(calls::ByHand { by: by.to_string(), reason }), now).await?;
    txn.commit().await?;
    Ok((call, true))
}
