//! Fake hubspot (in progress).
