//! Open calls under an edited configuration. [`planned`] is the one planning function: when a
//! call's due time, next reminder and next escalation fall under a configuration; the steps plan
//! with it, [`moves`] compares it with the timers a call has (for
//! `firstcall config check --against-running`), and [`Replan`], the engine's step for an
//! accepted configuration, moves those timers, a batch at a time, once per version.

use std::collections::HashMap;
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
    schedule_matching(db, config, call, order.as_ref()).await
}

/// The schedule the call's order matches under `config`.
async fn schedule_matching<'a>(
    db: &impl ConnectionTrait,
    config: &'a Config,
    call: &call_entity::Model,
    order: Option<&entity::orders::Model>,
) -> Result<&'a Schedule, DbErr> {
    let segment = match order.and_then(|o| o.segment.clone()) {
        Some(s) => Some(s),
        None => crate::proposals::store::latest(db, &call.source, &call.deal_id).await?.and_then(|p| p.proposal.account.segment),
    };
    Ok(matching(config, call, order, segment.as_deref()))
}

/// The schedule an order of the call's source, amount and `segment` matches.
fn matching<'a>(
    config: &'a Config,
    call: &call_entity::Model,
    order: Option<&entity::orders::Model>,
    segment: Option<&str>,
) -> &'a Schedule {
    let source = Source::parse(&call.source).unwrap_or(Source::Generic);
    config.schedule_for(source, order.and_then(calls::order_amount).as_ref(), segment)
}

/// Whose clock the call is planned on: who covered for its rep when it was opened or handed
/// over (the rep was out of office), else its rep.
pub fn planner(call: &call_entity::Model) -> &str {
    call.covered_by.as_deref().unwrap_or(&call.rep_email)
}

/// The timezone the call is planned in: its [`planner`]'s (the directory's, else
/// `defaults.timezone`).
pub async fn rep_tz(db: &impl ConnectionTrait, config: &Config, call: &call_entity::Model) -> Result<Timezone, DbErr> {
    let defaults = &config.settings.defaults;
    let email = EmailAddress::parse(planner(call)).unwrap_or_else(|_| defaults.unassigned_email.clone());
    Ok(crate::reps::recipient(db, &email, defaults.timezone).await?.timezone)
}

/// The next reminder of a call that has been reminded `call.reminders_sent` times: the first
/// tick of the schedule's cron after `after` inside business hours, unless it had them all. A
/// call whose reminders the rep snoozed gets none before the snooze ends (a tick at that very
/// time counts).
pub fn next_reminder(call: &call_entity::Model, schedule: &Schedule, tz: Timezone, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if schedule.max_reminders > 0 && call.reminders_sent as u32 >= schedule.max_reminders {
        return None;
    }
    let after = match call.snoozed_until {
        Some(until) if until > after => until - chrono::TimeDelta::seconds(1),
        _ => after,
    };
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

/// What planning a batch of open calls reads, one query each: their orders, their reps'
/// timezones, and their pending reminders and escalations.
pub struct Reads {
    orders: HashMap<i64, entity::orders::Model>,
    timezones: HashMap<String, Timezone>,
    timers: HashMap<(i64, JobKind), DateTime<Utc>>,
    /// The segment of the newest proposal of each deal whose call's schedule is gone and whose
    /// order has none: the calls that move to the schedule their order matches now.
    segments: HashMap<(String, String), Option<String>>,
    default_tz: Timezone,
}

impl Reads {
    pub async fn of(db: &impl ConnectionTrait, config: &Config, calls: &[call_entity::Model]) -> Result<Reads, DbErr> {
        use entity::jobs::{Column, Entity, JobState};
        let defaults = &config.settings.defaults;
        let ids: Vec<i64> = calls.iter().map(|c| c.id).collect();
        let orders = entity::orders::Entity::find()
            .filter(entity::orders::Column::Id.is_in(calls.iter().map(|c| c.order_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let emails: Vec<EmailAddress> = calls.iter().filter_map(|c| EmailAddress::parse(planner(c)).ok()).collect();
        let timezones = crate::reps::recipients(db, &emails, defaults.timezone)
            .await?
            .into_iter()
            .map(|(email, r)| (email.to_string(), r.timezone))
            .collect();
        let rows: Vec<(Option<i64>, JobKind, DateTime<Utc>)> = Entity::find()
            .select_only()
            .column(Column::SubjectId)
            .column(Column::Kind)
            .column_as(Column::RunAt.min(), "run_at")
            .filter(Column::SubjectId.is_in(ids))
            .filter(Column::Kind.is_in([JobKind::CallRemind, JobKind::CallEscalate]))
            .filter(Column::State.ne(JobState::Dead))
            .group_by(Column::SubjectId)
            .group_by(Column::Kind)
            .into_tuple()
            .all(db)
            .await?;
        let timers = rows.into_iter().filter_map(|(id, kind, at)| Some(((id?, kind), at))).collect();
        let orders: HashMap<i64, entity::orders::Model> = orders;
        let rematched: Vec<(String, String)> = calls
            .iter()
            .filter(|c| config.schedule_named(&c.schedule_name).is_none())
            .filter(|c| orders.get(&c.order_id).is_none_or(|o| o.segment.is_none()))
            .map(|c| (c.source.clone(), c.deal_id.clone()))
            .collect();
        let segments = if rematched.is_empty() {
            HashMap::new()
        } else {
            crate::proposals::store::latest_many(db, &rematched)
                .await?
                .into_iter()
                .map(|(deal, p)| (deal, p.proposal.account.segment))
                .collect()
        };
        Ok(Reads { orders, timezones, timers, segments, default_tz: defaults.timezone })
    }

    /// The timers the call has: its due time and its pending reminder and escalation.
    pub fn current(&self, call: &call_entity::Model) -> Timers {
        Timers {
            due_at: call.due_at,
            next_reminder: self.timers.get(&(call.id, JobKind::CallRemind)).copied(),
            next_escalation: self.timers.get(&(call.id, JobKind::CallEscalate)).copied(),
        }
    }

    /// The timezone the call is planned in ([`planner`]).
    pub fn tz(&self, call: &call_entity::Model) -> Timezone {
        self.timezones.get(planner(call)).copied().unwrap_or(self.default_tz)
    }
}

/// An open call planned under a configuration: the schedule it follows, its rep's timezone and
/// its timers.
pub struct Planned<'a> {
    pub schedule: &'a Schedule,
    pub tz: Timezone,
    pub timers: Timers,
}

/// When the call's timers fall under `config` at `now`. A call whose first email has not gone
/// out (`scheduled`) has only its due time: its first step plans the rest.
pub fn planned<'a>(config: &'a Config, reads: &Reads, call: &call_entity::Model, now: DateTime<Utc>) -> Planned<'a> {
    let order = reads.orders.get(&call.order_id);
    let schedule = match config.schedule_named(&call.schedule_name) {
        Some(s) => s,
        None => {
            let segment = match order.and_then(|o| o.segment.clone()) {
                Some(s) => Some(s),
                None => reads.segments.get(&(call.source.clone(), call.deal_id.clone())).cloned().flatten(),
            };
            matching(config, call, order, segment.as_deref())
        }
    };
    let tz = reads.tz(call);
    // The order's time, as when the call was opened or its order last re-planned it.
    let ordered_at = order.map_or(call.ordered_at, |o| o.ordered_at.unwrap_or(o.created_at));
    // A due time the rep moved (booked, snoozed) stands whatever the schedule says.
    let due_at = if call.first_due_at.is_some() { call.due_at } else { timing::first_call_due_at(schedule, tz.0, ordered_at) };
    let timers = if call.state == CallState::Scheduled {
        Timers { due_at, next_reminder: None, next_escalation: None }
    } else {
        let moved = call_entity::Model { due_at, ..call.clone() };
        Timers { due_at, next_reminder: next_reminder(call, schedule, tz, now), next_escalation: next_escalation(&moved, schedule, now) }
    };
    Planned { schedule, tz, timers }
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
fn open_calls_on(schedules: &[String], after: i64, limit: u64) -> sea_orm::Select<call_entity::Entity> {
    call_entity::Entity::find()
        .filter(call_entity::Column::State.is_in(CallState::OPEN))
        .filter(call_entity::Column::ScheduleName.is_in(schedules.iter().cloned()))
        .filter(call_entity::Column::Id.gt(after))
        .order_by_asc(call_entity::Column::Id)
        .limit(limit)
}

/// What [`moves`] found.
#[derive(Debug, Clone, Default)]
pub struct Moves {
    /// The first of the calls that move, in id order.
    pub listed: Vec<Move>,
    /// How many of the calls examined move.
    pub total: usize,
    /// Open calls of the changed schedules left unexamined (the walk stopped at its limit).
    pub unexamined: bool,
}

/// The open calls on `schedules` whose timers would move under `config`, in id order: the first
/// `keep` of them and how many there are, among at most `examine` calls (`None`: all).
pub async fn moves(
    db: &impl ConnectionTrait,
    config: &Config,
    schedules: &[String],
    now: DateTime<Utc>,
    keep: usize,
    examine: Option<usize>,
) -> Result<Moves, DbErr> {
    let (mut found, mut after, mut examined) = (Moves::default(), 0, 0);
    loop {
        let limit = examine.map_or(BATCH, |max| BATCH.min((max - examined) as u64));
        if limit == 0 {
            found.unexamined = open_calls_on(schedules, after, 1).one(db).await?.is_some();
            return Ok(found);
        }
        let batch = open_calls_on(schedules, after, limit).all(db).await?;
        examined += batch.len();
        let reads = Reads::of(db, config, &batch).await?;
        for call in &batch {
            let before = reads.current(call);
            let planned = planned(config, &reads, call, now);
            if let Some(after) = moved(&before, &planned.timers, now) {
                found.total += 1;
                if found.listed.len() < keep {
                    let schedule = planned.schedule.name.clone();
                    found.listed.push(Move {
                        call_id: call.id,
                        rep_email: call.rep_email.clone(),
                        schedule,
                        tz: planned.tz,
                        before,
                        after,
                    });
                }
            }
        }
        match batch.last() {
            Some(last) if batch.len() as u64 == limit => after = last.id,
            _ => return Ok(found),
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
                // Only a process that runs the job's version re-plans with it: while one is
                // alive the job waits for it; when none is (a later version replaced it
                // everywhere), the job is dropped.
                let running = crate::config_versions::running(txn, now).await?;
                if running.iter().any(|p| p.version == walk.version) {
                    engine::enqueue(txn, walk_on(&walk, now + chrono::TimeDelta::seconds(30)), fc.max_attempts(), now).await?;
                } else {
                    tracing::info!(
                        version = %walk.version, running = %fc.config_version,
                        "no running process runs configuration {}: its re-plan of open calls is dropped", walk.version
                    );
                }
                return Ok(Effects::default());
            }
            // As many calls per transaction as the engine claims timers at once.
            let size = u64::from(fc.config.settings.engine.batch_size);
            // Locked in one statement, in id order (PostgreSQL re-checks that each is still
            // open once locked); a step of one of them waits, or is waited for.
            let locked = open_calls_on(&walk.schedules, walk.after, size).lock_exclusive().all(txn).await?;
            let mut fx = Effects::default();
            let reads = Reads::of(txn, &fc.config, &locked).await?;
            let after = locked.last().map_or(walk.after, |c| c.id);
            for call in locked {
                replan_call(txn, &fc, &reads, call, "config", now, &mut fx).await?;
            }
            // Asked, not inferred from a full batch: a call closed meanwhile drops out of it.
            if open_calls_on(&walk.schedules, after, 1).one(txn).await?.is_some() {
                engine::enqueue(txn, walk_on(&Walk { after, ..walk }, now), fc.max_attempts(), now).await?;
                fx.jobs_due_now += 1;
            }
            Ok(fx)
        })
    }
}

/// Moves one open call's timers to where the configuration in force plans them (on its
/// [`planner`]'s clock), with an audit entry by `actor` naming the version. A moved due time
/// updates the rep's invite (as a reschedule does).
pub(super) async fn replan_call(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    reads: &Reads,
    call: call_entity::Model,
    actor: &str,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<(), StepError> {
    let before = reads.current(&call);
    let planned = planned(&fc.config, reads, &call, now);
    let Some(after) = moved(&before, &planned.timers, now) else {
        return Ok(());
    };
    let schedule = planned.schedule.name.clone();
    let detail = json!({
        "config_version": fc.config_version,
        "schedule": schedule,
        "from": before,
        "to": after,
        "covered_by": call.covered_by,
    });
    let id = call.id;
    let invite_sent = call.state != CallState::Scheduled;
    let due_moved = after.due_at != call.due_at;
    let to = match call.state {
        CallState::Overdue if after.due_at > now => CallState::Due,
        s => s,
    };
    calls::transition(db, call, to, "replanned", actor, Some(detail), now, |am| {
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
