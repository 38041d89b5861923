//! Bearer-token authentication for the API, and a session cookie for people who log in to the
//! dashboard with the same tokens. Tokens are compared as SHA-256 hashes in constant time;
//! rotated tokens keep working until their `expires_at`.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};

use super::ApiError;
use crate::app::AppState;

/// A caller that presented a valid API token (header `Authorization: Bearer <token>`) or a
/// valid dashboard session cookie.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// For the audit trail: `api` or `dashboard`.
    pub actor: &'static str,
}

pub const SESSION_COOKIE: &str = "firstcall_session";

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

pub fn authenticate(req: &HttpRequest) -> Result<ApiCaller, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal());
    };
    let now = state.clock.now();
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(h) = header {
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("bad_token", "the Authorization header must be `Bearer <token>`"))?;
        return match state.security.api.check(Some(token.trim()), now) {
            Ok(()) => Ok(ApiCaller { actor: "api" }),
            Err(e) => Err(ApiError::unauthorized("bad_token", e.to_string())),
        };
    }
    if let Some(c) = req.cookie(SESSION_COOKIE)
        && state.security.check_session(c.value(), now)
    {
        return Ok(ApiCaller { actor: "dashboard" });
    }
    if state.security.api.is_empty() {
        return Err(ApiError::unauthorized(
            "no_tokens_configured",
            "no API tokens are configured; set FIRSTCALL__API__TOKENS and send `Authorization: Bearer <token>`",
        ));
    }
    Err(ApiError::unauthorized("missing_token", "send `Authorization: Bearer <token>` with an API token"))
}
