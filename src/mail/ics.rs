//! The calendar invite for a first call (iCalendar, RFC 5545, with iTIP methods, RFC 5546).
//!
//! One call keeps one `UID` (`call-<id>@<host>`) for its whole life; a reschedule sends
//! `METHOD:REQUEST` again and a cancellation `METHOD:CANCEL`, each with a higher `SEQUENCE`, so
//! calendar clients update or remove the event instead of adding another. Times are written in
//! the rep's timezone (`DTSTART;TZID=…`) with a `VTIMEZONE` generated from the tz database,
//! because clients show a `TZID` without its definition in the wrong zone or not at all.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

use crate::domain::Timezone;
use crate::recap::Recap;

/// What the invite asks of the attendee's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteMethod {
    /// Add or update the event.
    Request,
    /// Remove the event.
    Cancel,
}

impl InviteMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            InviteMethod::Request => "REQUEST",
            InviteMethod::Cancel => "CANCEL",
        }
    }

    /// The MIME type of the `text/calendar` part carrying the invite.
    pub fn content_type(&self) -> String {
        format!("text/calendar; charset=utf-8; method={}", self.as_str())
    }
}

/// Everything an invite says. Names and addresses come as `(display name, email address)`;
/// an empty display name is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct InviteInfo {
    pub call_id: i64,
    /// Host part of the UID: the host of the public URL (see [`uid_host`]).
    pub uid_host: String,
    /// 0 for the first invite; raise it on every reschedule and on the cancellation.
    pub sequence: u32,
    pub method: InviteMethod,
    pub start: DateTime<Utc>,
    pub duration_minutes: u32,
    /// The rep's timezone: the event is shown in it.
    pub tz: Timezone,
    pub organizer: (String, String),
    pub attendee: (String, String),
    pub summary: String,
    /// Keep it short: calendars show it in a small box. The recap is in the email.
    pub description: String,
    /// The call page.
    pub url: String,
    /// When this version of the invite was made.
    pub dtstamp: DateTime<Utc>,
}

/// Which call an invite is about, when it takes place, and which version of the invite this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInvite {
    pub call_id: i64,
    pub start: DateTime<Utc>,
    pub duration_minutes: u32,
    /// 0 for the first invite; raised on every reschedule, reassignment and cancellation.
    pub sequence: u32,
    pub method: InviteMethod,
}

/// The invite for a first call, as every email carrying one sends it: titled by
/// [`call_summary`], described by [`call_description`], shown in the rep's timezone from the
/// recap. Names and addresses are `(display name, email address)`; `url` is the call page;
/// `uid_host` the host part of the UID (see [`uid_host`]).
pub fn call_invite(
    recap: &Recap,
    call: CallInvite,
    organizer: (&str, &str),
    attendee: (&str, &str),
    url: &str,
    uid_host: &str,
    dtstamp: DateTime<Utc>,
) -> InviteInfo {
    InviteInfo {
        call_id: call.call_id,
        uid_host: uid_host.to_string(),
        sequence: call.sequence,
        method: call.method,
        start: call.start,
        duration_minutes: call.duration_minutes,
        tz: recap.call.rep_timezone,
        organizer: (organizer.0.to_string(), organizer.1.to_string()),
        attendee: (attendee.0.to_string(), attendee.1.to_string()),
        summary: call_summary(recap),
        description: call_description(recap, url),
        url: url.to_string(),
        dtstamp,
    }
}

/// The `.ics` text of an invite: CRLF line endings, lines folded at 75 octets.
pub fn invite(info: &InviteInfo) -> String {
    let end = info.start + Duration::minutes(i64::from(info.duration_minutes));
    let tz = info.tz.0;
    // A local time that occurs twice (the hour repeated when clocks go back) means its first
    // occurrence (RFC 5545 3.3.5); if ours is the second, write UTC instead.
    let local = local_form(tz, info.start).zip(local_form(tz, end));

    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "PRODID:-//firstcall//first call invite//EN".into(),
        "VERSION:2.0".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{}", info.method.as_str()),
    ];
    if local.is_some() {
        lines.extend(vtimezone(tz, info.start, end));
    }
    lines.push("BEGIN:VEVENT".into());
    lines.push(format!("UID:{}", uid(info.call_id, &info.uid_host)));
    lines.push(format!("SEQUENCE:{}", info.sequence));
    lines.push(format!("DTSTAMP:{}", utc_stamp(info.dtstamp)));
    match local {
        Some((start, end)) => {
            lines.push(format!("DTSTART;TZID={}:{start}", tz.name()));
            lines.push(format!("DTEND;TZID={}:{end}", tz.name()));
        }
        None => {
            lines.push(format!("DTSTART:{}", utc_stamp(info.start)));
            lines.push(format!("DTEND:{}", utc_stamp(end)));
        }
    }
    lines.push(format!("SUMMARY:{}", escape_text(&info.summary)));
    if !info.description.trim().is_empty() {
        lines.push(format!("DESCRIPTION:{}", escape_text(&info.description)));
    }
    if !info.url.trim().is_empty() {
        lines.push(format!("URL:{}", strip_controls(&info.url)));
    }
    lines.push(format!("ORGANIZER{}:mailto:{}", cn(&info.organizer.0), strip_controls(&info.organizer.1)));
    lines.push(format!(
        "ATTENDEE{};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{}",
        cn(&info.attendee.0),
        strip_controls(&info.attendee.1)
    ));
    lines.push(match info.method {
        InviteMethod::Request => "STATUS:CONFIRMED".into(),
        InviteMethod::Cancel => "STATUS:CANCELLED".into(),
    });
    lines.push("TRANSP:OPAQUE".into());
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());

    let mut out = String::new();
    for line in &lines {
        out.push_str(&fold(line));
        out.push_str("\r\n");
    }
    out
}

/// The invite's title: `First call: Northwind Health`.
pub fn call_summary(recap: &Recap) -> String {
    match &recap.deal.account_name {
        Some(name) => format!("First call: {name}"),
        None => format!("First call: deal {}", recap.deal.deal_id),
    }
}

/// A short description for the invite: the deal, the most serious gap, and the call page.
/// The full recap is in the email; calendars show this in a small box.
pub fn call_description(recap: &Recap, call_url: &str) -> String {
    let source = crate::recap::format::source_name(recap.deal.source);
    let mut lines = vec![format!("First call after the order ({source} deal {}).", recap.deal.deal_id)];
    match recap.gaps.len() {
        0 => lines.push("No gaps found in the recap.".to_string()),
        n => lines.push(format!(
            "{n} gap{} to address, first: {}",
            if n == 1 { "" } else { "s" },
            crate::recap::gaps::short(&recap.gaps[0].message)
        )),
    }
    lines.push(format!("Recap, agenda and done form: {call_url}"));
    lines.join("\n")
}

/// The invite's stable UID: `call-<id>@<host>`.
pub fn uid(call_id: i64, host: &str) -> String {
    format!("call-{call_id}@{}", strip_controls(host))
}

/// The host of a public URL, for the UID: `https://calls.example.com:8443/x` → `calls.example.com`.
/// Falls back to `localhost` when there is none.
pub fn uid_host(public_url: &str) -> String {
    let rest = public_url.trim().split_once("://").map_or(public_url.trim(), |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) { "localhost".to_string() } else { host }
}

/// Escapes a TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines; other
/// control characters are dropped.
pub fn escape_text(s: &str) -> String {
    let normalized = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line (RFC 5545 3.1): no line longer than 75 octets, continuation lines start
/// with a space, and never inside a UTF-8 character. Lines are joined with CRLF.
pub fn fold(line: &str) -> String {
    const MAX: usize = 75;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3);
    let mut rest = line;
    let mut budget = MAX;
    while rest.len() > budget {
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        budget = MAX - 1; // the leading space counts
    }
    out.push_str(rest);
    out
}

/// `;CN="Name"` for a display name (quoted, so `:`, `;` and `,` are safe; `"` cannot be quoted
/// and becomes `'`), or nothing.
fn cn(name: &str) -> String {
    let clean: String = strip_controls(name).replace('"', "'");
    let clean = clean.trim();
    if clean.is_empty() { String::new() } else { format!(";CN=\"{clean}\"") }
}

fn strip_controls(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn local_stamp(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

/// The local form of an instant, if a `TZID` time can name it unambiguously.
fn local_form(tz: Tz, t: DateTime<Utc>) -> Option<String> {
    let local = t.with_timezone(&tz).naive_local();
    let means = match tz.from_local_datetime(&local) {
        LocalResult::Single(d) => d,
        LocalResult::Ambiguous(first, _) => first,
        LocalResult::None => return None,
    };
    (means.with_timezone(&Utc) == t).then(|| local_stamp(local))
}

/// The offset rules in force at an instant: what a STANDARD or DAYLIGHT block describes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observance {
    offset_secs: i32,
    dst: bool,
    name: String,
}

fn observance(tz: Tz, t: DateTime<Utc>) -> Observance {
    let off = tz.offset_from_utc_datetime(&t.naive_utc());
    Observance {
        offset_secs: off.fix().local_minus_utc(),
        dst: !off.dst_offset().is_zero(),
        name: off.abbreviation().unwrap_or("").to_string(),
    }
}

/// Instants where the zone's observance changes within `[from, to)`, with the observance before
/// and after. chrono-tz has no public transition table, so this samples daily and bisects to
/// the second; zones never change twice within a day.
fn transitions(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Observance, Observance)> {
    let mut found = Vec::new();
    let mut t0 = from;
    let mut before = observance(tz, t0);
    while t0 < to {
        let t1 = (t0 + Duration::days(1)).min(to);
        if observance(tz, t1) == before {
            t0 = t1;
            continue;
        }
        // Invariant: observance(lo) == before, observance(hi) != before.
        let (mut lo, mut hi) = (t0, t1);
        while hi - lo > Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if observance(tz, mid) == before { lo = mid } else { hi = mid }
        }
        let changed = observance(tz, hi);
        found.push((hi, before, changed.clone()));
        // Go on from the change itself, in case the day holds another.
        before = changed;
        t0 = hi;
    }
    found
}

/// The `VTIMEZONE` lines for `tz` covering `[start, end]`: the observance in force at the start
/// of the event's year, then every change up to the end of the year `end` falls in. A zone
/// without changes (no daylight saving, like Asia/Kolkata) gets one STANDARD block.
pub fn vtimezone(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<String> {
    use chrono::Datelike;
    let year_start = |y: i32| Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).single().unwrap_or(start);
    let from = year_start(start.year());
    let until = year_start(end.year() + 1);

    let mut lines = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{}", tz.name())];
    // The last change in the year before tells which observance the year starts in.
    let prior = transitions(tz, year_start(start.year() - 1), from).pop();
    let within = transitions(tz, from, until);
    match prior {
        Some((at, before, after)) => lines.extend(observance_block(at, &before, &after)),
        None => {
            let current = observance(tz, from);
            let epoch =
                Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).single().unwrap_or(from) - Duration::seconds(i64::from(current.offset_secs));
            lines.extend(observance_block(epoch, &current, &current));
        }
    }
    for (at, before, after) in &within {
        lines.extend(observance_block(*at, before, after));
    }
    lines.push("END:VTIMEZONE".to_string());
    lines
}

/// One STANDARD or DAYLIGHT block: its DTSTART is the local time of the change, read in the
/// offset in force before it (RFC 5545 3.6.5).
fn observance_block(at: DateTime<Utc>, before: &Observance, after: &Observance) -> Vec<String> {
    let kind = if after.dst { "DAYLIGHT" } else { "STANDARD" };
    let local = at.naive_utc() + Duration::seconds(i64::from(before.offset_secs));
    let mut lines = vec![
        format!("BEGIN:{kind}"),
        format!("DTSTART:{}", local_stamp(local)),
        format!("TZOFFSETFROM:{}", utc_offset(before.offset_secs)),
        format!("TZOFFSETTO:{}", utc_offset(after.offset_secs)),
    ];
    if !after.name.is_empty() {
        lines.push(format!("TZNAME:{}", escape_text(&after.name)));
    }
    lines.push(format!("END:{kind}"));
    lines
}

/// `+0530`, `-0500`, or `+001508` when seconds are not zero (old local mean times).
fn utc_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    let mut out = String::new();
    let _ = write!(out, "{sign}{h:02}{m:02}");
    if s != 0 {
        let _ = write!(out, "{s:02}");
    }
    out
}

#[cfg(test)]
#[path = "ics_tests.rs"]
mod tests;
