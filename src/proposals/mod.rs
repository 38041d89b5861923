//! Proposal data pushed by CRMs and CPQ tools: versioned snapshots per deal.

pub mod model;
pub mod store;
