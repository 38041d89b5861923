//! `/absences`: who is out of office, when, and who covers; a form to record an absence and a
//! button to remove one (`workflow::absences`, as the API does). Sales ops see and record
//! everyone's; a rep their own (and the ones they cover), a manager also their team's. Needs a
//! sign-in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::access::{DASHBOARD_FORMS, Viewer, Visitor, viewer};
use super::render::{render, value};
use super::{Fields, PageError, form_page, parse_id, see_other};
use crate::app::AppState;
use crate::domain::EmailAddress;
use crate::http::reps::{AbsenceBody, absence_error, parse_absence};
use crate::mail::templates::local_date;
use crate::workflow::absences::{self, AbsenceError};

/// Absences listed, soonest first.
const LISTED: u64 = 200;

/// One absence as the page lists it.
#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    rep: String,
    delegate: String,
    days: String,
    reason: Option<String>,
    /// Under way today (on the rep's calendar).
    now: bool,
    /// Whether the visitor may remove it (not when they only cover).
    removable: bool,
}

/// The form as sent, and why it was refused.
#[derive(Debug, Default, Serialize)]
struct Sent {
    rep: String,
    first_day: String,
    last_day: String,
    delegate: String,
    reason: String,
    error: Option<String>,
}

/// `GET /absences`: absences that have not ended, and the form to record one.
#[utoipa::path(get, path = "/absences", tag = "pages",
    responses((status = 200, description = "Who is out of office and who covers", content_type = "text/html"), (status = 303, description = "Not logged in: to /login")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let Some(me) = viewer(&req, &state).await? else {
        return Ok(see_other("/login?next=/absences").finish());
    };
    // A person records their own absence unless they say otherwise.
    let rep = me.person().filter(|p| !p.sees_all()).map(|p| p.email.to_string()).unwrap_or_default();
    page(&req, &state, &me, StatusCode::OK, Sent { rep, ..Sent::default() }).await
}

async fn page(req: &HttpRequest, state: &AppState, me: &Viewer, status: StatusCode, sent: Sent) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let default_tz = state.config.settings.defaults.timezone;
    // Every rep's today is within a day of today in UTC; ended ones are dropped below.
    let listed = crate::reps::absences::upcoming(&state.db, now.date_naive() - chrono::TimeDelta::days(1), LISTED).await?;
    let people: Vec<EmailAddress> = listed.iter().flat_map(|a| [a.rep_email.clone(), a.delegate_email.clone()]).collect();
    let directory = crate::reps::recipients(&state.db, &people, default_tz).await?;
    let named = |e: &EmailAddress| match directory.get(e).and_then(|r| r.name.clone()) {
        Some(n) => format!("{n} ({e})"),
        None => e.to_string(),
    };
    let rows: Vec<Row> = listed
        .iter()
        .filter(|a| me.speaks_for(a.rep_email.as_str()) || me.person().is_some_and(|p| p.email == a.delegate_email))
        .filter_map(|a| {
            let today = now.with_timezone(&directory.get(&a.rep_email)?.timezone.0).date_naive();
            (a.last_day >= today).then(|| Row {
                id: a.id,
                rep: named(&a.rep_email),
                delegate: named(&a.delegate_email),
                days: if a.first_day == a.last_day {
                    local_date(a.first_day)
                } else {
                    format!("{} to {}", local_date(a.first_day), local_date(a.last_day))
                },
                reason: a.reason.clone(),
                now: a.includes(today),
                removable: me.speaks_for(a.rep_email.as_str()),
            })
        })
        .collect();
    let q = Fields::query(req)?;
    let notice = match q.get("done") {
        Some("recorded") => Some("The absence is recorded. Emails about the rep's calls go to who covers, the rep in copy."),
        Some("removed") => Some("The absence is removed. The rep gets their calls' emails again."),
        _ => None,
    };
    let visitor = Visitor::of(req);
    let body = render(
        "absences.html",
        minijinja::context! {
            signed_in => true,
            me => me.person().map(|p| p.label()),
            everyone => me.sees_all(),
            csrf => visitor.csrf(state, DASHBOARD_FORMS),
            rows => value(&rows),
            sent => value(&sent),
            notice,
            today => now.date_naive().format("%Y-%m-%d").to_string(),
        },
    )?;
    Ok(form_page(status, &visitor, state, body))
}

/// A form of this page: its sender must be signed in and post the dashboard's CSRF token.
async fn checked(req: &HttpRequest, state: &AppState, fields: &Fields) -> Result<Viewer, PageError> {
    let Some(me) = viewer(req, state).await? else {
        return Err(PageError::new(StatusCode::UNAUTHORIZED, "Please sign in", "Sign in, then try again.").with_login("/absences"));
    };
    Visitor::of(req).check(state, DASHBOARD_FORMS, fields.get("csrf"))?;
    Ok(me)
}

/// Why `me` may not record or remove `rep`'s absences, if they may not.
fn not_theirs(me: &Viewer, rep: &str) -> Option<String> {
    (!me.speaks_for(rep)).then(|| {
        format!("You are signed in as {}: you may record absences for yourself and the reps of your team, not for {rep}. Ask sales ops or their manager.", me.label())
    })
}

/// The label of a form field, as the page shows it.
fn label(field: &str) -> &str {
    match field {
        "rep" => "Rep",
        "first_day" => "First day away",
        "last_day" => "Last day away",
        "delegate" => "Who covers",
        "reason" => "Why",
        other => other,
    }
}

/// `POST /absences`: records an absence as `POST /api/v1/reps/{email}/absences` does; a form
/// that cannot be recorded comes back with what to change.
#[utoipa::path(post, path = "/absences", tag = "pages", request_body(content = super::forms::AbsenceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Recorded; back to the list"), (status = 401, description = "Not logged in", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html"), (status = 422, description = "The form, with what to change", content_type = "text/html")))]
pub async fn record(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let fields = Fields(form.into_inner());
    let me = checked(&req, &state, &fields).await?;
    let text = |name: &str| fields.get(name).unwrap_or_default().trim().to_string();
    let mut sent = Sent {
        rep: text("rep"),
        first_day: text("first_day"),
        last_day: text("last_day"),
        delegate: text("delegate"),
        reason: text("reason"),
        error: None,
    };
    let body = AbsenceBody {
        first_day: Some(sent.first_day.clone()),
        last_day: Some(sent.last_day.clone()),
        delegate: Some(sent.delegate.clone()),
        reason: Some(sent.reason.clone()),
    };
    let asked =
        EmailAddress::parse(&sent.rep).map_err(|e| crate::http::ApiError::invalid("rep", e.0)).and_then(|rep| parse_absence(rep, &body));
    if let Ok(ask) = &asked
        && let Some(why) = not_theirs(&me, ask.rep.as_str())
    {
        sent.error = Some(why);
        return page(&req, &state, &me, StatusCode::FORBIDDEN, sent).await;
    }
    let outcome = match asked {
        Ok(ask) => absences::record(&state.db, &state.first_call.get(), state.clock.now(), ask, &me.actor()).await.map(|_| ()),
        Err(e) => Err(AbsenceError::Invalid { field: "", reason: refused(&e) }),
    };
    match outcome {
        Ok(()) => {
            state.signals.jobs_scheduled();
            Ok(see_other("/absences?done=recorded#absences").finish())
        }
        Err(AbsenceError::Invalid { field, reason }) => {
            sent.error = Some(if field.is_empty() { reason } else { format!("{}: {reason}", label(field)) });
            page(&req, &state, &me, StatusCode::UNPROCESSABLE_ENTITY, sent).await
        }
        Err(AbsenceError::NotFound(reason)) => {
            sent.error = Some(format!("Rep: {reason}. Add them to the rep directory first."));
            page(&req, &state, &me, StatusCode::UNPROCESSABLE_ENTITY, sent).await
        }
        Err(e) => Err(PageError::from(absence_error(e))),
    }
}

/// A field the API refused, as the page says it.
fn refused(e: &crate::http::ApiError) -> String {
    match e.field.as_deref() {
        Some(f) => format!("{}: {}", label(f), e.message.strip_prefix(&format!("{f}: ")).unwrap_or(&e.message)),
        None => e.message.clone(),
    }
}

/// `POST /absences/{id}/remove`: removes an absence; the calls it moved go back to the rep.
#[utoipa::path(post, path = "/absences/{id}/remove", tag = "pages", params(("id" = String, Path)), request_body(content = super::forms::CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Removed; back to the list"), (status = 401, description = "Not logged in", content_type = "text/html"), (status = 403, description = "Bad CSRF token", content_type = "text/html"), (status = 404, description = "No such absence", content_type = "text/html"), (status = 415, description = "Not a form", content_type = "text/html")))]
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&path, "absence")?;
    let me = checked(&req, &state, &Fields(form.into_inner())).await?;
    let absence = crate::reps::absences::get(&state.db, id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no absence with this number; it may have been removed already."))?;
    if let Some(why) = not_theirs(&me, absence.rep_email.as_str()) {
        return Err(PageError::new(StatusCode::FORBIDDEN, "Not your team's absence", why).with_home());
    }
    absences::remove(&state.db, &state.first_call.get(), state.clock.now(), &absence.rep_email, id, &me.actor())
        .await
        .map_err(|e| PageError::from(absence_error(e)))?;
    state.signals.jobs_scheduled();
    Ok(see_other("/absences?done=removed#absences").finish())
}
