//! One version of the proposal snapshot for a deal; a changed body makes a new version.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "proposals")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub deal_id: String,
    pub version: i32,
    pub body_sha256: String,
    pub body: Json,
    pub account_name: String,
    pub rep_email: Option<String>,
    pub received_at: DateTimeUtc,
    /// `api` (pushed through the API) or `crm` (pulled from the CRM by a connector).
    pub origin: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
