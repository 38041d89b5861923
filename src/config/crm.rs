//! `[crm]`: the connectors that pull a deal's story from the CRM (owner, contacts with roles,
//! line items, notes and activities). A connector is on when its credentials are set, from the
//! environment only; each one's API base URL is configurable (HubSpot's EU data centre, a
//! Pipedrive company domain, a Salesforce sandbox).

use serde::{Deserialize, Serialize};

use crate::domain::Currency;

/// A credential: printed as `<redacted>`, never its value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(pub String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Credential {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmSettings {
    /// How long a call's first email waits for the CRM's context before it goes with what is
    /// stored (the context that arrives later follows as a short update).
    pub enrich_wait_secs: u64,
    /// How long one request to a CRM may take.
    pub timeout_secs: u64,
    /// How long a connector waits in-process for a rate limit to pass (`Retry-After`) before it
    /// gives the job back to the engine to retry later.
    pub max_rate_wait_secs: u64,
    /// Minutes between the reconciler's questions to each CRM ("which deals were won since
    /// last time?"), for orders whose webhook never came; 0 turns the reconciler off.
    pub reconcile_interval_minutes: u32,
    /// How far back the reconciler's first question reaches, in hours (CRMs retry webhooks for
    /// about a day).
    pub reconcile_lookback_hours: u32,
    /// CRM role names (contact association labels, `OpportunityContactRole.Role`, a Pipedrive
    /// person's job title), compared without case, mapped to the recap's roles.
    pub roles: RoleMap,
    pub hubspot: HubspotConnector,
    pub pipedrive: PipedriveConnector,
    pub salesforce: SalesforceConnector,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings {
            enrich_wait_secs: 120,
            timeout_secs: 10,
            max_rate_wait_secs: 30,
            reconcile_interval_minutes: 15,
            reconcile_lookback_hours: 48,
            roles: RoleMap::default(),
            hubspot: HubspotConnector::default(),
            pipedrive: PipedriveConnector::default(),
            salesforce: SalesforceConnector::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleMap {
    pub decision_maker: Vec<String>,
    pub functional_decision_maker: Vec<String>,
}

impl Default for RoleMap {
    fn default() -> Self {
        RoleMap {
            decision_maker: ["decision maker", "economic buyer", "executive sponsor", "budget holder"].map(String::from).to_vec(),
            functional_decision_maker: ["functional decision maker", "technical buyer", "evaluator", "technical decision maker"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubspotConnector {
    /// `https://api.hubapi.com` (also serves EU portals), or another HubSpot API host.
    pub base_url: String,
    /// A private app's access token (secret: `FIRSTCALL__CRM__HUBSPOT__TOKEN`). Scopes:
    /// `crm.objects.deals.read`, `crm.objects.contacts.read`, `crm.objects.line_items.read`,
    /// `crm.objects.owners.read`, `crm.objects.quotes.read`, and `crm.objects.contacts.write` for
    /// write-back (the notes API is under the contacts scopes).
    pub token: Option<Credential>,
    /// Requests per second this process makes to HubSpot (private apps may make 100 per 10 s;
    /// leave room for the CRM's other integrations).
    pub requests_per_second: u32,
    /// A multi-line deal property holding `#need`/`#promise` lines, read besides the notes.
    pub notes_property: Option<String>,
}

impl Default for HubspotConnector {
    fn default() -> Self {
        HubspotConnector { base_url: "https://api.hubapi.com".into(), token: None, requests_per_second: 5, notes_property: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipedriveConnector {
    /// The company domain, `https://<company>.pipedrive.com`.
    pub base_url: Option<String>,
    /// The API token of the user firstcall acts as (secret: `FIRSTCALL__CRM__PIPEDRIVE__API_TOKEN`).
    pub api_token: Option<Credential>,
    pub requests_per_second: u32,
    /// The key of a deal custom field (a long text) holding `#need`/`#promise` lines.
    pub notes_field: Option<String>,
}

impl Default for PipedriveConnector {
    fn default() -> Self {
        PipedriveConnector { base_url: None, api_token: None, requests_per_second: 5, notes_field: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SalesforceConnector {
    /// The org's My Domain, `https://<mydomain>.my.salesforce.com` (a sandbox:
    /// `https://<mydomain>--<sandbox>.sandbox.my.salesforce.com`); the OAuth token endpoint is
    /// on it.
    pub base_url: Option<String>,
    /// The external client app's consumer key and secret, for the OAuth 2.0 client credentials
    /// flow (secrets: `FIRSTCALL__CRM__SALESFORCE__CLIENT_ID`, `…__CLIENT_SECRET`).
    pub client_id: Option<Credential>,
    pub client_secret: Option<Credential>,
    /// The REST API version, e.g. `v62.0`.
    pub api_version: String,
    pub requests_per_second: u32,
    /// An Opportunity long text field holding `#need`/`#promise` lines (`Description` works).
    pub notes_field: Option<String>,
    /// The org's currency when multi-currency is off: `CurrencyIsoCode` exists only in
    /// multi-currency orgs, so with this set firstcall does not ask for it and reads every
    /// price in this currency; unset, it reads each opportunity's `CurrencyIsoCode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<Currency>,
}

impl Default for SalesforceConnector {
    fn default() -> Self {
        SalesforceConnector {
            base_url: None,
            client_id: None,
            client_secret: None,
            api_version: "v62.0".into(),
            requests_per_second: 5,
            notes_field: None,
            default_currency: None,
        }
    }
}

impl CrmSettings {
    /// The secret keys of this section, for the rule that secrets come from the environment.
    pub fn credentials(&self) -> [(&'static str, Option<&Credential>); 4] {
        [
            ("crm.hubspot.token", self.hubspot.token.as_ref()),
            ("crm.pipedrive.api_token", self.pipedrive.api_token.as_ref()),
            ("crm.salesforce.client_id", self.salesforce.client_id.as_ref()),
            ("crm.salesforce.client_secret", self.salesforce.client_secret.as_ref()),
        ]
    }

    /// The first problem, as (key, reason).
    pub fn problem(&self) -> Option<(String, String)> {
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return Some(("timeout_secs".into(), "must be between 1 and 300".into()));
        }
        if self.reconcile_interval_minutes > 24 * 60 {
            return Some(("reconcile_interval_minutes".into(), "must be at most 1440 (a day); 0 turns the reconciler off".into()));
        }
        if self.reconcile_lookback_hours == 0 || self.reconcile_lookback_hours > 24 * 30 {
            return Some(("reconcile_lookback_hours".into(), "must be between 1 and 720 (30 days)".into()));
        }
        if self.enrich_wait_secs > 3600 {
            return Some(("enrich_wait_secs".into(), "must be at most 3600 (an hour)".into()));
        }
        for (key, rps) in [
            ("hubspot.requests_per_second", self.hubspot.requests_per_second),
            ("pipedrive.requests_per_second", self.pipedrive.requests_per_second),
            ("salesforce.requests_per_second", self.salesforce.requests_per_second),
        ] {
            if rps == 0 || rps > 1000 {
                return Some((key.into(), "must be between 1 and 1000".into()));
            }
        }
        let urls = [
            ("hubspot.base_url", Some(&self.hubspot.base_url)),
            ("pipedrive.base_url", self.pipedrive.base_url.as_ref()),
            ("salesforce.base_url", self.salesforce.base_url.as_ref()),
        ];
        for (key, url) in urls {
            if let Some(url) = url
                && let Err(reason) = check_base_url(url)
            {
                return Some((key.into(), reason));
            }
        }
        if self.pipedrive.api_token.is_some() && self.pipedrive.base_url.is_none() {
            return Some((
                "pipedrive.base_url".into(),
                "is required with an API token: your company domain, e.g. https://acme.pipedrive.com".into(),
            ));
        }
        let sf = &self.salesforce;
        if sf.client_id.is_some() != sf.client_secret.is_some() {
            return Some(("salesforce.client_secret".into(), "the client id and the client secret are set together".into()));
        }
        if sf.client_id.is_some() && sf.base_url.is_none() {
            return Some((
                "salesforce.base_url".into(),
                "is required with client credentials: your org's My Domain, e.g. https://acme.my.salesforce.com".into(),
            ));
        }
        if !sf.api_version.starts_with('v') || sf.api_version[1..].parse::<f32>().is_err() {
            return Some(("salesforce.api_version".into(), format!("'{}' is not a version such as v62.0", sf.api_version)));
        }
        None
    }
}

/// A base URL is `https://host[:port][/path]`; plain `http://` only for this machine (a local
/// proxy, or a test server), so a token never crosses the network in clear text.
fn check_base_url(url: &str) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        if !super::is_loopback_host(host) {
            return Err(format!("'{url}' is plain http; use https:// (plain http is for this machine only)"));
        }
        r
    } else {
        return Err(format!("'{url}' must start with https://"));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(format!("'{url}' is not a base URL such as https://api.hubapi.com"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_https_except_on_this_machine() {
        assert!(check_base_url("https://api.hubapi.com").is_ok());
        assert!(check_base_url("https://acme.my.salesforce.com/").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://localhost:9/x").is_ok());
        assert!(check_base_url("http://api.hubapi.com").unwrap_err().contains("plain http"));
        assert!(check_base_url("api.hubapi.com").unwrap_err().contains("https://"));
        assert!(check_base_url("https://api.hubapi.com?x=1").is_err());
    }

    #[test]
    fn a_half_set_salesforce_app_is_refused() {
        let mut s = CrmSettings::default();
        s.salesforce.client_id = Some(Credential("id".into()));
        assert_eq!(s.problem().unwrap().0, "salesforce.client_secret");
        s.salesforce.client_secret = Some(Credential("secret".into()));
        assert_eq!(s.problem().unwrap().0, "salesforce.base_url");
        s.salesforce.base_url = Some("https://acme.my.salesforce.com".into());
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn credentials_are_not_printed() {
        let mut s = CrmSettings::default();
        s.hubspot.token = Some(Credential("pat-na1-secret".into()));
        assert!(!format!("{s:?}").contains("pat-na1-secret"));
    }
}
