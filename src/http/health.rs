//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and every
//! migration is applied; 503 otherwise).

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

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>> {
    match state.store.readiness().await {
        Ok(None) => Ok(Json(
            json!({"status": "ready", "database": "ok", "warehouse": state.warehouse.kind()}),
        )),
        Ok(Some(missing)) => Err(Error::Unavailable(format!(
            "{missing}; run `streamguard migrate`"
        ))),
        Err(e) => Err(Error::Unavailable(format!("database unreachable: {e}"))),
    }
}
