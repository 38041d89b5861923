//! `/insights`, for sales ops: where expectations break, as charts drawn on the server
//! ([`super::charts`]): how long customers wait from the order to the first call, per rep; how
//! many first calls happen on time, week by week; how the promises made on them end, month by
//! month; and which gaps the recaps find most often. Reads only; each chart covers a bounded
//! window, so the page costs the same whatever the history.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::access::{Visitor, sales_ops};
use super::charts::{self, GapCount, MonthPromises, RepMedian, WeekOnTime};
use super::render::{render, safe};
use super::{PageError, form_page, see_other};
use crate::app::AppState;
use crate::workflow::CallState;
use entity::promises::PromiseState;

/// The first calls the time charts read: done within this many days.
const CALL_WINDOW_DAYS: i64 = 90;
/// At most this many of them (the newest).
const CALLS_READ: u64 = 5_000;
/// Weeks of the on-time chart, the current one last.
const WEEKS: u64 = 12;
/// Months of the promise chart, the current one last.
const MONTHS: u32 = 6;
/// The recaps the gap chart counts: those of the newest calls.
const RECAPS_READ: u64 = 100;

/// `GET /insights`: the charts. Needs a dashboard login (or an API bearer token).
#[utoipa::path(get, path = "/insights", tag = "pages",
    responses((status = 200, description = "Charts: time to first call, on-time rate, promises kept, gap kinds", content_type = "text/html"), (status = 303, description = "Not logged in: to /login")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let me = match sales_ops(&req, &state, "/insights").await {
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return Ok(see_other("/login?next=/insights").finish()),
        other => other?,
    };
    let now = state.clock.now();
    let (calls, promises, gaps) = tokio::try_join!(call_charts(&state, now), promise_chart(&state, now), gap_chart(&state))?;
    let visitor = Visitor::of(&req);
    let body = render(
        "insights.html",
        minijinja::context! {
            signed_in => true,
            me => me.person().map(|p| p.label()),
            csrf => visitor.csrf(&state, super::access::DASHBOARD_FORMS),
            order_to_call => safe(calls.0),
            per_rep => safe(calls.1),
            per_week => safe(calls.2),
            promises => safe(promises),
            gaps => safe(gaps),
            window_days => CALL_WINDOW_DAYS,
        },
    )?;
    Ok(form_page(actix_web::http::StatusCode::OK, &visitor, &state, body))
}

/// The median of `values` (sorted here); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The Monday starting `d`'s week.
fn week_of(d: NaiveDate) -> NaiveDate {
    d - Days::new(d.weekday().num_days_from_monday().into())
}

/// A first call done: its rep, when it was ordered, due and done.
type DoneCall = (String, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);

/// The time charts: order to first call (distribution, per rep), and on time per week.
async fn call_charts(state: &AppState, now: DateTime<Utc>) -> Result<(String, String, String), DbErr> {
    use entity::calls;
    let done: Vec<DoneCall> = calls::Entity::find()
        .select_only()
        .columns([calls::Column::RepEmail, calls::Column::OrderedAt, calls::Column::DueAt, calls::Column::CompletedAt])
        .filter(calls::Column::State.eq(CallState::Done))
        .filter(calls::Column::CompletedAt.gte(now - TimeDelta::days(CALL_WINDOW_DAYS)))
        .order_by_desc(calls::Column::CompletedAt)
        .limit(CALLS_READ)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut hours = Vec::with_capacity(done.len());
    let mut per_rep: HashMap<String, Vec<f64>> = HashMap::new();
    let this_week = week_of(now.date_naive());
    let first_week = this_week - Days::new(7 * (WEEKS - 1));
    let mut weeks: BTreeMap<NaiveDate, (u32, u32)> = (0..WEEKS).map(|i| (first_week + Days::new(7 * i), (0, 0))).collect();
    for (rep, ordered_at, due_at, completed_at) in done {
        let Some(completed_at) = completed_at else { continue };
        let h = (completed_at - ordered_at).num_minutes() as f64 / 60.0;
        hours.push(h);
        per_rep.entry(rep).or_default().push(h);
        if let Some(week) = weeks.get_mut(&week_of(completed_at.date_naive())) {
            if completed_at <= due_at { week.0 += 1 } else { week.1 += 1 }
        }
    }
    let reps: Vec<RepMedian> =
        per_rep.into_iter().map(|(rep, mut h)| RepMedian { calls: h.len() as u32, median_hours: median(&mut h), rep }).collect();
    let weeks: Vec<WeekOnTime> = weeks.into_iter().map(|(week_start, (on_time, late))| WeekOnTime { week_start, on_time, late }).collect();
    Ok((charts::order_to_first_call(&hours), charts::median_per_rep(&reps), charts::on_time_per_week(&weeks)))
}

/// How the promises agreed for each of the last months ended: delivered by their agreed date,
/// slipped (moved, or delivered late, or still open past it), or dropped. Promises not yet due
/// are not counted.
async fn promise_chart(state: &AppState, now: DateTime<Utc>) -> Result<String, DbErr> {
    use entity::promises;
    let today = now.date_naive();
    let this_month = today.with_day(1).unwrap_or(today);
    let first = this_month.checked_sub_months(Months::new(MONTHS - 1)).unwrap_or(this_month);
    let rows = promises::Entity::find()
        .filter(promises::Column::AgreedDeliverBy.gte(first))
        .filter(promises::Column::AgreedDeliverBy.lte(today))
        .all(&state.db)
        .await?;
    let mut months: BTreeMap<NaiveDate, (u32, u32, u32)> =
        (0..MONTHS).filter_map(|i| first.checked_add_months(Months::new(i))).map(|m| (m, (0, 0, 0))).collect();
    for p in rows {
        let Some(agreed) = p.agreed_deliver_by else { continue };
        let Some(month) = months.get_mut(&agreed.with_day(1).unwrap_or(agreed)) else { continue };
        let delivered_on = p.closed_at.map(|t| t.date_naive());
        match p.state {
            PromiseState::Dropped => month.2 += 1,
            PromiseState::Delivered if p.deliver_by == Some(agreed) && delivered_on.is_some_and(|d| d <= agreed) => month.0 += 1,
            _ => month.1 += 1,
        }
    }
    let months: Vec<MonthPromises> = months
        .into_iter()
        .map(|(m, (on_time, slipped, dropped))| MonthPromises { month: m.format("%b %Y").to_string(), on_time, slipped, dropped })
        .collect();
    Ok(charts::promises_per_month(&months))
}

/// What a gap kind is called on the chart.
fn gap_label(kind: &str) -> &'static str {
    match kind {
        "no_proposal_on_file" => "No proposal on file",
        "uncovered_must_have" => "Must-have not covered",
        "late_delivery" => "Delivered after it is needed",
        "commitment_date_passed" => "Commitment date passed",
        "commitment_without_requirement" => "Commitment nobody asked for",
        "order_differs_from_proposal" => "Order differs from proposal",
        "uncovered_should_have" => "Should-have not covered",
        "undated_commitment" => "Commitment without a date",
        "no_decision_maker_named" => "No decision maker named",
        "uncovered_nice_to_have" => "Nice-to-have not covered",
        "order_items_not_stated" => "Order items not stated",
        _ => "Other",
    }
}

/// The gap kinds the recaps of the newest calls find, most frequent first.
async fn gap_chart(state: &AppState) -> Result<String, DbErr> {
    use entity::calls;
    let fc = state.first_call.get();
    let newest = calls::Entity::find().order_by_desc(calls::Column::Id).limit(RECAPS_READ).all(&state.db).await?;
    let mut counts: HashMap<&'static str, u32> = HashMap::new();
    for recap in crate::workflow::compose::recaps_for_calls(&state.db, &fc, &newest).await? {
        for gap in recap.gaps {
            *counts.entry(gap_label(gap.gap.kind())).or_default() += 1;
        }
    }
    let rows: Vec<GapCount> = counts.into_iter().map(|(label, count)| GapCount { label: label.to_string(), count }).collect();
    Ok(charts::gap_kinds(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_weeks_are_what_a_reader_expects() {
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(week_of(d("2026-12-06")), d("2026-11-30"), "a Sunday belongs to the week of the Monday before");
        assert_eq!(week_of(d("2026-11-30")), d("2026-11-30"));
    }
}
