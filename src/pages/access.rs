//! Who may see and change what on the pages: a rep holding a call's signed link sees and marks
//! that call; a person logged in to the dashboard (or sending an API bearer token) sees every
//! call. Forms carry a CSRF token bound to a random value in the `firstcall_form` cookie, which
//! the page that shows the form sets.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use super::PageError;
use crate::app::AppState;

/// The CSRF "call id" of the dashboard's forms (retries, logout); real calls are numbered from 1.
pub const DASHBOARD_FORMS: i64 = 0;
/// The CSRF "call id" of the login form.
pub const LOGIN_FORM: i64 = -1;

pub const FORM_COOKIE: &str = "firstcall_form";

/// How a visitor reached a call page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// With the signed link from an email (the token travels with the form).
    Link(String),
    /// Logged in to the dashboard, or with an API token.
    Dashboard,
}

impl Access {
    /// For the audit trail.
    pub fn actor(&self) -> &'static str {
        match self {
            Access::Link(_) => "rep",
            Access::Dashboard => "dashboard",
        }
    }

    /// Where the call page is for this visitor.
    pub fn call_path(&self, id: i64) -> String {
        match self {
            Access::Link(t) => format!("/calls/{id}?t={t}"),
            Access::Dashboard => format!("/calls/{id}"),
        }
    }

    pub fn link_token(&self) -> Option<&str> {
        match self {
            Access::Link(t) => Some(t),
            Access::Dashboard => None,
        }
    }
}

/// Logged in to the dashboard (session cookie) or holding an API token. A database that cannot
/// be asked about the session is an error (503), not a visitor to send to the login form.
pub async fn signed_in(req: &HttpRequest) -> Result<bool, PageError> {
    match crate::http::auth::authenticate(req).await {
        Ok(_) => Ok(true),
        Err(e) if e.status.is_server_error() => Err(e.into()),
        Err(_) => Ok(false),
    }
}

/// May this visitor see call `id`? A valid link token for it, or a dashboard session. A bad
/// link with no session is refused with the link's reason (expired: 410, otherwise 403).
pub async fn call_access(req: &HttpRequest, state: &AppState, id: i64, token: Option<&str>) -> Result<Access, PageError> {
    let token = token.map(str::trim).filter(|t| !t.is_empty());
    let verdict = token.map(|t| state.security.links.verify(t, id, state.clock.now()));
    if let (Some(t), Some(Ok(()))) = (token, &verdict) {
        return Ok(Access::Link(t.to_string()));
    }
    if signed_in(req).await? {
        return Ok(Access::Dashboard);
    }
    match verdict {
        Some(Err(e)) => Err(PageError::link(&e, id)),
        _ => Err(PageError::needs_link(id)),
    }
}

/// The visitor's form cookie: the one they sent, or a new random one to set with this page.
pub struct Visitor {
    nonce: String,
    fresh: bool,
}

impl Visitor {
    pub fn of(req: &HttpRequest) -> Visitor {
        match req.cookie(FORM_COOKIE).map(|c| c.value().to_string()).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
            Some(nonce) => Visitor { nonce, fresh: false },
            None => Visitor { nonce: hex::encode(rand::random::<[u8; 16]>()), fresh: true },
        }
    }

    /// The token a form for `form` (a call id, or one of the constants above) carries.
    pub fn csrf(&self, state: &AppState, form: i64) -> String {
        state.security.links.csrf_token(form, &self.nonce)
    }

    /// Checks a posted form's token. A visitor without the cookie never passes.
    pub fn check(&self, state: &AppState, form: i64, token: Option<&str>) -> Result<(), PageError> {
        match token {
            Some(t) if !self.fresh && state.security.links.verify_csrf(t, form, &self.nonce, state.clock.now()).is_ok() => Ok(()),
            _ => Err(PageError::stale_form()),
        }
    }

    /// The cookie to set with a page that shows a form, when the visitor has none yet.
    pub fn cookie(&self, state: &AppState) -> Option<Cookie<'static>> {
        self.fresh.then(|| cookie(state, FORM_COOKIE, self.nonce.clone()))
    }
}

/// When the visitor last opened a call's page (unix milliseconds, kept on their browser only, so
/// opening the page writes nothing on the server): the page marks what is new since.
pub const SEEN_COOKIE: &str = "fc_seen";

/// When this visitor last opened call `id`'s page, as their browser remembers it.
pub fn seen(req: &HttpRequest) -> Option<chrono::DateTime<chrono::Utc>> {
    let value = req.cookie(SEEN_COOKIE)?;
    chrono::DateTime::from_timestamp_millis(value.value().parse().ok()?)
}

/// The cookie that remembers the visitor opened call `id`'s page at `now` (its path is the
/// page's, so each call has its own).
pub fn seen_cookie(state: &AppState, id: i64, now: chrono::DateTime<chrono::Utc>) -> Cookie<'static> {
    let mut c = cookie(state, SEEN_COOKIE, now.timestamp_millis().to_string());
    c.set_path(format!("/calls/{id}"));
    c.set_max_age(actix_web::cookie::time::Duration::days(90));
    c
}

/// An HttpOnly, SameSite=Lax cookie for the whole site; Secure when the site is served over HTTPS.
pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.settings.http.public_url.starts_with("https://"))
        .finish()
}
