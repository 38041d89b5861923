//! `PUT /api/v1/proposals/{source}/{deal_id}`: upsert the proposal snapshot for a deal.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::auth::ApiCaller;
use super::json::StrictJson;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::domain::{DealId, Source};
use crate::proposals::model::ProposalBody;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/proposals/{source}/{deal_id}", web::put().to(put_proposal))
        .route("/api/v1/proposals/{source}/{deal_id}", web::get().to(get_proposal));
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProposalStored {
    pub source: String,
    pub deal_id: String,
    /// The version now current (1 for the first snapshot).
    pub version: i32,
    /// False when the body equalled the current version: nothing was written.
    pub changed: bool,
}

pub fn parse_deal(source: &str, deal_id: &str) -> ApiResult<(Source, DealId)> {
    let source = Source::parse(source).map_err(|e| ApiError::not_found(e.0))?;
    let deal = DealId::parse(deal_id).map_err(|e| ApiError::invalid("deal_id", e.0))?;
    Ok((source, deal))
}

/// Stores a proposal snapshot. A changed body becomes a new version (201); an identical body
/// changes nothing (200). Open calls for the deal use the newest version from their next email;
/// a rep who has the recap gets one short email with what changed (`[recap_changes]`).
#[utoipa::path(put, path = "/api/v1/proposals/{source}/{deal_id}", tag = "proposals",
    params(("source" = String, Path, description = "generic, hubspot, pipedrive or salesforce"), ("deal_id" = String, Path, description = "the CRM deal id")),
    request_body(content = ProposalBody, description = "The proposal snapshot: account, rep_email, contacts, requirements, commitments, line_items, activities (see README). Unknown fields are refused (422 naming their path)."),
    responses((status = 201, body = ProposalStored), (status = 200, body = ProposalStored), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody, description = "Unknown source"), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_proposal(
    _caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: StrictJson<ProposalBody>,
) -> ApiResult<HttpResponse> {
    let (source, deal) = parse_deal(&path.0, &path.1)?;
    let proposal = body.parse().map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let mut attempt = 0;
    let out = loop {
        attempt += 1;
        let now = state.clock.now();
        let txn = crate::db::begin_write(&state.db).await?;
        let stored = match crate::proposals::store::put(&txn, source, &deal, &proposal, crate::proposals::store::Origin::Api, now).await {
            // A new version after the rep's recap went out: they hear what changed.
            Ok(out) if out.changed => {
                crate::workflow::changes::deal_changed(&txn, &state.first_call.get(), source.as_str(), deal.as_str(), now)
                    .await
                    .map(|_| out)
            }
            other => other,
        };
        match stored {
            Ok(out) => match txn.commit().await {
                Ok(()) => break out,
                Err(e) if attempt < 3 && !crate::db::is_unavailable(&e) => continue,
                Err(e) => return Err(e.into()),
            },
            // Two writers raced for the same next version: read again and retry.
            Err(e) if attempt < 3 && !crate::db::is_unavailable(&e) => {
                let _ = txn.rollback().await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let body = ProposalStored { source: source.to_string(), deal_id: deal.to_string(), version: out.version, changed: out.changed };
    Ok(if out.changed { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

/// The newest stored proposal version for a deal.
#[utoipa::path(get, path = "/api/v1/proposals/{source}/{deal_id}", tag = "proposals",
    params(("source" = String, Path), ("deal_id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "The deal id is not one firstcall accepts")),
    security(("bearer" = [])))]
pub async fn get_proposal(_caller: ApiCaller, state: web::Data<AppState>, path: web::Path<(String, String)>) -> ApiResult<HttpResponse> {
    let (source, deal) = parse_deal(&path.0, &path.1)?;
    let p = crate::proposals::store::latest(&state.db, source.as_str(), deal.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no proposal on file for {source}/{deal}")))?;
    Ok(HttpResponse::Ok().json(
        serde_json::json!({"source": source, "deal_id": deal, "version": p.version, "received_at": p.received_at, "proposal": p.proposal}),
    ))
}
