//! Integration tests against the running application: one binary, one module per area.
//! PostgreSQL by default; `FIRSTCALL_TEST_DB=sqlite` runs the same suite on SQLite.

mod helpers;

mod absences;
mod changes;
mod controls;
mod crm;
mod crm_hubspot;
mod crm_pipedrive;
mod crm_salesforce;
mod foundation;
mod intake;
mod listing;
mod live_config;
mod mail;
mod ops;
mod pages;
mod promises;
mod recipients;
mod retention;
mod security;
mod sign_in;
mod workflow;
