//! Signing in. A person gives their email address and gets a one-time link
//! ([`crate::workflow::sign_in`]); opening it shows a button (a GET changes nothing, so a mail
//! scanner that fetches the link does not use it up), and pressing it trades the link for a
//! session of `[sign_in] session_hours`. An administrator may instead log in with an API token
//! (`FIRSTCALL__API__TOKENS`), for [`SESSION_HOURS`]; that session stops working when the token
//! is retired. Either session is kept on the server ([`crate::sessions`]), its HttpOnly cookie
//! holding only a random secret, and ends for good at logout, wherever its cookie went.
//!
//! Links asked for are limited per address and per client address (`[sign_in]`); over the limit
//! the form answers 429 and says how long to wait. A wrong token, or a link that names no link,
//! counts as a failed attempt of the visitor's address (`http.failed_auth_limit`, shared with the
//! API and the webhooks).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::TimeDelta;

use super::access::{DASHBOARD_FORMS, LOGIN_FORM, Visitor, cookie, viewer};
use super::render::render;
use super::{Fields, PageError, form_page, see_other};
use crate::app::AppState;
use crate::domain::EmailAddress;
use crate::http::auth::{SESSION_COOKIE, client_address};
use crate::http::error::retry_after_secs;
use crate::links::AuthError;
use crate::people::links::{Asked, Limit, LinkState};
use crate::sessions::Opener;

/// How long a login with an API token lasts.
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
    if viewer(&req, &state).await?.is_some() {
        return Ok(see_other(&next).finish());
    }
    form(&req, &state, StatusCode::OK, &next, Said::default())
}

/// What the sign-in page says besides its forms.
#[derive(Debug, Default)]
struct Said<'a> {
    /// Why the API token was refused.
    token_error: Option<&'a str>,
    /// Why the email address was refused, and the address as typed.
    email_error: Option<String>,
    email: String,
    /// The link is on its way to this address.
    sent_to: Option<String>,
}

/// `POST /login/email` with `email`, `next` and `csrf`: emails a one-time link to an address that
/// may sign in. The answer is the same for any well-formed address, so the form does not tell who
/// is in the directory.
#[utoipa::path(post, path = "/login/email", tag = "pages", request_body(content = super::forms::SignInEmailForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The link is on its way, if the address may sign in", content_type = "text/html"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html"),
        (status = 422, description = "Not an email address: the form, saying so", content_type = "text/html"),
        (status = 429, description = "Too many links asked for this address or from this client: the form, asking to wait (Retry-After)", content_type = "text/html")))]
pub async fn ask_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (fields, next) = sign_in_form(&req, &state, body)?;
    let typed = fields.get("email").unwrap_or_default().trim().to_string();
    let email = match EmailAddress::parse(&typed) {
        Ok(e) => e,
        Err(e) => {
            let why = if typed.is_empty() { "Enter your email address.".to_string() } else { format!("{e}.") };
            let said = Said { email_error: Some(why), email: typed, ..Said::default() };
            return form(&req, &state, StatusCode::UNPROCESSABLE_ENTITY, &next, said);
        }
    };
    let client = client_address(&req).to_string();
    let fc = state.first_call.get();
    match crate::workflow::sign_in::ask(&state.db, &fc, &email, &client, &next, state.clock.now()).await? {
        Asked::Issued { .. } => state.signals.emails_queued(),
        Asked::NotAllowed => tracing::info!(%email, %client, "a sign-in link was asked for an address that may not sign in"),
        Asked::TooMany { per, retry_after } => {
            let minutes = (retry_after.num_seconds() + 59) / 60;
            let whose = match per {
                Limit::Address => "for this address",
                Limit::Client => "from your network address",
            };
            let why = format!(
                "Too many sign-in links were asked {whose} in the last hour. Wait {minutes} minutes, then ask again; the newest link you got still works until it expires."
            );
            let said = Said { email_error: Some(why), email: email.to_string(), ..Said::default() };
            let mut page = form(&req, &state, StatusCode::TOO_MANY_REQUESTS, &next, said)?;
            page.headers_mut().insert(RETRY_AFTER, retry_after.num_seconds().max(1).into());
            return Ok(page);
        }
    }
    form(&req, &state, StatusCode::OK, &next, Said { sent_to: Some(email.to_string()), ..Said::default() })
}

/// Why a sign-in link does not sign in, as a page.
fn link_refused(state: LinkState) -> PageError {
    let (status, title, message) = match state {
        LinkState::Used(at) => (
            StatusCode::GONE,
            "This sign-in link was already used",
            format!(
                "Each link signs in once; this one was used on {}. If that was not you, tell sales ops. Ask for a new link to sign in.",
                crate::mail::templates::local_time(at, chrono_tz::UTC)
            ),
        ),
        LinkState::Expired => (
            StatusCode::GONE,
            "This sign-in link has expired",
            "Sign-in links work for a few minutes only. Ask for a new one; it comes by email at once.".to_string(),
        ),
        LinkState::Unknown | LinkState::Valid { .. } => (
            StatusCode::FORBIDDEN,
            "This sign-in link is not valid",
            "It may have been cut off by your email program, or it is more than a day old. Ask for a new one.".to_string(),
        ),
    };
    PageError::new(status, title, message).with_login("/")
}

/// `GET /login/link?t=…&next=…`: the link from the email. Shows who it signs in and a button;
/// changes nothing (a mail scanner that fetches the link does not use it up).
#[utoipa::path(get, path = "/login/link", tag = "pages", params(("t" = String, Query, description = "the link's secret"), ("next" = Option<String>, Query)),
    responses((status = 200, description = "Who the link signs in, and the button", content_type = "text/html"), (status = 403, description = "Not a link firstcall sent", content_type = "text/html"), (status = 410, description = "Used or expired: the page says which", content_type = "text/html")))]
pub async fn show_link(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let query = Fields::query(&req)?;
    let next = next_path(query.get("next"));
    let secret = query.get("t").unwrap_or_default();
    let (email, expires_at) = match crate::people::links::peek(&state.db, secret, state.clock.now()).await? {
        LinkState::Valid { email, expires_at } => (email, expires_at),
        other => return Err(link_refused(other)),
    };
    let tz = match EmailAddress::parse(&email) {
        Ok(address) => crate::reps::recipient(&state.db, &address, state.config.settings.defaults.timezone).await?.timezone,
        Err(_) => state.config.settings.defaults.timezone,
    };
    let visitor = Visitor::of(&req);
    let body = render(
        "sign_in.html",
        minijinja::context! {
            email, secret, next, csrf => visitor.csrf(&state, LOGIN_FORM),
            until => crate::mail::templates::local_time(expires_at, tz.0),
        },
    )?;
    Ok(form_page(StatusCode::OK, &visitor, &state, body))
}

/// `POST /login/link` with `t`, `next` and `csrf`: uses the link (once) and signs its person in.
#[utoipa::path(post, path = "/login/link", tag = "pages", request_body(content = super::forms::SignInLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed in: to `next`, else the home page"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 403, description = "Bad CSRF token, or not a link firstcall sent, or the person may no longer sign in", content_type = "text/html"), (status = 410, description = "Used or expired", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html"),
        (status = 429, description = "Too many failed attempts from this address (Retry-After)", content_type = "text/html")))]
pub async fn use_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (fields, next) = sign_in_form(&req, &state, body)?;
    let now = state.clock.now();
    let link = crate::people::links::redeem(&state.db, fields.get("t").unwrap_or_default(), now).await?;
    let LinkState::Valid { email, .. } = link else {
        if link == LinkState::Unknown
            && let Err(wait) = state.failed_auth.failed(client_address(&req))
        {
            let secs = retry_after_secs(wait);
            let mut e = PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts",
                format!("Too many failed attempts from your address. Wait {secs} seconds, then try again."),
            );
            e.retry_after = Some(secs);
            return Err(e);
        }
        return Err(link_refused(link));
    };
    let settings = &state.config.settings.sign_in;
    let Some(person) = crate::people::resolve(&state.db, &email, settings).await? else {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "You may no longer sign in",
            format!("{email} is neither in the rep directory nor a sales-ops address any more. Ask sales ops."),
        ));
    };
    // Sales ops land on the dashboard, everyone else on their home page.
    let to = if next == "/" && !person.sees_all() { "/home".to_string() } else { next };
    open_session(&state, Opener::Person(&email), i64::from(settings.session_hours), &to).await
}

/// A form of the sign-in pages, checked: its fields and where to go afterwards.
fn sign_in_form(req: &HttpRequest, state: &AppState, body: web::Form<Vec<(String, String)>>) -> Result<(Fields, String), PageError> {
    let fields = Fields(body.into_inner());
    let next = next_path(fields.get("next"));
    Visitor::of(req).check(state, LOGIN_FORM, fields.get("csrf"))?;
    Ok((fields, next))
}

/// Opens a session of `hours` for `opener` and sends the browser, with its cookie, to `to`.
async fn open_session(state: &AppState, opener: Opener<'_>, hours: i64, to: &str) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let secret = crate::sessions::open(&state.db, opener, now, now + TimeDelta::hours(hours)).await?;
    let mut session = cookie(state, SESSION_COOKIE, secret);
    session.set_max_age(CookieDuration::hours(hours));
    Ok(see_other(to).cookie(session).finish())
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
    let (fields, next) = sign_in_form(&req, &state, body)?;
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
            let mut page = form(&req, &state, StatusCode::TOO_MANY_REQUESTS, &next, Said { token_error: Some(&why), ..Said::default() })?;
            page.headers_mut().insert(RETRY_AFTER, secs.into());
            return Ok(page);
        }
        return form(&req, &state, StatusCode::UNAUTHORIZED, &next, Said { token_error: Some(why), ..Said::default() });
    }
    open_session(&state, Opener::Token(token.unwrap_or_default()), SESSION_HOURS, &next).await
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

fn form(req: &HttpRequest, state: &AppState, status: StatusCode, next: &str, said: Said<'_>) -> Result<HttpResponse, PageError> {
    let visitor = Visitor::of(req);
    let dev_credentials = state.config.dev_credentials.as_ref().map(|p| p.display().to_string());
    let body = render(
        "login.html",
        minijinja::context! {
            next, error => said.token_error, email_error => said.email_error, email => said.email, sent_to => said.sent_to,
            hours => SESSION_HOURS, link_minutes => state.config.settings.sign_in.link_minutes,
            session_hours => state.config.settings.sign_in.session_hours,
            csrf => visitor.csrf(state, LOGIN_FORM),
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
