//! Salesforce connector (in progress).
use futures_util::future::BoxFuture;

use super::{Connector, CrmError, DealContext, Http};
use crate::config::CrmSettings;
use crate::config::crm::SalesforceConnector;
use crate::domain::Source;

pub struct Salesforce {
    http: Http,
}

impl Salesforce {
    pub fn new(c: &SalesforceConnector, s: &CrmSettings) -> Result<Salesforce, String> {
        Ok(Salesforce { http: super::http_for("salesforce", c.base_url.as_deref().unwrap_or_default(), c.requests_per_second, s)? })
    }
}

impl Connector for Salesforce {
    fn source(&self) -> Source {
        Source::Salesforce
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(async move { Err(CrmError::Invalid(format!("salesforce opportunity {deal_id}: connector in progress"))) })
    }
}
