//! The audit trail: one row per state change of an order, call, job or email, written in the
//! same transaction as the change.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

pub struct Change<'a> {
    pub actor: &'a str,
    pub entity: &'static str,
    pub entity_id: i64,
    pub action: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

pub async fn record(db: &impl ConnectionTrait, c: Change<'_>, now: DateTime<Utc>) -> Result<(), DbErr> {
    entity::audit_log::Entity::insert(row(c, now)).exec_without_returning(db).await?;
    Ok(())
}

/// Several changes in one statement.
pub async fn record_many<'a>(
    db: &impl ConnectionTrait,
    changes: impl IntoIterator<Item = Change<'a>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows: Vec<_> = changes.into_iter().map(|c| row(c, now)).collect();
    for chunk in rows.chunks(500) {
        entity::audit_log::Entity::insert_many(chunk.to_vec()).exec_without_returning(db).await?;
    }
    Ok(())
}

fn row(c: Change<'_>, now: DateTime<Utc>) -> entity::audit_log::ActiveModel {
    entity::audit_log::ActiveModel {
        at: Set(now),
        actor: Set(c.actor.to_string()),
        entity: Set(c.entity.to_string()),
        entity_id: Set(c.entity_id),
        action: Set(c.action.to_string()),
        from_state: Set(c.from_state.map(String::from)),
        to_state: Set(c.to_state.map(String::from)),
        detail: Set(c.detail),
        ..Default::default()
    }
}
