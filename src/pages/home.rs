//! `/home`, a signed-in person's own page: their open calls (and those they cover for an absent
//! colleague) and their open promises, the most urgent first; for a manager, also their team's,
//! down the directory's manager chain. Someone logged in with an API token goes to the
//! dashboard.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::access::{DASHBOARD_FORMS, Viewer, Visitor, viewer};
use super::data::home;
use super::render::{render, value};
use super::{PageError, form_page, see_other};
use crate::app::AppState;

/// `GET /home`.
#[utoipa::path(get, path = "/home", tag = "pages",
    responses((status = 200, description = "The person's open calls and promises (and their team's)", content_type = "text/html"), (status = 303, description = "Not signed in: to /login; logged in with an API token: to the dashboard")))]
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let person = match viewer(&req, &state).await? {
        None => return Ok(see_other("/login?next=/home").finish()),
        Some(Viewer::Admin) => return Ok(see_other("/").finish()),
        Some(Viewer::Person(p)) => p,
    };
    let now = state.clock.now();
    let listed = home(&state, &person, now).await?;
    let visitor = Visitor::of(&req);
    let body = render(
        "home.html",
        minijinja::context! {
            signed_in => true,
            me => person.label(),
            csrf => visitor.csrf(&state, DASHBOARD_FORMS),
            name => person.name.clone().unwrap_or_else(|| person.email.to_string()),
            manager => !person.team.is_empty(),
            sales_ops => person.sees_all(),
            home => value(&listed),
        },
    )?;
    Ok(form_page(StatusCode::OK, &visitor, &state, body))
}
