//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers, every
//! migration is applied, and the warehouse is reachable with its credentials; 503
//! otherwise, saying which setting to fix). `/readyz` also shows the scheduler's LISTEN
//! connection (`listen`), which never fails readiness: without it the scheduler polls.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{AppState, Error, Result};

/// The health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Alive.", body = crate::http::openapi::HealthBody)),
    security(())
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready.", body = crate::http::openapi::ReadyBody),
        (status = 503, description = "The database is unreachable or migrations are missing; `detail` says which.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>> {
    match state.store.readiness().await {
        Ok(None) => match state.warehouse.readiness().await {
            Ok(()) => Ok(Json(
                json!({"status": "ready", "database": "ok", "warehouse": state.warehouse.kind(),
                       "listen": state.listen.report()}),
            )),
            Err(problem) => Err(Error::Unavailable(format!(
                "warehouse {} not usable: {problem}",
                state.warehouse.kind()
            ))),
        },
        Ok(Some(missing)) => Err(Error::Unavailable(format!(
            "{missing}; run `streamguard migrate`"
        ))),
        Err(e) => Err(Error::Unavailable(format!("database unreachable: {e}"))),
    }
}
