//! Golden files: the exact text, HTML and `.ics` output for the sample deal, under
//! `tests/golden/`. A change to a template or to the recap shows up here as a diff to review;
//! after checking it, `UPDATE_GOLDEN=1 cargo test --lib mail` rewrites the files.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::Timezone;
use crate::mail::ics::{self, CallInvite, InviteMethod};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => {
            let line = expected.lines().zip(actual.lines()).position(|(e, a)| e != a).map_or_else(
                || format!("lengths differ ({} vs {} lines)", expected.lines().count(), actual.lines().count()),
                |i| {
                    format!(
                        "first difference at line {}:\n  golden: {:?}\n  actual: {:?}",
                        i + 1,
                        expected.lines().nth(i).unwrap_or(""),
                        actual.lines().nth(i).unwrap_or("")
                    )
                },
            );
            failures.push(format!("{name}: {line}"));
        }
        Err(e) => failures.push(format!("{name}: {e} (run with UPDATE_GOLDEN=1 to create it)")),
    }
}

fn check(failures: Vec<String>) {
    assert!(failures.is_empty(), "golden files differ (review, then UPDATE_GOLDEN=1):\n{}", failures.join("\n"));
}

#[test]
fn emails_match_the_golden_files() {
    let t = Templates::builtin().unwrap();
    let names = ["first_call", "first_call_no_proposal", "reminder", "escalation", "cancellation", "reassigned", "context_update"];
    let contexts = sample_contexts();
    assert_eq!(contexts.len(), names.len());
    let mut failures = Vec::new();
    for (name, ctx) in names.iter().zip(&contexts) {
        let email = t.render(ctx).unwrap();
        golden(&format!("{name}.subject.txt"), &format!("{}\n", email.subject), &mut failures);
        golden(&format!("{name}.txt"), &email.text, &mut failures);
        golden(&format!("{name}.html"), &email.html, &mut failures);
    }
    let fragment = t.render_recap_html_fragment(&contexts[0].recap).unwrap();
    golden("recap_fragment.html", &fragment, &mut failures);
    let json = serde_json::to_string_pretty(&contexts[0].recap).unwrap();
    golden("recap.json", &format!("{json}\n"), &mut failures);
    check(failures);
}

#[test]
fn invites_match_the_golden_files() {
    let mut recap = crate::recap::build(&crate::recap::sample::sample_input());
    let url = "https://firstcall.example/calls/42";
    let build = |recap: &crate::recap::Recap, method, sequence| {
        let call = CallInvite { call_id: recap.call.id, start: recap.call.due_at, duration_minutes: 30, sequence, method };
        let organizer = ("firstcall", "firstcall@firstcall.example");
        let attendee = ("Ana Lima", recap.call.rep_email.as_str());
        let dtstamp = Utc.with_ymd_and_hms(2026, 3, 2, 15, 31, 0).unwrap();
        ics::invite(&ics::call_invite(recap, call, organizer, attendee, url, &ics::uid_host("https://firstcall.example"), dtstamp))
    };
    assert_eq!(recap.call.rep_timezone, Timezone(chrono_tz::America::New_York));
    let mut failures = Vec::new();
    golden("invite_request.ics", &build(&recap, InviteMethod::Request, 0), &mut failures);
    golden("invite_cancel.ics", &build(&recap, InviteMethod::Cancel, 1), &mut failures);
    recap.call.rep_timezone = Timezone(chrono_tz::Asia::Kolkata);
    golden("invite_kolkata.ics", &build(&recap, InviteMethod::Request, 0), &mut failures);
    check(failures);
}
