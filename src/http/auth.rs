//! Bearer-token authentication for the API, and the session cookies of the pages (kept on the
//! server: [`crate::sessions`]): of someone who logged in with an API token, or of a person who
//! signed in with a link sent by email (that one opens the pages only).
//! Tokens are compared as SHA-256 hashes in constant time; rotated tokens keep working until
//! their `expires_at`. A wrong token counts as a failed
//! attempt of the client's address (`http.failed_auth_limit`); over the limit it gets 429.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

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
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = authenticate(&req).await?;
            // A browser sends the dashboard's session cookie with any request to this site, also
            // one that a hostile page makes it send: the cookie reads the API, writes need a token.
            if caller.actor == "dashboard" && !req.method().is_safe() {
                return Err(ApiError::unauthorized(
                    "bearer_required",
                    "the dashboard session only reads the API; send `Authorization: Bearer <token>` to change anything",
                ));
            }
            Ok(caller)
        })
    }
}

/// How a request proves who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <API token>`.
    Bearer,
    /// The session cookie of someone who logged in with an API token.
    TokenSession,
    /// The session cookie of a person who signed in with a link sent to this address.
    Person(String),
}

/// The API: for machines, with a token. A person's session only opens the pages.
pub async fn authenticate(req: &HttpRequest) -> Result<ApiCaller, ApiError> {
    match credential(req).await? {
        Credential::Bearer => Ok(ApiCaller { actor: "api" }),
        Credential::TokenSession => Ok(ApiCaller { actor: "dashboard" }),
        Credential::Person(_) => Err(ApiError::unauthorized(
            "bearer_required",
            "the API is for machines: send `Authorization: Bearer <token>` with an API token; people use the pages",
        )),
    }
}

/// Who sent the request: an API token, or a live session's cookie.
pub async fn credential(req: &HttpRequest) -> Result<Credential, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal());
    };
    let now = state.clock.now();
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(h) = header {
        let Some(token) = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")) else {
            let refusal = ApiError::unauthorized("bad_token", "the Authorization header must be `Bearer <token>`");
            return Err(failed_attempt(state, req, refusal));
        };
        return match state.security.api.check(Some(token.trim()), now) {
            Ok(()) => Ok(Credential::Bearer),
            Err(e) => Err(failed_attempt(state, req, ApiError::unauthorized("bad_token", e.to_string()))),
        };
    }
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        match crate::sessions::holder(&state.db, &state.security, c.value(), now).await? {
            Some(crate::sessions::Holder::Token) => return Ok(Credential::TokenSession),
            Some(crate::sessions::Holder::Person(email)) => return Ok(Credential::Person(email)),
            None => {}
        }
    }
    if state.security.api.is_empty() {
        return Err(ApiError::unauthorized(
            "no_tokens_configured",
            "no API tokens are configured; set FIRSTCALL__API__TOKENS and send `Authorization: Bearer <token>`",
        ));
    }
    Err(ApiError::unauthorized("missing_token", "send `Authorization: Bearer <token>` with an API token"))
}

/// The address a request comes from, for limits per client: the TCP peer. firstcall has no
/// setting to trust a proxy's `X-Forwarded-For` (a client could write any address there), so
/// behind a reverse proxy all clients share the proxy's address.
pub fn client_address(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Counts a failed authentication attempt (wrong token, signature, password or org id) against
/// the client's address: `refusal` while the address is within `http.failed_auth_limit`, 429
/// with `Retry-After` once it is over. Requests that authenticate are never counted.
pub fn failed_attempt(state: &AppState, req: &HttpRequest, refusal: ApiError) -> ApiError {
    match state.failed_auth.failed(client_address(req)) {
        Ok(()) => refusal,
        Err(wait) => {
            tracing::info!(client = %client_address(req), code = refusal.code, "failed authentication over the limit: {}", refusal.message);
            ApiError::too_many_failures(wait)
        }
    }
}
