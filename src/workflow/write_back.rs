//! `crm.write_back`: when a call is marked done (or cancelled with its order), the outcome is
//! recorded on the CRM deal where the rep already works: a HubSpot note, a Pipedrive note, a
//! Salesforce completed task, with the outcome, the rep's notes and a link to the call page
//! ([`crate::crm::Connector::record_call`]).
//!
//! The job is written in the transaction that marks the call done, so it exists exactly when the
//! call is done; the request to the CRM is its outside work, so marking done never waits for the
//! CRM. A CRM that fails is asked again with backoff; after the last attempt the job is dead and
//! shows on the dashboard with a Retry button. A CRM that does not have the deal is recorded in
//! the call's history. The record is written at least once: a retry after an answer that was
//! lost may write a second copy, which carries the same call number.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::FirstCall;
use crate::audit::{self, Change};
use crate::crm::{CallRecord, CrmError};
use crate::domain::Source;
use crate::engine::{ClaimedJob, Effects, Handler, JobKind, NewJob, StepError};
use entity::calls;

/// The job's payload: the deal and what to record on it (so the request needs no database read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub source: String,
    pub deal_id: String,
    pub record: CallRecord,
}

/// The job recording `call`'s `event` (`done` or `cancelled`) on its deal, or `None` when no
/// connector reads the call's CRM.
pub fn job(fc: &FirstCall, call: &calls::Model, event: &str, now: DateTime<Utc>) -> Option<NewJob> {
    let source = Source::parse(&call.source).ok()?;
    if !fc.enriches(source) {
        return None;
    }
    let record = CallRecord {
        call_id: call.id,
        event: event.into(),
        at: now,
        outcome: call.outcome.map(|o| o.as_str().to_string()),
        notes: call.notes.clone(),
        rep_email: call.rep_email.clone(),
        call_url: fc.composer.call_url(call.id, now),
    };
    let payload = Payload { source: call.source.clone(), deal_id: call.deal_id.clone(), record };
    Some(NewJob::new(JobKind::CrmWriteBack, call.id, now).with_payload(json!(payload)))
}

/// The job recording a check-in's answer on the call's deal (`crm.write_back.check_in`), or
/// `None` when no connector reads the call's CRM.
pub fn check_in_job(fc: &FirstCall, call: &calls::Model, check_in: &entity::check_ins::Model, now: DateTime<Utc>) -> Option<NewJob> {
    let source = Source::parse(&call.source).ok()?;
    if !fc.enriches(source) {
        return None;
    }
    let record = CallRecord {
        call_id: call.id,
        event: "check_in".into(),
        at: now,
        outcome: check_in.answer.map(|a| a.as_str().to_string()),
        notes: check_in.note.clone(),
        rep_email: call.rep_email.clone(),
        call_url: fc.composer.call_url(call.id, now),
    };
    let payload = Payload { source: call.source.clone(), deal_id: call.deal_id.clone(), record };
    Some(NewJob::new(JobKind::CrmWriteBackCheckIn, call.id, now).with_payload(json!(payload)))
}

/// The engine's handler for `crm.write_back` and `crm.write_back.check_in`.
pub struct WriteBack(pub Arc<super::Live>);

impl WriteBack {
    async fn write(&self, job: &ClaimedJob) -> Result<serde_json::Value, StepError> {
        let p: Payload = job.payload_as("crm.write_back needs a payload with the deal and the record")?;
        let fc = self.0.get();
        let (_, connector) = fc.connector_for(&p.source)?;
        match connector.record_call(&p.deal_id, &p.record).await {
            Ok(()) => Ok(json!({"written": true})),
            Err(CrmError::NotFound(reason)) => Ok(json!({"written": false, "reason": reason})),
            Err(e) => Err(StepError::Failed(e.to_string())),
        }
    }
}

impl Handler for WriteBack {
    fn prepares(&self) -> bool {
        true
    }

    fn prepare<'a>(&'a self, job: &'a ClaimedJob, _now: DateTime<Utc>) -> BoxFuture<'a, Result<serde_json::Value, StepError>> {
        Box::pin(self.write(job))
    }

    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        job: &'a ClaimedJob,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Effects, StepError>> {
        Box::pin(async move {
            let Some(call_id) = job.subject_id else {
                return Err(StepError::Failed("crm.write_back needs a call".into()));
            };
            let written = job.prepared.as_ref().and_then(|v| v.get("written")).and_then(|w| w.as_bool()).unwrap_or(false);
            let (action, detail) = if written {
                ("written_to_crm", json!({"event": job.payload.as_ref().and_then(|p| p["record"]["event"].as_str())}))
            } else {
                let reason = job.prepared.as_ref().and_then(|v| v.get("reason")).cloned().unwrap_or_default();
                tracing::warn!(call = call_id, "the CRM does not have the call's deal; its outcome was not recorded there: {reason}");
                ("crm_not_found", json!({"reason": reason}))
            };
            audit::record(
                txn,
                Change { actor: "crm", entity: "call", entity_id: call_id, action, from_state: None, to_state: None, detail: Some(detail) },
                now,
            )
            .await?;
            Ok(Effects::default())
        })
    }
}
