//! firstcall: makes sure the first sales call after the order happens, on time, with the
//! requirements-versus-commitments recap in hand, and that the rep is reminded (and the
//! manager told) until it has.

pub mod app;
pub mod audit;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_versions;
pub mod crm;
pub mod db;
pub mod domain;
pub mod engine;
pub mod http;
pub mod intake;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod people;
pub mod proposals;
pub mod recap;
pub mod reload;
pub mod reps;
pub mod retention;
pub mod security;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod workflow;
