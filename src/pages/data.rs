//! What the pages show, read from the database and put into words: the call page's call,
//! emails and upcoming timers (times in the rep's timezone), and the dashboard's calls, counts,
//! dead jobs and failed emails. Reads only.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::PageError;
use crate::app::AppState;
use crate::domain::{EmailAddress, Timezone};
use crate::mail::templates::{duration_in_words, local_date, local_time, overdue_in_words};
use crate::recap::Recap;
use crate::workflow::queries;
use crate::workflow::{CallOutcome, CallState};
use entity::emails::{EmailKind, EmailState};
use entity::jobs::{JobKind, JobState};
use entity::promises::PromiseState;
use entity::{emails, jobs, orders, reps};

/// Dead jobs and failed emails listed on the dashboard; more wait in the API's lists.
const OPS_LIST_LIMIT: u64 = 50;

pub fn state_label(state: CallState) -> &'static str {
    match state {
        CallState::Scheduled => "Scheduled",
        CallState::Due => "Due",
        CallState::Overdue => "Overdue",
        CallState::Done => "Done",
        CallState::Cancelled => "Cancelled",
    }
}

pub fn outcome_label(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Aligned => "Aligned",
        CallOutcome::Adjusted => "Adjusted",
        CallOutcome::AtRisk => "At risk",
    }
}

fn email_kind_label(kind: EmailKind) -> &'static str {
    match kind {
        EmailKind::FirstCall => "Recap and invite",
        EmailKind::Reminder => "Reminder",
        EmailKind::Escalation => "Escalation",
        EmailKind::Cancellation => "Cancellation",
        EmailKind::Reassigned => "Reassignment notice",
        EmailKind::ContextUpdate => "Recap update from the CRM",
        EmailKind::PromiseReminder => "Promise reminder",
        EmailKind::PromiseEscalation => "Overdue promise escalation",
        EmailKind::ManagerAlert => "Alert to the manager",
        EmailKind::CheckIn => "Check-in after delivery",
        EmailKind::SignIn => "Sign-in link",
    }
}

fn email_state_label(state: EmailState, kind: EmailKind) -> &'static str {
    match state {
        EmailState::Pending => "queued",
        EmailState::Sent => "sent",
        EmailState::Skipped if kind.needs_open_promise() => "not sent: the promise was delivered or dropped",
        EmailState::Skipped => "not sent: the call was no longer open",
        EmailState::Failed => "failed",
    }
}

fn job_kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::CallStart => "Send the recap and invite",
        JobKind::CallRemind => "Reminder",
        JobKind::CallOverdue => "Becomes overdue",
        JobKind::CallEscalate => "Escalation",
        JobKind::CallCancelled => "Send the cancellation",
        JobKind::CallUpdated => "Send the updated invite",
        JobKind::CallChanged => "Tell the rep what changed since the recap",
        JobKind::CrmEnrich => "Read the deal from the CRM",
        JobKind::CrmReconcile => "Look for won deals whose webhook never came",
        JobKind::CrmWriteBack => "Record the call's outcome on the CRM deal",
        JobKind::RetentionSweep => "Remove old data (retention)",
        JobKind::ConfigReplan => "Re-plan open calls after a configuration change",
        JobKind::PromiseRemind => "Promise reminder",
        JobKind::PromiseEscalate => "Overdue promise escalation",
        JobKind::PromiseCheckIn => "Ask the rep to check in with the customer",
        JobKind::CrmWriteBackCheckIn => "Record the check-in on the CRM deal",
        JobKind::Noop | JobKind::NoopStep => "Timer",
    }
}

/// `HubSpot deal 1042`.
fn deal_label(source: &str, deal_id: &str) -> String {
    match crate::domain::Source::parse(source) {
        Ok(s) => format!("{} deal {deal_id}", crate::recap::format::source_name(s)),
        Err(_) => format!("deal {deal_id}"),
    }
}

fn utc(t: DateTime<Utc>) -> String {
    local_time(t, chrono_tz::UTC)
}

/// A promise as the call page shows it.
#[derive(Debug, Serialize)]
pub struct PromiseFacts {
    pub id: i64,
    pub text: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub open: bool,
    /// `Thu 10 Dec 2026`; none for a promise without a date.
    pub deliver_by: Option<String>,
    /// `2026-12-10`: the date field's value.
    pub deliver_by_iso: Option<String>,
    /// The date agreed on the call, when a slip moved it.
    pub agreed: Option<String>,
    pub overdue_by: Option<String>,
    pub need_by: Option<String>,
    pub must_have: bool,
    /// The requirements it answers, as stated.
    pub answers: Vec<String>,
    /// The owner's name, else email.
    pub owner: String,
    pub reason: Option<String>,
}

fn promise_state_label(state: PromiseState) -> &'static str {
    match state {
        PromiseState::Open => "Open",
        PromiseState::Slipped => "Slipped",
        PromiseState::Delivered => "Delivered",
        PromiseState::Dropped => "Dropped",
    }
}

/// The promises of call `id`, in ledger order, as of `now`.
pub async fn promise_facts(state: &AppState, id: i64, recap: &Recap, now: DateTime<Utc>) -> Result<Vec<PromiseFacts>, PageError> {
    let fc = state.first_call.get();
    let mut out = Vec::new();
    for p in crate::workflow::promises::of_call(&state.db, id).await? {
        let owner = crate::workflow::promises::owner_of(&state.db, &fc, &p).await?;
        let today = now.with_timezone(&owner.timezone.0).date_naive();
        let covers: Vec<String> = serde_json::from_value(p.covers.clone()).unwrap_or_default();
        out.push(PromiseFacts {
            id: p.id,
            text: p.text,
            state: p.state.as_str(),
            state_label: promise_state_label(p.state),
            open: p.state.is_open(),
            deliver_by: p.deliver_by.map(local_date),
            deliver_by_iso: p.deliver_by.map(|d| d.format("%Y-%m-%d").to_string()),
            agreed: p.agreed_deliver_by.filter(|a| Some(*a) != p.deliver_by).map(local_date),
            overdue_by: p.deliver_by.filter(|_| p.state.is_open()).and_then(|d| overdue_in_words(d, today)),
            need_by: p.need_by.map(local_date),
            must_have: p.must_have,
            answers: recap.requirements.iter().filter(|r| covers.contains(&r.id)).map(|r| r.text.clone()).collect(),
            owner: owner.name.unwrap_or_else(|| owner.email.to_string()),
            reason: p.reason,
        });
    }
    Ok(out)
}

/// The check-in after delivery as the call page shows it.
#[derive(Debug, Serialize)]
pub struct CheckInFacts {
    /// When the rep is asked to check in, in the rep's timezone.
    pub due_local: String,
    pub sent: bool,
    pub answer: Option<&'static str>,
    pub note: Option<String>,
    pub answered: Option<String>,
}

fn answer_label(answer: entity::check_ins::CheckInAnswer) -> &'static str {
    match answer {
        entity::check_ins::CheckInAnswer::Satisfied => "Satisfied",
        entity::check_ins::CheckInAnswer::Mixed => "Mixed",
        entity::check_ins::CheckInAnswer::Unhappy => "Unhappy",
    }
}

/// The check-in of call `id`, once there is one.
pub async fn check_in_facts(state: &AppState, id: i64, tz: chrono_tz::Tz) -> Result<Option<CheckInFacts>, PageError> {
    let row = entity::check_ins::Entity::find().filter(entity::check_ins::Column::CallId.eq(id)).one(&state.db).await?;
    Ok(row.map(|c| CheckInFacts {
        due_local: local_time(c.due_at, tz),
        sent: c.sent_at.is_some(),
        answer: c.answer.map(answer_label),
        note: c.note,
        answered: c.answered_at.map(|t| format!("{}{}", local_time(t, tz), c.answered_by.map(|b| format!(" ({b})")).unwrap_or_default())),
    }))
}

/// The call page's facts about one call (the recap is rendered separately).
#[derive(Debug, Serialize)]
pub struct CallFacts {
    pub id: i64,
    pub account: String,
    /// `HubSpot deal 1042`.
    pub deal: String,
    pub rep_name: String,
    pub rep_email: String,
    /// Why the call is with sales ops instead of the address the CRM named.
    pub fallback_reason: Option<String>,
    /// Who covers for the rep, out of office now: `Ana Lima is out of office until Fri 27 Nov
    /// 2026: Ben Brooks (ben@…) is covering.`
    pub covering: Option<String>,
    /// Whose clock the call's times count, when it is not the rep's (who covered when it opened).
    pub planned_by: Option<String>,
    pub state: String,
    pub state_label: &'static str,
    pub open: bool,
    pub cancelled: bool,
    /// Who cancelled the call by hand, and why (none when the order was cancelled).
    pub cancelled_by_hand: Option<String>,
    /// The due time in the rep's timezone, with the zone's name.
    pub due_local: String,
    pub overdue_by: Option<String>,
    /// The rep's timezone (the booking and snooze forms' times are in it), and now in it as the
    /// forms' earliest `datetime-local` value.
    pub tz: String,
    pub now_local_input: String,
    /// When the call is booked with the customer, and with whom, in the rep's timezone.
    pub booked: Option<String>,
    /// Until when reminders are snoozed, while they are.
    pub snoozed_until: Option<String>,
    pub done: Option<Done>,
    /// Every email about the call, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Timers still to fire (next reminder, escalation), soonest first.
    pub upcoming: Vec<Upcoming>,
    /// What happened to the call, who did it and why, oldest first.
    pub trail: Vec<TrailEntry>,
    /// What the rep was told changed in the recap since the visitor last opened the page.
    pub changed: Vec<ChangeNote>,
}

#[derive(Debug, Serialize)]
pub struct Done {
    pub outcome: String,
    pub outcome_label: &'static str,
    pub notes: Option<String>,
    pub at_local: Option<String>,
    pub by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    pub when: String,
    pub kind: &'static str,
    pub to: String,
    pub state: String,
    pub state_label: &'static str,
    /// Retention removed the email's text: after how many days.
    pub text_removed_after_days: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Upcoming {
    pub when: String,
    pub kind: &'static str,
}

/// `sales ops (dashboard): the customer chose another vendor`, for a call cancelled by hand.
fn cancelled_by_hand(audit: &[entity::audit_log::Model]) -> Option<String> {
    let detail = audit.iter().find(|r| r.action == "cancelled")?.detail.as_ref()?;
    Some(format!("{}: {}", detail.get("by")?.as_str()?, detail.get("reason")?.as_str()?))
}

/// One entry of a call's audit trail, as its page shows it.
#[derive(Debug, Serialize)]
pub struct TrailEntry {
    pub when: String,
    pub who: String,
    pub what: String,
}

/// Entries of a call's audit trail a page shows: the newest.
const TRAIL_ENTRIES: u64 = 100;

/// Call `id`'s newest audit entries ([`TRAIL_ENTRIES`]), newest first: the page's trail, its
/// changes since the last visit and who cancelled it by hand all come from this one read.
async fn call_audit(state: &AppState, id: i64) -> Result<Vec<entity::audit_log::Model>, PageError> {
    use entity::audit_log::{Column, Entity};
    Ok(Entity::find()
        .filter(Column::Entity.eq("call"))
        .filter(Column::EntityId.eq(id))
        .order_by_desc(Column::Id)
        .limit(TRAIL_ENTRIES)
        .all(&state.db)
        .await?)
}

/// The names of the people (signed in with their address) among the trail's actors, from the
/// rep directory: one query.
async fn actor_names(state: &AppState, audit: &[entity::audit_log::Model]) -> Result<HashMap<String, String>, DbErr> {
    let mut people: Vec<String> = audit.iter().filter(|r| r.actor.contains('@')).map(|r| r.actor.clone()).collect();
    people.sort_unstable();
    people.dedup();
    if people.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(reps::Entity::find()
        .filter(reps::Column::Email.is_in(people))
        .all(&state.db)
        .await?
        .into_iter()
        .filter(|r| !r.name.is_empty())
        .map(|r| (r.email, r.name))
        .collect())
}

/// The audit trail in words, oldest first.
fn trail(audit: &[entity::audit_log::Model], tz: chrono_tz::Tz, names: &HashMap<String, String>) -> Vec<TrailEntry> {
    audit
        .iter()
        .rev()
        .map(|r| TrailEntry {
            when: local_time(r.at, tz),
            who: match names.get(&r.actor) {
                Some(name) => format!("{name} ({})", r.actor),
                None => who_did(&r.actor),
            },
            what: what_happened(&r.action, r.from_state.as_deref(), r.to_state.as_deref(), r.detail.as_ref(), tz),
        })
        .collect()
}

/// Who an audit entry's actor is, in words.
fn who_did(actor: &str) -> String {
    match actor {
        "engine" => "firstcall".into(),
        "config" => "firstcall (configuration)".into(),
        "api" => "API".into(),
        "dashboard" => "the dashboard (API token)".into(),
        "rep" => "the rep (email link)".into(),
        "crm" => "the CRM".into(),
        other => match other.strip_prefix("webhook:") {
            Some(source) => format!("{source} webhook"),
            None => other.to_string(),
        },
    }
}

/// An audit entry in words: what happened, and why when someone said.
fn what_happened(action: &str, from: Option<&str>, to: Option<&str>, detail: Option<&serde_json::Value>, tz: chrono_tz::Tz) -> String {
    let text = |key: &str| detail.and_then(|d| d.get(key)).and_then(|v| v.as_str()).map(String::from);
    let number = |key: &str| detail.and_then(|d| d.get(key)).and_then(|v| v.as_i64());
    let time = |key: &str| {
        text(key).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| local_time(t.with_timezone(&Utc), tz)).unwrap_or_default()
    };
    let mut out = match action {
        "opened" => format!("Opened for {}, due {}", text("rep").unwrap_or_default(), time("due_at")),
        "state" => format!("Now {}", to.unwrap_or("?")),
        "reminded" => format!("Reminder {} sent", number("reminder").unwrap_or(0)),
        "escalated" => format!("Escalation {} sent to {}", number("level").unwrap_or(0), text("to").unwrap_or_default()),
        "booked" => {
            let with = text("with").map(|w| format!(" with {w}")).unwrap_or_default();
            format!("Booked with the customer for {}{with}", time("booked_at"))
        }
        "snoozed" => format!("Reminders snoozed until {}", time("snoozed_until")),
        "reassigned" => format!("Handed to {}", text("to_rep").unwrap_or_default()),
        "rescheduled" | "replanned" => "Due time or timers re-planned".to_string(),
        "rerouted" => "Routed to sales ops".to_string(),
        "cancelled" => "Cancelled".to_string(),
        "completed" => format!("Marked done: {}", text("outcome").unwrap_or_default().replace('_', " ")),
        "recap_changed" => {
            let n = detail.and_then(|d| d.get("changes")).and_then(|c| c.as_array()).map_or(0, Vec::len);
            format!("The rep was told of {n} change{} to the recap", if n == 1 { "" } else { "s" })
        }
        "crm_context" => "The CRM's view of the deal arrived".to_string(),
        other => match (from, to) {
            (Some(f), Some(t)) if f != t => format!("{} ({f} → {t})", other.replace('_', " ")),
            _ => other.replace('_', " "),
        },
    };
    if let Some(reason) = text("reason") {
        out.push_str(&format!(": {reason}"));
    }
    out
}

/// What changed in the recap after it went out, one entry per change email.
#[derive(Debug, Serialize)]
pub struct ChangeNote {
    pub when: String,
    pub lines: Vec<String>,
}

/// The changes told to the call's rep after `since` (the visitor's last visit; every one when
/// they have not opened the page before), newest first.
fn changes_since(audit: &[entity::audit_log::Model], since: Option<DateTime<Utc>>, tz: chrono_tz::Tz) -> Vec<ChangeNote> {
    audit
        .iter()
        .filter(|r| r.action == crate::workflow::changes::AUDIT_ACTION && since.is_none_or(|t| r.at > t))
        .map(|r| ChangeNote {
            when: local_time(r.at, tz),
            lines: r
                .detail
                .as_ref()
                .and_then(|d| d.get("changes"))
                .and_then(|c| c.as_array())
                .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
                .unwrap_or_default(),
        })
        .filter(|n| !n.lines.is_empty())
        .collect()
}

/// Loads call `id` with its recap; `since` is when the visitor last opened its page. A call
/// that does not exist is a 404.
pub async fn call_facts(state: &AppState, id: i64, since: Option<DateTime<Utc>>) -> Result<(CallFacts, Recap), PageError> {
    let record = queries::call_record(&state.db, id).await?.ok_or_else(|| PageError::not_found("There is no call with this number."))?;
    let recap = crate::workflow::compose::recap_for_call(&state.db, &state.first_call.get(), &record.call).await?;
    let detail = crate::http::calls::CallDetail::new(record, state.clock.now());
    let tz = recap.call.rep_timezone.0;
    let c = detail.call;
    let now = state.clock.now();
    let done = c.outcome.filter(|_| c.state == CallState::Done).map(|o| Done {
        outcome: o.as_str().to_string(),
        outcome_label: outcome_label(o),
        notes: c.notes.clone(),
        at_local: c.completed_at.map(|t| local_time(t, tz)),
        by: c.completed_by.clone(),
    });
    let covering = if c.state.is_open() { covering(state, &c.rep_email, recap.call.rep_name.as_deref(), now).await? } else { None };
    let planned_by = c
        .covered_by
        .as_ref()
        .filter(|_| c.state.is_open())
        .map(|d| format!("The call was opened while its rep was out of office: its due time counts {d}'s business hours."));
    let audit = call_audit(state, id).await?;
    let facts = CallFacts {
        id,
        trail: trail(&audit, tz, &actor_names(state, &audit).await?),
        changed: changes_since(&audit, since, tz),
        covering,
        planned_by,
        account: recap.deal.account_name.clone().unwrap_or_else(|| format!("Deal {}", recap.deal.deal_id)),
        deal: deal_label(recap.deal.source.as_str(), &recap.deal.deal_id),
        rep_name: recap.call.rep_name.clone().unwrap_or_else(|| c.rep_email.clone()),
        rep_email: c.rep_email.clone(),
        fallback_reason: c.fallback_reason.clone(),
        state_label: state_label(c.state),
        open: c.state.is_open(),
        cancelled: c.state == CallState::Cancelled,
        cancelled_by_hand: if c.state == CallState::Cancelled { cancelled_by_hand(&audit) } else { None },
        due_local: local_time(c.due_at, tz),
        overdue_by: c.overdue.then(|| duration_in_words(now - c.due_at)),
        tz: tz.name().to_string(),
        now_local_input: now.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string(),
        booked: c.booked_at.map(|t| match &c.booked_with {
            Some(with) => format!("{} with {with}", local_time(t, tz)),
            None => local_time(t, tz),
        }),
        // A booking's own pause is said by the booking.
        snoozed_until: c.snoozed_until.filter(|t| *t > now && c.state.is_open() && Some(*t) != c.booked_at).map(|t| local_time(t, tz)),
        done,
        history: detail
            .emails
            .into_iter()
            .map(|e| HistoryEntry {
                when: local_time(e.sent_at.unwrap_or(e.created_at), tz),
                kind: email_kind_label(e.kind),
                to: e.to,
                state_label: email_state_label(e.state, e.kind),
                state: e.state.as_str().to_string(),
                text_removed_after_days: e.body_removed_at.map(|_| state.config.settings.retention.sent_email_bodies_days),
            })
            .collect(),
        upcoming: detail
            .timers
            .into_iter()
            .filter(|t| t.state == JobState::Pending)
            .map(|t| Upcoming { when: local_time(t.run_at, tz), kind: job_kind_label(t.kind) })
            .collect(),
        state: c.state.as_str().to_string(),
    };
    Ok((facts, recap))
}

/// Who covers for the call's rep at `now`, in a sentence; none while the rep is in.
async fn covering(state: &AppState, rep_email: &str, rep_name: Option<&str>, now: DateTime<Utc>) -> Result<Option<String>, DbErr> {
    let default_tz = state.config.settings.defaults.timezone;
    let Ok(email) = EmailAddress::parse(rep_email) else { return Ok(None) };
    let rep = crate::reps::recipient(&state.db, &email, default_tz).await?;
    let Some(cover) = crate::reps::absences::cover(&state.db, &rep, now, default_tz).await? else { return Ok(None) };
    let delegate = match &cover.delegate.name {
        Some(n) => format!("{n} ({})", cover.delegate.email),
        None => cover.delegate.email.to_string(),
    };
    Ok(Some(format!(
        "{} is out of office until {}: {delegate} is covering, and gets the call's emails with {} in copy.",
        rep_name.unwrap_or(rep_email),
        local_date(cover.absence.last_day),
        rep_name.unwrap_or(rep_email)
    )))
}

/// One call on the dashboard.
#[derive(Debug, Serialize)]
pub struct CallRow {
    pub id: i64,
    pub account: String,
    pub deal: String,
    pub rep: String,
    pub rep_email: String,
    pub state: String,
    pub state_label: &'static str,
    pub overdue: bool,
    /// In the rep's timezone.
    pub due_local: String,
    pub outcome_label: Option<&'static str>,
    /// Open and with sales ops because firstcall may not email the rep the CRM named: the row
    /// links to the call page's "Pick the rep".
    pub pick_rep: bool,
}

#[derive(Debug, Serialize)]
pub struct StateCount {
    pub state: &'static str,
    pub label: &'static str,
    /// As shown: exact up to `queries::COUNTED`, then an estimate.
    pub n: String,
}

#[derive(Debug, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub call_id: Option<i64>,
    pub kind: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub failed_at: String,
}

#[derive(Debug, Serialize)]
pub struct EmailRow {
    pub id: i64,
    pub call_id: Option<i64>,
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// A send's outcome was unknown: a retry may deliver a second copy.
    pub may_have_arrived: bool,
}

#[derive(Debug, Serialize)]
pub struct Board {
    /// Calls per state (for the chosen rep, if any).
    pub counts: Vec<StateCount>,
    /// Open calls (scheduled, due or overdue), as shown.
    pub open: String,
    /// Open calls past their due time, as shown.
    pub past_due: String,
    pub calls: Vec<CallRow>,
    /// Where the next page of calls starts, if there is one.
    #[serde(skip)]
    pub next: Option<queries::Position>,
    /// Every rep who has a call, for the filter.
    pub reps: Vec<String>,
    pub dead_jobs: Vec<JobRow>,
    pub failed_emails: Vec<EmailRow>,
}

/// A running process as the dashboard lists it.
#[derive(Debug, Serialize)]
pub struct ProcessRow {
    pub instance_id: String,
    pub role: String,
    pub version: String,
    /// When it loaded `version`, in UTC.
    pub loaded: String,
    /// Seconds since it last said it was alive.
    pub seen_secs_ago: i64,
    /// The process serving this page.
    pub this: bool,
    /// It has run another version than the newest for more than a minute.
    pub stale: bool,
    /// The last edit of `config/` it refused: when (UTC) and why (file, key, reason).
    pub refused: Option<String>,
    pub refused_at: Option<String>,
}

/// The configuration each running process runs: the version in force here, the newest, and
/// the processes (`serve`, `worker`) seen in the last minute.
#[derive(Debug, Serialize)]
pub struct Configuration {
    pub version: String,
    pub newest: Option<String>,
    pub processes: Vec<ProcessRow>,
}

pub async fn configuration(state: &AppState) -> Result<Configuration, sea_orm::DbErr> {
    let now = state.clock.now();
    let running = crate::config_versions::running(&state.db, now).await?;
    let newest = crate::config_versions::newest(&running).map(|p| p.version.clone());
    let utc = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let processes = running
        .iter()
        .map(|p| ProcessRow {
            instance_id: p.instance_id.clone(),
            role: p.role.clone(),
            version: p.version.clone(),
            loaded: utc(p.loaded_at),
            seen_secs_ago: (now - p.seen_at).num_seconds().max(0),
            this: p.instance_id == state.instance_id,
            stale: crate::config_versions::stale(p, &running, now).is_some(),
            refused: p.refused.clone(),
            refused_at: p.refused_at.map(utc),
        })
        .collect();
    Ok(Configuration { version: state.first_call.get().config_version.clone(), newest, processes })
}

/// The dashboard's data: a page of calls matching `states` and `rep` after `after` (open first,
/// overdue on top), the counts, and what needs attention.
pub async fn board(
    state: &AppState,
    states: &[CallState],
    rep: Option<&crate::domain::EmailAddress>,
    after: Option<queries::Position>,
    limit: u64,
) -> Result<Board, sea_orm::DbErr> {
    let db = &state.db;
    let now = state.clock.now();
    let page = queries::page_of_calls(db, states, rep, after, limit).await?;
    let (rows, next) = (page.calls, page.next);

    // Every count reads at most `queries::COUNTED` rows of an index, however many calls there are.
    let (by_state, past_due) = queries::count_calls(db, &CallState::ALL, rep, Some(now)).await?;
    let open = CallState::ALL.iter().zip(&by_state).filter(|(s, _)| s.is_open()).map(|(_, n)| *n).sum::<queries::Count>().label();
    let counts =
        CallState::ALL.iter().zip(&by_state).map(|(s, n)| StateCount { state: s.as_str(), label: state_label(*s), n: n.label() }).collect();
    let past_due = past_due.map(|n| n.label()).unwrap_or_default();

    let calls = call_rows(state, rows, now).await?;

    let reps = state.rep_choices.get(db, now).await?.to_vec();
    let dead_jobs = jobs::Entity::find()
        .filter(jobs::Column::State.eq(JobState::Dead))
        .order_by_asc(jobs::Column::RunAt)
        .limit(OPS_LIST_LIMIT)
        .all(db)
        .await?
        .into_iter()
        .map(|j| JobRow {
            id: j.id,
            call_id: j.subject_id.filter(|_| crate::workflow::FirstCall::JOB_KINDS.contains(&j.kind)),
            kind: job_kind_label(j.kind),
            attempts: j.attempts,
            last_error: j.last_error,
            failed_at: utc(j.updated_at),
        })
        .collect();
    let failed_emails = emails::Entity::find()
        .filter(emails::Column::State.eq(EmailState::Failed))
        .order_by_desc(emails::Column::Id)
        .limit(OPS_LIST_LIMIT)
        .all(db)
        .await?
        .into_iter()
        .map(|e| EmailRow {
            id: e.id,
            call_id: e.call_id,
            kind: email_kind_label(e.kind),
            to: e.to_addr,
            subject: e.subject,
            attempts: e.attempts,
            last_error: e.last_error,
            may_have_arrived: e.unknown_outcomes > 0,
        })
        .collect();
    Ok(Board { counts, open, past_due, calls, next, reps, dead_jobs, failed_emails })
}

/// Calls as the dashboard and the home page list them: with the account's name, the rep's name
/// and the due time in the rep's timezone.
pub async fn call_rows(state: &AppState, rows: Vec<entity::calls::Model>, now: DateTime<Utc>) -> Result<Vec<CallRow>, sea_orm::DbErr> {
    let db = &state.db;
    let order_ids: Vec<i64> = rows.iter().map(|c| c.order_id).collect();
    // The account names alone (an order row carries its line items too).
    let accounts: HashMap<i64, Option<String>> = orders::Entity::find()
        .select_only()
        .columns([orders::Column::Id, orders::Column::AccountName])
        .filter(orders::Column::Id.is_in(order_ids))
        .into_tuple::<(i64, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let emails_listed: Vec<String> = rows.iter().map(|c| c.rep_email.clone()).collect();
    let directory: HashMap<String, reps::Model> = reps::Entity::find()
        .filter(reps::Column::Email.is_in(emails_listed))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.email.clone(), r))
        .collect();
    let default_tz = state.config.settings.defaults.timezone;
    Ok(rows
        .into_iter()
        .map(|c| {
            let rep = directory.get(&c.rep_email);
            let tz = rep.and_then(|r| Timezone::parse(&r.timezone).ok()).unwrap_or(default_tz);
            CallRow {
                id: c.id,
                account: accounts.get(&c.order_id).cloned().flatten().unwrap_or_else(|| format!("Deal {}", c.deal_id)),
                deal: deal_label(&c.source, &c.deal_id),
                rep: rep.map(|r| r.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| c.rep_email.clone()),
                state_label: state_label(c.state),
                overdue: c.state.is_open() && c.due_at <= now,
                due_local: local_time(c.due_at, tz.0),
                outcome_label: c.outcome.map(outcome_label),
                pick_rep: c.state.is_open() && c.fallback_reason.is_some(),
                rep_email: c.rep_email,
                state: c.state.as_str().to_string(),
            }
        })
        .collect())
}

/// Calls and promises a home page lists at most, each.
const HOME_LISTED: u64 = 200;

/// A signed-in person's home page: their open calls (and those they cover), their open promises,
/// and for a manager their team's.
#[derive(Debug, Serialize)]
pub struct Home {
    pub calls: Vec<CallRow>,
    pub promises: Vec<PromiseRow>,
    pub team_calls: Vec<CallRow>,
    pub team_promises: Vec<PromiseRow>,
}

pub async fn home(state: &AppState, person: &crate::people::Person, now: DateTime<Utc>) -> Result<Home, sea_orm::DbErr> {
    use entity::{calls, promises};
    let me = person.email.to_string();
    let mut people: Vec<String> = person.team.iter().cloned().collect();
    people.push(me.clone());
    let open_calls = calls::Entity::find()
        .filter(calls::Column::State.is_in(CallState::OPEN))
        .filter(Condition::any().add(calls::Column::RepEmail.is_in(people.clone())).add(calls::Column::CoveredBy.eq(me.clone())))
        .order_by_asc(calls::Column::DueAt)
        .order_by_asc(calls::Column::Id)
        .limit(HOME_LISTED)
        .all(&state.db)
        .await?;
    let mine: std::collections::HashSet<i64> =
        open_calls.iter().filter(|c| c.rep_email == me || c.covered_by.as_deref() == Some(me.as_str())).map(|c| c.id).collect();
    let (my_calls, team_calls): (Vec<CallRow>, Vec<CallRow>) =
        call_rows(state, open_calls, now).await?.into_iter().partition(|c| mine.contains(&c.id));
    let open_promises = promises::Entity::find()
        .filter(promises::Column::State.is_in(PromiseState::OPEN))
        .filter(promises::Column::OwnerEmail.is_in(people))
        .order_by_asc(promises::Column::DeliverBy)
        .order_by_asc(promises::Column::Id)
        .limit(HOME_LISTED)
        .all(&state.db)
        .await?;
    let ids: Vec<i64> = open_promises.iter().map(|p| p.call_id).collect();
    let names = accounts(state, &ids).await?;
    let today = now.date_naive();
    let (my_promises, team_promises): (Vec<PromiseRow>, Vec<PromiseRow>) = open_promises
        .into_iter()
        .map(|p| {
            let account = names.get(&p.call_id).map(|n| n.0.clone()).unwrap_or_else(|| format!("Call {}", p.call_id));
            PromiseRow::of(p, account, today)
        })
        .partition(|p| p.owner == me);
    Ok(Home { calls: my_calls, promises: my_promises, team_calls, team_promises })
}

/// Pending events counted at most, so a large backlog costs the page no more than this.
const PENDING_COUNTED: i64 = 10_000;
/// The latest stored events the dashboard lists.
const LATEST_EVENTS: u64 = 10;

/// One stored webhook event on the dashboard.
#[derive(Debug, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub source: String,
    pub crm_event_id: String,
    pub deal: String,
    /// `pending`, what applying it did, or `failed`.
    pub outcome: String,
    pub received: String,
    pub error: Option<String>,
}

/// The webhook inbox: what waits to be applied, what could not be, and the latest events.
#[derive(Debug, Serialize)]
pub struct Inbox {
    /// Stored events the engine has not applied yet, counted up to `PENDING_COUNTED`.
    pub pending: i64,
    pub pending_more: bool,
    /// Seconds since the oldest of them was received.
    pub oldest_pending_secs: Option<i64>,
    pub failed: Vec<EventRow>,
    pub latest: Vec<EventRow>,
}

pub async fn inbox(state: &AppState) -> Result<Inbox, sea_orm::DbErr> {
    use entity::webhook_events::{self, Column as C};
    use sea_orm::ConnectionTrait;
    let db = &state.db;
    let backend = db.get_database_backend();
    // Every read here takes only the partial indexes of pending and failed events, and the
    // primary key. The pending events, counted, and the oldest of them in one statement.
    let pending = db
        .query_one_raw(crate::db::stmt(
            backend,
            "SELECT (SELECT COUNT(*) FROM (SELECT id FROM webhook_events WHERE outcome = $1 LIMIT $2) p) AS n, \
             (SELECT received_at FROM webhook_events WHERE outcome = $1 ORDER BY id LIMIT 1) AS oldest",
            vec![crate::workflow::orders::PENDING.into(), (PENDING_COUNTED + 1).into()],
        ))
        .await?;
    let (counted, oldest) = match pending {
        Some(r) => (r.try_get::<i64>("", "n")?, r.try_get::<Option<DateTime<Utc>>>("", "oldest")?),
        None => (0, None),
    };
    let rows = |outcome: Option<&str>, limit: u64| {
        let mut q = webhook_events::Entity::find()
            .select_only()
            .columns([C::Id, C::Source, C::DedupeKey, C::DealId, C::Outcome, C::ReceivedAt, C::Error])
            .order_by_desc(C::Id)
            .limit(limit);
        if let Some(o) = outcome {
            q = q.filter(C::Outcome.eq(o));
        }
        q.into_tuple::<(i64, String, String, Option<String>, String, DateTime<Utc>, Option<String>)>().all(db)
    };
    let row = |(id, source, crm_event_id, deal, outcome, received, error): (
        i64,
        String,
        String,
        Option<String>,
        String,
        DateTime<Utc>,
        Option<String>,
    )| {
        EventRow {
            id,
            deal: deal.map(|d| deal_label(&source, &d)).unwrap_or_default(),
            source,
            crm_event_id,
            outcome,
            received: utc(received),
            error,
        }
    };
    let failed = rows(Some("failed"), OPS_LIST_LIMIT).await?.into_iter().map(row).collect();
    let latest = rows(None, LATEST_EVENTS).await?.into_iter().map(row).collect();
    Ok(Inbox {
        pending: counted.min(PENDING_COUNTED),
        pending_more: counted > PENDING_COUNTED,
        oldest_pending_secs: oldest.map(|t| (state.clock.now() - t).num_seconds().max(0)),
        failed,
        latest,
    })
}

/// Open promises on the dashboard: the most overdue first; more wait in the API's list.
const PROMISES_LISTED: u64 = 50;
/// Deals on the at-risk list.
const AT_RISK_LISTED: u64 = 20;

/// The dashboard's promises: open ones, overdue first and grouped by owner, and the deals at risk.
#[derive(Debug, Serialize)]
pub struct PromisesBoard {
    pub promises: Vec<PromiseRow>,
    /// More open promises with a date than listed.
    pub more: bool,
    pub at_risk: Vec<AtRiskRow>,
}

#[derive(Debug, Serialize)]
pub struct PromiseRow {
    pub id: i64,
    pub call_id: i64,
    pub account: String,
    pub text: String,
    pub owner: String,
    pub deliver_by: String,
    pub overdue: bool,
    pub state_label: &'static str,
}

impl PromiseRow {
    fn of(p: entity::promises::Model, account: String, today: chrono::NaiveDate) -> PromiseRow {
        PromiseRow {
            id: p.id,
            call_id: p.call_id,
            account,
            owner: p.owner_email,
            deliver_by: p.deliver_by.map(local_date).unwrap_or_default(),
            overdue: p.deliver_by.is_some_and(|d| d < today),
            state_label: promise_state_label(p.state),
            text: p.text,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AtRiskRow {
    pub call_id: i64,
    pub account: String,
    pub rep: String,
    /// Why the deal is on the list.
    pub why: String,
}

/// Account names of calls, by call id (`Deal <id>` when the order has none).
async fn accounts(state: &AppState, call_ids: &[i64]) -> Result<HashMap<i64, (String, String)>, sea_orm::DbErr> {
    use entity::calls;
    let calls = calls::Entity::find().filter(calls::Column::Id.is_in(call_ids.iter().copied())).all(&state.db).await?;
    let order_ids: Vec<i64> = calls.iter().map(|c| c.order_id).collect();
    let names: HashMap<i64, Option<String>> = orders::Entity::find()
        .filter(orders::Column::Id.is_in(order_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.account_name))
        .collect();
    Ok(calls
        .into_iter()
        .map(|c| {
            let account = names.get(&c.order_id).cloned().flatten().unwrap_or_else(|| format!("Deal {}", c.deal_id));
            (c.id, (account, c.rep_email))
        })
        .collect())
}

/// The open promises with a date (the most overdue first, then by owner) and the deals at risk:
/// calls marked at risk whose promises are still open, and promises moved past the customer's date.
pub async fn promises_board(state: &AppState, now: DateTime<Utc>) -> Result<PromisesBoard, sea_orm::DbErr> {
    use entity::{calls, promises};
    use sea_orm::sea_query::{Expr, ExprTrait};
    let open = PromiseState::OPEN;
    let mut rows = promises::Entity::find()
        .filter(promises::Column::State.is_in(open))
        .filter(promises::Column::DeliverBy.is_not_null())
        .order_by_asc(promises::Column::DeliverBy)
        .order_by_asc(promises::Column::Id)
        .limit(PROMISES_LISTED + 1)
        .all(&state.db)
        .await?;
    let more = rows.len() as u64 > PROMISES_LISTED;
    rows.truncate(PROMISES_LISTED as usize);
    let at_risk_calls = calls::Entity::find()
        .filter(calls::Column::State.eq(CallState::Done))
        .filter(calls::Column::Outcome.eq(CallOutcome::AtRisk))
        .order_by_desc(calls::Column::CompletedAt)
        .limit(AT_RISK_LISTED)
        .all(&state.db)
        .await?;
    let at_risk_open: Vec<i64> = promises::Entity::find()
        .select_only()
        .column(promises::Column::CallId)
        .filter(promises::Column::CallId.is_in(at_risk_calls.iter().map(|c| c.id)))
        .filter(promises::Column::State.is_in(open))
        .distinct()
        .into_tuple()
        .all(&state.db)
        .await?;
    let past_need: Vec<promises::Model> = promises::Entity::find()
        .filter(promises::Column::State.is_in(open))
        .filter(Expr::col(promises::Column::DeliverBy).gt(Expr::col(promises::Column::NeedBy)))
        .order_by_asc(promises::Column::NeedBy)
        .limit(AT_RISK_LISTED)
        .all(&state.db)
        .await?;
    let mut ids: Vec<i64> =
        rows.iter().map(|p| p.call_id).chain(at_risk_open.iter().copied()).chain(past_need.iter().map(|p| p.call_id)).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = accounts(state, &ids).await?;
    let name = |call: i64| names.get(&call).cloned().unwrap_or_else(|| (format!("Call {call}"), String::new()));
    let today = now.date_naive();
    let mut promises: Vec<PromiseRow> = rows
        .into_iter()
        .map(|p| {
            let account = name(p.call_id).0;
            PromiseRow::of(p, account, today)
        })
        .collect();
    // Overdue first; within each, by owner, then by date (the query's order).
    promises.sort_by(|a, b| b.overdue.cmp(&a.overdue).then_with(|| a.owner.cmp(&b.owner)));
    let mut at_risk: Vec<AtRiskRow> = at_risk_calls
        .iter()
        .filter(|c| at_risk_open.contains(&c.id))
        .map(|c| AtRiskRow {
            call_id: c.id,
            account: name(c.id).0,
            rep: c.rep_email.clone(),
            why: "The first call was marked at risk, and promises are still open".into(),
        })
        .collect();
    at_risk.extend(past_need.into_iter().map(|p| AtRiskRow {
        call_id: p.call_id,
        account: name(p.call_id).0,
        rep: name(p.call_id).1,
        why: format!(
            "\u{201c}{}\u{201d} is due {}, after the customer needs it ({})",
            p.text,
            p.deliver_by.map(local_date).unwrap_or_default(),
            p.need_by.map(local_date).unwrap_or_default()
        ),
    }));
    Ok(PromisesBoard { promises, more, at_risk })
}
