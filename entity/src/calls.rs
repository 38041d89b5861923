//! The first call after an order: the workflow the engine drives.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    pub source: String,
    pub deal_id: String,
    pub rep_email: String,
    pub state: CallState,
    pub schedule_name: String,
    pub ordered_at: DateTimeUtc,
    pub due_at: DateTimeUtc,
    pub invite_sequence: i32,
    pub reminders_sent: i32,
    pub escalation_level: i32,
    pub last_reminder_at: Option<DateTimeUtc>,
    pub outcome: Option<CallOutcome>,
    pub notes: Option<String>,
    pub completed_at: Option<DateTimeUtc>,
    pub completed_by: Option<String>,
    pub cancelled_at: Option<DateTimeUtc>,
    /// Why the call went to the sales-ops inbox instead of the address the CRM named (that
    /// address may not receive firstcall's mail); `None` otherwise.
    pub fallback_reason: Option<String>,
    /// The escalation steps sent for the call, by their names in the schedule
    /// (`config::schedule::EscalationStep::id`), as a JSON array in the order sent. `None` for a
    /// call escalated before steps had names: its first `escalation_level` steps count as sent.
    pub escalated_steps: Option<String>,
    /// When the rep booked the call with the customer (the invite starts then), and with whom.
    pub booked_at: Option<DateTimeUtc>,
    pub booked_with: Option<String>,
    /// No reminder goes before this time (the rep snoozed them, or booked the call).
    pub snoozed_until: Option<DateTimeUtc>,
    /// The due time before the rep first booked or snoozed the call: sales ops' limit on moving
    /// it counts from here.
    pub first_due_at: Option<DateTimeUtc>,
    /// Who handed the call to its rep by hand (sales ops); order updates then leave the rep be.
    pub rep_by_hand: Option<String>,
    /// Who covered for the rep when the call was opened or handed over (the rep was out of
    /// office): the call's times are planned on their clock.
    pub covered_by: Option<String>,
    /// The recap the rep last heard of (JSON): the first email's, or the last change email's.
    /// Later changes of the proposal or the order are told against it.
    pub recap_sent: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Where a call stands. The open states are listed once, in [`CallState::OPEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Created; the rep has not been sent the recap and invite yet.
    #[sea_orm(string_value = "scheduled")]
    Scheduled,
    /// The rep has the recap and invite; the call is due by `due_at`.
    #[sea_orm(string_value = "due")]
    Due,
    /// `due_at` passed without the call being marked done.
    #[sea_orm(string_value = "overdue")]
    Overdue,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl CallState {
    pub const ALL: [CallState; 5] = [CallState::Scheduled, CallState::Due, CallState::Overdue, CallState::Done, CallState::Cancelled];
    /// The states in which the call still has to happen: reminders and escalations apply.
    pub const OPEN: [CallState; 3] = [CallState::Scheduled, CallState::Due, CallState::Overdue];

    pub fn as_str(&self) -> &'static str {
        match self {
            CallState::Scheduled => "scheduled",
            CallState::Due => "due",
            CallState::Overdue => "overdue",
            CallState::Done => "done",
            CallState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        CallState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_open(&self) -> bool {
        CallState::OPEN.contains(self)
    }
}

impl std::fmt::Display for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the call went, as the rep reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Expectations match what will be delivered.
    #[sea_orm(string_value = "aligned")]
    Aligned,
    /// Expectations were reset on the call; the customer agreed.
    #[sea_orm(string_value = "adjusted")]
    Adjusted,
    /// The customer expects more than will be delivered.
    #[sea_orm(string_value = "at_risk")]
    AtRisk,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 3] = [CallOutcome::Aligned, CallOutcome::Adjusted, CallOutcome::AtRisk];

    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Aligned => "aligned",
            CallOutcome::Adjusted => "adjusted",
            CallOutcome::AtRisk => "at_risk",
        }
    }

    pub fn parse(s: &str) -> Option<CallOutcome> {
        CallOutcome::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
