//! `PUT /api/v1/reps/{email}`: the rep directory (name, timezone, manager, CRM user ids).

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
    cfg.route("/api/v1/reps/{email}", web::put().to(put_rep)).route("/api/v1/reps/{email}", web::get().to(get_rep));
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
