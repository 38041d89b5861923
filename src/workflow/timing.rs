//! Pure time arithmetic on schedules, in the rep's timezone: when a call is due ("within N
//! business hours"), when the next reminder fires (cron ticks inside business hours), when each
//! escalation step is reached. No I/O; the caller passes the time.
//!
//! Business hours are local wall-clock intervals `[start, end)` on working days; an `end`
//! earlier than `start` means the shift runs past midnight and belongs to the day it starts.
//! Durations are counted in real elapsed time, so a DST change inside business hours is
//! counted as it is lived.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::schedule::{BusinessHours, CronSpec, Schedule};

/// The UTC instant of a local wall-clock time. A time skipped by a DST jump maps to the first
/// instant after the jump; a repeated time maps to its first occurrence.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // Walk forward minute by minute until the wall clock exists again (gaps are < 3 h).
            let mut probe = local;
            for _ in 0..240 {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// The working interval that starts on local day `d`, in UTC, if `d` is a working day.
fn interval_on(tz: Tz, bh: &BusinessHours, d: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if !bh.is_working_day(d) {
        return None;
    }
    let start = local_to_utc(tz, d.and_time(bh.start));
    let end_day = if bh.end <= bh.start { d.succ_opt()? } else { d };
    let end = local_to_utc(tz, end_day.and_time(bh.end));
    (end > start).then_some((start, end))
}

/// Working intervals that end after `from`, in order, starting with the one containing it.
fn intervals_from(tz: Tz, bh: &BusinessHours, from: DateTime<Utc>) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
    // Start a day early: an overnight shift that began yesterday may still be running.
    let first = from.with_timezone(&tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
    (0..800)
        .filter_map(move |i| first.checked_add_days(chrono::Days::new(i)))
        .filter_map(move |d| interval_on(tz, bh, d))
        .filter(move |(_, end)| *end > from)
}

/// Whether `t` falls inside business hours.
pub fn in_business_hours(tz: Tz, bh: &BusinessHours, t: DateTime<Utc>) -> bool {
    intervals_from(tz, bh, t).next().is_some_and(|(start, end)| start <= t && t < end)
}

/// The instant `minutes` business minutes after `from`. Time before the first working
/// interval does not count. Gives up (returns `from` + 400 days) only for calendars with no
/// working time at all, which config validation prevents.
pub fn add_business_minutes(tz: Tz, bh: &BusinessHours, from: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    let mut left = Duration::minutes(minutes.max(0));
    for (start, end) in intervals_from(tz, bh, from) {
        let s = start.max(from);
        let avail = end - s;
        if left <= avail {
            return s + left;
        }
        left -= avail;
    }
    from + Duration::days(400)
}

/// When a call for an order placed at `ordered_at` is due under `schedule`.
pub fn first_call_due_at(schedule: &Schedule, tz: Tz, ordered_at: DateTime<Utc>) -> DateTime<Utc> {
    add_business_minutes(tz, &schedule.business_hours, ordered_at, schedule.due_within_business_minutes)
}

/// The first reminder tick strictly after `after` that falls inside business hours, evaluated
/// in the rep's timezone; `None` if the cron never fires inside business hours within a year.
pub fn next_reminder_at(cron: &CronSpec, bh: &BusinessHours, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let horizon = after + Duration::days(366);
    cron.schedule
        .after(&after.with_timezone(&tz))
        .take(100_000)
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t <= horizon)
        .find(|t| in_business_hours(tz, bh, *t))
}

/// The next `n` reminder times after `after` (for previews).
pub fn reminder_times(schedule: &Schedule, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut cur = after;
    while out.len() < n {
        match next_reminder_at(&schedule.reminder_cron, &schedule.business_hours, tz, cur) {
            Some(t) => {
                out.push(t);
                cur = t;
            }
            None => break,
        }
    }
    out
}

/// When a promise due on `deliver_by` reminds its owner: `leads` business days before the date
/// and on the day itself (the last working day on or before it, when the date is a day off),
/// each at the start of the owner's business day, in order, each time once.
pub fn promise_reminder_times(deliver_by: NaiveDate, leads: &[u32], bh: &BusinessHours, tz: Tz) -> Vec<DateTime<Utc>> {
    // The working day `n` working days before `d` (0: `d` itself, or the last one before it).
    let back = |n: u32| {
        let mut day = deliver_by;
        // A calendar without working days (refused by config validation) gives up after a year.
        for _ in 0..366 {
            if bh.is_working_day(day) {
                break;
            }
            day = day.pred_opt()?;
        }
        let mut left = n;
        for _ in 0..(366 * 3) {
            if left == 0 {
                return Some(day);
            }
            day = day.pred_opt()?;
            if bh.is_working_day(day) {
                left -= 1;
            }
        }
        None
    };
    let mut times: Vec<DateTime<Utc>> =
        leads.iter().copied().chain([0]).filter_map(back).map(|d| local_to_utc(tz, d.and_time(bh.start))).collect();
    times.sort();
    times.dedup();
    times
}

/// The start of the first working day on or after `first_day` that begins after `after`, in
/// `tz` (the overdue reminders of a promise: one each working morning after its date).
pub fn next_working_start(first_day: NaiveDate, bh: &BusinessHours, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = first_day.max(after.with_timezone(&tz).date_naive().pred_opt()?);
    (0..800)
        .filter_map(|i| from.checked_add_days(chrono::Days::new(i)))
        .filter(|d| bh.is_working_day(*d))
        .map(|d| local_to_utc(tz, d.and_time(bh.start)))
        .find(|t| *t > after)
}

/// How many business days later `to` falls than `from`: the working days after `from`'s local
/// date up to and including `to`'s, in `tz` (0 on the same day or earlier).
pub fn business_days_later(bh: &BusinessHours, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    let (first, last) = (from.with_timezone(&tz).date_naive(), to.with_timezone(&tz).date_naive());
    first.iter_days().skip(1).take_while(|d| *d <= last).filter(|d| bh.is_working_day(*d)).count() as u32
}

/// The instant a promise due on `deliver_by` is overdue: the end of that day in `tz`.
pub fn end_of_day(deliver_by: NaiveDate, tz: Tz) -> DateTime<Utc> {
    local_to_utc(tz, deliver_by.succ_opt().unwrap_or(deliver_by).and_time(NaiveTime::MIN))
}

/// A local date's weekday short name, for messages.
pub fn weekday_name(d: NaiveDate) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d.weekday().num_days_from_monday() as usize]
}

/// `HH:MM` of a time, for messages.
pub fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::ScheduleSettings;

    fn schedule(toml_src: &str) -> Schedule {
        let s: ScheduleSettings = toml_from(toml_src);
        match s.parse(&[]) {
            Ok(s) => s,
            Err(e) => panic!("{}: {}", e.key, e.reason),
        }
    }

    fn toml_from(src: &str) -> ScheduleSettings {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(src)).extract().expect("schedule toml")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    const WEEKDAYS: &str = r#"
        name = "t"
        due_within_business_hours = 4
        reminder_cron = "0 9,14 * * 1-5"
        business_hours = { start = "09:00", end = "17:00", days = ["mon","tue","wed","thu","fri"], holidays = ["2026-12-25"] }
    "#;

    #[test]
    fn due_inside_one_day() {
        let s = schedule(WEEKDAYS);
        // Monday 10:00 Berlin (09:00 UTC) + 4 business hours = 14:00 Berlin.
        assert_eq!(first_call_due_at(&s, tz("Europe/Berlin"), utc("2026-11-23T09:00:00Z")), utc("2026-11-23T13:00:00Z"));
    }

    #[test]
    fn due_rolls_over_the_weekend() {
        let s = schedule(WEEKDAYS);
        // Friday 15:00 New York: 2 h left Friday, 2 h Monday from 09:00 -> Monday 11:00 EST.
        assert_eq!(first_call_due_at(&s, tz("America/New_York"), utc("2026-11-27T20:00:00Z")), utc("2026-11-30T16:00:00Z"));
        // Saturday order: counting starts Monday 09:00.
        assert_eq!(first_call_due_at(&s, tz("America/New_York"), utc("2026-11-28T15:00:00Z")), utc("2026-11-30T18:00:00Z"));
    }

    #[test]
    fn due_skips_holidays() {
        let s = schedule(WEEKDAYS);
        // Thursday 24 Dec 16:00 London: 1 h that day, Fri 25th is a holiday, weekend, then Mon 28th 09:00 + 3 h.
        assert_eq!(first_call_due_at(&s, tz("Europe/London"), utc("2026-12-24T16:00:00Z")), utc("2026-12-28T12:00:00Z"));
    }

    #[test]
    fn order_after_hours_counts_from_next_morning() {
        let s = schedule(WEEKDAYS);
        // Tuesday 22:00 Tokyo -> Wednesday 09:00 + 4 h = 13:00 JST = 04:00 UTC.
        assert_eq!(first_call_due_at(&s, tz("Asia/Tokyo"), utc("2026-11-24T13:00:00Z")), utc("2026-11-25T04:00:00Z"));
    }

    #[test]
    fn business_day_crossing_midnight_utc() {
        let s = schedule(WEEKDAYS);
        // Sydney (UTC+11 in November): 09:00-17:00 local is 22:00-06:00 UTC.
        // Monday 16:00 Sydney = Monday 05:00 UTC: 1 h left Monday, then Tuesday 09:00 + 3 h = 12:00 = 01:00 UTC Tue.
        assert_eq!(first_call_due_at(&s, tz("Australia/Sydney"), utc("2026-11-23T05:00:00Z")), utc("2026-11-24T01:00:00Z"));
        assert!(in_business_hours(tz("Australia/Sydney"), &s.business_hours, utc("2026-11-23T23:30:00Z")));
        assert!(!in_business_hours(tz("Australia/Sydney"), &s.business_hours, utc("2026-11-23T07:00:00Z")));
    }

    #[test]
    fn overnight_shift() {
        let s = schedule(
            r#"
            name = "night"
            due_within_business_hours = 3
            reminder_cron = "0 * * * *"
            business_hours = { start = "22:00", end = "06:00", days = ["mon","tue","wed","thu","fri"] }
        "#,
        );
        let bh = &s.business_hours;
        // Friday 23:00 UTC is inside Friday's shift; Saturday 23:00 is not (Saturday is off).
        assert!(in_business_hours(tz("UTC"), bh, utc("2026-11-27T23:00:00Z")));
        assert!(in_business_hours(tz("UTC"), bh, utc("2026-11-28T05:59:00Z")));
        assert!(!in_business_hours(tz("UTC"), bh, utc("2026-11-28T23:00:00Z")));
        // Friday 05:00 (Thursday's shift, 1 h left) -> Friday 22:00 + 2 h = Saturday 00:00.
        assert_eq!(first_call_due_at(&s, tz("UTC"), utc("2026-11-27T05:00:00Z")), utc("2026-11-28T00:00:00Z"));
    }

    #[test]
    fn dst_spring_forward_in_business_hours() {
        let s = schedule(
            r#"
            name = "early"
            due_within_business_hours = 2
            reminder_cron = "30 * * * *"
            business_hours = { start = "01:00", end = "05:00", days = ["sun","mon"] }
        "#,
        );
        // New York jumps 02:00 -> 03:00 on Sunday 2026-03-08. Order Sunday 01:00 EST (06:00 UTC):
        // two real hours later is 04:00 EDT = 08:00 UTC.
        assert_eq!(first_call_due_at(&s, tz("America/New_York"), utc("2026-03-08T06:00:00Z")), utc("2026-03-08T08:00:00Z"));
        // A start time inside the gap begins when the clock resumes.
        assert_eq!(
            local_to_utc(tz("America/New_York"), NaiveDate::from_ymd_opt(2026, 3, 8).unwrap().and_hms_opt(2, 30, 0).unwrap()),
            utc("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn dst_fall_back_keeps_business_hours_local() {
        let s = schedule(WEEKDAYS);
        // Berlin leaves DST on Sunday 2026-10-25. Friday 23rd 16:00 CEST (14:00 UTC): 1 h Friday,
        // then Monday 09:00 CET (08:00 UTC) + 3 h = 11:00 UTC.
        assert_eq!(first_call_due_at(&s, tz("Europe/Berlin"), utc("2026-10-23T14:00:00Z")), utc("2026-10-26T11:00:00Z"));
    }

    #[test]
    fn reminders_follow_cron_in_rep_timezone_inside_business_hours() {
        let s = schedule(WEEKDAYS);
        // After Friday 14:30 Berlin the next tick is Monday 09:00 Berlin (08:00 UTC).
        let t = next_reminder_at(&s.reminder_cron, &s.business_hours, tz("Europe/Berlin"), utc("2026-11-27T13:30:00Z")).unwrap();
        assert_eq!(t, utc("2026-11-30T08:00:00Z"));
        let times = reminder_times(&s, tz("Europe/Berlin"), utc("2026-11-30T08:00:00Z"), 3);
        assert_eq!(times, vec![utc("2026-11-30T13:00:00Z"), utc("2026-12-01T08:00:00Z"), utc("2026-12-01T13:00:00Z")]);
    }

    #[test]
    fn reminder_ticks_outside_business_hours_are_skipped() {
        let s = schedule(
            r#"
            name = "t"
            due_within_business_hours = 1
            reminder_cron = "0 7,12,20 * * *"
            business_hours = { start = "09:00", end = "17:00", days = ["mon","tue","wed","thu","fri"], holidays = ["2026-11-24"] }
        "#,
        );
        let times = reminder_times(&s, tz("UTC"), utc("2026-11-23T00:00:00Z"), 2);
        // Monday 12:00, then Tuesday is a holiday, so Wednesday 12:00.
        assert_eq!(times, vec![utc("2026-11-23T12:00:00Z"), utc("2026-11-25T12:00:00Z")]);
    }

    #[test]
    fn business_days_later_counts_working_days_in_the_reps_timezone() {
        let s = schedule(WEEKDAYS);
        let bh = &s.business_hours;
        // Monday 23 November 13:00 to Thursday: Tuesday, Wednesday, Thursday.
        assert_eq!(business_days_later(bh, tz("UTC"), utc("2026-11-23T13:00:00Z"), utc("2026-11-26T14:30:00Z")), 3);
        // To the next Monday: the weekend does not count.
        assert_eq!(business_days_later(bh, tz("UTC"), utc("2026-11-23T13:00:00Z"), utc("2026-11-30T10:30:00Z")), 5);
        // Later the same day, or earlier: none.
        assert_eq!(business_days_later(bh, tz("UTC"), utc("2026-11-23T13:00:00Z"), utc("2026-11-23T16:00:00Z")), 0);
        assert_eq!(business_days_later(bh, tz("UTC"), utc("2026-11-23T13:00:00Z"), utc("2026-11-20T16:00:00Z")), 0);
        // Sunday 23:30 UTC is already Monday morning in Tokyo: one business day after Friday there,
        // none in UTC.
        assert_eq!(business_days_later(bh, tz("Asia/Tokyo"), utc("2026-11-27T09:00:00Z"), utc("2026-11-29T23:30:00Z")), 1);
        assert_eq!(business_days_later(bh, tz("UTC"), utc("2026-11-27T09:00:00Z"), utc("2026-11-29T23:30:00Z")), 0);
    }

    #[test]
    fn promise_reminders_count_business_days_back_in_the_owners_timezone() {
        let s = schedule(WEEKDAYS);
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // Due Tuesday 29 Dec 2026 (Friday 25th a holiday): 5 business days back is Monday 21st
        // (28, 24, 23, 22, 21), 1 back is Monday 28th; each at 09:00 in Tokyo.
        let times = promise_reminder_times(d("2026-12-29"), &[5, 1], &s.business_hours, tz("Asia/Tokyo"));
        assert_eq!(times, vec![utc("2026-12-21T00:00:00Z"), utc("2026-12-28T00:00:00Z"), utc("2026-12-29T00:00:00Z")]);
        // Due on a Sunday: the day's reminder is Friday's, and "1 business day before" is Thursday.
        let times = promise_reminder_times(d("2026-12-06"), &[1], &s.business_hours, tz("America/New_York"));
        assert_eq!(times, vec![utc("2026-12-03T14:00:00Z"), utc("2026-12-04T14:00:00Z")]);
        // No lead times: the day only.
        assert_eq!(promise_reminder_times(d("2026-12-04"), &[], &s.business_hours, tz("UTC")), vec![utc("2026-12-04T09:00:00Z")]);
    }

    #[test]
    fn seconds_level_cron() {
        let s = schedule(
            r#"
            name = "fast"
            due_within_business_hours = 1
            reminder_cron = "*/2 * * * * *"
            business_hours = { start = "00:00", end = "23:59", days = ["mon","tue","wed","thu","fri","sat","sun"] }
        "#,
        );
        let times = reminder_times(&s, tz("UTC"), utc("2026-11-23T10:00:00Z"), 3);
        assert_eq!(times, vec![utc("2026-11-23T10:00:02Z"), utc("2026-11-23T10:00:04Z"), utc("2026-11-23T10:00:06Z")]);
    }
}
