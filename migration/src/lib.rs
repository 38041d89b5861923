//! firstcall's schema, as sea-orm migrations. The same migrations run on PostgreSQL
//! (production) and SQLite (the embedded default); nothing here but tables and indexes.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261123_000001_queue_claim_order;
mod m20261123_000002_dead_jobs_index;
mod m20261129_000001_job_subject;
mod m20261129_000002_one_pending_timer;
mod m20261129_000003_order_fact_times;
mod m20261130_000001_call_fallback_reason;
mod m20261130_000002_retention;
mod m20261130_000003_sessions;
mod m20261201_000001_proposal_origin;
mod m20261202_000001_escalated_steps;
mod m20261202_000002_config_versions;
mod m20261203_000001_processes;
mod m20261204_000001_inbox;
mod m20261210_000001_read_paths;
mod m20261211_000001_promises;
mod m20261215_000001_call_controls;
mod m20261216_000001_absences;
mod m20261217_000001_recap_sent;
mod m20261218_000001_sign_in;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261123_000001_queue_claim_order::Migration),
            Box::new(m20261123_000002_dead_jobs_index::Migration),
            Box::new(m20261129_000001_job_subject::Migration),
            Box::new(m20261129_000002_one_pending_timer::Migration),
            Box::new(m20261129_000003_order_fact_times::Migration),
            Box::new(m20261130_000001_call_fallback_reason::Migration),
            Box::new(m20261130_000002_retention::Migration),
            Box::new(m20261130_000003_sessions::Migration),
            Box::new(m20261201_000001_proposal_origin::Migration),
            Box::new(m20261202_000001_escalated_steps::Migration),
            Box::new(m20261202_000002_config_versions::Migration),
            Box::new(m20261203_000001_processes::Migration),
            Box::new(m20261204_000001_inbox::Migration),
            Box::new(m20261210_000001_read_paths::Migration),
            Box::new(m20261211_000001_promises::Migration),
            Box::new(m20261215_000001_call_controls::Migration),
            Box::new(m20261216_000001_absences::Migration),
            Box::new(m20261217_000001_recap_sent::Migration),
            Box::new(m20261218_000001_sign_in::Migration),
        ]
    }
}
