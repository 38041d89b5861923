//! A promise made to the customer: one commitment of the deal's proposal (or one added on the
//! first call), owned by a person, due by a date, followed until it is delivered or dropped.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "promises")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The first call whose completion made it.
    pub call_id: i64,
    pub source: String,
    pub deal_id: String,
    /// Its place in the deal's ledger (the commitment's place in the proposal; added ones last).
    pub position: i32,
    /// The proposal commitment it came from (`id` there); none for one added on the call.
    pub commitment_id: Option<String>,
    pub text: String,
    /// JSON array of the requirement ids it answers.
    pub covers: Json,
    /// The earliest date the customer needs what it answers (the requirements' `need_by`).
    pub need_by: Option<Date>,
    /// Whether it answers a must-have requirement.
    pub must_have: bool,
    pub owner_email: String,
    /// When it is due now (a slip moves it).
    pub deliver_by: Option<Date>,
    /// The date agreed when the ledger was made (the proposal's, or as adjusted on the call).
    pub agreed_deliver_by: Option<Date>,
    pub state: PromiseState,
    /// Why it slipped or was dropped.
    pub reason: Option<String>,
    /// Every reminder sent for it (ahead of its date, on the day, and after it).
    pub reminders_sent: i32,
    /// The reminders sent since it became overdue (its date passed while it was open); a slip
    /// starts the count again. The schedule's `after_reminders` escalation steps count these.
    pub overdue_reminders: i32,
    pub escalation_level: i32,
    /// JSON array of the escalation steps sent (by name).
    pub escalated_steps: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When it was delivered or dropped.
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A promise is `open` until it is `delivered` or `dropped`; one `slipped` has a new date (and
/// a reason) and is still to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum PromiseState {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "slipped")]
    Slipped,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "dropped")]
    Dropped,
}

impl PromiseState {
    /// The states of a promise still to be delivered: the one list of them.
    pub const OPEN: [PromiseState; 2] = [PromiseState::Open, PromiseState::Slipped];
    pub const ALL: [PromiseState; 4] = [PromiseState::Open, PromiseState::Slipped, PromiseState::Delivered, PromiseState::Dropped];

    pub fn as_str(&self) -> &'static str {
        match self {
            PromiseState::Open => "open",
            PromiseState::Slipped => "slipped",
            PromiseState::Delivered => "delivered",
            PromiseState::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<PromiseState> {
        PromiseState::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_open(&self) -> bool {
        PromiseState::OPEN.contains(self)
    }
}
