//! Builds the [`Recap`] from a [`RecapInput`]: pure and deterministic, the same input always
//! gives the same recap (no clock, no I/O, no hash-map iteration order).

use crate::proposals::model::{ContactRole, Priority, Proposal};

use super::diff::diff_line_items;
use super::format::{days, human_date};
use super::gaps::{covering, find_gaps, late_by_days, priority_noun, short};
use super::model::*;

/// The recap of one first call. With no proposal on file the recap says so (a critical gap and
/// an agenda that asks the customer to restate their requirements) and still lists the order.
pub fn build(input: &RecapInput) -> Recap {
    let proposal = input.proposal.as_ref().map(|v| &v.proposal);
    let order = &input.order;
    let call = &input.call;
    let ordered_on = order.ordered_at.with_timezone(&call.rep_timezone.0).date_naive();

    let line_items = diff_line_items(&order.line_items, proposal.map(|p| p.line_items.as_slice()));
    let gaps = find_gaps(proposal, ordered_on, &line_items, !order.line_items.is_empty());
    let requirements = proposal.map(requirements).unwrap_or_default();
    let commitments_without_requirement = proposal.map(commitments_without_requirement).unwrap_or_default();
    let timeline = proposal.map(timeline).unwrap_or_default();
    let agenda = agenda(proposal, &requirements, &line_items, &timeline, &gaps);

    let summary = RecapSummary {
        requirements: requirements.len(),
        must_haves: requirements.iter().filter(|r| r.priority == Priority::Must).count(),
        covered: requirements.iter().filter(|r| r.status != CoverageStatus::Uncovered).count(),
        commitments: proposal.map_or(0, |p| p.commitments.len()),
        ordered_items: order.line_items.len(),
        items_differing: line_items.iter().filter(|l| l.status.differs()).count(),
        gaps: gaps.len(),
        worst_gap: gaps.first().map(|g| g.severity),
    };

    Recap {
        call: RecapCall {
            id: call.id,
            due_at: call.due_at,
            rep_name: non_empty(call.rep_name.as_deref()),
            rep_email: call.rep_email.clone(),
            rep_timezone: call.rep_timezone,
            schedule_name: call.schedule_name.clone(),
        },
        deal: RecapDeal {
            source: order.source,
            deal_id: order.deal_id.clone(),
            account_name: non_empty(order.account_name.as_deref()).or_else(|| proposal.and_then(|p| non_empty(Some(&p.account.name)))),
            segment: non_empty(order.segment.as_deref()).or_else(|| proposal.and_then(|p| non_empty(p.account.segment.as_deref()))),
            amount: order.amount.clone(),
            ordered_at: order.ordered_at,
        },
        proposal: input.proposal.as_ref().map(|v| RecapProposal { version: v.version, received_at: v.received_at }),
        summary,
        requirements,
        commitments_without_requirement,
        line_items,
        timeline,
        gaps,
        agenda,
        unreadable: proposal
            .map(|p| {
                p.unreadable
                    .iter()
                    .map(|u| UnreadableLine { line: u.line.clone(), reason: u.reason.clone(), stated_in: u.stated_in.clone() })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn requirements(p: &Proposal) -> Vec<RequirementRecap> {
    let mut out: Vec<RequirementRecap> = p
        .requirements
        .iter()
        .map(|r| {
            let commitments: Vec<CommitmentRef> = covering(p, r)
                .map(|c| CommitmentRef {
                    id: c.id.clone(),
                    text: c.text.clone(),
                    deliver_by: c.deliver_by,
                    late_by_days: late_by_days(r, c),
                })
                .collect();
            let status = if commitments.is_empty() {
                CoverageStatus::Uncovered
            } else if commitments.iter().any(|c| c.late_by_days.is_some()) {
                CoverageStatus::Late
            } else {
                CoverageStatus::Covered
            };
            RequirementRecap {
                id: r.id.clone(),
                text: r.text.clone(),
                priority: r.priority,
                need_by: r.need_by,
                stated_in: r.stated_in.clone(),
                status,
                commitments,
            }
        })
        .collect();
    // Stable: within a priority, the proposal's order.
    out.sort_by_key(|r| r.priority);
    out
}

fn commitments_without_requirement(p: &Proposal) -> Vec<CommitmentRef> {
    p.commitments
        .iter()
        .filter(|c| !p.requirements.iter().any(|r| c.covers.contains(&r.id)))
        .map(|c| CommitmentRef { id: c.id.clone(), text: c.text.clone(), deliver_by: c.deliver_by, late_by_days: None })
        .collect()
}

fn timeline(p: &Proposal) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = p
        .commitments
        .iter()
        .map(|c| {
            let covered: Vec<_> = p.requirements.iter().filter(|r| c.covers.contains(&r.id)).collect();
            TimelineEntry {
                deliver_by: c.deliver_by,
                commitment_id: c.id.clone(),
                text: c.text.clone(),
                late: covered.iter().any(|r| late_by_days(r, c).is_some()),
                covers: covered
                    .iter()
                    .map(|r| RequirementRef { id: r.id.clone(), text: r.text.clone(), priority: r.priority, need_by: r.need_by })
                    .collect(),
            }
        })
        .collect();
    // Stable: same-day commitments keep the proposal's order; undated ones go last.
    entries.sort_by_key(|e| (e.deliver_by.is_none(), e.deliver_by));
    entries
}

fn agenda(
    proposal: Option<&Proposal>,
    requirements: &[RequirementRecap],
    line_items: &[LineItemRecap],
    timeline: &[TimelineEntry],
    gaps: &[Gap],
) -> Agenda {
    let mut buying_process: Vec<AgendaStep> = proposal
        .map(|p| p.activities.iter().map(|a| AgendaStep { at: a.at, kind: a.kind, summary: a.summary.clone() }).collect())
        .unwrap_or_default();
    buying_process.sort_by_key(|s| s.at);

    let contacts = proposal.map(|p| p.contacts.as_slice()).unwrap_or_default();
    let confirm_with: Vec<AgendaContact> = [ContactRole::DecisionMaker, ContactRole::FunctionalDecisionMaker]
        .iter()
        .flat_map(|role| contacts.iter().filter(move |c| c.role == *role))
        .map(|c| AgendaContact {
            name: c.name.clone(),
            title: c.title.clone(),
            email: c.email.as_ref().map(|e| e.to_string()),
            role: c.role,
        })
        .collect();

    let mut points = Vec::new();
    if proposal.is_none() {
        points.push(AgendaPoint {
            topic: AgendaTopic::Requirements,
            text: "No proposal is on file: have the customer restate each requirement, how much it matters and when it is needed, \
                   then agree what will be delivered and when."
                .to_string(),
        });
    }
    for r in requirements.iter().filter(|r| r.priority == Priority::Must) {
        points.push(AgendaPoint { topic: AgendaTopic::MustHave, text: must_have_point(r) });
    }
    points.push(AgendaPoint { topic: AgendaTopic::Order, text: order_point(proposal.is_some(), line_items) });
    // Gaps about must-haves are already in their must-have points.
    let said_already = |g: &&Gap| match &g.gap {
        RecapGap::NoProposalOnFile | RecapGap::UncoveredMustHave { .. } => true,
        RecapGap::LateDelivery { priority, .. } => *priority == Priority::Must,
        _ => false,
    };
    for g in gaps.iter().filter(|g| !said_already(g)) {
        points.push(AgendaPoint { topic: AgendaTopic::Gap, text: g.message.clone() });
    }
    if !timeline.is_empty() {
        let dates: Vec<String> = timeline
            .iter()
            .map(|e| match e.deliver_by {
                Some(d) => format!("“{}” by {}", short(&e.text), human_date(d)),
                None => format!("“{}” (no date yet)", short(&e.text)),
            })
            .collect();
        points.push(AgendaPoint { topic: AgendaTopic::Delivery, text: format!("Agree the delivery dates: {}.", dates.join("; ")) });
    }
    Agenda { buying_process, confirm_with, points }
}

fn must_have_point(r: &RequirementRecap) -> String {
    let mut context = Vec::new();
    if let Some(s) = &r.stated_in {
        context.push(format!("stated in {}", short(s)));
    }
    if let Some(d) = r.need_by {
        context.push(format!("needed by {}", human_date(d)));
    }
    let context = if context.is_empty() { String::new() } else { format!(" ({})", context.join(", ")) };
    let head = format!("{} “{}”{context}", capitalized(priority_noun(r.priority)), short(&r.text));
    if r.commitments.is_empty() {
        return format!("{head}: no commitment was made. Say plainly what will and will not be delivered.");
    }
    let promised: Vec<String> = r
        .commitments
        .iter()
        .map(|c| match (c.deliver_by, c.late_by_days) {
            (Some(d), Some(late)) => format!("“{}” by {}, {} after it is needed", short(&c.text), human_date(d), days(late)),
            (Some(d), None) => format!("“{}” by {}", short(&c.text), human_date(d)),
            (None, _) => format!("“{}” (no date yet)", short(&c.text)),
        })
        .collect();
    format!("{head}: we committed {}.", promised.join(" and "))
}

fn order_point(has_proposal: bool, line_items: &[LineItemRecap]) -> String {
    let ordered = line_items.iter().filter(|l| l.ordered.is_some()).count();
    if ordered == 0 {
        return "Confirm what was ordered: the CRM sent no line items with the order.".to_string();
    }
    let different = line_items.iter().filter(|l| l.ordered.is_some() && l.status.differs()).count();
    let not_ordered = line_items.iter().filter(|l| l.status == LineItemStatus::Removed).count();
    let mut text = format!("Walk through what was ordered and why: {}", count(ordered, "item"));
    if has_proposal && different == 0 && not_ordered == 0 {
        text.push_str(", as proposed");
    }
    if different > 0 {
        text.push_str(&format!(", {different} of them different from the proposal"));
    }
    if not_ordered > 0 {
        text.push_str(&format!(", and {} not ordered", count(not_ordered, "proposed item")));
    }
    text.push('.');
    text
}

/// `1 item`, `3 items`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}
