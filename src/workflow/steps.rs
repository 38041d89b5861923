//! The workflow's timer handlers. Each runs inside the engine's transaction for its job: it
//! locks the call, re-checks its state (a call marked done or cancelled meanwhile makes the
//! step a no-op), writes the emails it causes to the outbox, schedules its next timers, and
//! commits with the job's completion.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, IntoActiveModel};
use serde_json::json;

use super::{CallState, calls, compose, timing};
use crate::audit::{self, Change};
use crate::config::schedule::{EscalationTarget, Schedule};
use crate::domain::{EmailAddress, Source};
use crate::engine::queue::{self, ClaimedJob};
use crate::engine::{self, NewJob, kinds};
use crate::mail::outbox;
use crate::startup::AppState;
use entity::calls as call_entity;

/// What a step caused, so the engine can wake the mailer or itself after commit.
#[derive(Debug, Default, Clone, Copy)]
pub struct StepEffects {
    pub emails: usize,
    pub jobs_due_now: usize,
}

impl StepEffects {
    pub fn merge(&mut self, o: StepEffects) {
        self.emails += o.emails;
        self.jobs_due_now += o.jobs_due_now;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Failed(String),
}

impl StepError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StepError::Db(e) if crate::db::is_unavailable(e))
    }
}

pub async fn run(db: &impl ConnectionTrait, state: &AppState, job: &ClaimedJob, now: DateTime<Utc>) -> Result<StepEffects, StepError> {
    let Some(call_id) = job.call_id else {
        return Err(StepError::Failed(format!("job kind {} needs a call", job.kind)));
    };
    let Some(call) = calls::lock(db, call_id).await? else {
        // The call is gone (cannot happen through the API); nothing to do.
        return Ok(StepEffects::default());
    };
    let mut fx = StepEffects::default();
    match job.kind.as_str() {
        kinds::CALL_START => start(db, state, call, now, &mut fx).await?,
        kinds::CALL_REMIND => remind(db, state, call, now, &mut fx).await?,
        kinds::CALL_OVERDUE => overdue(db, state, call, now, &mut fx).await?,
        kinds::CALL_ESCALATE => {
            if is_open(&call) {
                let call = escalate_due_steps(db, state, call, now, &mut fx).await?;
                plan_escalation_timer(db, state, &call, now).await?;
            }
        }
        kinds::CALL_CANCELLED => cancelled(db, state, call, now, &mut fx).await?,
        kinds::CALL_UPDATED => updated(db, state, call, job.payload.as_ref(), now, &mut fx).await?,
        other => return Err(StepError::Failed(format!("unknown job kind '{other}'"))),
    }
    Ok(fx)
}

fn is_open(call: &call_entity::Model) -> bool {
    CallState::parse(&call.state).is_some_and(|s| s.is_open())
}

/// The schedule for an open call, read from the current config: a renamed or removed
/// schedule falls back to the one the order matches now.
fn schedule_of<'a>(state: &'a AppState, call: &call_entity::Model, order_amount: Option<&crate::domain::Money>) -> &'a Schedule {
    state
        .config
        .schedule_named(&call.schedule_name)
        .unwrap_or_else(|| state.config.schedule_for(Source::parse(&call.source).unwrap_or(Source::Generic), order_amount, None))
}

async fn rep_tz(db: &impl ConnectionTrait, state: &AppState, call: &call_entity::Model) -> Result<chrono_tz::Tz, DbErr> {
    let email = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| state.config.settings.defaults.unassigned_email.clone());
    Ok(crate::reps::recipient(db, &email, state.config.settings.defaults.timezone).await?.timezone.0)
}

async fn add_email(db: &impl ConnectionTrait, e: outbox::NewEmail, now: DateTime<Utc>, fx: &mut StepEffects) -> Result<(), DbErr> {
    if outbox::enqueue(db, e, now).await? {
        fx.emails += 1;
    }
    Ok(())
}

async fn schedule_job(
    db: &impl ConnectionTrait,
    state: &AppState,
    job: NewJob,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), DbErr> {
    if job.run_at <= now {
        fx.jobs_due_now += 1;
    }
    engine::enqueue(db, job, state.config.settings.engine.max_attempts, now).await.map(|_| ())
}

async fn set_state(
    db: &impl ConnectionTrait,
    call: call_entity::Model,
    to: CallState,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<call_entity::Model, DbErr> {
    let from = call.state.clone();
    let id = call.id;
    let mut am = call.into_active_model();
    am.state = Set(to.as_str().into());
    am.updated_at = Set(now);
    let call = am.update(db).await?;
    audit::record(
        db,
        Change {
            actor,
            entity: "call",
            entity_id: id,
            action: "state",
            from_state: Some(&from),
            to_state: Some(to.as_str()),
            detail: None,
        },
        now,
    )
    .await?;
    Ok(call)
}

/// First step: the recap and invite go to the rep; reminders, the overdue timer and
/// hour-based escalations are planned.
async fn start(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Scheduled.as_str() {
        return Ok(());
    }
    let email = compose::first_call(db, state, &call, now).await?;
    add_email(db, email, now, fx).await?;
    let to = if call.due_at <= now { CallState::Overdue } else { CallState::Due };
    let call = set_state(db, call, to, "engine", now).await?;
    plan_timers(db, state, call, now, fx).await?;
    Ok(())
}

/// Plans the next reminder, the overdue flip and the next hour-based escalation from the
/// current config.
async fn plan_timers(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    // A call already overdue when planned (a late order, a reschedule into the past) gets the
    // escalations it has reached now.
    let call = if call.state == CallState::Overdue.as_str() { escalate_due_steps(db, state, call, now, fx).await? } else { call };
    plan_next_reminder(db, state, &call, now, fx).await?;
    if call.state == CallState::Due.as_str() {
        schedule_job(db, state, NewJob::for_call(kinds::CALL_OVERDUE, call.id, call.due_at), now, fx).await?;
    }
    plan_escalation_timer(db, state, &call, now).await?;
    Ok(())
}

async fn plan_next_reminder(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    let schedule = schedule_of(state, call, None);
    if schedule.max_reminders > 0 && call.reminders_sent as u32 >= schedule.max_reminders {
        return Ok(());
    }
    let tz = rep_tz(db, state, call).await?;
    if let Some(at) = timing::next_reminder_at(&schedule.reminder_cron, &schedule.business_hours, tz, now) {
        schedule_job(db, state, NewJob::for_call(kinds::CALL_REMIND, call.id, at), now, fx).await?;
    }
    Ok(())
}

/// Replaces the call's pending escalation timer with one at the next hour-based step of the
/// current schedule.
async fn plan_escalation_timer(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: &call_entity::Model,
    now: DateTime<Utc>,
) -> Result<(), StepError> {
    queue::cancel_for_call(db, call.id, &[kinds::CALL_ESCALATE]).await?;
    let schedule = schedule_of(state, call, None);
    let next = schedule
        .escalation
        .iter()
        .skip(call.escalation_level.max(0) as usize)
        .filter_map(|s| s.after_minutes_overdue)
        .map(|m| call.due_at + chrono::TimeDelta::minutes(m))
        .filter(|t| *t > now)
        .min();
    if let Some(at) = next {
        engine::enqueue(db, NewJob::for_call(kinds::CALL_ESCALATE, call.id, at), state.config.settings.engine.max_attempts, now).await?;
    }
    Ok(())
}

async fn remind(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if !is_open(&call) {
        return Ok(());
    }
    let schedule = schedule_of(state, &call, None);
    let mut call = call;
    if schedule.max_reminders == 0 || (call.reminders_sent as u32) < schedule.max_reminders {
        let n = call.reminders_sent + 1;
        let email = compose::reminder(db, state, &call, n, now).await?;
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
                detail: Some(json!({"reminder": n})),
            },
            now,
        )
        .await?;
    }
    if call.state == CallState::Due.as_str() && now >= call.due_at {
        call = set_state(db, call, CallState::Overdue, "engine", now).await?;
    }
    let call = escalate_due_steps(db, state, call, now, fx).await?;
    plan_next_reminder(db, state, &call, now, fx).await?;
    plan_escalation_timer(db, state, &call, now).await?;
    Ok(())
}

async fn overdue(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Due.as_str() {
        return Ok(());
    }
    if call.due_at > now {
        // Rescheduled later meanwhile: check again then.
        schedule_job(db, state, NewJob::for_call(kinds::CALL_OVERDUE, call.id, call.due_at), now, fx).await?;
        return Ok(());
    }
    let call = set_state(db, call, CallState::Overdue, "engine", now).await?;
    let call = escalate_due_steps(db, state, call, now, fx).await?;
    plan_escalation_timer(db, state, &call, now).await?;
    Ok(())
}

/// Sends every escalation step whose condition now holds, in order: a later step reached first
/// (say 48 hours overdue before the third reminder) also sends the steps before it, so the
/// manager hears before the manager's manager.
async fn escalate_due_steps(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<call_entity::Model, StepError> {
    let schedule = schedule_of(state, &call, None).clone();
    let level = call.escalation_level.max(0) as usize;
    let overdue_minutes = (now - call.due_at).num_minutes();
    let mut reached = schedule.escalation.iter().enumerate().skip(level).filter(|(_, s)| {
        s.after_reminders.is_some_and(|n| call.reminders_sent as u32 >= n)
            || s.after_minutes_overdue.is_some_and(|m| now >= call.due_at && overdue_minutes >= m)
    });
    let Some((last, _)) = reached.next_back() else {
        return Ok(call);
    };
    let rep = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| state.config.settings.defaults.unassigned_email.clone());
    let rep_info = crate::reps::recipient(db, &rep, state.config.settings.defaults.timezone).await?;
    for (i, step) in schedule.escalation.iter().enumerate().take(last + 1).skip(level) {
        let (to, role, note) = match &step.to {
            EscalationTarget::Manager => match &rep_info.manager_email {
                Some(m) => (m.clone(), "manager", None),
                None => (
                    state.config.settings.defaults.unassigned_email.clone(),
                    "sales_ops",
                    Some(format!("{} has no manager in the rep directory", rep)),
                ),
            },
            EscalationTarget::ManagerOfManager => {
                let mm = match &rep_info.manager_email {
                    Some(m) => crate::reps::recipient(db, m, state.config.settings.defaults.timezone).await?.manager_email,
                    None => None,
                };
                match mm {
                    Some(m) => (m, "manager_of_manager", None),
                    None => (
                        state.config.settings.defaults.unassigned_email.clone(),
                        "sales_ops",
                        Some(format!("no manager's manager on file for {}", rep)),
                    ),
                }
            }
            EscalationTarget::Address(a) => (a.clone(), "escalation_contact", None),
        };
        let level_no = i as i32 + 1;
        let email = compose::escalation(db, state, &call, &to, role, level_no, note.as_deref(), now).await?;
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
                detail: Some(json!({"level": level_no, "to": to.as_str(), "role": role})),
            },
            now,
        )
        .await?;
    }
    let mut am = call.into_active_model();
    am.escalation_level = Set(last as i32 + 1);
    am.updated_at = Set(now);
    Ok(am.update(db).await?)
}

async fn cancelled(
    db: &impl ConnectionTrait,
    state: &AppState,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if call.state != CallState::Cancelled.as_str() {
        return Ok(());
    }
    let seq = call.invite_sequence + 1;
    let email = compose::cancellation(db, state, &call, &call.rep_email.clone(), seq, now).await?;
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
    state: &AppState,
    call: call_entity::Model,
    payload: Option<&serde_json::Value>,
    now: DateTime<Utc>,
    fx: &mut StepEffects,
) -> Result<(), StepError> {
    if !is_open(&call) {
        return Ok(());
    }
    let old_rep = payload.and_then(|p| p.get("reassigned_from")).and_then(|v| v.as_str()).filter(|old| *old != call.rep_email);
    if let Some(old) = old_rep {
        let email = compose::reassigned(db, state, &call, old, now).await?;
        add_email(db, email, now, fx).await?;
    }
    let email = compose::first_call(db, state, &call, now).await?;
    add_email(db, email, now, fx).await?;
    let call = if call.state == CallState::Due.as_str() && call.due_at <= now {
        set_state(db, call, CallState::Overdue, "engine", now).await?
    } else {
        call
    };
    plan_timers(db, state, call, now, fx).await?;
    Ok(())
}
