//! Who firstcall may email about a call: an address in the rep directory, one whose domain is in
//! `mail.allowed_recipient_domains` (exactly; a subdomain is another domain), or the sales-ops
//! inbox (`defaults.unassigned_email`). Webhooks name addresses nobody has checked (a Salesforce
//! outbound message carries no signature, and an org id is not a secret), so a call for any other
//! address goes to sales ops with the reason, and no email goes to an address this rule refuses.
//! Managers come from the directory and escalation contacts from the schedules: both were written
//! by people with access to firstcall, so escalations follow them as they are.

use crate::config::Config;
use crate::domain::EmailAddress;
use crate::reps::Recipient;

/// Whether firstcall may email `r` (the directory lookup of its address).
pub fn may_email(config: &Config, r: &Recipient) -> bool {
    r.known || config.settings.mail.allows_domain_of(&r.email) || r.email == config.settings.defaults.unassigned_email
}

/// Where an address came from, for the reason sales ops read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// The order's owner, as the CRM named it.
    Owner,
    /// The rep of the deal's newest proposal.
    ProposalRep,
    /// The call's rep, checked again when an email about the call is written.
    CallRep,
    /// A promise's owner (the rep, or who the commitment names).
    PromiseOwner,
}

/// Why a call (or one email) went to sales ops: `the owner address x@… is not in the rep
/// directory nor in mail.allowed_recipient_domains`. Templates print it after "because".
pub fn refusal(named: Named, email: &EmailAddress) -> String {
    let whose = match named {
        Named::Owner => "the owner address",
        Named::ProposalRep => "the proposal's rep address",
        Named::CallRep => "the call's rep address",
        Named::PromiseOwner => "the promise owner's address",
    };
    format!("{whose} {email} is not in the rep directory nor in mail.allowed_recipient_domains")
}

/// The rep a call goes to: `wanted` when firstcall may email them, else the sales-ops inbox and
/// the reason.
pub fn route(config: &Config, wanted: &Recipient, named: Named) -> (EmailAddress, Option<String>) {
    if may_email(config, wanted) {
        (wanted.email.clone(), None)
    } else {
        (config.settings.defaults.unassigned_email.clone(), Some(refusal(named, &wanted.email)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timezone;

    fn config(domains: &[&str]) -> Config {
        let source = crate::config::ConfigSource {
            dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            env_name: None,
            use_env: false,
        };
        let pairs = [
            ("mail.allowed_recipient_domains", serde_json::json!(domains)),
            ("defaults.unassigned_email", serde_json::json!("ops@seller.example")),
        ];
        source.load_with(source.figment().merge(Config::overrides(&pairs))).unwrap()
    }

    fn who(email: &str, known: bool) -> Recipient {
        Recipient { email: EmailAddress::parse(email).unwrap(), name: None, timezone: Timezone::default(), manager_email: None, known }
    }

    #[test]
    fn the_directory_allowed_domains_and_sales_ops_may_be_emailed_and_nobody_else() {
        let c = config(&["seller.example"]);
        assert!(may_email(&c, &who("pat@partner.example", true)), "in the directory");
        assert!(may_email(&c, &who("nia@seller.example", false)), "an allowed domain");
        assert!(may_email(&c, &who("ops@seller.example", false)), "sales ops");
        for outside in ["eve@evil.example", "sam@eu.seller.example", "x@seller.example.evil.example", "x@notseller.example"] {
            assert!(!may_email(&c, &who(outside, false)), "{outside}");
        }
        let nobody = config(&[]);
        assert!(!may_email(&nobody, &who("nia@seller.example", false)), "no domains: only the directory");
        assert!(may_email(&nobody, &who("ops@seller.example", false)), "sales ops always");
    }

    #[test]
    fn a_refused_address_routes_to_sales_ops_with_the_reason() {
        let c = config(&[]);
        let (to, why) = route(&c, &who("eve@evil.example", false), Named::Owner);
        assert_eq!(to.as_str(), "ops@seller.example");
        assert_eq!(
            why.as_deref(),
            Some("the owner address eve@evil.example is not in the rep directory nor in mail.allowed_recipient_domains")
        );
        assert_eq!(route(&c, &who("ana@seller.example", true), Named::Owner), (EmailAddress::parse("ana@seller.example").unwrap(), None));
    }
}
