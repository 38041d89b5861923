//! `[retention]`: how long old data is kept before the engine removes it, a batch at a time.
//! Each age is in days; 0 keeps that kind of data forever.

use serde::{Deserialize, Serialize};

/// The longest age accepted, in days (a century): a larger number is surely a typo.
const MAX_DAYS: u32 = 36_500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// The text, HTML and invite of an email sent (or skipped) this many days ago are removed,
    /// unless its call is still open; the subject, recipient and outcome stay.
    pub sent_email_bodies_days: u32,
    /// Stored CRM events (raw payload and dedupe key) older than this are deleted; never before
    /// the event window (`webhooks.max_event_age_days`, plus a day) has passed, so a redelivery
    /// is still recognised as a duplicate for as long as it could be accepted.
    pub webhook_events_days: u32,
    /// Dead timers last tried this many days ago are deleted, unless their call is still open.
    pub dead_jobs_days: u32,
    /// Orders of deals that were never won (no call), untouched this long, are deleted with
    /// their audit entries; never before the event window has passed.
    pub orders_never_won_days: u32,
    /// Rows of each kind removed per run, in one transaction.
    pub batch_size: u32,
    /// Minutes between runs once nothing old is left (a full batch brings the next run within
    /// a second).
    pub interval_minutes: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            sent_email_bodies_days: 90,
            webhook_events_days: 60,
            dead_jobs_days: 90,
            orders_never_won_days: 180,
            batch_size: 500,
            interval_minutes: 60,
        }
    }
}

impl RetentionSettings {
    /// Whether anything is ever removed.
    pub fn enabled(&self) -> bool {
        self.sent_email_bodies_days > 0 || self.webhook_events_days > 0 || self.dead_jobs_days > 0 || self.orders_never_won_days > 0
    }

    /// The first problem, as (key under `retention.`, reason).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        for (key, days) in [
            ("sent_email_bodies_days", self.sent_email_bodies_days),
            ("webhook_events_days", self.webhook_events_days),
            ("dead_jobs_days", self.dead_jobs_days),
            ("orders_never_won_days", self.orders_never_won_days),
        ] {
            if days > MAX_DAYS {
                return Some((key, format!("is {days}; write a number of days up to {MAX_DAYS}, or 0 to keep forever")));
            }
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Some(("batch_size", format!("is {}; must be between 1 and 10000 rows", self.batch_size)));
        }
        if !(1..=10_080).contains(&self.interval_minutes) {
            return Some(("interval_minutes", format!("is {}; must be between 1 and 10080 minutes (a week)", self.interval_minutes)));
        }
        None
    }
}
