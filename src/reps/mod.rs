//! The rep directory: name, timezone and manager per rep email, plus the rep's user ids in
//! each CRM. Calls go to reps; escalations follow the manager chain.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use crate::domain::{EmailAddress, Source, Timezone};

pub mod absences;
pub use absences::{Absence, Cover};

/// A rep as the directory knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rep {
    #[schema(value_type = String, example = "ana@seller.example")]
    pub email: EmailAddress,
    pub name: String,
    #[schema(value_type = String, example = "Europe/Berlin")]
    pub timezone: Timezone,
    #[schema(value_type = Option<String>)]
    pub manager_email: Option<EmailAddress>,
    /// The rep's user id in each CRM, e.g. `{"hubspot": "41234", "salesforce": "005…"}`.
    #[serde(default)]
    pub crm_ids: BTreeMap<String, String>,
}

/// Who a call goes to, resolved for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub timezone: Timezone,
    pub manager_email: Option<EmailAddress>,
    /// False when the directory has no entry: defaults were used.
    pub known: bool,
}

impl Recipient {
    /// An address the directory has no entry for: the default timezone, no name, no manager.
    pub fn unknown(email: EmailAddress, timezone: Timezone) -> Recipient {
        Recipient { email, name: None, timezone, manager_email: None, known: false }
    }
}

pub async fn upsert(db: &impl ConnectionTrait, rep: &Rep, now: DateTime<Utc>) -> Result<(), DbErr> {
    use entity::{rep_crm_ids, reps};
    let am = reps::ActiveModel {
        email: Set(rep.email.to_string()),
        name: Set(rep.name.clone()),
        timezone: Set(rep.timezone.name().to_string()),
        manager_email: Set(rep.manager_email.as_ref().map(|m| m.to_string())),
        created_at: Set(now),
        updated_at: Set(now),
    };
    reps::Entity::insert(am)
        .on_conflict(
            OnConflict::column(reps::Column::Email)
                .update_columns([reps::Column::Name, reps::Column::Timezone, reps::Column::ManagerEmail, reps::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    rep_crm_ids::Entity::delete_many().filter(rep_crm_ids::Column::RepEmail.eq(rep.email.as_str())).exec(db).await?;
    for (source, id) in &rep.crm_ids {
        let am =
            rep_crm_ids::ActiveModel { source: Set(source.clone()), crm_user_id: Set(id.clone()), rep_email: Set(rep.email.to_string()) };
        rep_crm_ids::Entity::insert(am)
            .on_conflict(
                OnConflict::columns([rep_crm_ids::Column::Source, rep_crm_ids::Column::CrmUserId])
                    .update_column(rep_crm_ids::Column::RepEmail)
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, email: &str) -> Result<Option<Rep>, DbErr> {
    use entity::{rep_crm_ids, reps};
    let Some(m) = reps::Entity::find_by_id(email.to_string()).one(db).await? else {
        return Ok(None);
    };
    let ids = rep_crm_ids::Entity::find().filter(rep_crm_ids::Column::RepEmail.eq(email)).all(db).await?;
    Ok(Some(from_model(m, ids.into_iter().map(|r| (r.source, r.crm_user_id)).collect())))
}

fn from_model(m: entity::reps::Model, crm_ids: BTreeMap<String, String>) -> Rep {
    Rep {
        email: EmailAddress::parse(&m.email).unwrap_or_else(|_| EmailAddress::parse("invalid@invalid.invalid").expect("literal")),
        name: m.name,
        timezone: Timezone::parse(&m.timezone).unwrap_or_default(),
        manager_email: m.manager_email.as_deref().and_then(|e| EmailAddress::parse(e).ok()),
        crm_ids,
    }
}

/// Whether the directory has no rep at all.
pub async fn directory_is_empty(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(entity::reps::Entity::find().one(db).await?.is_none())
}

/// The rep email registered for a CRM user id.
pub async fn email_for_crm_user(db: &impl ConnectionTrait, source: Source, crm_user_id: &str) -> Result<Option<EmailAddress>, DbErr> {
    let row = entity::rep_crm_ids::Entity::find_by_id((source.as_str().to_string(), crm_user_id.to_string())).one(db).await?;
    Ok(row.and_then(|r| EmailAddress::parse(&r.rep_email).ok()))
}

/// Everything needed to mail `email`: the directory entry, or the default timezone.
pub async fn recipient(db: &impl ConnectionTrait, email: &EmailAddress, default_tz: Timezone) -> Result<Recipient, DbErr> {
    Ok(match entity::reps::Entity::find_by_id(email.to_string()).one(db).await? {
        Some(m) => Recipient {
            email: email.clone(),
            name: Some(m.name.clone()).filter(|n| !n.is_empty()),
            timezone: Timezone::parse(&m.timezone).unwrap_or(default_tz),
            manager_email: m.manager_email.as_deref().and_then(|e| EmailAddress::parse(e).ok()),
            known: true,
        },
        None => Recipient::unknown(email.clone(), default_tz),
    })
}

/// [`recipient`] for several addresses in one query.
pub async fn recipients(
    db: &impl ConnectionTrait,
    emails: &[EmailAddress],
    default_tz: Timezone,
) -> Result<std::collections::HashMap<EmailAddress, Recipient>, DbErr> {
    let mut out: std::collections::HashMap<EmailAddress, Recipient> =
        emails.iter().map(|e| (e.clone(), Recipient::unknown(e.clone(), default_tz))).collect();
    let wanted: Vec<String> = out.keys().map(|e| e.to_string()).collect();
    for chunk in wanted.chunks(500) {
        for m in entity::reps::Entity::find().filter(entity::reps::Column::Email.is_in(chunk.iter().cloned())).all(db).await? {
            if let Ok(email) = EmailAddress::parse(&m.email) {
                out.insert(
                    email.clone(),
                    Recipient {
                        email,
                        name: Some(m.name.clone()).filter(|n| !n.is_empty()),
                        timezone: Timezone::parse(&m.timezone).unwrap_or(default_tz),
                        manager_email: m.manager_email.as_deref().and_then(|e| EmailAddress::parse(e).ok()),
                        known: true,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// [`email_for_crm_user`] for several CRM user ids of one source, in one query.
pub async fn emails_for_crm_users(
    db: &impl ConnectionTrait,
    source: Source,
    crm_user_ids: &[String],
) -> Result<std::collections::HashMap<String, EmailAddress>, DbErr> {
    use entity::rep_crm_ids;
    let mut out = std::collections::HashMap::new();
    for chunk in crm_user_ids.chunks(500) {
        let rows = rep_crm_ids::Entity::find()
            .filter(rep_crm_ids::Column::Source.eq(source.as_str()))
            .filter(rep_crm_ids::Column::CrmUserId.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        for r in rows {
            if let Ok(e) = EmailAddress::parse(&r.rep_email) {
                out.insert(r.crm_user_id, e);
            }
        }
    }
    Ok(out)
}
