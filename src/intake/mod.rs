//! Order intake: verifies and parses each CRM's webhooks into [`event::IntakeEvent`]s, with
//! their dedupe keys. Storing and applying them is the first-call workflow's
//! (`workflow::orders`).

pub mod event;
pub mod generic;
pub mod hubspot;
mod json;
pub mod pipedrive;
pub mod salesforce;
pub mod signature;
mod xml;

/// Most events one webhook request may carry (CRMs send at most 100); more is refused as invalid.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;
