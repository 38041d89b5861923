//! The CRM side: connectors that read a won deal's story from HubSpot, Pipedrive and
//! Salesforce over their REST APIs ([`Connector`]), the shape they read it into
//! ([`DealContext`]) and its translation into the proposal model, and the markup reps type in
//! notes to state requirements and commitments ([`markup`]: `#need sso must by 2027-01-15:
//! Single sign-on through Okta`). Connectors do I/O and nothing else: the engine job that calls
//! them and stores what they read is the workflow's (`workflow::enrich`).

pub mod client;
pub mod context;
pub mod html;
pub mod hubspot;
pub mod markup;
pub mod pipedrive;
pub mod salesforce;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

pub use client::{CrmError, Http};
pub use context::{CallRecord, CrmActivity, CrmActivityKind, CrmContact, CrmLineItem, DealContext, WonDeal};
pub use html::text_of_html;
pub use markup::{Items, Note, Unreadable, read_notes};

use crate::config::CrmSettings;
use crate::domain::Source;

/// One CRM's REST API, as firstcall uses it.
pub trait Connector: Send + Sync {
    /// The CRM this connector reads (the webhook source of its deals).
    fn source(&self) -> Source;
    /// Its HTTP client (base URL, pace, counters).
    fn http(&self) -> &Http;
    /// Reads what the recap needs about deal `deal_id`: owner, contacts with roles, line items,
    /// notes and activities, following every page.
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>>;
    /// The deals won and last modified at or after `since`, oldest modification first, following
    /// every page up to `max` deals (the reconciler asks again from the last one's time).
    fn won_since<'a>(&'a self, since: DateTime<Utc>, max: usize) -> BoxFuture<'a, Result<Vec<WonDeal>, CrmError>>;
    /// Records the call's outcome on deal `deal_id` where the rep works (a note or completed
    /// task on the deal, with `record.subject()` and `record.text()`).
    fn record_call<'a>(&'a self, deal_id: &'a str, record: &'a CallRecord) -> BoxFuture<'a, Result<(), CrmError>>;
}

/// The connectors that are on (their credentials are set), by CRM.
#[derive(Clone, Default)]
pub struct Connectors(HashMap<Source, Arc<dyn Connector>>);

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Connectors {
    /// The connectors `[crm]` turns on (HubSpot also needs the deal stages that mean won,
    /// `webhooks.hubspot.closed_won_stages`).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Connectors, String> {
        let s = &settings.crm;
        let mut out = Connectors::default();
        if s.hubspot.token.is_some() {
            let won = &settings.webhooks.hubspot.closed_won_stages;
            out.insert(Arc::new(hubspot::HubSpot::new(&s.hubspot, s)?.with_won_stages(won)));
        }
        if s.pipedrive.api_token.is_some() {
            out.insert(Arc::new(pipedrive::Pipedrive::new(&s.pipedrive, s)?));
        }
        if s.salesforce.client_id.is_some() {
            out.insert(Arc::new(salesforce::Salesforce::new(&s.salesforce, s)?));
        }
        Ok(out)
    }

    pub fn insert(&mut self, c: Arc<dyn Connector>) {
        self.0.insert(c.source(), c);
    }

    pub fn get(&self, source: Source) -> Option<&Arc<dyn Connector>> {
        self.0.get(&source)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn sources(&self) -> impl Iterator<Item = Source> + '_ {
        self.0.keys().copied()
    }
}

/// The HTTP client every connector builds from its section of `[crm]`.
pub fn http_for(name: &'static str, base_url: &str, requests_per_second: u32, s: &CrmSettings) -> Result<Http, String> {
    Http::new(name, base_url, requests_per_second, Duration::from_secs(s.timeout_secs.max(1)), Duration::from_secs(s.max_rate_wait_secs))
}
