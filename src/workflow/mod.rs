//! The first-call workflow: a call per order, driven by durable timers until the rep marks it
//! done or the order is cancelled. `orders` applies verified CRM events to orders and opens,
//! re-plans or cancels their calls; `calls` changes call state (inside the caller's
//! transaction); `steps` are the timer handlers it registers with the engine; `timing` is the
//! pure time arithmetic; `compose` turns a call into the emails it causes; `recipients` decides
//! who may be emailed; `queries` reads calls for the API and the pages.

pub mod absences;
pub mod calls;
pub mod changes;
pub mod compose;
pub mod controls;
pub mod enrich;
pub mod escalation;
pub mod opening;
pub mod orders;
pub mod preview;
pub mod promises;
pub mod queries;
pub mod recipients;
pub mod reconcile;
pub mod replan;
pub mod sign_in;
pub mod steps;
pub mod timing;
pub mod write_back;

use std::sync::Arc;

use crate::config::Config;
use crate::crm::Connectors;
use crate::engine::{JobKind, Registry};
use crate::mail::composer::Composer;
pub use entity::calls::{CallOutcome, CallState};

/// What the first-call workflow needs: the configuration (schedules, defaults, the engine's
/// attempts per job) and the composer of its emails. Steps take this, a database handle and
/// the time; nothing else.
pub struct FirstCall {
    pub config: Arc<Config>,
    /// The version of `config`'s schedules and templates ([`Config::version`]), which every
    /// reminder and escalation records.
    pub config_version: String,
    pub composer: Arc<Composer>,
    /// The CRM connectors that are on: a call of their CRM's deals waits for the deal's context
    /// (`crm.enrich`) before its first email.
    pub connectors: Arc<Connectors>,
}

/// The first-call workflow as it runs now. An accepted edit of `config/` (schedules, holidays,
/// templates) replaces it whole; a step, a request or a batch takes it once ([`Live::get`]) and
/// reads one configuration version from start to end.
pub struct Live(std::sync::RwLock<Arc<FirstCall>>);

impl Live {
    pub fn new(first_call: FirstCall) -> Arc<Live> {
        Arc::new(Live(std::sync::RwLock::new(Arc::new(first_call))))
    }

    /// The workflow with the configuration in force now.
    pub fn get(&self) -> Arc<FirstCall> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `first_call` in force for every step and request that starts from now on.
    pub fn replace(&self, first_call: FirstCall) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(first_call);
    }

    /// Registers the workflow's handlers with the engine: each reads the workflow in force when
    /// its step starts. Which CRM connectors are on cannot change at run time.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let handler = Arc::new(steps::Steps(self.clone()));
        for kind in FirstCall::JOB_KINDS {
            registry.register(kind, handler.clone());
        }
        registry.register(JobKind::ConfigReplan, Arc::new(replan::Replan(self.clone())));
        let ledger = Arc::new(promises::Steps(self.clone()));
        for kind in promises::Steps::JOB_KINDS {
            registry.register(kind, ledger.clone());
        }
        if !self.get().connectors.is_empty() {
            registry.register(JobKind::CrmEnrich, Arc::new(enrich::Enrich(self.clone())));
            let write_back = Arc::new(write_back::WriteBack(self.clone()));
            registry.register(JobKind::CrmWriteBack, write_back.clone());
            registry.register(JobKind::CrmWriteBackCheckIn, write_back);
        }
    }
}

impl FirstCall {
    /// The job kinds this workflow runs, each with its handler.
    pub const JOB_KINDS: [JobKind; 7] = [
        JobKind::CallStart,
        JobKind::CallRemind,
        JobKind::CallOverdue,
        JobKind::CallEscalate,
        JobKind::CallCancelled,
        JobKind::CallUpdated,
        JobKind::CallChanged,
    ];

    /// The timers of an open call, dropped when it closes: the workflow's own kinds and the
    /// CRM read (a promise's timers have their own subjects and stay).
    pub fn timer_kinds() -> Vec<JobKind> {
        Self::JOB_KINDS.into_iter().chain([JobKind::CrmEnrich]).collect()
    }

    /// The connector for `source` (as a job's payload names it), or why a job for it cannot run
    /// in this process.
    pub fn connector_for(
        &self,
        source: &str,
    ) -> Result<(crate::domain::Source, &Arc<dyn crate::crm::Connector>), crate::engine::StepError> {
        let source = crate::domain::Source::parse(source).map_err(|e| crate::engine::StepError::Failed(e.0))?;
        let connector = self.connectors.get(source).ok_or_else(|| {
            crate::engine::StepError::Failed(format!("no {source} connector is on in this process; set its credentials ([crm.{source}])"))
        })?;
        Ok((source, connector))
    }

    /// Whether calls of `source`'s deals wait for the CRM's context.
    pub fn enriches(&self, source: crate::domain::Source) -> bool {
        self.connectors.get(source).is_some()
    }

    /// Attempts per job before it is dead.
    pub fn max_attempts(&self) -> u32 {
        self.config.settings.engine.max_attempts
    }

    /// Attempts of a job that asks a CRM (a pull, a write-back): a CRM down for hours is still
    /// asked (backoff is capped at `engine.retry_max_secs`, 10 minutes by default, so 30 attempts
    /// span about four hours); after that the job is dead, on the dashboard with a Retry button.
    pub fn crm_attempts(&self) -> u32 {
        self.max_attempts().max(30)
    }
}
