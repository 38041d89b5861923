//! One-time sign-in links sent by email. A row is named by the SHA-256 of the link's secret,
//! which only the email holds.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sign_in_links")]
pub struct Model {
    /// Hex SHA-256 of the link's secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The address the link was asked for (lower case).
    pub email: String,
    /// The client address that asked.
    pub client: String,
    /// Whether a link was emailed: false for an address that may not sign in (the row only
    /// counts the attempt).
    pub sent: bool,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
