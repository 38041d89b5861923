//! How the recap writes dates, quantities and money in its sentences. The templates use the
//! same functions (as filters), so a date reads the same in a gap message and in a table.

use chrono::NaiveDate;

use crate::domain::{Money, Source};

/// `Mon 30 Nov 2026`: unambiguous in every locale, short enough for a phone.
pub fn human_date(d: NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

/// `10`, `2.5`: whole quantities without decimals, others without trailing zeros.
pub fn quantity(q: f64) -> String {
    if q.fract() == 0.0 && q.abs() < 1e15 {
        format!("{}", q as i64)
    } else {
        let s = format!("{q:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `13,970.00 USD`, or `no price` when the CRM did not state one.
pub fn money(m: Option<&Money>) -> String {
    let Some(m) = m else { return "no price".to_string() };
    let decimal = m.decimal();
    let (sign, digits) = decimal.strip_prefix('-').map_or(("", decimal.as_str()), |d| ("-", d));
    let (whole, fraction) = digits.split_once('.').map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f} {}", m.currency),
        None => format!("{sign}{grouped} {}", m.currency),
    }
}

/// The CRM's own name: `HubSpot`, `Pipedrive`, `Salesforce`; `CRM` for the generic webhook.
pub fn source_name(source: Source) -> &'static str {
    match source {
        Source::Generic => "CRM",
        Source::Hubspot => "HubSpot",
        Source::Pipedrive => "Pipedrive",
        Source::Salesforce => "Salesforce",
    }
}

/// Text on one line: control characters (CR, LF, tabs…) become spaces, runs of spaces one,
/// ends trimmed, and the whole cut to `max_chars` with an ellipsis.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let spaced: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let joined = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max_chars {
        joined
    } else {
        let cut: String = joined.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// `1 day`, `3 days`.
pub fn days(n: i64) -> String {
    if n == 1 { "1 day".to_string() } else { format!("{n} days") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_quantities_and_days_read_naturally() {
        assert_eq!(human_date(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()), "Mon 30 Nov 2026");
        assert_eq!(human_date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()), "Sun 1 Mar 2026");
        assert_eq!(quantity(10.0), "10");
        assert_eq!(quantity(2.5), "2.5");
        assert_eq!(quantity(0.125), "0.125");
        assert_eq!(money(None), "no price");
        let usd = |minor| Money { minor, currency: crate::domain::Currency::parse("USD").unwrap() };
        assert_eq!(money(Some(&usd(1_397_000))), "13,970.00 USD");
        assert_eq!(money(Some(&usd(99))), "0.99 USD");
        assert_eq!(money(Some(&usd(-123_456_789))), "-1,234,567.89 USD");
        let jpy = Money { minor: 1_200_000, currency: crate::domain::Currency::parse("JPY").unwrap() };
        assert_eq!(money(Some(&jpy)), "1,200,000 JPY");
        assert_eq!(source_name(Source::Hubspot), "HubSpot");
        assert_eq!(one_line(" a\r\nb\t\u{7}c  ", 10), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(days(1), "1 day");
        assert_eq!(days(12), "12 days");
    }
}
