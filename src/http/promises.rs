//! The promises API: list the promises made to customers, and mark one delivered, slipped to a
//! new date, or dropped.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::json::StrictJson;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::workflow::promises::{self, Mark, MarkError, Promise, PromiseState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/promises", web::get().to(list_promises))
        .route("/api/v1/promises/{id}/delivered", web::post().to(mark_delivered))
        .route("/api/v1/promises/{id}/slip", web::post().to(mark_slipped))
        .route("/api/v1/promises/{id}/drop", web::post().to(mark_dropped));
}

/// A promise made to a customer, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PromiseView {
    pub id: i64,
    /// The first call whose completion made it.
    pub call_id: i64,
    pub source: String,
    pub deal_id: String,
    /// The proposal commitment it came from (its `id` there).
    pub commitment_id: Option<String>,
    pub text: String,
    /// The ids of the requirements it answers.
    pub covers: Vec<String>,
    /// The earliest date the customer needs what it answers.
    pub need_by: Option<NaiveDate>,
    /// Whether it answers a must-have requirement.
    pub must_have: bool,
    pub owner_email: String,
    /// When it is due now (a slip moves it).
    pub deliver_by: Option<NaiveDate>,
    /// The date agreed when the call was marked done.
    pub agreed_deliver_by: Option<NaiveDate>,
    pub state: PromiseState,
    /// Why it slipped or was dropped.
    pub reason: Option<String>,
    pub reminders_sent: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it was delivered or dropped.
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<Promise> for PromiseView {
    fn from(p: Promise) -> Self {
        PromiseView {
            id: p.id,
            call_id: p.call_id,
            source: p.source,
            deal_id: p.deal_id,
            commitment_id: p.commitment_id,
            text: p.text,
            covers: serde_json::from_value(p.covers).unwrap_or_default(),
            need_by: p.need_by,
            must_have: p.must_have,
            owner_email: p.owner_email,
            deliver_by: p.deliver_by,
            agreed_deliver_by: p.agreed_deliver_by,
            state: p.state,
            reason: p.reason,
            reminders_sent: p.reminders_sent,
            created_at: p.created_at,
            updated_at: p.updated_at,
            closed_at: p.closed_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Which promises: `open` (the default: open and slipped, still to be delivered), `closed`
    /// (delivered and dropped), `all`, or a comma-separated list of states.
    pub state: Option<String>,
    /// Only this owner's promises (an email address, compared lower-case).
    pub owner: Option<String>,
    /// Promises per page: at least 1, default 100, at most 500 (more is read as 500).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
    /// Where the page starts: the `next_cursor` of the previous page, unchanged (leave it out
    /// for the first page). Pass the same `state` and `owner` with it.
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PromiseList {
    pub promises: Vec<PromiseView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a `state` filter: `open` when absent or empty, `closed`, `all`, or names.
fn parse_states(raw: Option<&str>) -> ApiResult<Vec<PromiseState>> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("open");
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "open" => out.extend(PromiseState::OPEN),
            "closed" => out.extend(PromiseState::ALL.into_iter().filter(|s| !s.is_open())),
            "all" => out.extend(PromiseState::ALL),
            _ => out.push(PromiseState::parse(part).ok_or_else(|| {
                ApiError::bad_parameter(
                    "state",
                    format!("unknown state '{}': use open, closed, all, slipped, delivered or dropped", crate::domain::printable(part)),
                )
            })?),
        }
    }
    Ok(out)
}

/// The cursor's JSON: the id of the page's last promise.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    after_promise: i64,
}

fn decode_cursor(raw: &str) -> ApiResult<i64> {
    let refuse = || {
        ApiError::bad_parameter(
            "cursor",
            "is not a cursor this API handed out: pass the `next_cursor` of the previous page unchanged, or leave it out for the first page",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw.as_bytes()).map_err(|_| refuse())?;
    serde_json::from_slice::<Cursor>(&bytes).map(|c| c.after_promise).map_err(|_| refuse())
}

fn encode_cursor(after_promise: i64) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Cursor { after_promise }).unwrap_or_default())
}

/// Promises a page at a time, in the order they were made. Only those still to be delivered
/// unless `state` asks for others.
#[utoipa::path(get, path = "/api/v1/promises", tag = "promises", params(ListQuery),
    responses((status = 200, body = PromiseList), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list_promises(_caller: ApiCaller, state: web::Data<AppState>, q: web::Query<ListQuery>) -> ApiResult<HttpResponse> {
    let states = parse_states(q.state.as_deref())?;
    let owner = q
        .owner
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| crate::domain::EmailAddress::parse(o).map_err(|e| ApiError::bad_parameter("owner", e.to_string())))
        .transpose()?;
    let limit = super::cursor::page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let (page, more) = promises::page(&state.db, &states, owner.as_ref(), after, limit).await?;
    let next_cursor = if more { page.last().map(|p| encode_cursor(p.id)) } else { None };
    Ok(HttpResponse::Ok().json(PromiseList { promises: page.into_iter().map(PromiseView::from).collect(), next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlipBody {
    /// The new date, `YYYY-MM-DD`: later than the promise's current one.
    pub deliver_by: Option<String>,
    /// Why it slips (what the customer is told).
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DropBody {
    /// Why it is dropped.
    pub reason: Option<String>,
}

/// A required reason: trimmed, at most [`promises::REASON_MAX_CHARS`] characters.
pub fn parse_reason(raw: Option<&str>) -> ApiResult<String> {
    let reason = raw.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "is required: say why, in a sentence the customer could hear"));
    }
    if reason.chars().count() > promises::REASON_MAX_CHARS {
        return Err(ApiError::invalid("reason", format!("is longer than {} characters", promises::REASON_MAX_CHARS)));
    }
    if reason.contains('\0') {
        return Err(ApiError::invalid("reason", crate::domain::NUL_REASON));
    }
    Ok(reason.to_string())
}

/// A required date, `YYYY-MM-DD`.
pub fn parse_date(field: &str, raw: Option<&str>) -> ApiResult<NaiveDate> {
    match raw.map(str::trim) {
        None | Some("") => Err(ApiError::invalid(field, "is required: the new date, YYYY-MM-DD")),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(field, format!("'{}' is not a date: write YYYY-MM-DD", crate::domain::printable(d)))),
    }
}

pub fn mark_error(e: MarkError) -> ApiError {
    match e {
        MarkError::NotFound(id) => ApiError::not_found(format!("no promise has id {id}")),
        MarkError::Closed { .. } => ApiError::conflict(e.to_string()),
        MarkError::NotLater { .. } => ApiError::invalid("deliver_by", e.to_string()),
        MarkError::Db(db) => db.into(),
    }
}

async fn apply(caller: ApiCaller, state: &AppState, id: i64, mark: Mark) -> ApiResult<HttpResponse> {
    let (promise, changed) =
        promises::mark(&state.db, &state.first_call.get(), state.clock.now(), id, mark, caller.actor).await.map_err(mark_error)?;
    if changed {
        state.metrics.promise_marked(promise.state.as_str());
    }
    // An alert to the manager (a slip past the customer's date, a must-have dropped) goes at once.
    state.signals.mailer.notify_one();
    Ok(HttpResponse::Ok().json(PromiseView::from(promise)))
}

/// Marks the promise delivered: no reminder about it is sent afterwards. Marking it delivered
/// again changes nothing and returns 200.
#[utoipa::path(post, path = "/api/v1/promises/{id}/delivered", tag = "promises", params(("id" = i64, Path)),
    responses((status = 200, body = PromiseView), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn mark_delivered(caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    apply(caller, &state, *id, Mark::Delivered).await
}

/// Moves the promise to a later date, with the reason: its reminders follow the new date.
#[utoipa::path(post, path = "/api/v1/promises/{id}/slip", tag = "promises", params(("id" = i64, Path)), request_body = SlipBody,
    responses((status = 200, body = PromiseView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn mark_slipped(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<SlipBody>,
) -> ApiResult<HttpResponse> {
    let to = parse_date("deliver_by", body.deliver_by.as_deref())?;
    let reason = parse_reason(body.reason.as_deref())?;
    apply(caller, &state, *id, Mark::Slip { to, reason }).await
}

/// Drops the promise, with the reason: no reminder about it is sent afterwards. Dropping it
/// again changes nothing and returns 200.
#[utoipa::path(post, path = "/api/v1/promises/{id}/drop", tag = "promises", params(("id" = i64, Path)), request_body = DropBody,
    responses((status = 200, body = PromiseView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn mark_dropped(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<DropBody>,
) -> ApiResult<HttpResponse> {
    let reason = parse_reason(body.reason.as_deref())?;
    apply(caller, &state, *id, Mark::Drop { reason }).await
}
