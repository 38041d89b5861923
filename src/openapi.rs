//! The OpenAPI document of the API and the pages, generated from the handlers' annotations so
//! it cannot drift from the code, and the route that serves it.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "firstcall", description = "Makes sure the first sales call after the order happens, on time, with the requirements-versus-commitments recap in hand."),
    paths(
        crate::http::health::healthz,
        crate::http::health::readyz,
        crate::http::ops::metrics,
        openapi,
        crate::http::ops::list_jobs,
        crate::http::ops::retry_job,
        crate::http::ops::list_emails,
        crate::http::ops::retry_email,
        crate::http::webhooks::generic_webhook,
        crate::http::webhooks::hubspot_webhook,
        crate::http::webhooks::pipedrive_webhook,
        crate::http::webhooks::salesforce_webhook,
        crate::http::webhooks::salesforce_webhook_with_secret,
        crate::http::events::get_event,
        crate::http::proposals::put_proposal,
        crate::http::proposals::get_proposal,
        crate::http::reps::put_rep,
        crate::http::reps::get_rep,
        crate::http::reps::list_absences,
        crate::http::reps::add_absence,
        crate::http::reps::remove_absence,
        crate::http::calls::list_calls,
        crate::http::calls::get_call,
        crate::http::calls::get_recap,
        crate::http::calls::complete_call,
        crate::http::calls::check_in,
        crate::http::controls::book,
        crate::http::controls::snooze,
        crate::http::controls::reassign,
        crate::http::controls::cancel,
        crate::http::promises::list_promises,
        crate::http::promises::mark_delivered,
        crate::http::promises::mark_slipped,
        crate::http::promises::mark_dropped,
        crate::pages::dashboard::show,
        crate::pages::insights::show,
        crate::pages::absences::show,
        crate::pages::absences::record,
        crate::pages::absences::remove,
        crate::pages::dashboard::retry_job,
        crate::pages::dashboard::retry_email,
        crate::pages::dashboard::preview_edit,
        crate::pages::call::show,
        crate::pages::call::mark_done,
        crate::pages::call::mark_promise,
        crate::pages::call::check_in,
        crate::pages::call::book,
        crate::pages::call::snooze,
        crate::pages::call::reassign,
        crate::pages::call::cancel,
        crate::pages::login::show,
        crate::pages::login::submit,
        crate::pages::login::ask_link,
        crate::pages::login::show_link,
        crate::pages::login::use_link,
        crate::pages::home::show,
        crate::pages::login::logout,
    ),
    modifiers(&Security),
    tags((name = "webhooks", description = "Order events from CRMs"), (name = "proposals", description = "Proposal data per deal"), (name = "reps", description = "The rep directory"),
        (name = "calls", description = "First calls"), (name = "promises", description = "What was promised to customers, followed after the first call"), (name = "operations", description = "Health, metrics, retries"),
        (name = "pages", description = "HTML pages for reps (call page) and sales ops (dashboard)"))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi));
}

/// This API, described as OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
