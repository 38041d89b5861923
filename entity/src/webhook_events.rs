//! Every accepted CRM event, raw, with the key that makes redeliveries harmless.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub dedupe_key: String,
    pub event_type: String,
    pub deal_id: Option<String>,
    pub occurred_at: Option<DateTimeUtc>,
    pub received_at: DateTimeUtc,
    /// The event exactly as received (one element of a batch).
    pub payload: String,
    /// `pending` until the engine applies the event; then what applying it did (`opened`,
    /// `cancelled`, `updated`, `recorded`, `stale`), or `failed` (see `error`).
    pub outcome: String,
    pub order_id: Option<i64>,
    /// What the event does to the order (`created`, `updated`, `cancelled`), as the intake read it.
    pub transition: Option<String>,
    /// The facts the event states (JSON), as the intake read them.
    pub facts: Option<String>,
    /// Why applying the event failed, when it did.
    pub error: Option<String>,
    pub applied_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
