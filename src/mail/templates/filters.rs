//! Filters the templates format recap values with, so dates, money and labels read the same
//! in every email, on the call page and in the recap's own sentences:
//!
//! - `date`: `2026-03-25` → `Wed 25 Mar 2026`; a time (`2026-03-02T15:30:00Z`) → its day in the
//!   zone given as argument (`{{ step.at|date(recap.call.rep_timezone) }}`), UTC by default;
//! - `datetime`: a time → `Mon 2 Mar 2026, 10:30 EST` in the zone given (UTC by default);
//! - `money`: `{minor, currency}` → `1,200.00 USD`;
//! - `quantity`: `130.0` → `130`;
//! - `label`: an enum value (`must`, `decision_maker`, `not_compared`, `hubspot`, …) → words
//!   for people.
//!
//! `none` formats as an empty string, so `{{ c.deliver_by|date or "no date yet" }}` works.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Deserialize;

use crate::domain::Money;
use crate::recap::format;

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("date", date);
    env.add_filter("datetime", datetime);
    env.add_filter("money", money);
    env.add_filter("quantity", quantity);
    env.add_filter("label", label);
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn zone(tz: Option<&str>) -> Result<Tz, Error> {
    match tz {
        None | Some("") => Ok(chrono_tz::UTC),
        Some(name) => Tz::from_str(name).map_err(|_| invalid(format!("'{name}' is not an IANA timezone"))),
    }
}

fn time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc))
}

fn date(value: &Value, tz: Option<&str>) -> Result<String, Error> {
    if value.is_none() {
        return Ok(String::new());
    }
    let s = value.as_str().ok_or_else(|| invalid(format!("date expects a date or a time, not {}", value.kind())))?;
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format::human_date(d));
    }
    let t = time(s).ok_or_else(|| invalid(format!("'{s}' is not a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    Ok(format::human_date(t.with_timezone(&zone(tz)?).date_naive()))
}

fn datetime(value: &Value, tz: Option<&str>) -> Result<String, Error> {
    if value.is_none() {
        return Ok(String::new());
    }
    let s = value.as_str().ok_or_else(|| invalid(format!("datetime expects a time, not {}", value.kind())))?;
    let t = time(s).ok_or_else(|| invalid(format!("'{s}' is not an RFC 3339 time")))?;
    Ok(t.with_timezone(&zone(tz)?).format("%a %-d %b %Y, %H:%M %Z").to_string())
}

fn money(value: &Value) -> Result<String, Error> {
    if value.is_none() {
        return Ok(String::new());
    }
    let m = Money::deserialize(value).map_err(|e| invalid(format!("money expects {{minor, currency}}: {e}")))?;
    Ok(format::money(Some(&m)))
}

fn quantity(value: f64) -> String {
    format::quantity(value)
}

fn label(value: &Value) -> Result<String, Error> {
    if value.is_none() {
        return Ok(String::new());
    }
    let s = value.as_str().ok_or_else(|| invalid(format!("label expects a string, not {}", value.kind())))?;
    let words = match s {
        "must" => "Must-have",
        "should" => "Should-have",
        "nice" => "Nice-to-have",
        "critical" => "Critical",
        "high" => "High",
        "medium" => "Medium",
        "low" => "Low",
        "covered" => "Covered",
        "late" => "Late",
        "uncovered" => "No commitment",
        "added" => "Added",
        "removed" => "Not ordered",
        "changed" => "Changed",
        "unchanged" => "As proposed",
        "not_compared" => "Ordered",
        "decision_maker" => "Decision maker",
        "functional_decision_maker" => "Functional decision maker",
        "other" => "Contact",
        "manager" => "manager",
        "manager_of_manager" => "manager's manager",
        "sales_ops" => "sales ops",
        "contact" => "escalation contact",
        "call" => "Call",
        "email" => "Email",
        "meeting" => "Meeting",
        "quote" => "Quote",
        "proposal" => "Proposal",
        other => match crate::domain::Source::parse(other) {
            Ok(source) => format::source_name(source),
            Err(_) => return Ok(other.replace('_', " ")),
        },
    };
    Ok(words.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: Value) -> Result<String, Error> {
        let mut env = Environment::new();
        register(&mut env);
        env.render_str(src, ctx)
    }

    #[test]
    fn filters_format_recap_values() {
        let ctx = minijinja::context! {
            d => "2026-03-25", t => "2026-03-03T03:00:00Z", none => (),
            m => minijinja::context! { minor => 120000, currency => "USD" }, q => 130.0,
        };
        assert_eq!(render("{{ d|date }}", ctx.clone()).unwrap(), "Wed 25 Mar 2026");
        assert_eq!(render("{{ t|date }}|{{ t|date('America/New_York') }}", ctx.clone()).unwrap(), "Tue 3 Mar 2026|Mon 2 Mar 2026");
        assert_eq!(render("{{ t|datetime('America/New_York') }}", ctx.clone()).unwrap(), "Mon 2 Mar 2026, 22:00 EST");
        assert_eq!(render("[{{ none|date }}{{ none|money }}{{ none|label }}]", ctx.clone()).unwrap(), "[]");
        assert_eq!(render("{{ none|date or 'no date yet' }}", ctx.clone()).unwrap(), "no date yet");
        assert_eq!(render("{{ m|money }} × {{ q|quantity }}", ctx.clone()).unwrap(), "1,200.00 USD × 130");
        assert_eq!(
            render("{{ 'must'|label }}, {{ 'manager_of_manager'|label }}, {{ 'brand_new'|label }}", ctx.clone()).unwrap(),
            "Must-have, manager's manager, brand new"
        );
    }

    #[test]
    fn bad_values_are_errors_not_garbage() {
        let ctx = minijinja::context! { d => "soon", n => 3 };
        assert!(render("{{ d|date }}", ctx.clone()).unwrap_err().to_string().contains("'soon' is not a date"));
        assert!(render("{{ n|date }}", ctx.clone()).is_err());
        assert!(render("{{ '2026-03-03T03:00:00Z'|date('Mars/Base') }}", ctx).unwrap_err().to_string().contains("Mars/Base"));
    }
}
