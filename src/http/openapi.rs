//! The OpenAPI document, generated from the handlers' annotations so it cannot drift from the
//! code.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "firstcall", description = "Makes sure the first sales call after the order happens, on time, with the requirements-versus-commitments recap in hand."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::ops::metrics,
        super::ops::openapi,
        super::ops::list_jobs,
        super::ops::retry_job,
        super::ops::list_emails,
        super::ops::retry_email,
        super::webhooks::generic_webhook,
        super::webhooks::hubspot_webhook,
        super::webhooks::pipedrive_webhook,
        super::webhooks::salesforce_webhook,
        super::proposals::put_proposal,
        super::proposals::get_proposal,
        super::reps::put_rep,
        super::reps::get_rep,
        super::calls::list_calls,
        super::calls::get_call,
        super::calls::get_recap,
        super::calls::complete_call,
        crate::pages::dashboard::show,
        crate::pages::dashboard::retry_job,
        crate::pages::dashboard::retry_email,
        crate::pages::call::show,
        crate::pages::call::mark_done,
        crate::pages::login::show,
        crate::pages::login::submit,
        crate::pages::login::logout,
    ),
    modifiers(&Security),
    tags((name = "webhooks", description = "Order events from CRMs"), (name = "proposals", description = "Proposal data per deal"), (name = "reps", description = "The rep directory"),
        (name = "calls", description = "First calls"), (name = "operations", description = "Health, metrics, retries"),
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
