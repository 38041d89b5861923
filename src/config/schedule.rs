//! Schedules as sales ops write them in config, and their parsed form. A schedule says which
//! orders it applies to, when the first call is due, when reminders fire and whom to escalate
//! to. The time arithmetic on them lives in `workflow::timing`.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use crate::domain::{Currency, EmailAddress, Money, Source};

/// One `[[schedules]]` entry as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub name: String,
    /// Which orders this schedule applies to; omitted means every order.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<MatchSettings>,
    /// The call is due this many business hours after the order (e.g. 4).
    pub due_within_business_hours: f64,
    /// When reminders fire, in the rep's timezone: 5 fields (min hour day month weekday) or 6
    /// (with seconds first). Ticks outside business hours are skipped.
    pub reminder_cron: String,
    /// Stop reminding after this many reminders (0: until done).
    #[serde(default)]
    pub max_reminders: u32,
    #[serde(default)]
    pub business_hours: BusinessHoursSettings,
    #[serde(default)]
    pub escalation: Vec<EscalationSettings>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSettings {
    /// Orders of at least this amount (decimal, in `currency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<String>,
    /// Orders below this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<String>,
    /// Currency of `min_amount`/`max_amount`; orders in another currency do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursSettings {
    /// Local start of the working day, `HH:MM`.
    pub start: String,
    /// Local end of the working day, `HH:MM`; earlier than `start` means the day runs past midnight.
    pub end: String,
    /// Working days: mon, tue, wed, thu, fri, sat, sun.
    pub days: Vec<String>,
    /// Days off (`YYYY-MM-DD`), in the rep's local calendar.
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl Default for BusinessHoursSettings {
    fn default() -> Self {
        BusinessHoursSettings {
            start: "09:00".into(),
            end: "17:00".into(),
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            holidays: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSettings {
    /// Escalate once this many reminders were sent...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_reminders: Option<u32>,
    /// ...or once the call is this many hours overdue, whichever comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours_overdue: Option<f64>,
    /// `manager`, `manager_of_manager`, or an email address.
    pub to: String,
    /// What names the step to the calls it was sent for (letters, digits, `-`, `_`, `.`, `@`).
    /// Omitted: the target, numbered from its second step (`manager`, `manager#2`). A step keeps
    /// its name when others are inserted or moved around it, so a call never gets it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A parsed, trusted schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub rule: MatchRule,
    pub due_within_business_minutes: i64,
    pub reminder_cron: CronSpec,
    pub max_reminders: u32,
    pub business_hours: BusinessHours,
    pub escalation: Vec<EscalationStep>,
}

#[derive(Debug, Clone, Default)]
pub struct MatchRule {
    pub min_amount: Option<Money>,
    pub max_amount: Option<Money>,
    pub sources: Vec<Source>,
    pub segments: Vec<String>,
}

impl MatchRule {
    pub fn is_catch_all(&self) -> bool {
        self.min_amount.is_none() && self.max_amount.is_none() && self.sources.is_empty() && self.segments.is_empty()
    }

    /// Whether an order with these facts falls under the rule. An amount condition never
    /// matches an order without an amount or in another currency.
    pub fn matches(&self, source: Source, amount: Option<&Money>, segment: Option<&str>) -> bool {
        if !self.sources.is_empty() && !self.sources.contains(&source) {
            return false;
        }
        if !self.segments.is_empty() && !segment.is_some_and(|s| self.segments.iter().any(|m| m.eq_ignore_ascii_case(s))) {
            return false;
        }
        for (bound, at_least) in [(&self.min_amount, true), (&self.max_amount, false)] {
            if let Some(bound) = bound {
                let Some(a) = amount.filter(|a| a.currency == bound.currency) else {
                    return false;
                };
                if at_least && a.minor < bound.minor || !at_least && a.minor >= bound.minor {
                    return false;
                }
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: BTreeSet<u32>,
    pub holidays: BTreeSet<NaiveDate>,
}

impl BusinessHours {
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        use chrono::Datelike;
        self.days.contains(&d.weekday().num_days_from_monday()) && !self.holidays.contains(&d)
    }
}

/// Whom an escalation step mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationTarget {
    Manager,
    ManagerOfManager,
    Address(EmailAddress),
}

#[derive(Debug, Clone)]
pub struct EscalationStep {
    /// The step's identity within its schedule ([`EscalationSettings::id`]): what a call records
    /// once the step was sent for it.
    pub id: String,
    pub after_reminders: Option<u32>,
    pub after_minutes_overdue: Option<i64>,
    pub to: EscalationTarget,
}

/// A reminder cron expression, accepted with 5 or 6 fields. Numeric weekdays follow Unix
/// crontab (0 or 7 is Sunday, 1 is Monday), the way sales ops know them.
#[derive(Debug, Clone)]
pub struct CronSpec {
    pub source: String,
    pub schedule: cron::Schedule,
}

impl CronSpec {
    pub fn parse(expr: &str) -> Result<CronSpec, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let mut six: Vec<String> = match fields.len() {
            5 => std::iter::once("0".to_string()).chain(fields.iter().map(|s| s.to_string())).collect(),
            6 => fields.iter().map(|s| s.to_string()).collect(),
            n => {
                return Err(format!("'{expr}' has {n} fields; write 5 (minute hour day month weekday) or 6 (second first)"));
            }
        };
        six[5] = unix_weekdays_to_cron(&six[5]).map_err(|e| format!("'{expr}': {e}"))?;
        let normalized = six.join(" ");
        let schedule = normalized.parse::<cron::Schedule>().map_err(|e| format!("'{expr}' is not a cron expression: {e}"))?;
        Ok(CronSpec { source: expr.to_string(), schedule })
    }
}

/// Rewrites a weekday field from Unix numbering (0-7, Sunday 0 or 7) to the `cron` crate's
/// (1-7, Sunday 1). Names and `*` pass through.
fn unix_weekdays_to_cron(field: &str) -> Result<String, String> {
    let map = |n: &str| -> Result<Option<u32>, String> {
        if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() {
            let v: u32 = n.parse().map_err(|_| format!("weekday '{n}'"))?;
            if v > 7 {
                return Err(format!("weekday {v} is out of range 0-7"));
            }
            Ok(Some(v))
        } else {
            Ok(None)
        }
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let step_sfx = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, b)) => match (map(a)?, map(b)?) {
                (Some(a), Some(b)) => {
                    if b == 7 && a > 0 {
                        // A range ending on Sunday wraps: Fri-Sun is 6-7 plus 1.
                        parts.push(format!("{}-7{step_sfx}", a + 1));
                        if step.is_none() {
                            parts.push("1".into());
                        }
                    } else {
                        parts.push(format!("{}-{}{step_sfx}", a % 7 + 1, b % 7 + 1));
                    }
                }
                _ => parts.push(part.to_string()),
            },
            None => match map(range)? {
                Some(v) => parts.push(format!("{}{step_sfx}", v % 7 + 1)),
                None => parts.push(part.to_string()),
            },
        }
    }
    Ok(parts.join(","))
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| format!("'{s}' is not a time of day (HH:MM)"))
}

fn parse_weekday(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<Weekday>()
        .map(|w| w.num_days_from_monday())
        .map_err(|_| format!("'{s}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"))
}

/// A schedule problem: the key inside the schedule and the reason.
pub struct ScheduleError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ScheduleError {
    ScheduleError { key: key.into(), reason: reason.into() }
}

impl ScheduleSettings {
    pub fn parse(&self, global_holidays: &[String]) -> Result<Schedule, ScheduleError> {
        if self.name.trim().is_empty() {
            return Err(err("name", "is empty"));
        }
        let rule = match &self.matches {
            None => MatchRule::default(),
            Some(m) => {
                let currency = match (&m.currency, m.min_amount.is_some() || m.max_amount.is_some()) {
                    (Some(c), _) => Some(Currency::parse(c).map_err(|e| err("match.currency", e.0))?),
                    (None, true) => {
                        return Err(err("match.currency", "is required when min_amount or max_amount is set"));
                    }
                    (None, false) => None,
                };
                let amount = |v: &Option<String>, key: &str| -> Result<Option<Money>, ScheduleError> {
                    match (v, &currency) {
                        (Some(v), Some(c)) => Money::parse_decimal(v, c.clone()).map(Some).map_err(|e| err(key, e.0)),
                        _ => Ok(None),
                    }
                };
                let sources =
                    m.sources.iter().map(|s| Source::parse(s).map_err(|e| err("match.sources", e.0))).collect::<Result<_, _>>()?;
                MatchRule {
                    min_amount: amount(&m.min_amount, "match.min_amount")?,
                    max_amount: amount(&m.max_amount, "match.max_amount")?,
                    sources,
                    segments: m.segments.clone(),
                }
            }
        };
        if !(self.due_within_business_hours > 0.0 && self.due_within_business_hours <= 24.0 * 30.0) {
            return Err(err("due_within_business_hours", "must be more than 0 and at most 720"));
        }
        let reminder_cron = CronSpec::parse(&self.reminder_cron).map_err(|e| err("reminder_cron", e))?;
        let bh = &self.business_hours;
        let start = parse_time(&bh.start).map_err(|e| err("business_hours.start", e))?;
        let end = parse_time(&bh.end).map_err(|e| err("business_hours.end", e))?;
        if start == end {
            return Err(err("business_hours.end", "equals start; a working day needs some hours"));
        }
        let days: BTreeSet<u32> =
            bh.days.iter().map(|d| parse_weekday(d)).collect::<Result<_, _>>().map_err(|e| err("business_hours.days", e))?;
        if days.is_empty() {
            return Err(err("business_hours.days", "names no working day"));
        }
        let mut holidays = BTreeSet::new();
        for (i, h) in global_holidays.iter().chain(bh.holidays.iter()).enumerate() {
            let d = NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d")
                .map_err(|_| err(format!("business_hours.holidays[{i}]"), format!("'{h}' is not a date (YYYY-MM-DD)")))?;
            holidays.insert(d);
        }
        let mut escalation = Vec::new();
        for (i, e) in self.escalation.iter().enumerate() {
            let key = |k: &str| format!("escalation[{i}].{k}");
            if e.after_reminders.is_none() && e.after_hours_overdue.is_none() {
                return Err(err(key("after_reminders"), "set after_reminders, after_hours_overdue or both"));
            }
            if let Some(h) = e.after_hours_overdue
                && !(0.0..=24.0 * 365.0).contains(&h)
            {
                return Err(err(key("after_hours_overdue"), "must be between 0 and 8760"));
            }
            let to = match e.to.trim() {
                "manager" => EscalationTarget::Manager,
                "manager_of_manager" => EscalationTarget::ManagerOfManager,
                other => EscalationTarget::Address(
                    EmailAddress::parse(other)
                        .map_err(|_| err(key("to"), format!("'{other}' is not manager, manager_of_manager or an email address")))?,
                ),
            };
            let id = match &e.id {
                Some(id) => {
                    let id = id.trim();
                    if id.is_empty()
                        || id.len() > 64
                        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
                    {
                        return Err(err(key("id"), format!("'{id}' is not a step name: 1 to 64 letters, digits, '-', '_', '.' or '@'")));
                    }
                    id.to_string()
                }
                None => {
                    let target = match &to {
                        EscalationTarget::Manager => "manager".to_string(),
                        EscalationTarget::ManagerOfManager => "manager_of_manager".to_string(),
                        EscalationTarget::Address(a) => a.to_string(),
                    };
                    let earlier = escalation.iter().filter(|s: &&EscalationStep| s.to == to).count();
                    if earlier == 0 { target } else { format!("{target}#{}", earlier + 1) }
                }
            };
            if escalation.iter().any(|s: &EscalationStep| s.id == id) {
                return Err(err(
                    key("id"),
                    format!("'{id}' names an earlier step too; give each step of a schedule its own id (escalation[].id)"),
                ));
            }
            escalation.push(EscalationStep {
                id,
                after_reminders: e.after_reminders,
                after_minutes_overdue: e.after_hours_overdue.map(|h| (h * 60.0).round() as i64),
                to,
            });
        }
        Ok(Schedule {
            name: self.name.trim().to_string(),
            rule,
            due_within_business_minutes: (self.due_within_business_hours * 60.0).round() as i64,
            reminder_cron,
            max_reminders: self.max_reminders,
            business_hours: BusinessHours { start, end, days, holidays },
            escalation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn unix_weekday_numbers_mean_what_crontab_means() {
        let c = CronSpec::parse("0 9 * * 1-5").unwrap();
        // 2026-11-23 is a Monday, 2026-11-28 a Saturday.
        let mon = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let sat = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        assert!(c.schedule.includes(mon));
        assert!(!c.schedule.includes(sat));
        let sun = CronSpec::parse("0 9 * * 0").unwrap();
        assert!(sun.schedule.includes(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap()));
        let wrap = CronSpec::parse("0 9 * * 5-7").unwrap();
        assert!(wrap.schedule.includes(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap()));
        assert!(wrap.schedule.includes(Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()));
        assert!(!wrap.schedule.includes(mon));
        let named = CronSpec::parse("*/10 * 9-17 * * Mon-Fri").unwrap();
        assert!(named.schedule.includes(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 10).unwrap()));
    }

    #[test]
    fn bad_cron_is_explained() {
        assert!(CronSpec::parse("0 9 * *").unwrap_err().contains("4 fields"));
        assert!(CronSpec::parse("0 9 * * 8").unwrap_err().contains("out of range"));
        assert!(CronSpec::parse("x 9 * * *").is_err());
    }
}
