//! What `firstcall config check` prints and the dashboard shows: for an order placed at a
//! given time by a rep in a given timezone, when each schedule makes the call due, when its
//! reminders fire and when it escalates; and, against what runs, what an edit changes and which
//! open calls it moves.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::timing;
use crate::config::schedule::{EscalationTarget, Schedule};
use crate::config::{Config, ScheduleContent};
use crate::domain::Timezone;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchedulePreview {
    pub name: String,
    /// Which orders the schedule applies to, in words.
    pub applies_to: String,
    pub due_at: DateTime<Utc>,
    pub reminders: Vec<DateTime<Utc>>,
    pub escalations: Vec<EscalationPreview>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EscalationPreview {
    pub level: usize,
    /// The step's name, by which a call remembers it had the step (`escalation[].id`, else its
    /// `to`).
    pub step: String,
    pub to: String,
    /// When the step is reached if the call is never marked done.
    pub at: Option<DateTime<Utc>>,
    pub because: String,
}

pub fn schedules(config: &Config, at: DateTime<Utc>, tz: Timezone, reminders: usize) -> Vec<SchedulePreview> {
    config.schedules.iter().map(|s| preview(s, at, tz, reminders)).collect()
}

fn preview(s: &Schedule, at: DateTime<Utc>, tz: Timezone, n: usize) -> SchedulePreview {
    let due_at = timing::first_call_due_at(s, tz.0, at);
    // Enough reminders to place every reminder-count escalation too.
    let needed = s.escalation.iter().filter_map(|e| e.after_reminders).max().unwrap_or(0) as usize;
    let mut all = timing::reminder_times(s, tz.0, at, n.max(needed));
    if s.max_reminders > 0 {
        all.truncate(s.max_reminders as usize);
    }
    let escalations = s
        .escalation
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let by_reminder = e.after_reminders.and_then(|k| if k == 0 { Some(at) } else { all.get(k as usize - 1).copied() });
            let by_hours = e.after_minutes_overdue.map(|m| due_at + TimeDelta::minutes(m));
            let at = [by_reminder, by_hours].into_iter().flatten().min();
            let mut because = Vec::new();
            if let Some(k) = e.after_reminders {
                because.push(format!("after {k} reminder(s)"));
            }
            if let Some(m) = e.after_minutes_overdue {
                because.push(format!("{} hour(s) overdue", m as f64 / 60.0));
            }
            let to = match &e.to {
                EscalationTarget::Manager => "the rep's manager".to_string(),
                EscalationTarget::ManagerOfManager => "the manager's manager".to_string(),
                EscalationTarget::Address(a) => a.to_string(),
            };
            EscalationPreview { level: i + 1, step: e.id.clone(), to, at, because: because.join(" or ") }
        })
        .collect::<Vec<_>>();
    // Steps fire in order: a later step is never reached before an earlier one.
    let mut escalations = escalations;
    let mut floor: Option<DateTime<Utc>> = None;
    for e in &mut escalations {
        if let (Some(f), Some(t)) = (floor, e.at)
            && t < f
        {
            e.at = Some(f);
        }
        floor = e.at.or(floor);
    }
    all.truncate(n);
    SchedulePreview { name: s.name.clone(), applies_to: describe_rule(s), due_at, reminders: all, escalations }
}

fn describe_rule(s: &Schedule) -> String {
    let r = &s.rule;
    if r.is_catch_all() {
        return "every order no other schedule takes".into();
    }
    let mut parts = Vec::new();
    if let Some(m) = &r.min_amount {
        parts.push(format!("amount ≥ {m}"));
    }
    if let Some(m) = &r.max_amount {
        parts.push(format!("amount < {m}"));
    }
    if !r.sources.is_empty() {
        parts.push(format!("from {}", r.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if !r.segments.is_empty() {
        parts.push(format!("segment {}", r.segments.join(", ")));
    }
    format!("orders with {}", parts.join(" and "))
}

/// Local time with weekday and zone, e.g. `Mon 2026-11-23 14:00 CET`.
pub fn local(t: DateTime<Utc>, tz: Timezone) -> String {
    t.with_timezone(&tz.0).format("%a %Y-%m-%d %H:%M %Z").to_string()
}

/// The plain-text preview.
pub fn render(config: &Config, at: DateTime<Utc>, tz: Timezone, reminders: usize) -> String {
    let mut out = format!("Order placed {} ({}), rep in {}:\n", local(at, tz), at.format("%Y-%m-%dT%H:%M:%SZ"), tz);
    for p in schedules(config, at, tz, reminders) {
        out.push_str(&format!("\nschedule \"{}\" ({})\n", p.name, p.applies_to));
        out.push_str(&format!("  call due:    {}\n", local(p.due_at, tz)));
        if p.reminders.is_empty() {
            out.push_str("  reminders:   none (the cron never fires inside business hours)\n");
        }
        for (i, r) in p.reminders.iter().enumerate() {
            out.push_str(&format!("  reminder {}:  {}\n", i + 1, local(*r, tz)));
        }
        for e in &p.escalations {
            let when = e.at.map(|t| local(t, tz)).unwrap_or_else(|| "never (not enough reminders)".into());
            out.push_str(&format!("  escalate {}:  {} to {} ({}; step \"{}\")\n", e.level, when, e.to, e.because, e.step));
        }
    }
    out
}

/// What an edit changes in the schedules against `running`, an indented line each.
pub fn schedule_changes_text(running: &ScheduleContent, edited: &Config) -> String {
    let changes = crate::config::changes::schedule_changes(running, &edited.schedule_content());
    if changes.is_empty() {
        return "  schedules: unchanged\n".into();
    }
    changes.iter().map(|c| format!("  {c}\n")).collect()
}

/// Open calls listed one by one by `config check --against-running` and the dashboard; the rest
/// are counted.
pub const MOVES_LISTED: usize = 50;

/// The open calls whose timers `edited` moves at `now` (of the schedules it changes against
/// `running`), each with what moves, before and after in its rep's timezone: the first `list`
/// and a count, among at most `examine` open calls (`None`: all of them).
pub async fn moves_text(
    db: &impl sea_orm::ConnectionTrait,
    running: &ScheduleContent,
    edited: &Config,
    now: DateTime<Utc>,
    list: usize,
    examine: Option<usize>,
) -> Result<String, sea_orm::DbErr> {
    let changed = crate::config::changes::changed_schedules(running, &edited.schedule_content());
    let found = super::replan::moves(db, edited, &changed, now, list, examine).await?;
    let unexamined = match examine {
        Some(n) if found.unexamined => format!(
            "  (only the first {n} open calls of the changed schedules were examined; `firstcall config check --against-running` examines all)\n"
        ),
        _ => String::new(),
    };
    if found.total == 0 {
        return Ok(format!("  open calls that move: none\n{unexamined}"));
    }
    let mut out = format!("  open calls that move: {} (re-planned when the edit is loaded)\n", found.total);
    for m in &found.listed {
        let at = |t: Option<DateTime<Utc>>| match t {
            Some(t) if t <= now => "now".to_string(),
            Some(t) => local(t, m.tz),
            None => "none".to_string(),
        };
        let mut what = Vec::new();
        if m.before.due_at != m.after.due_at {
            what.push(format!("due {} -> {}", local(m.before.due_at, m.tz), local(m.after.due_at, m.tz)));
        }
        for (label, b, a) in [
            ("next reminder", m.before.next_reminder, m.after.next_reminder),
            ("next escalation", m.before.next_escalation, m.after.next_escalation),
        ] {
            if at(b) != at(a) {
                what.push(format!("{label} {} -> {}", at(b), at(a)));
            }
        }
        out.push_str(&format!("    call {} ({}, schedule \"{}\", {}): {}\n", m.call_id, m.rep_email, m.schedule, m.tz, what.join("; ")));
    }
    if found.total > found.listed.len() {
        out.push_str(&format!("    ... and {} more\n", found.total - found.listed.len()));
    }
    out.push_str(&unexamined);
    Ok(out)
}
