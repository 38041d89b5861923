//! Dashboard sessions, kept on the server so that logging out ends them. Logging in opens a row
//! named by the SHA-256 of a random secret that only the browser's cookie holds (the database
//! never sees the secret, so reading it opens no session); each request looks the row up;
//! logging out deletes it. A session also ends at its expiry, and when the API token it was
//! opened with is retired ([`crate::security::Security::token_live`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::config::secrets::sha256;
use crate::security::Security;
use entity::sessions;

/// Length of a cookie's secret: 32 random bytes, base64url without padding.
const SECRET_LEN: usize = 43;

/// The row id for a cookie value, or `None` when the value cannot be a session's secret.
fn row_id(cookie: &str) -> Option<String> {
    let well_formed = cookie.len() == SECRET_LEN && cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hex::encode(sha256(cookie.as_bytes())))
}

/// Opens a session for the holder of API token `token` until `expires`, and returns the
/// cookie's value. Sessions that expired by `now` are cleared on the way.
pub async fn open(db: &impl ConnectionTrait, token: &str, now: DateTime<Utc>, expires: DateTime<Utc>) -> Result<String, DbErr> {
    sessions::Entity::delete_many().filter(sessions::Column::ExpiresAt.lte(now)).exec(db).await?;
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let id = row_id(&secret).ok_or_else(|| DbErr::Custom("a session secret of the wrong shape".into()))?;
    let row = sessions::ActiveModel {
        id: Set(id),
        token_prefix: Set(Security::token_prefix(token)),
        created_at: Set(crate::clock::truncate(now)),
        expires_at: Set(crate::clock::truncate(expires)),
    };
    sessions::Entity::insert(row).exec_without_returning(db).await?;
    Ok(secret)
}

/// Whether `cookie` names a live session: opened, not logged out, not expired, and its token
/// not retired.
pub async fn is_live(db: &impl ConnectionTrait, security: &Security, cookie: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let Some(id) = row_id(cookie) else { return Ok(false) };
    let row = sessions::Entity::find_by_id(id).one(db).await?;
    Ok(row.is_some_and(|s| now < s.expires_at && security.token_live(&s.token_prefix, now)))
}

/// Ends the session `cookie` names, if any.
pub async fn close(db: &impl ConnectionTrait, cookie: &str) -> Result<(), DbErr> {
    if let Some(id) = row_id(cookie) {
        sessions::Entity::delete_by_id(id).exec(db).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::row_id;

    #[test]
    fn only_a_secret_of_the_issued_shape_names_a_row() {
        let secret = "a".repeat(43);
        assert_eq!(row_id(&secret).map(|id| id.len()), Some(64));
        for bad in ["", "short", &"a".repeat(44), &format!("{}.", "a".repeat(42)), &format!("{}é", "a".repeat(41))] {
            assert_eq!(row_id(bad), None, "{bad:?}");
        }
    }
}
