//! Stored webhook events: `GET /api/v1/events/{id}` tells what applying one did. A webhook's
//! answer names each event's `stored_id`; the engine applies stored events right after the 2xx.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::auth::ApiCaller;
use super::{ApiError, ApiResult};
use crate::app::AppState;
use entity::{calls, webhook_events};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/events/{id}", web::get().to(get_event));
}

/// Where a stored event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Stored; the engine has not applied it yet.
    Pending,
    /// Applied to its order: `outcome` says what that did.
    Applied,
    /// Could not be applied: `error` says why (the event is kept; the log has the details).
    Failed,
}

/// A stored webhook event and what applying it did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// firstcall's id of the stored event (a webhook answer's `stored_id`).
    pub id: i64,
    pub source: String,
    /// The CRM's event id (the dedupe key).
    pub crm_event_id: String,
    /// The CRM's own name for the event.
    pub event_type: String,
    pub deal_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub state: EventState,
    /// Once applied: `opened` (a first call was scheduled), `cancelled`, `updated` (the open call
    /// was re-planned), `recorded` (kept; nothing to change) or `stale` (older than what the
    /// order already knew).
    pub outcome: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
    pub order_id: Option<i64>,
    /// The order's newest first call, once the event is applied.
    pub call_id: Option<i64>,
    pub error: Option<String>,
}

type Head = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    String,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<String>,
);

/// One stored webhook event: whether the engine applied it yet, and what that did.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "webhooks", params(("id" = i64, Path, description = "The event's `stored_id` from the webhook's answer")),
    responses((status = 200, body = EventView), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_event(_caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    use webhook_events::Column as C;
    let id = *id;
    // The raw payload is not read: it can be large, and the CRM has it.
    let head: Option<Head> = webhook_events::Entity::find_by_id(id)
        .select_only()
        .columns([
            C::Id,
            C::Source,
            C::DedupeKey,
            C::EventType,
            C::DealId,
            C::OccurredAt,
            C::ReceivedAt,
            C::Outcome,
            C::AppliedAt,
            C::OrderId,
            C::Error,
        ])
        .into_tuple()
        .one(&state.db)
        .await?;
    let (id, source, crm_event_id, event_type, deal_id, occurred_at, received_at, outcome, applied_at, order_id, error) =
        head.ok_or_else(|| ApiError::not_found(format!("no stored event has id {id}")))?;
    let state_of = match outcome.as_str() {
        crate::workflow::orders::PENDING => EventState::Pending,
        "failed" => EventState::Failed,
        _ => EventState::Applied,
    };
    let call_id = match order_id {
        Some(order) if state_of == EventState::Applied => {
            calls::Entity::find()
                .select_only()
                .column(calls::Column::Id)
                .filter(calls::Column::OrderId.eq(order))
                .order_by_desc(calls::Column::Id)
                .into_tuple()
                .one(&state.db)
                .await?
        }
        _ => None,
    };
    Ok(HttpResponse::Ok().json(EventView {
        id,
        source,
        crm_event_id,
        event_type,
        deal_id,
        occurred_at,
        received_at,
        state: state_of,
        outcome: (state_of == EventState::Applied).then_some(outcome),
        applied_at,
        order_id,
        call_id,
        error,
    }))
}
