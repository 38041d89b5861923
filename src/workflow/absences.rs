//! Out of office, as sales ops (or the rep) record it: the days away and who covers. Recording
//! an absence checks it (the rep and the delegate are in the directory, the days make sense and
//! do not overlap another absence of the rep's) and moves the rep's open calls due during it
//! onto the delegate's clock: their due time, and with it the escalation clock, count the
//! delegate's business hours, and the invite follows. Removing it moves them back. Emails go to
//! the delegate, the rep in copy, whenever they are written during the absence
//! (`compose::recap_and_addressee`).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;

use super::{CallState, FirstCall, replan};
use crate::domain::EmailAddress;
use crate::engine::{Effects, StepError};
use crate::reps::absences::{self, Absence, NewAbsence};
use entity::calls as call_entity;

/// The longest absence one entry may hold.
const MAX_DAYS: i64 = 366;
/// The furthest ahead an absence may start.
const MAX_DAYS_AHEAD: i64 = 731;

/// Why an absence was not recorded or removed.
#[derive(Debug, thiserror::Error)]
pub enum AbsenceError {
    /// The rep is not in the directory, or has no such absence.
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AbsenceError {
    AbsenceError::Invalid { field, reason: reason.into() }
}

/// An absence to record, as asked.
#[derive(Debug, Clone)]
pub struct Ask {
    pub rep: EmailAddress,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub delegate: EmailAddress,
    pub reason: Option<String>,
}

/// Records an absence and moves the rep's open calls due during it onto the delegate's clock,
/// in one transaction with its audit entry. Returns the absence and how many calls moved.
pub async fn record(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    ask: Ask,
    actor: &str,
) -> Result<(Absence, usize), AbsenceError> {
    let txn = crate::db::begin_write(db).await?;
    let rep = crate::reps::get(&txn, ask.rep.as_str())
        .await?
        .ok_or_else(|| AbsenceError::NotFound(format!("no rep {} in the directory", ask.rep)))?;
    if ask.delegate == ask.rep {
        return Err(invalid("delegate", "must be someone else: a rep cannot cover for themselves"));
    }
    if crate::reps::get(&txn, ask.delegate.as_str()).await?.is_none() {
        return Err(invalid("delegate", format!("{} is not in the rep directory: add them first", ask.delegate)));
    }
    if ask.last_day < ask.first_day {
        return Err(invalid("last_day", format!("is before first_day ({})", ask.first_day)));
    }
    let today = now.with_timezone(&rep.timezone.0).date_naive();
    if ask.last_day < today {
        return Err(invalid("last_day", format!("has passed: today is {today} in {}", rep.timezone)));
    }
    if (ask.first_day - today).num_days() > MAX_DAYS_AHEAD {
        return Err(invalid("first_day", format!("is more than {MAX_DAYS_AHEAD} days ahead (today is {today} in {})", rep.timezone)));
    }
    if (ask.last_day - ask.first_day).num_days() >= MAX_DAYS {
        return Err(invalid("last_day", format!("an absence is at most {MAX_DAYS} days; record a longer one in parts")));
    }
    if let Some(other) = absences::of_rep(&txn, &ask.rep, today).await?.into_iter().find(|a| a.overlaps(ask.first_day, ask.last_day)) {
        return Err(invalid(
            "first_day",
            format!(
                "overlaps the absence from {} to {} (id {}, {} covering): remove it first",
                other.first_day, other.last_day, other.id, other.delegate_email
            ),
        ));
    }
    let reason = ask.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let absence = absences::insert(
        &txn,
        NewAbsence {
            rep_email: ask.rep,
            first_day: ask.first_day,
            last_day: ask.last_day,
            delegate_email: ask.delegate,
            reason,
            created_by: actor.to_string(),
        },
        now,
    )
    .await?;
    audit(&txn, &absence, "absence_recorded", actor, now).await?;
    let moved = cover_calls(&txn, fc, &absence, Some(&absence.delegate_email), actor, now).await?;
    txn.commit().await?;
    Ok((absence, moved))
}

/// Removes an absence of `rep` and moves back the calls it had moved. Returns the absence and
/// how many calls moved.
pub async fn remove(
    db: &DatabaseConnection,
    fc: &FirstCall,
    now: DateTime<Utc>,
    rep: &EmailAddress,
    id: i64,
    actor: &str,
) -> Result<(Absence, usize), AbsenceError> {
    let txn = crate::db::begin_write(db).await?;
    let absence = absences::get(&txn, id)
        .await?
        .filter(|a| &a.rep_email == rep)
        .ok_or_else(|| AbsenceError::NotFound(format!("{rep} has no absence with id {id}")))?;
    absences::delete(&txn, id).await?;
    audit(&txn, &absence, "absence_removed", actor, now).await?;
    let moved = cover_calls(&txn, fc, &absence, None, actor, now).await?;
    txn.commit().await?;
    Ok((absence, moved))
}

async fn audit(db: &impl sea_orm::ConnectionTrait, a: &Absence, action: &str, actor: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    let detail = json!({
        "rep": a.rep_email.as_str(),
        "delegate": a.delegate_email.as_str(),
        "first_day": a.first_day,
        "last_day": a.last_day,
        "reason": a.reason,
    });
    crate::audit::record(
        db,
        crate::audit::Change { actor, entity: "absence", entity_id: a.id, action, from_state: None, to_state: None, detail: Some(detail) },
        now,
    )
    .await
}

/// Puts the rep's open calls due during the absence on `delegate`'s clock (`None`: back on the
/// rep's) and re-plans them. A due time the rep moved by hand (booked, snoozed) stands.
async fn cover_calls(
    db: &impl sea_orm::ConnectionTrait,
    fc: &FirstCall,
    absence: &Absence,
    delegate: Option<&EmailAddress>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let rep = crate::reps::recipient(db, &absence.rep_email, fc.config.settings.defaults.timezone).await?;
    // Every local date of a due time lies within a day of its UTC date.
    let window_start = absence.first_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc() - TimeDelta::days(1));
    let window_end = absence.last_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc() + TimeDelta::days(2));
    let (Some(start), Some(end)) = (window_start, window_end) else { return Ok(0) };
    let wanted = delegate.map(|d| d.to_string());
    // Locked in one statement, as the configuration's re-plan locks its calls.
    let calls: Vec<call_entity::Model> = call_entity::Entity::find()
        .filter(call_entity::Column::RepEmail.eq(absence.rep_email.as_str()))
        .filter(call_entity::Column::State.is_in(CallState::OPEN))
        .filter(call_entity::Column::FirstDueAt.is_null())
        .filter(call_entity::Column::DueAt.gte(start))
        .filter(call_entity::Column::DueAt.lt(end))
        .lock_exclusive()
        .all(db)
        .await?
        .into_iter()
        .filter(|c| absence.includes(c.due_at.with_timezone(&rep.timezone.0).date_naive()) && c.covered_by != wanted)
        .map(|c| call_entity::Model { covered_by: wanted.clone(), ..c })
        .collect();
    if calls.is_empty() {
        return Ok(0);
    }
    call_entity::Entity::update_many()
        .col_expr(call_entity::Column::CoveredBy, sea_orm::sea_query::Expr::value(wanted.clone()))
        .filter(call_entity::Column::Id.is_in(calls.iter().map(|c| c.id)))
        .exec(db)
        .await?;
    let reads = replan::Reads::of(db, &fc.config, &calls).await?;
    let (moved, mut fx) = (calls.len(), Effects::default());
    for call in calls {
        replan::replan_call(db, fc, &reads, call, actor, now, &mut fx).await.map_err(|e| match e {
            StepError::Db(e) => e,
            StepError::Failed(m) => DbErr::Custom(m),
        })?;
    }
    Ok(moved)
}
