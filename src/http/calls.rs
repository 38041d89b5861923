//! The calls API: list and read calls, their recap, and mark a call done.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::json::StrictJson;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::domain::EmailAddress;
use crate::workflow::calls::{CompleteError, Completion};
use crate::workflow::queries::{self, CallRecord};
use crate::workflow::{CallOutcome, CallState};
use entity::{calls, emails};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/calls", web::get().to(list_calls))
        .route("/api/v1/calls/{id}", web::get().to(get_call))
        .route("/api/v1/calls/{id}/recap", web::get().to(get_recap))
        .route("/api/v1/calls/{id}/complete", web::post().to(complete_call))
        .route("/api/v1/calls/{id}/check-in", web::post().to(check_in));
}

/// A first call as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallView {
    pub id: i64,
    pub source: String,
    pub deal_id: String,
    pub order_id: i64,
    pub rep_email: String,
    /// Why the call went to the sales-ops inbox (`defaults.unassigned_email`) instead of the
    /// address the CRM or proposal named: firstcall emails only addresses in the rep directory
    /// or in `mail.allowed_recipient_domains`. Null when the call is with the named rep.
    pub fallback_reason: Option<String>,
    pub state: CallState,
    pub schedule: String,
    pub ordered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// Open and past its due time.
    pub overdue: bool,
    pub reminders_sent: i32,
    pub escalation_level: i32,
    pub outcome: Option<CallOutcome>,
    pub notes: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When the rep booked the call with the customer (the invite starts then), and with whom.
    pub booked_at: Option<DateTime<Utc>>,
    pub booked_with: Option<String>,
    /// No reminder goes before this time (the rep snoozed them, or booked the call).
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The due time the call had before the rep first moved it; null while it has not moved.
    pub first_due_at: Option<DateTime<Utc>>,
    /// Who covered for the rep (out of office) when the call was opened or handed over: its
    /// times are planned on their clock.
    pub covered_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CallView {
    pub fn from_model(c: calls::Model, now: DateTime<Utc>) -> Self {
        CallView {
            overdue: c.state.is_open() && c.due_at <= now,
            id: c.id,
            source: c.source,
            deal_id: c.deal_id,
            order_id: c.order_id,
            rep_email: c.rep_email,
            fallback_reason: c.fallback_reason,
            state: c.state,
            schedule: c.schedule_name,
            ordered_at: c.ordered_at,
            due_at: c.due_at,
            reminders_sent: c.reminders_sent,
            escalation_level: c.escalation_level,
            outcome: c.outcome,
            notes: c.notes,
            completed_at: c.completed_at,
            completed_by: c.completed_by,
            cancelled_at: c.cancelled_at,
            booked_at: c.booked_at,
            booked_with: c.booked_with,
            snoozed_until: c.snoozed_until,
            first_due_at: c.first_due_at,
            covered_by: c.covered_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Which calls: `open` (the default: scheduled, due and overdue), `closed` (done and
    /// cancelled), `all`, or a comma-separated list of states.
    pub state: Option<String>,
    /// Only this rep's calls (an email address, compared lower-case).
    pub rep: Option<String>,
    /// Calls per page: at least 1, default 100, at most 500 (more is read as 500).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
    /// Where the page starts: the `next_cursor` of the previous page, unchanged (leave it out
    /// for the first page). Pass the same `state` and `rep` with it.
    pub cursor: Option<String>,
    /// Not supported: pages are read with `cursor` (refused with 400 pointing to it).
    #[param(ignore)]
    pub offset: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallList {
    pub calls: Vec<CallView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a `state` filter: `open` when absent or empty, `closed`, `all`, or names.
pub fn parse_states(raw: Option<&str>) -> ApiResult<Vec<CallState>> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("open");
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "open" => out.extend(CallState::OPEN),
            "closed" => out.extend(CallState::ALL.into_iter().filter(|s| !s.is_open())),
            "all" => out.extend(CallState::ALL),
            _ => out.push(CallState::parse(part).ok_or_else(|| {
                ApiError::bad_parameter(
                    "state",
                    format!(
                        "unknown state '{}': use open, closed, all, scheduled, due, overdue, done or cancelled",
                        crate::domain::printable(part)
                    ),
                )
            })?),
        }
    }
    Ok(out)
}

/// Parses a `rep` filter: an email address, or no filter when absent or empty. Anything else is
/// refused naming the parameter (no call's rep could match it).
pub fn parse_rep(raw: Option<&str>) -> ApiResult<Option<EmailAddress>> {
    raw.map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| EmailAddress::parse(r).map_err(|e| ApiError::bad_parameter("rep", e.to_string())))
        .transpose()
}

/// Calls a page at a time: open ones by due time (the most overdue first), then closed ones,
/// the most recently closed first. Only open calls unless `state` asks for others. Each page
/// ends with `next_cursor`, where the next one starts: a call added or changed meanwhile does
/// not shift the pages (one whose due time moves takes its new place).
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", params(ListQuery),
    responses((status = 200, body = CallList), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list_calls(_caller: ApiCaller, state: web::Data<AppState>, q: web::Query<ListQuery>) -> ApiResult<HttpResponse> {
    if q.offset.is_some() {
        return Err(ApiError::bad_parameter("offset", "is not supported: pass the `next_cursor` of the previous page as `cursor`"));
    }
    let states = parse_states(q.state.as_deref())?;
    let rep = parse_rep(q.rep.as_deref())?;
    let limit = super::cursor::page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(|c| super::cursor::decode("cursor", c)).transpose()?;
    let page = queries::page_of_calls(&state.db, &states, rep.as_ref(), after, limit).await?;
    let now = state.clock.now();
    Ok(HttpResponse::Ok().json(CallList {
        calls: page.calls.into_iter().map(|c| CallView::from_model(c, now)).collect(),
        next_cursor: page.next.map(super::cursor::encode),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EmailView {
    pub id: i64,
    pub kind: entity::emails::EmailKind,
    /// The email's `Message-ID` header (without angle brackets): find it in mail logs, or as
    /// `<message_id>.eml` in `mail.outbox_dir` with the file transport.
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub state: entity::emails::EmailState,
    pub attempts: i32,
    pub unknown_outcomes: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When retention removed the email's text, HTML and invite (`retention.sent_email_bodies_days`
    /// after it was sent, once its call closed); null while they are kept.
    pub body_removed_at: Option<DateTime<Utc>>,
}

impl From<emails::Model> for EmailView {
    fn from(e: emails::Model) -> Self {
        EmailView {
            id: e.id,
            kind: e.kind,
            message_id: e.message_id,
            to: e.to_addr,
            subject: e.subject,
            state: e.state,
            attempts: e.attempts,
            unknown_outcomes: e.unknown_outcomes,
            last_error: e.last_error,
            created_at: e.created_at,
            sent_at: e.sent_at,
            body_removed_at: e.body_removed_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TimerView {
    pub id: i64,
    pub kind: entity::jobs::JobKind,
    pub run_at: DateTime<Utc>,
    pub state: entity::jobs::JobState,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallView,
    /// Every email about this call: recap, reminders, escalations, cancellations.
    pub emails: Vec<EmailView>,
    /// Timers still pending (next reminder, overdue, escalation).
    pub timers: Vec<TimerView>,
    /// The check-in after delivery, once every promise is delivered; null before.
    pub check_in: Option<CheckInView>,
}

impl CallDetail {
    pub fn new(r: CallRecord, now: DateTime<Utc>) -> Self {
        CallDetail {
            call: CallView::from_model(r.call, now),
            emails: r.emails.into_iter().map(EmailView::from).collect(),
            timers: r
                .timers
                .into_iter()
                .map(|j| TimerView {
                    id: j.id,
                    kind: j.kind,
                    run_at: j.run_at,
                    state: j.state,
                    attempts: j.attempts,
                    last_error: j.last_error,
                })
                .collect(),
            check_in: None,
        }
    }
}

/// One call with its emails, timers and check-in, or 404.
pub async fn load_detail(state: &AppState, id: i64) -> ApiResult<CallDetail> {
    let record = queries::call_record(&state.db, id).await?.ok_or_else(|| ApiError::not_found(format!("no call has id {id}")))?;
    let mut detail = CallDetail::new(record, state.clock.now());
    use sea_orm::{ColumnTrait, QueryFilter};
    let check_in = entity::check_ins::Entity::find().filter(entity::check_ins::Column::CallId.eq(id)).one(&state.db).await?;
    detail.check_in = check_in.map(CheckInView::from);
    Ok(detail)
}

/// One call with its email history and pending timers.
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls", params(("id" = i64, Path)),
    responses((status = 200, body = CallDetail), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_call(_caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(load_detail(&state, *id).await?))
}

/// The recap for the call, built from the newest proposal version and the order.
#[utoipa::path(get, path = "/api/v1/calls/{id}/recap", tag = "calls", params(("id" = i64, Path)),
    responses((status = 200, body = serde_json::Value, description = "The recap (requirements, order diff, timeline, gaps, agenda)"), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_recap(_caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    let call =
        calls::Entity::find_by_id(*id).one(&state.db).await?.ok_or_else(|| ApiError::not_found(format!("no call has id {}", *id)))?;
    let recap = crate::workflow::compose::recap_for_call(&state.db, &state.first_call.get(), &call).await?;
    Ok(HttpResponse::Ok().json(recap))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// aligned, adjusted or at_risk.
    pub outcome: Option<String>,
    pub notes: Option<String>,
    /// Dates agreed on the call for commitments of the proposal: commitment id → `YYYY-MM-DD`.
    /// A date that differs from the proposal's makes the outcome `adjusted` (or `at_risk`).
    #[serde(default)]
    pub dates: std::collections::BTreeMap<String, String>,
    /// Promises made on the call that the proposal does not hold.
    #[serde(default)]
    pub added: Vec<AddedPromise>,
}

/// A promise made on the call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddedPromise {
    pub text: Option<String>,
    /// `YYYY-MM-DD`; leave it out for a promise without a date.
    pub deliver_by: Option<String>,
    /// The email address of who delivers it, when not the rep.
    pub owner: Option<String>,
}

/// Reads what was agreed on the call (dates of commitments, promises added), naming the field
/// of anything wrong (`dates.C1`, `added[0].text`).
pub fn parse_agreed<'a>(
    dates: impl IntoIterator<Item = (&'a str, &'a str)>,
    added: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
) -> ApiResult<crate::workflow::promises::Agreed> {
    use crate::workflow::promises::{Added, Agreed};
    let mut agreed = Agreed::default();
    for (id, date) in dates {
        let field = format!("dates.{id}");
        agreed.dates.insert(id.to_string(), super::promises::parse_date(&field, Some(date))?);
    }
    for (i, (text, deliver_by, owner)) in added.into_iter().enumerate() {
        let f = |k: &str| format!("added[{i}].{k}");
        if i >= Agreed::MAX_ADDED {
            return Err(ApiError::invalid("added", format!("holds more than {} promises", Agreed::MAX_ADDED)));
        }
        let text = text.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(ApiError::invalid(f("text"), "is required: what was promised"));
        }
        if text.chars().count() > crate::proposals::model::TEXT_MAX || text.contains('\0') {
            return Err(ApiError::invalid(f("text"), format!("must be text of at most {} characters", crate::proposals::model::TEXT_MAX)));
        }
        let deliver_by = deliver_by
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| super::promises::parse_date(&f("deliver_by"), Some(d)))
            .transpose()?;
        let owner = owner
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| EmailAddress::parse(o).map_err(|e| ApiError::invalid(f("owner"), e.to_string())))
            .transpose()?;
        agreed.added.push(Added { text: text.to_string(), deliver_by, owner });
    }
    Ok(agreed)
}

/// Parses the rep's outcome and notes (shared with the call page form).
pub fn parse_completion(outcome: Option<&str>, notes: Option<&str>) -> ApiResult<(CallOutcome, Option<String>)> {
    let outcome = match outcome.map(str::trim) {
        None | Some("") => return Err(ApiError::invalid("outcome", "is required: aligned, adjusted or at_risk")),
        Some(o) => CallOutcome::parse(o).ok_or_else(|| {
            ApiError::invalid("outcome", format!("'{}' is not one of aligned, adjusted, at_risk", crate::domain::printable(o)))
        })?,
    };
    Ok((outcome, parse_note("notes", notes)?))
}

/// Free text a person typed (a call's notes, what the customer said at the check-in): trimmed,
/// none when empty, at most 10000 characters, no NUL; refused naming `field`.
pub fn parse_note(field: &str, raw: Option<&str>) -> ApiResult<Option<String>> {
    let note = raw.map(str::trim).filter(|n| !n.is_empty()).map(String::from);
    if note.as_ref().is_some_and(|n| n.chars().count() > 10_000) {
        return Err(ApiError::invalid(field, "is longer than 10000 characters"));
    }
    if note.as_ref().is_some_and(|n| n.contains('\0')) {
        return Err(ApiError::invalid(field, crate::domain::NUL_REASON));
    }
    Ok(note)
}

pub fn complete_error(e: CompleteError) -> ApiError {
    match e {
        CompleteError::NotFound(id) => ApiError::not_found(format!("no call has id {id}")),
        CompleteError::Cancelled(_) => ApiError::conflict(e.to_string()),
        CompleteError::Agreed(a) => ApiError::invalid(a.field, a.reason),
        CompleteError::Db(db) => db.into(),
    }
}

/// Marks the call done with an outcome. Marking it done again is harmless: the first outcome
/// stays and 200 is returned. No reminder or escalation is sent afterwards.
#[utoipa::path(post, path = "/api/v1/calls/{id}/complete", tag = "calls", params(("id" = i64, Path)), request_body = CompleteBody,
    responses((status = 200, body = CallView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn complete_call(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<CompleteBody>,
) -> ApiResult<HttpResponse> {
    let (outcome, notes) = parse_completion(body.outcome.as_deref(), body.notes.as_deref())?;
    let agreed = parse_agreed(
        body.dates.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body.added.iter().map(|a| (a.text.as_deref(), a.deliver_by.as_deref(), a.owner.as_deref())),
    )?;
    let (call, _changed) = crate::workflow::calls::complete(
        &state.db,
        &state.first_call.get(),
        state.clock.now(),
        *id,
        Completion { outcome, notes, agreed },
        caller.actor,
    )
    .await
    .map_err(complete_error)?;
    // An alert to the manager (a call at risk) goes at once.
    state.signals.mailer.notify_one();
    Ok(HttpResponse::Ok().json(CallView::from_model(call, state.clock.now())))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    /// satisfied, mixed or unhappy.
    pub answer: Option<String>,
    /// What the customer said.
    pub note: Option<String>,
}

/// The check-in after delivery, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckInView {
    pub call_id: i64,
    /// When the rep is (or was) asked to check in.
    pub due_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub answer: Option<entity::check_ins::CheckInAnswer>,
    pub note: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
}

impl From<entity::check_ins::Model> for CheckInView {
    fn from(c: entity::check_ins::Model) -> Self {
        CheckInView {
            call_id: c.call_id,
            due_at: c.due_at,
            sent_at: c.sent_at,
            answer: c.answer,
            note: c.note,
            answered_by: c.answered_by,
            answered_at: c.answered_at,
        }
    }
}

/// Reads a check-in's answer and note (shared with the call page form).
pub fn parse_check_in(answer: Option<&str>, note: Option<&str>) -> ApiResult<(entity::check_ins::CheckInAnswer, Option<String>)> {
    let answer = match answer.map(str::trim) {
        None | Some("") => return Err(ApiError::invalid("answer", "is required: satisfied, mixed or unhappy")),
        Some(a) => entity::check_ins::CheckInAnswer::parse(a).ok_or_else(|| {
            ApiError::invalid("answer", format!("'{}' is not one of satisfied, mixed, unhappy", crate::domain::printable(a)))
        })?,
    };
    Ok((answer, parse_note("note", note)?))
}

pub fn check_in_error(e: crate::workflow::promises::CheckInError) -> ApiError {
    use crate::workflow::promises::CheckInError;
    match e {
        CheckInError::NotFound(id) => ApiError::not_found(format!("no call has id {id}")),
        CheckInError::NotYet(_) => ApiError::conflict(e.to_string()),
        CheckInError::Db(db) => db.into(),
    }
}

/// Records how the customer says it went, once every promise of the call is delivered (409
/// before). The first answer stays: recording again returns it unchanged. With a CRM connector
/// it is written to the deal.
#[utoipa::path(post, path = "/api/v1/calls/{id}/check-in", tag = "calls", params(("id" = i64, Path)), request_body = CheckInBody,
    responses((status = 200, body = CheckInView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn check_in(
    caller: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: StrictJson<CheckInBody>,
) -> ApiResult<HttpResponse> {
    let answer = parse_check_in(body.answer.as_deref(), body.note.as_deref())?;
    let (row, changed) =
        crate::workflow::promises::record_check_in(&state.db, &state.first_call.get(), state.clock.now(), *id, answer, caller.actor)
            .await
            .map_err(check_in_error)?;
    if let (true, Some(a)) = (changed, row.answer) {
        state.metrics.check_in_answered(a.as_str());
    }
    Ok(HttpResponse::Ok().json(CheckInView::from(row)))
}
