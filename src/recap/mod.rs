//! The requirements-versus-commitments recap the rep takes into the first call after the order.
//!
//! [`build`] is a pure function from what we know about the deal ([`RecapInput`]: the latest
//! proposal snapshot, the order as the CRM reported it, the call) to a [`Recap`]: each stated
//! requirement and what was committed for it, what was ordered against what was proposed, the
//! delivery timeline, the gaps and risks most serious first, and the call agenda. The same
//! `Recap` is rendered into emails and the call page (`mail::templates`) and served as JSON by
//! `GET /api/v1/calls/{id}/recap`.

pub mod build;
pub mod changes;
pub mod diff;
pub mod format;
pub mod gaps;
pub mod model;
pub mod sample;

pub use build::build;
pub use changes::changes;
pub use model::*;

#[cfg(test)]
mod gap_tests;
