//! The first-call workflow: a call per order, driven by durable timers until the rep marks it
//! done or the order is cancelled. `calls` changes call state (inside the caller's
//! transaction), `steps` are the timer handlers the engine runs, `timing` is the pure time
//! arithmetic, `compose` turns a call into the emails it causes.

pub mod calls;
pub mod compose;
pub mod opening;
pub mod preview;
pub mod steps;
pub mod timing;

use serde::{Deserialize, Serialize};

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Created; the rep has not been sent the recap and invite yet.
    Scheduled,
    /// The rep has the recap and invite; the call is due by `due_at`.
    Due,
    /// `due_at` passed without the call being marked done.
    Overdue,
    Done,
    Cancelled,
}

impl CallState {
    pub const ALL: [CallState; 5] = [CallState::Scheduled, CallState::Due, CallState::Overdue, CallState::Done, CallState::Cancelled];

    pub fn as_str(&self) -> &'static str {
        match self {
            CallState::Scheduled => "scheduled",
            CallState::Due => "due",
            CallState::Overdue => "overdue",
            CallState::Done => "done",
            CallState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        CallState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_open(&self) -> bool {
        matches!(self, CallState::Scheduled | CallState::Due | CallState::Overdue)
    }
}

/// How the call went, as the rep reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Expectations match what will be delivered.
    Aligned,
    /// Expectations were reset on the call; the customer agreed.
    Adjusted,
    /// The customer expects more than will be delivered.
    AtRisk,
}

impl CallOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Aligned => "aligned",
            CallOutcome::Adjusted => "adjusted",
            CallOutcome::AtRisk => "at_risk",
        }
    }

    pub fn parse(s: &str) -> Option<CallOutcome> {
        [CallOutcome::Aligned, CallOutcome::Adjusted, CallOutcome::AtRisk].into_iter().find(|c| c.as_str() == s)
    }
}
