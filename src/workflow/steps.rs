//! The workflow's timer handlers. Each runs inside the engine's transaction for its job: it
//! locks the call, re-checks its state (a call marked done or cancelled meanwhile makes the
//! step a no-op), writes the emails it causes to the outbox, schedules its next timers, and
//! commits with the job's completion.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr, IntoActiveModel};
use serde_json::json;

use super::{CallState, FirstCall, calls, compose, timing};
use crate::audit::{self, Change};
use crate::config::schedule::Schedule;
use crate::domain::EmailAddress;
use crate::engine::{self, ClaimedJob, Effects as StepEffects, Handler, JobKind, NewJob, StepError};
use crate::mail::outbox;
use entity::calls as call_entity;

/// The engine's handler for every job kind of the workflow.
pub struct Steps(pub Arc<super::Live>);

impl Handler for Steps {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<StepEffects, StepError>> {
        Box::pin(async move { run(txn, &self.0.get(), job, now).await })
    }
}

pub async fn run(db: &impl ConnectionTrait, fc: &FirstCall, job: &ClaimedJob, now: DateTime<Utc>) -> Result<StepEffects, StepError> {
    let Some(call_id) = job.subject_id else {
        return Err(StepError::Failed(format!("job kind {} needs a call", job.kind)));
    };
    let Some(call) = calls::lock(db, call_id).await? else {
        // The call is gone (cannot happen through the API); nothing to do.
        return Ok(StepEffects::default());
    };
    let mut fx = StepEffects::default();
    match job.kind() {
        Some(JobKind::CallStart) => start(db, fc, call, now, &mut fx).await?,
        Some(JobKind::CallRemind) => remind(db, fc, call, job.run_at, now, &mut fx).await?,
        Some(JobKind::CallOverdue) => overdue(db, fc, call, now, &mut fx).await?,
        Some(JobKind::CallEscalate) => {
            if call.state.is_open() {
                let call = escalate_due_steps(db, fc, call, now, &mut fx).await?;
                plan_escalation_timer(db, fc, &call, now).await?;
            }
        }
        Some(JobKind::CallCancelled) => cancelled(db, fc, call, job.payload.as_ref(), now, &mut fx).await?,
        Some(JobKind::CallUpdated) => updated(db, fc, call, job.payload.as_ref(), now, &mut fx).await?,
        Some(JobKind::CallChanged) => super::changes::step(db, fc, call, job.id, now, &mut fx).await?,
        _ => return Err(StepError::Failed(format!("the first-call workflow has no step for job kind '{}'", job.kind))),
    }
    Ok(fx)
}

/// The schedule for an open call under the configuration in force.
async fn schedule_of<'a>(db: &impl ConnectionTrait, fc: &'a FirstCall, call: &call_entity::Model) -> Result<&'a Schedule, DbErr> {
    super::replan::schedule_of(db, &fc.config, call).await
}

async fn rep_tz(db: &impl ConnectionTrait, fc: &FirstCall, call: &call_entity::Model) -> Result<chrono_tz::Tz, DbErr> {
    Ok(super::replan::rep_tz(db, &fc.config, call).await?.0)
}

async fn add_email(db: &impl ConnectionTrait, e: outbox::NewEmail, now: DateTime<Utc>, fx: &mut StepEffects) -> Result<(), DbErr> {
    if outbox::enqueue(db, e, now).await? {
        fx.emails += 1;
    }
    Ok(())
}

async fn schedule_job(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    job: NewJob,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), DbErr> {
    if job.run_at <= now {
        fx.jobs_due_now += 1;
    }
    engine::enqueue(db, job, fc.max_attempts(), now).await.map(|_| ())
}

async fn set_state(
    db: &impl ConnectionTrait,
    call: call_entity::Model,
    to: CallState,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<call_entity::Model, DbErr> {
    calls::transition(db, call, to, "state", actor, None, now, |_| {}).await
}

/// First step: the recap and invite go to the rep; reminders, the overdue timer and
/// hour-based escalations are planned.
async fn start(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Scheduled {
        return Ok(());
    }
    let (email, recap) = compose::first_call(db, fc, &call, now).await?;
    add_email(db, email, now, fx).await?;
    let to = if call.due_at <= now { CallState::Overdue } else { CallState::Due };
    // The recap the rep now has: later changes are told against it.
    let sent = super::changes::as_json(&recap)?;
    let call = calls::transition(db, call, to, "state", "engine", None, now, move |am| am.recap_sent = Set(Some(sent))).await?;
    plan_timers(db, fc, call, now, fx).await?;
    Ok(())
}

/// Plans the next reminder, the overdue flip and the next hour-based escalation from the
/// current config.
async fn plan_timers(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    // A call already overdue when planned (a late order, a reschedule into the past) gets the
    // escalations it has reached now.
    let call = if call.state == CallState::Overdue { escalate_due_steps(db, fc, call, now, fx).await? } else { call };
    plan_next_reminder(db, fc, &call, now, fx).await?;
    if call.state == CallState::Due {
        schedule_job(db, fc, NewJob::new(JobKind::CallOverdue, call.id, call.due_at), now, fx).await?;
    }
    plan_escalation_timer(db, fc, &call, now).await?;
    Ok(())
}

async fn plan_next_reminder(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    let schedule = schedule_of(db, fc, call).await?;
    let tz = super::replan::rep_tz(db, &fc.config, call).await?;
    if let Some(at) = super::replan::next_reminder(call, schedule, tz, now) {
        schedule_job(db, fc, NewJob::new(JobKind::CallRemind, call.id, at), now, fx).await?;
    }
    Ok(())
}

/// Replaces the call's pending escalation timer with one at the next step of the schedule in
/// force ([`super::replan::next_escalation`]).
async fn plan_escalation_timer(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &call_entity::Model,
    now: DateTime<Utc>,
) -> Result<(), StepError> {
    engine::cancel_pending(db, call.id, &[JobKind::CallEscalate]).await?;
    let schedule = schedule_of(db, fc, call).await?;
    let next = super::replan::next_escalation(call, schedule, now);
    if let Some(at) = next {
        engine::enqueue(db, NewJob::new(JobKind::CallEscalate, call.id, at), fc.max_attempts(), now).await?;
    }
    Ok(())
}

/// How late a reminder tick may run and still be sent outside business hours (a tick planned
/// for 16:59 that runs at 17:00:01 is not late).
const LATE_TICK_GRACE_MINUTES: i64 = 5;

async fn remind(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if !call.state.is_open() {
        return Ok(());
    }
    if call.snoozed_until.is_some_and(|until| until > now) {
        // Snoozed by the rep: the next reminder after the snooze instead.
        plan_next_reminder(db, fc, &call, now, fx).await?;
        return Ok(());
    }
    let schedule = schedule_of(db, fc, &call).await?;
    // A tick that runs late (the engine was down) and now falls outside business hours sends
    // nothing: the next tick inside them is planned instead.
    let late = now - due > chrono::TimeDelta::minutes(LATE_TICK_GRACE_MINUTES);
    if late && !timing::in_business_hours(rep_tz(db, fc, &call).await?, &schedule.business_hours, now) {
        plan_next_reminder(db, fc, &call, now, fx).await?;
        return Ok(());
    }
    let mut call = call;
    if schedule.max_reminders == 0 || (call.reminders_sent as u32) < schedule.max_reminders {
        let n = call.reminders_sent + 1;
        let email = compose::reminder(db, fc, &call, n, now).await?;
        add_email(db, email, now, fx).await?;
        let id = call.id;
        let mut am = call.into_active_model();
        am.reminders_sent = Set(n);
        am.last_reminder_at = Set(Some(now));
        am.updated_at = Set(now);
        call = am.update(db).await?;
        audit::record(
            db,
            Change {
                actor: "engine",
                entity: "call",
                entity_id: id,
                action: "reminded",
                from_state: None,
                to_state: None,
                detail: Some(json!({"reminder": n, "config_version": fc.config_version})),
            },
            now,
        )
        .await?;
    }
    if call.state == CallState::Due && now >= call.due_at {
        call = set_state(db, call, CallState::Overdue, "engine", now).await?;
    }
    let call = escalate_due_steps(db, fc, call, now, fx).await?;
    plan_next_reminder(db, fc, &call, now, fx).await?;
    plan_escalation_timer(db, fc, &call, now).await?;
    Ok(())
}

async fn overdue(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Due {
        return Ok(());
    }
    if call.due_at > now {
        // Rescheduled later meanwhile: check again then.
        schedule_job(db, fc, NewJob::new(JobKind::CallOverdue, call.id, call.due_at), now, fx).await?;
        return Ok(());
    }
    let call = set_state(db, call, CallState::Overdue, "engine", now).await?;
    let call = escalate_due_steps(db, fc, call, now, fx).await?;
    plan_escalation_timer(db, fc, &call, now).await?;
    Ok(())
}

/// Sends every escalation step ahead of the call whose condition now holds, in order: a later
/// step reached first (say 48 hours overdue before the third reminder) also sends the steps
/// before it, so the manager hears before the manager's manager. Steps are known by name
/// ([`super::escalation`]): one sent before the schedule was edited is never sent again.
async fn escalate_due_steps(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<call_entity::Model, StepError> {
    let schedule = schedule_of(db, fc, &call).await?.clone();
    let mut sent = super::escalation::sent(&call, &schedule);
    let ahead = super::escalation::ahead(&schedule, &sent);
    let overdue_minutes = (now - call.due_at).num_minutes();
    let reached = ahead.iter().rposition(|s| {
        s.after_reminders.is_some_and(|n| call.reminders_sent as u32 >= n)
            || s.after_minutes_overdue.is_some_and(|m| now >= call.due_at && overdue_minutes >= m)
    });
    let Some(last) = reached else {
        return Ok(call);
    };
    let rep = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| fc.config.settings.defaults.unassigned_email.clone());
    let rep_info = crate::reps::recipient(db, &rep, fc.config.settings.defaults.timezone).await?;
    // The call's escalations are numbered in the order sent (their Message-IDs too), whatever
    // the steps' places in the schedule.
    let mut level = call.escalation_level.max(sent.len() as i32);
    for step in &ahead[..=last] {
        let (to, role, note) = super::escalation::recipient(db, fc, &rep, &rep_info, &step.to).await?;
        level += 1;
        let email = compose::escalation(db, fc, &call, &to, role, level, note.as_deref(), now).await?;
        add_email(db, email, now, fx).await?;
        audit::record(
            db,
            Change {
                actor: "engine",
                entity: "call",
                entity_id: call.id,
                action: "escalated",
                from_state: None,
                to_state: None,
                detail: Some(
                    json!({"level": level, "step": step.id, "to": to.as_str(), "role": role, "config_version": fc.config_version}),
                ),
            },
            now,
        )
        .await?;
        sent.push(step.id.clone());
    }
    let mut am = call.into_active_model();
    am.escalation_level = Set(level);
    am.escalated_steps = Set(Some(serde_json::to_string(&sent).map_err(|e| StepError::Failed(format!("escalated steps: {e}")))?));
    am.updated_at = Set(now);
    Ok(am.update(db).await?)
}

/// The calendar cancellation to the rep of a cancelled call; the payload of one cancelled by hand
/// says who did and why (`{"by": …, "reason": …}`).
async fn cancelled(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    payload: Option<&serde_json::Value>,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Cancelled {
        return Ok(());
    }
    let seq = call.invite_sequence + 1;
    let by_hand = payload.and_then(|p| Some((p.get("by")?.as_str()?, p.get("reason")?.as_str()?)));
    let cancel_reason = by_hand.map(|(by, reason)| format!("{by} cancelled it: {reason}"));
    let email = compose::cancellation(db, fc, &call, seq, cancel_reason, now).await?;
    add_email(db, email, now, fx).await?;
    let mut am = call.into_active_model();
    am.invite_sequence = Set(seq);
    am.update(db).await?;
    Ok(())
}

/// After a reassignment or reschedule: the old rep's invite is withdrawn, the current rep gets
/// the (updated) invite and recap, and timers are planned again in the current rep's timezone.
async fn updated(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    payload: Option<&serde_json::Value>,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if !call.state.is_open() {
        return Ok(());
    }
    let old_rep = payload.and_then(|p| p.get("reassigned_from")).and_then(|v| v.as_str()).filter(|old| *old != call.rep_email);
    if let Some(old) = old_rep
        && let Some(email) = compose::reassigned(db, fc, &call, old, now).await?
    {
        add_email(db, email, now, fx).await?;
    }
    let (email, recap) = compose::first_call(db, fc, &call, now).await?;
    add_email(db, email, now, fx).await?;
    let call = super::changes::remember(db, call, &recap).await?;
    let call = if call.state == CallState::Due && call.due_at <= now {
        set_state(db, call, CallState::Overdue, "engine", now).await?
    } else {
        call
    };
    plan_timers(db, fc, call, now, fx).await?;
    Ok(())
}
