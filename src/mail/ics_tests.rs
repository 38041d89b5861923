//! The invite parses with a calendar library, carries what RFC 5546 requires, and describes the
//! rep's timezone correctly on both sides of a daylight-saving change.

use chrono::{TimeZone, Utc};
use ical::parser::ical::component::{IcalCalendar, IcalTimeZoneTransitionType};
use ical::property::Property;

use super::*;

fn info(tz: Tz, start: DateTime<Utc>) -> InviteInfo {
    InviteInfo {
        call_id: 42,
        uid_host: uid_host("https://calls.seller.example/"),
        sequence: 0,
        method: InviteMethod::Request,
        start,
        duration_minutes: 30,
        tz: Timezone(tz),
        organizer: ("firstcall".into(), "firstcall@seller.example".into()),
        attendee: ("Ana Lima".into(), "ana.lima@seller.example".into()),
        summary: "First call: Northwind Health".into(),
        description: "Recap and done form: https://calls.seller.example/calls/42".into(),
        url: "https://calls.seller.example/calls/42".into(),
        dtstamp: Utc.with_ymd_and_hms(2026, 3, 2, 15, 31, 0).unwrap(),
    }
}

fn parse(ics: &str) -> IcalCalendar {
    let mut parser = ical::IcalParser::new(ics.as_bytes());
    let cal = parser.next().expect("one calendar").expect("parses");
    assert!(parser.next().is_none(), "exactly one calendar");
    cal
}

fn prop<'a>(props: &'a [Property], name: &str) -> &'a Property {
    props.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name}"))
}

fn value<'a>(props: &'a [Property], name: &str) -> &'a str {
    prop(props, name).value.as_deref().unwrap_or("")
}

fn param<'a>(p: &'a Property, name: &str) -> Option<&'a str> {
    p.params.as_ref()?.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.first()).map(String::as_str)
}

/// The transitions of the first VTIMEZONE: (kind, DTSTART, TZOFFSETFROM, TZOFFSETTO).
fn transitions_of(cal: &IcalCalendar) -> Vec<(&'static str, String, String, String)> {
    cal.timezones[0]
        .transitions
        .iter()
        .map(|t| {
            let kind = match t.transition {
                IcalTimeZoneTransitionType::STANDARD => "STANDARD",
                IcalTimeZoneTransitionType::DAYLIGHT => "DAYLIGHT",
            };
            (
                kind,
                value(&t.properties, "DTSTART").into(),
                value(&t.properties, "TZOFFSETFROM").into(),
                value(&t.properties, "TZOFFSETTO").into(),
            )
        })
        .collect()
}

#[test]
fn a_request_carries_everything_rfc_5546_requires() {
    let ics = invite(&info(chrono_tz::America::New_York, Utc.with_ymd_and_hms(2026, 3, 10, 13, 0, 0).unwrap()));
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert!(!ics.replace("\r\n", "").contains('\n'), "every line ends with CRLF");
    let cal = parse(&ics);
    assert_eq!(value(&cal.properties, "METHOD"), "REQUEST");
    assert_eq!(value(&cal.properties, "VERSION"), "2.0");
    let ev = &cal.events[0].properties;
    assert_eq!(value(ev, "UID"), "call-42@calls.seller.example");
    assert_eq!(value(ev, "SEQUENCE"), "0");
    assert_eq!(value(ev, "DTSTAMP"), "20260302T153100Z");
    // 13:00 UTC on 10 March is 09:00 EDT (DST began on 8 March 2026).
    let start = prop(ev, "DTSTART");
    assert_eq!(param(start, "TZID"), Some("America/New_York"));
    assert_eq!(start.value.as_deref(), Some("20260310T090000"));
    assert_eq!(value(ev, "DTEND"), "20260310T093000");
    assert_eq!(param(prop(ev, "DTEND"), "TZID"), Some("America/New_York"));
    assert_eq!(value(&cal.timezones[0].properties, "TZID"), "America/New_York");
    let organizer = prop(ev, "ORGANIZER");
    assert_eq!(organizer.value.as_deref(), Some("mailto:firstcall@seller.example"));
    let attendee = prop(ev, "ATTENDEE");
    assert_eq!(attendee.value.as_deref(), Some("mailto:ana.lima@seller.example"));
    assert_eq!(param(attendee, "RSVP"), Some("TRUE"));
    assert_eq!(value(ev, "SUMMARY"), "First call: Northwind Health");
    assert_eq!(value(ev, "URL"), "https://calls.seller.example/calls/42");
    assert_eq!(value(ev, "STATUS"), "CONFIRMED");
}

#[test]
fn a_cancellation_keeps_the_uid_and_raises_the_sequence() {
    let mut i = info(chrono_tz::Europe::Berlin, Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap());
    let first = parse(&invite(&i));
    i.method = InviteMethod::Cancel;
    i.sequence = 2;
    let cancel = parse(&invite(&i));
    assert_eq!(value(&cancel.properties, "METHOD"), "CANCEL");
    assert_eq!(value(&cancel.events[0].properties, "STATUS"), "CANCELLED");
    assert_eq!(value(&cancel.events[0].properties, "SEQUENCE"), "2");
    assert_eq!(value(&cancel.events[0].properties, "UID"), value(&first.events[0].properties, "UID"));
    assert_eq!(InviteMethod::Cancel.content_type(), "text/calendar; charset=utf-8; method=CANCEL");
}

#[test]
fn new_york_in_march_and_november_covers_both_changes_of_the_year() {
    let expected = vec![
        ("STANDARD", "20251102T020000".to_string(), "-0400".to_string(), "-0500".to_string()),
        ("DAYLIGHT", "20260308T020000".to_string(), "-0500".to_string(), "-0400".to_string()),
        ("STANDARD", "20261101T020000".to_string(), "-0400".to_string(), "-0500".to_string()),
    ];
    // The Monday after DST starts (EDT) and the Monday after it ends (EST).
    for (utc_hour, day, month, local) in [(13, 9, 3, "20260309T090000"), (14, 2, 11, "20261102T090000")] {
        let start = Utc.with_ymd_and_hms(2026, month, day, utc_hour, 0, 0).unwrap();
        let cal = parse(&invite(&info(chrono_tz::America::New_York, start)));
        assert_eq!(transitions_of(&cal), expected);
        assert_eq!(value(&cal.events[0].properties, "DTSTART"), local);
        let names: Vec<&str> = cal.timezones[0].transitions.iter().map(|t| value(&t.properties, "TZNAME")).collect();
        assert_eq!(names, vec!["EST", "EDT", "EST"]);
    }
}

#[test]
fn kolkata_has_one_standard_block() {
    let start = Utc.with_ymd_and_hms(2026, 3, 10, 5, 30, 0).unwrap();
    let cal = parse(&invite(&info(chrono_tz::Asia::Kolkata, start)));
    assert_eq!(transitions_of(&cal), vec![("STANDARD", "19700101T000000".into(), "+0530".into(), "+0530".into())]);
    assert_eq!(value(&cal.events[0].properties, "DTSTART"), "20260310T110000");
    assert_eq!(value(&cal.timezones[0].transitions[0].properties, "TZNAME"), "IST");
}

#[test]
fn the_repeated_hour_is_written_in_utc_when_it_is_the_second_one() {
    // 1 Nov 2026, 05:00 UTC is 01:00 EDT (the first 01:00; ends 01:30 EDT); 06:30 UTC is
    // 01:30 EST (the second 01:30).
    let first = invite(&info(chrono_tz::America::New_York, Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap()));
    assert!(first.contains("DTSTART;TZID=America/New_York:20261101T010000\r\n"));
    assert!(first.contains("DTEND;TZID=America/New_York:20261101T013000\r\n"));
    let second = invite(&info(chrono_tz::America::New_York, Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap()));
    assert!(second.contains("DTSTART:20261101T063000Z\r\n"), "{second}");
    assert!(second.contains("DTEND:20261101T070000Z\r\n"));
    assert!(!second.contains("VTIMEZONE"));
    parse(&second);
}

#[test]
fn the_vtimezone_reaches_into_the_next_year_when_the_call_does() {
    let start = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
    let mut i = info(chrono_tz::Europe::Berlin, start);
    i.duration_minutes = 120;
    let cal = parse(&invite(&i));
    let starts: Vec<String> = transitions_of(&cal).into_iter().map(|t| t.1).collect();
    assert_eq!(starts, vec!["20251026T030000", "20260329T020000", "20261025T030000", "20270328T020000", "20271031T030000"]);
}

#[test]
fn text_values_are_escaped() {
    assert_eq!(escape_text("a\\b;c,d\r\ne\nf\rg\u{7}h"), "a\\\\b\\;c\\,d\\ne\\nf\\ngh");
    let mut i = info(chrono_tz::UTC, Utc.with_ymd_and_hms(2026, 3, 10, 13, 0, 0).unwrap());
    i.summary = "Call; with, Acme\r\nBEGIN:VALARM".into();
    i.attendee.0 = "Ana \"AL\" Lima; VP: Sales".into();
    let ics = invite(&i);
    assert!(ics.contains("SUMMARY:Call\\; with\\, Acme\\nBEGIN:VALARM\r\n"));
    assert!(!ics.contains("\r\nBEGIN:VALARM"), "no property or component injected");
    assert!(ics.contains("ATTENDEE;CN=\"Ana 'AL' Lima; VP: Sales\";ROLE=REQ-PARTICIPANT"));
    let cal = parse(&ics);
    assert!(cal.alarms.is_empty() && cal.events[0].alarms.is_empty());
}

#[test]
fn the_uid_host_comes_from_the_public_url() {
    assert_eq!(uid_host("https://calls.example.com:8443/x?y"), "calls.example.com");
    assert_eq!(uid_host("http://user:pw@Host.Example/"), "host.example");
    assert_eq!(uid_host("calls.example.com"), "calls.example.com");
    assert_eq!(uid_host("http://[::1]:8080/"), "[::1]");
    assert_eq!(uid_host(""), "localhost");
    assert_eq!(uid(7, "h.example"), "call-7@h.example");
}

#[test]
fn folding_keeps_lines_to_75_octets_and_never_splits_a_character() {
    for unit in ["é", "€", "𝄞", "a€", "ab𝄞"] {
        for prefix in 0..4 {
            let line = format!("DESCRIPTION:{}{}", "x".repeat(prefix), unit.repeat(200));
            let folded = fold(&line);
            for physical in folded.as_bytes().split(|b| *b == b'\n') {
                let physical = physical.strip_suffix(b"\r").unwrap_or(physical);
                assert!(physical.len() <= 75, "{} octets", physical.len());
                assert!(std::str::from_utf8(physical).is_ok(), "a fold split a character of {unit:?}");
            }
            assert_eq!(folded.replace("\r\n ", ""), line);
        }
    }
    assert_eq!(fold("SHORT:x"), "SHORT:x");
    let exactly = format!("A:{}", "b".repeat(73));
    assert_eq!(fold(&exactly), exactly);
}

#[test]
fn a_long_description_folds_and_parses_back() {
    let mut i = info(chrono_tz::Asia::Kolkata, Utc.with_ymd_and_hms(2026, 3, 10, 5, 30, 0).unwrap());
    i.description = "Résumé of the deal — “SSO” for 120 staff, migration, priority support. ".repeat(6);
    let ics = invite(&i);
    assert!(ics.split("\r\n").all(|l| l.len() <= 75));
    let unfolded = ics.replace("\r\n ", "");
    assert!(unfolded.contains(&format!("DESCRIPTION:{}\r\n", escape_text(&i.description))));
    parse(&ics);
}
