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
    /// `pending` (only updates seen so far), `open` or `cancelled`.
    pub status: String,
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
    /// When the newest applied CRM event happened; older events only fill facts still unknown.
    pub last_event_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
