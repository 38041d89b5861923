//! What the HTTP API and the pages share, built once by `startup`: the database, the
//! configuration, the clock, secrets, rate limits, metrics, the order intake and the first-call workflow.
//! Only the surfaces (`http`, `pages`) take it; everything below takes the narrow inputs it
//! uses.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::background::Signals;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::security::{FailedAuth, RateLimits, Security};
use crate::workflow::Live;
use crate::workflow::orders::Intake;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// The settings as started. Schedules and templates can change at run time: read them
    /// from `first_call`.
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub signals: Signals,
    pub metrics: Arc<Metrics>,
    pub security: Arc<Security>,
    pub rate_limits: Arc<RateLimits>,
    /// Failed authentication attempts per client address, for every surface.
    pub failed_auth: Arc<FailedAuth>,
    /// The workflow the API and pages read and change calls through (with its composer, whose
    /// templates render recaps).
    pub first_call: Arc<Live>,
    /// This process, as the list of running processes names it.
    pub instance_id: String,
    /// Verified webhook events, stored and applied by group commit.
    pub intake: Intake,
    /// The dashboard's rep filter, read again at most every few seconds.
    pub rep_choices: Arc<crate::workflow::queries::RepChoices>,
}
