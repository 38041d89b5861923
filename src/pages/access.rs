//! Who may see and change what on the pages: a rep holding a call's signed link sees and marks
//! that call; a person signed in sees what their role allows ([`crate::people`]: a rep their own
//! calls, a manager their team's, sales ops all); someone logged in with an API token (or
//! sending one) sees every call, as sales ops do. Forms carry a CSRF token bound to a random
//! value in the `firstcall_form` cookie, which the page that shows the form sets.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use actix_web::http::StatusCode;
use sea_orm::EntityTrait;

use super::PageError;
use crate::app::AppState;
use crate::http::auth::Credential;
use crate::people::Person;

/// The CSRF "call id" of the dashboard's forms (retries, logout); real calls are numbered from 1.
pub const DASHBOARD_FORMS: i64 = 0;
/// The CSRF "call id" of the login form.
pub const LOGIN_FORM: i64 = -1;

pub const FORM_COOKIE: &str = "firstcall_form";

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Logged in with an API token, or sending one: sees everything, as sales ops do.
    Admin,
    Person(Person),
}

impl Viewer {
    /// For the audit trail: the person's address, or `dashboard` for a token's session.
    pub fn actor(&self) -> String {
        match self {
            Viewer::Admin => "dashboard".into(),
            Viewer::Person(p) => p.actor(),
        }
    }

    /// In words, for emails: "Ana Ávila (manager)", "sales ops (dashboard)".
    pub fn label(&self) -> String {
        match self {
            Viewer::Admin => "sales ops (dashboard)".into(),
            Viewer::Person(p) => p.label(),
        }
    }

    /// Sales ops (or a token's session): every call, retries, the schedule preview.
    pub fn sees_all(&self) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::Person(p) => p.sees_all(),
        }
    }

    /// May hand `rep`'s calls to someone else, or cancel them.
    pub fn leads(&self, rep: &str) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::Person(p) => p.leads(rep),
        }
    }

    /// May record and remove `rep`'s absences.
    pub fn speaks_for(&self, rep: &str) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::Person(p) => p.speaks_for(rep),
        }
    }

    pub fn person(&self) -> Option<&Person> {
        match self {
            Viewer::Admin => None,
            Viewer::Person(p) => Some(p),
        }
    }
}

/// Who is signed in, if anyone: a token (bearer, or its session) or a person whose address may
/// still sign in. A database that cannot be asked is an error (503), not a visitor to send to
/// the login form.
pub async fn viewer(req: &HttpRequest, state: &AppState) -> Result<Option<Viewer>, PageError> {
    match crate::http::auth::credential(req).await {
        Ok(Credential::Bearer | Credential::TokenSession) => Ok(Some(Viewer::Admin)),
        Ok(Credential::Person(email)) => {
            Ok(crate::people::resolve(&state.db, &email, &state.config.settings.sign_in).await?.map(Viewer::Person))
        }
        Err(e) if e.status.is_server_error() => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// For sales ops' pages and forms: the viewer, when they see everything. Nobody signed in: 401
/// with the way to sign in (back to `back`); a rep or manager: 403 saying so.
pub async fn sales_ops(req: &HttpRequest, state: &AppState, back: &str) -> Result<Viewer, PageError> {
    match viewer(req, state).await? {
        Some(v) if v.sees_all() => Ok(v),
        Some(v) => Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Sales ops only",
            format!("You are signed in as {}. This page is for sales ops; your calls and promises are on your home page.", v.label()),
        )
        .with_home()),
        None => Err(PageError::new(StatusCode::UNAUTHORIZED, "Please sign in", "Sign in, then try again.").with_login(back)),
    }
}

/// How a visitor reached a call page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// With the signed link from an email (the token travels with the form).
    Link(String),
    /// Signed in, and allowed to see the call.
    Signed(Viewer),
}

impl Access {
    /// For the audit trail.
    pub fn actor(&self) -> String {
        match self {
            Access::Link(_) => "rep".into(),
            Access::Signed(v) => v.actor(),
        }
    }

    /// Where the call page is for this visitor.
    pub fn call_path(&self, id: i64) -> String {
        match self {
            Access::Link(t) => format!("/calls/{id}?t={t}"),
            Access::Signed(_) => format!("/calls/{id}"),
        }
    }

    pub fn link_token(&self) -> Option<&str> {
        match self {
            Access::Link(t) => Some(t),
            Access::Signed(_) => None,
        }
    }

    pub fn viewer(&self) -> Option<&Viewer> {
        match self {
            Access::Link(_) => None,
            Access::Signed(v) => Some(v),
        }
    }
}

/// May this visitor see call `id`? Someone signed in whose role covers the call (so what they do
/// is recorded under their name), else a valid link token for it. Someone signed in whom the
/// call is not for, without a link, gets 403 saying so; a bad link with nobody signed in is
/// refused with the link's reason (expired: 410, otherwise 403).
pub async fn call_access(req: &HttpRequest, state: &AppState, id: i64, token: Option<&str>) -> Result<Access, PageError> {
    let mut refused = None;
    if let Some(v) = viewer(req, state).await? {
        match sees_call(state, &v, id).await? {
            Some(true) => return Ok(Access::Signed(v)),
            Some(false) => {
                refused = Some(
                    PageError::new(
                        StatusCode::FORBIDDEN,
                        "Not your call",
                        format!(
                            "You are signed in as {}. This call belongs to a rep outside your team, so it is not shown. Ask sales ops if it should be yours.",
                            v.label()
                        ),
                    )
                    .with_home(),
                )
            }
            None => return Err(PageError::not_found("There is no call with this number.")),
        }
    }
    let token = token.map(str::trim).filter(|t| !t.is_empty());
    let verdict = token.map(|t| state.security.links.verify(t, id, state.clock.now()));
    if let (Some(t), Some(Ok(()))) = (token, &verdict) {
        return Ok(Access::Link(t.to_string()));
    }
    match (refused, verdict) {
        (Some(e), _) => Err(e),
        (None, Some(Err(e))) => Err(PageError::link(&e, id)),
        (None, _) => Err(PageError::needs_link(id)),
    }
}

/// Whether `viewer` may see call `id` (`None`: there is no such call): sales ops any; a person
/// the calls of their own and their team's reps, those they cover, and those with a promise
/// they or their team owe.
async fn sees_call(state: &AppState, viewer: &Viewer, id: i64) -> Result<Option<bool>, PageError> {
    use entity::promises;
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
    let Some(call) = entity::calls::Entity::find_by_id(id).one(&state.db).await? else { return Ok(None) };
    let person = match viewer {
        Viewer::Admin => return Ok(Some(true)),
        Viewer::Person(p) if p.sees_all() || p.may_see(&call.rep_email, call.covered_by.as_deref()) => return Ok(Some(true)),
        Viewer::Person(p) => p,
    };
    let owners: Vec<String> = person.team.iter().cloned().chain([person.email.to_string()]).collect();
    let owed = promises::Entity::find()
        .filter(promises::Column::CallId.eq(id))
        .filter(promises::Column::OwnerEmail.is_in(owners))
        .count(&state.db)
        .await?;
    Ok(Some(owed > 0))
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
