//! A deal as a connector reads it from the CRM ([`DealContext`], the same shape for every CRM),
//! and its translation into the proposal model the recap reads ([`DealContext::to_proposal`]):
//! the owner becomes the rep, CRM role names become the recap's roles through `[crm.roles]`,
//! line items keep their prices, notes and activities become the buying process, and the
//! `#need`/`#promise` lines of notes (and of the deal field named in config) become
//! requirements and commitments. Pure.

use chrono::{DateTime, Utc};

use super::markup::{self, Note};
use crate::config::crm::RoleMap;
use crate::domain::{Currency, EmailAddress, Money, OrderedItem, Source, printable_up_to};
use crate::proposals::model::{Account, Activity, ActivityKind, Contact, ContactRole, LineItem, Proposal, Unreadable};

/// What a connector read about one deal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DealContext {
    pub deal_name: Option<String>,
    /// The customer's company (HubSpot's associated company, Salesforce `Account.Name`,
    /// Pipedrive's organization); the deal's name stands in when there is none.
    pub account_name: Option<String>,
    /// The deal owner's email (HubSpot owners API, Pipedrive user, Salesforce `Owner.Email`).
    pub owner_email: Option<String>,
    /// The deal owner's user id in the CRM: the rep directory's `crm_ids` map it to a rep,
    /// overriding the email.
    pub owner_id: Option<String>,
    /// The deal's currency (ISO 4217), for line items that carry none.
    pub currency: Option<String>,
    pub contacts: Vec<CrmContact>,
    /// The deal's line items: what was ordered.
    pub line_items: Vec<CrmLineItem>,
    /// The line items of the deal's quote (HubSpot quotes), the proposal side of the recap's
    /// order-versus-proposal comparison; `None` when the deal has no quote (or the CRM has none).
    pub quote_line_items: Option<Vec<CrmLineItem>>,
    /// Notes, emails, calls, meetings and tasks on the deal, in any order.
    pub activities: Vec<CrmActivity>,
    /// The text of the deal field named in config (`notes_property` / `notes_field`).
    pub notes_field: Option<String>,
    /// When the deal was last modified in the CRM (dates the notes field's items).
    pub modified_at: Option<DateTime<Utc>>,
}

/// A won deal as the reconciler finds it: what an order needs, as a webhook would have said it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WonDeal {
    pub deal_id: String,
    /// When it was won (its close date or won time); the last modification when the CRM keeps none.
    pub won_at: DateTime<Utc>,
    /// When it was last modified: the reconciler's cursor moves to the newest of these.
    pub modified_at: DateTime<Utc>,
    /// The deal amount, a decimal, with its currency (ISO 4217) when the CRM gives one.
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub owner_email: Option<String>,
    pub owner_id: Option<String>,
    pub account_name: Option<String>,
}

/// What firstcall records on the CRM deal when its first call is marked done or cancelled.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    pub call_id: i64,
    /// `done`, `cancelled`, or `check_in` (the customer's answer after delivery).
    pub event: String,
    /// When it was marked done or cancelled.
    pub at: DateTime<Utc>,
    /// The rep's outcome (`aligned`, `adjusted`, `at_risk`), for a call done.
    pub outcome: Option<String>,
    /// The rep's notes from the call, as typed.
    pub notes: Option<String>,
    pub rep_email: String,
    /// The call page (recap and outcome).
    pub call_url: String,
}

impl CallRecord {
    /// One line for a task's subject or a note's first line.
    pub fn subject(&self) -> String {
        match (self.event.as_str(), self.outcome.as_deref()) {
            ("done", Some(o)) => format!("First call after the order: done ({})", outcome_words(o)),
            ("done", None) => "First call after the order: done".into(),
            ("check_in", Some(a)) => format!("Check-in after delivery: the customer is {}", outcome_words(a)),
            ("check_in", None) => "Check-in after delivery".into(),
            _ => "First call after the order: cancelled (the order was cancelled)".into(),
        }
    }

    /// The text of the note or task, plain, one fact per line.
    pub fn text(&self) -> String {
        let mut lines = vec![self.subject()];
        if let Some(o) = &self.outcome {
            lines.push(format!("Outcome: {}", outcome_meaning(o)));
        }
        lines.push(format!("Rep: {}", self.rep_email));
        if let Some(n) = self.notes.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            // Quoted line by line: a rep's line that starts with `#need` is not read back from
            // the CRM as a requirement.
            lines.push(if self.event == "check_in" { "What the customer said:" } else { "Notes from the call:" }.into());
            lines.extend(n.lines().map(|l| if l.trim().is_empty() { ">".to_string() } else { format!("> {}", l.trim_end()) }));
        }
        lines.push(format!("Call page: {}", self.call_url));
        lines.push(format!("Recorded by firstcall (call {}) at {}", self.call_id, self.at.format("%Y-%m-%d %H:%M UTC")));
        lines.join("\n")
    }
}

fn outcome_words(o: &str) -> &str {
    match o {
        "aligned" => "aligned",
        "adjusted" => "expectations adjusted",
        "at_risk" => "at risk",
        "mixed" => "mixed about it",
        other => other,
    }
}

fn outcome_meaning(o: &str) -> String {
    match o {
        "aligned" => "aligned: the customer's expectations match what will be delivered".into(),
        "adjusted" => "adjusted: expectations were reset on the call and the customer agreed".into(),
        "at_risk" => "at risk: the customer expects more than will be delivered".into(),
        "satisfied" => "satisfied: the customer says what was promised was delivered well".into(),
        "mixed" => "mixed: the customer is pleased with some of it, not all".into(),
        "unhappy" => "unhappy: the customer is not satisfied with what was delivered".into(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CrmContact {
    pub name: String,
    pub email: Option<String>,
    pub title: Option<String>,
    /// The CRM's role names for this contact on this deal (association labels, contact roles).
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CrmLineItem {
    /// The product code; the name stands in when there is none.
    pub sku: Option<String>,
    pub name: String,
    pub quantity: f64,
    /// The unit price as the CRM gives it, a decimal (`"49.9"`).
    pub unit_price: String,
    /// ISO 4217; the deal's currency when absent.
    pub currency: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmActivityKind {
    Note,
    Email,
    Call,
    Meeting,
    Task,
    Quote,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CrmActivity {
    pub at: DateTime<Utc>,
    pub kind: CrmActivityKind,
    /// The subject or title; a note's first line stands in when empty.
    pub subject: String,
    /// Text read for `#need`/`#promise` lines: a note's body, a call's or task's description.
    /// Never an email's body, which the recap does not quote.
    pub body: Option<String>,
    /// Whether `body` is HTML (HubSpot and Pipedrive notes are rich text).
    pub html: bool,
}

/// The longest summary of an activity in the buying process.
const SUMMARY_MAX: usize = 200;

impl DealContext {
    /// The deal as a proposal snapshot: what the recap reads.
    pub fn to_proposal(&self, crm: Source, deal_id: &str, roles: &RoleMap) -> Proposal {
        let crm_name = crate::recap::format::source_name(crm);
        let mut unreadable = Vec::new();
        let account_name = self
            .account_name
            .as_deref()
            .or(self.deal_name.as_deref())
            .map(|s| printable_up_to(s.trim(), 300))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{crm_name} deal {deal_id}"));
        let rep_email = self.owner_email.as_deref().and_then(|e| EmailAddress::parse(e).ok());

        let contacts = self
            .contacts
            .iter()
            .filter(|c| !c.name.trim().is_empty() || c.email.is_some())
            .map(|c| Contact {
                name: Some(c.name.trim())
                    .filter(|n| !n.is_empty())
                    .map(|n| printable_up_to(n, 300))
                    .unwrap_or_else(|| c.email.clone().unwrap_or_default()),
                email: c.email.as_deref().and_then(|e| EmailAddress::parse(e).ok()),
                title: c.title.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| printable_up_to(t, 300)),
                role: role_of(&c.roles, roles),
            })
            .collect();

        // The quote is the proposal side; the deal's own line items are what was ordered
        // (`ordered_items`).
        let line_items = match &self.quote_line_items {
            Some(items) => self.priced(items, &format!("{crm_name} quote"), &mut unreadable),
            None => Vec::new(),
        };
        // The deal's items are read as the order's (`ordered_items`); one that cannot be read is
        // reported here too, so it is not dropped silently.
        self.priced(&self.line_items, &format!("{crm_name} line items"), &mut unreadable);

        let mut sorted: Vec<&CrmActivity> = self.activities.iter().collect();
        sorted.sort_by_key(|a| a.at);
        // Each activity with the plain text of its body (the markup is read from these).
        let read: Vec<(&CrmActivity, Option<String>)> =
            sorted.iter().map(|a| (*a, a.body.as_deref().map(|b| if a.html { super::text_of_html(b) } else { b.to_string() }))).collect();
        let activities = read
            .iter()
            .map(|(a, text)| {
                let first_line = || text.as_deref().and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()).map(String::from));
                let subject = Some(a.subject.trim()).filter(|s| !s.is_empty()).map(String::from).or_else(first_line);
                Activity {
                    at: a.at,
                    kind: activity_kind(a.kind),
                    summary: printable_up_to(&subject.unwrap_or_else(|| format!("({})", kind_word(a.kind))), SUMMARY_MAX),
                }
            })
            .collect();

        let mut notes: Vec<Note<'_>> = read
            .iter()
            .filter_map(|(a, t)| {
                let text = t.as_deref()?;
                Some(Note { text, at: a.at, stated_in: format!("{crm_name} {}, {}", kind_word(a.kind), day(a.at)) })
            })
            .collect();
        if let Some(field) = &self.notes_field {
            // The deal field is the deal's current word: it is read after every note.
            let at = self.modified_at.or_else(|| sorted.last().map(|a| a.at)).unwrap_or(DateTime::<Utc>::MIN_UTC);
            let at = sorted.last().map(|a| a.at.max(at)).unwrap_or(at);
            notes.push(Note { text: field, at, stated_in: format!("{crm_name} deal field") });
        }
        let items = markup::read_notes(notes);
        unreadable.extend(items.unreadable);

        Proposal {
            account: Account { name: account_name, segment: None },
            rep_email,
            contacts,
            requirements: items.requirements,
            commitments: items.commitments,
            line_items,
            activities,
            unreadable,
        }
    }
}

impl DealContext {
    /// The deal's line items as the order's: what was bought, with prices where they can be read.
    pub fn ordered_items(&self) -> Vec<OrderedItem> {
        let mut ignored = Vec::new();
        self.priced(&self.line_items, "", &mut ignored)
            .into_iter()
            .map(|l| OrderedItem { sku: l.sku, name: l.name, quantity: l.quantity, unit_price: Some(l.unit_price) })
            .collect()
    }

    /// `items` with their prices read (in the item's currency, else the deal's); an item whose
    /// price or quantity cannot be read is reported in `unreadable`, as from `where_`.
    fn priced(&self, items: &[CrmLineItem], where_: &str, unreadable: &mut Vec<Unreadable>) -> Vec<LineItem> {
        let deal_currency = self.currency.as_deref().and_then(|c| Currency::parse(c).ok());
        let mut out = Vec::new();
        for item in items {
            let currency = item.currency.as_deref().and_then(|c| Currency::parse(c).ok()).or_else(|| deal_currency.clone());
            let price = currency
                .ok_or_else(|| "no currency on the line item or the deal".to_string())
                .and_then(|cur| Money::parse_decimal(&item.unit_price, cur).map_err(|e| e.0));
            match price {
                Ok(unit_price) if item.quantity.is_finite() && item.quantity >= 0.0 => out.push(LineItem {
                    sku: printable_up_to(item.sku.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(&item.name).trim(), 128),
                    name: printable_up_to(item.name.trim(), 300),
                    quantity: item.quantity,
                    unit_price,
                    rationale: item.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(|d| printable_up_to(d, 4000)),
                }),
                Ok(_) => unreadable.push(Unreadable {
                    line: format!("line item {}", printable_up_to(&item.name, 100)),
                    reason: format!("quantity {} is not a number of zero or more", item.quantity),
                    stated_in: where_.to_string(),
                }),
                Err(reason) => unreadable.push(Unreadable {
                    line: format!("line item {}", printable_up_to(&item.name, 100)),
                    reason: format!("its price '{}' cannot be read: {reason}", printable_up_to(&item.unit_price, 40)),
                    stated_in: where_.to_string(),
                }),
            }
        }
        out
    }
}

/// The recap's role for a contact with these CRM role names: a decision maker if any name is
/// one, else a functional decision maker if any is one, else other.
pub fn role_of(names: &[String], map: &RoleMap) -> ContactRole {
    let is = |list: &[String]| names.iter().any(|n| list.iter().any(|m| m.trim().eq_ignore_ascii_case(n.trim())));
    if is(&map.decision_maker) {
        ContactRole::DecisionMaker
    } else if is(&map.functional_decision_maker) {
        ContactRole::FunctionalDecisionMaker
    } else {
        ContactRole::Other
    }
}

fn activity_kind(k: CrmActivityKind) -> ActivityKind {
    match k {
        CrmActivityKind::Note => ActivityKind::Note,
        CrmActivityKind::Email => ActivityKind::Email,
        CrmActivityKind::Call => ActivityKind::Call,
        CrmActivityKind::Meeting => ActivityKind::Meeting,
        CrmActivityKind::Task => ActivityKind::Task,
        CrmActivityKind::Quote => ActivityKind::Quote,
    }
}

fn kind_word(k: CrmActivityKind) -> &'static str {
    match k {
        CrmActivityKind::Note => "note",
        CrmActivityKind::Email => "email",
        CrmActivityKind::Call => "call",
        CrmActivityKind::Meeting => "meeting",
        CrmActivityKind::Task => "task",
        CrmActivityKind::Quote => "quote",
    }
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, d, 12, 0, 0).unwrap()
    }

    fn deal() -> DealContext {
        DealContext {
            deal_name: Some("Acme renewal".into()),
            account_name: Some("Acme Corp".into()),
            owner_email: Some("Ana@Seller.example".into()),
            owner_id: Some("41".into()),
            currency: Some("USD".into()),
            contacts: vec![
                CrmContact {
                    name: "Dana".into(),
                    email: Some("dana@acme.example".into()),
                    title: None,
                    roles: vec!["Economic Buyer".into()],
                },
                CrmContact {
                    name: "Tom".into(),
                    email: Some("not-an-email".into()),
                    title: Some("CTO".into()),
                    roles: vec!["Technical Buyer".into()],
                },
                CrmContact { name: "Eve".into(), email: None, title: None, roles: vec!["Champion".into()] },
            ],
            line_items: vec![
                CrmLineItem {
                    sku: Some("PRO".into()),
                    name: "Pro seats".into(),
                    quantity: 10.0,
                    unit_price: "49.9".into(),
                    currency: None,
                    description: None,
                },
                CrmLineItem { sku: None, name: "Setup".into(), quantity: 1.0, unit_price: "abc".into(), currency: None, description: None },
            ],
            quote_line_items: None,
            activities: vec![
                CrmActivity { at: at(5), kind: CrmActivityKind::Email, subject: "Pricing".into(), body: None, html: false },
                CrmActivity {
                    at: at(2),
                    kind: CrmActivityKind::Note,
                    subject: String::new(),
                    body: Some("<p>Discovery</p><p>#need sso must by 2027-01-15: Okta SSO</p><p>#promise sso by someday: SAML</p>".into()),
                    html: true,
                },
                CrmActivity {
                    at: at(7),
                    kind: CrmActivityKind::Call,
                    subject: "Follow-up".into(),
                    body: Some("#promise sso by 2027-01-10: SAML SSO with the Okta connector".into()),
                    html: false,
                },
            ],
            notes_field: Some("#need audit should: Audit log export".into()),
            modified_at: Some(at(1)),
        }
    }

    #[test]
    fn a_deal_becomes_the_proposal_the_recap_reads() {
        let p = deal().to_proposal(Source::Hubspot, "42", &RoleMap::default());
        assert_eq!(p.account.name, "Acme Corp");
        assert_eq!(p.rep_email.unwrap().as_str(), "ana@seller.example");
        let roles: Vec<_> = p.contacts.iter().map(|c| (c.name.as_str(), c.role, c.email.is_some())).collect();
        assert_eq!(
            roles,
            [
                ("Dana", ContactRole::DecisionMaker, true),
                ("Tom", ContactRole::FunctionalDecisionMaker, false),
                ("Eve", ContactRole::Other, false)
            ]
        );
        // The deal's items are the order's; without a quote the proposal lists none.
        assert!(p.line_items.is_empty());
        let ordered = deal().ordered_items();
        assert_eq!(ordered.len(), 1);
        assert_eq!((ordered[0].sku.as_str(), ordered[0].unit_price.as_ref().unwrap().minor), ("PRO", 4990));
        // The buying process in time order, a note summarised by its first line.
        let steps: Vec<_> = p.activities.iter().map(|a| (a.kind, a.summary.as_str())).collect();
        assert_eq!(steps, [(ActivityKind::Note, "Discovery"), (ActivityKind::Email, "Pricing"), (ActivityKind::Call, "Follow-up")]);
        // Markup from notes, call descriptions and the deal field; the later promise amends.
        let reqs: Vec<_> = p.requirements.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect();
        assert_eq!(reqs, [("sso", "Okta SSO"), ("audit", "Audit log export")]);
        assert_eq!(p.commitments.len(), 1);
        assert_eq!(p.commitments[0].text, "SAML SSO with the Okta connector");
        assert_eq!(p.requirements[0].stated_in.as_deref(), Some("HubSpot note, 2 Oct 2026"));
        // Nothing dropped silently: the bad date and the unreadable price are reported.
        let bad: Vec<_> = p.unreadable.iter().map(|u| u.line.as_str()).collect();
        assert_eq!(bad, ["line item Setup", "#promise sso by someday: SAML"]);
    }

    #[test]
    fn a_reps_notes_written_back_are_not_read_back_as_markup() {
        let record = CallRecord {
            call_id: 7,
            event: "done".into(),
            at: at(9),
            outcome: Some("aligned".into()),
            notes: Some("Fine.\n#need sso must: Okta SSO\n\n#promise sso: SAML".into()),
            rep_email: "ana@seller.example".into(),
            call_url: "https://firstcall.example/calls/7".into(),
        };
        let text = record.text();
        assert!(text.contains("> #need sso must: Okta SSO"), "{text}");
        let items = markup::read_notes([Note { text: &text, at: at(9), stated_in: "note".into() }]);
        assert!(items.requirements.is_empty() && items.commitments.is_empty() && items.unreadable.is_empty(), "{items:?}");
    }

    #[test]
    fn a_quote_is_the_proposal_side() {
        let mut d = deal();
        d.quote_line_items = Some(vec![CrmLineItem {
            sku: Some("PRO".into()),
            name: "Pro seats".into(),
            quantity: 12.0,
            unit_price: "45".into(),
            currency: Some("USD".into()),
            description: Some("Volume price".into()),
        }]);
        let p = d.to_proposal(Source::Hubspot, "42", &RoleMap::default());
        assert_eq!(p.line_items.len(), 1);
        assert_eq!((p.line_items[0].quantity, p.line_items[0].unit_price.minor), (12.0, 4500));
        assert_eq!(p.line_items[0].rationale.as_deref(), Some("Volume price"));
    }

    #[test]
    fn sales_ops_map_crm_role_names_in_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(repo.join("config/default.toml"), dir.path().join("default.toml")).unwrap();
        let load = |roles: &str| {
            std::fs::write(dir.path().join("production.toml"), roles).unwrap();
            crate::config::ConfigSource { dir: dir.path().to_path_buf(), env_name: Some("production".into()), use_env: false }.load()
        };
        let c = load("[crm.roles]\ndecision_maker = [\"Champion\"]\nfunctional_decision_maker = [\"IT Lead\"]\n").unwrap();
        let roles = &c.settings.crm.roles;
        assert_eq!(role_of(&["champion".into()], roles), ContactRole::DecisionMaker);
        assert_eq!(role_of(&["IT lead".into()], roles), ContactRole::FunctionalDecisionMaker);
        // The defaults are replaced, not added to.
        assert_eq!(role_of(&["Economic Buyer".into()], roles), ContactRole::Other);
        let e = load("[crm.roles]\ndecision_makers = [\"Champion\"]\n").expect_err("misspelt key");
        assert!(e.to_string().contains("decision_makers"), "{e}");
    }

    #[test]
    fn a_deal_with_nothing_but_an_id_still_names_the_account() {
        let p = DealContext::default().to_proposal(Source::Pipedrive, "7", &RoleMap::default());
        assert_eq!(p.account.name, "Pipedrive deal 7");
        assert!(p.rep_email.is_none() && p.contacts.is_empty() && p.unreadable.is_empty());
    }
}
