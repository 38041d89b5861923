//! CRM webhooks: `POST /webhooks/{generic,hubspot,pipedrive,salesforce}`. Each request is
//! checked in this order, and the first failure answers without storing anything: content type
//! (415), size (413), authenticity (401; 429 once the client's address has failed too often,
//! `http.failed_auth_limit`), the source's budget (429, `http.rate_limit_per_minute`), shape
//! (400/422). Pipedrive's basic auth and the Salesforce endpoint's secret path segment (when
//! `webhooks.salesforce.path_secrets` is set) are checked first of all; Salesforce's org id is
//! read from the body, so only its XML well-formedness (400) comes before it, and its fields are
//! checked after it (a sender from another org gets 401, never a hint about the fields). Only
//! authenticated requests spend a source's budget, so forged requests cannot crowd out the CRM's
//! own. An accepted event is answered 2xx once its row is stored (503 when the database is down,
//! so the CRM retries); the engine applies it to orders and calls right after, and
//! `GET /api/v1/events/{id}` tells what that did. A redelivery is acknowledged and does nothing
//! twice.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::domain::Source;
use crate::intake::event::{EventWindow, IntakeEvent, PayloadError};
use crate::intake::signature::{self, SignatureError};
use crate::intake::{generic, hubspot, pipedrive, salesforce};
use crate::workflow::orders::Receipt;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/generic", web::post().to(generic_webhook))
        .route("/webhooks/hubspot", web::post().to(hubspot_webhook))
        .route("/webhooks/pipedrive", web::post().to(pipedrive_webhook))
        .route("/webhooks/salesforce", web::post().to(salesforce_webhook))
        .route("/webhooks/salesforce/{path_secret}", web::post().to(salesforce_webhook_with_secret));
}

/// The request path as logs show it: the Salesforce endpoint's secret segment is masked.
pub fn path_for_log(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/webhooks/salesforce/") {
        Some(rest) if !rest.is_empty() => "/webhooks/salesforce/{path_secret}".into(),
        _ => path.into(),
    }
}

/// What firstcall did with a webhook request: every event is stored (the engine applies it
/// next; `GET /api/v1/events/{stored_id}` tells what that did).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookAccepted {
    /// Events newly stored (not seen before).
    pub accepted: usize,
    /// Events seen before: acknowledged, nothing done again.
    pub duplicates: usize,
    pub events: Vec<Receipt>,
}

fn accepted(results: Vec<Receipt>) -> WebhookAccepted {
    let duplicates = results.iter().filter(|r| r.outcome == "duplicate").count();
    WebhookAccepted { accepted: results.len() - duplicates, duplicates, events: results }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn require_content_type(req: &HttpRequest, accepted: &[&str]) -> ApiResult<()> {
    let ct = header(req, "content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if accepted.iter().any(|a| *a == ct) { Ok(()) } else { Err(ApiError::unsupported_media(&accepted.join(" or "))) }
}

/// Reads the whole body, refusing more than `http.body_limit_bytes` (413) and clients that
/// take longer than `http.client_timeout_secs` to send it (408).
async fn read_body(state: &AppState, payload: web::Payload) -> ApiResult<web::Bytes> {
    let s = &state.config.settings.http;
    match tokio::time::timeout(Duration::from_secs(s.client_timeout_secs), payload.to_bytes_limited(s.body_limit_bytes)).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body was not received in time")),
        Ok(Err(_)) => Err(ApiError::too_large(s.body_limit_bytes)),
        Ok(Ok(Err(e))) => Err(ApiError::malformed(format!("could not read the body: {e}"))),
        Ok(Ok(Ok(b))) => Ok(b),
    }
}

/// A request whose credentials did not verify: 401, counted against the client's address (429
/// once it is over `http.failed_auth_limit`), never against the source's budget.
fn refused(state: &AppState, req: &HttpRequest, e: SignatureError) -> ApiError {
    super::auth::failed_attempt(state, req, signature_error(e))
}

fn signature_error(e: SignatureError) -> ApiError {
    let code = match e {
        SignatureError::NotConfigured { .. } => "source_not_configured",
        SignatureError::UnknownOrganization(_) | SignatureError::NoOrganization => "unknown_organization",
        SignatureError::MissingPathSecret => "missing_path_secret",
        SignatureError::WrongPathSecret => "invalid_path_secret",
        SignatureError::PathSecretNotConfigured => "path_secret_not_configured",
        SignatureError::TimestampTooOld { .. } | SignatureError::TimestampInFuture { .. } => "stale_signature",
        SignatureError::MissingHeader(_) => "missing_signature",
        _ => "invalid_signature",
    };
    ApiError::unauthorized(code, e.to_string())
}

fn payload_error(e: PayloadError) -> ApiError {
    match e {
        PayloadError::Malformed(m) => ApiError::malformed(m),
        PayloadError::Invalid { field, reason } => ApiError::invalid(field, reason),
    }
}

/// Counts the request and its outcome.
fn observe(state: &AppState, source: Source, r: &ApiResult<Vec<Receipt>>) {
    let s = source.as_str();
    state.metrics.webhook_received(s);
    match r {
        Ok(results) => {
            for e in results {
                state.metrics.webhook_event(s, e.outcome);
            }
        }
        Err(e) => {
            state.metrics.webhook_rejected(s, e.code);
            if e.status.is_server_error() {
                tracing::warn!(source = s, code = e.code, "webhook not stored: {}", e.message);
            } else {
                tracing::info!(source = s, code = e.code, "webhook rejected: {}", e.message);
            }
        }
    }
}

async fn store_events(state: &AppState, events: &[IntakeEvent]) -> ApiResult<Vec<Receipt>> {
    Ok(state.intake.accept(events).await?)
}

/// The event times accepted now (`webhooks.max_event_age_days` back, a day ahead).
fn event_window(state: &AppState) -> EventWindow {
    EventWindow::new(state.clock.now(), state.config.settings.webhooks.max_event_age_days)
}

/// Per-source request budget (`http.rate_limit_per_minute`), spent only by requests whose
/// credentials verified: a CRM over it gets 429 and retries later; other sources are not
/// affected.
fn rate_limit(state: &AppState, source: Source) -> ApiResult<()> {
    if state.rate_limits.allow(source) { Ok(()) } else { Err(ApiError::rate_limited()) }
}

/// Signed JSON order events (`order.created`, `order.updated`, `order.cancelled`), one object or
/// an array. Header `X-Firstcall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
#[utoipa::path(post, path = "/webhooks/generic", tag = "webhooks",
    request_body(content = serde_json::Value, description = "An order event or an array of them (see README)", content_type = "application/json"),
    params(("X-Firstcall-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    responses((status = 200, body = WebhookAccepted), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 408, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody)))]
pub async fn generic_webhook(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> ApiResult<HttpResponse> {
    let r = async {
        require_content_type(&req, &["application/json"])?;
        let body = read_body(&state, payload).await?;
        let cfg = &state.config.settings.webhooks.generic;
        signature::verify_generic(
            header(&req, signature::GENERIC_SIGNATURE_HEADER),
            &body,
            &state.security.generic,
            state.clock.now(),
            cfg.tolerance_secs,
        )
        .map_err(|e| refused(&state, &req, e))?;
        rate_limit(&state, Source::Generic)?;
        let events = generic::parse_generic(&body, &event_window(&state)).map_err(payload_error)?;
        store_events(&state, &events).await
    }
    .await;
    observe(&state, Source::Generic, &r);
    Ok(HttpResponse::Ok().json(accepted(r?)))
}

/// HubSpot webhook batches, verified with signature v3. The URL HubSpot signs is
/// `http.public_url` + this path, so `public_url` must be the address configured in HubSpot.
#[utoipa::path(post, path = "/webhooks/hubspot", tag = "webhooks",
    request_body(content = serde_json::Value, description = "A HubSpot webhook batch (JSON array of events)", content_type = "application/json"),
    params(("X-HubSpot-Signature-v3" = String, Header), ("X-HubSpot-Request-Timestamp" = String, Header)),
    responses((status = 200, body = WebhookAccepted), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn hubspot_webhook(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> ApiResult<HttpResponse> {
    let r = async {
        require_content_type(&req, &["application/json"])?;
        let body = read_body(&state, payload).await?;
        let cfg = &state.config.settings.webhooks.hubspot;
        let uri = format!(
            "{}{}",
            state.config.settings.http.public_url.trim_end_matches('/'),
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/webhooks/hubspot")
        );
        signature::verify_hubspot_v3(
            header(&req, "X-HubSpot-Signature-v3"),
            header(&req, "X-HubSpot-Request-Timestamp"),
            req.method().as_str(),
            &uri,
            &body,
            &state.security.hubspot,
            state.clock.now(),
            cfg.tolerance_secs,
        )
        .map_err(|e| refused(&state, &req, e))?;
        rate_limit(&state, Source::Hubspot)?;
        let events = hubspot::parse_hubspot(&body, cfg, &event_window(&state)).map_err(payload_error)?;
        store_events(&state, &events).await
    }
    .await;
    observe(&state, Source::Hubspot, &r);
    Ok(HttpResponse::Ok().json(accepted(r?)))
}

/// Pipedrive webhooks v2, authenticated with HTTP basic auth.
#[utoipa::path(post, path = "/webhooks/pipedrive", tag = "webhooks",
    request_body(content = serde_json::Value, description = "A Pipedrive v2 webhook (meta, data, previous)", content_type = "application/json"),
    responses((status = 200, body = WebhookAccepted), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("basic" = [])))]
pub async fn pipedrive_webhook(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> ApiResult<HttpResponse> {
    let r = async {
        // Credentials first: an unauthenticated caller learns nothing about the body rules.
        signature::verify_basic_auth(header(&req, "authorization"), &state.security.pipedrive, state.clock.now())
            .map_err(|e| refused(&state, &req, e))?;
        rate_limit(&state, Source::Pipedrive)?;
        require_content_type(&req, &["application/json"])?;
        let body = read_body(&state, payload).await?;
        let events = pipedrive::parse_pipedrive(&body, &event_window(&state)).map_err(payload_error)?;
        store_events(&state, &events).await
    }
    .await;
    observe(&state, Source::Pipedrive, &r);
    Ok(HttpResponse::Ok().json(accepted(r?)))
}

/// Salesforce outbound messages (SOAP), at this URL when no path secret is configured. Answers the
/// SOAP `Ack` once stored, so Salesforce stops retrying; errors are SOAP faults with the matching
/// HTTP status. With `webhooks.salesforce.path_secrets` set, this URL answers 401: use
/// `/webhooks/salesforce/{path_secret}`.
#[utoipa::path(post, path = "/webhooks/salesforce", tag = "webhooks",
    request_body(content = String, description = "A Salesforce outbound message (SOAP 1.1 notifications of Opportunity objects)", content_type = "text/xml"),
    responses((status = 200, description = "SOAP notificationsResponse with Ack true", content_type = "text/xml"), (status = 400, description = "SOAP fault"), (status = 401, description = "SOAP fault"),
        (status = 408, description = "SOAP fault"), (status = 413, description = "SOAP fault"), (status = 415, description = "SOAP fault"), (status = 422, description = "SOAP fault"),
        (status = 429, description = "SOAP fault"), (status = 503, description = "SOAP fault")))]
pub async fn salesforce_webhook(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    salesforce(req, state, None, payload).await
}

/// Salesforce outbound messages at the endpoint's secret URL, when `webhooks.salesforce.path_secrets`
/// is set (`FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS`): the outbound message's endpoint URL is
/// `{http.public_url}/webhooks/salesforce/{path_secret}`. Any other segment, or one when none is
/// configured, answers 401 and counts as a failed authentication attempt.
#[utoipa::path(post, path = "/webhooks/salesforce/{path_secret}", tag = "webhooks",
    params(("path_secret" = String, Path, description = "One of the configured path secrets")),
    request_body(content = String, description = "A Salesforce outbound message (SOAP 1.1 notifications of Opportunity objects)", content_type = "text/xml"),
    responses((status = 200, description = "SOAP notificationsResponse with Ack true", content_type = "text/xml"), (status = 400, description = "SOAP fault"), (status = 401, description = "SOAP fault"),
        (status = 408, description = "SOAP fault"), (status = 413, description = "SOAP fault"), (status = 415, description = "SOAP fault"), (status = 422, description = "SOAP fault"),
        (status = 429, description = "SOAP fault"), (status = 503, description = "SOAP fault")))]
pub async fn salesforce_webhook_with_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    path_secret: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    salesforce(req, state, Some(path_secret.into_inner()), payload).await
}

async fn salesforce(req: HttpRequest, state: web::Data<AppState>, path_secret: Option<String>, payload: web::Payload) -> HttpResponse {
    let r = async {
        // The URL first: a caller without the secret learns nothing about the body rules.
        signature::verify_path_secret(path_secret.as_deref(), &state.security.salesforce_path, state.clock.now())
            .map_err(|e| refused(&state, &req, e))?;
        require_content_type(&req, &["text/xml", "application/xml", "application/soap+xml"])?;
        let body = read_body(&state, payload).await?;
        let cfg = &state.config.settings.webhooks.salesforce;
        // The org id is the message's credential: checked before any field.
        let message = salesforce::read_outbound_message(&body).map_err(payload_error)?;
        salesforce::check_organization(message.organization_id(), cfg).map_err(|e| refused(&state, &req, e))?;
        rate_limit(&state, Source::Salesforce)?;
        let batch = message.parse(cfg, &event_window(&state)).map_err(payload_error)?;
        store_events(&state, &batch.events).await
    }
    .await;
    observe(&state, Source::Salesforce, &r);
    match r {
        Ok(_) => HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(salesforce::salesforce_ack()),
        Err(e) => {
            let fault = if e.status.is_server_error() {
                salesforce::salesforce_server_fault(&e.message)
            } else {
                salesforce::salesforce_fault(&e.message)
            };
            let mut resp = HttpResponse::build(e.status);
            if e.status == StatusCode::SERVICE_UNAVAILABLE || e.status == StatusCode::TOO_MANY_REQUESTS {
                resp.insert_header(("Retry-After", e.retry_after.unwrap_or(5).to_string()));
            }
            resp.content_type("text/xml; charset=utf-8").body(fault)
        }
    }
}
