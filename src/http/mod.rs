//! HTTP: routes, extractors, and the mapping of errors to responses. Handlers are thin: they
//! parse, call the domain, and map the result.

pub mod auth;
pub mod calls;
pub mod controls;
pub mod cursor;
pub mod error;
pub mod events;
pub mod health;
pub mod json;
pub mod ops;
pub mod promises;
pub mod proposals;
pub mod reps;
pub mod webhooks;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::config::HttpSettings;
pub use error::{ApiError, ApiResult};

pub fn configure(cfg: &mut web::ServiceConfig, http: &HttpSettings) {
    cfg.app_data(web::JsonConfig::default().limit(http.body_limit_bytes).error_handler(error::json_error))
        .app_data(web::PayloadConfig::new(http.body_limit_bytes))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .configure(health::configure)
        .configure(webhooks::configure)
        .configure(events::configure)
        .configure(proposals::configure)
        .configure(reps::configure)
        .configure(calls::configure)
        .configure(controls::configure)
        .configure(promises::configure)
        .configure(ops::configure);
}

/// Any other path: a JSON 404 (the last service the composition root mounts).
pub async fn not_found(req: actix_web::HttpRequest) -> ApiResult<actix_web::HttpResponse> {
    Err(ApiError::not_found(format!("no route for {} {}", req.method(), req.path())))
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id (the caller's `X-Request-Id` if it is sane, else a new one), runs
/// it inside a span carrying that id, echoes the id in the response and logs the outcome.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // The path as logged: a secret URL segment (the Salesforce endpoint's) is masked.
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %webhooks::path_for_log(req.path()));
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    let _enter = span.enter();
    match res {
        Ok(mut res) => {
            let status = res.status().as_u16();
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID.clone(), v);
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if status >= 500 {
                tracing::warn!(status, ms, "request failed");
            } else {
                tracing::info!(status, ms, "request");
            }
            Ok(res)
        }
        Err(e) => {
            tracing::warn!(error = %e, "request error");
            Err(e)
        }
    }
}
