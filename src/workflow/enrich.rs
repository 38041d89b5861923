//! `crm.enrich`: reads a call's deal from its CRM and stores it as a proposal version (origin
//! `crm`), so the recap, its gaps and the agenda work on the CRM's own data.
//!
//! When a call of a CRM with a connector opens, this job is due at once and the call's first
//! step (`call.start`) waits up to `crm.enrich_wait_secs`. The request to the CRM is the job's
//! outside work ([`crate::engine::Handler::prepare`]): it runs before the step's transaction,
//! so a slow CRM holds no lock and delays no reminder. Then, in the step:
//! - the deal as read is stored (a repeat of the last pull stores nothing); the deal owner
//!   becomes the proposal's rep, or the rep directory's `crm_ids` entry for the owner's CRM id;
//!   the deal's line items become the order's (what was bought; CRM webhooks carry none), and a
//!   HubSpot quote's the proposal's, so the recap compares the two;
//! - the call is planned again as for a changed order ([`super::calls::replan_for_order`]), so a
//!   call that went to the sales-ops inbox for want of an owner moves to the owner;
//! - a call whose first email has not gone yet gets it now, rather than at the end of the wait;
//!   a call whose first email went without the CRM's view (the CRM was slow or down) gets a
//!   short update listing what that view changed in the recap ([`crate::recap::changes`]),
//!   not a second full recap.
//!
//! A CRM that fails (down, 5xx, timeout, rate limit) fails the attempt: the engine retries it
//! with backoff, and the first email goes at the end of the wait with what is stored, saying so
//! in one line. A deal the CRM does not have is recorded in the call's history and not retried; the
//! first email goes at once.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::compose::ChangedBy;
use super::{CallState, FirstCall, calls};
use crate::audit::{self, Change};
use crate::crm::CrmError;
use crate::domain::{DealId, OrderedItem, Source};
use crate::engine::{ClaimedJob, Effects, Handler, JobKind, NewJob, StepError};
use crate::proposals::model::Proposal;
use crate::proposals::store::{self, Origin};

/// The job's payload: which deal to read (so the request needs no database read first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub source: String,
    pub deal_id: String,
}

/// What the outside work read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Pulled {
    Deal { proposal: Box<Proposal>, owner_id: Option<String>, ordered: Vec<OrderedItem> },
    NotFound { reason: String },
}

/// The job for `call_id`'s deal, due at `at`.
pub fn job(call_id: i64, source: Source, deal_id: &str, at: DateTime<Utc>) -> NewJob {
    NewJob::new(JobKind::CrmEnrich, call_id, at).with_payload(json!(Target { source: source.as_str().into(), deal_id: deal_id.into() }))
}

/// The engine's handler for `crm.enrich`.
pub struct Enrich(pub Arc<super::Live>);

impl Enrich {
    async fn pull(&self, job: &ClaimedJob) -> Result<serde_json::Value, StepError> {
        let target: Target = job.payload_as("crm.enrich needs a payload with source and deal_id")?;
        let fc = self.0.get();
        let (source, connector) = fc.connector_for(&target.source)?;
        let pulled = match connector.fetch_deal(&target.deal_id).await {
            Ok(ctx) => {
                let proposal = ctx.to_proposal(source, &target.deal_id, &fc.config.settings.crm.roles);
                Pulled::Deal { proposal: Box::new(proposal), ordered: ctx.ordered_items(), owner_id: ctx.owner_id }
            }
            Err(CrmError::NotFound(reason)) => Pulled::NotFound { reason },
            Err(e) => return Err(StepError::Failed(e.to_string())),
        };
        serde_json::to_value(pulled).map_err(|e| StepError::Failed(e.to_string()))
    }
}

impl Handler for Enrich {
    fn prepares(&self) -> bool {
        true
    }

    fn prepare<'a>(&'a self, job: &'a ClaimedJob, _now: DateTime<Utc>) -> BoxFuture<'a, Result<serde_json::Value, StepError>> {
        Box::pin(self.pull(job))
    }

    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(async move { apply(txn, &self.0.get(), job, now).await })
    }
}

async fn apply(db: &impl ConnectionTrait, fc: &FirstCall, job: &ClaimedJob, now: DateTime<Utc>) -> Result<Effects, StepError> {
    let mut fx = Effects::default();
    let Some(call_id) = job.subject_id else {
        return Err(StepError::Failed("crm.enrich needs a call".into()));
    };
    let pulled: Pulled = job.prepared_as("crm.enrich ran without its pull")?;
    let Some(call) = calls::lock(db, call_id).await? else {
        return Ok(fx);
    };
    let (mut proposal, owner_id, ordered) = match pulled {
        Pulled::Deal { proposal, owner_id, ordered } => (*proposal, owner_id, ordered),
        Pulled::NotFound { reason } => {
            tracing::warn!(call = call.id, deal = %call.deal_id, "the CRM does not have the call's deal: {reason}");
            record(db, call.id, "crm_not_found", json!({"reason": reason}), now).await?;
            // The CRM has answered: nothing more will come, so the first email need not wait.
            if call.state == CallState::Scheduled && start_now(db, call.id, now).await? {
                fx.jobs_due_now += 1;
            }
            return Ok(fx);
        }
    };
    let source = Source::parse(&call.source).unwrap_or(Source::Generic);
    // The rep directory's crm_ids override the owner's email.
    if let Some(id) = owner_id.as_deref()
        && let Some(rep) = crate::reps::email_for_crm_user(db, source, id).await?
    {
        proposal.rep_email = Some(rep);
    }
    let deal = DealId::parse(&call.deal_id).map_err(|e| StepError::Failed(e.0))?;
    // The recap the rep already has, when the first email went before this pull: the one kept
    // with the call (a call opened before firstcall kept them: the recap as it is before this pull).
    let sent = call.state.is_open() && call.state != CallState::Scheduled;
    let before = match (sent, super::changes::baseline(&call)) {
        (false, _) => None,
        (true, Some(kept)) => Some(kept),
        (true, None) => Some(super::compose::recap_for_call(db, fc, &call).await?),
    };
    let put = store::put(db, source, &deal, &proposal, Origin::Crm, now).await?;
    if put.changed {
        let detail = json!({
            "version": put.version,
            "requirements": proposal.requirements.len(),
            "commitments": proposal.commitments.len(),
            "contacts": proposal.contacts.len(),
            "line_items": proposal.line_items.len(),
            "activities": proposal.activities.len(),
            "unreadable": proposal.unreadable.len(),
        });
        record(db, call.id, "crm_context", detail, now).await?;
    }
    if !call.state.is_open() {
        return Ok(fx);
    }
    // The deal's line items are what was ordered: CRM webhooks carry none, so the pull states
    // them, and each pull states them again.
    let items = serde_json::to_value(&ordered).map_err(|e| StepError::Failed(e.to_string()))?;
    let order = entity::orders::Entity::find_by_id(call.order_id).one(db).await?;
    let (order, order_changed) = match order {
        Some(order) if order.line_items != items => {
            let mut am = order.into_active_model();
            am.line_items = Set(items);
            am.updated_at = Set(now);
            (Some(am.update(db).await?), true)
        }
        other => (other, false),
    };
    let rep = call.rep_email.clone();
    let call = match order {
        Some(order) => match calls::replan_for_order(db, fc, &order, "crm", now).await? {
            Some(_) => calls::lock(db, call.id).await?.unwrap_or(call),
            None => call,
        },
        None => call,
    };
    if call.state == CallState::Scheduled && start_now(db, call.id, now).await? {
        fx.jobs_due_now += 1;
    }
    // The rep has the first email already: the short update says what this pull changed. A call
    // that moved to another rep needs none (the new rep gets the whole recap).
    if let Some(before) = before
        && (put.changed || order_changed)
        && call.rep_email == rep
    {
        super::changes::tell(db, fc, call, &before, ChangedBy::Crm { version: put.version }, now, &mut fx).await?;
    }
    Ok(fx)
}

/// Brings the call's waiting first step forward to now; false when it is not waiting (already
/// run, or held by a worker).
async fn start_now(db: &impl ConnectionTrait, call_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let sql =
        "UPDATE jobs SET run_at = $1 WHERE subject_id = $2 AND kind = $3 AND state = 'pending' AND lease_token IS NULL AND run_at > $1";
    let values = vec![crate::clock::truncate(now).into(), call_id.into(), JobKind::CallStart.as_str().into()];
    Ok(db.execute_raw(crate::db::stmt(db.get_database_backend(), sql, values)).await?.rows_affected() > 0)
}

async fn record(db: &impl ConnectionTrait, call_id: i64, action: &str, detail: serde_json::Value, now: DateTime<Utc>) -> Result<(), DbErr> {
    audit::record(
        db,
        Change { actor: "crm", entity: "call", entity_id: call_id, action, from_state: None, to_state: None, detail: Some(detail) },
        now,
    )
    .await
}

/// How long a new call of `source` waits for its deal's context before the first email, or
/// zero when no connector reads that CRM.
pub fn wait_for(fc: &FirstCall, source: Source) -> TimeDelta {
    if fc.enriches(source) { TimeDelta::seconds(fc.config.settings.crm.enrich_wait_secs as i64) } else { TimeDelta::zero() }
}

/// Why the call's deal context is not in the recap yet, when its pull is still pending or has
/// failed: the last error of the call's `crm.enrich` job (None when there is no such job, or it
/// has not been tried yet).
pub async fn missing_context(db: &impl ConnectionTrait, call_id: i64) -> Result<Option<MissingContext>, DbErr> {
    use entity::jobs;
    use sea_orm::{ColumnTrait, QueryFilter};
    let job =
        jobs::Entity::find().filter(jobs::Column::SubjectId.eq(call_id)).filter(jobs::Column::Kind.eq(JobKind::CrmEnrich)).one(db).await?;
    Ok(job.map(|j| MissingContext { tried: j.attempts > 0, last_error: j.last_error }))
}

/// A pull that has not succeeded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingContext {
    pub tried: bool,
    pub last_error: Option<String>,
}
