//! Dashboard sessions, kept on the server so that logging out ends them. A row is named by the
//! SHA-256 of the random secret that only the browser's cookie holds.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// Hex SHA-256 of the cookie's secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Hex of the first 8 bytes of the SHA-256 of the API token the session was opened with: the
    /// session ends when that token is retired. Empty for a person's session.
    pub token_prefix: String,
    /// The person (email address, lower case) who signed in with a one-time link; none for a
    /// session opened with an API token.
    pub person: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
