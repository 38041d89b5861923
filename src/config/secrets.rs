//! Secrets that rotate: API tokens, link-signing keys and webhook secrets. Each setting takes one
//! value, a list, or entries with an expiry, so an old secret keeps working for an overlap:
//!
//! ```toml
//! # from the environment: FIRSTCALL__API__TOKENS='["new-token", {value = "old-token", expires_at = "2026-12-01T00:00:00Z"}]'
//! ```
//!
//! API tokens may also be given as SHA-256 hashes (`{sha256 = "<hex>"}`) so the plain token
//! never needs to be stored anywhere firstcall reads; plain tokens are hashed on load.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One secret as written in config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SecretEntry {
    Plain(String),
    Full {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
}

/// A setting holding zero or more secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SecretList {
    #[default]
    None,
    One(String),
    Many(Vec<SecretEntry>),
}

/// A usable secret: its bytes (or only its hash) and when it stops being accepted.
#[derive(Clone)]
pub struct Secret {
    pub value: Option<Vec<u8>>,
    pub sha256: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, not even in debug output.
        f.debug_struct("Secret").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl Secret {
    pub fn from_value(v: &str) -> Secret {
        Secret { value: Some(v.as_bytes().to_vec()), sha256: sha256(v.as_bytes()), expires_at: None }
    }

    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(bytes);
    h.finalize().into()
}

impl SecretList {
    pub fn is_empty(&self) -> bool {
        match self {
            SecretList::None => true,
            SecretList::One(s) => s.trim().is_empty(),
            SecretList::Many(v) => v.is_empty(),
        }
    }

    /// Parses the entries; `Err` says which entry is wrong and why (never the secret itself).
    pub fn secrets(&self) -> Result<Vec<Secret>, String> {
        let entries: Vec<SecretEntry> = match self {
            SecretList::None => vec![],
            SecretList::One(s) if s.trim().is_empty() => vec![],
            // A comma-separated string is the simplest way to give several from one env var.
            SecretList::One(s) => s.split(',').map(|p| SecretEntry::Plain(p.trim().to_string())).collect(),
            SecretList::Many(v) => v.clone(),
        };
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let secret = match e {
                SecretEntry::Plain(v) => {
                    if v.len() < 8 {
                        return Err(format!("entry {i} is shorter than 8 characters"));
                    }
                    Secret::from_value(&v)
                }
                SecretEntry::Full { value: Some(v), sha256: None, expires_at } => {
                    if v.len() < 8 {
                        return Err(format!("entry {i} is shorter than 8 characters"));
                    }
                    Secret { expires_at, ..Secret::from_value(&v) }
                }
                SecretEntry::Full { value: None, sha256: Some(h), expires_at } => {
                    let bytes = hex::decode(h.trim()).map_err(|_| format!("entry {i}: sha256 is not hex"))?;
                    let sha256: [u8; 32] = bytes.try_into().map_err(|_| format!("entry {i}: sha256 must be 64 hex digits"))?;
                    Secret { value: None, sha256, expires_at }
                }
                SecretEntry::Full { .. } => {
                    return Err(format!("entry {i} needs exactly one of value or sha256"));
                }
            };
            out.push(secret);
        }
        Ok(out)
    }
}
