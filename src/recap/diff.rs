//! What was ordered against what was proposed, line by line.
//!
//! Items are matched by SKU (trimmed, ASCII case-insensitive). A SKU listed several times is
//! matched occurrence by occurrence: the first ordered line with the first proposed line, and
//! so on. The result lists the order's lines in order, then the proposed lines nobody ordered.
//! When there is nothing to compare (no proposal, a proposal without items, or an order
//! without items) every line is [`LineItemStatus::NotCompared`].

use crate::domain::Money;
use crate::domain::OrderedItem;
use crate::proposals::model::LineItem;

use super::model::{ItemTerms, LineItemRecap, LineItemStatus};

/// Compares the order's items with the proposal's (`None`: no proposal on file).
pub fn diff_line_items(ordered: &[OrderedItem], proposed: Option<&[LineItem]>) -> Vec<LineItemRecap> {
    let proposed = proposed.unwrap_or(&[]);
    if ordered.is_empty() || proposed.is_empty() {
        let ordered_lines = ordered.iter().map(|o| not_compared(Some(o), None));
        let proposed_lines = proposed.iter().map(|p| not_compared(None, Some(p)));
        return ordered_lines.chain(proposed_lines).collect();
    }

    let mut used = vec![false; proposed.len()];
    let mut lines = Vec::with_capacity(ordered.len() + proposed.len());
    for o in ordered {
        let key = sku_key(&o.sku);
        let matched = proposed.iter().enumerate().position(|(i, p)| !used[i] && sku_key(&p.sku) == key);
        match matched {
            Some(i) => {
                used[i] = true;
                lines.push(compare(o, &proposed[i]));
            }
            None => lines.push(LineItemRecap {
                sku: o.sku.clone(),
                name: o.name.clone(),
                status: LineItemStatus::Added,
                ordered: Some(ordered_terms(o)),
                proposed: None,
                quantity_changed: false,
                price_changed: false,
                rationale: None,
            }),
        }
    }
    for (p, _) in proposed.iter().zip(used).filter(|(_, used)| !used) {
        lines.push(LineItemRecap {
            sku: p.sku.clone(),
            name: p.name.clone(),
            status: LineItemStatus::Removed,
            ordered: None,
            proposed: Some(proposed_terms(p)),
            quantity_changed: false,
            price_changed: false,
            rationale: p.rationale.clone(),
        });
    }
    lines
}

fn compare(o: &OrderedItem, p: &LineItem) -> LineItemRecap {
    let quantity_changed = !same_quantity(o.quantity, p.quantity);
    // An order without a price says nothing about the price: not a change.
    let price_changed = o.unit_price.as_ref().is_some_and(|price| !same_price(price, &p.unit_price));
    let status = if quantity_changed || price_changed { LineItemStatus::Changed } else { LineItemStatus::Unchanged };
    LineItemRecap {
        sku: o.sku.clone(),
        name: if o.name.trim().is_empty() { p.name.clone() } else { o.name.clone() },
        status,
        ordered: Some(ordered_terms(o)),
        proposed: Some(proposed_terms(p)),
        quantity_changed,
        price_changed,
        rationale: p.rationale.clone(),
    }
}

fn not_compared(o: Option<&OrderedItem>, p: Option<&LineItem>) -> LineItemRecap {
    LineItemRecap {
        sku: o.map(|o| o.sku.clone()).or_else(|| p.map(|p| p.sku.clone())).unwrap_or_default(),
        name: o.map(|o| o.name.clone()).or_else(|| p.map(|p| p.name.clone())).unwrap_or_default(),
        status: LineItemStatus::NotCompared,
        ordered: o.map(ordered_terms),
        proposed: p.map(proposed_terms),
        quantity_changed: false,
        price_changed: false,
        rationale: p.and_then(|p| p.rationale.clone()),
    }
}

fn ordered_terms(o: &OrderedItem) -> ItemTerms {
    ItemTerms { quantity: o.quantity, unit_price: o.unit_price.clone() }
}

fn proposed_terms(p: &LineItem) -> ItemTerms {
    ItemTerms { quantity: p.quantity, unit_price: Some(p.unit_price.clone()) }
}

fn sku_key(sku: &str) -> String {
    sku.trim().to_ascii_lowercase()
}

fn same_quantity(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn same_price(a: &Money, b: &Money) -> bool {
    a.minor == b.minor && a.currency == b.currency
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn usd(minor: i64) -> Money {
        Money { minor, currency: Currency::parse("USD").unwrap() }
    }

    fn ordered(sku: &str, quantity: f64, price: Option<i64>) -> OrderedItem {
        OrderedItem { sku: sku.into(), name: format!("{sku} ordered"), quantity, unit_price: price.map(usd) }
    }

    fn proposed(sku: &str, quantity: f64, price: i64) -> LineItem {
        LineItem {
            sku: sku.into(),
            name: format!("{sku} proposed"),
            quantity,
            unit_price: usd(price),
            rationale: Some(format!("why {sku}")),
        }
    }

    fn statuses(lines: &[LineItemRecap]) -> Vec<(&str, LineItemStatus)> {
        lines.iter().map(|l| (l.sku.as_str(), l.status)).collect()
    }

    #[test]
    fn each_kind_of_difference_is_told_apart() {
        let order = [
            ordered("SAME", 10.0, Some(4990)),
            ordered("QTY", 12.0, Some(100)),
            ordered("PRICE", 1.0, Some(900)),
            ordered("BOTH", 3.0, Some(50)),
            ordered("NEW", 1.0, None),
        ];
        let proposal = [
            proposed("GONE", 2.0, 700),
            proposed("SAME", 10.0, 4990),
            proposed("QTY", 10.0, 100),
            proposed("PRICE", 1.0, 1000),
            proposed("BOTH", 2.0, 60),
        ];
        let lines = diff_line_items(&order, Some(&proposal));
        use LineItemStatus::*;
        assert_eq!(
            statuses(&lines),
            vec![("SAME", Unchanged), ("QTY", Changed), ("PRICE", Changed), ("BOTH", Changed), ("NEW", Added), ("GONE", Removed)]
        );
        let flags: Vec<(bool, bool)> = lines.iter().map(|l| (l.quantity_changed, l.price_changed)).collect();
        assert_eq!(flags, vec![(false, false), (true, false), (false, true), (true, true), (false, false), (false, false)]);
        // The proposal's rationale travels with matched and removed lines, not with added ones.
        assert_eq!(lines[0].rationale.as_deref(), Some("why SAME"));
        assert_eq!(lines[4].rationale, None);
        assert_eq!(lines[5].rationale.as_deref(), Some("why GONE"));
        assert_eq!(lines[5].ordered, None);
        assert_eq!(lines[4].proposed, None);
        assert_eq!(lines[0].name, "SAME ordered");
    }

    #[test]
    fn skus_match_ignoring_case_and_spaces() {
        let lines = diff_line_items(&[ordered(" pro-1 ", 1.0, Some(5))], Some(&[proposed("PRO-1", 1.0, 5)]));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].status, LineItemStatus::Unchanged);
    }

    #[test]
    fn a_missing_order_price_is_not_a_price_change() {
        let lines = diff_line_items(&[ordered("A", 1.0, None)], Some(&[proposed("A", 1.0, 5)]));
        assert_eq!(lines[0].status, LineItemStatus::Unchanged);
        assert!(!lines[0].price_changed);
    }

    #[test]
    fn a_different_currency_is_a_price_change() {
        let mut o = ordered("A", 1.0, None);
        o.unit_price = Some(Money { minor: 5, currency: Currency::parse("EUR").unwrap() });
        let lines = diff_line_items(&[o], Some(&[proposed("A", 1.0, 5)]));
        assert!(lines[0].price_changed);
    }

    #[test]
    fn repeated_skus_match_occurrence_by_occurrence() {
        let order = [ordered("A", 1.0, Some(5)), ordered("A", 2.0, Some(5)), ordered("A", 3.0, Some(5))];
        let proposal = [proposed("A", 1.0, 5), proposed("A", 5.0, 5)];
        let lines = diff_line_items(&order, Some(&proposal));
        use LineItemStatus::*;
        assert_eq!(statuses(&lines), vec![("A", Unchanged), ("A", Changed), ("A", Added)]);
    }

    #[test]
    fn fractional_quantities_compare_with_tolerance() {
        let lines = diff_line_items(&[ordered("A", 0.1 + 0.2, Some(5))], Some(&[proposed("A", 0.3, 5)]));
        assert_eq!(lines[0].status, LineItemStatus::Unchanged);
    }

    #[test]
    fn nothing_to_compare_lists_what_there_is() {
        let order = [ordered("A", 1.0, Some(5))];
        let no_proposal = diff_line_items(&order, None);
        assert_eq!(statuses(&no_proposal), vec![("A", LineItemStatus::NotCompared)]);
        assert!(no_proposal[0].ordered.is_some() && no_proposal[0].proposed.is_none());

        let empty_proposal = diff_line_items(&order, Some(&[]));
        assert_eq!(statuses(&empty_proposal), vec![("A", LineItemStatus::NotCompared)]);

        let no_order_items = diff_line_items(&[], Some(&[proposed("B", 1.0, 5)]));
        assert_eq!(statuses(&no_order_items), vec![("B", LineItemStatus::NotCompared)]);
        assert_eq!(no_order_items[0].rationale.as_deref(), Some("why B"));
        assert!(no_order_items[0].ordered.is_none() && no_order_items[0].proposed.is_some());

        assert!(diff_line_items(&[], None).is_empty());
    }
}
