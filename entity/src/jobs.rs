//! A durable timer: a step to run at run_at, claimed by one worker at a time under a lease.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: JobKind,
    /// What the job is about (a call, for the first-call workflow's jobs); the engine only
    /// hands it to the job's handler.
    pub subject_id: Option<i64>,
    pub payload: Option<Json>,
    pub run_at: DateTimeUtc,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_token: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A job waits (`pending`, possibly under a lease) until it runs and is deleted, or fails
/// too often and stays `dead` until an operator retries it. `running` exists only inside the
/// engine's transaction for the job, never committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "dead")]
    Dead,
    #[sea_orm(string_value = "running")]
    Running,
}

/// What a job does. Each workflow registers a handler for its kinds with the engine; `noop`
/// and `noop.step` are the engine's own (they do nothing, to measure the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum JobKind {
    #[sea_orm(string_value = "noop")]
    #[serde(rename = "noop")]
    Noop,
    /// Does nothing, but as a step: in the engine's transaction, under the lease check, like
    /// every workflow step (`noop` is completed by one statement without a transaction).
    #[sea_orm(string_value = "noop.step")]
    #[serde(rename = "noop.step")]
    NoopStep,
    /// First call: send the recap and invite, plan the reminders.
    #[sea_orm(string_value = "call.start")]
    #[serde(rename = "call.start")]
    CallStart,
    #[sea_orm(string_value = "call.remind")]
    #[serde(rename = "call.remind")]
    CallRemind,
    #[sea_orm(string_value = "call.overdue")]
    #[serde(rename = "call.overdue")]
    CallOverdue,
    #[sea_orm(string_value = "call.escalate")]
    #[serde(rename = "call.escalate")]
    CallEscalate,
    #[sea_orm(string_value = "call.cancelled")]
    #[serde(rename = "call.cancelled")]
    CallCancelled,
    #[sea_orm(string_value = "call.updated")]
    #[serde(rename = "call.updated")]
    CallUpdated,
    /// The proposal or the order changed after the rep's recap went out: tell them what changed
    /// (one job per quiet period, so quick edits give one email).
    #[sea_orm(string_value = "call.changed")]
    #[serde(rename = "call.changed")]
    CallChanged,
    /// Read the call's deal from its CRM (owner, contacts, line items, notes, activities) and
    /// store it as a proposal version.
    #[sea_orm(string_value = "crm.enrich")]
    #[serde(rename = "crm.enrich")]
    CrmEnrich,
    /// Ask a CRM for the deals won since the reconciler's cursor and feed them through intake,
    /// for the orders whose webhook never came.
    #[sea_orm(string_value = "crm.reconcile")]
    #[serde(rename = "crm.reconcile")]
    CrmReconcile,
    /// Record a call marked done (or cancelled) on its CRM deal: a note or completed task.
    #[sea_orm(string_value = "crm.write_back")]
    #[serde(rename = "crm.write_back")]
    CrmWriteBack,
    /// Retention: remove data older than `[retention]` allows, a batch at a time.
    #[sea_orm(string_value = "retention.sweep")]
    #[serde(rename = "retention.sweep")]
    RetentionSweep,
    /// Re-plan the open calls whose schedule an accepted configuration changed, a batch at a
    /// time (one job per configuration version).
    #[sea_orm(string_value = "config.replan")]
    #[serde(rename = "config.replan")]
    ConfigReplan,
    /// Promise ledger: remind a promise's owner ahead of its date (and on the day).
    #[sea_orm(string_value = "promise.remind")]
    #[serde(rename = "promise.remind")]
    PromiseRemind,
    /// Promise ledger: escalate an overdue promise to its owner's manager chain.
    #[sea_orm(string_value = "promise.escalate")]
    #[serde(rename = "promise.escalate")]
    PromiseEscalate,
    /// Promise ledger: every promise of a call is delivered; ask the rep to check in with the
    /// customer (subject: the call).
    #[sea_orm(string_value = "promise.check_in")]
    #[serde(rename = "promise.check_in")]
    PromiseCheckIn,
    /// Record a check-in's answer on the CRM deal (subject: the call).
    #[sea_orm(string_value = "crm.write_back.check_in")]
    #[serde(rename = "crm.write_back.check_in")]
    CrmWriteBackCheckIn,
}

impl JobKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Noop => "noop",
            JobKind::NoopStep => "noop.step",
            JobKind::CallStart => "call.start",
            JobKind::CallRemind => "call.remind",
            JobKind::CallOverdue => "call.overdue",
            JobKind::CallEscalate => "call.escalate",
            JobKind::CallCancelled => "call.cancelled",
            JobKind::CallUpdated => "call.updated",
            JobKind::CallChanged => "call.changed",
            JobKind::CrmEnrich => "crm.enrich",
            JobKind::CrmReconcile => "crm.reconcile",
            JobKind::CrmWriteBack => "crm.write_back",
            JobKind::RetentionSweep => "retention.sweep",
            JobKind::ConfigReplan => "config.replan",
            JobKind::PromiseRemind => "promise.remind",
            JobKind::PromiseEscalate => "promise.escalate",
            JobKind::PromiseCheckIn => "promise.check_in",
            JobKind::CrmWriteBackCheckIn => "crm.write_back.check_in",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
