//! The closed deal as the CRM reported it, one row per (source, deal).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub deal_id: String,
    pub status: OrderStatus,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub rep_email: Option<String>,
    pub segment: Option<String>,
    pub account_name: Option<String>,
    /// JSON array of the ordered line items.
    pub line_items: Json,
    pub ordered_at: Option<DateTimeUtc>,
    /// When the event that set `status` happened; an older event never overrides it.
    pub status_at: DateTimeUtc,
    /// When the newest applied CRM event happened.
    pub last_event_at: DateTimeUtc,
    /// When the event that stated each fact happened: a fact changes only for a statement at
    /// least as new, whatever the order of delivery.
    pub rep_at: Option<DateTimeUtc>,
    pub amount_at: Option<DateTimeUtc>,
    pub segment_at: Option<DateTimeUtc>,
    pub account_at: Option<DateTimeUtc>,
    pub line_items_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Where an order stands, as its CRM events say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// The row was just created for the event being applied.
    #[sea_orm(string_value = "new")]
    New,
    /// Only updates seen so far: the deal is not won.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Won: the order has a first call.
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::Pending => "pending",
            OrderStatus::Open => "open",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
