//! The dashboard, `/`, for sales ops: calls with open ones first and overdue ones on top,
//! counts per state, filters by rep and state, links to each call's page, dead jobs and failed
//! emails with a retry button, and the schedule preview `firstcall config check` prints.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use super::access::{DASHBOARD_FORMS, Viewer, Visitor, sales_ops, viewer};
use super::render::{render, value};
use super::{Fields, PageError, form_page, parse_id, see_other};
use crate::app::AppState;
use crate::domain::{EmailAddress, Timezone};
use crate::reps::Recipient;
use crate::workflow::CallState;

/// Calls per page; the counts cover all of them.
const CALLS_PER_PAGE: u64 = 100;
/// The state filter's choices: `open` (the default) is scheduled, due or overdue; `closed` is
/// done or cancelled.
const STATE_CHOICES: [(&str, &str); 8] = [
    ("open", "Open"),
    ("closed", "Closed"),
    ("all", "Every state"),
    ("scheduled", "Scheduled"),
    ("due", "Due"),
    ("overdue", "Overdue"),
    ("done", "Done"),
    ("cancelled", "Cancelled"),
];
/// Open calls a page examines when previewing an edit (the command line examines all).
const PREVIEW_EXAMINES: usize = 10_000;
/// Reminders listed per schedule in the preview, as `config check` does by default.
const PREVIEW_REMINDERS: usize = 5;

/// `GET /?state=open&rep=ana@…&cursor=…&at=2026-11-27T16:30&tz=America/New_York`. Open calls
/// by default, a page at a time (the "Next page" link carries the cursor). Needs a dashboard
/// login (or an API bearer token); without one, the login form.
#[utoipa::path(get, path = "/", tag = "pages", params(("state" = Option<String>, Query, description = "open (default), closed, all, or states"), ("rep" = Option<String>, Query), ("cursor" = Option<String>, Query, description = "where the page starts (the Next page link)"), ("at" = Option<String>, Query), ("tz" = Option<String>, Query)),
    responses((status = 200, description = "The dashboard", content_type = "text/html"), (status = 303, description = "Not signed in: to /login; a rep or manager: to their home page"), (status = 400, description = "Bad filter", content_type = "text/html")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let me = match viewer(&req, &state).await? {
        None => return Ok(see_other("/login").finish()),
        Some(v) if !v.sees_all() => return Ok(see_other("/home").finish()),
        Some(v) => v,
    };
    page(&req, &state, EditPreview::default(), &me).await
}

/// An edit of the schedules pasted into the dashboard, and what it would change against what
/// runs here (or why it cannot be read).
#[derive(Debug, Default, serde::Serialize)]
struct EditPreview {
    text: String,
    report: Option<String>,
    error: Option<String>,
}

/// `POST /dashboard/preview`: what an edit of the schedules (pasted as written in
/// `config/default.toml`) would change against the configuration in force here: each changed key,
/// and the open calls whose due time, next reminder or next escalation would move. Changes
/// nothing.
#[utoipa::path(post, path = "/dashboard/preview", tag = "pages", request_body(content = super::forms::EditPreviewForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The dashboard with the edit's preview", content_type = "text/html"), (status = 400, description = "Unreadable form or schedules", content_type = "text/html"), (status = 401, description = "Not logged in", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html")))]
pub async fn preview_edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let fields = Fields(form.into_inner());
    let me = ops_form(&req, &state, &fields).await?;
    let text = fields.get("schedules").unwrap_or_default().to_string();
    let running = state.first_call.get();
    let edit = match running.config.with_schedules_from(&text) {
        Ok(edited) => {
            let before = running.config.schedule_content();
            let mut report = crate::workflow::preview::schedule_changes_text(&before, &edited);
            report.push_str(
                &crate::workflow::preview::moves_text(
                    &state.db,
                    &before,
                    &edited,
                    state.clock.now(),
                    crate::workflow::preview::MOVES_LISTED,
                    Some(PREVIEW_EXAMINES),
                )
                .await?,
            );
            EditPreview { text, report: Some(report), error: None }
        }
        Err(e) => EditPreview { text, report: None, error: Some(e.to_string()) },
    };
    page(&req, &state, edit, &me).await
}

async fn page(req: &HttpRequest, state: &AppState, edit: EditPreview, me: &Viewer) -> Result<HttpResponse, PageError> {
    let q = Fields::query(req)?;
    let mut status = if edit.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let parsed = crate::http::calls::parse_states(q.non_empty("state")).and_then(|states| {
        let rep_filter = crate::http::calls::parse_rep(q.non_empty("rep"))?;
        let after = q.non_empty("cursor").map(|c| crate::http::cursor::decode("cursor", c)).transpose()?;
        Ok((states, rep_filter, after))
    });
    let ((states, rep_filter, after), filter_error) = match parsed {
        Ok(p) => (p, None),
        Err(e) => ((CallState::OPEN.to_vec(), None, None), Some(e.message)),
    };
    let rep = q.non_empty("rep");
    // Independent reads, each on a connection of its own (one after the other on SQLite).
    let (board, configuration, inbox, promises) = tokio::try_join!(
        super::data::board(state, &states, rep_filter.as_ref(), after, CALLS_PER_PAGE),
        super::data::configuration(state),
        super::data::inbox(state),
        super::data::promises_board(state, state.clock.now())
    )?;
    let state_filter = q.non_empty("state").unwrap_or("open");
    // Query strings of the list's links (every value escaped, so no '/' or '&' of its own).
    let list_query = |states: &str, cursor: Option<String>| {
        let mut query = format!("state={}", query_escape(states));
        if let Some(r) = rep {
            query.push_str(&format!("&rep={}", query_escape(r)));
        }
        if let Some(c) = cursor {
            query.push_str(&format!("&cursor={}", query_escape(&c)));
        }
        query
    };
    let links = minijinja::context! {
        next => board.next.map(|p| list_query(state_filter, Some(crate::http::cursor::encode(p)))),
        first => after.map(|_| list_query(state_filter, None)),
        closed => (state_filter == "open").then(|| list_query("closed", None)),
    };

    let now = state.clock.now();
    let default_tz = state.config.settings.defaults.timezone;
    let who = q.non_empty("who");
    let previewed = match preview_rep(state, who).await? {
        Ok(rep) => {
            let tz_field = rep.as_ref().map(|r| r.timezone.name()).or(q.non_empty("tz"));
            preview_at(q.non_empty("at"), tz_field, default_tz, now).map(|(at, tz)| (at, tz, rep))
        }
        Err(e) => Err(e),
    };
    let (preview, preview_error, at_input, tz_input) = match previewed {
        Ok((at, tz, rep)) => {
            let (note, tz) = match &rep {
                Some(rep) => covering_note(state, rep, at, tz).await?,
                None => (String::new(), tz),
            };
            let text = note + &crate::workflow::preview::render(&state.first_call.get().config, at, tz, PREVIEW_REMINDERS);
            let rep_tz = rep.map_or(tz, |r| r.timezone);
            (Some(text), None, at.with_timezone(&rep_tz.0).format("%Y-%m-%dT%H:%M").to_string(), rep_tz.name().to_string())
        }
        Err(e) => (None, Some(e), q.get("at").unwrap_or_default().to_string(), q.get("tz").unwrap_or_default().to_string()),
    };
    if filter_error.is_some() || preview_error.is_some() {
        status = StatusCode::BAD_REQUEST;
    }
    let notice = match q.get("retried") {
        Some("job") => Some("The job is queued again and runs now."),
        Some("email") => Some("The email is queued again and goes out now."),
        _ => None,
    };
    let visitor = Visitor::of(req);
    let body = render(
        "dashboard.html",
        minijinja::context! {
            board => value(&board),
            signed_in => true,
            me => me.person().map(|p| p.label()),
            csrf => visitor.csrf(state, DASHBOARD_FORMS),
            filter => minijinja::context! { state => state_filter, rep => rep.unwrap_or_default(), error => filter_error },
            state_choices => STATE_CHOICES,
            preview => minijinja::context! { text => preview, error => preview_error, at => at_input, tz => tz_input, who => who.unwrap_or_default() },
            notice,
            links,
            configuration => value(&configuration),
            inbox => value(&inbox),
            promises => value(&promises),
            edit => value(&edit),
        },
    )?;
    Ok(form_page(status, &visitor, state, body))
}

/// `value` for a URL's query string: everything but unreserved characters percent-encoded.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The rep the preview is for, when one is named: they must be in the rep directory.
async fn preview_rep(state: &AppState, who: Option<&str>) -> Result<Result<Option<Recipient>, String>, PageError> {
    let Some(who) = who else { return Ok(Ok(None)) };
    let email = match EmailAddress::parse(who) {
        Ok(e) => e,
        Err(e) => return Ok(Err(format!("Rep: {}", e.0))),
    };
    let rep = crate::reps::recipient(&state.db, &email, state.config.settings.defaults.timezone).await?;
    Ok(if rep.known { Ok(Some(rep)) } else { Err(format!("Rep: {email} is not in the rep directory")) })
}

/// Whose clock the preview's times are on for `rep` ordering at `at`: theirs, or while they are
/// out of office, who covers for them; and the line that says so.
async fn covering_note(state: &AppState, rep: &Recipient, at: DateTime<Utc>, tz: Timezone) -> Result<(String, Timezone), PageError> {
    let who = |r: &Recipient| match &r.name {
        Some(n) => format!("{n} ({})", r.email),
        None => r.email.to_string(),
    };
    Ok(match crate::reps::absences::cover(&state.db, rep, at, state.config.settings.defaults.timezone).await? {
        Some(c) => (
            format!(
                "{} is out of office then (until {}): {} covers, so the times below are on their clock ({}).\n\n",
                who(rep),
                crate::mail::templates::local_date(c.absence.last_day),
                who(&c.delegate),
                c.delegate.timezone
            ),
            c.delegate.timezone,
        ),
        None => (format!("{} is in then: the times below are on their clock ({tz}).\n\n", who(rep)), tz),
    })
}

/// The preview's order time and timezone: `at` as RFC 3339 or as a local time in `tz` (what a
/// `datetime-local` field sends); defaults now and `defaults.timezone`.
fn preview_at(at: Option<&str>, tz: Option<&str>, default_tz: Timezone, now: DateTime<Utc>) -> Result<(DateTime<Utc>, Timezone), String> {
    let tz = match tz {
        Some(z) => Timezone::parse(z).map_err(|e| format!("Timezone: {e}"))?,
        None => default_tz,
    };
    let Some(at) = at else { return Ok((now, tz)) };
    if let Ok(t) = DateTime::parse_from_rfc3339(at) {
        return Ok((t.with_timezone(&Utc), tz));
    }
    let local = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("Order time: '{}' is not a time such as 2026-11-27T16:30", crate::domain::printable(at)))?;
    let t =
        tz.0.from_local_datetime(&local)
            .earliest()
            .ok_or_else(|| format!("Order time: {local} does not exist in {tz} (the clocks skip it)"))?;
    Ok((t.with_timezone(&Utc), tz))
}

/// A dashboard form's sender must be logged in and post the dashboard's CSRF token.
async fn ops_form(req: &HttpRequest, state: &AppState, fields: &Fields) -> Result<Viewer, PageError> {
    let viewer = sales_ops(req, state, "/").await?;
    Visitor::of(req).check(state, DASHBOARD_FORMS, fields.get("csrf"))?;
    Ok(viewer)
}

/// `POST /dashboard/jobs/{id}/retry`: a dead timer runs again now, with fresh attempts.
#[utoipa::path(post, path = "/dashboard/jobs/{id}/retry", tag = "pages", params(("id" = String, Path)), request_body(content = super::forms::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Retried; back to the dashboard"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 401, description = "Not logged in", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 404, description = "No such dead job", content_type = "text/html"), (status = 409, description = "A job of its kind is already pending", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html")))]
pub async fn retry_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "job")?;
    ops_form(&req, &state, &Fields(form.into_inner())).await?;
    match crate::engine::retry_dead(&state.db, id, state.clock.now()).await? {
        crate::engine::Retry::Retried => {}
        crate::engine::Retry::NotDead => {
            return Err(PageError::not_found("No dead job has this number; it may have been retried already."));
        }
        crate::engine::Retry::KindPending => {
            return Err(PageError::conflict("This job is not retried: a job of its kind for the same call is already pending."));
        }
    }
    state.signals.jobs_scheduled();
    Ok(see_other("/?retried=job#ops").finish())
}

/// `POST /dashboard/emails/{id}/retry`: a failed email is queued again, due now.
#[utoipa::path(post, path = "/dashboard/emails/{id}/retry", tag = "pages", params(("id" = String, Path)), request_body(content = super::forms::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Retried; back to the dashboard"), (status = 400, description = "Unreadable form", content_type = "text/html"), (status = 401, description = "Not logged in", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 404, description = "No such failed email", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html")))]
pub async fn retry_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "email")?;
    ops_form(&req, &state, &Fields(form.into_inner())).await?;
    if !crate::mail::outbox::retry_failed(&state.db, id, state.clock.now()).await? {
        return Err(PageError::not_found("No failed email has this number; it may have been retried already."));
    }
    state.signals.mailer.notify_one();
    Ok(see_other("/?retried=email#ops").finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> Timezone {
        Timezone::parse(name).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn query_values_are_escaped_for_links() {
        assert_eq!(query_escape("ana+ops@seller.example"), "ana%2Bops%40seller.example");
        assert_eq!(query_escape("due,overdue"), "due%2Coverdue");
        assert_eq!(query_escape("eyJh-_"), "eyJh-_");
        assert_eq!(query_escape("a&b=c d"), "a%26b%3Dc%20d");
    }

    #[test]
    fn preview_times_are_read_in_the_chosen_zone() {
        let now = utc("2026-11-23T09:00:00Z");
        assert_eq!(preview_at(None, None, tz("UTC"), now), Ok((now, tz("UTC"))));
        let ny = tz("America/New_York");
        assert_eq!(preview_at(Some("2026-11-27T16:30"), Some("America/New_York"), tz("UTC"), now), Ok((utc("2026-11-27T21:30:00Z"), ny)));
        assert_eq!(
            preview_at(Some("2026-11-27T16:30:00Z"), Some("America/New_York"), tz("UTC"), now),
            Ok((utc("2026-11-27T16:30:00Z"), ny))
        );
        assert!(preview_at(Some("friday"), None, tz("UTC"), now).unwrap_err().contains("'friday' is not a time"));
        assert!(preview_at(None, Some("Mars/Olympus"), tz("UTC"), now).unwrap_err().starts_with("Timezone:"));
        // 02:30 on the spring-forward night does not exist in New York.
        assert!(preview_at(Some("2026-03-08T02:30"), Some("America/New_York"), tz("UTC"), now).unwrap_err().contains("does not exist"));
    }
}
