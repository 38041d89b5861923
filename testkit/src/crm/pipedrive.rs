//! Fake pipedrive (in progress).
