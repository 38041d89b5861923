//! Proves a webhook came from the CRM it claims: the generic `X-Firstcall-Signature` HMAC,
//! HubSpot's signature v3, Pipedrive's HTTP basic auth and the secret path segment of the
//! Salesforce endpoint (Salesforce's organization check is
//! [`super::salesforce::check_organization`]; it returns this module's error too).
//! Pure functions: the caller passes the headers, the raw body, the configured secrets and `now`.
//!
//! Every comparison of secret-derived bytes is constant-time ([`SecretBytes`]), every active secret is
//! tried (so a secret can be rotated with an overlap) and a secret past its `expires_at` is never
//! accepted. Error messages tell a CRM admin what to fix and never contain a secret or the
//! signature firstcall expected.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::config::secrets::{Secret, SecretBytes, sha256};
use crate::domain::{Source, printable};

/// The generic webhook's signature header.
pub const GENERIC_SIGNATURE_HEADER: &str = "X-Firstcall-Signature";
/// HubSpot's v3 signature header (base64 HMAC-SHA256).
pub const HUBSPOT_SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";
/// HubSpot's request timestamp header (Unix milliseconds).
pub const HUBSPOT_TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";
/// The header carrying Pipedrive's basic-auth credentials.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// More `v1=` entries than this in one generic signature header is not a rotation, it is abuse.
const MAX_GENERIC_SIGNATURES: usize = 8;

/// Why a webhook request was not accepted as coming from the CRM. All of these are 401-class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing; configure the CRM to send it (see firstcall's webhook documentation)")]
    MissingHeader(&'static str),
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader { header: &'static str, reason: String },
    #[error(
        "the request was signed {age_secs} seconds ago, more than the {tolerance_secs} seconds allowed; \
         resend it, and check the sending system's clock"
    )]
    TimestampTooOld { age_secs: i64, tolerance_secs: i64 },
    #[error(
        "the request is signed {ahead_secs} seconds in the future, more than the {tolerance_secs} seconds allowed; \
         check the sending system's clock"
    )]
    TimestampInFuture { ahead_secs: i64, tolerance_secs: i64 },
    #[error(
        "the {header} header does not match any secret firstcall holds for this source; check the secret \
         configured in the CRM and that the body is sent exactly as signed"
    )]
    Mismatch { header: &'static str },
    #[error("{crm} webhooks are not set up in firstcall: {missing}")]
    NotConfigured { crm: Source, missing: &'static str },
    #[error("Salesforce organization '{0}' is not accepted; add its id to webhooks.salesforce.organization_ids")]
    UnknownOrganization(String),
    #[error("the message names no Salesforce organization; an outbound message carries its org's id in notifications/OrganizationId")]
    NoOrganization,
    #[error(
        "this endpoint takes a secret path segment: set the outbound message's endpoint URL to \
         /webhooks/salesforce/<path secret>, the value of FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS"
    )]
    MissingPathSecret,
    #[error(
        "the path secret in the URL does not match any that firstcall holds (or it has expired); check the outbound \
         message's endpoint URL against FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS"
    )]
    WrongPathSecret,
    #[error(
        "no path secret is configured for Salesforce (FIRSTCALL__WEBHOOKS__SALESFORCE__PATH_SECRETS), so the endpoint is \
         /webhooks/salesforce without one; set the variable to this URL's last segment, or remove it from the URL"
    )]
    PathSecretNotConfigured,
}

impl SignatureError {
    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing_signature",
            SignatureError::MalformedHeader { .. } => "malformed_signature",
            SignatureError::TimestampTooOld { .. } => "signature_too_old",
            SignatureError::TimestampInFuture { .. } => "signature_in_future",
            SignatureError::Mismatch { .. } => "invalid_signature",
            SignatureError::NotConfigured { .. } => "source_not_configured",
            SignatureError::UnknownOrganization(_) => "unknown_organization",
            SignatureError::NoOrganization => "missing_organization",
            SignatureError::MissingPathSecret => "missing_path_secret",
            SignatureError::WrongPathSecret => "invalid_path_secret",
            SignatureError::PathSecretNotConfigured => "path_secret_not_configured",
        }
    }
}

fn malformed(header: &'static str, reason: impl Into<String>) -> SignatureError {
    SignatureError::MalformedHeader { header, reason: reason.into() }
}

/// The keys of the secrets that can compute an HMAC now: active and holding their value.
fn hmac_keys(secrets: &[Secret], now: DateTime<Utc>) -> Vec<&SecretBytes> {
    secrets.iter().filter(|s| s.active_at(now)).filter_map(|s| s.value.as_ref()).collect()
}

fn hmac_sha256(key: &SecretBytes, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.hmac_sha256();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// True if any presented signature equals any expected one; looks at all pairs so the time taken
/// does not depend on which secret or which entry matched.
fn any_match(expected: &[SecretBytes], presented: &[[u8; 32]]) -> bool {
    presented.iter().fold(false, |found, p| SecretBytes::matches_any(expected, p) | found)
}

/// The SHA-256 of every secret active at `now`, to compare a presented value's hash with.
fn active_hashes(secrets: &[Secret], now: DateTime<Utc>) -> Vec<SecretBytes> {
    secrets.iter().filter(|s| s.active_at(now)).map(|s| s.sha256.clone()).collect()
}

/// Refuses a signing time (Unix milliseconds) outside `now ± tolerance`, in either direction.
fn check_window(signed_at_ms: i64, now: DateTime<Utc>, tolerance_secs: i64) -> Result<(), SignatureError> {
    let tolerance_ms = tolerance_secs.saturating_mul(1000);
    let age_ms = now.timestamp_millis().saturating_sub(signed_at_ms);
    if age_ms > tolerance_ms {
        return Err(SignatureError::TimestampTooOld { age_secs: ceil_secs(age_ms), tolerance_secs });
    }
    if age_ms < tolerance_ms.saturating_neg() {
        return Err(SignatureError::TimestampInFuture { ahead_secs: ceil_secs(age_ms.saturating_neg()), tolerance_secs });
    }
    Ok(())
}

/// Whole seconds, rounded up, so "301 seconds" is reported for anything past the 300 allowed.
fn ceil_secs(ms: i64) -> i64 {
    ms.saturating_add(999) / 1000
}

// ---------------------------------------------------------------------------------------------
// Generic: X-Firstcall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// ---------------------------------------------------------------------------------------------

/// The `X-Firstcall-Signature` value for `body` signed with `secret` at Unix second `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign_generic(secret: &[u8], t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let mac = hmac_sha256(&SecretBytes::new(secret), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

/// Verifies the generic webhook's `X-Firstcall-Signature` header against the raw body. The header
/// may carry several `v1=` entries (a sender rotating its secret signs with both); one matching
/// any active secret is enough. Unknown keys (a future `v2=`) are ignored.
pub fn verify_generic(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    const H: &str = GENERIC_SIGNATURE_HEADER;
    let keys = hmac_keys(secrets, now);
    if keys.is_empty() {
        return Err(SignatureError::NotConfigured {
            crm: Source::Generic,
            missing: "no active secret; set FIRSTCALL__WEBHOOKS__GENERIC__SECRETS",
        });
    }
    let header = header.ok_or(SignatureError::MissingHeader(H))?;
    let (t_text, presented) = parse_generic_header(header)?;
    let t: i64 = t_text.parse().map_err(|_| malformed(H, "t= must be a Unix time in whole seconds"))?;
    check_window(t.saturating_mul(1000), now, tolerance_secs)?;
    let expected: Vec<SecretBytes> = keys.iter().map(|k| SecretBytes::new(hmac_sha256(k, &[t_text.as_bytes(), b".", body]))).collect();
    if any_match(&expected, &presented) { Ok(()) } else { Err(SignatureError::Mismatch { header: H }) }
}

/// Splits `t=…,v1=…[,v1=…]` into the timestamp text and the decoded `v1` signatures.
fn parse_generic_header(header: &str) -> Result<(&str, Vec<[u8; 32]>), SignatureError> {
    const H: &str = GENERIC_SIGNATURE_HEADER;
    let expected_form = "expected t=<unix seconds>,v1=<64 hex digits>";
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or_else(|| malformed(H, expected_form))?;
        match key.trim() {
            "t" if t.is_some() => return Err(malformed(H, "t= appears more than once")),
            "t" => t = Some(value.trim()),
            "v1" => {
                if signatures.len() == MAX_GENERIC_SIGNATURES {
                    return Err(malformed(H, format!("more than {MAX_GENERIC_SIGNATURES} v1= signatures")));
                }
                let mut sig = [0u8; 32];
                hex::decode_to_slice(value.trim(), &mut sig).map_err(|_| malformed(H, "v1= must be 64 hex digits"))?;
                signatures.push(sig);
            }
            _ => {}
        }
    }
    let t = t.ok_or_else(|| malformed(H, format!("t= is missing; {expected_form}")))?;
    if signatures.is_empty() {
        return Err(malformed(H, format!("no v1= signature; {expected_form}")));
    }
    Ok((t, signatures))
}

// ---------------------------------------------------------------------------------------------
// HubSpot signature v3
// ---------------------------------------------------------------------------------------------

/// The URI as HubSpot signs it: these percent-encoded characters are decoded first (both hex
/// cases), every other `%XX` stays as received.
const HUBSPOT_DECODED: [u8; 12] = [b':', b'/', b'?', b'@', b'!', b'$', b'\'', b'(', b')', b'*', b',', b';'];

fn hubspot_uri(uri: &str) -> Vec<u8> {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex_pair) = bytes.get(i + 1..i + 3)
            && hex_pair.iter().all(u8::is_ascii_hexdigit)
            && let Ok(s) = std::str::from_utf8(hex_pair)
            && let Ok(decoded) = u8::from_str_radix(s, 16)
            && HUBSPOT_DECODED.contains(&decoded)
        {
            out.push(decoded);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hubspot_mac(secret: &SecretBytes, method: &str, uri: &str, body: &[u8], timestamp: &str) -> [u8; 32] {
    let uri = hubspot_uri(uri);
    hmac_sha256(secret, &[method.as_bytes(), &uri, body, timestamp.as_bytes()])
}

/// The `X-HubSpot-Signature-v3` value HubSpot would send: base64 of
/// HMAC-SHA256(client secret, method + URI + body + timestamp), where the URI is the full URL
/// HubSpot called with HubSpot's listed percent-encodings decoded.
pub fn sign_hubspot_v3(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp_ms: i64) -> String {
    BASE64.encode(hubspot_mac(&SecretBytes::new(secret), method, uri, body, &timestamp_ms.to_string()))
}

/// Verifies HubSpot's signature v3. `uri` is the full URL HubSpot called, as HubSpot sent it:
/// scheme, host, path and query (behind a proxy, build it from `http.public_url` and the request's
/// path and query). `timestamp` is `X-HubSpot-Request-Timestamp`, Unix milliseconds.
#[allow(clippy::too_many_arguments)] // the request's parts, as HubSpot's algorithm lists them
pub fn verify_hubspot_v3(
    signature: Option<&str>,
    timestamp: Option<&str>,
    method: &str,
    uri: &str,
    body: &[u8],
    secrets: &[Secret],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let keys = hmac_keys(secrets, now);
    if keys.is_empty() {
        return Err(SignatureError::NotConfigured {
            crm: Source::Hubspot,
            missing: "no active client secret; set FIRSTCALL__WEBHOOKS__HUBSPOT__CLIENT_SECRETS",
        });
    }
    let signature = signature.ok_or(SignatureError::MissingHeader(HUBSPOT_SIGNATURE_HEADER))?;
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader(HUBSPOT_TIMESTAMP_HEADER))?.trim();
    let signed_at_ms: i64 = timestamp.parse().map_err(|_| malformed(HUBSPOT_TIMESTAMP_HEADER, "expected a Unix time in milliseconds"))?;
    let presented: [u8; 32] = BASE64
        .decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(HUBSPOT_SIGNATURE_HEADER, "expected the base64 of a 32-byte HMAC-SHA256"))?;
    check_window(signed_at_ms, now, tolerance_secs)?;
    let expected: Vec<SecretBytes> = keys.iter().map(|k| SecretBytes::new(hubspot_mac(k, method, uri, body, timestamp))).collect();
    if any_match(&expected, &[presented]) { Ok(()) } else { Err(SignatureError::Mismatch { header: HUBSPOT_SIGNATURE_HEADER }) }
}

// ---------------------------------------------------------------------------------------------
// Pipedrive: HTTP basic auth
// ---------------------------------------------------------------------------------------------

/// Verifies an `Authorization: Basic <base64 user:password>` header against `user:password`
/// credentials. Compares SHA-256 digests in constant time, so credentials configured only as a
/// hash (`{sha256 = "…"}`) work too.
pub fn verify_basic_auth(authorization: Option<&str>, credentials: &[Secret], now: DateTime<Utc>) -> Result<(), SignatureError> {
    const H: &str = AUTHORIZATION_HEADER;
    let active = active_hashes(credentials, now);
    if active.is_empty() {
        return Err(SignatureError::NotConfigured {
            crm: Source::Pipedrive,
            missing: "no active user:password; set FIRSTCALL__WEBHOOKS__PIPEDRIVE__BASIC_AUTH",
        });
    }
    let header = authorization.ok_or(SignatureError::MissingHeader(H))?.trim();
    let expected_form = "expected Basic <base64 of user:password>";
    let (scheme, encoded) = header.split_once(' ').ok_or_else(|| malformed(H, expected_form))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed(H, format!("the scheme must be Basic, not {}", printable(scheme))));
    }
    let decoded = BASE64.decode(encoded.trim()).map_err(|_| malformed(H, expected_form))?;
    if !decoded.contains(&b':') {
        return Err(malformed(H, "the credentials must be user:password"));
    }
    if any_match(&active, &[sha256(&decoded)]) { Ok(()) } else { Err(SignatureError::Mismatch { header: H }) }
}

/// Checks the secret path segment of an endpoint (`/webhooks/salesforce/<secret>`), for a CRM
/// that cannot sign its requests. With no secret configured the endpoint takes no segment; with
/// one, it takes nothing else. The presented segment's SHA-256 is compared with every active
/// secret's in constant time, so a secret configured only as a hash works too.
pub fn verify_path_secret(presented: Option<&str>, secrets: &[Secret], now: DateTime<Utc>) -> Result<(), SignatureError> {
    match presented {
        None if secrets.is_empty() => Ok(()),
        Some(_) if secrets.is_empty() => Err(SignatureError::PathSecretNotConfigured),
        None => Err(SignatureError::MissingPathSecret),
        Some(segment) => {
            let active = active_hashes(secrets, now);
            if any_match(&active, &[sha256(segment.as_bytes())]) { Ok(()) } else { Err(SignatureError::WrongPathSecret) }
        }
    }
}

#[cfg(test)]
mod tests;
