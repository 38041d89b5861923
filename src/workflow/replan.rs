//! Open calls under an edited configuration. [`planned`] is the one planning function: when a
//! call's due time, next reminder and next escalation fall under a configuration; the steps plan
//! with it, [`moves`] compares it with the timers a call has (for
//! `firstcall config check --against-running`), and [`Replan`], the engine's step for an
//! accepted configuration, moves those timers, a batch at a time, once per version.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{CallState, FirstCall, Live, calls, timing};
use crate::config::Config;
use crate::config::schedule::Schedule;
use crate::domain::{EmailAddress, Source, Timezone};
use crate::engine::{self, ClaimedJob, Effects, Handler, JobKind, NewJob, StepError};
use entity::calls as call_entity;

/// When an open call's timers fall. A timer already due (its step about to run) counts as now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timers {
    pub due_at: DateTime<Utc>,
    pub next_reminder: Option<DateTime<Utc>>,
    pub next_escalation: Option<DateTime<Utc>>,
}

/// The schedule for an open call under `config`. A schedule renamed or removed since the call
/// was opened gives way to the one its order matches now (source, amount and segment), as when
/// the call was opened, never to the catch-all by default.
pub async fn schedule_of<'a>(db: &impl ConnectionTrait, config: &'a Config, call: &call_entity::Model) -> Result<&'a Schedule, DbErr> {
    if let Some(s) = config.schedule_named(&call.schedule_name) {
        return Ok(s);
    }
    let order = entity::orders::Entity::find_by_id(call.order_id).one(db).await?;
    let amount = order.as_ref().and_then(calls::order_amount);
    let segment = match order.and_then(|o| o.segment) {
        Some(s) => Some(s),
        None => crate::proposals::store::latest(db, &call.source, &call.deal_id).await?.and_then(|p| p.proposal.account.segment),
    };
    let source = Source::parse(&call.source).unwrap_or(Source::Generic);
    Ok(config.schedule_for(source, amount.as_ref(), segment.as_deref()))
}

/// The timezone of the call's rep (the directory's, else `defaults.timezone`).
pub async fn rep_tz(db: &impl ConnectionTrait, config: &Config, call: &call_entity::Model) -> Result<Timezone, DbErr> {
    let defaults = &config.settings.defaults;
    let email = EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| defaults.unassigned_email.clone());
    Ok(crate::reps::recipient(db, &email, defaults.timezone).await?.timezone)
}

/// The next reminder of a call that has been reminded `call.reminders_sent` times: the first
/// tick of the schedule's cron after `after` inside business hours, unless it had them all.
pub fn next_reminder(call: &call_entity::Model, schedule: &Schedule, tz: Timezone, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if schedule.max_reminders > 0 && call.reminders_sent as u32 >= schedule.max_reminders {
        return None;
    }
    timing::next_reminder_at(&schedule.reminder_cron, &schedule.business_hours, tz.0, after)
}

/// When the call's next escalation step is reached: now for a step ahead of it already reached
/// (by reminders or by time overdue), else the earliest hour-based step ahead.
pub fn next_escalation(call: &call_entity::Model, schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let sent = super::escalation::sent(call, schedule);
    let ahead = super::escalation::ahead(schedule, &sent);
    if call.state == CallState::Scheduled {
        return None;
    }
    let reached = ahead.iter().any(|s| {
        s.after_reminders.is_some_and(|n| call.reminders_sent as u32 >= n)
            || s.after_minutes_overdue.is_some_and(|m| now >= call.due_at + chrono::TimeDelta::minutes(m))
    });
    if reached {
        return Some(now);
    }
    ahead.iter().filter_map(|s| s.after_minutes_overdue).map(|m| call.due_at + chrono::TimeDelta::minutes(m)).min()
}

/// When the call's timers fall under `config` at `now`. A call whose first email has not gone
/// out (`scheduled`) has only its due time: its first step plans the rest.
pub async fn planned(db: &impl ConnectionTrait, config: &Config, call: &call_entity::Model, now: DateTime<Utc>) -> Result<Timers, DbErr> {
    let schedule = schedule_of(db, config, call).await?;
    let tz = rep_tz(db, config, call).await?;
    // The order's time, as when the call was opened or its order last re-planned it.
    let order = entity::orders::Entity::find_by_id(call.order_id).one(db).await?;
    let ordered_at = order.map_or(call.ordered_at, |o| o.ordered_at.unwrap_or(o.created_at));
    let due_at = timing::first_call_due_at(schedule, tz.0, ordered_at);
    if call.state == CallState::Scheduled {
        return Ok(Timers { due_at, next_reminder: None, next_escalation: None });
    }
    let moved = call_entity::Model { due_at, ..call.clone() };
    Ok(Timers { due_at, next_reminder: next_reminder(call, schedule, tz, now), next_escalation: next_escalation(&moved, schedule, now) })
}

/// The timers the call has: its due time and its pending reminder and escalation.
pub async fn current(db: &impl ConnectionTrait, call: &call_entity::Model) -> Result<Timers, DbErr> {
    use entity::jobs::{Column, Entity, JobState};
    let pending = |kind: JobKind| {
        Entity::find()
            .filter(Column::SubjectId.eq(call.id))
            .filter(Column::Kind.eq(kind))
            .filter(Column::State.ne(JobState::Dead))
            .order_by_asc(Column::RunAt)
            .one(db)
    };
    let (reminder, escalation) = (pending(JobKind::CallRemind).await?, pending(JobKind::CallEscalate).await?);
    Ok(Timers { due_at: call.due_at, next_reminder: reminder.map(|j| j.run_at), next_escalation: escalation.map(|j| j.run_at) })
}

/// How a call's timers would move: what differs between `before` (the call's timers) and
/// `after` (planned). A timer already due in `before` is left to its step.
pub fn moved(before: &Timers, after: &Timers, now: DateTime<Utc>) -> Option<Timers> {
    let changed = before.due_at != after.due_at
        || differs(before.next_reminder, after.next_reminder, now)
        || differs(before.next_escalation, after.next_escalation, now);
    changed.then_some(*after)
}

/// Whether a timer at `before` moves to `after`: not when it is already due (its step runs).
fn differs(before: Option<DateTime<Utc>>, after: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    before.is_none_or(|b| b > now) && before != after
}

/// An open call whose timers an edit moves.
#[derive(Debug, Clone)]
pub struct Move {
    pub call_id: i64,
    pub rep_email: String,
    pub schedule: String,
    pub tz: Timezone,
    pub before: Timers,
    pub after: Timers,
}

/// Open calls read per query when previewing.
const BATCH: u64 = 200;

/// The open calls on `schedules` (by name) after call `after`, in id order, at most `limit`.
async fn open_calls_on(db: &impl ConnectionTrait, schedules: &[String], after: i64, limit: u64) -> Result<Vec<call_entity::Model>, DbErr> {
    call_entity::Entity::find()
        .filter(call_entity::Column::State.is_in(CallState::OPEN))
        .filter(call_entity::Column::ScheduleName.is_in(schedules.iter().cloned()))
        .filter(call_entity::Column::Id.gt(after))
        .order_by_asc(call_entity::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The open calls on `schedules` whose timers would move under `config`, in id order: the first
/// `keep` of them, and how many there are in all.
pub async fn moves(
    db: &impl ConnectionTrait,
    config: &Config,
    schedules: &[String],
    now: DateTime<Utc>,
    keep: usize,
) -> Result<(Vec<Move>, usize), DbErr> {
    let (mut kept, mut total, mut after) = (Vec::new(), 0, 0);
    loop {
        let batch = open_calls_on(db, schedules, after, BATCH).await?;
        for call in &batch {
            let before = current(db, call).await?;
            let planned = planned(db, config, call, now).await?;
            if let Some(after) = moved(&before, &planned, now) {
                total += 1;
                if kept.len() < keep {
                    let schedule = schedule_of(db, config, call).await?.name.clone();
                    let tz = rep_tz(db, config, call).await?;
                    kept.push(Move { call_id: call.id, rep_email: call.rep_email.clone(), schedule, tz, before, after });
                }
            }
        }
        match batch.last() {
            Some(last) if batch.len() as u64 == BATCH => after = last.id,
            _ => return Ok((kept, total)),
        }
    }
}

/// The payload of a `config.replan` job: the version whose schedules apply, the schedules (by
/// name) it changed, and where the walk through their open calls stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Walk {
    pub version: String,
    pub schedules: Vec<String>,
    #[serde(default)]
    pub after: i64,
}

/// The `config.replan` job for `version` (one per version: its subject is the version's number).
pub fn job(version: &str, schedules: Vec<String>, now: DateTime<Utc>) -> NewJob {
    walk_on(&Walk { version: version.to_string(), schedules, after: 0 }, now)
}

/// The job that goes on with `walk` at `at`.
fn walk_on(walk: &Walk, at: DateTime<Utc>) -> NewJob {
    NewJob::new(JobKind::ConfigReplan, subject_of(&walk.version), at).with_payload(json!(walk))
}

/// A version (`v` and 12 hex digits) as a number, the subject of its re-plan job.
fn subject_of(version: &str) -> i64 {
    i64::from_str_radix(version.trim_start_matches('v'), 16).unwrap_or(0)
}

/// The engine's step for `config.replan`.
pub struct Replan(pub Arc<Live>);

impl Handler for Replan {
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(async move {
            let walk: Walk = job.payload_as("config.replan needs a payload with the version and its schedules")?;
            let fc = self.0.get();
            if walk.version != fc.config_version {
                // Another version runs here. A newer one re-plans with its own job; while a
                // process that runs the job's version is alive, the job waits for it.
                let running = crate::config_versions::running(txn, now).await?;
                if crate::config_versions::loaded_since(txn, &fc.config_version, &walk.version).await? {
                    tracing::info!(version = %walk.version, running = %fc.config_version, "re-plan of an older configuration skipped");
                } else if running.iter().any(|p| p.version == walk.version) {
                    engine::enqueue(txn, walk_on(&walk, now + chrono::TimeDelta::seconds(30)), fc.max_attempts(), now).await?;
                } else {
                    tracing::warn!(
                        version = %walk.version, running = %fc.config_version,
                        "no running process runs configuration {}: its re-plan of open calls is dropped", walk.version
                    );
                }
                return Ok(Effects::default());
            }
            // As many calls per transaction as the engine claims timers at once.
            let size = u64::from(fc.config.settings.engine.batch_size);
            let batch = open_calls_on(txn, &walk.schedules, walk.after, size).await?;
            let mut fx = Effects::default();
            for call in &batch {
                if let Some(call) = calls::lock(txn, call.id).await?
                    && call.state.is_open()
                {
                    replan_call(txn, &fc, call, now, &mut fx).await?;
                }
            }
            if let Some(last) = batch.last().filter(|_| batch.len() as u64 == size) {
                engine::enqueue(txn, walk_on(&Walk { after: last.id, ..walk }, now), fc.max_attempts(), now).await?;
                fx.jobs_due_now += 1;
            }
            Ok(fx)
        })
    }
}

/// Moves one open call's timers to where the configuration in force plans them, with an audit
/// entry naming the version. A moved due time updates the rep's invite (as a reschedule does).
async fn replan_call(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<(), StepError> {
    let before = current(db, &call).await?;
    let after = planned(db, &fc.config, &call, now).await?;
    let Some(after) = moved(&before, &after, now) else {
        return Ok(());
    };
    let schedule = schedule_of(db, &fc.config, &call).await?.name.clone();
    let detail = json!({
        "config_version": fc.config_version,
        "schedule": schedule,
        "from": before,
        "to": after,
    });
    let id = call.id;
    let invite_sent = call.state != CallState::Scheduled;
    let due_moved = after.due_at != call.due_at;
    let to = match call.state {
        CallState::Overdue if after.due_at > now => CallState::Due,
        s => s,
    };
    calls::transition(db, call, to, "replanned", "config", Some(detail), now, |am| {
        am.schedule_name = Set(schedule.clone());
        am.due_at = Set(after.due_at);
        if invite_sent && due_moved {
            am.invite_sequence = Set(am.invite_sequence.as_ref() + 1);
        }
    })
    .await?;
    if !invite_sent {
        // The first step plans the rest from the new due time.
        return Ok(());
    }
    let mut jobs = Vec::new();
    if due_moved {
        // The rep's calendar moves with the due time: the step sends the updated invite and
        // plans the timers again.
        engine::cancel_pending(db, id, &[JobKind::CallRemind, JobKind::CallOverdue, JobKind::CallEscalate]).await?;
        jobs.push(NewJob::new(JobKind::CallUpdated, id, now).with_payload(json!({"rescheduled": true})));
    } else {
        // Only the timers that move; one already due is left to its step.
        for (kind, b, a) in [
            (JobKind::CallRemind, before.next_reminder, after.next_reminder),
            (JobKind::CallEscalate, before.next_escalation, after.next_escalation),
        ] {
            if differs(b, a, now) {
                engine::cancel_pending(db, id, &[kind]).await?;
                jobs.extend(a.map(|at| NewJob::new(kind, id, at)));
            }
        }
    }
    for job in jobs {
        if job.run_at <= now {
            fx.jobs_due_now += 1;
        }
        engine::enqueue(db, job, fc.max_attempts(), now).await?;
    }
    Ok(())
}
