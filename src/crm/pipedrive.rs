//! Pipedrive connector (in progress).
use futures_util::future::BoxFuture;

use super::{Connector, CrmError, DealContext, Http};
use crate::config::CrmSettings;
use crate::config::crm::PipedriveConnector;
use crate::domain::Source;

pub struct Pipedrive {
    http: Http,
}

impl Pipedrive {
    pub fn new(c: &PipedriveConnector, s: &CrmSettings) -> Result<Pipedrive, String> {
        Ok(Pipedrive { http: super::http_for("pipedrive", c.base_url.as_deref().unwrap_or_default(), c.requests_per_second, s)? })
    }
}

impl Connector for Pipedrive {
    fn source(&self) -> Source {
        Source::Pipedrive
    }
    fn http(&self) -> &Http {
        &self.http
    }
    fn fetch_deal<'a>(&'a self, deal_id: &'a str) -> BoxFuture<'a, Result<DealContext, CrmError>> {
        Box::pin(async move { Err(CrmError::Invalid(format!("pipedrive deal {deal_id}: connector in progress"))) })
    }
}
