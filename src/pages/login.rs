//! Logging in to the dashboard with an API token (`FIRSTCALL__API__TOKENS`): the token is
//! checked once and traded for a session kept on the server ([`crate::sessions`]) whose HttpOnly
//! cookie holds only a random secret. The session expires after [`SESSION_HOURS`], stops
//! working when the token is retired, and ends for good at logout, wherever its cookie went. A wrong token
//! counts as a failed attempt of the visitor's address (`http.failed_auth_limit`, shared with the
//! API and the webhooks): over the limit the form answers 429 and asks to wait; the right token
//! still logs in.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::TimeDelta;

use super::access::{DASHBOARD_FORMS, LOGIN_FORM, Visitor, cookie, signed_in};
use super::render::render;
use super::{Fields, PageError, form_page, see_other};
use crate::app::AppState;
use crate::http::auth::{SESSION_COOKIE, client_address};
use crate::http::error::retry_after_secs;
use crate::links::AuthError;

/// How long a dashboard login lasts.
pub const SESSION_HOURS: i64 = 12;

/// Where to go after logging in: a path on this site, else the dashboard.
fn next_path(raw: Option<&str>) -> String {
    match raw.map(str::trim) {
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() <= 2000 && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// `GET /login?next=/calls/12`: the form (or, when already logged in, straight on).
#[utoipa::path(get, path = "/login", tag = "pages", params(("next" = Option<String>, Query)), responses((status = 200, description = "The login form", content_type = "text/html"), (status = 303, description = "Already logged in")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let query = Fields::query(&req)?;
    let next = next_path(query.get("next"));
    if signed_in(&req).await? {
        return Ok(see_other(&next).finish());
    }
    form(&req, &state, StatusCode::OK, &next, None)
}

/// `POST /login` with `token`, `next` and `csrf`.
#[utoipa::path(post, path = "/login", tag = "pages", request_body(content = super::forms::LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Logged in"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 401, description = "Bad token", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html"),
        (status = 429, description = "Too many failed attempts from this address: the form, asking to wait (Retry-After)", content_type = "text/html")))]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let fields = Fields(body.into_inner());
    let next = next_path(fields.get("next"));
    Visitor::of(&req).check(&state, LOGIN_FORM, fields.get("csrf"))?;
    let now = state.clock.now();
    let token = fields.non_empty("token");
    if let Err(e) = state.security.api.check(token, now) {
        // An empty form guesses nothing; a wrong or expired token is a failed attempt.
        let attempt = !matches!(e, AuthError::Missing);
        let why = match e {
            AuthError::Missing => "Enter your API token.",
            AuthError::Expired => "This token has expired. Ask for the new one.",
            AuthError::Invalid if state.security.api.is_empty() => {
                "No API tokens are configured: set FIRSTCALL__API__TOKENS and restart firstcall."
            }
            AuthError::Invalid => "This token is not valid.",
        };
        if attempt && let Err(wait) = state.failed_auth.failed(client_address(&req)) {
            let secs = retry_after_secs(wait);
            let why = format!("Too many failed attempts from your address. Wait {secs} seconds, then try again.");
            let mut page = form(&req, &state, StatusCode::TOO_MANY_REQUESTS, &next, Some(&why))?;
            page.headers_mut().insert(RETRY_AFTER, secs.into());
            return Ok(page);
        }
        return form(&req, &state, StatusCode::UNAUTHORIZED, &next, Some(why));
    }
    let expires = now + TimeDelta::hours(SESSION_HOURS);
    let secret = crate::sessions::open(&state.db, token.unwrap_or_default(), now, expires).await?;
    let mut session = cookie(&state, SESSION_COOKIE, secret);
    session.set_max_age(CookieDuration::hours(SESSION_HOURS));
    Ok(see_other(&next).cookie(session).finish())
}

/// `POST /logout` with the dashboard's `csrf`: ends the session on the server, so a copy of the
/// cookie opens nothing afterwards, and removes the cookie.
#[utoipa::path(post, path = "/logout", tag = "pages", request_body(content = super::forms::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Logged out"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html")))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let fields = Fields(body.into_inner());
    Visitor::of(&req).check(&state, DASHBOARD_FORMS, fields.get("csrf"))?;
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        crate::sessions::close(&state.db, c.value()).await?;
    }
    let mut gone = cookie(&state, SESSION_COOKIE, String::new());
    gone.make_removal();
    Ok(see_other("/login").cookie(gone).finish())
}

fn form(req: &HttpRequest, state: &AppState, status: StatusCode, next: &str, error: Option<&str>) -> Result<HttpResponse, PageError> {
    let visitor = Visitor::of(req);
    let dev_credentials = state.config.dev_credentials.as_ref().map(|p| p.display().to_string());
    let body = render(
        "login.html",
        minijinja::context! {
            next, error, hours => SESSION_HOURS, csrf => visitor.csrf(state, LOGIN_FORM),
            no_tokens => state.security.api.is_empty(), dev_credentials,
        },
    )?;
    Ok(form_page(status, &visitor, state, body))
}

#[cfg(test)]
mod tests {
    use super::next_path;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        assert_eq!(next_path(Some("/calls/12")), "/calls/12");
        assert_eq!(next_path(Some("/?state=open&rep=a%40b")), "/?state=open&rep=a%40b");
        for bad in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "calls/1", "", "/a\nb"] {
            assert_eq!(next_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(next_path(None), "/");
    }
}
