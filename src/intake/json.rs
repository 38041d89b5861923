//! Reading CRM JSON with each field's path at hand, so that a refusal names the field the way a
//! CRM admin finds it in the body they sent (`[2].order.deal_id`, `meta.timestamp`), and
//! splitting a body into its events while keeping each event's own text as received.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::MAX_EVENTS_PER_REQUEST;
use super::event::PayloadError;
use crate::domain::printable;

/// The field name used when the body as a whole is at fault.
pub(crate) const BODY: &str = "(body)";

/// One event of a request body: its path prefix (`[3]` in a batch, empty for a lone object), its
/// parsed value and its own text exactly as it appears in the body.
pub(crate) struct RawEvent<'a> {
    pub path: String,
    pub value: Value,
    pub raw: &'a str,
}

/// Which bodies a source sends: one object per request, an array of them, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    One,
    Many,
    OneOrMany,
}

fn not_json(e: serde_json::Error) -> PayloadError {
    PayloadError::Malformed(format!("the body is not JSON: {e}"))
}

/// Parses a body into its events. Not JSON → `Malformed`; JSON of another shape than `shape`, or
/// more than [`MAX_EVENTS_PER_REQUEST`] events → `Invalid`.
pub(crate) fn split_events(body: &[u8], shape: Shape) -> Result<Vec<RawEvent<'_>>, PayloadError> {
    let root: &RawValue = serde_json::from_slice(body).map_err(not_json)?;
    let text = root.get();
    let parts: Vec<(String, &RawValue)> = if text.starts_with('[') && shape != Shape::One {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(not_json)?;
        if items.len() > MAX_EVENTS_PER_REQUEST {
            return Err(PayloadError::invalid(
                BODY,
                format!("{} events in one request; at most {MAX_EVENTS_PER_REQUEST} are accepted", items.len()),
            ));
        }
        items.into_iter().enumerate().map(|(i, raw)| (format!("[{i}]"), raw)).collect()
    } else if text.starts_with('{') && shape != Shape::Many {
        vec![(String::new(), root)]
    } else {
        let expected = match shape {
            Shape::One => "expected a JSON object",
            Shape::Many => "expected a JSON array of events",
            Shape::OneOrMany => "expected a JSON object or an array of objects",
        };
        return Err(PayloadError::invalid(BODY, expected));
    };
    parts
        .into_iter()
        .map(|(path, raw)| {
            let value: Value = serde_json::from_str(raw.get()).map_err(not_json)?;
            if !value.is_object() {
                let at = if path.is_empty() { BODY.to_string() } else { path };
                return Err(PayloadError::invalid(at, "expected a JSON object"));
            }
            // JSON can write a NUL only as this escape: other events are not walked (the ingest path).
            if raw.get().contains("\\u0000")
                && let Some(at) = crate::domain::nul_path(&value, &path)
            {
                return Err(PayloadError::invalid(at, crate::domain::NUL_REASON));
            }
            Ok(RawEvent { path, value, raw: raw.get() })
        })
        .collect()
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// A JSON object and where it sits in the body.
#[derive(Clone)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    /// `value` as an object at `path`; anything else is `Invalid` naming the path.
    pub fn new(value: &'a Value, path: impl Into<String>) -> Result<Self, PayloadError> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            other => {
                let at = if path.is_empty() { BODY.to_string() } else { path };
                Err(PayloadError::invalid(at, format!("expected an object, got {}", kind(other))))
            }
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> PayloadError {
        PayloadError::invalid(self.path_of(key), reason)
    }

    fn missing(&self, key: &str) -> PayloadError {
        self.invalid(key, "is required")
    }

    /// Whether `key` is present at all, even as `null`.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value at `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A string; an empty string counts as absent ("not stated").
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, format!("expected a string, got {}", kind(other)))),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<&'a str, PayloadError> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// An identifier CRMs send as a string or an integer, as text.
    pub fn opt_id(&self, key: &str) -> Result<Option<String>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(other) => Err(self.invalid(key, format!("expected a string or an integer id, got {}", kind(other)))),
        }
    }

    pub fn req_id(&self, key: &str) -> Result<String, PayloadError> {
        self.opt_id(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| self.invalid(key, "expected an integer")),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| self.invalid(key, "expected an integer")),
            Some(other) => Err(self.invalid(key, format!("expected an integer, got {}", kind(other)))),
        }
    }

    pub fn req_i64(&self, key: &str) -> Result<i64, PayloadError> {
        self.opt_i64(key)?.ok_or_else(|| self.missing(key))
    }

    /// A timestamp in Unix milliseconds.
    pub fn req_millis(&self, key: &str) -> Result<DateTime<Utc>, PayloadError> {
        let ms = self.req_i64(key)?;
        DateTime::from_timestamp_millis(ms).ok_or_else(|| self.invalid(key, "is not a time in Unix milliseconds"))
    }

    /// An RFC 3339 timestamp such as `2026-03-02T14:05:00Z`.
    pub fn req_rfc3339(&self, key: &str) -> Result<DateTime<Utc>, PayloadError> {
        let s = self.req_str(key)?;
        parse_rfc3339(s)
            .ok_or_else(|| self.invalid(key, format!("'{}' is not an RFC 3339 time such as 2026-03-02T14:05:00Z", printable(s))))
    }

    /// A nested object at `key`, with its path.
    pub fn opt_obj(&self, key: &str) -> Result<Option<Obj<'a>>, PayloadError> {
        self.get(key).map(|v| Obj::new(v, self.path_of(key))).transpose()
    }

    pub fn req_obj(&self, key: &str) -> Result<Obj<'a>, PayloadError> {
        self.opt_obj(key)?.ok_or_else(|| self.missing(key))
    }
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}
