//! HubSpot connector (in progress).
use futures_util::future::BoxFuture;

use super::{Connector, CrmError, DealContext, Http};
use crate::config::CrmSettings;
use crate::config::crm::HubspotConnector;
use crate::domain::Source;

pub struct HubSpot {
    http: Http,
}

impl HubSpot {
    pub fn new(c: &HubspotConnector, s: &CrmSettings) -> Result<HubSpot, String> {
        Ok(HubSpot { http: super::http_for("hubspot", &c.base_url, c.requests_per_second, s)? })
    }
}

impl Connector for HubSpot {
    fn source(&self) -> Source {
        Source::Hubspot
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(async move { Err(CrmError::Invalid(format!("hubspot deal {deal_id}: connector in progress"))) })
    }
}
