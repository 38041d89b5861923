//! Loading, overriding, escaping and error reporting of the email templates.

use std::fs;

use chrono::Duration;

use super::*;
use crate::proposals::model::{Activity, ActivityKind, Contact, ContactRole};
use crate::recap::sample::sample_input;
use crate::recap::{self, RecapInput};

const SCRIPT: &str = "<script>alert(1)</script>";
const ATTRIBUTE: &str = "\" onmouseover=\"alert(1)";

fn builtin() -> Templates {
    Templates::builtin().expect("built-in templates compile")
}

/// The sample deal with hostile text in every field a CRM fills.
fn hostile_input() -> RecapInput {
    let evil = |what: &str| format!("{what} {SCRIPT} {ATTRIBUTE} & co");
    let mut input = sample_input();
    input.order.account_name = Some(evil("Account"));
    input.order.deal_id = evil("D");
    input.call.rep_name = Some(evil("Rep"));
    let version = input.proposal.as_mut().expect("sample has a proposal");
    let p = &mut version.proposal;
    for r in &mut p.requirements {
        r.text = evil("Requirement");
        r.stated_in = Some(evil("Stated"));
    }
    for c in &mut p.commitments {
        c.text = evil("Commitment");
    }
    for l in &mut p.line_items {
        l.rationale = Some(evil("Rationale"));
    }
    p.contacts.push(Contact { name: evil("Contact"), email: None, title: Some(evil("Title")), role: ContactRole::DecisionMaker });
    p.activities.push(Activity { at: input.order.ordered_at, kind: ActivityKind::Email, summary: evil("Activity") });
    for o in &mut input.order.line_items {
        o.name = evil("Item");
        o.sku = evil("SKU");
    }
    input
}

fn contexts_for(recap: &Recap) -> Vec<EmailContext> {
    let url = "https://firstcall.example/calls/42?t=x&y=z";
    vec![
        EmailContext::first_call(recap.clone(), url),
        EmailContext::reminder(recap.clone(), url, 1, None),
        EmailContext::reminder(recap.clone(), url, 3, Some(Duration::hours(5))),
        EmailContext::escalation(
            recap.clone(),
            url,
            EscalationInfo {
                level: 2,
                recipient_role: RecipientRole::ManagerOfManager,
                recipient_name: Some(format!("Boss {SCRIPT}")),
                note: Some(format!("note {SCRIPT}")),
            },
            None,
        ),
        EmailContext::cancellation(recap.clone(), url),
        EmailContext::reassigned(recap.clone(), url, format!("Old {SCRIPT}\r\nBcc: x@evil.example")),
    ]
}

#[test]
fn the_built_in_templates_pass_their_own_check() {
    let t = builtin();
    t.check().expect("check passes");
    assert!(t.origins().values().all(|o| *o == TemplateOrigin::BuiltIn));
    for kind in EmailKind::ALL {
        for suffix in ["subject.txt", "txt", "html"] {
            assert!(t.origins().contains_key(&format!("{}.{suffix}", kind.as_str())), "{} {suffix}", kind.as_str());
        }
    }
}

#[test]
fn the_shipped_directory_matches_the_compiled_in_copies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
    let t = Templates::load(&dir).unwrap();
    assert!(t.origins().values().all(|o| matches!(o, TemplateOrigin::Disk(_))));
    let from_disk = t.render(&sample_contexts()[0]).unwrap();
    assert_eq!(from_disk, builtin().render(&sample_contexts()[0]).unwrap());
}

#[test]
fn every_crm_string_is_escaped_in_html() {
    let recap = recap::build(&hostile_input());
    let t = builtin();
    let mut htmls = vec![t.render_recap_html_fragment(&recap).unwrap()];
    for ctx in contexts_for(&recap) {
        let email = t.render(&ctx).unwrap();
        htmls.push(email.html);
        // Text is not HTML: it keeps the characters as they are.
        assert!(email.text.contains("& co"), "{}", ctx.kind.as_str());
    }
    for html in &htmls {
        assert!(!html.contains("<script"), "unescaped script tag");
        assert!(!html.contains("\" onmouseover"), "attribute breakout");
        assert!(!html.contains("& co"), "bare ampersand");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&quot; onmouseover=&quot;"));
    }
    let first = t.render(&contexts_for(&recap)[0]).unwrap();
    assert!(first.text.contains(SCRIPT), "text templates do not escape");
    for needle in ["Requirement", "Stated", "Commitment", "Rationale", "Contact", "Title", "Activity", "Item", "SKU", "Rep", "Account"] {
        assert!(first.html.contains(&format!("{needle} &lt;script&gt;")), "{needle} not shown escaped");
    }
}

#[test]
fn subjects_are_one_line_whatever_the_crm_sends() {
    let mut input = sample_input();
    input.order.account_name = Some("Acme\r\nBcc: victim@example.com\nX-Evil: 1".into());
    input.call.rep_name = Some("Ana\rLima".into());
    let recap = recap::build(&input);
    let t = builtin();
    for ctx in contexts_for(&recap) {
        let subject = t.render(&ctx).unwrap().subject;
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert!(!subject.is_empty());
        assert!(!subject.contains("&lt;"), "subjects are not HTML-escaped: {subject}");
    }
    let subject = t.render(&EmailContext::first_call(recap, "u")).unwrap().subject;
    assert!(subject.starts_with("First call with Acme Bcc: victim@example.com X-Evil: 1: due "), "{subject}");
}

#[test]
fn long_subjects_are_cut() {
    let mut input = sample_input();
    input.order.account_name = Some("A".repeat(500));
    let subject = builtin().render(&EmailContext::first_call(recap::build(&input), "u")).unwrap().subject;
    assert_eq!(subject.chars().count(), SUBJECT_MAX_CHARS);
    assert!(subject.ends_with('…'));
}

#[test]
fn each_kind_says_what_it_is_about() {
    let t = builtin();
    let recap = recap::build(&sample_input());
    let url = "https://firstcall.example/calls/42";
    let reminder = t.render(&EmailContext::reminder(recap.clone(), url, 3, Some(Duration::minutes(200)))).unwrap();
    assert_eq!(reminder.subject, "Overdue by 3 hours 20 minutes: first call with Northwind Health (reminder 3)");
    assert!(reminder.text.contains("This is reminder 3."));
    let early = t.render(&EmailContext::reminder(recap.clone(), url, 1, None)).unwrap();
    assert_eq!(early.subject, "Reminder: first call with Northwind Health (reminder 1)");
    assert!(early.text.contains("is due Tue 3 Mar 2026, 14:00 EST (America/New_York)"));

    let escalation = EscalationInfo { level: 2, recipient_role: RecipientRole::ManagerOfManager, recipient_name: None, note: None };
    let esc = t.render(&EmailContext::escalation(recap.clone(), url, escalation, Some(Duration::hours(50)))).unwrap();
    assert_eq!(esc.subject, "Ana Lima's first call with Northwind Health is overdue by 2 days 2 hours");
    assert!(esc.text.starts_with("Hi there,"));
    assert!(esc.text.contains("as Ana Lima's manager's manager (escalation level 2)"));
    assert!(esc.html.contains("GAPS AND RISKS") || esc.html.contains("Gaps and risks"));

    let cancel = t.render(&EmailContext::cancellation(recap.clone(), url)).unwrap();
    assert_eq!(cancel.subject, "Cancelled: first call with Northwind Health (the order was cancelled)");
    let mut by_hand = EmailContext::cancellation(recap.clone(), url);
    by_hand.cancel_reason = Some("sales ops (dashboard) cancelled it: the customer chose another vendor".into());
    let by_hand = t.render(&by_hand).unwrap();
    assert_eq!(by_hand.subject, "Cancelled: first call with Northwind Health");
    assert!(by_hand.text.contains("is off: sales ops (dashboard) cancelled it: the customer chose another vendor."), "{}", by_hand.text);
    assert!(!by_hand.text.contains("order") && !by_hand.html.contains("order was cancelled"), "{}", by_hand.text);
    let moved = t.render(&EmailContext::reassigned(recap.clone(), url, "Jordan Park")).unwrap();
    assert_eq!(moved.subject, "First call with Northwind Health moved to Ana Lima");
    assert!(moved.text.starts_with("Hi Jordan Park,"));
}

#[test]
fn the_fragment_is_the_recap_without_the_frame() {
    let html = builtin().render_recap_html_fragment(&recap::build(&sample_input())).unwrap();
    assert!(html.starts_with("<div"));
    assert!(!html.contains("<html") && !html.contains("<body"));
    assert!(html.contains(">Requirement</th>") && html.contains(">Commitment</th>") && html.contains(">Deliver by</th>"));
    assert!(html.contains("11 days late"));
    assert!(!html.contains("<style"), "inline styles only");
}

#[test]
fn a_missing_directory_means_the_built_in_copies() {
    let t = Templates::load(Path::new("/definitely/not/here")).unwrap();
    assert!(t.origins().values().all(|o| *o == TemplateOrigin::BuiltIn));
}

#[test]
fn files_on_disk_override_and_add_to_the_built_in_copies() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("first_call.subject.txt"), "{% include \"brand.txt\" %} call: {{ account }}").unwrap();
    fs::write(dir.path().join("brand.txt"), "ACME Sales").unwrap();
    fs::write(dir.path().join("notes.md"), "ignored").unwrap();
    fs::write(dir.path().join(".first_call.txt.swp"), "{% broken").unwrap();
    let t = Templates::load(dir.path()).unwrap();
    assert_eq!(t.origins()["first_call.subject.txt"], TemplateOrigin::Disk(dir.path().join("first_call.subject.txt")));
    assert_eq!(t.origins()["first_call.txt"], TemplateOrigin::BuiltIn);
    assert!(!t.origins().contains_key("notes.md"));
    let email = t.render(&sample_contexts()[0]).unwrap();
    assert_eq!(email.subject, "ACME Sales call: Northwind Health");
    t.check().unwrap();
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("reminder.html"), "<p>one</p>\n<p>two</p>\n{% if reminder_number %}\n<p>never closed</p>\n").unwrap();
    let err = Templates::load(dir.path()).unwrap_err();
    assert_eq!(err.file, dir.path().join("reminder.html").display().to_string());
    assert!(err.line.is_some_and(|l| l >= 3), "{err}");
    assert!(err.reason.starts_with("syntax error"), "{err}");
    assert!(err.to_string().starts_with(&format!("{}:", dir.path().join("reminder.html").display())));
}

#[test]
fn a_misspelt_field_fails_the_check_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("escalation.txt"), "Hi,\n\n{{ rep_nmae }} is late.\n").unwrap();
    let t = Templates::load(dir.path()).expect("it compiles");
    let err = t.check().unwrap_err();
    assert_eq!(err.file, dir.path().join("escalation.txt").display().to_string());
    assert_eq!(err.line, Some(3));
    assert!(err.reason.contains("undefined"), "{err}");
}

#[test]
fn an_error_in_a_built_in_copy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A disk layout that lacks a block the built-in first_call.html fills is fine; a disk
    // recap.txt with a bad filter fails inside the built-in first_call.txt that includes it.
    fs::write(dir.path().join("recap.txt"), "{{ recap.deal.deal_id|nosuchfilter }}").unwrap();
    let err = Templates::load(dir.path()).unwrap().check().unwrap_err();
    assert_eq!(err.file, dir.path().join("recap.txt").display().to_string());
    assert_eq!(err.line, Some(1));
    assert!(err.reason.starts_with("unknown filter"), "{err}");
    assert!(err.reason.ends_with("(included from built-in first_call.txt:25)"), "{err}");
    let builtin_err = TemplateError { file: "built-in x.txt".into(), line: None, reason: "r".into() };
    assert_eq!(builtin_err.to_string(), "built-in x.txt: r");
}

#[test]
fn templates_can_be_shared_between_workers() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Templates>();
    shareable::<EmailContext>();
}

#[test]
fn an_email_routed_to_sales_ops_says_why_in_text_and_html_and_the_address_stays_text() {
    let t = builtin();
    let recap = recap::build(&sample_input());
    let reason = format!("the owner address eve@evil.example{SCRIPT} is not in the rep directory nor in mail.allowed_recipient_domains");
    for ctx in contexts_for(&recap).into_iter().filter(|c| c.kind != EmailKind::Reassigned) {
        let kind = ctx.kind;
        let plain = t.render(&ctx).unwrap();
        let says_why = |text: &str| text.contains("routed to you because") || text.contains("went to sales ops because");
        assert!(!says_why(&plain.text) && !says_why(&plain.html), "{kind:?}: no reason without one");
        let routed = t.render(&EmailContext { fallback_reason: Some(reason.clone()), ..ctx }).unwrap();
        assert!(routed.text.contains(&format!("because {reason}.")), "{kind:?}: {}", routed.text);
        assert!(routed.html.contains("eve@evil.example&lt;script&gt;") && !routed.html.contains(SCRIPT), "{kind:?}: escaped in HTML");
        assert!(!routed.subject.contains("eve@evil.example"), "{kind:?}: the subject stays as it was");
    }
}

#[test]
fn an_email_to_who_covers_greets_them_and_says_for_whom_until_when() {
    let t = builtin();
    let recap = recap::build(&sample_input());
    let covering = CoverInfo { rep_name: "Ana Lima".into(), delegate_name: "Ben <b>Brooks</b>".into(), until: "Fri 27 Nov 2026".into() };
    let to_the_rep = [
        EmailKind::FirstCall,
        EmailKind::Reminder,
        EmailKind::Cancellation,
        EmailKind::ContextUpdate,
        EmailKind::CheckIn,
        EmailKind::PromiseReminder,
    ];
    let promise = EmailContext::promise_reminder(recap.clone(), "https://firstcall.example/calls/42", 1, super::sample_promise(None));
    let contexts: Vec<EmailContext> = contexts_for(&recap).into_iter().chain([promise]).collect();
    assert!(contexts.iter().any(|c| c.kind == EmailKind::PromiseReminder));
    for ctx in contexts.into_iter().filter(|c| to_the_rep.contains(&c.kind)) {
        let kind = ctx.kind;
        let plain = t.render(&ctx).unwrap();
        assert!(!plain.text.contains("out of office"), "{kind:?}: nothing said while the rep is in");
        let covered = t.render(&EmailContext { covering: Some(covering.clone()), ..ctx }).unwrap();
        assert!(covered.text.starts_with("Hi Ben <b>Brooks</b>,"), "{kind:?}: {}", covered.text);
        assert!(covered.text.contains("Ana Lima is out of office until Fri 27 Nov 2026, and you are covering for them"), "{kind:?}");
        assert!(covered.html.contains("Hi Ben &lt;b&gt;Brooks&lt;/b&gt;,"), "{kind:?}: escaped in HTML: {}", covered.html);
        assert!(covered.html.contains("id=\"covering\""), "{kind:?}");
    }
}

#[test]
fn the_digest_changes_with_any_templates_wording_and_only_then() {
    let builtin = Templates::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Templates::load(dir.path()).unwrap().digest(), builtin.digest(), "an empty directory: the built-in wording");
    std::fs::write(dir.path().join("reminder.txt"), "Hi {{ rep_name }}, the call is still open.\n").unwrap();
    let edited = Templates::load(dir.path()).unwrap();
    assert_ne!(edited.digest(), builtin.digest(), "one template reworded");
    assert_eq!(Templates::load(dir.path()).unwrap().digest(), edited.digest(), "the same files, the same digest");
}
