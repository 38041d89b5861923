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
use crate::config::schedule::{EscalationStep, Schedule};
use crate::domain::EmailAddress;
use crate::engine::{self, ClaimedJob, Effects, Handler, JobKind, NewJob, StepError};
use crate::mail::templates::local_date;
use crate::proposals::model::Priority;
use entity::calls;
pub use entity::promises::{Model as Promise, PromiseState};

/// The longest reason for a slip or a drop.
pub const REASON_MAX_CHARS: usize = 1000;

/// What the rep agreed on the call, given with "done": new dates for commitments of the
/// proposal (by commitment id), and promises made on the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreed {
    pub dates: std::collections::BTreeMap<String, NaiveDate>,
    pub added: Vec<Added>,
}

/// A promise made on the call, not in the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub text: String,
    pub deliver_by: Option<NaiveDate>,
    /// Who delivers it, when not the rep.
    pub owner: Option<EmailAddress>,
}

impl Agreed {
    /// The most promises one call may add.
    pub const MAX_ADDED: usize = 20;
}

/// Why what was agreed cannot be recorded: the field (`dates.C9`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct AgreedError {
    pub field: String,
    pub reason: String,
}

/// Turns the commitments of the deal's newest proposal, with the dates agreed on the call, and
/// the promises added on it, into promises of `call` (just marked done, inside its transaction)
/// and plans their first reminders. A date for a commitment the proposal does not have refuses
/// the whole change. A call that already has promises adds none (marking done twice changes
/// nothing).
pub async fn open_ledger(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    agreed: &Agreed,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Result<Vec<Promise>, AgreedError>, DbErr> {
    let aligned = call.outcome == Some(super::CallOutcome::Aligned);
    use entity::promises;
    if promises::Entity::find().filter(promises::Column::CallId.eq(call.id)).one(db).await?.is_some() {
        return Ok(Ok(vec![]));
    }
    let stored = crate::proposals::store::latest(db, &call.source, &call.deal_id).await?;
    let (version, commitments, requirements) = match stored {
        Some(s) => (Some(s.version), s.proposal.commitments, s.proposal.requirements),
        None => (None, Vec::new(), Vec::new()),
    };
    if let Some(unknown) = agreed.dates.keys().find(|id| !commitments.iter().any(|c| &c.id == *id)) {
        let known: Vec<&str> = commitments.iter().map(|c| c.id.as_str()).collect();
        let reason = if known.is_empty() {
            "the deal's proposal has no commitments; add what was promised as new promises".to_string()
        } else {
            format!("the proposal has no commitment with this id (it has {})", known.join(", "))
        };
        return Ok(Err(AgreedError { field: format!("dates.{unknown}"), reason }));
    }
    let moved = commitments.iter().find(|c| agreed.dates.get(&c.id).is_some_and(|d| Some(*d) != c.deliver_by));
    if let (true, Some(c)) = (aligned, moved) {
        return Ok(Err(AgreedError {
            field: "outcome".into(),
            reason: format!("the date of {} changed on the call, so expectations were adjusted: choose adjusted (or at_risk)", c.id),
        }));
    }
    let mut made = Vec::with_capacity(commitments.len() + agreed.added.len());
    let mut changes = Vec::new();
    for (i, c) in commitments.iter().enumerate() {
        let answered: Vec<_> = requirements.iter().filter(|r| c.covers.contains(&r.id)).collect();
        let agreed_date = agreed.dates.get(&c.id).copied().filter(|d| Some(*d) != c.deliver_by);
        let row = NewPromise {
            commitment_id: Some(c.id.clone()),
            text: c.text.clone(),
            covers: c.covers.clone(),
            need_by: answered.iter().filter_map(|r| r.need_by).min(),
            must_have: answered.iter().any(|r| r.priority == Priority::Must),
            owner: c.owner.clone(),
            deliver_by: agreed_date.or(c.deliver_by),
        };
        let p = row.insert(db, call, i, now).await?;
        let mut detail = json!({"call": call.id, "owner": p.owner_email, "deliver_by": p.deliver_by, "proposal_version": version});
        if agreed_date.is_some() {
            // Moved on the call: what the proposal said, and who changed it.
            detail["proposal_deliver_by"] = json!(c.deliver_by);
            detail["adjusted_by"] = json!(actor);
        }
        changes.push((p.id, detail));
        made.push(p);
    }
    for (i, a) in agreed.added.iter().enumerate() {
        let row = NewPromise {
            commitment_id: None,
            text: a.text.clone(),
            covers: Vec::new(),
            need_by: None,
            must_have: false,
            owner: a.owner.clone(),
            deliver_by: a.deliver_by,
        };
        let p = row.insert(db, call, commitments.len() + i, now).await?;
        changes.push((p.id, json!({"call": call.id, "owner": p.owner_email, "deliver_by": p.deliver_by, "added_on_call_by": actor})));
        made.push(p);
    }
    audit::record_many(
        db,
        changes.into_iter().map(|(id, detail)| Change {
            actor,
            entity: "promise",
            entity_id: id,
            action: "promised",
            from_state: None,
            to_state: Some(PromiseState::Open.as_str()),
            detail: Some(detail),
        }),
        now,
    )
    .await?;
    // One calendar per owner (the call's schedule in the owner's timezone), not per promise.
    let mut calendars: std::collections::HashMap<String, Calendar> = std::collections::HashMap::new();
    let mut jobs = Vec::new();
    for p in &made {
        if !calendars.contains_key(&p.owner_email) {
            calendars.insert(p.owner_email.clone(), calendar(db, fc, call, p).await?);
        }
        jobs.extend(plan(fc, p, &calendars[&p.owner_email], now).jobs(p.id));
    }
    engine::enqueue_many(db, jobs, fc.max_attempts(), now).await?;
    Ok(Ok(made))
}

/// A promise as the ledger makes it: open, due by the date agreed on the call.
struct NewPromise {
    commitment_id: Option<String>,
    text: String,
    covers: Vec<String>,
    need_by: Option<NaiveDate>,
    must_have: bool,
    /// The call's rep when none.
    owner: Option<EmailAddress>,
    deliver_by: Option<NaiveDate>,
}

impl NewPromise {
    async fn insert(self, db: &impl ConnectionTrait, call: &calls::Model, position: usize, now: DateTime<Utc>) -> Result<Promise, DbErr> {
        entity::promises::ActiveModel {
            call_id: Set(call.id),
            source: Set(call.source.clone()),
            deal_id: Set(call.deal_id.clone()),
            position: Set(position as i32),
            commitment_id: Set(self.commitment_id),
            text: Set(self.text),
            covers: Set(json!(self.covers)),
            need_by: Set(self.need_by),
            must_have: Set(self.must_have),
            owner_email: Set(self.owner.map_or_else(|| call.rep_email.clone(), |o| o.to_string())),
            deliver_by: Set(self.deliver_by),
            agreed_deliver_by: Set(self.deliver_by),
            state: Set(PromiseState::Open),
            reason: Set(None),
            reminders_sent: Set(0),
            overdue_reminders: Set(0),
            escalation_level: Set(0),
            escalated_steps: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            closed_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await
    }
}

/// A promise's next timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The next reminder: ahead of the date and on the day ([`super::timing::promise_reminder_times`]),
    /// then each working morning while it is overdue (at most the schedule's `max_reminders` of
    /// those, when it sets one).
    pub next_reminder: Option<DateTime<Utc>>,
    /// The next escalation step's time (an overdue promise escalates along its call's
    /// schedule's steps).
    pub next_escalation: Option<DateTime<Utc>>,
}

impl Plan {
    fn jobs(&self, id: i64) -> impl Iterator<Item = NewJob> {
        let remind = self.next_reminder.map(|at| NewJob::new(JobKind::PromiseRemind, id, at));
        let escalate = self.next_escalation.map(|at| NewJob::new(JobKind::PromiseEscalate, id, at));
        remind.into_iter().chain(escalate)
    }
}

/// Where a promise's time is counted: its call's schedule (working days, hours, escalation
/// steps) in its owner's timezone.
struct Calendar<'a> {
    schedule: &'a Schedule,
    /// The owner as the rep directory knows them.
    owner: crate::reps::Recipient,
    tz: chrono_tz::Tz,
}

async fn calendar<'a>(db: &impl ConnectionTrait, fc: &'a FirstCall, call: &calls::Model, promise: &Promise) -> Result<Calendar<'a>, DbErr> {
    let schedule = super::replan::schedule_of(db, &fc.config, call).await?;
    let owner = owner_of(db, fc, promise).await?;
    Ok(Calendar { schedule, tz: owner.timezone.0, owner })
}

/// When `promise` is overdue (the end of its date in its owner's timezone); none for one without
/// a date.
fn overdue_at(promise: &Promise, cal: &Calendar) -> Option<DateTime<Utc>> {
    promise.deliver_by.map(|d| super::timing::end_of_day(d, cal.tz))
}

/// The plan of an open promise after `now`; nothing for a closed one or one without a date.
fn plan(fc: &FirstCall, promise: &Promise, cal: &Calendar, now: DateTime<Utc>) -> Plan {
    let (Some(deliver_by), true) = (promise.deliver_by, promise.state.is_open()) else {
        return Plan { next_reminder: None, next_escalation: None };
    };
    let bh = &cal.schedule.business_hours;
    let ahead = super::timing::promise_reminder_times(deliver_by, &fc.config.settings.promises.remind_business_days_before, bh, cal.tz)
        .into_iter()
        .find(|t| *t > now);
    let max = cal.schedule.max_reminders;
    let overdue_more = max == 0 || (promise.overdue_reminders as u32) < max;
    let next_reminder = ahead.or_else(|| {
        let first_day = deliver_by.succ_opt()?;
        overdue_more.then(|| super::timing::next_working_start(first_day, bh, cal.tz, now)).flatten()
    });
    Plan { next_reminder, next_escalation: next_escalation(promise, cal, now) }
}

/// The steps of the schedule still ahead of `promise`.
fn steps_ahead<'a>(promise: &Promise, cal: &Calendar<'a>) -> (Vec<String>, Vec<&'a EscalationStep>) {
    let sent = super::escalation::recorded(promise.escalated_steps.as_deref(), promise.escalation_level, cal.schedule);
    let ahead = super::escalation::ahead(cal.schedule, &sent);
    (sent, ahead)
}

/// Whether `step` is reached for `promise`, overdue since `since`, at `now`.
fn reached(step: &EscalationStep, promise: &Promise, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= since
        && (step.after_reminders.is_some_and(|n| promise.overdue_reminders as u32 >= n)
            || step.after_minutes_overdue.is_some_and(|m| now >= since + chrono::TimeDelta::minutes(m)))
}

/// When the next escalation step of an open promise is reached by time alone (a step counted in
/// reminders is checked as each reminder goes).
fn next_escalation(promise: &Promise, cal: &Calendar, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let since = overdue_at(promise, cal)?;
    let (_, ahead) = steps_ahead(promise, cal);
    if ahead.iter().any(|s| reached(s, promise, since, now)) {
        return Some(now);
    }
    ahead.iter().filter_map(|s| s.after_minutes_overdue).map(|m| since + chrono::TimeDelta::minutes(m)).min()
}

/// Replaces the promise's pending timers with its plan after `now`.
async fn replan(db: &impl ConnectionTrait, fc: &FirstCall, promise: &Promise, cal: &Calendar<'_>, now: DateTime<Utc>) -> Result<(), DbErr> {
    engine::cancel_pending(db, promise.id, &Steps::PROMISE_TIMERS).await?;
    engine::enqueue_many(db, plan(fc, promise, cal, now).jobs(promise.id), fc.max_attempts(), now).await
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
    let was = promise.deliver_by;
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
            // A new date is a new clock: not overdue, no escalation sent for it yet.
            am.overdue_reminders = Set(0);
            am.escalation_level = Set(0);
            am.escalated_steps = Set(None);
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
    let call = call_of(&txn, &promise).await?;
    let cal = calendar(&txn, fc, &call, &promise).await?;
    replan(&txn, fc, &promise, &cal, now).await?;
    if !promise.state.is_open() {
        plan_check_in(&txn, fc, &call, now).await?;
    }
    // What the rep's manager hears of at once: a promise slipping past the customer's date, a
    // must-have dropped.
    let alert = match &mark {
        Mark::Slip { to: new, reason } => promise.need_by.filter(|need_by| new > need_by).map(|need_by| Alert {
            key: format!("slipped.{}", new.format("%Y%m%d")),
            headline: format!("A promise to {{account}} slipped past the date the customer needs it by ({})", local_date(need_by)),
            changes: vec![
                format!("New date: {} (was {})", local_date(*new), was.map_or_else(|| "no date".to_string(), local_date)),
                format!("Why: {reason}"),
            ],
        }),
        Mark::Drop { reason } if promise.must_have => Some(Alert {
            key: "dropped".into(),
            headline: "A promise to {account} that answers a must-have was dropped".into(),
            changes: vec![format!("Why: {reason}")],
        }),
        _ => None,
    };
    if let Some(alert) = alert {
        let email = super::compose::manager_alert(&txn, fc, &call, Some(&promise), alert, actor, now)
            .await
            .map_err(|e| DbErr::Custom(format!("the alert to the manager: {e}")))?;
        crate::mail::outbox::enqueue(&txn, email, now).await?;
    }
    txn.commit().await?;
    Ok((promise, true))
}

/// A change the rep's manager hears of at once ([`super::compose::manager_alert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Tells this alert apart from the subject's others (its `Message-ID`).
    pub key: String,
    /// One line; `{account}` is replaced by the account's name.
    pub headline: String,
    /// What changed, a sentence each.
    pub changes: Vec<String>,
}

async fn call_of(db: &impl ConnectionTrait, promise: &Promise) -> Result<calls::Model, DbErr> {
    calls::Entity::find_by_id(promise.call_id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("call {} of promise {}", promise.call_id, promise.id)))
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
    pub const JOB_KINDS: [JobKind; 3] = [JobKind::PromiseRemind, JobKind::PromiseEscalate, JobKind::PromiseCheckIn];
    /// A promise's own timers (subject: the promise); the check-in's subject is the call.
    pub const PROMISE_TIMERS: [JobKind; 2] = [JobKind::PromiseRemind, JobKind::PromiseEscalate];
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
        return Err(StepError::Failed(format!("job kind {} needs a subject", job.kind)));
    };
    if job.kind() == Some(JobKind::PromiseCheckIn) {
        return check_in(db, fc, id, now).await;
    }
    let Some(promise) = entity::promises::Entity::find_by_id(id).lock_exclusive().one(db).await? else {
        return Ok(Effects::default());
    };
    // A promise delivered or dropped meanwhile has nothing left to do.
    if !promise.state.is_open() {
        return Ok(Effects::default());
    }
    let call = call_of(db, &promise).await?;
    // The owner and schedule, read once for the whole step.
    let cal = calendar(db, fc, &call, &promise).await?;
    let mut fx = Effects::default();
    let promise = match job.kind() {
        Some(JobKind::PromiseRemind) => remind(db, fc, &call, promise, &cal, now, &mut fx).await?,
        Some(JobKind::PromiseEscalate) => promise,
        _ => return Err(StepError::Failed(format!("the promise ledger has no step for job kind '{}'", job.kind))),
    };
    let promise = escalate_due_steps(db, fc, &call, promise, &cal, now, &mut fx).await?;
    replan(db, fc, &promise, &cal, now).await?;
    Ok(fx)
}

/// Reminds the owner: ahead of the date, on the day, or (overdue) each working morning after.
async fn remind(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: Promise,
    cal: &Calendar<'_>,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<Promise, StepError> {
    let overdue = overdue_at(&promise, cal).is_some_and(|t| now >= t);
    let n = promise.reminders_sent + 1;
    let email = super::compose::promise_reminder(db, fc, call, &promise, n, now).await?;
    if crate::mail::outbox::enqueue(db, email, now).await? {
        fx.emails += 1;
    }
    let id = promise.id;
    let overdue_n = promise.overdue_reminders + i32::from(overdue);
    let mut am = promise.into_active_model();
    am.reminders_sent = Set(n);
    am.overdue_reminders = Set(overdue_n);
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
            detail: Some(json!({"reminder": n, "overdue": overdue, "deliver_by": promise.deliver_by, "config_version": fc.config_version})),
        },
        now,
    )
    .await?;
    Ok(promise)
}

/// Sends every escalation step reached by an overdue promise, in order, to the owner's manager
/// chain (the call's schedule's steps, known by name as for calls).
async fn escalate_due_steps(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: &calls::Model,
    promise: Promise,
    cal: &Calendar<'_>,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<Promise, StepError> {
    let Some(since) = overdue_at(&promise, cal) else {
        return Ok(promise);
    };
    let (mut sent, ahead) = steps_ahead(&promise, cal);
    let Some(last) = ahead.iter().rposition(|s| reached(s, &promise, since, now)) else {
        return Ok(promise);
    };
    let owner = &cal.owner;
    let mut level = promise.escalation_level.max(sent.len() as i32);
    for step in &ahead[..=last] {
        let (to, role, note) = super::escalation::recipient(db, fc, &owner.email, owner, &step.to).await?;
        level += 1;
        let email = super::compose::promise_escalation(db, fc, call, &promise, (&to, role, note.as_deref()), level, now).await?;
        if crate::mail::outbox::enqueue(db, email, now).await? {
            fx.emails += 1;
        }
        audit::record(
            db,
            Change {
                actor: "engine",
                entity: "promise",
                entity_id: promise.id,
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
    let mut am = promise.into_active_model();
    am.escalation_level = Set(level);
    am.escalated_steps = Set(Some(serde_json::to_string(&sent).map_err(|e| StepError::Failed(format!("escalated steps: {e}")))?));
    am.updated_at = Set(now);
    Ok(am.update(db).await?)
}

/// Once no promise of `call` is open and at least one was delivered: the check-in, due
/// `promises.check_in_after_days` after now at the start of the rep's business day (once per
/// call).
async fn plan_check_in(db: &impl ConnectionTrait, fc: &FirstCall, call: &calls::Model, now: DateTime<Utc>) -> Result<(), DbErr> {
    use entity::check_ins;
    let promises = of_call(db, call.id).await?;
    let finished = promises.iter().all(|p| !p.state.is_open());
    let delivered = promises.iter().any(|p| p.state == PromiseState::Delivered);
    if !finished || !delivered || check_ins::Entity::find().filter(check_ins::Column::CallId.eq(call.id)).one(db).await?.is_some() {
        return Ok(());
    }
    let schedule = super::replan::schedule_of(db, &fc.config, call).await?;
    let tz = super::replan::rep_tz(db, &fc.config, call).await?.0;
    let first_day = now.with_timezone(&tz).date_naive() + chrono::Days::new(fc.config.settings.promises.check_in_after_days.into());
    let due_at = super::timing::next_working_start(first_day, &schedule.business_hours, tz, now).unwrap_or(now);
    check_ins::ActiveModel {
        call_id: Set(call.id),
        due_at: Set(due_at),
        sent_at: Set(None),
        answer: Set(None),
        note: Set(None),
        answered_by: Set(None),
        answered_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    engine::enqueue(db, NewJob::new(JobKind::PromiseCheckIn, call.id, due_at), fc.max_attempts(), now).await?;
    Ok(())
}

/// The check-in's step: the email asking the rep to call the customer, once.
async fn check_in(db: &impl ConnectionTrait, fc: &FirstCall, call_id: i64, now: DateTime<Utc>) -> Result<Effects, StepError> {
    use entity::check_ins;
    let mut fx = Effects::default();
    let Some(row) = check_ins::Entity::find().filter(check_ins::Column::CallId.eq(call_id)).lock_exclusive().one(db).await? else {
        return Ok(fx);
    };
    if row.sent_at.is_some() || row.answer.is_some() {
        return Ok(fx);
    }
    let Some(call) = calls::Entity::find_by_id(call_id).one(db).await? else {
        return Ok(fx);
    };
    let promises = of_call(db, call_id).await?;
    let email = super::compose::check_in(db, fc, &call, &promises, now).await?;
    if crate::mail::outbox::enqueue(db, email, now).await? {
        fx.emails += 1;
    }
    let mut am = row.into_active_model();
    am.sent_at = Set(Some(now));
    am.updated_at = Set(now);
    am.update(db).await?;
    audit::record(
        db,
        Change {
            actor: "engine",
            entity: "call",
            entity_id: call_id,
            action: "check_in_asked",
            from_state: None,
            to_state: None,
            detail: None,
        },
        now,
    )
    .await?;
    Ok(fx)
}

pub use entity::check_ins::{CheckInAnswer, Model as CheckIn};

/// Why a check-in's answer could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CheckInError {
    #[error("no call has id {0}")]
    NotFound(i64),
    #[error("call {0} has no check-in yet: it comes once every promise of the call is delivered")]
    NotYet(i64),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Records the customer's answer to the check-in (the first answer stays: recording again
/// changes nothing and returns it with `false`), with its audit entry and, with a CRM
/// connector, the job that writes it to the deal.
pub async fn record_check_in(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    call_id: i64,
    (answer, note): (CheckInAnswer, Option<String>),
    actor: &str,
) -> Result<(CheckIn, bool), CheckInError> {
    use entity::check_ins;
    let txn = crate::db::begin_write(db).await?;
    let call = calls::Entity::find_by_id(call_id).one(&txn).await?.ok_or(CheckInError::NotFound(call_id))?;
    let row = check_ins::Entity::find()
        .filter(check_ins::Column::CallId.eq(call_id))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(CheckInError::NotYet(call_id))?;
    if row.answer.is_some() {
        return Ok((row, false));
    }
    let mut am = row.into_active_model();
    am.answer = Set(Some(answer));
    am.note = Set(note.clone());
    am.answered_by = Set(Some(actor.to_string()));
    am.answered_at = Set(Some(now));
    am.updated_at = Set(now);
    let row = am.update(&txn).await?;
    // Answered before the email went: it is no longer needed.
    engine::cancel_pending(&txn, call_id, &[JobKind::PromiseCheckIn]).await?;
    audit::record(
        &txn,
        Change {
            actor,
            entity: "call",
            entity_id: call_id,
            action: "check_in_answered",
            from_state: None,
            to_state: None,
            detail: Some(json!({"answer": answer.as_str(), "note": note})),
        },
        now,
    )
    .await?;
    if let Some(job) = super::write_back::check_in_job(fc, &call, &row, now) {
        engine::enqueue(&txn, job, fc.crm_attempts(), now).await?;
    }
    txn.commit().await?;
    Ok((row, true))
}
