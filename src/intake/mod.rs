//! Order intake: verifies and parses each CRM's webhooks into [`event::IntakeEvent`]s and
//! stores them, deduplicated, together with the workflow's first step.

pub mod batch;
pub mod event;
pub mod generic;
pub mod hubspot;
mod json;
pub mod pipedrive;
pub mod salesforce;
pub mod signature;
pub mod store;
mod xml;

/// Most events one webhook request may carry (CRMs send at most 100); more is refused as invalid.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;
