//! Changes after the recap. Each open call keeps the recap its rep last heard of
//! (`calls.recap_sent`: the first email's, then each update's). When the deal's proposal gets a
//! new version, or its order's items or amount change, after the first email went and before
//! the call is done, a `call.changed` job is planned after `recap_changes.quiet_minutes`; a
//! further change while it waits moves it on (debounced), but never past
//! `recap_changes.max_wait_minutes` after the first. Its step sends one short email listing only
//! what changed against that recap, and records the list on the call's audit trail, from which
//! the call page marks what is new since the rep last opened it.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::json;

use super::compose::{self, ChangedBy};
use super::{CallState, FirstCall};
use crate::engine::{self, Effects, JobKind, NewJob, StepError};
use crate::recap::Recap;
use entity::calls as call_entity;

/// The audit action of a change email; its detail's `changes` lists what changed.
pub const AUDIT_ACTION: &str = "recap_changed";

/// The open calls of `source`'s deal `deal_id` whose rep has their recap: a change of the
/// deal's proposal is told to each, after the quiet period. Returns how many.
pub async fn deal_changed(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    source: &str,
    deal_id: &str,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let calls = call_entity::Entity::find()
        .filter(call_entity::Column::Source.eq(source))
        .filter(call_entity::Column::DealId.eq(deal_id))
        .filter(call_entity::Column::State.is_in([CallState::Due, CallState::Overdue]))
        .all(db)
        .await?;
    for call in &calls {
        gather(db, fc, call.id, now).await?;
    }
    Ok(calls.len())
}

/// [`deal_changed`] for the open call of an order whose items or amount changed.
pub async fn order_changed(db: &impl ConnectionTrait, fc: &FirstCall, order_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    match super::calls::open_call_of_order(db, order_id).await? {
        Some(call) if call.state != CallState::Scheduled => {
            gather(db, fc, call.id, now).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Plans the call's `call.changed` step after the quiet period, or moves the one waiting.
async fn gather(db: &impl ConnectionTrait, fc: &FirstCall, call_id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    let settings = &fc.config.settings.recap_changes;
    let quiet = TimeDelta::minutes(settings.quiet_minutes.into());
    let max_wait = TimeDelta::minutes(settings.max_wait_minutes.into());
    if engine::enqueue(db, NewJob::new(JobKind::CallChanged, call_id, now + quiet), fc.max_attempts(), now).await? {
        return Ok(());
    }
    engine::postpone_pending(db, call_id, JobKind::CallChanged, |first| (now + quiet).min(first + max_wait)).await?;
    Ok(())
}

/// The recap the rep last heard of, when the call kept one.
pub fn baseline(call: &call_entity::Model) -> Option<Recap> {
    call.recap_sent.as_deref().and_then(|json| serde_json::from_str(json).ok())
}

/// `recap` as `calls.recap_sent` keeps it.
pub fn as_json(recap: &Recap) -> Result<String, StepError> {
    serde_json::to_string(recap).map_err(|e| StepError::Failed(format!("recap: {e}")))
}

/// Keeps `recap` as the one the rep last heard of.
pub async fn remember(db: &impl ConnectionTrait, call: call_entity::Model, recap: &Recap) -> Result<call_entity::Model, StepError> {
    let mut am = call.into_active_model();
    am.recap_sent = Set(Some(as_json(recap)?));
    Ok(am.update(db).await?)
}

/// Sends the rep what changed since the recap they last heard of (when anything did), records
/// it on the call's audit trail, and keeps the recap as it is now.
pub async fn tell(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    baseline: &Recap,
    by: ChangedBy,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<call_entity::Model, StepError> {
    let actor = match by {
        ChangedBy::Crm { .. } => "crm",
        ChangedBy::Deal { .. } => "engine",
    };
    let Some(update) = compose::recap_update(db, fc, &call, baseline, by, now).await? else {
        return Ok(call);
    };
    if crate::mail::outbox::enqueue(db, update.email, now).await? {
        fx.emails += 1;
    }
    crate::audit::record(
        db,
        crate::audit::Change {
            actor,
            entity: "call",
            entity_id: call.id,
            action: AUDIT_ACTION,
            from_state: None,
            to_state: None,
            detail: Some(json!({"changes": update.changes})),
        },
        now,
    )
    .await?;
    remember(db, call, &update.recap).await
}

/// The `call.changed` step: what changed since the rep's recap, in one email. A call closed
/// meanwhile, or whose first email has not gone, has nothing to tell; one that kept no recap
/// (opened before firstcall kept them) keeps today's for the next change.
pub async fn step(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    call: call_entity::Model,
    job_id: i64,
    now: DateTime<Utc>,
    fx: &mut Effects,
) -> Result<(), StepError> {
    if !call.state.is_open() || call.state == CallState::Scheduled {
        return Ok(());
    }
    match baseline(&call) {
        Some(before) => {
            tell(db, fc, call, &before, ChangedBy::Deal { job_id }, now, fx).await?;
        }
        None => {
            let recap = compose::recap_for_call(db, fc, &call).await?;
            remember(db, call, &recap).await?;
        }
    }
    Ok(())
}
