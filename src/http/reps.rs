//! `PUT /api/v1/reps/{email}`: the rep directory (name, timezone, manager, CRM user ids), and
//! `/api/v1/reps/{email}/absences`: when a rep is out of office and who covers.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::auth::ApiCaller;
use super::json::StrictJson;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::domain::{EmailAddress, Source, Timezone};
use crate::reps::Rep;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/reps/{email}", web::put().to(put_rep))
        .route("/api/v1/reps/{email}", web::get().to(get_rep))
        .route("/api/v1/reps/{email}/absences", web::get().to(list_absences))
        .route("/api/v1/reps/{email}/absences", web::post().to(add_absence))
        .route("/api/v1/reps/{email}/absences/{id}", web::delete().to(remove_absence));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepBody {
    pub name: Option<String>,
    /// IANA timezone, e.g. `America/New_York`.
    pub timezone: Option<String>,
    pub manager_email: Option<String>,
    /// The rep's user id per CRM: `{"hubspot": "41234"}`.
    #[serde(default)]
    pub crm_ids: BTreeMap<String, String>,
}

/// Creates or replaces a rep's directory entry.
#[utoipa::path(put, path = "/api/v1/reps/{email}", tag = "reps", params(("email" = String, Path)), request_body = RepBody,
    responses((status = 200, body = Rep), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_rep(
    _caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: StrictJson<RepBody>,
) -> ApiResult<HttpResponse> {
    let email = EmailAddress::parse(&path).map_err(|e| ApiError::invalid("email", e.0))?;
    let name = body.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).ok_or_else(|| ApiError::invalid("name", "is required"))?;
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be at most 200 characters without control characters"));
    }
    let timezone = Timezone::parse(body.timezone.as_deref().ok_or_else(|| ApiError::invalid("timezone", "is required"))?)
        .map_err(|e| ApiError::invalid("timezone", e.0))?;
    let manager_email = match body.manager_email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(EmailAddress::parse(m).map_err(|e| ApiError::invalid("manager_email", e.0))?),
    };
    if manager_email.as_ref() == Some(&email) {
        return Err(ApiError::invalid("manager_email", "a rep cannot be their own manager"));
    }
    for (source, id) in &body.crm_ids {
        Source::parse(source).map_err(|e| ApiError::invalid(format!("crm_ids.{source}"), e.0))?;
        if id.trim().is_empty() || id.len() > 128 {
            return Err(ApiError::invalid(format!("crm_ids.{source}"), "must be 1 to 128 characters"));
        }
    }
    let rep = Rep {
        email,
        name: name.to_string(),
        timezone,
        manager_email,
        crm_ids: body.crm_ids.iter().map(|(k, v)| (k.clone(), v.trim().to_string())).collect(),
    };
    let txn = crate::db::begin_write(&state.db).await?;
    crate::reps::upsert(&txn, &rep, state.clock.now()).await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(rep))
}

/// A rep's directory entry.
#[utoipa::path(get, path = "/api/v1/reps/{email}", tag = "reps", params(("email" = String, Path)),
    responses((status = 200, body = Rep), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_rep(_caller: ApiCaller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let email = EmailAddress::parse(&path).map_err(|e| ApiError::not_found(e.0))?;
    let rep = crate::reps::get(&state.db, email.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rep {email} in the directory")))?;
    Ok(HttpResponse::Ok().json(rep))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbsenceBody {
    /// The first day away, in the rep's timezone: `2026-12-21`.
    pub first_day: Option<String>,
    /// The last day away (included): `2027-01-01`.
    pub last_day: Option<String>,
    /// Who covers, a rep in the directory: emails about the rep's calls go to them meanwhile,
    /// the rep in copy.
    pub delegate: Option<String>,
    /// Why, e.g. `holiday` (optional).
    pub reason: Option<String>,
}

/// A required calendar day, `YYYY-MM-DD`.
pub fn parse_day(field: &'static str, raw: Option<&str>) -> ApiResult<chrono::NaiveDate> {
    match raw.map(str::trim) {
        None | Some("") => Err(ApiError::invalid(field, "is required: a day such as 2026-12-21")),
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(field, format!("'{}' is not a day such as 2026-12-21", crate::domain::printable(d)))),
    }
}

/// An optional reason for an absence: at most [`super::controls::WHY_MAX_CHARS`] characters.
pub fn parse_absence_reason(raw: Option<&str>) -> ApiResult<Option<String>> {
    let reason = raw.map(str::trim).filter(|r| !r.is_empty());
    match reason {
        Some(r) if r.chars().count() > super::controls::WHY_MAX_CHARS => {
            Err(ApiError::invalid("reason", format!("is longer than {} characters", super::controls::WHY_MAX_CHARS)))
        }
        Some(r) if r.chars().any(char::is_control) => Err(ApiError::invalid("reason", "must not hold control characters")),
        r => Ok(r.map(String::from)),
    }
}

/// An absence asked for `rep`, checked field by field.
pub fn parse_absence(rep: EmailAddress, body: &AbsenceBody) -> ApiResult<crate::workflow::absences::Ask> {
    let first_day = parse_day("first_day", body.first_day.as_deref())?;
    let last_day = parse_day("last_day", body.last_day.as_deref())?;
    let delegate = match body.delegate.as_deref().map(str::trim) {
        None | Some("") => return Err(ApiError::invalid("delegate", "is required: who covers, a rep in the directory")),
        Some(d) => EmailAddress::parse(d).map_err(|e| ApiError::invalid("delegate", e.0))?,
    };
    Ok(crate::workflow::absences::Ask { rep, first_day, last_day, delegate, reason: parse_absence_reason(body.reason.as_deref())? })
}

pub fn absence_error(e: crate::workflow::absences::AbsenceError) -> ApiError {
    use crate::workflow::absences::AbsenceError;
    match e {
        AbsenceError::NotFound(m) => ApiError::not_found(m),
        AbsenceError::Invalid { field, reason } => ApiError::invalid(field, reason),
        AbsenceError::Db(db) => db.into(),
    }
}

/// The rep's absences that have not ended, earliest first.
#[utoipa::path(get, path = "/api/v1/reps/{email}/absences", tag = "reps", params(("email" = String, Path)),
    responses((status = 200, body = [crate::reps::Absence]), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list_absences(_caller: ApiCaller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let email = EmailAddress::parse(&path).map_err(|e| ApiError::not_found(e.0))?;
    let rep = crate::reps::get(&state.db, email.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rep {email} in the directory")))?;
    let today = state.clock.now().with_timezone(&rep.timezone.0).date_naive();
    Ok(HttpResponse::Ok().json(crate::reps::absences::of_rep(&state.db, &email, today).await?))
}

/// Records that the rep is out of office from `first_day` to `last_day` (in their timezone)
/// and who covers. Meanwhile the recap, invite and reminders of the rep's calls go to the
/// delegate with the rep in copy, and calls due then are due, and escalate, on the delegate's
/// clock. Absences of one rep may not overlap.
#[utoipa::path(post, path = "/api/v1/reps/{email}/absences", tag = "reps", params(("email" = String, Path)), request_body = AbsenceBody,
    responses((status = 201, body = crate::reps::Absence), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_absence(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: StrictJson<AbsenceBody>,
) -> ApiResult<HttpResponse> {
    let email = EmailAddress::parse(&path).map_err(|e| ApiError::not_found(e.0))?;
    let ask = parse_absence(email, &body)?;
    let now = state.clock.now();
    let (absence, _) =
        crate::workflow::absences::record(&state.db, &state.first_call.get(), now, ask, caller.actor).await.map_err(absence_error)?;
    // Calls it moved send their updated invites at once.
    state.signals.jobs_scheduled();
    Ok(HttpResponse::Created().json(absence))
}

/// Removes one of the rep's absences; the calls it had moved go back to the rep's clock.
#[utoipa::path(delete, path = "/api/v1/reps/{email}/absences/{id}", tag = "reps", params(("email" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = crate::reps::Absence), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_absence(caller: ApiCaller, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> ApiResult<HttpResponse> {
    let (email, id) = path.into_inner();
    let email = EmailAddress::parse(&email).map_err(|e| ApiError::not_found(e.0))?;
    let (absence, _) = crate::workflow::absences::remove(&state.db, &state.first_call.get(), state.clock.now(), &email, id, caller.actor)
        .await
        .map_err(absence_error)?;
    state.signals.jobs_scheduled();
    Ok(HttpResponse::Ok().json(absence))
}
