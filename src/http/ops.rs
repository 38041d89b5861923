//! The operator's surface: Prometheus metrics, and dead jobs and failed emails with a way to
//! retry them.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::calls::{EmailView, TimerView};
use super::{ApiError, ApiResult};
use crate::app::AppState;
use crate::db::stmt;
use entity::{emails, jobs};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/api/v1/jobs", web::get().to(list_jobs))
        .route("/api/v1/jobs/{id}/retry", web::post().to(retry_job))
        .route("/api/v1/emails", web::get().to(list_emails))
        .route("/api/v1/emails/{id}/retry", web::post().to(retry_email));
}

/// Refreshes the gauges that describe the database.
pub async fn refresh_gauges(state: &AppState) -> Result<(), sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct StateCount {
        state: String,
        n: i64,
    }
    let backend = state.db.get_database_backend();
    // Bounded as the dashboard's counts are: exact up to `queries::COUNTED` calls a state, then
    // PostgreSQL's estimate, so a scrape costs the same however many calls there are.
    let states = crate::workflow::CallState::ALL;
    let (counts, _) = crate::workflow::queries::count_calls(&state.db, &states, None, None).await?;
    for (s, n) in states.iter().zip(counts) {
        state.metrics.calls.get_or_create(&crate::metrics::StateLabel { state: s.as_str().into() }).set(n.n);
    }
    // Promises by state, each count bounded like the calls'.
    for s in entity::promises::PromiseState::ALL {
        let n = StateCount::find_by_statement(stmt(
            backend,
            "SELECT $1 AS state, COUNT(*) AS n FROM (SELECT 1 FROM promises WHERE state = $1 LIMIT $2) counted",
            vec![s.as_str().into(), crate::workflow::queries::COUNTED.into()],
        ))
        .one(&state.db)
        .await?
        .map_or(0, |r| r.n);
        state.metrics.promises.get_or_create(&crate::metrics::StateLabel { state: s.as_str().into() }).set(n);
    }
    // Each count reads its own partial index.
    let jobs_by = StateCount::find_by_statement(stmt(
        backend,
        "SELECT 'pending' AS state, COUNT(*) AS n FROM jobs WHERE state = 'pending' UNION ALL SELECT 'dead', COUNT(*) FROM jobs WHERE state = 'dead'",
        vec![],
    ))
    .all(&state.db)
    .await?;
    let count = |rows: &[StateCount], s: &str| rows.iter().find(|r| r.state == s).map(|r| r.n).unwrap_or(0);
    state.metrics.jobs_pending.set(count(&jobs_by, "pending"));
    state.metrics.jobs_dead.set(count(&jobs_by, "dead"));
    let emails_by = StateCount::find_by_statement(stmt(
        backend,
        "SELECT state, COUNT(*) AS n FROM emails WHERE state IN ('pending', 'failed') GROUP BY state",
        vec![],
    ))
    .all(&state.db)
    .await?;
    state.metrics.outbox_depth.set(count(&emails_by, "pending"));
    state.metrics.emails_failed.set(count(&emails_by, "failed"));
    #[derive(FromQueryResult)]
    struct Oldest {
        at: Option<DateTime<Utc>>,
    }
    let oldest = Oldest::find_by_statement(stmt(backend, "SELECT MIN(created_at) AS at FROM emails WHERE state = 'pending'", vec![]))
        .one(&state.db)
        .await?
        .and_then(|o| o.at);
    state.metrics.outbox_oldest_age_seconds.set(oldest.map(|t| (state.clock.now() - t).num_seconds().max(0)).unwrap_or(0));
    Ok(())
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = refresh_gauges(&state).await {
        tracing::warn!(error = %e, "metrics: cannot read the database; gauges are stale");
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.encode())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StateQuery {
    /// Jobs: pending or dead (default dead). Emails: pending, sent, skipped or failed (default failed).
    pub state: Option<String>,
    pub limit: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub call_id: Option<i64>,
    #[serde(flatten)]
    pub timer: TimerView,
}

/// Timers by state: `dead` ones failed too often and wait for an operator.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "operations", params(StateQuery),
    responses((status = 200, body = JobList), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list_jobs(_caller: ApiCaller, state: web::Data<AppState>, q: web::Query<StateQuery>) -> ApiResult<HttpResponse> {
    let s = q.state.as_deref().unwrap_or("dead");
    if !matches!(s, "pending" | "dead") {
        return Err(ApiError::malformed("state must be pending or dead"));
    }
    let rows = jobs::Entity::find()
        .filter(jobs::Column::State.eq(s))
        .order_by_asc(jobs::Column::RunAt)
        .limit(q.limit.unwrap_or(100).min(1000))
        .all(&state.db)
        .await?;
    let jobs = rows
        .into_iter()
        .map(|j| JobView {
            // Only the first-call workflow's jobs are about a call.
            call_id: j.subject_id.filter(|_| crate::workflow::FirstCall::JOB_KINDS.contains(&j.kind)),
            timer: TimerView { id: j.id, kind: j.kind, run_at: j.run_at, state: j.state, attempts: j.attempts, last_error: j.last_error },
        })
        .collect();
    Ok(HttpResponse::Ok().json(JobList { jobs }))
}

/// Makes a dead timer pending again, due now, with fresh attempts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "operations", params(("id" = i64, Path)),
    responses((status = 200, body = serde_json::Value), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn retry_job(_caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    match crate::engine::retry_dead(&state.db, *id, state.clock.now()).await? {
        crate::engine::Retry::Retried => {}
        crate::engine::Retry::NotDead => return Err(ApiError::not_found(format!("no dead job has id {}", *id))),
        crate::engine::Retry::KindPending => {
            return Err(ApiError::conflict(format!("job {} is not retried: a job of its kind for the same call is already pending", *id)));
        }
    }
    state.signals.jobs_scheduled();
    Ok(HttpResponse::Ok().json(serde_json::json!({"id": *id, "state": "pending"})))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EmailList {
    pub emails: Vec<EmailView>,
}

/// Emails by state: `failed` ones were rejected or gave up and wait for an operator.
#[utoipa::path(get, path = "/api/v1/emails", tag = "operations", params(StateQuery),
    responses((status = 200, body = EmailList), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn list_emails(_caller: ApiCaller, state: web::Data<AppState>, q: web::Query<StateQuery>) -> ApiResult<HttpResponse> {
    let s = q.state.as_deref().unwrap_or("failed");
    if !matches!(s, "pending" | "sent" | "skipped" | "failed") {
        return Err(ApiError::malformed("state must be pending, sent, skipped or failed"));
    }
    let rows = emails::Entity::find()
        .filter(emails::Column::State.eq(s))
        .order_by_desc(emails::Column::Id)
        .limit(q.limit.unwrap_or(100).min(1000))
        .all(&state.db)
        .await?;
    Ok(HttpResponse::Ok().json(EmailList { emails: rows.into_iter().map(EmailView::from).collect() }))
}

/// Queues a failed email again, due now.
#[utoipa::path(post, path = "/api/v1/emails/{id}/retry", tag = "operations", params(("id" = i64, Path)),
    responses((status = 200, body = serde_json::Value), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn retry_email(_caller: ApiCaller, state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    if !crate::mail::outbox::retry_failed(&state.db, *id, state.clock.now()).await? {
        return Err(ApiError::not_found(format!("no failed email has id {}", *id)));
    }
    state.signals.mailer.notify_one();
    Ok(HttpResponse::Ok().json(serde_json::json!({"id": *id, "state": "pending"})))
}
