//! Fake salesforce (in progress).
