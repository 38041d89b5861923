//! The call page, `/calls/{id}`: what a rep opens from the link in an email. Shows the recap,
//! the due time in the rep's timezone and the emails sent so far; its form marks the call done
//! (`POST /calls/{id}/done`) with an outcome and notes, and sends the rep back to the page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::access::{Access, DASHBOARD_FORMS, Visitor, call_access};
use super::data::{CallFacts, call_facts, check_in_facts, promise_facts};
use super::render::{render, safe, value};
use super::{Fields, PageError, form_page, parse_id, see_other};
use crate::app::AppState;
use crate::http::calls::{check_in_error, complete_error, parse_agreed, parse_check_in, parse_completion};
use crate::http::controls::{parse_rep_to, parse_why, parse_with, steer_error};
use crate::http::promises::{mark_error, parse_date, parse_reason};
use crate::workflow::calls::{CompleteError, Completion};
use crate::workflow::controls::{self, Steer, SteerError};
use crate::workflow::promises::{self, Mark, MarkError};
use sea_orm::EntityTrait;

/// The choices the form offers, with what each means for the team.
const OUTCOMES: [(&str, &str, &str); 3] = [
    ("aligned", "Aligned", "The customer's expectations match what will be delivered."),
    ("adjusted", "Adjusted", "Expectations were reset on the call and the customer agreed."),
    ("at_risk", "At risk", "The customer still expects more than will be delivered."),
];

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    help: &'static str,
    checked: bool,
}

/// Rows for promises made on the call in the done form.
const ADDED_ROWS: usize = 3;

/// A commitment of the proposal in the done form, with the date the proposal gives it.
#[derive(Serialize)]
struct CommitmentRow {
    id: String,
    text: String,
    /// `YYYY-MM-DD`.
    date: Option<String>,
}

/// The done form as shown: empty, or as sent back with what was wrong.
#[derive(Serialize)]
struct DoneForm {
    action: String,
    csrf: String,
    link_token: Option<String>,
    outcomes: Vec<Choice>,
    notes: String,
    error: Option<String>,
    /// The proposal's commitments, whose dates the rep may change to what was agreed.
    commitments: Vec<CommitmentRow>,
    /// Row numbers for promises made on the call.
    added: Vec<usize>,
}

/// What the visitor last sent, when the form comes back with an error.
#[derive(Default)]
struct Sent<'a> {
    outcome: Option<&'a str>,
    notes: Option<&'a str>,
    error: Option<String>,
    /// A promise's form that came back: which promise, and what was wrong.
    promise_error: Option<(i64, String)>,
    /// The check-in form came back: what was wrong.
    check_in_error: Option<String>,
    /// The booking or snooze form came back: which (`book`, `snooze`) and what was wrong.
    steer_error: Option<(&'static str, String)>,
    /// Sales ops' reassign or cancel form came back: which (`reassign`, `cancel`), what was
    /// wrong, and the rep typed.
    ops_error: Option<(&'static str, String, String)>,
}

/// `GET /calls/{id}?t=<link token>`. Reads only: a mail scanner that follows the link changes
/// nothing.
#[utoipa::path(get, path = "/calls/{id}", tag = "pages", params(("id" = String, Path, description = "the call id"), ("t" = Option<String>, Query, description = "the signed link token from the email")),
    responses((status = 200, description = "The call page: recap and done form", content_type = "text/html"), (status = 403, description = "Tampered link", content_type = "text/html"), (status = 404, description = "No such call", content_type = "text/html"),
        (status = 410, description = "Expired link", content_type = "text/html"), (status = 503, description = "Database unavailable", content_type = "text/html")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "call")?;
    let query = Fields::query(&req)?;
    let access = call_access(&req, &state, id, query.get("t")).await?;
    let mut response = page(&req, &state, id, &access, StatusCode::OK, Sent::default()).await?;
    // The next visit marks what is new since this one.
    if let Err(e) = response.add_cookie(&super::access::seen_cookie(&state, id, state.clock.now())) {
        tracing::warn!(error = %e, call = id, "the page's seen cookie could not be set");
    }
    Ok(response)
}

/// `POST /calls/{id}/done`, a form with `outcome`, `notes`, `csrf` and (from a link) `t`.
/// Checks the link (or dashboard session) and the CSRF token before anything else, then marks
/// the call done and answers 303 to the page, which shows it done. Marking it again is harmless.
#[utoipa::path(post, path = "/calls/{id}/done", tag = "pages", params(("id" = String, Path)), request_body(content = super::forms::DoneForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Marked done; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad link or CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "The call was cancelled", content_type = "text/html"), (status = 410, description = "Expired link", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "No outcome chosen", content_type = "text/html")))]
pub async fn mark_done(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "call")?;
    let fields = Fields(form.into_inner());
    let access = call_access(&req, &state, id, fields.get("t")).await?;
    Visitor::of(&req).check(&state, id, fields.get("csrf"))?;
    let (outcome, notes) = match parse_completion(fields.get("outcome"), fields.get("notes")) {
        Ok(parsed) => parsed,
        Err(e) => {
            let error = Some(match e.field.as_deref() {
                Some("outcome") => "Choose how the call went.".to_string(),
                _ => format!("Please check the form: {}", e.message),
            });
            let sent = Sent { outcome: fields.get("outcome"), notes: fields.get("notes"), error, ..Sent::default() };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, sent).await;
        }
    };
    let dates = fields.0.iter().filter_map(|(k, v)| Some((k.strip_prefix("date.")?, v.as_str()))).filter(|(_, v)| !v.trim().is_empty());
    let added = (0..ADDED_ROWS)
        .map(|i| {
            (
                fields.non_empty(&format!("added_text_{i}")),
                fields.non_empty(&format!("added_date_{i}")),
                fields.non_empty(&format!("added_owner_{i}")),
            )
        })
        .filter(|(text, date, owner)| text.is_some() || date.is_some() || owner.is_some());
    let refused =
        |message: String| Sent { outcome: fields.get("outcome"), notes: fields.get("notes"), error: Some(message), ..Sent::default() };
    let agreed = match parse_agreed(dates, added) {
        Ok(agreed) => agreed,
        Err(e) => {
            let sent = refused(format!("Please check the promises: {}: {}", e.field.as_deref().unwrap_or("form"), e.message));
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, sent).await;
        }
    };
    match crate::workflow::calls::complete(
        &state.db,
        &state.first_call.get(),
        state.clock.now(),
        id,
        Completion { outcome, notes, agreed },
        &access.actor(),
    )
    .await
    {
        Ok(_) => {}
        Err(CompleteError::Agreed(a)) => {
            let message =
                if a.field == "outcome" { "A date changed on the call: choose Adjusted (or At risk).".to_string() } else { a.to_string() };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(message)).await;
        }
        Err(e) => return Err(PageError::from(complete_error(e))),
    }
    // An alert to the manager (a call at risk) goes at once.
    state.signals.mailer.notify_one();
    Ok(see_other(&access.call_path(id)).finish())
}

/// `POST /calls/{id}/promises/{promise}`, a form with `action` (`delivered`, `slip` with
/// `deliver_by` and `reason`, or `drop` with `reason`), `csrf` and (from a link) `t`: marks one
/// of the call's promises, like the API, and sends the visitor back to it on the page.
#[utoipa::path(post, path = "/calls/{id}/promises/{promise}", tag = "pages", params(("id" = String, Path), ("promise" = String, Path)),
    request_body(content = super::forms::PromiseForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Marked; back to the promise on the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad link or CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call or promise", content_type = "text/html"), (status = 409, description = "The promise is delivered or dropped already", content_type = "text/html"), (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "A missing or wrong date or reason", content_type = "text/html")))]
pub async fn mark_promise(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path.0, "call")?;
    let promise_id = parse_id(&path.1, "promise")?;
    let fields = Fields(form.into_inner());
    let access = call_access(&req, &state, id, fields.get("t")).await?;
    Visitor::of(&req).check(&state, id, fields.get("csrf"))?;
    let promise = entity::promises::Entity::find_by_id(promise_id)
        .one(&state.db)
        .await?
        .filter(|p| p.call_id == id)
        .ok_or_else(|| PageError::not_found("This call has no such promise."))?;
    let parsed = match fields.get("action") {
        Some("delivered") => Ok(Mark::Delivered),
        Some("slip") => parse_date("deliver_by", fields.get("deliver_by"))
            .and_then(|to| parse_reason(fields.get("reason")).map(|reason| Mark::Slip { to, reason })),
        Some("drop") => parse_reason(fields.get("reason")).map(|reason| Mark::Drop { reason }),
        _ => Err(crate::http::ApiError::invalid("action", "choose delivered, a new date, or drop")),
    };
    let mark = match parsed {
        Ok(mark) => mark,
        Err(e) => {
            let error = match e.field.as_deref() {
                Some("deliver_by") => "Give the new date.".to_string(),
                Some("reason") => "Say why, in a sentence the customer could hear.".to_string(),
                _ => format!("Please check the form: {}", e.message),
            };
            let sent = Sent { promise_error: Some((promise.id, error)), ..Sent::default() };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, sent).await;
        }
    };
    let result = promises::mark(&state.db, &state.first_call.get(), state.clock.now(), promise.id, mark, &access.actor()).await;
    match result {
        Ok((p, true)) => state.metrics.promise_marked(p.state.as_str()),
        Ok(_) => {}
        Err(MarkError::NotLater { current, .. }) => {
            let error = format!("The new date must be later than {}.", crate::mail::templates::local_date(current));
            let sent = Sent { promise_error: Some((promise.id, error)), ..Sent::default() };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, sent).await;
        }
        Err(e) => return Err(PageError::from(mark_error(e))),
    }
    // An alert to the manager (a slip past the customer's date, a must-have dropped) goes at once.
    state.signals.mailer.notify_one();
    Ok(see_other(&format!("{}#promise-{}", access.call_path(id), promise.id)).finish())
}

/// The answers the check-in form offers.
const ANSWERS: [(&str, &str); 3] = [("satisfied", "Satisfied"), ("mixed", "Mixed"), ("unhappy", "Unhappy")];

/// `POST /calls/{id}/check-in`, a form with `answer`, `note`, `csrf` and (from a link) `t`:
/// records how the customer says it went, like the API.
#[utoipa::path(post, path = "/calls/{id}/check-in", tag = "pages", params(("id" = String, Path)),
    request_body(content = super::forms::CheckInForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Recorded; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad link or CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "No check-in yet", content_type = "text/html"), (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "No answer chosen", content_type = "text/html")))]
pub async fn check_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "call")?;
    let fields = Fields(form.into_inner());
    let access = call_access(&req, &state, id, fields.get("t")).await?;
    Visitor::of(&req).check(&state, id, fields.get("csrf"))?;
    let answer = match parse_check_in(fields.get("answer"), fields.get("note")) {
        Ok(answer) => answer,
        Err(e) => {
            let error = if e.field.as_deref() == Some("answer") { "Choose what the customer said.".to_string() } else { e.message };
            let sent = Sent { check_in_error: Some(error), ..Sent::default() };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, sent).await;
        }
    };
    let (row, changed) = promises::record_check_in(&state.db, &state.first_call.get(), state.clock.now(), id, answer, &access.actor())
        .await
        .map_err(|e| PageError::from(check_in_error(e)))?;
    if let (true, Some(a)) = (changed, row.answer) {
        state.metrics.check_in_answered(a.as_str());
    }
    Ok(see_other(&format!("{}#check-in", access.call_path(id))).finish())
}

/// `POST /calls/{id}/book`, a form with `at` (`YYYY-MM-DDTHH:MM` in the rep's timezone),
/// `with`, `reason`, `csrf` and (from a link) `t`: books the call with the customer, like the API.
#[utoipa::path(post, path = "/calls/{id}/book", tag = "pages", params(("id" = String, Path)),
    request_body(content = super::forms::BookForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Booked; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad link or CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "The call is done or cancelled", content_type = "text/html"), (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "A missing or wrong time or reason", content_type = "text/html")))]
pub async fn book(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    steer_form(req, state, path, form, SteerForm::Book).await
}

/// `POST /calls/{id}/snooze`, a form with `until` (`YYYY-MM-DDTHH:MM` in the rep's timezone),
/// `reason`, `csrf` and (from a link) `t`: snoozes the call's reminders, like the API.
#[utoipa::path(post, path = "/calls/{id}/snooze", tag = "pages", params(("id" = String, Path)),
    request_body(content = super::forms::SnoozeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Snoozed; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad link or CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "The call is done or cancelled", content_type = "text/html"), (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "A missing or wrong time or reason", content_type = "text/html")))]
pub async fn snooze(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    steer_form(req, state, path, form, SteerForm::Snooze).await
}

/// The rep's forms on the "Not today?" card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SteerForm {
    Book,
    Snooze,
}

impl SteerForm {
    /// The form's name on the page, and the field holding its time.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            SteerForm::Book => ("book", "at"),
            SteerForm::Snooze => ("snooze", "until"),
        }
    }
}

/// A time typed in a `datetime-local` field, read in the rep's timezone `tz`.
fn local_input(raw: Option<&str>, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
    let raw = raw.map(str::trim)?;
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|local| crate::workflow::timing::local_to_utc(tz, local))
}

async fn steer_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    which: SteerForm,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "call")?;
    let fields = Fields(form.into_inner());
    let access = call_access(&req, &state, id, fields.get("t")).await?;
    Visitor::of(&req).check(&state, id, fields.get("csrf"))?;
    let fc = state.first_call.get();
    let call = entity::calls::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| PageError::not_found("There is no call with this number."))?;
    // The rep's timezone, as the page shows the times.
    let defaults = &fc.config.settings.defaults;
    let rep = crate::domain::EmailAddress::parse(&call.rep_email).unwrap_or_else(|_| defaults.unassigned_email.clone());
    let tz = crate::reps::recipient(&state.db, &rep, defaults.timezone).await?.timezone.0;
    let (name, time_field) = which.names();
    let refused = |message: String| Sent { steer_error: Some((name, message)), ..Sent::default() };
    let parsed = local_input(fields.get(time_field), tz)
        .ok_or_else(|| crate::http::ApiError::invalid(time_field, "not a date and time"))
        .and_then(|at| {
            let reason = parse_why(fields.get("reason"))?;
            Ok(match which {
                SteerForm::Book => Steer::Book { at, with: parse_with(fields.get("with"))?, reason },
                SteerForm::Snooze => Steer::Snooze { until: at, reason },
            })
        });
    let steer = match parsed {
        Ok(steer) => steer,
        Err(e) => {
            let message = match e.field.as_deref() {
                Some("reason") => "Say why, for your manager and the call's history.".to_string(),
                Some("with") => format!("Who the call is with: at most {} characters.", crate::http::controls::WITH_MAX_CHARS),
                _ => "Give the date and time, e.g. 2026-12-03 14:00.".to_string(),
            };
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(message)).await;
        }
    };
    match controls::steer(&state.db, &fc, state.clock.now(), id, steer, &access.actor()).await {
        Ok(_) => {}
        Err(SteerError::Time { reason, .. }) => {
            let message = format!("The time {reason}.");
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(message)).await;
        }
        Err(e) => return Err(PageError::from(steer_error(e))),
    }
    // The updated invite (and an alert to the manager) go at once.
    state.signals.jobs_scheduled();
    state.signals.mailer.notify_one();
    Ok(see_other(&format!("{}#summary", access.call_path(id))).finish())
}

/// `POST /calls/{id}/reassign`, a form with `rep`, `reason` and `csrf`: sales ops, signed in,
/// hand the call to another rep, like the API. A rep's link does not allow it (403).
#[utoipa::path(post, path = "/calls/{id}/reassign", tag = "pages", params(("id" = String, Path)),
    request_body(content = super::forms::ReassignForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Handed over; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Not signed in to the dashboard, or a bad CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "The call is done or cancelled", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "A missing reason, or a rep firstcall may not email", content_type = "text/html")))]
pub async fn reassign(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    ops_form(req, state, path, form, OpsForm::Reassign).await
}

/// `POST /calls/{id}/cancel`, a form with `reason` and `csrf`: sales ops, signed in, cancel the
/// call, like the API. A rep's link does not allow it (403).
#[utoipa::path(post, path = "/calls/{id}/cancel", tag = "pages", params(("id" = String, Path)),
    request_body(content = super::forms::CancelForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Cancelled; back to the call page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Not signed in to the dashboard, or a bad CSRF token", content_type = "text/html"),
        (status = 404, description = "No such call", content_type = "text/html"), (status = 409, description = "The call is done", content_type = "text/html"),
        (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "No reason given", content_type = "text/html")))]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    ops_form(req, state, path, form, OpsForm::Cancel).await
}

/// Sales ops' forms on the call page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpsForm {
    Reassign,
    Cancel,
}

async fn ops_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    which: OpsForm,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "call")?;
    let fields = Fields(form.into_inner());
    let access = call_access(&req, &state, id, fields.get("t")).await?;
    let rep = entity::calls::Entity::find_by_id(id).one(&state.db).await?.map(|c| c.rep_email).unwrap_or_default();
    let Some(viewer) = access.viewer().filter(|v| v.leads(&rep)) else {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Sales ops and the rep's managers only",
            "Handing a call to another rep or cancelling it needs sales ops, or a manager of the rep, signed in; a rep's link does not allow it.",
        ));
    };
    Visitor::of(&req).check(&state, id, fields.get("csrf"))?;
    let fc = state.first_call.get();
    let now = state.clock.now();
    let typed = fields.get("rep").unwrap_or_default().to_string();
    let name = match which {
        OpsForm::Reassign => "reassign",
        OpsForm::Cancel => "cancel",
    };
    let refused = |message: String| Sent { ops_error: Some((name, message, typed.clone())), ..Sent::default() };
    let result = match which {
        OpsForm::Reassign => match parse_rep_to(fields.get("rep")).and_then(|to| Ok((to, parse_why(fields.get("reason"))?))) {
            Ok((to, _)) if !viewer.speaks_for(to.as_str()) => {
                let why = format!(
                    "{to} is not in your team: a manager hands calls to reps of their team (or to themselves); sales ops to anyone."
                );
                return page(&req, &state, id, &access, StatusCode::FORBIDDEN, refused(why)).await;
            }
            Ok((to, reason)) => controls::reassign(&state.db, &fc, now, id, to, reason, &access.actor()).await,
            Err(e) => return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(ops_message(&e))).await,
        },
        OpsForm::Cancel => match parse_why(fields.get("reason")) {
            Ok(reason) => controls::cancel(&state.db, &fc, now, id, reason, &access.actor(), &viewer.label()).await,
            Err(e) => return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(ops_message(&e))).await,
        },
    };
    match result {
        Ok(_) => {}
        Err(SteerError::Rep(reason)) => {
            return page(&req, &state, id, &access, StatusCode::UNPROCESSABLE_ENTITY, refused(format!("Not handed over: {reason}."))).await;
        }
        Err(e) => return Err(PageError::from(steer_error(e))),
    }
    state.signals.jobs_scheduled();
    Ok(see_other(&format!("{}#summary", access.call_path(id))).finish())
}

/// What a refused sales-ops form says.
fn ops_message(e: &crate::http::ApiError) -> String {
    match e.field.as_deref() {
        Some("reason") => "Say why, for the call's history (and, when cancelling, the rep).".to_string(),
        Some("rep") => format!("Give the rep's email address: {}", e.message),
        _ => e.message.clone(),
    }
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    id: i64,
    access: &Access,
    status: StatusCode,
    sent: Sent<'_>,
) -> Result<HttpResponse, PageError> {
    let (call, recap): (CallFacts, _) = call_facts(state, id, super::access::seen(req)).await?;
    let promises = promise_facts(state, id, &recap, state.clock.now()).await?;
    let check_in = check_in_facts(state, id, recap.call.rep_timezone.0).await?;
    let recap_html = state.first_call.get().composer.templates.render_recap_html_fragment(&recap).map_err(|e| {
        tracing::error!(error = %e, call = id, "recap does not render");
        PageError::internal()
    })?;
    let visitor = Visitor::of(req);
    let sent_promise_error = sent.promise_error.as_ref().map(|(p, e)| minijinja::context! { id => *p, message => e.clone() });
    let form = DoneForm {
        action: format!("/calls/{id}/done"),
        csrf: visitor.csrf(state, id),
        link_token: access.link_token().map(String::from),
        outcomes: OUTCOMES
            .iter()
            .map(|(value, label, help)| Choice { value, label, help, checked: sent.outcome == Some(*value) })
            .collect(),
        notes: sent.notes.unwrap_or_default().to_string(),
        error: sent.error,
        commitments: recap
            .timeline
            .iter()
            .map(|t| CommitmentRow {
                id: t.commitment_id.clone(),
                text: t.text.clone(),
                date: t.deliver_by.map(|d| d.format("%Y-%m-%d").to_string()),
            })
            .collect(),
        added: (0..ADDED_ROWS).collect(),
    };
    let body = render(
        "call.html",
        minijinja::context! {
            call => value(&call),
            form => value(&form),
            promises => value(&promises),
            promise_action => format!("/calls/{id}/promises"),
            promise_error => value(&sent_promise_error),
            check_in => value(&check_in),
            check_in_error => sent.check_in_error.clone(),
            ops_error => sent.ops_error.as_ref().map(|(which, message, rep)| minijinja::context! { which => *which, message => message.clone(), rep => rep.clone() }),
            steer_error => sent.steer_error.as_ref().map(|(which, message)| minijinja::context! { which => *which, message => message.clone() }),
            answers => ANSWERS.iter().map(|(v, l)| minijinja::context! { value => *v, label => *l }).collect::<Vec<_>>(),
            recap_html => safe(recap_html),
            signed_in => access.viewer().is_some(),
            me => access.viewer().map(|v| v.label()),
            may_lead => access.viewer().is_some_and(|v| v.leads(&call.rep_email)),
            lead_title => match access.viewer().and_then(|v| v.person()) {
                Some(p) if !p.sees_all() => "Manager",
                _ => "Sales ops",
            },
            csrf => visitor.csrf(state, DASHBOARD_FORMS),
        },
    )?;
    Ok(form_page(status, &visitor, state, body))
}
