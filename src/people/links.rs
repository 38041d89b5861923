//! One-time sign-in links. Asking for one stores only the SHA-256 of its random secret (the
//! email carries the secret); the link works once, until it expires. Links asked for are
//! counted per address and per client address over the last hour, and refused over
//! `[sign_in]`'s limits. Rows stay a day after they expire, so a used or expired link is told
//! apart from a wrong one, and the counts hold.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::config::SignInSettings;
use crate::sessions::{new_secret, row_id};
use entity::sign_in_links as links;

/// The window the limits count over.
const WINDOW: TimeDelta = TimeDelta::hours(1);
/// How long a row stays after its link expired.
const KEPT: TimeDelta = TimeDelta::days(1);

/// What asking for a link gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A link to email: its secret, and when it expires.
    Issued { secret: String, expires_at: DateTime<Utc> },
    /// The address may not sign in: nothing to send (the attempt still counts).
    NotAllowed,
    /// Over a limit: try again after this long.
    TooMany { per: Limit, retry_after: TimeDelta },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Address,
    Client,
}

/// Asks for a link for `email` (lower case) from `client`; `allowed` says whether the address may
/// sign in. Run it in a transaction with the email that carries the link.
pub async fn ask(
    db: &impl ConnectionTrait,
    email: &str,
    client: &str,
    allowed: bool,
    settings: &SignInSettings,
    now: DateTime<Utc>,
) -> Result<Asked, DbErr> {
    links::Entity::delete_many().filter(links::Column::ExpiresAt.lt(now - KEPT)).exec(db).await?;
    for (per, column, value, limit) in [
        (Limit::Address, links::Column::Email, email, settings.per_address_per_hour),
        (Limit::Client, links::Column::Client, client, settings.per_client_per_hour),
    ] {
        let recent = links::Entity::find().filter(column.eq(value)).filter(links::Column::CreatedAt.gt(now - WINDOW));
        if recent.clone().count(db).await? >= u64::from(limit) {
            let oldest = recent.order_by_asc(links::Column::CreatedAt).one(db).await?.map_or(now, |r| r.created_at);
            return Ok(Asked::TooMany { per, retry_after: (oldest + WINDOW - now).max(TimeDelta::seconds(1)) });
        }
    }
    let (secret, id) = new_secret()?;
    let expires_at = crate::clock::truncate(now + TimeDelta::minutes(i64::from(settings.link_minutes)));
    let row = links::ActiveModel {
        id: Set(id),
        email: Set(email.to_string()),
        client: Set(client.to_string()),
        sent: Set(allowed),
        created_at: Set(crate::clock::truncate(now)),
        expires_at: Set(expires_at),
        used_at: Set(None),
    };
    links::Entity::insert(row).exec_without_returning(db).await?;
    Ok(if allowed { Asked::Issued { secret, expires_at } } else { Asked::NotAllowed })
}

/// What a link is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// It signs `email` in, until `expires_at`.
    Valid {
        email: String,
        expires_at: DateTime<Utc>,
    },
    /// It was used (at that time).
    Used(DateTime<Utc>),
    Expired,
    /// No link has this secret (mistyped, cut off, or older than a day).
    Unknown,
}

fn state_of(row: Option<links::Model>, now: DateTime<Utc>) -> LinkState {
    match row {
        Some(r) if !r.sent => LinkState::Unknown,
        Some(r) => match r.used_at {
            Some(at) => LinkState::Used(at),
            None if now >= r.expires_at => LinkState::Expired,
            None => LinkState::Valid { email: r.email, expires_at: r.expires_at },
        },
        None => LinkState::Unknown,
    }
}

/// What the link with `secret` is, changing nothing.
pub async fn peek(db: &impl ConnectionTrait, secret: &str, now: DateTime<Utc>) -> Result<LinkState, DbErr> {
    let Some(id) = row_id(secret.trim()) else { return Ok(LinkState::Unknown) };
    Ok(state_of(links::Entity::find_by_id(id).one(db).await?, now))
}

/// Uses the link: `Valid` once, for the first caller only (a conditional UPDATE decides); what
/// it is otherwise.
pub async fn redeem(db: &impl ConnectionTrait, secret: &str, now: DateTime<Utc>) -> Result<LinkState, DbErr> {
    let Some(id) = row_id(secret.trim()) else { return Ok(LinkState::Unknown) };
    let taken = links::Entity::update_many()
        .col_expr(links::Column::UsedAt, sea_orm::sea_query::Expr::value(crate::clock::truncate(now)))
        .filter(links::Column::Id.eq(id.clone()))
        .filter(links::Column::Sent.eq(true))
        .filter(links::Column::UsedAt.is_null())
        .filter(links::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    let row = links::Entity::find_by_id(id).one(db).await?;
    Ok(match row {
        Some(r) if taken.rows_affected == 1 => LinkState::Valid { email: r.email, expires_at: r.expires_at },
        other => state_of(other, now),
    })
}
