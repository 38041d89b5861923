//! The one place errors become HTTP responses: `{"error": {"code", "message"}}` with the right
//! status. Handlers return [`ApiError`]; lower layers' errors convert into it here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After` on a 429 or 503 (default 5).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_signature`.
    pub code: String,
    /// What went wrong and what to do about it, for a person.
    pub message: String,
    /// The offending field's JSON path (422), or the query parameter (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    /// An error about one field or parameter, named in `field` and at the start of the message.
    fn about(status: StatusCode, code: &'static str, field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        ApiError { status, code, message: format!("{field}: {reason}"), field: Some(field), retry_after: None }
    }
    /// A query parameter that cannot be read: 400 naming it.
    pub fn bad_parameter(name: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::about(StatusCode::BAD_REQUEST, "malformed", name, reason)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the request body is larger than the limit of {limit} bytes"))
    }
    pub fn unsupported_media(expected: &str) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("send the body as {expected}"))
    }
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::about(StatusCode::UNPROCESSABLE_ENTITY, "invalid", field, reason)
    }
    pub fn rate_limited() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests from this source; retry later")
    }
    /// Too many failed authentication attempts from the client's address (`http.failed_auth_limit`);
    /// the right credentials are still accepted.
    pub fn too_many_failures(wait: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentication attempts from this address; retry later with the right credentials",
        );
        e.retry_after = Some(retry_after_secs(wait));
        e
    }
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable; nothing was stored, retry later")
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; nothing was stored, retry later")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::TOO_MANY_REQUESTS {
            r.insert_header(("Retry-After", self.retry_after.unwrap_or(5).to_string()));
        }
        r.json(ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message.clone(), field: self.field.clone() } })
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::unavailable()
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::internal()
        }
    }
}

impl From<crate::workflow::orders::IntakeError> for ApiError {
    fn from(e: crate::workflow::orders::IntakeError) -> Self {
        use crate::workflow::orders::IntakeError;
        match e {
            IntakeError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                ApiError::unavailable()
            }
            IntakeError::Conflict => {
                tracing::warn!("webhook not stored: concurrent changes to the same deals");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "other requests are changing the same deals; nothing was stored, retry later",
                )
            }
            IntakeError::Rejected(why) => {
                tracing::error!(error = %why, "database refused the events");
                ApiError::internal()
            }
        }
    }
}

impl<E: std::fmt::Display + Into<ApiError>> From<sea_orm::TransactionError<E>> for ApiError {
    fn from(e: sea_orm::TransactionError<E>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(inner) => inner.into(),
        }
    }
}

/// Maps actix's JSON extractor failures onto our statuses: wrong type 415, too big 413,
/// unparseable 400, well-formed but wrong shape 422.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::ContentType => ApiError::unsupported_media("application/json"),
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => ApiError::too_large(*limit),
        J::Deserialize(e) if e.classify() == serde_json::error::Category::Data => {
            let msg = e.to_string();
            let field = msg.strip_prefix("missing field `").and_then(|r| r.split('`').next()).map(String::from);
            ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid", message: msg, field, retry_after: None }
        }
        J::Deserialize(e) => ApiError::malformed(format!("body is not valid JSON: {e}")),
        other => ApiError::malformed(other.to_string()),
    };
    api.into()
}

/// Path parameters that fail to parse are a 404: no such resource.
pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::not_found(err.to_string()).into()
}

/// Query strings that fail to parse are a 400.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::malformed(format!("bad query string: {err}")).into()
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
