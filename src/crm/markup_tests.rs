//! Every markup rule, every reason a line cannot be read, amendment across notes, rich-text
//! notes, the fixtures in `tests/fixtures/notes/`, and many mutated inputs that never panic.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::crm::text_of_html;

fn day(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn at(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, d, 9, 0, 0).single().expect("a valid time")
}

fn note(text: &str, d: u32) -> Note<'_> {
    Note { text, at: at(d), stated_in: format!("HubSpot note, {d} Oct 2026") }
}

fn read(text: &str) -> Items {
    read_notes([note(text, 2)])
}

fn need(id: &str, priority: Priority, need_by: Option<NaiveDate>, text: &str, stated_in: &str) -> Requirement {
    Requirement { id: id.into(), text: text.into(), priority, need_by, stated_in: Some(stated_in.into()) }
}

fn promise(id: &str, covers: &[&str], deliver_by: Option<NaiveDate>, text: &str) -> Commitment {
    Commitment { id: id.into(), text: text.into(), covers: covers.iter().map(|c| c.to_string()).collect(), deliver_by, owner: None }
}

/// The one reason `line` cannot be read; it yields no item.
fn reason(line: &str) -> String {
    let items = read(line);
    assert!(items.requirements.is_empty() && items.commitments.is_empty(), "{line:?} yielded an item: {items:?}");
    assert_eq!(items.unreadable.len(), 1, "{line:?}: {items:?}");
    items.unreadable[0].reason.clone()
}

const OCT_2: &str = "HubSpot note, 2 Oct 2026";
const OCT_5: &str = "HubSpot note, 5 Oct 2026";

#[test]
fn the_documented_examples_read_exactly() {
    let items = read(
        "#need sso must by 2027-01-15: Single sign-on through Okta\n\
         #promise sso by 2027-02-01: SAML SSO with the Okta connector\n\
         - #need audit-log should: Export of the audit log to S3\n\
         #promise sso,scim: Okta SSO and SCIM provisioning",
    );
    assert_eq!(
        items.requirements,
        [
            need("sso", Priority::Must, day(2027, 1, 15), "Single sign-on through Okta", OCT_2),
            need("audit-log", Priority::Should, None, "Export of the audit log to S3", OCT_2),
        ]
    );
    // The second `#promise sso` amends the first: its covers and its (absent) date replace them.
    assert_eq!(items.commitments, [promise("sso", &["sso", "scim"], None, "Okta SSO and SCIM provisioning")]);
    assert_eq!(items.unreadable, []);
}

#[test]
fn priority_defaults_to_must_and_words_before_the_colon_come_in_any_order() {
    let items = read(
        "#need a: default\n#need b nice: nice\n#need c by 2027-03-01 should: dated first\n#need d NICE BY 2027-03-02: capitals\n\
         #need e, must: comma after the label",
    );
    let got: Vec<(&str, Priority, Option<NaiveDate>)> = items.requirements.iter().map(|r| (r.id.as_str(), r.priority, r.need_by)).collect();
    assert_eq!(
        got,
        [
            ("a", Priority::Must, None),
            ("b", Priority::Nice, None),
            ("c", Priority::Should, day(2027, 3, 1)),
            ("d", Priority::Nice, day(2027, 3, 2)),
            ("e", Priority::Must, None),
        ]
    );
    assert_eq!(items.unreadable, []);
}

#[test]
fn a_promise_covers_every_label_it_names_and_its_id_is_the_first() {
    let items = read(
        "#promise sso,scim,audit by 2027-02-01: all three\n#promise b , c: spaces around the comma\n\
         #promise d,d,e: a label twice counts once\n#promise gdpr: covers nothing asked for",
    );
    assert_eq!(
        items.commitments,
        [
            promise("sso", &["sso", "scim", "audit"], day(2027, 2, 1), "all three"),
            promise("b", &["b", "c"], None, "spaces around the comma"),
            promise("d", &["d", "e"], None, "a label twice counts once"),
            // No `#need gdpr`: still a commitment, which the recap shows as nobody's requirement.
            promise("gdpr", &["gdpr"], None, "covers nothing asked for"),
        ]
    );
    assert_eq!(items.requirements, []);
}

#[test]
fn tags_and_labels_are_case_insensitive_and_labels_are_stored_lower_cased() {
    let items =
        read("#NEED SSO MUST BY 2027-01-15: Okta\n#Promise Sso,SCIM By 2027-02-01: SAML\n#need Ünïcode_Label-2: letters of any script");
    assert_eq!(items.requirements[0], need("sso", Priority::Must, day(2027, 1, 15), "Okta", OCT_2));
    assert_eq!(items.commitments, [promise("sso", &["sso", "scim"], day(2027, 2, 1), "SAML")]);
    assert_eq!(items.requirements[1].id, "ünïcode_label-2");
}

#[test]
fn bullets_and_leading_white_space_are_allowed() {
    let lines = [
        "- #need a: dash",
        "* #need b: star",
        "• #need c: bullet",
        "1. #need d: numbered",
        "12) #need e: numbered with a parenthesis",
        "    \t- #need f: indented",
        "\u{a0}\u{feff}\u{200b}#need g: pasted with invisible characters",
        "-#need h: no space after the bullet",
    ];
    let items = read(&lines.join("\n"));
    let ids: Vec<&str> = items.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    assert_eq!(items.unreadable, []);
    // Only one bullet, and only before the tag.
    assert_eq!(read("- - #need a: two bullets\n1234. #need b: not a list number\nsee #need c: mid-line"), Items::default());
}

#[test]
fn crlf_cr_and_unicode_line_ends_split_lines() {
    let items = read("#need a: one\r\n#need b: two\r#need c: three\u{2028}#need d: four\r\n");
    let got: Vec<(&str, &str)> = items.requirements.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect();
    assert_eq!(got, [("a", "one"), ("b", "two"), ("c", "three"), ("d", "four")]);
}

#[test]
fn empty_input_and_text_without_tags_read_as_nothing() {
    assert_eq!(read_notes(Vec::<Note>::new()), Items::default());
    assert_eq!(read(""), Items::default());
    assert_eq!(read("\n\r\n   \n"), Items::default());
    assert_eq!(read("Call went well.\nThey need SSO: Okta.\nneed sso: not tagged\n# heading\n#1 priority: SSO"), Items::default());
}

#[test]
fn a_later_item_replaces_an_earlier_one_in_its_first_position_with_the_later_origin() {
    let first = "#need sso must by 2027-01-15: Okta SSO\n#need audit: Audit log\n#promise sso by 2027-02-01: SAML";
    let later = "#need sso should: Okta or Azure AD SSO\n#promise sso,scim: SSO and SCIM\n#need scim nice: SCIM";
    // Given newest first: read in time order all the same.
    let items = read_notes([note(later, 5), note(first, 2)]);
    assert_eq!(
        items.requirements,
        [
            need("sso", Priority::Should, None, "Okta or Azure AD SSO", OCT_5),
            need("audit", Priority::Must, None, "Audit log", OCT_2),
            need("scim", Priority::Nice, None, "SCIM", OCT_5),
        ]
    );
    assert_eq!(items.commitments, [promise("sso", &["sso", "scim"], None, "SSO and SCIM")]);
    assert_eq!(read_notes([note(first, 2), note(later, 5)]), items);
}

#[test]
fn notes_of_the_same_time_are_read_in_the_given_order_and_kinds_do_not_amend_each_other() {
    let a = Note { text: "#need sso: from a", at: at(3), stated_in: "a".into() };
    let b = Note { text: "#need sso: from b\n#promise sso: a promise, not a need", at: at(3), stated_in: "b".into() };
    let items = read_notes([a.clone(), b.clone()]);
    assert_eq!(items.requirements, [need("sso", Priority::Must, None, "from b", "b")]);
    assert_eq!(items.commitments, [promise("sso", &["sso"], None, "a promise, not a need")]);
    assert_eq!(read_notes([b, a]).requirements, [need("sso", Priority::Must, None, "from a", "a")]);
    // A blank origin is no origin; a later line of the same note amends an earlier one too.
    let items = read_notes([Note { text: "#need x: one\n#need x: two", at: at(1), stated_in: "  ".into() }]);
    assert_eq!(items.requirements, [Requirement { stated_in: None, ..need("x", Priority::Must, None, "two", "") }]);
}

#[test]
fn every_reason_a_line_cannot_be_read() {
    let long_label = "a".repeat(65);
    let long_label_line = format!("#need {long_label}: x");
    let long_text = format!("#need sso: {}", "x".repeat(4001));
    let cases: Vec<(&str, String)> = vec![
        ("#need sso Single sign-on through Okta", "missing ':' before the text".into()),
        ("#need sso must by 2027-01-15 Single sign-on: through Okta", "missing ':' before the text".into()),
        ("#need sso:", "no text after ':'".into()),
        ("#promise sso by 2027-02-01:   \t", "no text after ':'".into()),
        ("#need sso by 2027-13-01: x", "'2027-13-01' is not a date (write YYYY-MM-DD)".into()),
        ("#need sso by 2027-02-30: x", "'2027-02-30' is not a date (write YYYY-MM-DD)".into()),
        ("#need sso by 15.01.2027: x", "'15.01.2027' is not a date (write YYYY-MM-DD)".into()),
        ("#promise sso by 2027-1-5: x", "'2027-1-5' is not a date (write YYYY-MM-DD)".into()),
        ("#need sso by tomorrow: x", "'tomorrow' is not a date (write YYYY-MM-DD)".into()),
        ("#need sso urgent: x", "'urgent' is not a priority (must, should or nice)".into()),
        ("#need sso by: x", "'by' needs a date after it".into()),
        ("#need sso must by: x", "'by' needs a date after it".into()),
        ("#need s$o: x", "label 's$o' may only use letters, digits, - and _".into()),
        ("#need sso.v2: x", "label 'sso.v2' may only use letters, digits, - and _".into()),
        ("#need -sso: x", "label '-sso' must start with a letter or a digit".into()),
        (&long_label_line, format!("label '{long_label}' is longer than 64 characters")),
        ("#need sso,scim: x", "a #need names one label (found sso,scim)".into()),
        ("#need: x", "missing label: write #need <label>: <text>".into()),
        ("#promise", "missing label: write #promise <label>: <text>".into()),
        ("#need must: x", "missing label before 'must': write #need <label> must: <text>".into()),
        ("#promise by 2027-01-01: x", "missing label before 'by': write #promise <label> by YYYY-MM-DD: <text>".into()),
        ("#promise Must: x", "missing label before 'Must': write #promise <label>: <text>".into()),
        ("#need sso must should: x", "the priority is given twice ('must' and 'should')".into()),
        ("#need sso by 2027-01-01 by 2027-02-01: x", "'by' is given twice".into()),
        ("#need sso 2027-01-15: x", "write 'by' before the date '2027-01-15'".into()),
        ("#promise sso must: x", "a #promise has no priority ('must' belongs on the #need)".into()),
        (
            "#promise sso scim: x",
            "'scim' is not understood before ':' (separate labels with commas; only 'by YYYY-MM-DD' may follow them)".into(),
        ),
        ("#promise sso,,scim: x", "a label is missing in 'sso,,scim' (write labels as sso,scim)".into()),
        (&long_text, "the text is longer than 4000 characters".into()),
    ];
    for (line, want) in cases {
        assert_eq!(reason(line), want, "{line:?}");
    }
}

#[test]
fn an_unreadable_line_is_reported_trimmed_with_its_origin_in_time_order() {
    let items = read_notes([note("  - #need sso urgent: Okta  \r\n#need ok: fine", 5), note("#promise x by soon: y", 2)]);
    let got: Vec<(&str, &str)> = items.unreadable.iter().map(|u| (u.line.as_str(), u.stated_in.as_str())).collect();
    assert_eq!(got, [("#promise x by soon: y", OCT_2), ("- #need sso urgent: Okta", OCT_5)]);
    assert_eq!(items.requirements.len(), 1);
}

#[test]
fn a_long_unreadable_line_is_cut_in_the_report() {
    let line = format!("#need sso urgent: {}", "é".repeat(500));
    let items = read(&line);
    let reported = &items.unreadable[0].line;
    assert_eq!(reported.chars().count(), LINE_MAX + 1);
    assert!(reported.starts_with("#need sso urgent: éé") && reported.ends_with('…'), "{reported}");
    // Control characters never reach the report, nor an item's text.
    let items = read("#need a urgent:\u{0}x\u{1b}[31m\n#need b: tab\there\u{7}");
    assert_eq!(items.unreadable[0].line, "#need a urgent:x[31m");
    assert_eq!(items.requirements[0].text, "tab here");
}

#[test]
fn near_miss_tags_are_flagged_and_other_hashtags_are_note_text() {
    for (line, meant) in [
        ("#needs sso: Okta", "#need"),
        ("#Needed sso: Okta", "#need"),
        ("#requirement sso: Okta", "#need"),
        ("#req sso: Okta", "#need"),
        ("#must sso: Okta", "#need"),
        ("#ned sso: Okta", "#need"),
        ("#nede sso: Okta", "#need"),
        ("- #promised sso: SAML", "#promise"),
        ("#PROMISES sso: SAML", "#promise"),
        ("#promse sso: SAML", "#promise"),
        ("#pormise sso: SAML", "#promise"),
        ("#commit sso: SAML", "#promise"),
        ("#commitment sso: SAML", "#promise"),
    ] {
        let tag = line.trim_start_matches("- ").split_whitespace().next().unwrap_or_default();
        assert_eq!(reason(line), format!("'{tag}' is not a tag: did you mean {meant}?"), "{line:?}");
    }
    let ordinary =
        "#q3 renewal talk\n#followup: send the deck\n#next steps: security review\n#new logo\n#seed stage\n#\n#1: SSO\n#important";
    assert_eq!(read(ordinary), Items::default());
}

#[test]
fn a_rich_text_note_reads_like_plain_text() {
    let html = "<p>Call with Dana.</p><p><b>#need</b> sso must by 2027-01-15: Single sign-on&nbsp;through Okta</p>\
                <ul><li>#need audit-log should: Export to S3 &amp; Glacier</li><li>#promise sso by 2027-13-01: SAML</li></ul>";
    let text = text_of_html(html);
    let items = read(&text);
    assert_eq!(
        items.requirements,
        [
            need("sso", Priority::Must, day(2027, 1, 15), "Single sign-on through Okta", OCT_2),
            need("audit-log", Priority::Should, None, "Export to S3 & Glacier", OCT_2),
        ]
    );
    assert_eq!(items.unreadable.len(), 1);
    assert_eq!(items.unreadable[0].line, "#promise sso by 2027-13-01: SAML");
}

#[test]
fn the_fixture_notes_read_as_expected() {
    let hubspot = text_of_html(include_str!("../../tests/fixtures/notes/hubspot_note.html"));
    let property = include_str!("../../tests/fixtures/notes/deal_property.txt");
    let mistakes = include_str!("../../tests/fixtures/notes/mistakes.txt");
    let items = read_notes([note(mistakes, 9), note(property, 5), note(&hubspot, 2)]);
    let reqs: Vec<(&str, Priority, &str)> =
        items.requirements.iter().map(|r| (r.id.as_str(), r.priority, r.stated_in.as_deref().unwrap_or_default())).collect();
    assert_eq!(
        reqs,
        [
            ("sso", Priority::Must, OCT_5),
            ("audit-log", Priority::Should, OCT_2),
            ("scim", Priority::Should, OCT_5),
            ("reporting", Priority::Nice, OCT_5),
        ]
    );
    assert_eq!(items.requirements[1].text, "Export of the audit log to S3 & Glacier");
    let coms: Vec<(&str, &[String])> = items.commitments.iter().map(|c| (c.id.as_str(), c.covers.as_slice())).collect();
    assert_eq!(coms, [("sso", &["sso".to_string(), "scim".to_string()][..]), ("onboarding", &["onboarding".to_string()][..])]);
    let reasons: Vec<(&str, &str)> = items.unreadable.iter().map(|u| (u.stated_in.as_str(), u.reason.as_str())).collect();
    let oct_9 = "HubSpot note, 9 Oct 2026";
    assert_eq!(
        reasons,
        [
            (OCT_2, "'#needs' is not a tag: did you mean #need?"),
            (oct_9, "'urgent' is not a priority (must, should or nice)"),
            (oct_9, "'2027-13-01' is not a date (write YYYY-MM-DD)"),
            (oct_9, "missing ':' before the text"),
            (oct_9, "'by' needs a date after it"),
            (oct_9, "'log' is not a priority (must, should or nice)"),
            (oct_9, "'#commitment' is not a tag: did you mean #promise?"),
            (oct_9, "a #need names one label (found sso,scim)"),
            (oct_9, "no text after ':'"),
        ]
    );
}

/// Pieces of the markup, of HTML and of hostile text, glued into lines at random.
const PIECES: &[&str] = &[
    "#need",
    "#promise",
    "#NEED",
    "#needs",
    "#q3",
    "#",
    " ",
    "  ",
    "\t",
    ":",
    "::",
    ",",
    ", ",
    "sso",
    "scim",
    "audit-log",
    "Ünï",
    "must",
    "should",
    "nice",
    "by",
    "2027-01-15",
    "2027-13-01",
    "9999-99-99",
    "-",
    "* ",
    "• ",
    "1. ",
    "12)",
    "\n",
    "\r\n",
    "\r",
    "\u{2028}",
    "\u{0}",
    "\u{1b}",
    "\u{feff}",
    "\u{a0}",
    "é",
    "𝄞",
    "<p>",
    "</p>",
    "<br>",
    "<li>",
    "<!--",
    "-->",
    "<script>",
    "&amp;",
    "&nbsp;",
    "&#0;",
    "&#x110000;",
    "&",
    "<",
    ">",
    "\"",
    "'",
    "text",
    "İ",
];

#[test]
fn no_input_panics_and_no_tagged_line_is_dropped() {
    // Seeded, so a failure reproduces.
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let parts = rng.random_range(1..=24);
        let input: String = (0..parts).map(|_| PIECES[rng.random_range(0..PIECES.len())]).collect();
        let items = read_notes([note(&input, 3), Note { text: &text_of_html(&input), at: at(1), stated_in: "html".into() }]);
        for r in &items.requirements {
            assert!(!r.id.is_empty() && !r.text.is_empty() && !r.text.contains(char::is_control), "{input:?}: {r:?}");
        }
        for c in &items.commitments {
            assert_eq!(c.covers.first(), Some(&c.id), "{input:?}");
        }
        for u in &items.unreadable {
            assert!(u.line.chars().count() <= LINE_MAX + 1 && !u.reason.is_empty(), "{input:?}: {u:?}");
        }
        // Nothing dropped silently: a line that starts with a tag is an item or a reason.
        for line in input.split(is_line_break) {
            let word = strip_bullet(line).split(|c: char| c.is_whitespace() || c == ':').next().unwrap_or_default().to_lowercase();
            if word == "#need" || word == "#promise" {
                assert!(!matches!(read_line(line), Ok(None)), "{line:?} was dropped");
            }
        }
    }
    // Long input: many lines, and one line of a million characters.
    let long = format!("{}#need a urgent: {}\n", "#need x urgent: y\n".repeat(10_000), "z".repeat(1_000_000));
    let items = read(&long);
    assert_eq!((items.unreadable.len(), items.requirements.len()), (10_001, 0));
    assert_eq!(items.unreadable[10_000].line.chars().count(), LINE_MAX + 1);
}
