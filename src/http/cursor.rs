//! The call list's cursor: where the next page starts, handed out as `next_cursor` and taken
//! back as `cursor`. It is opaque to clients: base64url (no padding) of a small JSON object
//! holding the list order's key of the last call on the page. Anything else is refused with 400
//! naming `cursor`, so a client that builds or edits one learns at once that it must not.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::workflow::queries::Position;

/// The cursor's JSON: which part of the list the page ended in, and its last call's key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "after", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Open { due_at: DateTime<Utc>, id: i64 },
    Closed { closed_at: DateTime<Utc>, id: i64 },
}

/// The cursor for the page that starts after `position`.
pub fn encode(position: Position) -> String {
    let wire = match position {
        Position::Open { due_at, id } => Wire::Open { due_at, id },
        Position::Closed { closed_at, id } => Wire::Closed { closed_at, id },
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
}

/// Reads a cursor this API handed out; anything else is a 400 naming `field`.
pub fn decode(field: &str, raw: &str) -> Result<Position, ApiError> {
    let refuse = || {
        ApiError::bad_parameter(
            field,
            "is not a cursor this API handed out: pass the `next_cursor` of the previous page unchanged, or leave it out for the first page",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw.as_bytes()).map_err(|_| refuse())?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    let position = match wire {
        Wire::Open { due_at, id } => Position::Open { due_at, id },
        Wire::Closed { closed_at, id } => Position::Closed { closed_at, id },
    };
    match position {
        Position::Open { id, .. } | Position::Closed { id, .. } if id < 1 => Err(refuse()),
        p => Ok(p),
    }
}

/// Rows per page unless `limit` says otherwise, and the most a page holds.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 500;

/// A list's `limit` parameter: at least 1, 100 when absent, at most 500 (more is read as 500).
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        Some(0) => Err(ApiError::bad_parameter("limit", format!("must be at least 1 (at most {MAX_LIMIT})"))),
        Some(n) => Ok(n.min(MAX_LIMIT)),
        None => Ok(DEFAULT_LIMIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_cursor_reads_back_as_the_position_it_was_made_from() {
        for p in [
            Position::Open { due_at: at("2026-11-23T13:00:00.123456Z"), id: 7 },
            Position::Closed { closed_at: at("2026-11-23T13:00:00Z"), id: i64::MAX },
        ] {
            let c = encode(p);
            assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'), "URL-safe as it is: {c}");
            assert_eq!(decode("cursor", &c).unwrap(), p);
        }
    }

    #[test]
    fn anything_but_a_cursor_handed_out_is_refused_naming_the_parameter() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            "".to_string(),
            "%%%".to_string(),
            b64("[]"),
            b64(r#"{"after":"open","due_at":"2026-11-23T13:00:00Z","id":1,"page":2}"#),
            b64(r#"{"after":"open","closed_at":"2026-11-23T13:00:00Z","id":1}"#),
            b64(r#"{"after":"open","due_at":"2026-11-23T13:00:00Z","id":0}"#),
            b64(r#"{"after":"open","due_at":"2026-11-23T13:00:00Z","id":"1"}"#),
            b64(r#"{"due_at":"2026-11-23T13:00:00Z","id":1}"#),
        ] {
            let e = decode("cursor", &bad).expect_err(&bad);
            assert_eq!((e.status.as_u16(), e.field.as_deref()), (400, Some("cursor")), "{bad}");
            assert!(e.message.starts_with("cursor: ") && e.message.contains("next_cursor"), "{}", e.message);
        }
    }
}
