//! The emulator's test controls, each needing `admin`:
//! - `PUT` and `DELETE /emulator/tables/{table}/faults`: give one emulator table its own
//!   injected faults (the syntax of `STREAMGUARD_EMULATOR_FAULTS`, see
//!   [`crate::warehouse::faults`]), or return it to the variable's. The setting lives in
//!   this process (like the variable), so with several replicas each is set on its own.
//! - `POST /emulator/tables/{table}/flush`: empty the table's streaming buffer now, so a
//!   test or a demo never waits for it to drain.

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::emulator::{emulator, table};
use super::extract::{Json as ApiJson, Path};
use super::{AppState, Error, Result};
use crate::domain::FieldError;
use crate::warehouse::faults::Faults;

/// The fault routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/emulator/tables/{table}/faults",
            put(set_faults).delete(clear_faults),
        )
        .route("/emulator/tables/{table}/flush", post(flush))
}

/// Answer of `POST /emulator/tables/{table}/flush`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"table": "nba-props-platform.nba_raw.bdl_player_boxscores", "flushed_rows": 26}))]
pub struct FlushResponse {
    /// The table.
    pub table: String,
    /// Rows that were still in the streaming buffer and left it (0 for an unknown table).
    pub flushed_rows: u64,
}

/// Flushes a table's streaming buffer now: replaces that its rows refused are accepted
/// from here on (their retries still wait for their scheduled time; an operator's retry
/// runs them at once).
#[utoipa::path(
    post,
    path = "/emulator/tables/{table}/flush",
    operation_id = "emulator_flush",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    responses(
        (status = 200, description = "The buffer is empty.", body = FlushResponse),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad table name.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The emulator's storage failed.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn flush(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<FlushResponse>> {
    let table = table(&raw)?;
    let flushed_rows = emulator(&state)?
        .flush(&table)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(Json(FlushResponse {
        table: table.to_string(),
        flushed_rows,
    }))
}

/// Body of `PUT /emulator/tables/{table}/faults`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"faults": "concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,latency=0.5s..2s,seed=42"}))]
#[serde(deny_unknown_fields)]
pub struct FaultsRequest {
    /// `name=value` pairs: `concurrent_dml`, `quota_exceeded`, `transient`, `lost_answer`
    /// (rates from 0 to 1, adding up to at most 1), `latency` (`2s` or `0.5s..2s`),
    /// `seed`; `none` for no faults.
    pub faults: String,
}

/// The faults in force for a table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"table": "nba-props-platform.nba_raw.bdl_player_boxscores", "faults": {"concurrent_dml": 0.1, "quota_exceeded": 0.05, "transient": 0.05, "lost_answer": 0.02, "latency": [0.5, 2.0], "seed": 42}}))]
pub struct FaultsResponse {
    /// The table.
    pub table: String,
    /// What each of its statements may meet.
    pub faults: Faults,
}

/// Gives a table its own injected faults in this process, with a fresh random generator
/// (so a `seed` repeats its draws from here on).
#[utoipa::path(
    put,
    path = "/emulator/tables/{table}/faults",
    operation_id = "emulator_set_faults",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    request_body(content = FaultsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "In force for the table's next statements.", body = FaultsResponse),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad table name or fault spec (`/faults` says what is wrong).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn set_faults(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(request): ApiJson<FaultsRequest>,
) -> Result<Json<FaultsResponse>> {
    let table = table(&raw)?;
    let faults: Faults = request
        .faults
        .parse()
        .map_err(|e: String| Error::Unprocessable {
            detail: format!("bad fault spec: {e}"),
            errors: vec![FieldError::new("/faults", e)],
        })?;
    let faults = emulator(&state)?.set_faults(&table, Some(faults));
    Ok(Json(FaultsResponse {
        table: table.to_string(),
        faults,
    }))
}

/// Returns a table to the faults of `STREAMGUARD_EMULATOR_FAULTS`.
#[utoipa::path(
    delete,
    path = "/emulator/tables/{table}/faults",
    operation_id = "emulator_clear_faults",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    responses(
        (status = 200, description = "The variable's faults are in force for the table again.", body = FaultsResponse),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad table name.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn clear_faults(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<FaultsResponse>> {
    let table = table(&raw)?;
    let faults = emulator(&state)?.set_faults(&table, None);
    Ok(Json(FaultsResponse {
        table: table.to_string(),
        faults,
    }))
}
