//! Pages for people, rendered on the server: the call page a rep reaches from the signed link
//! in an email (the recap, the due time in the rep's timezone, the emails sent so far, and the
//! form to mark the call done), the home page of a person signed in with a link from their
//! email (their calls and promises, and their team's), the dashboard of sales ops (calls with
//! overdue ones on top, dead jobs and failed emails to retry, the schedule preview), and the
//! sign-in pages.
//!
//! Templates are compiled in and escape every value for HTML; pages load no external assets
//! and run no scripts. A GET never changes anything; every form posts with a CSRF token bound
//! to a random value in a cookie. Bad input gets a page that says what happened, never a 500.

pub mod absences;
mod access;
pub mod call;
pub mod charts;
pub mod dashboard;
mod data;
mod error;
mod forms;
pub mod home;
pub mod insights;
pub mod login;
mod render;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

pub use error::PageError;

/// Form bodies: notes of up to 10,000 characters, percent-encoded, fit comfortably.
const FORM_LIMIT_BYTES: usize = 256 * 1024;

/// No scripts, no external anything; inline styles for the recap's email-style markup; forms
/// post only here; no framing.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    let form = || web::FormConfig::default().limit(FORM_LIMIT_BYTES).error_handler(error::form_error);
    cfg.service(web::resource("/").route(web::get().to(dashboard::show)))
        .service(web::resource("/home").route(web::get().to(home::show)))
        .service(web::resource("/insights").route(web::get().to(insights::show)))
        .service(web::resource("/absences").app_data(form()).route(web::get().to(absences::show)).route(web::post().to(absences::record)))
        .service(web::resource("/absences/{id}/remove").app_data(form()).route(web::post().to(absences::remove)))
        .service(web::resource("/calls/{id}").route(web::get().to(call::show)))
        .service(web::resource("/calls/{id}/done").app_data(form()).route(web::post().to(call::mark_done)))
        .service(web::resource("/calls/{id}/check-in").app_data(form()).route(web::post().to(call::check_in)))
        .service(web::resource("/calls/{id}/book").app_data(form()).route(web::post().to(call::book)))
        .service(web::resource("/calls/{id}/snooze").app_data(form()).route(web::post().to(call::snooze)))
        .service(web::resource("/calls/{id}/reassign").app_data(form()).route(web::post().to(call::reassign)))
        .service(web::resource("/calls/{id}/cancel").app_data(form()).route(web::post().to(call::cancel)))
        .service(web::resource("/calls/{id}/promises/{promise}").app_data(form()).route(web::post().to(call::mark_promise)))
        .service(web::resource("/login").app_data(form()).route(web::get().to(login::show)).route(web::post().to(login::submit)))
        .service(web::resource("/login/email").app_data(form()).route(web::post().to(login::ask_link)))
        .service(
            web::resource("/login/link").app_data(form()).route(web::get().to(login::show_link)).route(web::post().to(login::use_link)),
        )
        .service(web::resource("/logout").app_data(form()).route(web::post().to(login::logout)))
        .service(web::resource("/dashboard/jobs/{id}/retry").app_data(form()).route(web::post().to(dashboard::retry_job)))
        .service(web::resource("/dashboard/emails/{id}/retry").app_data(form()).route(web::post().to(dashboard::retry_email)))
        .service(web::resource("/dashboard/preview").app_data(form()).route(web::post().to(dashboard::preview_edit)));
}

/// The start of every HTML response: not cached (pages show live state and carry tokens), not
/// framed, no referrer (the call page's address holds its link token).
fn html(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        .insert_header((CONTENT_SECURITY_POLICY, CSP))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"));
    b
}

/// `303 See Other` to a path on this site: after a form, the browser GETs the result.
fn see_other(path: &str) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(StatusCode::SEE_OTHER);
    b.insert_header((LOCATION, path)).insert_header((CACHE_CONTROL, "no-store")).insert_header((REFERRER_POLICY, "no-referrer"));
    b
}

/// A form's or query string's fields, in order; duplicates are kept and the first one wins.
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn query(req: &HttpRequest) -> Result<Fields, PageError> {
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Fields(q.into_inner()))
            .map_err(|e| PageError::bad_request(format!("the address has a query string that cannot be read: {e}")))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value, trimmed, when it is not empty.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A path id: anything but a positive number names no page.
fn parse_id(raw: &str, what: &str) -> Result<i64, PageError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| PageError::not_found(format!("There is no {what} with this number.")))
}

/// A page with forms: sets the visitor's form cookie when they had none, so the CSRF tokens in
/// the page can be checked when a form comes back.
fn form_page(status: StatusCode, visitor: &access::Visitor, state: &crate::app::AppState, body: String) -> HttpResponse {
    let mut response = html(status);
    if let Some(c) = visitor.cookie(state) {
        response.cookie(c);
    }
    response.body(body)
}
