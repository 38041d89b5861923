//! Golden files: the exact text, HTML and `.ics` output for the sample deal, under
//! `tests/golden/`. A change to a template or to the recap shows up here as a diff to review;
//! `UPDATE_GOLDEN=1 cargo test --lib mail` rewrites the files that differ and fails, naming
//! them, so the new output is reviewed (`git diff tests/golden`) and the run repeated without
//! the variable before anything passes. CI (`CI` set) refuses the mode.

use std::ffi::OsStr;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::Timezone;
use crate::mail::ics::{self, CallInvite, InviteMethod};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// What a run does with the golden files.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Compare,
    Update,
}

/// `UPDATE_GOLDEN=1` rewrites the files, except in CI, where rewriting would make the check
/// pass whatever the output: there it is an error.
fn mode(update_golden: Option<&OsStr>, ci: Option<&OsStr>) -> Result<Mode, String> {
    if update_golden.is_none_or(|v| v != "1") {
        return Ok(Mode::Compare);
    }
    match ci {
        Some(v) if !v.is_empty() && v != "false" && v != "0" => Err(format!(
            "UPDATE_GOLDEN=1 is refused when CI is set (CI={}): golden files are rewritten on a developer's machine and the diff reviewed",
            v.to_string_lossy()
        )),
        _ => Ok(Mode::Update),
    }
}

fn mode_from_env() -> Mode {
    mode(std::env::var_os("UPDATE_GOLDEN").as_deref(), std::env::var_os("CI").as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

/// Compares `actual` with the golden file `name`; under [`Mode::Update`], rewrites it when it
/// differs (or is missing) and records it in `failures` as rewritten.
fn golden(mode: &Mode, name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = golden_dir().join(name);
    let stored = std::fs::read_to_string(&path);
    if *mode == Mode::Update {
        if stored.as_deref().ok() != Some(actual) {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, actual).unwrap();
            failures.push(format!("rewrote {name}"));
        }
        return;
    }
    match stored {
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

/// The verdict of a run: `None` when it passes. An update run never passes: whatever it
/// rewrote is unreviewed until the files are compared again without the variable.
fn verdict(mode: &Mode, failures: &[String]) -> Option<String> {
    match mode {
        Mode::Update if failures.is_empty() => {
            Some("UPDATE_GOLDEN=1: every golden file already matched, nothing was rewritten; run again without UPDATE_GOLDEN".into())
        }
        Mode::Update => Some(format!(
            "UPDATE_GOLDEN=1 rewrote {} golden file(s):\n{}\nreview the diff (git diff tests/golden), then run again without UPDATE_GOLDEN",
            failures.len(),
            failures.join("\n")
        )),
        Mode::Compare if failures.is_empty() => None,
        Mode::Compare => Some(format!("golden files differ (review, then UPDATE_GOLDEN=1):\n{}", failures.join("\n"))),
    }
}

fn check(mode: &Mode, failures: Vec<String>) {
    if let Some(why) = verdict(mode, &failures) {
        panic!("{why}");
    }
}

#[test]
fn update_mode_is_refused_in_ci_and_never_passes() {
    let one = Some(OsStr::new("1"));
    assert_eq!(mode(None, None), Ok(Mode::Compare));
    assert_eq!(mode(Some(OsStr::new("0")), None), Ok(Mode::Compare));
    assert_eq!(mode(None, Some(OsStr::new("true"))), Ok(Mode::Compare), "CI compares as usual");
    assert_eq!(mode(one, None), Ok(Mode::Update));
    assert_eq!(mode(one, Some(OsStr::new("false"))), Ok(Mode::Update));
    for ci in ["true", "1"] {
        let e = mode(one, Some(OsStr::new(ci))).unwrap_err();
        assert!(e.contains("refused") && e.contains("CI="), "{e}");
    }
    assert_eq!(verdict(&Mode::Compare, &[]), None);
    let rewrote = verdict(&Mode::Update, &["rewrote reminder.txt".into()]).expect("an update run fails");
    assert!(rewrote.contains("rewrote reminder.txt") && rewrote.contains("without UPDATE_GOLDEN"), "{rewrote}");
    assert!(verdict(&Mode::Update, &[]).is_some_and(|v| v.contains("nothing was rewritten")));
    assert!(verdict(&Mode::Compare, &["a.txt: differs".into()]).is_some());
}

#[test]
fn emails_match_the_golden_files() {
    let t = Templates::builtin().unwrap();
    let names = [
        "first_call",
        "first_call_no_proposal",
        "reminder",
        "escalation",
        "cancellation",
        "reassigned",
        "context_update",
        "promise_reminder",
        "promise_escalation",
        "manager_alert",
        "check_in",
        "recap_changed",
        "reminder_covering",
        "promise_reminder_covering",
    ];
    let contexts = sample_contexts();
    assert_eq!(contexts.len(), names.len());
    let mode = mode_from_env();
    let mut failures = Vec::new();
    for (name, ctx) in names.iter().zip(&contexts) {
        let email = t.render(ctx).unwrap();
        golden(&mode, &format!("{name}.subject.txt"), &format!("{}\n", email.subject), &mut failures);
        golden(&mode, &format!("{name}.txt"), &email.text, &mut failures);
        golden(&mode, &format!("{name}.html"), &email.html, &mut failures);
    }
    let fragment = t.render_recap_html_fragment(&contexts[0].recap).unwrap();
    golden(&mode, "recap_fragment.html", &fragment, &mut failures);
    let json = serde_json::to_string_pretty(&contexts[0].recap).unwrap();
    golden(&mode, "recap.json", &format!("{json}\n"), &mut failures);
    check(&mode, failures);
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
    let mode = mode_from_env();
    let mut failures = Vec::new();
    golden(&mode, "invite_request.ics", &build(&recap, InviteMethod::Request, 0), &mut failures);
    golden(&mode, "invite_cancel.ics", &build(&recap, InviteMethod::Cancel, 1), &mut failures);
    recap.call.rep_timezone = Timezone(chrono_tz::Asia::Kolkata);
    golden(&mode, "invite_kolkata.ics", &build(&recap, InviteMethod::Request, 0), &mut failures);
    check(&mode, failures);
}
