//! The gap and risk rules, their severity, and the order the rep reads them in.
//!
//! Rules (each yields one [`Gap`] per offending thing):
//! - no proposal on file → `NoProposalOnFile` (critical; no other rule runs);
//! - a requirement no commitment covers → `UncoveredMustHave` (critical),
//!   `UncoveredShouldHave` (medium), `UncoveredNiceToHave` (low);
//! - a covering commitment with a deliver-by later than the requirement's need-by →
//!   `LateDelivery` (high for a must-have, medium for a should-have, low for a nice-to-have);
//! - a commitment dated before the day the order was placed (in the rep's timezone) →
//!   `CommitmentDatePassed` (high);
//! - a commitment covering no stated requirement → `CommitmentWithoutRequirement` (high: the
//!   customer may expect more than was asked for, which costs twice when it is not delivered);
//! - an ordered item added, removed or changed against the proposal →
//!   `OrderDiffersFromProposal` (medium);
//! - a commitment without a deliver-by date → `UndatedCommitment` (medium when it covers a
//!   must-have, else low);
//! - no contact with the decision-maker role → `NoDecisionMakerNamed` (medium);
//! - the proposal lists items but the order none → `OrderItemsNotStated` (low).
//!
//! Order: by severity (critical, high, medium, low); within a severity by kind, in the order
//! [`RecapGap`] declares them; within a kind `LateDelivery` by days late, most first; then in
//! proposal order (requirements, commitments, line items as listed).

use std::cmp::Reverse;

use chrono::NaiveDate;

use crate::proposals::model::{Commitment, ContactRole, Priority, Proposal, Requirement};

use super::format::{days, human_date, money, quantity};
use super::model::{Gap, LineItemRecap, LineItemStatus, RecapGap, Severity};

impl RecapGap {
    pub fn severity(&self) -> Severity {
        match self {
            RecapGap::NoProposalOnFile | RecapGap::UncoveredMustHave { .. } => Severity::Critical,
            RecapGap::LateDelivery { priority, .. } => match priority {
                Priority::Must => Severity::High,
                Priority::Should => Severity::Medium,
                Priority::Nice => Severity::Low,
            },
            RecapGap::CommitmentDatePassed { .. } | RecapGap::CommitmentWithoutRequirement { .. } => Severity::High,
            RecapGap::OrderDiffersFromProposal { .. } | RecapGap::UncoveredShouldHave { .. } | RecapGap::NoDecisionMakerNamed => {
                Severity::Medium
            }
            RecapGap::UndatedCommitment { covers_must_have, .. } => {
                if *covers_must_have {
                    Severity::Medium
                } else {
                    Severity::Low
                }
            }
            RecapGap::UncoveredNiceToHave { .. } | RecapGap::OrderItemsNotStated => Severity::Low,
        }
    }

    /// Tie-break between kinds of the same severity: declaration order.
    pub fn rank(&self) -> u8 {
        match self {
            RecapGap::NoProposalOnFile => 0,
            RecapGap::UncoveredMustHave { .. } => 1,
            RecapGap::LateDelivery { .. } => 2,
            RecapGap::CommitmentDatePassed { .. } => 3,
            RecapGap::CommitmentWithoutRequirement { .. } => 4,
            RecapGap::OrderDiffersFromProposal { .. } => 5,
            RecapGap::UncoveredShouldHave { .. } => 6,
            RecapGap::UndatedCommitment { .. } => 7,
            RecapGap::NoDecisionMakerNamed => 8,
            RecapGap::UncoveredNiceToHave { .. } => 9,
            RecapGap::OrderItemsNotStated => 10,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RecapGap::NoProposalOnFile => "no_proposal_on_file",
            RecapGap::UncoveredMustHave { .. } => "uncovered_must_have",
            RecapGap::LateDelivery { .. } => "late_delivery",
            RecapGap::CommitmentDatePassed { .. } => "commitment_date_passed",
            RecapGap::CommitmentWithoutRequirement { .. } => "commitment_without_requirement",
            RecapGap::OrderDiffersFromProposal { .. } => "order_differs_from_proposal",
            RecapGap::UncoveredShouldHave { .. } => "uncovered_should_have",
            RecapGap::UndatedCommitment { .. } => "undated_commitment",
            RecapGap::NoDecisionMakerNamed => "no_decision_maker_named",
            RecapGap::UncoveredNiceToHave { .. } => "uncovered_nice_to_have",
            RecapGap::OrderItemsNotStated => "order_items_not_stated",
        }
    }
}

impl Gap {
    fn new(gap: RecapGap, message: String) -> Self {
        Gap { severity: gap.severity(), gap, message }
    }
}

/// Sorts gaps most serious first (see the module doc); stable, so equal keys keep the order
/// the rules found them in, which is proposal order.
pub fn sort_gaps(gaps: &mut [Gap]) {
    gaps.sort_by_key(|g| {
        let late_days = match g.gap {
            RecapGap::LateDelivery { by_days, .. } => by_days,
            _ => 0,
        };
        (g.severity, g.gap.rank(), Reverse(late_days))
    });
}

/// Every gap and risk of a deal, most serious first. `ordered_on` is the day the order was
/// placed in the rep's timezone; `line_items` the result of [`super::diff::diff_line_items`].
pub fn find_gaps(proposal: Option<&Proposal>, ordered_on: NaiveDate, line_items: &[LineItemRecap], order_has_items: bool) -> Vec<Gap> {
    let Some(p) = proposal else {
        return vec![Gap::new(
            RecapGap::NoProposalOnFile,
            "No proposal is on file for this deal, so requirements and commitments cannot be checked: \
             ask the customer to restate what they need, and agree what will be delivered and when."
                .to_string(),
        )];
    };
    let mut gaps = Vec::new();
    requirement_gaps(p, &mut gaps);
    commitment_gaps(p, ordered_on, &mut gaps);
    for line in line_items.iter().filter(|l| l.status.differs()) {
        gaps.push(line_item_gap(line));
    }
    if !p.contacts.iter().any(|c| c.role == ContactRole::DecisionMaker) {
        gaps.push(Gap::new(
            RecapGap::NoDecisionMakerNamed,
            "The proposal names no decision maker: find out who signs off, and confirm the recap with them.".to_string(),
        ));
    }
    if !p.line_items.is_empty() && !order_has_items {
        gaps.push(Gap::new(
            RecapGap::OrderItemsNotStated,
            "The CRM sent no line items with the order: check what was ordered against the proposal.".to_string(),
        ));
    }
    sort_gaps(&mut gaps);
    gaps
}

/// The commitments covering a requirement, in proposal order.
pub fn covering<'a>(p: &'a Proposal, r: &'a Requirement) -> impl Iterator<Item = &'a Commitment> + 'a {
    p.commitments.iter().filter(move |c| c.covers.contains(&r.id))
}

/// Days a commitment delivers after a requirement's need-by date, if it does.
pub fn late_by_days(r: &Requirement, c: &Commitment) -> Option<i64> {
    match (r.need_by, c.deliver_by) {
        (Some(need), Some(deliver)) if deliver > need => Some((deliver - need).num_days()),
        _ => None,
    }
}

fn requirement_gaps(p: &Proposal, gaps: &mut Vec<Gap>) {
    for r in &p.requirements {
        let mut covered = false;
        for c in covering(p, r) {
            covered = true;
            if let Some(by_days) = late_by_days(r, c) {
                let (Some(need_by), Some(deliver_by)) = (r.need_by, c.deliver_by) else { continue };
                let message = format!(
                    "“{}” is due {}, {} after {} “{}” is needed ({}).",
                    short(&c.text),
                    human_date(deliver_by),
                    days(by_days),
                    priority_noun(r.priority),
                    short(&r.text),
                    human_date(need_by),
                );
                gaps.push(Gap::new(
                    RecapGap::LateDelivery {
                        requirement_id: r.id.clone(),
                        requirement: r.text.clone(),
                        priority: r.priority,
                        commitment_id: c.id.clone(),
                        commitment: c.text.clone(),
                        need_by,
                        deliver_by,
                        by_days,
                    },
                    message,
                ));
            }
        }
        if covered {
            continue;
        }
        let (requirement_id, requirement) = (r.id.clone(), r.text.clone());
        let gap = match r.priority {
            Priority::Must => Gap::new(
                RecapGap::UncoveredMustHave { requirement_id, requirement },
                format!("Must-have “{}” has no commitment: say plainly what will and will not be delivered.", short(&r.text)),
            ),
            Priority::Should => Gap::new(
                RecapGap::UncoveredShouldHave { requirement_id, requirement },
                format!("Should-have “{}” has no commitment: agree whether and when it will be delivered.", short(&r.text)),
            ),
            Priority::Nice => Gap::new(
                RecapGap::UncoveredNiceToHave { requirement_id, requirement },
                format!("Nice-to-have “{}” has no commitment: make sure the customer knows it is not included.", short(&r.text)),
            ),
        };
        gaps.push(gap);
    }
}

fn commitment_gaps(p: &Proposal, ordered_on: NaiveDate, gaps: &mut Vec<Gap>) {
    for c in &p.commitments {
        let covered: Vec<&Requirement> = p.requirements.iter().filter(|r| c.covers.contains(&r.id)).collect();
        if let Some(deliver_by) = c.deliver_by.filter(|d| *d < ordered_on) {
            gaps.push(Gap::new(
                RecapGap::CommitmentDatePassed { commitment_id: c.id.clone(), commitment: c.text.clone(), deliver_by, ordered_on },
                format!(
                    "“{}” was due {}, before the order was placed on {}: agree a new date.",
                    short(&c.text),
                    human_date(deliver_by),
                    human_date(ordered_on)
                ),
            ));
        }
        if covered.is_empty() {
            gaps.push(Gap::new(
                RecapGap::CommitmentWithoutRequirement {
                    commitment_id: c.id.clone(),
                    commitment: c.text.clone(),
                    deliver_by: c.deliver_by,
                },
                format!(
                    "“{}” answers no stated requirement: a possible over-promise. Check the customer needs it, or set it straight.",
                    short(&c.text)
                ),
            ));
        }
        if c.deliver_by.is_none() {
            let need_by = covered.iter().filter_map(|r| r.need_by).min();
            let covers_must_have = covered.iter().any(|r| r.priority == Priority::Must);
            let message = match need_by {
                Some(d) => format!("“{}” has no delivery date, yet is needed by {}: agree one on the call.", short(&c.text), human_date(d)),
                None => format!("“{}” has no delivery date: agree one on the call.", short(&c.text)),
            };
            gaps.push(Gap::new(
                RecapGap::UndatedCommitment { commitment_id: c.id.clone(), commitment: c.text.clone(), need_by, covers_must_have },
                message,
            ));
        }
    }
}

fn line_item_gap(l: &LineItemRecap) -> Gap {
    let what = format!("“{}” ({})", short(&l.name), l.sku);
    let message = match l.status {
        LineItemStatus::Added => {
            let q = l.ordered.as_ref().map_or_else(String::new, |o| format!("{} × ", quantity(o.quantity)));
            format!("{q}{what} was ordered but not proposed: confirm what it is for.")
        }
        LineItemStatus::Removed => format!("{what} was proposed but not ordered: make sure the customer does not expect it."),
        _ => {
            let mut changes = Vec::new();
            if let (Some(o), Some(p)) = (&l.ordered, &l.proposed) {
                if l.quantity_changed {
                    changes.push(format!("quantity {} → {}", quantity(p.quantity), quantity(o.quantity)));
                }
                if l.price_changed {
                    changes.push(format!("unit price {} → {}", money(p.unit_price.as_ref()), money(o.unit_price.as_ref())));
                }
            }
            format!("{what} was ordered differently from the proposal ({}): confirm the change is understood.", changes.join(", "))
        }
    };
    Gap::new(
        RecapGap::OrderDiffersFromProposal {
            sku: l.sku.clone(),
            name: l.name.clone(),
            change: l.status,
            quantity_changed: l.quantity_changed,
            price_changed: l.price_changed,
        },
        message,
    )
}

/// `must-have`, `should-have`, `nice-to-have`.
pub fn priority_noun(p: Priority) -> &'static str {
    match p {
        Priority::Must => "must-have",
        Priority::Should => "should-have",
        Priority::Nice => "nice-to-have",
    }
}

/// CRM text quoted in a sentence: one line of at most 120 characters.
pub fn short(text: &str) -> String {
    super::format::one_line(text, 120)
}
