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
    /// `scheduled`, `due`, `overdue`, `done` or `cancelled`.
    pub state: String,
    pub schedule_name: String,
    pub ordered_at: DateTimeUtc,
    pub due_at: DateTimeUtc,
    pub invite_sequence: i32,
    pub reminders_sent: i32,
    pub escalation_level: i32,
    pub last_reminder_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub notes: Option<String>,
    pub completed_at: Option<DateTimeUtc>,
    pub completed_by: Option<String>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
