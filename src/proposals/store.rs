//! Versioned proposal snapshots. A PUT with a changed body adds a version; an identical body
//! (same parsed content) returns the current version unchanged. Each version is kept whole
//! (`body`) and broken into its parts (contacts, requirements, commitments, line items,
//! activities) for querying.
//!
//! A version comes from the API (`PUT /api/v1/proposals`) or from the CRM (a connector's pull);
//! both share one version sequence per deal. Readers get the newest of each merged by
//! [`Proposal::merge`]: what the API says wins where both say something.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::model::Proposal;
use crate::domain::{DealId, Source};

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Pushed through `PUT /api/v1/proposals`.
    Api,
    /// Pulled from the CRM by a connector.
    Crm,
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Crm => "crm",
        }
    }
}

/// A stored version (the newest of each origin, merged).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProposal {
    pub version: i32,
    pub received_at: DateTime<Utc>,
    pub proposal: Proposal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    pub version: i32,
    /// False when the body matched the newest version and nothing was written.
    pub changed: bool,
}

fn digest(p: &Proposal) -> String {
    let bytes = serde_json::to_vec(p).unwrap_or_default();
    hex::encode(crate::config::secrets::sha256(&bytes))
}

/// Stores `proposal` (from `origin`) as the next version unless it equals the newest version of
/// that origin. Call inside a transaction; two concurrent writers of one deal collide on the
/// unique version and the loser's transaction fails (the caller retries).
pub async fn put(
    db: &impl ConnectionTrait,
    source: Source,
    deal_id: &DealId,
    proposal: &Proposal,
    origin: Origin,
    now: DateTime<Utc>,
) -> Result<PutOutcome, DbErr> {
    use entity::proposals;
    let sha = digest(proposal);
    let newest = |origin: Option<Origin>| {
        let mut q = proposals::Entity::find()
            .select_only()
            .columns([proposals::Column::Version, proposals::Column::BodySha256])
            .filter(proposals::Column::Source.eq(source.as_str()))
            .filter(proposals::Column::DealId.eq(deal_id.as_str()));
        if let Some(o) = origin {
            q = q.filter(proposals::Column::Origin.eq(o.as_str()));
        }
        q.order_by_desc(proposals::Column::Version).limit(1).into_tuple::<(i32, String)>()
    };
    if let Some((version, existing)) = newest(Some(origin)).one(db).await?
        && existing == sha
    {
        let latest = newest(None).one(db).await?.map(|(v, _)| v).unwrap_or(version);
        return Ok(PutOutcome { version: latest, changed: false });
    }
    let version = newest(None).one(db).await?.map(|(v, _)| v + 1).unwrap_or(1);
    let am = proposals::ActiveModel {
        source: Set(source.as_str().into()),
        deal_id: Set(deal_id.to_string()),
        version: Set(version),
        body_sha256: Set(sha),
        body: Set(serde_json::to_value(proposal).map_err(|e| DbErr::Custom(e.to_string()))?),
        account_name: Set(proposal.account.name.clone()),
        rep_email: Set(proposal.rep_email.as_ref().map(|e| e.to_string())),
        received_at: Set(now),
        origin: Set(origin.as_str().into()),
        ..Default::default()
    };
    let id = proposals::Entity::insert(am).exec(db).await?.last_insert_id;
    insert_parts(db, id, proposal).await?;
    Ok(PutOutcome { version, changed: true })
}

async fn insert_parts(db: &impl ConnectionTrait, proposal_id: i64, p: &Proposal) -> Result<(), DbErr> {
    use entity::{
        proposal_activities as pa, proposal_commitments as pc, proposal_contacts as pco, proposal_line_items as pl,
        proposal_requirements as pr,
    };
    let pos = |i: usize| Set(i as i32);
    if !p.contacts.is_empty() {
        pco::Entity::insert_many(p.contacts.iter().enumerate().map(|(i, c)| pco::ActiveModel {
            proposal_id: Set(proposal_id),
            position: pos(i),
            name: Set(c.name.clone()),
            email: Set(c.email.as_ref().map(|e| e.to_string())),
            title: Set(c.title.clone()),
            role: Set(c.role.as_str().into()),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    if !p.requirements.is_empty() {
        pr::Entity::insert_many(p.requirements.iter().enumerate().map(|(i, r)| pr::ActiveModel {
            proposal_id: Set(proposal_id),
            position: pos(i),
            ext_id: Set(r.id.clone()),
            text: Set(r.text.clone()),
            priority: Set(r.priority.as_str().into()),
            need_by: Set(r.need_by),
            stated_in: Set(r.stated_in.clone()),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    if !p.commitments.is_empty() {
        pc::Entity::insert_many(p.commitments.iter().enumerate().map(|(i, c)| pc::ActiveModel {
            proposal_id: Set(proposal_id),
            position: pos(i),
            ext_id: Set(c.id.clone()),
            text: Set(c.text.clone()),
            covers: Set(serde_json::json!(c.covers)),
            deliver_by: Set(c.deliver_by),
            owner_email: Set(c.owner.as_ref().map(|o| o.to_string())),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    if !p.line_items.is_empty() {
        pl::Entity::insert_many(p.line_items.iter().enumerate().map(|(i, l)| pl::ActiveModel {
            proposal_id: Set(proposal_id),
            position: pos(i),
            sku: Set(l.sku.clone()),
            name: Set(l.name.clone()),
            quantity: Set(l.quantity),
            unit_price_minor: Set(l.unit_price.minor),
            currency: Set(l.unit_price.currency.to_string()),
            rationale: Set(l.rationale.clone()),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    if !p.activities.is_empty() {
        pa::Entity::insert_many(p.activities.iter().enumerate().map(|(i, a)| pa::ActiveModel {
            proposal_id: Set(proposal_id),
            position: pos(i),
            occurred_at: Set(a.at),
            kind: Set(a.kind.as_str().into()),
            summary: Set(a.summary.clone()),
            ..Default::default()
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// The newest version for a deal: the newest of each origin, merged.
pub async fn latest(db: &impl ConnectionTrait, source: &str, deal_id: &str) -> Result<Option<StoredProposal>, DbErr> {
    Ok(latest_many(db, &[(source.to_string(), deal_id.to_string())]).await?.into_values().next())
}

/// The newest version of one origin, unmerged (what the CRM said last, say).
pub async fn latest_of(db: &impl ConnectionTrait, source: &str, deal_id: &str, origin: Origin) -> Result<Option<StoredProposal>, DbErr> {
    use entity::proposals;
    let Some(m) = proposals::Entity::find()
        .filter(proposals::Column::Source.eq(source))
        .filter(proposals::Column::DealId.eq(deal_id))
        .filter(proposals::Column::Origin.eq(origin.as_str()))
        .order_by_desc(proposals::Column::Version)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let proposal = read_body(m.body, &m.deal_id, m.version)?;
    Ok(Some(StoredProposal { version: m.version, received_at: m.received_at, proposal }))
}

fn read_body(body: serde_json::Value, deal_id: &str, version: i32) -> Result<Proposal, DbErr> {
    serde_json::from_value(body).map_err(|e| DbErr::Custom(format!("stored proposal {deal_id} v{version} is unreadable: {e}")))
}

/// The newest version of each of several deals, in one query (deals without a proposal are
/// absent from the map).
pub async fn latest_many(
    db: &impl ConnectionTrait,
    deals: &[(String, String)],
) -> Result<std::collections::HashMap<(String, String), StoredProposal>, DbErr> {
    use sea_orm::FromQueryResult;
    let mut out = std::collections::HashMap::new();
    for chunk in deals.chunks(400) {
        let backend = db.get_database_backend();
        let mut values = Vec::with_capacity(chunk.len() * 2);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (i, (source, deal)) in chunk.iter().enumerate() {
            tuples.push(format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            values.push(source.clone().into());
            values.push(deal.clone().into());
        }
        let sql = format!(
            "SELECT p.source, p.deal_id, p.version, p.received_at, p.body, p.origin FROM proposals p JOIN \
             (SELECT source, deal_id, MAX(version) AS version FROM proposals WHERE (source, deal_id) IN ({}) GROUP BY source, deal_id, origin) m \
             ON p.source = m.source AND p.deal_id = m.deal_id AND p.version = m.version",
            tuples.join(", ")
        );
        #[derive(FromQueryResult)]
        struct Row {
            source: String,
            deal_id: String,
            version: i32,
            received_at: DateTime<Utc>,
            body: serde_json::Value,
            origin: String,
        }
        // The newest of each origin per deal: (API's, CRM's).
        let mut pairs: std::collections::HashMap<(String, String), (Option<StoredProposal>, Option<StoredProposal>)> =
            std::collections::HashMap::new();
        for r in Row::find_by_statement(crate::db::stmt(backend, &sql, values)).all(db).await? {
            let proposal = read_body(r.body, &r.deal_id, r.version)?;
            let stored = StoredProposal { version: r.version, received_at: r.received_at, proposal };
            let pair = pairs.entry((r.source, r.deal_id)).or_default();
            if r.origin == Origin::Crm.as_str() { pair.1 = Some(stored) } else { pair.0 = Some(stored) }
        }
        for (deal, pair) in pairs {
            let merged = match pair {
                (Some(api), Some(crm)) => StoredProposal {
                    version: api.version.max(crm.version),
                    received_at: api.received_at.max(crm.received_at),
                    proposal: Proposal::merge(api.proposal, crm.proposal),
                },
                (Some(one), None) | (None, Some(one)) => one,
                (None, None) => continue,
            };
            out.insert(deal, merged);
        }
    }
    Ok(out)
}
