//! Sessions of the pages, kept on the server so that logging out ends them. Signing in (a
//! person with a one-time link, `people::links`, or an administrator with an API token)
//! opens a row named by the SHA-256 of a random secret that only the browser's cookie holds (the
//! database never sees the secret, so reading it opens no session); each request looks the row
//! up; logging out deletes it. A session also ends at its expiry, and a token's session when the
//! token is retired ([`crate::security::Security::token_live`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::config::secrets::sha256;
use crate::security::Security;
use entity::sessions;

/// Length of a secret: 32 random bytes, base64url without padding.
const SECRET_LEN: usize = 43;

/// The row id for a secret (a cookie's, a sign-in link's), or `None` when the value cannot be
/// one.
pub fn row_id(secret: &str) -> Option<String> {
    let well_formed = secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hex::encode(sha256(secret.as_bytes())))
}

/// A new random secret and the id of its row.
pub fn new_secret() -> Result<(String, String), DbErr> {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let id = row_id(&secret).ok_or_else(|| DbErr::Custom("a secret of the wrong shape".into()))?;
    Ok((secret, id))
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Someone who logged in with an API token.
    Token,
    /// A person who signed in with a link sent to this address.
    Person(String),
}

/// Opens a session for `opener` (an API token, or a person's address) until `expires`, and
/// returns the cookie's value. Sessions that expired by `now` are cleared on the way.
pub async fn open(db: &impl ConnectionTrait, opener: Opener<'_>, now: DateTime<Utc>, expires: DateTime<Utc>) -> Result<String, DbErr> {
    sessions::Entity::delete_many().filter(sessions::Column::ExpiresAt.lte(now)).exec(db).await?;
    let (secret, id) = new_secret()?;
    let (token_prefix, person) = match opener {
        Opener::Token(token) => (Security::token_prefix(token), None),
        Opener::Person(email) => (String::new(), Some(email.to_string())),
    };
    let row = sessions::ActiveModel {
        id: Set(id),
        token_prefix: Set(token_prefix),
        person: Set(person),
        created_at: Set(crate::clock::truncate(now)),
        expires_at: Set(crate::clock::truncate(expires)),
    };
    sessions::Entity::insert(row).exec_without_returning(db).await?;
    Ok(secret)
}

/// What opens a session.
#[derive(Debug, Clone, Copy)]
pub enum Opener<'a> {
    Token(&'a str),
    Person(&'a str),
}

/// Who `cookie`'s session is for, when it is live: opened, not logged out, not expired, and (for
/// a token's) its token not retired.
pub async fn holder(db: &impl ConnectionTrait, security: &Security, cookie: &str, now: DateTime<Utc>) -> Result<Option<Holder>, DbErr> {
    let Some(id) = row_id(cookie) else { return Ok(None) };
    let Some(s) = sessions::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
    Ok(match s.person {
        _ if now >= s.expires_at => None,
        Some(person) => Some(Holder::Person(person)),
        None => security.token_live(&s.token_prefix, now).then_some(Holder::Token),
    })
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
