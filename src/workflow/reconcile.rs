//! `crm.reconcile`: orders whose webhook never came. CRMs drop webhooks (Salesforce gives up on
//! an outbound message after a day, Pipedrive turns off a webhook that keeps failing, HubSpot
//! stops after about ten retries), so every `crm.reconcile_interval_minutes` the reconciler asks
//! each CRM with a connector for the deals won and modified since its cursor
//! ([`crate::crm::Connector::won_since`]) and feeds each through the same intake path as a
//! webhook ([`super::orders::apply_events`]): a deal the webhook already brought is recorded
//! again and opens nothing, so a deal found both ways has one call.
//!
//! One job per CRM (its subject is the CRM, see [`subject_of`]); its payload carries the cursor,
//! so a restart resumes from it. The question to the CRM is the job's outside work; the intake
//! and the next job (at the newest modification seen) commit together. A CRM that is down fails
//! the attempt and the engine retries with backoff (capped at `engine.retry_max_secs`); the job
//! has attempts enough to keep trying for weeks, so reconciliation never stops for good.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crm::WonDeal;
use crate::domain::{Currency, DealId, EmailAddress, Money, Source};
use crate::engine::{self, ClaimedJob, Effects, Handler, JobKind, NewJob, Registry, StepError};
use crate::intake::event::{IntakeEvent, OrderFacts, Transition};
use crate::metrics::Metrics;

/// Deals taken per run; with more waiting the next run comes at once.
const PER_RUN: usize = 200;
/// Attempts of a reconcile job: with backoff capped at `engine.retry_max_secs` (10 minutes by
/// default) this keeps asking a CRM that is down for weeks.
const ATTEMPTS: u32 = 5000;

/// The reconcile job's subject: the CRM it asks.
pub fn subject_of(source: Source) -> i64 {
    match source {
        Source::Generic => 0,
        Source::Hubspot => 1,
        Source::Pipedrive => 2,
        Source::Salesforce => 3,
    }
}

/// The job's payload: which CRM, from when on it is asked, and how many deals it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub source: String,
    pub since: DateTime<Utc>,
    /// Deals taken by the next run when more than [`PER_RUN`] share one modification time (a
    /// bulk update): asking again from that time would return the same page, so the next run
    /// takes twice as many, until the time moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take: Option<usize>,
}

/// How far the next question reaches back before the newest deal seen, once caught up.
const OVERLAP: TimeDelta = TimeDelta::minutes(5);

/// The most deals one run takes, however many share one modification time.
const TAKE_MAX: usize = 20_000;

/// The engine's handler for `crm.reconcile`.
pub struct Reconciler {
    pub fc: Arc<super::Live>,
    pub metrics: Arc<Metrics>,
}

impl Reconciler {
    fn interval(&self) -> Option<TimeDelta> {
        let m = self.fc.get().config.settings.crm.reconcile_interval_minutes;
        (m > 0).then(|| TimeDelta::minutes(m as i64))
    }

    /// Registers the handler when a connector is on and the reconciler is not turned off.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        if self.interval().is_some() && !self.fc.get().connectors.is_empty() {
            registry.register(JobKind::CrmReconcile, self.clone());
        }
    }

    /// Plans each connector's first question unless one is planned (every process does this at
    /// start-up; a planned job keeps its cursor).
    pub async fn seed(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(), DbErr> {
        if self.interval().is_none() {
            return Ok(());
        }
        let fc = self.fc.get();
        let since = now - TimeDelta::hours(fc.config.settings.crm.reconcile_lookback_hours as i64);
        for source in fc.connectors.sources() {
            engine::enqueue(db, question(source, since, None, now), ATTEMPTS, now).await?;
        }
        Ok(())
    }

    async fn ask(&self, job: &ClaimedJob) -> Result<serde_json::Value, StepError> {
        let cursor = cursor_of(job)?;
        let fc = self.fc.get();
        let (_, connector) = fc.connector_for(&cursor.source)?;
        let deals = connector
            .won_since(cursor.since, cursor.take.unwrap_or(PER_RUN).clamp(1, TAKE_MAX))
            .await
            .map_err(|e| StepError::Failed(e.to_string()))?;
        serde_json::to_value(deals).map_err(|e| StepError::Failed(e.to_string()))
    }
}

fn question(source: Source, since: DateTime<Utc>, take: Option<usize>, at: DateTime<Utc>) -> NewJob {
    NewJob::new(JobKind::CrmReconcile, subject_of(source), at).with_payload(json!(Cursor { source: source.as_str().into(), since, take }))
}

fn cursor_of(job: &ClaimedJob) -> Result<Cursor, StepError> {
    job.payload_as("crm.reconcile needs a payload with source and since")
}

impl Handler for Reconciler {
    fn prepares(&self) -> bool {
        true
    }

    fn prepare<'a>(&'a self, job: &'a ClaimedJob, _now: DateTime<Utc>) -> BoxFuture<'a, Result<serde_json::Value, StepError>> {
        Box::pin(self.ask(job))
    }

    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(self.apply(txn, job, now))
    }
}

impl Reconciler {
    async fn apply(&self, db: &impl ConnectionTrait, job: &ClaimedJob, now: DateTime<Utc>) -> Result<Effects, StepError> {
        let cursor = cursor_of(job)?;
        let source = Source::parse(&cursor.source).map_err(|e| StepError::Failed(e.0))?;
        let deals: Vec<WonDeal> = job.prepared_as("crm.reconcile ran without its answer")?;
        // The rep directory's crm_ids override the owner's email, as for a webhook (one query for
        // the run).
        let owners: Vec<String> = deals.iter().filter_map(|d| d.owner_id.clone()).collect();
        let directory = if owners.is_empty() { Default::default() } else { crate::reps::emails_for_crm_users(db, source, &owners).await? };
        let events: Vec<IntakeEvent> = deals
            .iter()
            .filter_map(|d| {
                let mut ev = event_of(source, d)?;
                if let Some(rep) = d.owner_id.as_ref().and_then(|id| directory.get(id)) {
                    ev.facts.rep_email = Some(rep.clone());
                }
                Some(ev)
            })
            .collect();
        let results = super::orders::apply_events(db, &self.fc.get(), &events, now).await?;
        let opened = results.iter().filter(|r| r.outcome == "opened").count();
        let mut fx = Effects { jobs_due_now: opened, ..Effects::default() };
        if !deals.is_empty() {
            self.metrics.crm_reconciled(source.as_str(), "opened", opened as u64);
            self.metrics.crm_reconciled(source.as_str(), "known", (deals.len() - opened) as u64);
        }
        if opened > 0 {
            tracing::info!(crm = %source, opened, found = deals.len(), "the reconciler opened calls for won deals whose webhook never came");
        }
        // The next question starts at the newest modification seen (asked again inclusively:
        // repeats are duplicates); a full answer means more are waiting.
        let newest = deals.iter().map(|d| d.modified_at).max().unwrap_or(cursor.since).max(cursor.since);
        let taken = cursor.take.unwrap_or(PER_RUN);
        let full = deals.len() >= taken;
        // Caught up, the next question overlaps the last few minutes: a CRM's search index
        // trails its writes, and a deal modified while pages were read may have been passed
        // over. Repeats are duplicates. A full answer moves on from its newest deal.
        let since = if full { newest } else { (newest - OVERLAP).max(cursor.since) };
        // A full answer that did not move the time on is all one bulk update: take more next time.
        let take = (full && newest == cursor.since).then(|| (taken * 2).min(TAKE_MAX));
        let interval = self.interval().unwrap_or(TimeDelta::minutes(15));
        let at = if full { now } else { now + interval };
        if at <= now {
            fx.jobs_due_now += 1;
        }
        engine::enqueue(db, question(source, since, take, at), ATTEMPTS, now).await?;
        Ok(fx)
    }
}

/// A won deal as the event a webhook would have brought: the deal was won (as of its last
/// modification), with its amount, owner and account. Its key is the deal and that modification,
/// so finding it again is a duplicate.
fn event_of(source: Source, d: &WonDeal) -> Option<IntakeEvent> {
    let deal_id = match DealId::parse(&d.deal_id) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(crm = %source, "the reconciler skipped a deal with an unusable id: {}", e.0);
            return None;
        }
    };
    let amount = match (&d.amount, d.currency.as_deref().and_then(|c| Currency::parse(c).ok())) {
        (Some(a), Some(c)) => Money::parse_decimal(a, c).ok(),
        _ => None,
    };
    let facts = OrderFacts {
        amount,
        rep_email: d.owner_email.as_deref().and_then(|e| EmailAddress::parse(e).ok()),
        owner_ref: d.owner_id.clone(),
        segment: None,
        account_name: d.account_name.clone(),
        line_items: None,
    };
    Some(IntakeEvent {
        source,
        dedupe_key: format!("reconcile:{}:{}", d.deal_id, d.modified_at.timestamp_millis()),
        event_type: "reconcile.won".into(),
        deal_id,
        transition: Transition::Created,
        occurred_at: d.modified_at,
        facts,
        raw: serde_json::to_string(d).unwrap_or_default(),
    })
}
