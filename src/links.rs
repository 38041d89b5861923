//! Proof that a request may see or change a call, without a login: signed, expiring links in
//! reps' emails, CSRF tokens for the call page's form, and bearer tokens for the API.
//!
//! All three rotate: the config lists several keys or tokens, each with an optional expiry, and
//! every one still active verifies, so a new key can be introduced while links signed with the
//! old one keep working until it expires. Every comparison of a secret-derived value is constant
//! time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::config::Secret;
use crate::config::secrets::{SecretBytes, sha256};

/// Version byte of the link token layout below; a new layout gets a new number.
const LINK_VERSION: u8 = 1;
/// version (1) | call id (8, big-endian) | expires at, unix seconds (8, big-endian) | HMAC (32)
const LINK_LEN: usize = 1 + 8 + 8 + 32;
/// Domain separation: a CSRF token can never pass as a link token, nor the other way round.
const LINK_CONTEXT: &[u8] = b"firstcall/call-link/v1\0";
const CSRF_CONTEXT: &[u8] = b"firstcall/csrf/v1\0";

/// Why a link was refused. The page tells the rep which: an expired link asks for a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not valid (it may have been cut off or changed)")]
    Malformed,
    #[error("this link belongs to another call")]
    WrongCall,
    #[error("this link expired at {expired_at}; ask for a new one")]
    Expired { expired_at: DateTime<Utc> },
}

/// The keys cannot sign anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no link-signing key with a value is configured (links.signing_keys)")]
pub struct NoSigningKey;

struct Key {
    value: SecretBytes,
    expires_at: Option<DateTime<Utc>>,
}

impl Key {
    fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    fn mac(&self, context: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.value.hmac_sha256();
        mac.update(context);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Signs and checks links and CSRF tokens with the configured keys.
pub struct LinkSigner {
    keys: Vec<Key>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let expiries: Vec<_> = self.keys.iter().map(|k| k.expires_at).collect();
        f.debug_struct("LinkSigner").field("key_expiries", &expiries).finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// Keys in config order; the ones given only as a hash cannot sign and are skipped.
    pub fn new(keys: Vec<Secret>) -> Result<LinkSigner, NoSigningKey> {
        let keys: Vec<Key> = keys.into_iter().filter_map(|s| s.value.map(|value| Key { value, expires_at: s.expires_at })).collect();
        if keys.is_empty() {
            return Err(NoSigningKey);
        }
        Ok(LinkSigner { keys })
    }

    /// A signer with a random key, for a development setup without configured keys: its links
    /// stop working when the process restarts.
    pub fn ephemeral() -> LinkSigner {
        let value = SecretBytes::new(rand::random::<[u8; 32]>());
        LinkSigner { keys: vec![Key { value, expires_at: None }] }
    }

    /// The key that signs a token valid until `until`: the first key still active then, so a
    /// key on its way out never signs a link that would outlive it; if none is, the key that
    /// lasts longest.
    fn signing_key(&self, until: Option<DateTime<Utc>>) -> &Key {
        let first_active = match until {
            Some(t) => self.keys.iter().find(|k| k.active_at(t)),
            None => self.keys.iter().find(|k| k.expires_at.is_none()),
        };
        first_active.or_else(|| self.keys.iter().max_by_key(|k| k.expires_at)).expect("LinkSigner::new guarantees at least one key")
    }

    /// A URL-safe token for the call page of `call_id`, valid until `expires_at`.
    pub fn sign(&self, call_id: i64, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let tag = self.signing_key(Some(expires_at)).mac(LINK_CONTEXT, &[&call_id.to_be_bytes(), &expires.to_be_bytes()]);
        let mut token = Vec::with_capacity(LINK_LEN);
        token.push(LINK_VERSION);
        token.extend_from_slice(&call_id.to_be_bytes());
        token.extend_from_slice(&expires.to_be_bytes());
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Checks that `token` was signed by an active key for `call_id` and has not expired at `now`.
    /// The signature is checked first, so a changed token says nothing about which call or time
    /// it was for.
    pub fn verify(&self, token: &str, call_id: i64, now: DateTime<Utc>) -> Result<(), LinkError> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| LinkError::Malformed)?;
        if bytes.len() != LINK_LEN || bytes[0] != LINK_VERSION {
            return Err(LinkError::Malformed);
        }
        let (signed_call, signed_expires) = (&bytes[1..9], &bytes[9..17]);
        let tag = &bytes[17..];
        if !self.any_active_key_matches(now, tag, |k| k.mac(LINK_CONTEXT, &[signed_call, signed_expires])) {
            return Err(LinkError::Malformed);
        }
        let signed_call = i64::from_be_bytes(signed_call.try_into().map_err(|_| LinkError::Malformed)?);
        let signed_expires = i64::from_be_bytes(signed_expires.try_into().map_err(|_| LinkError::Malformed)?);
        if signed_call != call_id {
            return Err(LinkError::WrongCall);
        }
        let expired_at = DateTime::from_timestamp(signed_expires, 0).ok_or(LinkError::Malformed)?;
        if now >= expired_at {
            return Err(LinkError::Expired { expired_at });
        }
        Ok(())
    }

    /// A token for the call page's form, bound to the call and to the visitor's session nonce
    /// (a random value in a cookie), so another site cannot make the rep's browser post it.
    pub fn csrf_token(&self, call_id: i64, session_nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.signing_key(None).mac(CSRF_CONTEXT, &[&call_id.to_be_bytes(), session_nonce.as_bytes()]))
    }

    /// Checks a form's CSRF token against the call and the session nonce; any active key verifies.
    pub fn verify_csrf(&self, token: &str, call_id: i64, session_nonce: &str, now: DateTime<Utc>) -> Result<(), LinkError> {
        let tag = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| LinkError::Malformed)?;
        if session_nonce.is_empty() || tag.len() != 32 {
            return Err(LinkError::Malformed);
        }
        if self.any_active_key_matches(now, &tag, |k| k.mac(CSRF_CONTEXT, &[&call_id.to_be_bytes(), session_nonce.as_bytes()])) {
            Ok(())
        } else {
            Err(LinkError::Malformed)
        }
    }

    /// Compares `tag` with the tag of every key active at `now`, all of them, in constant time.
    fn any_active_key_matches(&self, now: DateTime<Utc>, tag: &[u8], expected: impl Fn(&Key) -> [u8; 32]) -> bool {
        // Which keys are active is no secret; the tags are compared all of them, in constant time.
        SecretBytes::matches_any(self.keys.iter().filter(|k| k.active_at(now)).map(|k| SecretBytes::new(expected(k))), tag)
    }
}

/// Why an API request was refused; all of them answer 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send Authorization: Bearer <token>)")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("this bearer token has expired; ask for a new one")]
    Expired,
}

/// Checks API bearer tokens against the SHA-256 hashes of the configured ones.
pub struct ApiAuth {
    tokens: Vec<(SecretBytes, Option<DateTime<Utc>>)>,
}

impl ApiAuth {
    /// True when no token is configured: every API request is refused.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth").field("tokens", &self.tokens.len()).finish_non_exhaustive()
    }
}

impl ApiAuth {
    /// With no tokens, every request is refused.
    pub fn new(tokens: Vec<Secret>) -> ApiAuth {
        ApiAuth { tokens: tokens.into_iter().map(|s| (s.sha256, s.expires_at)).collect() }
    }

    /// Checks an `Authorization` header value (`Bearer <token>`, or the bare token). The hash
    /// of the presented token is compared with every stored hash, all of them, in constant time.
    pub fn check(&self, bearer: Option<&str>, now: DateTime<Utc>) -> Result<(), AuthError> {
        let presented = bearer.map(str::trim).filter(|b| !b.is_empty() && !b.eq_ignore_ascii_case("bearer")).ok_or(AuthError::Missing)?;
        let token = match presented.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            Some(_) => return Err(AuthError::Invalid),
            None => presented,
        };
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let hash = sha256(token.as_bytes());
        let (active, expired): (Vec<_>, Vec<_>) = self.tokens.iter().partition(|(_, until)| until.is_none_or(|t| now < t));
        // Both sets are compared in full, so the time taken says nothing about the token either.
        let active_match = SecretBytes::matches_any(active.iter().map(|(h, _)| h), &hash);
        let expired_match = SecretBytes::matches_any(expired.iter().map(|(h, _)| h), &hash);
        if active_match {
            Ok(())
        } else if expired_match {
            Err(AuthError::Expired)
        } else {
            Err(AuthError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secrets::{one_byte_changes, one_char_changes};
    use chrono::{TimeDelta, TimeZone};

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + TimeDelta::hours(h)
    }

    fn key(v: &str, expires_at: Option<DateTime<Utc>>) -> Secret {
        Secret { expires_at, ..Secret::from_value(v) }
    }

    fn signer() -> LinkSigner {
        LinkSigner::new(vec![key("key-one-0123456789", None)]).unwrap()
    }

    #[test]
    fn a_signed_link_verifies_for_its_call_until_it_expires() {
        let s = signer();
        let token = s.sign(42, t(48));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        assert_eq!(s.verify(&token, 42, t(0)), Ok(()));
        assert_eq!(s.verify(&token, 42, t(47)), Ok(()));
        assert_eq!(s.verify(&token, 42, t(48)), Err(LinkError::Expired { expired_at: t(48) }));
        assert_eq!(s.verify(&token, 43, t(0)), Err(LinkError::WrongCall));
    }

    #[test]
    fn tampered_or_garbled_links_are_malformed() {
        let s = signer();
        let token = s.sign(42, t(48));
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        // Moving the expiry or the call id breaks the signature, whatever else is kept.
        for i in [1, 8, 9, 16, 17, 48] {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert_eq!(s.verify(&URL_SAFE_NO_PAD.encode(&changed), 42, t(0)), Err(LinkError::Malformed), "byte {i}");
        }
        bytes.pop();
        for bad in [URL_SAFE_NO_PAD.encode(&bytes), String::new(), "%%%".into(), format!("{token}AA"), token[..token.len() - 1].into()] {
            assert_eq!(s.verify(&bad, 42, t(0)), Err(LinkError::Malformed), "{bad}");
        }
        // A token from another key is not ours.
        let other = LinkSigner::new(vec![key("another-key-98765", None)]).unwrap();
        assert_eq!(s.verify(&other.sign(42, t(48)), 42, t(0)), Err(LinkError::Malformed));
        // Signed as a link for one call, tampered to another: malformed, not "wrong call".
        let mut moved = URL_SAFE_NO_PAD.decode(&token).unwrap();
        moved[1..9].copy_from_slice(&43i64.to_be_bytes());
        assert_eq!(s.verify(&URL_SAFE_NO_PAD.encode(&moved), 43, t(0)), Err(LinkError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_links_valid_until_the_old_key_expires() {
        let old_only = LinkSigner::new(vec![key("old-key-0123456789", None)]).unwrap();
        let old_link = old_only.sign(7, t(100));
        // Rotation: the new key goes first, the old one stays until hour 24.
        let rotated = LinkSigner::new(vec![key("new-key-0123456789", None), key("old-key-0123456789", Some(t(24)))]).unwrap();
        assert_eq!(rotated.verify(&old_link, 7, t(23)), Ok(()));
        assert_eq!(rotated.verify(&old_link, 7, t(24)), Err(LinkError::Malformed));
        let new_link = rotated.sign(7, t(100));
        assert_eq!(rotated.verify(&new_link, 7, t(30)), Ok(()));
        assert_eq!(old_only.verify(&new_link, 7, t(0)), Err(LinkError::Malformed), "signed with the new key");
        // Listed first but on its way out: the key that outlives the link signs it.
        let reversed = LinkSigner::new(vec![key("old-key-0123456789", Some(t(24))), key("new-key-0123456789", None)]).unwrap();
        assert_eq!(reversed.sign(7, t(100)), new_link);
        // A short link may still be signed by the first key.
        assert_eq!(reversed.sign(7, t(10)), old_only.sign(7, t(10)));
    }

    #[test]
    fn signer_needs_a_key_with_a_value() {
        let hashed_only = Secret::from_sha256([0; 32], None);
        assert_eq!(LinkSigner::new(vec![hashed_only]).err(), Some(NoSigningKey));
        assert_eq!(LinkSigner::new(vec![]).err(), Some(NoSigningKey));
        let e = LinkSigner::ephemeral();
        assert_eq!(e.verify(&e.sign(1, t(1)), 1, t(0)), Ok(()));
        assert!(!format!("{e:?}").contains("value"));
    }

    #[test]
    fn csrf_tokens_bind_call_and_session() {
        let s = signer();
        let token = s.csrf_token(42, "nonce-a");
        assert_eq!(s.verify_csrf(&token, 42, "nonce-a", t(0)), Ok(()));
        assert_eq!(s.verify_csrf(&token, 43, "nonce-a", t(0)), Err(LinkError::Malformed));
        assert_eq!(s.verify_csrf(&token, 42, "nonce-b", t(0)), Err(LinkError::Malformed));
        assert_eq!(s.verify_csrf(&token, 42, "", t(0)), Err(LinkError::Malformed));
        assert_eq!(s.verify_csrf("", 42, "nonce-a", t(0)), Err(LinkError::Malformed));
        // A link token is not a CSRF token and the other way round.
        assert_eq!(s.verify_csrf(&s.sign(42, t(1)), 42, "nonce-a", t(0)), Err(LinkError::Malformed));
        assert_eq!(s.verify(&token, 42, t(0)), Err(LinkError::Malformed));
        // Rotation: a form rendered with the old key still posts until the key expires.
        let rotated = LinkSigner::new(vec![key("new-key-0123456789", None), key("key-one-0123456789", Some(t(24)))]).unwrap();
        assert_eq!(rotated.verify_csrf(&token, 42, "nonce-a", t(1)), Ok(()));
        assert_eq!(rotated.verify_csrf(&token, 42, "nonce-a", t(25)), Err(LinkError::Malformed));
    }

    #[test]
    fn api_tokens_by_hash_with_expiry() {
        let hashed = Secret::from_sha256(sha256(b"hashed-token-123"), None);
        let auth = ApiAuth::new(vec![key("current-token-123", None), key("old-token-12345", Some(t(24))), hashed]);
        assert_eq!(auth.check(Some("Bearer current-token-123"), t(0)), Ok(()));
        assert_eq!(auth.check(Some("bearer   current-token-123 "), t(0)), Ok(()));
        assert_eq!(auth.check(Some("current-token-123"), t(0)), Ok(()));
        assert_eq!(auth.check(Some("Bearer hashed-token-123"), t(0)), Ok(()));
        assert_eq!(auth.check(Some("Bearer old-token-12345"), t(23)), Ok(()));
        assert_eq!(auth.check(Some("Bearer old-token-12345"), t(24)), Err(AuthError::Expired));
        assert_eq!(auth.check(Some("Bearer current-token-12"), t(0)), Err(AuthError::Invalid));
        assert_eq!(auth.check(Some("Basic current-token-123"), t(0)), Err(AuthError::Invalid));
        assert_eq!(auth.check(Some("Bearer "), t(0)), Err(AuthError::Missing));
        assert_eq!(auth.check(Some(""), t(0)), Err(AuthError::Missing));
        assert_eq!(auth.check(None, t(0)), Err(AuthError::Missing));
        assert_eq!(ApiAuth::new(vec![]).check(Some("Bearer anything-at-all"), t(0)), Err(AuthError::Invalid));
    }

    #[test]
    fn a_link_csrf_token_or_api_token_one_byte_off_is_refused() {
        let s = signer();
        let link = URL_SAFE_NO_PAD.decode(s.sign(42, t(48))).unwrap();
        for changed in one_byte_changes(&link) {
            assert_eq!(s.verify(&URL_SAFE_NO_PAD.encode(&changed), 42, t(0)), Err(LinkError::Malformed));
        }
        let csrf = URL_SAFE_NO_PAD.decode(s.csrf_token(42, "nonce-a")).unwrap();
        for changed in one_byte_changes(&csrf) {
            assert_eq!(s.verify_csrf(&URL_SAFE_NO_PAD.encode(&changed), 42, "nonce-a", t(0)), Err(LinkError::Malformed));
        }
        let auth = ApiAuth::new(vec![key("current-token-123", None), Secret::from_sha256(sha256(b"hashed-token-123"), None)]);
        for right in ["current-token-123", "hashed-token-123"] {
            assert_eq!(auth.check(Some(right), t(0)), Ok(()));
            for changed in one_char_changes(right) {
                assert_eq!(auth.check(Some(&changed), t(0)), Err(AuthError::Invalid), "{changed}");
            }
        }
    }

    #[test]
    fn comparisons_go_through_constant_time_equality() {
        // The match decision is a `subtle::Choice` over every key; these cases pin that it is
        // the combination, not the first key, that decides.
        let s = LinkSigner::new(vec![key("aaaa-key-0123456789", Some(t(1))), key("bbbb-key-0123456789", None)]).unwrap();
        let link = s.sign(5, t(100));
        assert_eq!(s.verify(&link, 5, t(50)), Ok(()), "second key matches while the first has expired");
        let tag = [0u8; 32];
        assert!(!s.any_active_key_matches(t(0), &tag, |_| [1u8; 32]));
        assert!(s.any_active_key_matches(t(0), &tag, |_| [0u8; 32]));
        assert!(!s.any_active_key_matches(t(0), &tag[..31], |_| [0u8; 32]), "length mismatch never matches");
        assert!(!s.any_active_key_matches(t(200), &tag, |k| if k.expires_at.is_some() { [0u8; 32] } else { [1u8; 32] }));
    }
}
