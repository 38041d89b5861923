//! `/healthz` (the process is up) and `/readyz` (the database answers and the schema is current).

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::app::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok", reason: None })
}

/// Ready to serve: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        state.db.ping().await.map_err(|e| format!("database unreachable: {e}"))?;
        match crate::db::schema_is_current(&state.db).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("migrations pending: run `firstcall migrate`".to_string()),
            Err(e) => Err(format!("cannot read migrations: {e}")),
        }
    })
    .await
    .unwrap_or_else(|_| Err("database did not answer within 3 s".into()));
    match check {
        Ok(()) => HttpResponse::Ok().json(Health { status: "ready", reason: None }),
        Err(reason) => HttpResponse::ServiceUnavailable().json(Health { status: "unavailable", reason: Some(reason) }),
    }
}
