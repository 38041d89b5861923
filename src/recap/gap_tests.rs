//! Every gap rule, the gap order, and the recap built around them.

use chrono::{NaiveDate, TimeZone, Utc};

use super::model::*;
use super::sample::{sample_input, sample_input_without_proposal};
use super::{build, gaps::sort_gaps};
use crate::domain::OrderedItem;
use crate::domain::{Currency, EmailAddress, Money, Source, Timezone};
use crate::proposals::model::*;

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

fn usd(minor: i64) -> Money {
    Money { minor, currency: Currency::parse("USD").unwrap() }
}

fn req(id: &str, priority: Priority, need_by: Option<NaiveDate>) -> Requirement {
    Requirement { id: id.into(), text: format!("need {id}"), priority, need_by, stated_in: None }
}

fn com(id: &str, covers: &[&str], deliver_by: Option<NaiveDate>) -> Commitment {
    Commitment {
        id: id.into(),
        text: format!("promise {id}"),
        covers: covers.iter().map(|s| s.to_string()).collect(),
        deliver_by,
        owner: None,
    }
}

fn dm() -> Contact {
    Contact { name: "Dana".into(), email: None, title: None, role: ContactRole::DecisionMaker }
}

/// A proposal with a decision maker and nothing else: no gaps.
fn proposal() -> Proposal {
    Proposal {
        account: Account { name: "Acme".into(), segment: None },
        rep_email: None,
        contacts: vec![dm()],
        requirements: vec![],
        commitments: vec![],
        line_items: vec![],
        activities: vec![],
        unreadable: vec![],
    }
}

fn input(p: Option<Proposal>) -> RecapInput {
    RecapInput {
        proposal: p.map(|proposal| ProposalVersion {
            version: 1,
            received_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            proposal,
        }),
        order: OrderSnapshot {
            source: Source::Generic,
            deal_id: "D-1".into(),
            account_name: None,
            amount: None,
            line_items: vec![],
            // 03:00 UTC on 1 Mar is still 28 Feb in New York.
            ordered_at: Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap(),
            segment: None,
        },
        call: CallSnapshot {
            id: 7,
            due_at: Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(),
            rep_name: None,
            rep_email: "rep@seller.example".into(),
            rep_timezone: Timezone(chrono_tz::America::New_York),
            schedule_name: "default".into(),
        },
    }
}

fn gaps_of(p: Proposal) -> Vec<Gap> {
    build(&input(Some(p))).gaps
}

fn kinds(gaps: &[Gap]) -> Vec<&'static str> {
    gaps.iter().map(|g| g.gap.kind()).collect()
}

#[test]
fn a_clean_proposal_has_no_gaps() {
    let mut p = proposal();
    p.requirements = vec![req("R1", Priority::Must, Some(day(4, 1)))];
    p.commitments = vec![com("C1", &["R1"], Some(day(4, 1)))];
    let recap = build(&input(Some(p)));
    assert!(recap.gaps.is_empty(), "{:?}", recap.gaps);
    assert_eq!(recap.summary.worst_gap, None);
    assert_eq!(recap.requirements[0].status, CoverageStatus::Covered);
}

#[test]
fn no_proposal_on_file_is_the_only_gap_and_the_order_is_still_listed() {
    let mut i = input(None);
    i.order.line_items = vec![OrderedItem { sku: "A".into(), name: "Thing".into(), quantity: 2.0, unit_price: None }];
    i.order.account_name = Some("  Acme  ".into());
    let recap = build(&i);
    assert_eq!(kinds(&recap.gaps), vec!["no_proposal_on_file"]);
    assert_eq!(recap.gaps[0].severity, Severity::Critical);
    assert!(recap.gaps[0].message.starts_with("No proposal is on file"));
    assert_eq!(recap.proposal, None);
    assert_eq!(recap.line_items.len(), 1);
    assert_eq!(recap.line_items[0].status, LineItemStatus::NotCompared);
    assert_eq!(recap.deal.account_name.as_deref(), Some("Acme"));
    assert!(recap.requirements.is_empty() && recap.timeline.is_empty());
    let topics: Vec<AgendaTopic> = recap.agenda.points.iter().map(|p| p.topic).collect();
    assert_eq!(topics, vec![AgendaTopic::Requirements, AgendaTopic::Order]);
}

#[test]
fn uncovered_requirements_by_priority() {
    let mut p = proposal();
    p.requirements = vec![req("N", Priority::Nice, None), req("S", Priority::Should, None), req("M", Priority::Must, None)];
    let gaps = gaps_of(p);
    assert_eq!(kinds(&gaps), vec!["uncovered_must_have", "uncovered_should_have", "uncovered_nice_to_have"]);
    let sev: Vec<Severity> = gaps.iter().map(|g| g.severity).collect();
    assert_eq!(sev, vec![Severity::Critical, Severity::Medium, Severity::Low]);
    assert_eq!(gaps[0].gap, RecapGap::UncoveredMustHave { requirement_id: "M".into(), requirement: "need M".into() });
    assert!(gaps[0].message.contains("“need M”"));
}

#[test]
fn late_delivery_is_counted_in_days_and_weighed_by_priority() {
    let mut p = proposal();
    p.requirements = vec![
        req("M", Priority::Must, Some(day(3, 20))),
        req("S", Priority::Should, Some(day(3, 20))),
        req("N", Priority::Nice, Some(day(3, 20))),
    ];
    p.commitments = vec![com("CM", &["M"], Some(day(3, 31))), com("CS", &["S"], Some(day(3, 21))), com("CN", &["N"], Some(day(4, 20)))];
    let gaps = gaps_of(p.clone());
    assert_eq!(kinds(&gaps), vec!["late_delivery"; 3]);
    let summary: Vec<(Severity, i64)> = gaps
        .iter()
        .map(|g| match g.gap {
            RecapGap::LateDelivery { by_days, .. } => (g.severity, by_days),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(summary, vec![(Severity::High, 11), (Severity::Medium, 1), (Severity::Low, 31)]);
    assert!(gaps[0].message.contains("11 days after must-have “need M” is needed (Fri 20 Mar 2026)"), "{}", gaps[0].message);
    let recap = build(&input(Some(p)));
    let m = recap.requirements.iter().find(|r| r.id == "M").unwrap();
    assert_eq!(m.status, CoverageStatus::Late);
    assert_eq!(m.commitments[0].late_by_days, Some(11));
    assert!(recap.timeline.iter().all(|e| e.late));
}

#[test]
fn delivering_on_the_need_by_day_or_without_dates_is_not_late() {
    let mut p = proposal();
    p.requirements = vec![req("A", Priority::Must, Some(day(3, 20))), req("B", Priority::Must, None)];
    p.commitments = vec![com("C1", &["A"], Some(day(3, 20))), com("C2", &["B"], Some(day(12, 1)))];
    assert!(gaps_of(p).is_empty());
}

#[test]
fn one_late_commitment_among_several_makes_the_requirement_late() {
    let mut p = proposal();
    p.requirements = vec![req("A", Priority::Must, Some(day(3, 20)))];
    p.commitments = vec![com("C1", &["A"], Some(day(3, 1))), com("C2", &["A"], Some(day(3, 22)))];
    let recap = build(&input(Some(p)));
    assert_eq!(kinds(&recap.gaps), vec!["late_delivery"]);
    assert_eq!(recap.requirements[0].status, CoverageStatus::Late);
    assert_eq!(recap.requirements[0].commitments.len(), 2);
}

#[test]
fn a_commitment_for_no_requirement_is_a_possible_over_promise() {
    let mut p = proposal();
    p.commitments = vec![com("C1", &[], Some(day(5, 1)))];
    let recap = build(&input(Some(p)));
    assert_eq!(kinds(&recap.gaps), vec!["commitment_without_requirement"]);
    assert_eq!(recap.gaps[0].severity, Severity::High);
    assert!(recap.gaps[0].message.contains("over-promise"));
    assert_eq!(recap.commitments_without_requirement.len(), 1);
    assert_eq!(recap.timeline[0].covers, vec![]);
}

#[test]
fn a_commitment_dated_before_the_order_day_in_the_reps_zone_has_passed() {
    // Ordered 03:00 UTC 1 Mar = 28 Feb in New York: a 28 Feb date has not passed, 27 Feb has.
    let mut p = proposal();
    p.requirements = vec![req("R", Priority::Should, None)];
    p.commitments = vec![com("C1", &["R"], Some(day(2, 28))), com("C2", &["R"], Some(day(2, 27)))];
    let gaps = gaps_of(p);
    assert_eq!(kinds(&gaps), vec!["commitment_date_passed"]);
    assert_eq!(
        gaps[0].gap,
        RecapGap::CommitmentDatePassed {
            commitment_id: "C2".into(),
            commitment: "promise C2".into(),
            deliver_by: day(2, 27),
            ordered_on: day(2, 28)
        }
    );
    assert_eq!(gaps[0].severity, Severity::High);
}

#[test]
fn an_undated_commitment_is_medium_for_a_must_have_and_low_otherwise() {
    let mut p = proposal();
    p.requirements = vec![req("S", Priority::Should, Some(day(6, 1))), req("M", Priority::Must, Some(day(5, 1)))];
    p.commitments = vec![com("C1", &["S"], None), com("C2", &["S", "M"], None)];
    let gaps = gaps_of(p);
    assert_eq!(kinds(&gaps), vec!["undated_commitment", "undated_commitment"]);
    assert_eq!(
        gaps[0].gap,
        RecapGap::UndatedCommitment {
            commitment_id: "C2".into(),
            commitment: "promise C2".into(),
            need_by: Some(day(5, 1)),
            covers_must_have: true
        }
    );
    assert_eq!(gaps[0].severity, Severity::Medium);
    assert!(gaps[0].message.contains("needed by Fri 1 May 2026"));
    assert_eq!(gaps[1].severity, Severity::Low);
}

#[test]
fn order_differences_are_gaps_one_per_line() {
    let mut p = proposal();
    p.line_items = vec![
        LineItem { sku: "A".into(), name: "Alpha".into(), quantity: 10.0, unit_price: usd(100), rationale: None },
        LineItem { sku: "B".into(), name: "Beta".into(), quantity: 1.0, unit_price: usd(100), rationale: None },
        LineItem { sku: "C".into(), name: "Gamma".into(), quantity: 1.0, unit_price: usd(100), rationale: None },
    ];
    let mut i = input(Some(p));
    i.order.line_items = vec![
        OrderedItem { sku: "A".into(), name: "Alpha".into(), quantity: 12.0, unit_price: Some(usd(90)) },
        OrderedItem { sku: "C".into(), name: "Gamma".into(), quantity: 1.0, unit_price: Some(usd(100)) },
        OrderedItem { sku: "D".into(), name: "Delta".into(), quantity: 3.0, unit_price: None },
    ];
    let recap = build(&i);
    assert_eq!(kinds(&recap.gaps), vec!["order_differs_from_proposal"; 3]);
    assert!(recap.gaps.iter().all(|g| g.severity == Severity::Medium));
    let msgs: Vec<&str> = recap.gaps.iter().map(|g| g.message.as_str()).collect();
    assert_eq!(
        msgs[0],
        "“Alpha” (A) was ordered differently from the proposal (quantity 10 → 12, unit price 1.00 USD → 0.90 USD): confirm the change is understood."
    );
    assert_eq!(msgs[1], "3 × “Delta” (D) was ordered but not proposed: confirm what it is for.");
    assert_eq!(msgs[2], "“Beta” (B) was proposed but not ordered: make sure the customer does not expect it.");
    assert_eq!(recap.summary.items_differing, 3);
    assert_eq!(recap.summary.ordered_items, 3);
}

#[test]
fn a_missing_decision_maker_is_a_gap_even_with_a_functional_one() {
    let mut p = proposal();
    p.contacts = vec![Contact { name: "Sam".into(), email: None, title: None, role: ContactRole::FunctionalDecisionMaker }];
    let recap = build(&input(Some(p)));
    assert_eq!(kinds(&recap.gaps), vec!["no_decision_maker_named"]);
    assert_eq!(recap.gaps[0].severity, Severity::Medium);
    assert_eq!(recap.agenda.confirm_with.len(), 1);
}

#[test]
fn proposal_items_with_an_order_that_lists_none() {
    let mut p = proposal();
    p.line_items = vec![LineItem { sku: "A".into(), name: "Alpha".into(), quantity: 1.0, unit_price: usd(1), rationale: None }];
    let recap = build(&input(Some(p)));
    assert_eq!(kinds(&recap.gaps), vec!["order_items_not_stated"]);
    assert_eq!(recap.gaps[0].severity, Severity::Low);
    assert_eq!(recap.line_items[0].status, LineItemStatus::NotCompared);
    assert!(recap.agenda.points.iter().any(|p| p.text.contains("the CRM sent no line items")));
}

#[test]
fn gaps_are_ordered_by_severity_then_kind_then_days_late_then_proposal_order() {
    let mut p = proposal();
    p.contacts = vec![];
    p.requirements = vec![
        req("N1", Priority::Nice, None),
        req("S1", Priority::Should, None),
        req("M1", Priority::Must, None),
        req("M2", Priority::Must, Some(day(3, 10))),
        req("M3", Priority::Must, Some(day(3, 10))),
        req("M4", Priority::Must, None),
    ];
    p.commitments = vec![
        com("late2", &["M2"], Some(day(3, 12))),
        com("late9", &["M3"], Some(day(3, 19))),
        com("extra", &[], Some(day(2, 1))),
        com("undated", &["M4"], None),
    ];
    p.line_items = vec![LineItem { sku: "A".into(), name: "Alpha".into(), quantity: 1.0, unit_price: usd(1), rationale: None }];
    let mut i = input(Some(p));
    i.order.line_items = vec![OrderedItem { sku: "B".into(), name: "Beta".into(), quantity: 1.0, unit_price: None }];
    let gaps = build(&i).gaps;
    let got: Vec<(Severity, &str)> = gaps.iter().map(|g| (g.severity, g.gap.kind())).collect();
    use Severity::*;
    assert_eq!(
        got,
        vec![
            (Critical, "uncovered_must_have"),
            (High, "late_delivery"),
            (High, "late_delivery"),
            (High, "commitment_date_passed"),
            (High, "commitment_without_requirement"),
            (Medium, "order_differs_from_proposal"),
            (Medium, "order_differs_from_proposal"),
            (Medium, "uncovered_should_have"),
            (Medium, "undated_commitment"),
            (Medium, "no_decision_maker_named"),
            (Low, "uncovered_nice_to_have"),
        ]
    );
    // The later delivery first.
    assert!(matches!(&gaps[1].gap, RecapGap::LateDelivery { by_days: 9, .. }));
    assert!(matches!(&gaps[2].gap, RecapGap::LateDelivery { by_days: 2, .. }));
    // Added line (order's order) before removed line.
    assert!(matches!(&gaps[5].gap, RecapGap::OrderDiffersFromProposal { change: LineItemStatus::Added, .. }));
    assert!(matches!(&gaps[6].gap, RecapGap::OrderDiffersFromProposal { change: LineItemStatus::Removed, .. }));
}

#[test]
fn sorting_is_stable_for_equal_keys() {
    let g = |id: &str| Gap {
        severity: Severity::Critical,
        gap: RecapGap::UncoveredMustHave { requirement_id: id.into(), requirement: id.into() },
        message: id.into(),
    };
    let mut gaps = vec![g("b"), g("a"), g("c")];
    sort_gaps(&mut gaps);
    let order: Vec<&str> = gaps.iter().map(|g| g.message.as_str()).collect();
    assert_eq!(order, vec!["b", "a", "c"]);
}

#[test]
fn requirements_list_must_haves_first_keeping_proposal_order() {
    let mut p = proposal();
    p.requirements = vec![
        req("n", Priority::Nice, None),
        req("m1", Priority::Must, None),
        req("s", Priority::Should, None),
        req("m2", Priority::Must, None),
    ];
    let recap = build(&input(Some(p)));
    let ids: Vec<&str> = recap.requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["m1", "m2", "s", "n"]);
    assert_eq!(recap.summary.must_haves, 2);
    assert_eq!(recap.summary.covered, 0);
}

#[test]
fn the_timeline_runs_by_date_with_undated_commitments_last() {
    let mut p = proposal();
    p.requirements = vec![req("R", Priority::Should, None)];
    p.commitments = vec![
        com("undated1", &["R"], None),
        com("may", &["R"], Some(day(5, 1))),
        com("march", &["R"], Some(day(3, 15))),
        com("may-too", &["R"], Some(day(5, 1))),
        com("undated2", &["R"], None),
    ];
    let recap = build(&input(Some(p)));
    let ids: Vec<&str> = recap.timeline.iter().map(|e| e.commitment_id.as_str()).collect();
    assert_eq!(ids, vec!["march", "may", "may-too", "undated1", "undated2"]);
    assert_eq!(recap.timeline[0].covers[0].id, "R");
}

#[test]
fn the_agenda_replays_the_buying_process_then_the_points() {
    let recap = build(&sample_input());
    let when: Vec<_> = recap.agenda.buying_process.iter().map(|s| s.at).collect();
    let mut sorted = when.clone();
    sorted.sort();
    assert_eq!(when, sorted, "oldest activity first");
    assert_eq!(recap.agenda.buying_process[0].kind, ActivityKind::Call);

    let who: Vec<(&str, ContactRole)> = recap.agenda.confirm_with.iter().map(|c| (c.name.as_str(), c.role)).collect();
    assert_eq!(who, vec![("Dana Whitfield", ContactRole::DecisionMaker), ("Priya Raman", ContactRole::FunctionalDecisionMaker)]);

    let topics: Vec<AgendaTopic> = recap.agenda.points.iter().map(|p| p.topic).collect();
    let must_haves = recap.summary.must_haves;
    assert_eq!(topics[..must_haves], vec![AgendaTopic::MustHave; must_haves][..]);
    assert_eq!(topics[must_haves], AgendaTopic::Order);
    // Gaps about must-haves are said in the must-have points, the others each get a point.
    let about_must_haves = recap
        .gaps
        .iter()
        .filter(|g| matches!(g.gap, RecapGap::UncoveredMustHave { .. } | RecapGap::LateDelivery { priority: Priority::Must, .. }))
        .count();
    assert_eq!(about_must_haves, 2);
    assert_eq!(topics.iter().filter(|t| **t == AgendaTopic::Gap).count(), recap.gaps.len() - about_must_haves);
    assert_eq!(
        recap.agenda.points[1].text,
        "Must-have “Appointments migrated from the legacy scheduler” (stated in Requirements workshop, 3 Feb, needed by Fri 20 Mar 2026): \
         we committed “Migration of appointments and calendars” by Tue 31 Mar 2026, 11 days after it is needed."
    );
    assert_eq!(
        recap.agenda.points[3].text,
        "Walk through what was ordered and why: 4 items, 3 of them different from the proposal, and 1 proposed item not ordered."
    );
    assert_eq!(topics.last(), Some(&AgendaTopic::Delivery));
    assert_eq!(
        recap.agenda.points[0].text,
        "Must-have “Single sign-on with Okta for all staff” (stated in Discovery call, 12 Jan, needed by Wed 1 Apr 2026): \
         we committed “SAML SSO with Okta, set up by our onboarding team” by Wed 25 Mar 2026."
    );
    assert!(recap.agenda.points.iter().any(|p| p.text.ends_with(
        "“HIPAA business associate agreement” (stated in Procurement review, 18 Feb, needed by Tue 10 Mar 2026): no commitment was made. Say plainly what will and will not be delivered."
    )));
}

#[test]
fn the_sample_recap_has_every_part() {
    let recap = build(&sample_input());
    assert_eq!(recap.proposal.as_ref().map(|p| p.version), Some(3));
    assert_eq!(recap.summary.requirements, 5);
    assert_eq!(recap.summary.worst_gap, Some(Severity::Critical));
    let kinds = kinds(&recap.gaps);
    for k in ["uncovered_must_have", "late_delivery", "commitment_without_requirement", "order_differs_from_proposal", "undated_commitment"]
    {
        assert!(kinds.contains(&k), "sample lacks {k}: {kinds:?}");
    }
    let no_proposal = build(&sample_input_without_proposal());
    assert_eq!(no_proposal.line_items.len(), 4);
}

#[test]
fn the_recap_is_deterministic_and_round_trips_as_json() {
    let a = build(&sample_input());
    assert_eq!(a, build(&sample_input()));
    let json = serde_json::to_value(&a).unwrap();
    let back: Recap = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, a);
    // Gap fields sit beside kind, severity and message.
    let gap = &json["gaps"][0];
    assert_eq!(gap["kind"], "uncovered_must_have");
    assert_eq!(gap["severity"], "critical");
    assert_eq!(gap["requirement_id"], "R5");
    // Absent values are explicit nulls.
    assert!(json["timeline"].as_array().unwrap().iter().any(|e| e["deliver_by"].is_null()));
    assert_eq!(json["call"]["rep_timezone"], "America/New_York");
    assert_eq!(json["deal"]["amount"]["minor"], 1_397_000);
}

#[test]
fn contact_emails_are_carried_into_the_agenda() {
    let mut p = proposal();
    p.contacts[0].email = Some(EmailAddress::parse("dana@acme.example").unwrap());
    let recap = build(&input(Some(p)));
    assert_eq!(recap.agenda.confirm_with[0].email.as_deref(), Some("dana@acme.example"));
}
