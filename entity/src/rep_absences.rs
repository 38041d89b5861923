//! A rep's absence: the days they are out of office (in their timezone, both included) and who
//! covers for them meanwhile.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "rep_absences")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub rep_email: String,
    pub first_day: Date,
    pub last_day: Date,
    pub delegate_email: String,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
