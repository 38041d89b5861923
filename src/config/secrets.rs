//! Secrets that rotate: API tokens, link-signing keys and webhook secrets. Each setting takes one
//! value, a list, or entries with an expiry, so an old secret keeps working for an overlap:
//!
//! ```toml
//! # from the environment: FIRSTCALL__API__TOKENS='["new-token", {value = "old-token", expires_at = "2026-12-01T00:00:00Z"}]'
//! ```
//!
//! API tokens may also be given as SHA-256 hashes (`{sha256 = "<hex>"}`) so the plain token
//! never needs to be stored anywhere firstcall reads; plain tokens are hashed on load.
//!
//! Every comparison of a secret (or of a value derived from one: a hash, an expected signature)
//! goes through [`SecretBytes`], which compares in constant time and has no `==`.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of a secret, or derived from one (a key, a token's hash, the signature a request should
/// carry), that can only be compared in constant time: the time taken never tells an attacker
/// how many leading bytes of a guess were right. It has no `PartialEq`, so `==` on a secret does
/// not compile, and its `Debug` never shows the bytes.
///
/// ```
/// use firstcall::config::secrets::SecretBytes;
/// let stored = SecretBytes::new(*b"token-0001");
/// assert!(stored.matches(b"token-0001"));
/// assert!(!stored.matches(b"token-0002"));
/// assert_eq!(format!("{stored:?}"), "SecretBytes(<redacted>)");
/// ```
///
/// ```compile_fail,E0369
/// use firstcall::config::secrets::SecretBytes;
/// let stored = SecretBytes::new(*b"token-0001");
/// let presented = SecretBytes::new(*b"token-0001");
/// assert!(stored == presented);
/// ```
#[derive(Clone)]
pub struct SecretBytes(Box<[u8]>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

// The only place the crate compares secret bytes: `clippy.toml` forbids `subtle` elsewhere.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
impl SecretBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> SecretBytes {
        SecretBytes(bytes.into().into_boxed_slice())
    }

    /// An HMAC-SHA256 keyed with these bytes: the bytes themselves never leave this type.
    pub fn hmac_sha256(&self) -> Hmac<Sha256> {
        // HMAC hashes long keys and pads short ones: no key length is refused.
        let Ok(mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) else { unreachable!("HMAC accepts keys of any length") };
        mac
    }

    /// The first `len` bytes (all of them if there are fewer), still secret.
    pub fn prefix(&self, len: usize) -> SecretBytes {
        SecretBytes::new(&self.0[..len.min(self.0.len())])
    }

    /// Whether `candidate` holds exactly these bytes, in time independent of where they differ.
    /// A different length never matches (lengths are not secret: they are fixed per kind).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(candidate).into()
    }

    /// Whether `candidate` matches any of `secrets`. Every one is compared, also after a match,
    /// so the time taken does not tell which secret (say, which rotated key) matched.
    pub fn matches_any<S: Borrow<SecretBytes>>(secrets: impl IntoIterator<Item = S>, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let mut found = subtle::Choice::from(0);
        for s in secrets {
            found |= s.borrow().0.ct_eq(candidate);
        }
        found.into()
    }
}

/// One secret as written in config.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    pub value: Option<SecretBytes>,
    pub sha256: SecretBytes,
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
        Secret { value: Some(SecretBytes::new(v.as_bytes())), sha256: SecretBytes::new(sha256(v.as_bytes())), expires_at: None }
    }

    /// A secret known only by its SHA-256: it can verify a presented value, never sign.
    pub fn from_sha256(hash: [u8; 32], expires_at: Option<DateTime<Utc>>) -> Secret {
        Secret { value: None, sha256: SecretBytes::new(hash), expires_at }
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
                    Secret::from_sha256(sha256, expires_at)
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

/// `bytes` with one byte changed, for each position in turn (to `x`, or `y` where it was `x`, so
/// ASCII text stays ASCII text): what a comparison of secrets must refuse, wherever it differs.
#[cfg(test)]
pub(crate) fn one_byte_changes(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len()).map(|i| {
        let mut changed = bytes.to_vec();
        changed[i] = if changed[i] == b'x' { b'y' } else { b'x' };
        changed
    })
}

/// [`one_byte_changes`] of a text.
#[cfg(test)]
pub(crate) fn one_char_changes(text: &str) -> impl Iterator<Item = String> + '_ {
    one_byte_changes(text.as_bytes()).map(|b| String::from_utf8(b).expect("ASCII in, ASCII out"))
}

#[cfg(test)]
mod tests {
    use super::{SecretBytes, one_byte_changes};

    #[test]
    fn a_secret_matches_only_its_exact_bytes() {
        let secret = SecretBytes::new(*b"api-token-0123456789");
        assert!(secret.matches(b"api-token-0123456789"));
        for changed in one_byte_changes(b"api-token-0123456789") {
            assert!(!secret.matches(&changed), "{}", String::from_utf8_lossy(&changed));
        }
        for other_length in [&b"api-token-012345678"[..], b"api-token-0123456789\0", b""] {
            assert!(!secret.matches(other_length));
        }
        let rotated = [SecretBytes::new(*b"old-key-0001"), SecretBytes::new(*b"new-key-0001")];
        assert!(SecretBytes::matches_any(&rotated, b"old-key-0001"));
        assert!(SecretBytes::matches_any(&rotated, b"new-key-0001"));
        assert!(one_byte_changes(b"new-key-0001").all(|c| !SecretBytes::matches_any(&rotated, &c)));
        assert!(!SecretBytes::matches_any(Vec::<SecretBytes>::new(), b""), "no secret matches nothing");
        assert_eq!(format!("{:?}", rotated[0]), "SecretBytes(<redacted>)");
    }
}
