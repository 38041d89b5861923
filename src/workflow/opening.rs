//! Opening first calls: whom the call goes to (the order's rep, else the proposal's, else the
//! sales-ops inbox; an address firstcall may not email also goes to sales ops, with the reason,
//! see [`super::recipients`]), which schedule applies and when the call is due, and the rows that
//! start it (the call, its audit row, its first timer, and the pull of the deal from its CRM
//! when a connector reads that CRM). One order or a whole group of new orders
//! (a webhook burst) costs the same fixed number of statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::json;

use super::recipients::{self, Named};
use super::{CallState, FirstCall, timing};
use crate::domain::{EmailAddress, Source};
use crate::engine::{JobKind, NewJob};
use entity::{calls, orders};

/// Where a new call goes and when it is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rep: EmailAddress,
    pub schedule: String,
    pub due_at: DateTime<Utc>,
    /// Why the call goes to the sales-ops inbox instead of the address the order or proposal
    /// names (firstcall may not email that address).
    pub fallback_reason: Option<String>,
    /// Who covers for the rep, who is out of office now: the call is planned on their clock.
    pub covered_by: Option<EmailAddress>,
}

/// Plans a call for each order at `now`, reading the newest proposals, the reps and their
/// absences in one query each. A call for a rep who is out of office is due on the clock of who
/// covers for them.
pub async fn plan_many(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    orders: &[&orders::Model],
    now: DateTime<Utc>,
) -> Result<Vec<Plan>, DbErr> {
    let defaults = &fc.config.settings.defaults;
    let deals: Vec<(String, String)> = orders.iter().map(|o| (o.source.clone(), o.deal_id.clone())).collect();
    let proposals = crate::proposals::store::latest_many(db, &deals).await?;
    let named: Vec<Option<(EmailAddress, Named)>> = orders
        .iter()
        .map(|o| {
            o.rep_email.as_deref().and_then(|e| EmailAddress::parse(e).ok()).map(|e| (e, Named::Owner)).or_else(|| {
                proposals
                    .get(&(o.source.clone(), o.deal_id.clone()))
                    .and_then(|p| p.proposal.rep_email.clone())
                    .map(|e| (e, Named::ProposalRep))
            })
        })
        .collect();
    let lookup: Vec<EmailAddress> =
        named.iter().filter_map(|n| n.as_ref().map(|(e, _)| e.clone())).chain([defaults.unassigned_email.clone()]).collect();
    let directory = crate::reps::recipients(db, &lookup, defaults.timezone).await?;
    let routed: Vec<(EmailAddress, Option<String>)> = orders
        .iter()
        .zip(named)
        .map(|(o, named)| match named {
            Some((email, named)) => {
                let wanted = directory.get(&email).cloned().unwrap_or_else(|| crate::reps::Recipient::unknown(email, defaults.timezone));
                let (rep, reason) = recipients::route(&fc.config, &wanted, named);
                if let Some(reason) = &reason {
                    tracing::info!(source = %o.source, deal = %o.deal_id, "call routed to {rep}: {reason}");
                }
                (rep, reason)
            }
            None => (defaults.unassigned_email.clone(), None),
        })
        .collect();
    let known: Vec<crate::reps::Recipient> = routed.iter().filter_map(|(rep, _)| directory.get(rep).filter(|r| r.known).cloned()).collect();
    let covers = crate::reps::absences::covers(db, &known, now, defaults.timezone).await?;
    Ok(orders
        .iter()
        .zip(routed)
        .map(|(o, (rep, fallback_reason))| {
            let source = Source::parse(&o.source).unwrap_or(Source::Generic);
            let segment = o
                .segment
                .clone()
                .or_else(|| proposals.get(&(o.source.clone(), o.deal_id.clone())).and_then(|p| p.proposal.account.segment.clone()));
            let schedule = fc.config.schedule_for(source, super::calls::order_amount(o).as_ref(), segment.as_deref());
            let cover = covers.get(&rep).map(|c| &c.delegate).filter(|d| recipients::may_email(&fc.config, d));
            let tz = cover.or(directory.get(&rep)).map(|r| r.timezone).unwrap_or(defaults.timezone);
            let ordered_at = o.ordered_at.unwrap_or(o.created_at);
            Plan {
                due_at: timing::first_call_due_at(schedule, tz.0, ordered_at),
                schedule: schedule.name.clone(),
                covered_by: cover.map(|d| d.email.clone()),
                rep,
                fallback_reason,
            }
        })
        .collect())
}

/// Opens the first call of each order that just became open (inside the caller's
/// transaction): the call, its audit row and its first step (recap and invite to the rep, due
/// at once). Returns the calls in the orders' order.
pub async fn open_many(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    orders: &[&orders::Model],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<calls::Model>, DbErr> {
    if orders.is_empty() {
        return Ok(vec![]);
    }
    let plans = plan_many(db, fc, orders, now).await?;
    let rows = orders.iter().zip(&plans).map(|(o, p)| calls::ActiveModel {
        order_id: Set(o.id),
        source: Set(o.source.clone()),
        deal_id: Set(o.deal_id.clone()),
        rep_email: Set(p.rep.to_string()),
        state: Set(CallState::Scheduled),
        schedule_name: Set(p.schedule.clone()),
        ordered_at: Set(o.ordered_at.unwrap_or(now)),
        due_at: Set(p.due_at),
        invite_sequence: Set(0),
        reminders_sent: Set(0),
        escalation_level: Set(0),
        last_reminder_at: Set(None),
        outcome: Set(None),
        notes: Set(None),
        completed_at: Set(None),
        completed_by: Set(None),
        cancelled_at: Set(None),
        fallback_reason: Set(p.fallback_reason.clone()),
        covered_by: Set(p.covered_by.as_ref().map(|d| d.to_string())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    });
    let inserted = calls::Entity::insert_many(rows).exec_with_returning(db).await?;
    // RETURNING order is not promised; match the calls to their orders.
    let mut by_order: HashMap<i64, calls::Model> = inserted.into_iter().map(|c| (c.order_id, c)).collect();
    let calls: Vec<calls::Model> =
        orders.iter().map(|o| by_order.remove(&o.id).ok_or_else(|| DbErr::RecordNotInserted)).collect::<Result<_, _>>()?;
    let changes = calls.iter().zip(&plans).map(|(c, p)| {
        let mut detail = json!({"rep": p.rep.as_str(), "schedule": p.schedule, "due_at": p.due_at});
        if let Some(reason) = &p.fallback_reason {
            detail["fallback_reason"] = json!(reason);
        }
        if let Some(delegate) = &p.covered_by {
            detail["covered_by"] = json!(delegate.as_str());
        }
        crate::audit::Change {
            actor,
            entity: "call",
            entity_id: c.id,
            action: "opened",
            from_state: None,
            to_state: Some("scheduled"),
            detail: Some(detail),
        }
    });
    crate::audit::record_many(db, changes, now).await?;
    // A call of a CRM with a connector first reads the deal from the CRM; its first email waits
    // for that up to `crm.enrich_wait_secs` (`workflow::enrich` brings it forward).
    let mut starts = Vec::with_capacity(calls.len());
    let mut pulls = Vec::new();
    for c in &calls {
        let source = Source::parse(&c.source).unwrap_or(Source::Generic);
        let wait = super::enrich::wait_for(fc, source);
        starts.push(NewJob::new(JobKind::CallStart, c.id, now + wait));
        if fc.enriches(source) {
            pulls.push(super::enrich::job(c.id, source, &c.deal_id, now));
        }
    }
    crate::engine::enqueue_many(db, starts, fc.max_attempts(), now).await?;
    if !pulls.is_empty() {
        crate::engine::enqueue_many(db, pulls, fc.crm_attempts(), now).await?;
    }
    Ok(calls)
}

/// [`open_many`] for one order.
pub async fn open_for_order(
    db: &impl ConnectionTrait,
    fc: &FirstCall,
    order: &orders::Model,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<calls::Model, DbErr> {
    open_many(db, fc, &[order], actor, now).await?.pop().ok_or(DbErr::RecordNotInserted)
}
