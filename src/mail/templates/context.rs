//! What an email template can use: one [`EmailContext`] per email, built from the recap and the
//! facts of the moment (which reminder, how late, who is told). Everything here is computed
//! before rendering, so a template only formats: no template needs to know about timezones.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::recap::Recap;

/// The kinds of email firstcall sends about a first call (the outbox's kinds). Each renders
/// `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`.
pub use entity::emails::EmailKind;

/// Who an escalation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientRole {
    Manager,
    ManagerOfManager,
    /// The sales-ops inbox, when the directory has no manager to escalate to.
    SalesOps,
    /// An address the schedule names for escalations.
    Contact,
}

/// A promise made to the customer, as a promise email shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromiseInfo {
    pub text: String,
    /// `Tue 29 Dec 2026`; none for a promise without a date.
    pub deliver_by: Option<String>,
    /// `today`, `tomorrow`, `in 5 days` (calendar days in the owner's timezone), `3 days ago`.
    pub due_in: Option<String>,
    /// `3 days`: how long its date has passed while it was open; none while it is not overdue.
    pub overdue_by: Option<String>,
    /// The requirements it answers, as the customer stated them.
    pub answers: Vec<String>,
    /// Whether one of them is a must-have.
    pub must_have: bool,
    /// `Wed 6 Jan 2027`: the earliest date the customer needs it by.
    pub need_by: Option<String>,
    /// `open`, `slipped`, `delivered`, `dropped`.
    pub state: String,
    /// Why it slipped or was dropped.
    pub reason: Option<String>,
    /// The owner's name, else email address.
    pub owner_name: String,
    /// Where the owner marks it delivered, slipped or dropped (the call page's promises).
    pub url: String,
}

/// A change the rep's manager hears of at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertInfo {
    /// One line: `Ana Lima marked the first call with Acme Corp at risk`.
    pub headline: String,
    /// What changed, a sentence each.
    pub changes: Vec<String>,
    /// Who made the change (`api`, `call page`, the rep's address).
    pub by: String,
    /// The manager's name, else none.
    pub recipient_name: Option<String>,
    /// Why the manager is sales ops (the rep has no manager in the directory); none otherwise.
    pub note: Option<String>,
}

/// `Tue 29 Dec 2026`.
pub fn local_date(d: chrono::NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

/// `1 day`, `3 days`: how long date `d` has passed on `today`; none when it has not.
pub fn overdue_in_words(d: chrono::NaiveDate, today: chrono::NaiveDate) -> Option<String> {
    match (today - d).num_days() {
        n if n < 1 => None,
        1 => Some("1 day".into()),
        n => Some(format!("{n} days")),
    }
}

/// `today`, `tomorrow`, `in 5 days`, `yesterday`, `3 days ago`: `d` seen from `today`.
pub fn days_from(today: chrono::NaiveDate, d: chrono::NaiveDate) -> String {
    match (d - today).num_days() {
        0 => "today".into(),
        1 => "tomorrow".into(),
        -1 => "yesterday".into(),
        n if n > 1 => format!("in {n} days"),
        n => format!("{} days ago", -n),
    }
}

/// Out of office: the email goes to who covers for the call's rep, the rep in copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverInfo {
    /// The rep who is away: their name, else address.
    pub rep_name: String,
    /// Who the email goes to: their name, else address.
    pub delegate_name: String,
    /// `Fri 4 Dec 2026`: the rep's last day away.
    pub until: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationInfo {
    /// 1 for the first escalation step, 2 for the next.
    pub level: u32,
    pub recipient_role: RecipientRole,
    pub recipient_name: Option<String>,
    /// Why this recipient, when it is not the obvious one (e.g. "ana@… has no manager in the
    /// rep directory").
    pub note: Option<String>,
}

/// The data every template of an email kind renders from. Fields that do not apply to a kind
/// are `none` (test them with `{% if … %}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailContext {
    pub kind: EmailKind,
    pub recap: Recap,
    /// The account name, else `deal <id>`: what the customer is called in subjects.
    pub account: String,
    /// The recipient rep's name, else their email address (for an escalation: the rep whose
    /// call is late; for a reassignment: the rep who had the call).
    pub rep_name: String,
    /// The email address of the call's rep.
    pub rep_email: String,
    pub due_at: DateTime<Utc>,
    /// `Tue 3 Mar 2026, 14:00 EST (America/New_York)`: the due time in the rep's timezone.
    pub due_local: String,
    /// The rep's IANA timezone name.
    pub timezone: String,
    /// The call page: recap and done form (a signed link).
    pub call_url: String,
    /// Reminders only: 1 for the first reminder.
    pub reminder_number: Option<u32>,
    /// `3 hours 20 minutes`; none while the call is not yet overdue.
    pub overdue_by: Option<String>,
    /// Escalations only.
    pub escalation: Option<EscalationInfo>,
    /// Reassignments only: who has the call now.
    pub new_rep_name: Option<String>,
    /// Why the email goes to sales ops rather than the address the CRM named, e.g. `the owner
    /// address x@… is not in the rep directory nor in mail.allowed_recipient_domains`; none when
    /// it goes to the rep.
    pub fallback_reason: Option<String>,
    /// Why the recap lacks the CRM's view of the deal, e.g. `HubSpot had not answered when this
    /// was sent (the CRM did not answer: hubspot 503)`; none when the CRM's context is in the
    /// recap or no connector reads that CRM.
    pub context_note: Option<String>,
    /// Recap updates only: what changed, one sentence each (`New requirement: …`).
    pub changes: Vec<String>,
    /// Recap updates only: the CRM the changes came from (`HubSpot`).
    pub crm: Option<String>,
    /// Promise emails only: the promise.
    pub promise: Option<PromiseInfo>,
    /// Manager alerts only: what happened.
    pub alert: Option<AlertInfo>,
    /// Check-ins only: each promise of the call and what became of it, a sentence each.
    pub promise_history: Vec<String>,
    /// Cancellations by hand only: who cancelled the call and why (`sales ops (dashboard)
    /// cancelled it: …`); none when the order was cancelled.
    pub cancel_reason: Option<String>,
    /// The call's rep is out of office and the email goes to who covers for them (the emails to
    /// the call's rep); none otherwise.
    pub covering: Option<CoverInfo>,
}

impl EmailContext {
    fn new(kind: EmailKind, recap: Recap, call_url: String) -> Self {
        let tz = recap.call.rep_timezone;
        let account = recap.deal.account_name.clone().unwrap_or_else(|| format!("deal {}", recap.deal.deal_id));
        let rep_name = recap.call.rep_name.clone().unwrap_or_else(|| recap.call.rep_email.clone());
        EmailContext {
            kind,
            account,
            rep_name,
            rep_email: recap.call.rep_email.clone(),
            due_at: recap.call.due_at,
            due_local: local_time(recap.call.due_at, tz.0),
            timezone: tz.name().to_string(),
            call_url,
            reminder_number: None,
            overdue_by: None,
            escalation: None,
            new_rep_name: None,
            fallback_reason: None,
            context_note: None,
            changes: Vec::new(),
            crm: None,
            promise: None,
            alert: None,
            promise_history: Vec::new(),
            cancel_reason: None,
            covering: None,
            recap,
        }
    }

    pub fn first_call(recap: Recap, call_url: impl Into<String>) -> Self {
        Self::new(EmailKind::FirstCall, recap, call_url.into())
    }

    /// The `number`th reminder; `overdue` is how late the call is now, if it is.
    pub fn reminder(recap: Recap, call_url: impl Into<String>, number: u32, overdue: Option<Duration>) -> Self {
        let mut ctx = Self::new(EmailKind::Reminder, recap, call_url.into());
        ctx.reminder_number = Some(number);
        ctx.overdue_by = overdue.filter(|d| *d > Duration::zero()).map(duration_in_words);
        ctx
    }

    pub fn escalation(recap: Recap, call_url: impl Into<String>, escalation: EscalationInfo, overdue: Option<Duration>) -> Self {
        let mut ctx = Self::new(EmailKind::Escalation, recap, call_url.into());
        ctx.escalation = Some(escalation);
        ctx.overdue_by = overdue.filter(|d| *d > Duration::zero()).map(duration_in_words);
        ctx
    }

    pub fn cancellation(recap: Recap, call_url: impl Into<String>) -> Self {
        Self::new(EmailKind::Cancellation, recap, call_url.into())
    }

    /// To the rep: what the CRM's view of the deal changed in the recap (`changes`, one sentence
    /// each), when it arrived after the first email.
    /// To the rep: what changed in the recap since it went out; `crm` names the CRM whose
    /// answer changed it, none when the proposal or the order changed.
    pub fn context_update(recap: Recap, call_url: impl Into<String>, crm: Option<String>, changes: Vec<String>) -> Self {
        let mut ctx = Self::new(EmailKind::ContextUpdate, recap, call_url.into());
        ctx.crm = crm;
        ctx.changes = changes;
        ctx
    }

    /// To a promise's owner: the `number`th reminder of `promise`, whose date is near or today.
    /// `rep_name` is the owner's.
    pub fn promise_reminder(recap: Recap, call_url: impl Into<String>, number: u32, promise: PromiseInfo) -> Self {
        let mut ctx = Self::new(EmailKind::PromiseReminder, recap, call_url.into());
        ctx.reminder_number = Some(number);
        ctx.rep_name = promise.owner_name.clone();
        ctx.promise = Some(promise);
        ctx
    }

    /// To the owner's manager (then up the chain): `promise` is overdue. `rep_name` is the
    /// owner's.
    pub fn promise_escalation(recap: Recap, call_url: impl Into<String>, escalation: EscalationInfo, promise: PromiseInfo) -> Self {
        let mut ctx = Self::new(EmailKind::PromiseEscalation, recap, call_url.into());
        ctx.escalation = Some(escalation);
        ctx.rep_name = promise.owner_name.clone();
        ctx.overdue_by = promise.overdue_by.clone();
        ctx.promise = Some(promise);
        ctx
    }

    /// To the rep's manager: `alert`, about the call (and `promise`, when it is about one).
    pub fn manager_alert(recap: Recap, call_url: impl Into<String>, alert: AlertInfo, promise: Option<PromiseInfo>) -> Self {
        let mut ctx = Self::new(EmailKind::ManagerAlert, recap, call_url.into());
        ctx.alert = Some(alert);
        ctx.promise = promise;
        ctx
    }

    /// To the rep: every promise is delivered (`history`, a sentence each); time to ask the
    /// customer how it went. `call_url` leads to the check-in form.
    pub fn check_in(recap: Recap, call_url: impl Into<String>, history: Vec<String>) -> Self {
        let mut ctx = Self::new(EmailKind::CheckIn, recap, call_url.into());
        ctx.promise_history = history;
        ctx
    }

    /// To the rep who had the call. `recap` is the call as it is now, with its new rep;
    /// `rep_name` becomes the previous rep's and `new_rep_name` the recap's rep.
    pub fn reassigned(recap: Recap, call_url: impl Into<String>, previous_rep_name: impl Into<String>) -> Self {
        let mut ctx = Self::new(EmailKind::Reassigned, recap, call_url.into());
        ctx.new_rep_name = Some(std::mem::replace(&mut ctx.rep_name, previous_rep_name.into()));
        ctx
    }
}

/// `Tue 3 Mar 2026, 14:00 EST (America/New_York)`; the zone name is left out when the
/// abbreviation already is it (`UTC`).
pub fn local_time(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let local = t.with_timezone(&tz);
    let abbreviation = local.format("%Z").to_string();
    let head = local.format("%a %-d %b %Y, %H:%M").to_string();
    if abbreviation == tz.name() { format!("{head} {abbreviation}") } else { format!("{head} {abbreviation} ({})", tz.name()) }
}

/// `2 days 3 hours`, `3 hours 20 minutes`, `45 minutes`, `less than a minute`: the two largest
/// units, rounded down.
pub fn duration_in_words(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let unit = |n: i64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    let parts: Vec<String> = [(days, "day"), (hours, "hour"), (mins, "minute")]
        .into_iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, one)| unit(n, one))
        .collect();
    if parts.is_empty() { "less than a minute".to_string() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_in_words(Duration::seconds(30)), "less than a minute");
        assert_eq!(duration_in_words(Duration::minutes(1)), "1 minute");
        assert_eq!(duration_in_words(Duration::minutes(45)), "45 minutes");
        assert_eq!(duration_in_words(Duration::minutes(200)), "3 hours 20 minutes");
        assert_eq!(duration_in_words(Duration::hours(1)), "1 hour");
        assert_eq!(duration_in_words(Duration::hours(51) + Duration::minutes(5)), "2 days 3 hours");
        assert_eq!(duration_in_words(Duration::days(1) + Duration::minutes(5)), "1 day");
        assert_eq!(duration_in_words(Duration::minutes(-5)), "less than a minute");
    }

    #[test]
    fn due_times_are_shown_in_the_reps_zone_with_its_name() {
        let t = Utc.with_ymd_and_hms(2026, 3, 3, 19, 0, 0).unwrap();
        assert_eq!(local_time(t, chrono_tz::America::New_York), "Tue 3 Mar 2026, 14:00 EST (America/New_York)");
        assert_eq!(local_time(t, chrono_tz::Asia::Kolkata), "Wed 4 Mar 2026, 00:30 IST (Asia/Kolkata)");
        assert_eq!(local_time(t, chrono_tz::UTC), "Tue 3 Mar 2026, 19:00 UTC");
    }
}
