//! A commitment the rep made, covering zero or more requirements.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "proposal_commitments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub proposal_id: i64,
    pub position: i32,
    pub ext_id: String,
    pub text: String,
    /// JSON array of the requirement ids (`ext_id`) this commitment covers.
    pub covers: Json,
    pub deliver_by: Option<Date>,
    /// Who delivers it, when not the rep (the onboarding manager, say).
    pub owner_email: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
