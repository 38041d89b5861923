//! The proposal snapshot as a CRM or CPQ sends it (`PUT /api/v1/proposals/{source}/{deal_id}`),
//! parsed into trusted types. The same types are what the recap builder reads.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Currency, EmailAddress, Money, ParseError};

/// How much the customer said a requirement matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Must,
    Should,
    Nice,
}

impl Priority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::Must => "must",
            Priority::Should => "should",
            Priority::Nice => "nice",
        }
    }
}

/// A contact's part in the buying decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactRole {
    DecisionMaker,
    FunctionalDecisionMaker,
    Other,
}

impl ContactRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContactRole::DecisionMaker => "decision_maker",
            ContactRole::FunctionalDecisionMaker => "functional_decision_maker",
            ContactRole::Other => "other",
        }
    }
}

/// A step of the buying process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Quote,
    Proposal,
    Note,
    Task,
}

impl ActivityKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Email => "email",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Quote => "quote",
            ActivityKind::Proposal => "proposal",
            ActivityKind::Note => "note",
            ActivityKind::Task => "task",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub role: ContactRole,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub id: String,
    pub text: String,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_by: Option<NaiveDate>,
    /// Where the customer stated it, e.g. "Discovery call, 2 Oct".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commitment {
    pub id: String,
    pub text: String,
    /// Ids of the requirements this commitment answers; empty means it answers none.
    #[serde(default)]
    pub covers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_by: Option<NaiveDate>,
    /// Who delivers it when not the rep (the onboarding manager, say): the promise's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub name: String,
    pub quantity: f64,
    pub unit_price: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub at: DateTime<Utc>,
    pub kind: ActivityKind,
    pub summary: String,
}

/// A line of a CRM note that starts with a `#need`/`#promise` tag (or a near-miss of one) but
/// cannot be read; the recap shows it under "could not read" with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The line, trimmed, without control characters; past 200 characters it is cut and ends
    /// with `…`.
    pub line: String,
    /// Why, for the rep: `missing ':' before the text`.
    pub reason: String,
    /// Where the line is, e.g. "HubSpot note, 2 Oct 2026".
    pub stated_in: String,
}

/// A validated proposal snapshot for one deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub account: Account,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_email: Option<EmailAddress>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    #[serde(default)]
    pub commitments: Vec<Commitment>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// Tagged lines of CRM notes that could not be read (pulled context only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Unreadable>,
}

impl Proposal {
    /// The proposal the recap reads when the API pushed one (`api`) and a connector pulled one
    /// from the CRM (`crm`): the API's word wins where both say something.
    /// - account name, segment and rep: the API's, else the CRM's;
    /// - contacts: the API's, then the CRM's whose email (or, without one, name) the API's lack;
    /// - requirements and commitments: the API's, then the CRM's with ids (labels) the API's lack;
    /// - line items: the API's when it has any, else the CRM's (two lists of one offer do not add);
    /// - activities: both, in time order, each once;
    /// - unreadable lines: the CRM's.
    pub fn merge(api: Proposal, crm: Proposal) -> Proposal {
        let mut out = api;
        if out.account.segment.is_none() {
            out.account.segment = crm.account.segment;
        }
        if out.rep_email.is_none() {
            out.rep_email = crm.rep_email;
        }
        let key = |c: &Contact| c.email.as_ref().map(|e| e.to_string()).unwrap_or_else(|| c.name.to_lowercase());
        let known: std::collections::HashSet<String> = out.contacts.iter().map(key).collect();
        out.contacts.extend(crm.contacts.into_iter().filter(|c| !known.contains(&key(c))));
        let ids: std::collections::HashSet<String> = out.requirements.iter().map(|r| r.id.clone()).collect();
        out.requirements.extend(crm.requirements.into_iter().filter(|r| !ids.contains(&r.id)));
        let ids: std::collections::HashSet<String> = out.commitments.iter().map(|c| c.id.clone()).collect();
        out.commitments.extend(crm.commitments.into_iter().filter(|c| !ids.contains(&c.id)));
        if out.line_items.is_empty() {
            out.line_items = crm.line_items;
        }
        for a in crm.activities {
            if !out.activities.contains(&a) {
                out.activities.push(a);
            }
        }
        out.activities.sort_by_key(|a| a.at);
        out.unreadable.extend(crm.unreadable);
        out
    }
}

/// A proposal snapshot as a CRM or CPQ sends it. Every field is checked and the first problem is
/// reported with its JSON path (422); an unknown field is refused, not dropped, so a misspelt
/// `cover` for `covers` cannot silently store a commitment that covers nothing.
// `ProposalBody::parse` does the checks; serde's `deny_unknown_fields` the refusal.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    pub account: Option<AccountBody>,
    pub rep_email: Option<String>,
    #[serde(default)]
    pub contacts: Vec<ContactBody>,
    #[serde(default)]
    pub requirements: Vec<RequirementBody>,
    #[serde(default)]
    pub commitments: Vec<CommitmentBody>,
    #[serde(default)]
    pub line_items: Vec<LineItemBody>,
    #[serde(default)]
    pub activities: Vec<ActivityBody>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    pub name: Option<String>,
    pub segment: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementBody {
    pub id: Option<serde_json::Value>,
    pub text: Option<String>,
    pub priority: Option<String>,
    pub need_by: Option<String>,
    pub stated_in: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitmentBody {
    pub id: Option<serde_json::Value>,
    pub text: Option<String>,
    #[serde(default)]
    pub covers: Vec<serde_json::Value>,
    pub deliver_by: Option<String>,
    /// The email address of who delivers it, when not the rep.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemBody {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: Option<f64>,
    pub unit_price: Option<serde_json::Value>,
    pub currency: Option<String>,
    pub rationale: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityBody {
    pub at: Option<String>,
    pub kind: Option<String>,
    pub summary: Option<String>,
}

/// A field that is missing or invalid, with its JSON path (`requirements[2].priority`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), reason: reason.into() }
}

fn required_text(v: &Option<String>, field: &str, max: usize) -> Result<String, FieldError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Err(field_err(field, "is required")),
        Some(s) if s.chars().count() > max => Err(field_err(field, format!("is longer than {max} characters"))),
        Some(s) => Ok(s.to_string()),
    }
}

fn optional_text(v: &Option<String>, field: &str, max: usize) -> Result<Option<String>, FieldError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > max => Err(field_err(field, format!("is longer than {max} characters"))),
        Some(s) => Ok(Some(s.to_string())),
    }
}

fn id_text(v: &Option<serde_json::Value>, field: &str) -> Result<String, FieldError> {
    match v {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => Ok(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        None | Some(serde_json::Value::Null) => Err(field_err(field, "is required")),
        _ => Err(field_err(field, "must be a non-empty string of at most 128 characters or a number")),
    }
}

fn date(v: &Option<String>, field: &str) -> Result<Option<NaiveDate>, FieldError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Some).map_err(|_| field_err(field, format!("'{s}' is not a date (YYYY-MM-DD)")))
        }
    }
}

fn from_parse<T>(r: Result<T, ParseError>, field: &str) -> Result<T, FieldError> {
    r.map_err(|e| field_err(field, e.0))
}

const LIST_MAX: usize = 1000;
/// The longest text (of a requirement, a commitment, a rationale, a summary) a proposal may hold.
pub const TEXT_MAX: usize = 4000;

impl ProposalBody {
    pub fn parse(&self) -> Result<Proposal, FieldError> {
        let account = self.account.as_ref().ok_or_else(|| field_err("account", "is required"))?;
        let account = Account {
            name: required_text(&account.name, "account.name", 300)?,
            segment: optional_text(&account.segment, "account.segment", 100)?,
        };
        let rep_email = match self.rep_email.as_deref() {
            None | Some("") => None,
            Some(s) => Some(from_parse(EmailAddress::parse(s), "rep_email")?),
        };
        for (name, len) in [
            ("contacts", self.contacts.len()),
            ("requirements", self.requirements.len()),
            ("commitments", self.commitments.len()),
            ("line_items", self.line_items.len()),
            ("activities", self.activities.len()),
        ] {
            if len > LIST_MAX {
                return Err(field_err(name, format!("has more than {LIST_MAX} entries")));
            }
        }

        let mut contacts = Vec::with_capacity(self.contacts.len());
        for (i, c) in self.contacts.iter().enumerate() {
            let f = |k: &str| format!("contacts[{i}].{k}");
            let role = match c.role.as_deref().map(str::trim) {
                None | Some("") => ContactRole::Other,
                Some("decision_maker") => ContactRole::DecisionMaker,
                Some("functional_decision_maker") => ContactRole::FunctionalDecisionMaker,
                Some("other") => ContactRole::Other,
                Some(r) => {
                    return Err(field_err(f("role"), format!("'{r}' is not one of decision_maker, functional_decision_maker, other")));
                }
            };
            let email = match c.email.as_deref() {
                None | Some("") => None,
                Some(s) => Some(from_parse(EmailAddress::parse(s), &f("email"))?),
            };
            contacts.push(Contact {
                name: required_text(&c.name, &f("name"), 300)?,
                email,
                title: optional_text(&c.title, &f("title"), 300)?,
                role,
            });
        }

        let mut requirements = Vec::with_capacity(self.requirements.len());
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.requirements.iter().enumerate() {
            let f = |k: &str| format!("requirements[{i}].{k}");
            let id = id_text(&r.id, &f("id"))?;
            if !seen.insert(id.clone()) {
                return Err(field_err(f("id"), format!("'{id}' is used by another requirement")));
            }
            let priority = match r.priority.as_deref().map(str::trim) {
                Some("must") => Priority::Must,
                Some("should") => Priority::Should,
                Some("nice") => Priority::Nice,
                None | Some("") => {
                    return Err(field_err(f("priority"), "is required (must, should or nice)"));
                }
                Some(p) => {
                    return Err(field_err(f("priority"), format!("'{p}' is not one of must, should, nice")));
                }
            };
            requirements.push(Requirement {
                id,
                text: required_text(&r.text, &f("text"), TEXT_MAX)?,
                priority,
                need_by: date(&r.need_by, &f("need_by"))?,
                stated_in: optional_text(&r.stated_in, &f("stated_in"), 300)?,
            });
        }

        let mut commitments = Vec::with_capacity(self.commitments.len());
        let mut seen_c = std::collections::HashSet::new();
        for (i, c) in self.commitments.iter().enumerate() {
            let f = |k: &str| format!("commitments[{i}].{k}");
            let id = id_text(&c.id, &f("id"))?;
            if !seen_c.insert(id.clone()) {
                return Err(field_err(f("id"), format!("'{id}' is used by another commitment")));
            }
            let mut covers = Vec::with_capacity(c.covers.len());
            for (j, v) in c.covers.iter().enumerate() {
                let rid = id_text(&Some(v.clone()), &format!("commitments[{i}].covers[{j}]"))?;
                if !seen.contains(&rid) {
                    return Err(field_err(format!("commitments[{i}].covers[{j}]"), format!("no requirement has id '{rid}'")));
                }
                covers.push(rid);
            }
            commitments.push(Commitment {
                id,
                text: required_text(&c.text, &f("text"), TEXT_MAX)?,
                covers,
                deliver_by: date(&c.deliver_by, &f("deliver_by"))?,
                owner: match c.owner.as_deref() {
                    None => None,
                    Some(s) => Some(from_parse(EmailAddress::parse(s), &f("owner"))?),
                },
            });
        }

        let mut line_items = Vec::with_capacity(self.line_items.len());
        for (i, l) in self.line_items.iter().enumerate() {
            let f = |k: &str| format!("line_items[{i}].{k}");
            let quantity = l.quantity.ok_or_else(|| field_err(f("quantity"), "is required"))?;
            if !quantity.is_finite() || quantity < 0.0 {
                return Err(field_err(f("quantity"), "must be a number of zero or more"));
            }
            let currency = from_parse(Currency::parse(l.currency.as_deref().unwrap_or("")), &f("currency"))?;
            let price = l.unit_price.as_ref().ok_or_else(|| field_err(f("unit_price"), "is required"))?;
            let unit_price = from_parse(Money::from_json(price, currency), &f("unit_price"))?;
            line_items.push(LineItem {
                sku: required_text(&l.sku, &f("sku"), 128)?,
                name: required_text(&l.name, &f("name"), 300)?,
                quantity,
                unit_price,
                rationale: optional_text(&l.rationale, &f("rationale"), TEXT_MAX)?,
            });
        }

        let mut activities = Vec::with_capacity(self.activities.len());
        for (i, a) in self.activities.iter().enumerate() {
            let f = |k: &str| format!("activities[{i}].{k}");
            let at = match a.at.as_deref() {
                None | Some("") => return Err(field_err(f("at"), "is required")),
                Some(s) => DateTime::parse_from_rfc3339(s)
                    .map_err(|_| field_err(f("at"), format!("'{s}' is not an RFC 3339 time")))?
                    .with_timezone(&Utc),
            };
            let kind = match a.kind.as_deref().map(str::trim) {
                Some("call") => ActivityKind::Call,
                Some("email") => ActivityKind::Email,
                Some("meeting") => ActivityKind::Meeting,
                Some("quote") => ActivityKind::Quote,
                Some("proposal") => ActivityKind::Proposal,
                Some("note") => ActivityKind::Note,
                Some("task") => ActivityKind::Task,
                None | Some("") => return Err(field_err(f("kind"), "is required")),
                Some(k) => {
                    return Err(field_err(f("kind"), format!("'{k}' is not one of call, email, meeting, quote, proposal, note, task")));
                }
            };
            activities.push(Activity { at, kind, summary: required_text(&a.summary, &f("summary"), TEXT_MAX)? });
        }

        Ok(Proposal { account, rep_email, contacts, requirements, commitments, line_items, activities, unreadable: vec![] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> ProposalBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_full_body_parses() {
        let p = body(serde_json::json!({
            "account": {"name": "Acme", "segment": "enterprise"},
            "rep_email": "Ana@Seller.com",
            "contacts": [{"name": "Dana", "role": "decision_maker", "email": "dana@acme.com"}],
            "requirements": [{"id": "R1", "text": "SSO", "priority": "must", "need_by": "2026-12-01"}],
            "commitments": [{"id": "C1", "text": "SAML", "covers": ["R1"], "deliver_by": "2026-11-30"}],
            "line_items": [{"sku": "PRO", "name": "Pro", "quantity": 10, "unit_price": "49.90", "currency": "usd"}],
            "activities": [{"at": "2026-10-01T10:00:00Z", "kind": "call", "summary": "Discovery"}]
        }))
        .parse()
        .unwrap();
        assert_eq!(p.rep_email.unwrap().as_str(), "ana@seller.com");
        assert_eq!(p.line_items[0].unit_price.minor, 4990);
        assert_eq!(p.commitments[0].covers, vec!["R1"]);
    }

    #[test]
    fn the_apis_word_wins_over_the_crms_where_both_say_something() {
        let api = body(serde_json::json!({
            "account": {"name": "Acme (API)"},
            "contacts": [{"name": "Dana", "email": "dana@acme.com", "role": "decision_maker"}],
            "requirements": [{"id": "sso", "text": "SSO via Okta (API)", "priority": "must"}],
            "activities": [{"at": "2026-10-02T10:00:00Z", "kind": "call", "summary": "Discovery"}]
        }))
        .parse()
        .unwrap();
        let crm = body(serde_json::json!({
            "account": {"name": "Acme (CRM)", "segment": "enterprise"},
            "rep_email": "ana@seller.example",
            "contacts": [{"name": "Dana W.", "email": "dana@acme.com"}, {"name": "Tom", "role": "other"}],
            "requirements": [{"id": "sso", "text": "SSO (CRM)", "priority": "should"}, {"id": "audit", "text": "Audit log", "priority": "nice"}],
            "line_items": [{"sku": "PRO", "name": "Pro", "quantity": 2, "unit_price": "10", "currency": "USD"}],
            "activities": [{"at": "2026-10-01T10:00:00Z", "kind": "email", "summary": "Pricing"}, {"at": "2026-10-02T10:00:00Z", "kind": "call", "summary": "Discovery"}]
        }))
        .parse()
        .unwrap();
        let m = Proposal::merge(api, crm);
        assert_eq!(m.account.name, "Acme (API)");
        assert_eq!(m.account.segment.as_deref(), Some("enterprise"));
        assert_eq!(m.rep_email.unwrap().as_str(), "ana@seller.example");
        assert_eq!(m.contacts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Dana", "Tom"]);
        assert_eq!(m.requirements.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["SSO via Okta (API)", "Audit log"]);
        assert_eq!(m.line_items.len(), 1);
        assert_eq!(m.activities.iter().map(|a| a.summary.as_str()).collect::<Vec<_>>(), ["Pricing", "Discovery"]);
    }

    #[test]
    fn errors_name_the_field() {
        let e = body(serde_json::json!({"account": {"name": "A"}, "requirements": [{"id": "R1", "text": "x", "priority": "urgent"}]}))
            .parse()
            .unwrap_err();
        assert_eq!(e.field, "requirements[0].priority");
        let e = body(serde_json::json!({"account": {}})).parse().unwrap_err();
        assert_eq!(e.field, "account.name");
        let e = body(serde_json::json!({"account": {"name": "A"}, "commitments": [{"id": "C1", "text": "x", "covers": ["R9"]}]}))
            .parse()
            .unwrap_err();
        assert_eq!(e.field, "commitments[0].covers[0]");
        let e = body(serde_json::json!({"rep_email": "x"})).parse().unwrap_err();
        assert_eq!(e.field, "account");
    }
}
