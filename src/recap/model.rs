//! What the recap builder reads ([`RecapInput`]) and what it produces ([`Recap`]).
//!
//! `Recap` is also the body of `GET /api/v1/calls/{id}/recap`, so its shape is part of the
//! public contract: dates are `YYYY-MM-DD`, times RFC 3339 in UTC, money `{minor, currency}`
//! (minor units, ISO 4217), enums `snake_case` strings, and an absent value is an explicit
//! `null` (never a missing key), so clients and templates can rely on every key being there.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::OrderedItem;
use crate::domain::{Money, Source, Timezone};
use crate::proposals::model::{ActivityKind, ContactRole, Priority, Proposal};

// ----------------------------------------------------------------------------------------------
// Input
// ----------------------------------------------------------------------------------------------

/// Everything the recap is built from. Loaded by the caller; the builder does no I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct RecapInput {
    /// The latest proposal snapshot stored for the deal, if any was pushed.
    pub proposal: Option<ProposalVersion>,
    pub order: OrderSnapshot,
    pub call: CallSnapshot,
}

/// One stored version of a deal's proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalVersion {
    pub version: i32,
    pub received_at: DateTime<Utc>,
    pub proposal: Proposal,
}

/// The order as the CRM last reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSnapshot {
    pub source: Source,
    pub deal_id: String,
    pub account_name: Option<String>,
    pub amount: Option<Money>,
    /// Empty when the CRM sent no line items (many send only the amount).
    pub line_items: Vec<OrderedItem>,
    pub ordered_at: DateTime<Utc>,
    pub segment: Option<String>,
}

/// The first call the recap is for.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSnapshot {
    pub id: i64,
    pub due_at: DateTime<Utc>,
    pub rep_name: Option<String>,
    pub rep_email: String,
    pub rep_timezone: Timezone,
    pub schedule_name: String,
}

// ----------------------------------------------------------------------------------------------
// Output
// ----------------------------------------------------------------------------------------------

/// The recap of one first call: requirements versus commitments, ordered versus proposed, the
/// delivery timeline, gaps and risks (most serious first) and the call agenda.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recap {
    pub call: RecapCall,
    pub deal: RecapDeal,
    /// The proposal version the recap was built from; `null` when none is on file.
    pub proposal: Option<RecapProposal>,
    pub summary: RecapSummary,
    /// Every stated requirement, must-haves first, then in the order the proposal lists them.
    pub requirements: Vec<RequirementRecap>,
    /// Commitments that answer no stated requirement (possible over-promises), in proposal order.
    pub commitments_without_requirement: Vec<CommitmentRef>,
    /// Ordered items compared with the proposal's by SKU: the order's items in order, then the
    /// proposed items that were not ordered.
    pub line_items: Vec<LineItemRecap>,
    /// What will be delivered and when: every commitment by deliver-by date, undated last.
    pub timeline: Vec<TimelineEntry>,
    /// Gaps and risks, most serious first (see [`crate::recap::gaps`] for the order).
    pub gaps: Vec<Gap>,
    pub agenda: Agenda,
    /// Tagged lines of CRM notes that could not be read, each with the reason: a rep's
    /// `#need`/`#promise` line with a typo is shown, never dropped.
    #[serde(default)]
    pub unreadable: Vec<UnreadableLine>,
}

/// A CRM note line that could not be read as a requirement or commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnreadableLine {
    pub line: String,
    pub reason: String,
    /// Where it is, e.g. `HubSpot note, 2 Oct 2026`.
    pub stated_in: String,
}

/// The call and the rep who owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecapCall {
    pub id: i64,
    pub due_at: DateTime<Utc>,
    pub rep_name: Option<String>,
    pub rep_email: String,
    /// IANA name, e.g. `Europe/Berlin`; dates in the recap are days in this zone.
    #[schema(value_type = String, example = "Europe/Berlin")]
    pub rep_timezone: Timezone,
    pub schedule_name: String,
}

/// The deal and its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecapDeal {
    #[schema(value_type = String, example = "hubspot")]
    pub source: Source,
    pub deal_id: String,
    /// The order's account name, else the proposal's.
    pub account_name: Option<String>,
    pub segment: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub amount: Option<Money>,
    pub ordered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecapProposal {
    pub version: i32,
    pub received_at: DateTime<Utc>,
}

/// Counts for subject lines, dashboards and a one-line overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecapSummary {
    pub requirements: usize,
    pub must_haves: usize,
    /// Requirements with at least one commitment.
    pub covered: usize,
    pub commitments: usize,
    /// Line items on the order (0 when the CRM sent none).
    pub ordered_items: usize,
    /// Line items added, removed or changed against the proposal.
    pub items_differing: usize,
    pub gaps: usize,
    /// Severity of the first (most serious) gap; `null` when there are none.
    pub worst_gap: Option<Severity>,
}

/// A stated requirement and what was committed for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequirementRecap {
    pub id: String,
    pub text: String,
    #[schema(value_type = String, example = "must")]
    pub priority: Priority,
    pub need_by: Option<NaiveDate>,
    /// Where the customer stated it, e.g. "Discovery call, 2 Oct".
    pub stated_in: Option<String>,
    pub status: CoverageStatus,
    /// The commitments covering it, in proposal order.
    pub commitments: Vec<CommitmentRef>,
}

/// Whether a requirement is answered by a commitment, in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    /// At least one commitment, none delivering after the need-by date.
    Covered,
    /// At least one covering commitment delivers after the need-by date.
    Late,
    /// No commitment covers it.
    Uncovered,
}

/// A commitment as shown next to a requirement or on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommitmentRef {
    pub id: String,
    pub text: String,
    pub deliver_by: Option<NaiveDate>,
    /// Days after the requirement's need-by date (only next to a requirement, when late).
    pub late_by_days: Option<i64>,
}

/// One line of the order compared with the proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineItemRecap {
    pub sku: String,
    /// The ordered item's name, else the proposed one's.
    pub name: String,
    pub status: LineItemStatus,
    /// Quantity and price on the order; `null` for an item proposed but not ordered.
    pub ordered: Option<ItemTerms>,
    /// Quantity and price in the proposal; `null` for an item not proposed.
    pub proposed: Option<ItemTerms>,
    pub quantity_changed: bool,
    /// Only compared when the order states a unit price.
    pub price_changed: bool,
    /// Why it was proposed (the proposal's rationale).
    pub rationale: Option<String>,
}

/// Quantity and unit price of a line item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemTerms {
    pub quantity: f64,
    #[schema(value_type = Option<Object>)]
    pub unit_price: Option<Money>,
}

/// How an ordered item compares with the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineItemStatus {
    /// Ordered, not in the proposal.
    Added,
    /// In the proposal, not ordered.
    Removed,
    /// Ordered with a different quantity and/or unit price (see the two flags).
    Changed,
    /// Ordered as proposed.
    Unchanged,
    /// Nothing to compare with: no proposal on file, or the order lists no items.
    NotCompared,
}

impl LineItemStatus {
    pub fn differs(&self) -> bool {
        matches!(self, LineItemStatus::Added | LineItemStatus::Removed | LineItemStatus::Changed)
    }
}

/// A commitment on the delivery timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// `null` for a commitment without a date (listed last).
    pub deliver_by: Option<NaiveDate>,
    pub commitment_id: String,
    pub text: String,
    /// The requirements it answers, in proposal order.
    pub covers: Vec<RequirementRef>,
    /// Delivers after the need-by date of a requirement it covers.
    pub late: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequirementRef {
    pub id: String,
    pub text: String,
    #[schema(value_type = String, example = "must")]
    pub priority: Priority,
    pub need_by: Option<NaiveDate>,
}

/// How serious a gap is. Variants are declared most serious first, so the derived order sorts
/// `critical` before `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The call cannot set expectations right without it being dealt with.
    Critical,
    /// A broken or inflated promise.
    High,
    /// Something the customer will notice.
    Medium,
    /// Worth a sentence on the call.
    Low,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A gap or risk with its severity and a sentence for the rep. In JSON the gap's own fields
/// sit beside `severity` and `message`, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Gap {
    pub severity: Severity,
    #[serde(flatten)]
    pub gap: RecapGap,
    /// One plain sentence (CRM text quoted as is: escape it when rendering).
    pub message: String,
}

/// The kinds of gap and risk, declared in their tie-break order (see [`crate::recap::gaps`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecapGap {
    /// No proposal was pushed for the deal: nothing to hold the order against.
    NoProposalOnFile,
    /// A must-have requirement no commitment covers.
    UncoveredMustHave { requirement_id: String, requirement: String },
    /// A commitment delivers after the need-by date of a requirement it covers.
    LateDelivery {
        requirement_id: String,
        requirement: String,
        #[schema(value_type = String, example = "must")]
        priority: Priority,
        commitment_id: String,
        commitment: String,
        need_by: NaiveDate,
        deliver_by: NaiveDate,
        by_days: i64,
    },
    /// A commitment's deliver-by date was already past when the order was placed.
    CommitmentDatePassed { commitment_id: String, commitment: String, deliver_by: NaiveDate, ordered_on: NaiveDate },
    /// A commitment that answers no stated requirement: a possible over-promise.
    CommitmentWithoutRequirement { commitment_id: String, commitment: String, deliver_by: Option<NaiveDate> },
    /// An ordered item added, removed or changed against the proposal.
    OrderDiffersFromProposal { sku: String, name: String, change: LineItemStatus, quantity_changed: bool, price_changed: bool },
    /// A should-have requirement no commitment covers.
    UncoveredShouldHave { requirement_id: String, requirement: String },
    /// A commitment without a deliver-by date.
    UndatedCommitment {
        commitment_id: String,
        commitment: String,
        /// Earliest need-by date of the requirements it covers.
        need_by: Option<NaiveDate>,
        covers_must_have: bool,
    },
    /// The proposal names no decision maker to confirm the recap with.
    NoDecisionMakerNamed,
    /// A nice-to-have requirement no commitment covers.
    UncoveredNiceToHave { requirement_id: String, requirement: String },
    /// The proposal lists items but the CRM sent none with the order.
    OrderItemsNotStated,
}

/// What the rep walks through on the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agenda {
    /// The buying process replayed, oldest activity first.
    pub buying_process: Vec<AgendaStep>,
    /// Who to confirm the points with: decision makers, then functional decision makers.
    pub confirm_with: Vec<AgendaContact>,
    /// The points to confirm, in the order to raise them.
    pub points: Vec<AgendaPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgendaStep {
    pub at: DateTime<Utc>,
    #[schema(value_type = String, example = "meeting")]
    pub kind: ActivityKind,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgendaContact {
    pub name: String,
    pub title: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = String, example = "decision_maker")]
    pub role: ContactRole,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgendaPoint {
    pub topic: AgendaTopic,
    /// One plain sentence (CRM text quoted as is: escape it when rendering).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgendaTopic {
    /// No proposal on file: have the customer restate their requirements.
    Requirements,
    /// A must-have requirement and the commitment made for it.
    MustHave,
    /// What was ordered, and why.
    Order,
    /// A gap or risk to address.
    Gap,
    /// The delivery dates.
    Delivery,
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(components(schemas(super::Recap)))]
    struct Doc;

    #[test]
    fn the_recap_has_an_openapi_schema() {
        let json = serde_json::to_value(Doc::openapi()).unwrap();
        let schemas = &json["components"]["schemas"];
        for name in ["Recap", "Gap", "RecapGap", "Severity", "LineItemStatus", "TimelineEntry", "Agenda"] {
            assert!(schemas.get(name).is_some(), "no schema for {name}");
        }
        let required = schemas["Recap"]["required"].as_array().unwrap();
        assert!(required.iter().any(|f| f == "gaps"));
    }
}
