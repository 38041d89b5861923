//! Strict JSON request bodies for the API. [`StrictJson`] reads the body like actix's `Json`
//! (content type, size limit and syntax go through `JsonConfig` and [`super::error::json_error`]),
//! then deserializes it tracking the JSON path, so that a body of the wrong shape is a 422 naming
//! the offending field. The body types deny unknown fields: a field the API does not know is
//! refused with its path and, when its name is close to a known one, that name
//! ("did you mean `covers`?"); otherwise the known fields are listed. CRM webhooks do not use
//! this: they stay lenient.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::ApiError;

/// A JSON body deserialized strictly; errors are 422 with the field's JSON path.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T> StrictJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for StrictJson<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Syntax, size and content type are checked here, with the app's JsonConfig.
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let raw = raw.await?;
            Ok(StrictJson(decode(raw.get())?))
        })
    }
}

/// Deserializes well-formed JSON into `T`; a value of the wrong shape, or a text holding a NUL
/// character (which PostgreSQL cannot store), is a 422 naming its path.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    // JSON can write a NUL only as this escape, so other bodies are not read twice.
    if text.contains("\\u0000")
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(path) = crate::domain::nul_path(&value, "")
    {
        return Err(ApiError::invalid(path, crate::domain::NUL_REASON));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(shape_error)
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut path: Vec<String> = err
        .path()
        .iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
            other => crate::domain::printable(&other.to_string()),
        })
        .collect();
    let inner = err.inner();
    let mut msg = inner.to_string();
    if inner.line() > 0 {
        let at = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(m) = msg.strip_suffix(&at) {
            msg = m.to_string();
        }
    }
    let quoted = |rest: &str| rest.split('`').skip(1).step_by(2).map(String::from).collect::<Vec<_>>();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", "there are no fields").
        let end = rest.rfind("`, expected ").or_else(|| rest.rfind("`, there are no fields")).unwrap_or(rest.len());
        let name = crate::domain::printable(rest[..end].trim_end_matches('`'));
        let known = rest[end..].split_once(", expected").map(|(_, e)| quoted(e)).unwrap_or_default();
        if path.last() != Some(&name) {
            path.push(name.clone());
        }
        let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let reason = match closest(&name, &known_refs) {
            Some(k) => format!("is not a known field; did you mean `{k}`?"),
            None if known.is_empty() => "is not a known field".to_string(),
            None => format!(
                "is not a known field; the known fields are {}",
                known_refs.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
        };
        return ApiError::invalid(join(&path), reason);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        path.push(crate::domain::printable(rest.trim_end_matches('`')));
        return ApiError::invalid(join(&path), "is required");
    }
    if path.is_empty() {
        return ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid", message: msg, field: None, retry_after: None };
    }
    ApiError::invalid(join(&path), msg)
}

/// `commitments`, `[0]`, `covers` → `commitments[0].covers`.
fn join(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if !out.is_empty() && !s.starts_with('[') {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

/// The known name closest to `unknown`, if one is close: at most 2 edits apart (and fewer
/// edits than either name has characters), or one name containing the other (the shorter of at
/// least 3 characters, so `requirement_ids` does not suggest `id`). Case is ignored.
pub fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let u = unknown.to_lowercase();
    known
        .iter()
        .filter_map(|k| {
            let kl = k.to_lowercase();
            let d = edit_distance(&u, &kl);
            let shorter = u.chars().count().min(kl.chars().count());
            let contains = shorter >= 3 && (u.contains(&kl) || kl.contains(&u));
            if d <= 2 && d < shorter {
                Some((d, *k))
            } else if contains {
                Some((3, *k))
            } else {
                None
            }
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        id: String,
        #[serde(default)]
        covers: Vec<String>,
        deliver_by: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default)]
        items: Vec<Inner>,
        name: Option<String>,
    }

    fn err(text: &str) -> ApiError {
        decode::<Outer>(text).unwrap_err()
    }

    #[test]
    fn unknown_fields_are_named_by_path_with_a_close_known_name() {
        let e = err(r#"{"items": [{"id": "a"}, {"id": "b", "cover": ["x"]}]}"#);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("items[1].cover"));
        assert_eq!(e.message, "items[1].cover: is not a known field; did you mean `covers`?");
        let e = err(r#"{"items": [{"id": "a", "requirement_ids": ["x"]}]}"#);
        assert_eq!(e.field.as_deref(), Some("items[0].requirement_ids"));
        assert_eq!(e.message, "items[0].requirement_ids: is not a known field; the known fields are `id`, `covers`, `deliver_by`");
        let e = err(r#"{"items": [{"id": "a", "text": "x"}]}"#);
        assert_eq!(e.message, "items[0].text: is not a known field; the known fields are `id`, `covers`, `deliver_by`");
        let e = err(r#"{"nmae": "x"}"#);
        assert_eq!((e.field.as_deref(), e.message.contains("did you mean `name`?")), (Some("nmae"), true));
    }

    #[test]
    fn other_shape_errors_name_the_path_too() {
        let e = err(r#"{"items": [{"id": "a", "covers": "x"}]}"#);
        assert_eq!(e.field.as_deref(), Some("items[0].covers"));
        assert!(!e.message.contains("line"), "{}", e.message);
        let e = err(r#"{"items": [{"covers": []}]}"#);
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("items[0].id"), "items[0].id: is required"));
        let e = err(r#""x""#);
        assert_eq!((e.status, e.field), (StatusCode::UNPROCESSABLE_ENTITY, None));
        assert!(decode::<Outer>(r#"{"items": [{"id": "a", "covers": ["x"]}], "name": "n"}"#).is_ok());
    }

    #[test]
    fn closeness() {
        let known = ["id", "text", "covers", "deliver_by"];
        assert_eq!(closest("cover", &known), Some("covers"));
        assert_eq!(closest("Covers", &known), Some("covers"));
        assert_eq!(closest("requirement_ids", &known), None);
        assert_eq!(closest("x", &known), None, "one letter is not close to `id`");
        assert_eq!(closest("deliver", &known), Some("deliver_by"));
        assert_eq!(closest("needed_by", &["id", "need_by", "stated_in"]), Some("need_by"));
        assert_eq!(closest("manager", &["name", "timezone", "manager_email", "crm_ids"]), Some("manager_email"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
