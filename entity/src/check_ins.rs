//! The check-in after delivery: once every promise of a call is delivered (or dropped, with at
//! least one delivered), the rep is asked to call the customer and record how it went.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "check_ins")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub call_id: i64,
    pub due_at: DateTimeUtc,
    /// When the email asking the rep to check in went to the outbox.
    pub sent_at: Option<DateTimeUtc>,
    pub answer: Option<CheckInAnswer>,
    pub note: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// How the customer says it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum CheckInAnswer {
    #[sea_orm(string_value = "satisfied")]
    Satisfied,
    #[sea_orm(string_value = "mixed")]
    Mixed,
    #[sea_orm(string_value = "unhappy")]
    Unhappy,
}

impl CheckInAnswer {
    pub const ALL: [CheckInAnswer; 3] = [CheckInAnswer::Satisfied, CheckInAnswer::Mixed, CheckInAnswer::Unhappy];

    pub fn as_str(&self) -> &'static str {
        match self {
            CheckInAnswer::Satisfied => "satisfied",
            CheckInAnswer::Mixed => "mixed",
            CheckInAnswer::Unhappy => "unhappy",
        }
    }

    pub fn parse(s: &str) -> Option<CheckInAnswer> {
        CheckInAnswer::ALL.into_iter().find(|a| a.as_str() == s)
    }
}
