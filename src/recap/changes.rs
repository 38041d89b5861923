//! What changed between two recaps of one call, as sentences a rep reads on a phone: for the
//! short update that follows when the CRM's view of the deal arrives after the first email.
//! Pure.

use std::collections::BTreeMap;

use super::format::{human_date, money, quantity};
use super::model::{CommitmentRef, ItemTerms, LineItemRecap, Recap, RequirementRecap};
use crate::proposals::model::ContactRole;

/// The changes from `before` to `after`, in the order of the recap's sections: requirements,
/// commitments, proposed line items, who to confirm with, the buying process, lines that could
/// not be read, then gaps opened and closed. Empty when nothing a rep would notice changed.
pub fn changes(before: &Recap, after: &Recap) -> Vec<String> {
    let mut out = Vec::new();

    let reqs = |r: &Recap| -> BTreeMap<String, RequirementRecap> { r.requirements.iter().map(|q| (q.id.clone(), q.clone())).collect() };
    let (old, new) = (reqs(before), reqs(after));
    for r in &after.requirements {
        match old.get(&r.id) {
            None => out.push(format!("New requirement: {}", requirement(r))),
            Some(o) if (&o.text, o.priority, o.need_by) != (&r.text, r.priority, r.need_by) => {
                out.push(format!("Requirement changed: {} (was: {})", requirement(r), requirement(o)))
            }
            Some(_) => {}
        }
    }
    for r in before.requirements.iter().filter(|r| !new.contains_key(&r.id)) {
        out.push(format!("Requirement no longer on file: {}", r.text));
    }

    let (old, new) = (commitments(before), commitments(after));
    for (id, c) in &new {
        match old.get(id) {
            None => out.push(format!("New commitment: {}", commitment(c))),
            Some(o) if o.text != c.text => out.push(format!("Commitment changed: {} (was: {})", commitment(c), commitment(o))),
            Some(o) if o.deliver_by != c.deliver_by => {
                out.push(format!("Commitment moved: {}: {} → {}", c.text, date_or_none(o), date_or_none(c)))
            }
            Some(_) => {}
        }
    }
    for (_, c) in old.iter().filter(|(id, _)| !new.contains_key(*id)) {
        out.push(format!("Commitment no longer on file: {}", c.text));
    }

    if before.deal.amount != after.deal.amount {
        let amount = |r: &Recap| r.deal.amount.as_ref().map(|m| money(Some(m))).unwrap_or_else(|| "none".into());
        out.push(format!("Order amount: {} (was {})", amount(after), amount(before)));
    }
    items(&mut out, before, after, |l| l.ordered.as_ref(), ["Ordered item added", "Ordered item changed", "Ordered item removed"]);
    items(
        &mut out,
        before,
        after,
        |l| l.proposed.as_ref(),
        ["Proposed item now on file", "Proposed item changed", "Proposed item no longer on file"],
    );

    for c in after.agenda.confirm_with.iter().filter(|c| !before.agenda.confirm_with.iter().any(|b| b.name == c.name && b.role == c.role)) {
        let role = match c.role {
            ContactRole::DecisionMaker => "Decision maker",
            ContactRole::FunctionalDecisionMaker => "Functional decision maker",
            ContactRole::Other => "Contact",
        };
        let title = c.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
        out.push(format!("{role} on file: {}{title}", c.name));
    }

    let steps: Vec<_> = after.agenda.buying_process.iter().filter(|s| !before.agenda.buying_process.contains(s)).collect();
    match steps.as_slice() {
        [] => {}
        [one] => out.push(format!("Buying process: {} ({})", one.summary, one.kind.as_str())),
        many => out.push(format!(
            "Buying process: {} steps now on file, the latest: {}",
            many.len(),
            many.iter().max_by_key(|s| s.at).map(|s| s.summary.as_str()).unwrap_or_default()
        )),
    }

    for u in after.unreadable.iter().filter(|u| !before.unreadable.contains(u)) {
        out.push(format!("Could not read \"{}\" ({}): {}", u.line, u.stated_in, u.reason));
    }

    for g in after.gaps.iter().filter(|g| !before.gaps.iter().any(|b| b.message == g.message)) {
        out.push(format!("New gap: {}", g.message));
    }
    for g in before.gaps.iter().filter(|g| !after.gaps.iter().any(|a| a.message == g.message)) {
        out.push(format!("Gap closed: {}", g.message));
    }
    out
}

/// The line items whose terms `pick` reads (ordered or proposed) that were added, changed or
/// removed, each said with its phrase of `said` (added, changed, removed).
fn items(out: &mut Vec<String>, before: &Recap, after: &Recap, pick: impl Fn(&LineItemRecap) -> Option<&ItemTerms>, said: [&str; 3]) {
    let by_sku = |r: &Recap| -> BTreeMap<String, (String, String)> {
        r.line_items.iter().filter_map(|l| pick(l).map(|t| (l.sku.clone(), (l.name.clone(), terms(t))))).collect()
    };
    let (old, new) = (by_sku(before), by_sku(after));
    for (sku, (name, terms)) in &new {
        match old.get(sku) {
            None => out.push(format!("{}: {name}, {terms}", said[0])),
            Some((_, was)) if was != terms => out.push(format!("{}: {name}, {terms} (was {was})", said[1])),
            Some(_) => {}
        }
    }
    for (_, (name, _)) in old.iter().filter(|(sku, _)| !new.contains_key(*sku)) {
        out.push(format!("{}: {name}", said[2]));
    }
}

fn terms(t: &ItemTerms) -> String {
    match &t.unit_price {
        Some(p) => format!("{} × {p}", quantity(t.quantity)),
        None => format!("{} ×", quantity(t.quantity)),
    }
}

fn requirement(r: &RequirementRecap) -> String {
    let by = r.need_by.map(|d| format!(", needed by {}", human_date(d))).unwrap_or_default();
    format!("{} ({}{by})", r.text, r.priority.as_str())
}

fn commitments(r: &Recap) -> BTreeMap<String, CommitmentRef> {
    r.requirements
        .iter()
        .flat_map(|q| q.commitments.iter())
        .chain(r.commitments_without_requirement.iter())
        .map(|c| (c.id.clone(), CommitmentRef { late_by_days: None, ..c.clone() }))
        .collect()
}

fn commitment(c: &CommitmentRef) -> String {
    format!("{}, by {}", c.text, date_or_none(c))
}

fn date_or_none(c: &CommitmentRef) -> String {
    c.deliver_by.map(human_date).unwrap_or_else(|| "no date yet".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposals::model::{Commitment, Priority, Requirement};
    use crate::recap::{build, sample::sample_input};

    #[test]
    fn the_same_recap_has_no_changes() {
        let r = build(&sample_input());
        assert!(changes(&r, &r).is_empty());
    }

    #[test]
    fn a_pulled_requirement_and_a_moved_commitment_are_listed() {
        let before = sample_input();
        let mut after = before.clone();
        let p = &mut after.proposal.as_mut().unwrap().proposal;
        p.requirements.push(Requirement {
            id: "audit".into(),
            text: "Audit log export".into(),
            priority: Priority::Should,
            need_by: None,
            stated_in: None,
        });
        let c: &mut Commitment = &mut p.commitments[0];
        let moved = c.text.clone();
        c.deliver_by = c.deliver_by.map(|d| d + chrono::Days::new(7));
        let lines = changes(&build(&before), &build(&after));
        assert!(lines.contains(&"New requirement: Audit log export (should)".to_string()), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with(&format!("Commitment moved: {moved}:"))), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with("New gap:") && l.contains("Audit log export")), "{lines:#?}");
    }

    #[test]
    fn an_order_whose_amount_and_items_changed_lists_both() {
        let before = sample_input();
        let mut after = before.clone();
        let first = after.order.line_items[0].clone();
        after.order.line_items[0].quantity += 10.0;
        after.order.line_items.remove(1);
        after.order.amount = after.order.amount.map(|m| crate::domain::Money { minor: m.minor + 100_000, ..m });
        let lines = changes(&build(&before), &build(&after));
        assert!(lines.iter().any(|l| l.starts_with("Order amount: ") && l.contains("(was ")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with(&format!("Ordered item changed: {}", first.name))), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with("Ordered item removed: ")), "{lines:#?}");
    }

    #[test]
    fn a_requirement_removed_is_listed_with_the_gap_it_closes() {
        let before = sample_input();
        let mut after = before.clone();
        let p = &mut after.proposal.as_mut().unwrap().proposal;
        let gone = p.requirements.iter().position(|r| !p.commitments.iter().any(|c| c.covers.contains(&r.id))).expect("an uncovered one");
        let text = p.requirements.remove(gone).text;
        let lines = changes(&build(&before), &build(&after));
        assert!(lines.contains(&format!("Requirement no longer on file: {text}")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with("Gap closed:") && l.contains(&text)), "{lines:#?}");
    }

    #[test]
    fn a_recap_without_a_proposal_gains_everything_the_crm_knew() {
        let mut before = sample_input();
        before.proposal = None;
        let lines = changes(&build(&before), &build(&sample_input()));
        assert!(lines.iter().any(|l| l.starts_with("New requirement:")));
        assert!(lines.iter().any(|l| l.starts_with("Decision maker on file:")));
        assert!(lines.iter().any(|l| l.starts_with("Gap closed:")), "the no-proposal gap closes: {lines:#?}");
    }
}
