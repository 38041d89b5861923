//! What a page shows when it cannot show what was asked for: a short explanation with the right
//! status (403 bad link, 410 expired link, 404, 422, 503 …), rendered as HTML like every page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::http::ApiError;
use crate::links::LinkError;

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{status}: {title}: {message}")]
pub struct PageError {
    #[serde(skip)]
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// Where a person can sign in instead (on a page a rep's link opens, say).
    pub login: Option<String>,
    /// Whether to point to the signed-in person's home page.
    pub home: bool,
    /// Seconds to wait before trying again (a 429), sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError { status, title: title.into(), message: message.into(), login: None, home: false, retry_after: None }
    }

    pub fn with_login(mut self, next: impl Into<String>) -> Self {
        self.login = Some(format!("/login?next={}", next.into()));
        self
    }

    pub fn with_home(mut self) -> Self {
        self.home = true;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "This request cannot be read", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Not done", message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "firstcall cannot reach its database right now. Nothing was changed; try again in a minute.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Nothing was changed. Try again; if it keeps happening, tell sales ops.",
        )
    }

    /// A form that did not come from our page, or from a page opened before the browser's
    /// cookie changed.
    pub fn stale_form() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Nothing was changed. Go back, reload the page and send the form again (your browser must accept cookies from this site).",
        )
    }

    /// Why a call link was refused: an expired one asks for the newest email.
    pub fn link(e: &LinkError, call_id: i64) -> Self {
        let page = format!("/calls/{call_id}");
        match e {
            LinkError::Expired { expired_at } => Self::new(
                StatusCode::GONE,
                "This link has expired",
                format!(
                    "Links in firstcall emails work for a limited time; this one stopped working on {}. Open the link in the newest email about this call: every reminder carries a fresh one.",
                    when(*expired_at)
                ),
            ),
            LinkError::WrongCall => Self::new(
                StatusCode::FORBIDDEN,
                "This link is for another call",
                "The link does not match the page it points to. Open the link from the email again, without changing it.",
            ),
            LinkError::Malformed => Self::new(
                StatusCode::FORBIDDEN,
                "This link is not valid",
                "It may have been cut off by your email program or changed. Open the link from the newest email about this call again.",
            ),
        }
        .with_login(page)
    }

    /// No link token and no dashboard session.
    pub fn needs_link(call_id: i64) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This page needs the link from your email",
            "Open the call from the link in the email firstcall sent you, or sign in: reps see their calls, managers their team's, sales ops all.",
        )
        .with_login(format!("/calls/{call_id}"))
    }
}

fn when(t: DateTime<Utc>) -> String {
    crate::mail::templates::local_time(t, chrono_tz::UTC)
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let title = match e.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "This cannot be done",
            StatusCode::UNPROCESSABLE_ENTITY => "Please check the form",
            StatusCode::UNAUTHORIZED => "Please sign in",
            StatusCode::SERVICE_UNAVAILABLE => return PageError::unavailable(),
            s if s.is_server_error() => return PageError::internal(),
            _ => "This request cannot be done",
        };
        PageError::new(e.status, title, e.message)
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::from(e).into()
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = super::html(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            b.insert_header(("Retry-After", "30"));
        }
        if let Some(secs) = self.retry_after {
            b.insert_header(("Retry-After", secs.to_string()));
        }
        match super::render::render("error.html", minijinja::context! { error => super::render::value(self) }) {
            Ok(page) => b.body(page),
            Err(_) => b.content_type("text/plain; charset=utf-8").body(format!("{}\n\n{}\n", self.title, self.message)),
        }
    }
}

/// Form bodies that cannot be read: too large 413, not a form 415, otherwise 400.
pub fn form_error(err: actix_web::error::UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::UrlencodedError as U;
    let page = match &err {
        U::Overflow { .. } => {
            PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large", "Shorten the notes and send it again.")
        }
        U::ContentType => PageError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "This is not a form", "Send the form from the page."),
        other => PageError::bad_request(format!("The form cannot be read: {other}")),
    };
    page.into()
}
