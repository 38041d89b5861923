//! Out of office: the days a rep is away (in their timezone, first and last day included) and
//! who covers for them meanwhile. While a rep is away, emails about their calls go to the
//! delegate with the rep in copy ([`covers`]); a delegate away on the same day passes the cover
//! on to their own delegate.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::Recipient;
use crate::domain::{EmailAddress, Timezone};
use entity::rep_absences;

/// An absence as the directory holds it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Absence {
    pub id: i64,
    #[schema(value_type = String, example = "ana@seller.example")]
    pub rep_email: EmailAddress,
    /// The first day away, in the rep's timezone.
    #[schema(value_type = String, example = "2026-12-21")]
    pub first_day: NaiveDate,
    /// The last day away (included).
    #[schema(value_type = String, example = "2027-01-01")]
    pub last_day: NaiveDate,
    /// Who covers: emails about the rep's calls go to them, the rep in copy.
    #[schema(value_type = String, example = "ben@seller.example")]
    pub delegate_email: EmailAddress,
    pub reason: Option<String>,
    /// Who recorded it (`api`, `dashboard`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Absence {
    /// Whether the rep is away on `day`.
    pub fn includes(&self, day: NaiveDate) -> bool {
        self.first_day <= day && day <= self.last_day
    }

    /// Whether the two absences share a day.
    pub fn overlaps(&self, first_day: NaiveDate, last_day: NaiveDate) -> bool {
        self.first_day <= last_day && first_day <= self.last_day
    }
}

fn from_model(m: rep_absences::Model) -> Option<Absence> {
    Some(Absence {
        id: m.id,
        rep_email: EmailAddress::parse(&m.rep_email).ok()?,
        first_day: m.first_day,
        last_day: m.last_day,
        delegate_email: EmailAddress::parse(&m.delegate_email).ok()?,
        reason: m.reason,
        created_by: m.created_by,
        created_at: m.created_at,
    })
}

/// An absence to record.
#[derive(Debug, Clone)]
pub struct NewAbsence {
    pub rep_email: EmailAddress,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub delegate_email: EmailAddress,
    pub reason: Option<String>,
    pub created_by: String,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewAbsence, now: DateTime<Utc>) -> Result<Absence, DbErr> {
    let am = rep_absences::ActiveModel {
        rep_email: Set(new.rep_email.to_string()),
        first_day: Set(new.first_day),
        last_day: Set(new.last_day),
        delegate_email: Set(new.delegate_email.to_string()),
        reason: Set(new.reason),
        created_by: Set(new.created_by),
        created_at: Set(now),
        ..Default::default()
    };
    let m = rep_absences::Entity::insert(am).exec_with_returning(db).await?;
    from_model(m).ok_or_else(|| DbErr::Custom("an absence was stored with an address that does not parse".into()))
}

/// The rep's absences that end on `from` or later, earliest first.
pub async fn of_rep(db: &impl ConnectionTrait, rep: &EmailAddress, from: NaiveDate) -> Result<Vec<Absence>, DbErr> {
    Ok(rep_absences::Entity::find()
        .filter(rep_absences::Column::RepEmail.eq(rep.as_str()))
        .filter(rep_absences::Column::LastDay.gte(from))
        .order_by_asc(rep_absences::Column::FirstDay)
        .all(db)
        .await?
        .into_iter()
        .filter_map(from_model)
        .collect())
}

/// Every absence that ends on `from` or later, earliest first, at most `limit`.
pub async fn upcoming(db: &impl ConnectionTrait, from: NaiveDate, limit: u64) -> Result<Vec<Absence>, DbErr> {
    use sea_orm::QuerySelect;
    Ok(rep_absences::Entity::find()
        .filter(rep_absences::Column::LastDay.gte(from))
        .order_by_asc(rep_absences::Column::FirstDay)
        .order_by_asc(rep_absences::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .filter_map(from_model)
        .collect())
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<Option<Absence>, DbErr> {
    Ok(rep_absences::Entity::find_by_id(id).one(db).await?.and_then(from_model))
}

pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(rep_absences::Entity::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

/// Who covers for a rep at a time, and the absence that makes it so.
#[derive(Debug, Clone, PartialEq)]
pub struct Cover {
    /// Who the rep's emails go to: the absence's delegate, or further along when they are away
    /// too.
    pub delegate: Recipient,
    /// The rep's own absence.
    pub absence: Absence,
}

/// How far a cover is passed on when delegates are away too.
const MAX_HOPS: usize = 4;

/// The absence of each of `reps` that includes `at` (on the rep's own calendar).
async fn away_at(db: &impl ConnectionTrait, reps: &[&Recipient], at: DateTime<Utc>) -> Result<HashMap<EmailAddress, Absence>, DbErr> {
    if reps.is_empty() {
        return Ok(HashMap::new());
    }
    let tz: HashMap<&EmailAddress, Timezone> = reps.iter().map(|r| (&r.email, r.timezone)).collect();
    // Every local date of `at` lies within a day of its UTC date.
    let utc_day = at.date_naive();
    let mut out = HashMap::new();
    let emails: Vec<String> = reps.iter().map(|r| r.email.to_string()).collect();
    for chunk in emails.chunks(500) {
        let rows = rep_absences::Entity::find()
            .filter(rep_absences::Column::RepEmail.is_in(chunk.iter().cloned()))
            .filter(rep_absences::Column::LastDay.gte(utc_day - TimeDelta::days(1)))
            .filter(rep_absences::Column::FirstDay.lte(utc_day + TimeDelta::days(1)))
            .order_by_asc(rep_absences::Column::Id)
            .all(db)
            .await?;
        for a in rows.into_iter().filter_map(from_model) {
            let Some(zone) = tz.get(&a.rep_email) else { continue };
            if a.includes(at.with_timezone(&zone.0).date_naive()) {
                out.entry(a.rep_email.clone()).or_insert(a);
            }
        }
    }
    Ok(out)
}

/// Who covers for each of `reps` that is away at `at`: the delegate of their absence, or when
/// the delegate is away then too, the delegate's delegate (a few hops at most). A chain that
/// comes back to someone already in it covers nobody: that rep keeps their own emails.
pub async fn covers(
    db: &impl ConnectionTrait,
    reps: &[Recipient],
    at: DateTime<Utc>,
    default_tz: Timezone,
) -> Result<HashMap<EmailAddress, Cover>, DbErr> {
    let mut known: HashMap<EmailAddress, Recipient> = reps.iter().map(|r| (r.email.clone(), r.clone())).collect();
    let mut away: HashMap<EmailAddress, Absence> = HashMap::new();
    let mut asked: HashSet<EmailAddress> = HashSet::new();
    let mut frontier: Vec<EmailAddress> = known.keys().cloned().collect();
    for _ in 0..MAX_HOPS {
        asked.extend(frontier.iter().cloned());
        let people: Vec<&Recipient> = frontier.iter().filter_map(|e| known.get(e)).collect();
        let found = away_at(db, &people, at).await?;
        if found.is_empty() {
            break;
        }
        let unknown: Vec<EmailAddress> = found.values().map(|a| a.delegate_email.clone()).filter(|d| !known.contains_key(d)).collect();
        known.extend(super::recipients(db, &unknown, default_tz).await?);
        frontier = found.values().map(|a| a.delegate_email.clone()).filter(|d| !asked.contains(d)).collect();
        away.extend(found);
    }
    let mut out = HashMap::new();
    for rep in reps {
        let Some(own) = away.get(&rep.email) else { continue };
        let mut seen = HashSet::from([rep.email.clone()]);
        let mut current = &own.delegate_email;
        let mut looped = false;
        while let Some(next) = away.get(current) {
            if !seen.insert(current.clone()) || seen.contains(&next.delegate_email) {
                looped = true;
                break;
            }
            current = &next.delegate_email;
        }
        if looped {
            continue;
        }
        if let Some(delegate) = known.get(current) {
            out.insert(rep.email.clone(), Cover { delegate: delegate.clone(), absence: own.clone() });
        }
    }
    Ok(out)
}

/// [`covers`] for one rep.
pub async fn cover(db: &impl ConnectionTrait, rep: &Recipient, at: DateTime<Utc>, default_tz: Timezone) -> Result<Option<Cover>, DbErr> {
    Ok(covers(db, std::slice::from_ref(rep), at, default_tz).await?.remove(&rep.email))
}
