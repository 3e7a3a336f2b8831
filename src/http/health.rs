//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers, every
//! migration is applied, and the warehouse is reachable with its credentials; 503
//! otherwise, saying which setting to fix). `/readyz` also shows the scheduler's LISTEN
//! connection (`listen`), which never fails readiness: without it the scheduler polls.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, Error, Result};

/// Body of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthBody {
    /// Always `ok`.
    pub status: String,
}

/// Body of `GET /readyz` when ready.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "ok", "warehouse": "emulator",
    "listen": {"state": "connected", "since": "2026-01-25T12:00:00Z",
               "last_notification_at": "2026-01-25T12:03:10Z", "reconnects": 0}}))]
pub struct ReadyBody {
    /// `ready`.
    pub status: String,
    /// `ok`.
    pub database: String,
    /// `emulator` or `bigquery`.
    pub warehouse: String,
    /// The scheduler's LISTEN connection; informative, it never fails readiness.
    pub listen: crate::scheduler::listen::ListenReport,
}

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
    responses((status = 200, description = "Alive.", body = HealthBody)),
    security(())
)]
pub(crate) async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready.", body = ReadyBody),
        (status = 503, description = "The database is unreachable or migrations are missing; `detail` says which.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<ReadyBody>> {
    match state.store.readiness().await {
        Ok(None) => match state.warehouse.readiness().await {
            Ok(()) => Ok(Json(ReadyBody {
                status: "ready".into(),
                database: "ok".into(),
                warehouse: state.warehouse.kind().into(),
                listen: state.listen.report(),
            })),
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
