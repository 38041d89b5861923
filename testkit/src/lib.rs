//! Test helpers for firstcall.
//!
//! - [`smtp`]: [`SmtpSink`], a real SMTP server on loopback that captures what it receives and
//!   can be told to answer 451, 550, stall after DATA, or go down, between transactions.
//! - [`mail`]: [`mail::parse`], a captured message taken apart into headers, text, HTML,
//!   calendar part and attachments.
//! - [`crm`]: fake HubSpot, Pipedrive and Salesforce REST APIs with switchable faults (rate
//!   limits with `Retry-After`, 500s, down), recording every request.
//! - [`db`]: [`db::TestDb`], a throwaway PostgreSQL database or SQLite file per test.

pub mod crm;
pub mod db;
pub mod mail;
pub mod smtp;

pub use smtp::{Captured, Delivery, Mode, SmtpSink, Verdict};
