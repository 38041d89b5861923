//! People's controls over a call, by API (`workflow::controls`): the rep's (book it with the
//! customer, snooze its reminders) and sales ops' (hand it to another rep, cancel it).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::ApiCaller;
use super::calls::CallView;
use super::json::StrictJson;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::domain::EmailAddress;
use crate::workflow::controls::{self, Steer, SteerError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/calls/{id}/book", web::post().to(book))
        .route("/api/v1/calls/{id}/snooze", web::post().to(snooze))
        .route("/api/v1/calls/{id}/reassign", web::post().to(reassign))
        .route("/api/v1/calls/{id}/cancel", web::post().to(cancel));
}

/// The longest reason or name accepted, in characters.
pub const WHY_MAX_CHARS: usize = 500;
pub const WITH_MAX_CHARS: usize = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    /// When the call is booked with the customer: an RFC 3339 time with its offset, e.g.
    /// `2026-12-03T14:00:00+01:00`. The invite starts then; the call is due at its end.
    pub at: Option<String>,
    /// Who the call is with, e.g. `Larry Page (CTO)`.
    pub with: Option<String>,
    /// Why the call is not done by its due time, e.g. `the customer's CTO is away until Thursday`.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    /// No reminder before this time: an RFC 3339 time with its offset. A time past the call's
    /// due time moves the due time (and the invite) there.
    pub until: Option<String>,
    /// Why, e.g. `waiting for the customer to pick a slot`.
    pub reason: Option<String>,
}

/// A required time with its offset (RFC 3339).
pub fn parse_time(field: &'static str, raw: Option<&str>) -> ApiResult<DateTime<Utc>> {
    match raw.map(str::trim) {
        None | Some("") => Err(ApiError::invalid(field, "is required: a time with its offset, e.g. 2026-12-03T14:00:00+01:00")),
        Some(t) => DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            ApiError::invalid(
                field,
                format!("'{}' is not a time with its offset: write e.g. 2026-12-03T14:00:00+01:00", crate::domain::printable(t)),
            )
        }),
    }
}

/// Why the rep moved the call: required, at most [`WHY_MAX_CHARS`] characters.
pub fn parse_why(raw: Option<&str>) -> ApiResult<String> {
    let reason = raw.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "is required: say why, for the rep's manager and the audit trail"));
    }
    if reason.chars().count() > WHY_MAX_CHARS {
        return Err(ApiError::invalid("reason", format!("is longer than {WHY_MAX_CHARS} characters")));
    }
    if reason.contains('\0') {
        return Err(ApiError::invalid("reason", crate::domain::NUL_REASON));
    }
    Ok(reason.to_string())
}

/// Who the call is booked with: optional, at most [`WITH_MAX_CHARS`] characters.
pub fn parse_with(raw: Option<&str>) -> ApiResult<Option<String>> {
    let with = super::calls::parse_note("with", raw)?;
    if with.as_ref().is_some_and(|w| w.chars().count() > WITH_MAX_CHARS) {
        return Err(ApiError::invalid("with", format!("is longer than {WITH_MAX_CHARS} characters")));
    }
    Ok(with)
}

pub fn steer_error(e: SteerError) -> ApiError {
    match e {
        SteerError::NotFound(id) => ApiError::not_found(format!("no call has id {id}")),
        SteerError::Closed { .. } => ApiError::conflict(e.to_string()),
        SteerError::Time { field, reason } => ApiError::invalid(field, reason),
        SteerError::Rep(reason) => ApiError::invalid("rep", reason),
        SteerError::Db(db) => db.into(),
    }
}

async fn run(caller: ApiCaller, state: &AppState, id: i64, steer: Steer) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let call = controls::steer(&state.db, &state.first_call.get(), now, id, steer, caller.actor).await.map_err(steer_error)?;
    // The updated invite (and an alert to the manager) go at once.
    state.signals.jobs_scheduled();
    state.signals.mailer.notify_one();
    Ok(HttpResponse::Ok().json(CallView::from_model(call, now)))
}

/// Books the call with the customer: the invite moves to the booked time (same event, higher
/// SEQUENCE), reminders pause until then, and the call is due, and escalates, from the end of the
/// booked slot. Past `controls.move_business_days` business days after the due time the call had
/// first, the rep's manager is told at once. Audited with who and why.
#[utoipa::path(post, path = "/api/v1/calls/{id}/book", tag = "calls", params(("id" = i64, Path)), request_body = BookBody,
    responses((status = 200, body = CallView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The call is done or cancelled"), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "A missing or wrong field: the time must be ahead, within controls.max_days_ahead days"),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn book(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<BookBody>,
) -> ApiResult<HttpResponse> {
    let at = parse_time("at", body.at.as_deref())?;
    let with = parse_with(body.with.as_deref())?;
    let reason = parse_why(body.reason.as_deref())?;
    run(caller, &state, *id, Steer::Book { at, with, reason }).await
}

/// Snoozes the call's reminders until a time. A time past the call's due time moves the due
/// time, the invite and the escalation clock there, within the same limit as a booking.
/// Audited with who and why.
#[utoipa::path(post, path = "/api/v1/calls/{id}/snooze", tag = "calls", params(("id" = i64, Path)), request_body = SnoozeBody,
    responses((status = 200, body = CallView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The call is done or cancelled"), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "A missing or wrong field: the time must be ahead, within controls.max_days_ahead days"),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn snooze(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<SnoozeBody>,
) -> ApiResult<HttpResponse> {
    let until = parse_time("until", body.until.as_deref())?;
    let reason = parse_why(body.reason.as_deref())?;
    run(caller, &state, *id, Steer::Snooze { until, reason }).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    /// The rep who takes the call: an address in the rep directory (or of an allowed domain).
    pub rep: Option<String>,
    /// Why, for the audit trail.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why; the rep's cancellation email says it.
    pub reason: Option<String>,
}

/// The rep a call is handed to (required).
pub fn parse_rep_to(raw: Option<&str>) -> ApiResult<EmailAddress> {
    match raw.map(str::trim) {
        None | Some("") => Err(ApiError::invalid("rep", "is required: the email address of the rep who takes the call")),
        Some(r) => EmailAddress::parse(r).map_err(|e| ApiError::invalid("rep", e.to_string())),
    }
}

/// Hands the call to another rep by hand: the new rep gets the recap and the invite at once,
/// the old one a cancellation of theirs; the call is due under its schedule from now in the new
/// rep's timezone. The rep picked stands when the order is updated. Handing it to its own rep
/// changes nothing. Audited with who and why.
#[utoipa::path(post, path = "/api/v1/calls/{id}/reassign", tag = "calls", params(("id" = i64, Path)), request_body = ReassignBody,
    responses((status = 200, body = CallView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The call is done or cancelled"), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "A missing field, or a rep firstcall may not email"),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn reassign(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<ReassignBody>,
) -> ApiResult<HttpResponse> {
    let to = parse_rep_to(body.rep.as_deref())?;
    let reason = parse_why(body.reason.as_deref())?;
    let now = state.clock.now();
    let (call, _) =
        controls::reassign(&state.db, &state.first_call.get(), now, *id, to, reason, caller.actor).await.map_err(steer_error)?;
    state.signals.jobs_scheduled();
    Ok(HttpResponse::Ok().json(CallView::from_model(call, now)))
}

/// Cancels the call by hand: its rep gets the calendar cancellation, saying who cancelled it and
/// why, and nothing more is sent. Cancelling it again is harmless; 409 for a call marked done.
#[utoipa::path(post, path = "/api/v1/calls/{id}/cancel", tag = "calls", params(("id" = i64, Path)), request_body = CancelBody,
    responses((status = 200, body = CallView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The call is done"), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "No reason given"),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<CancelBody>,
) -> ApiResult<HttpResponse> {
    let reason = parse_why(body.reason.as_deref())?;
    let now = state.clock.now();
    let (call, _) = controls::cancel(&state.db, &state.first_call.get(), now, *id, reason, caller.actor, "sales ops (API)")
        .await
        .map_err(steer_error)?;
    state.signals.jobs_scheduled();
    Ok(HttpResponse::Ok().json(CallView::from_model(call, now)))
}
