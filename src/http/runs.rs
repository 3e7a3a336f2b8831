//! `GET /v1/runs/{run}` and `GET /v1/runs`: backfill runs' progress and final reports —
//! batches, units by state, loaded on the first attempt, deferred, resolved by retry,
//! unresolved, failed, statements and attempts spent, and when the run should be done.
//! A run exists once a batch names it (`run` in `POST /v1/batches`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::{Path, Query};
use super::{AppState, Error, Result};
use crate::store::runs::RunReport;

/// Default and largest `limit` of `GET /v1/runs`.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// The run routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", get(list))
        .route("/v1/runs/{run}", get(show))
}

/// One run's progress and report.
#[utoipa::path(
    get,
    path = "/v1/runs/{run}",
    operation_id = "get_run",
    tag = "batches",
    params(("run" = String, Path, description = "The run's name as batches give it, percent-encoded (`bdl_boxscores%20backfill%202026-01-24`).")),
    responses(
        (status = 200, description = "The run's progress; its final report once `done`.", body = RunReport),
        (status = 404, description = "No batch names this run.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Json<RunReport>> {
    // No run name holds a NUL (intake refuses control characters), and Postgres cannot
    // take one in a text parameter.
    if run.contains('\0') {
        return Err(Error::NotFound(format!("no batch names run {run:?}")));
    }
    state
        .store
        .run_report(&run)
        .await?
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("no batch names run {run:?}")))
}

/// Query of `GET /v1/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many runs, 1 to 100 (default 20).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: u32,
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

/// Answer of `GET /v1/runs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsResponse {
    /// The runs, most recent `last_change_at` first.
    pub runs: Vec<RunReport>,
}

/// Recent runs, most recently changed first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    operation_id = "list_runs",
    tag = "batches",
    params(ListParams),
    responses(
        (status = 200, description = "The runs, most recent `last_change_at` first.", body = RunsResponse),
        (status = 400, description = "`limit` is out of range.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<RunsResponse>> {
    if !(1..=MAX_LIMIT).contains(&p.limit) {
        return Err(Error::BadRequest(format!(
            "`limit` must be from 1 to {MAX_LIMIT}; got {}",
            p.limit
        )));
    }
    let runs = state.store.recent_runs(p.limit).await?;
    Ok(Json(RunsResponse { runs }))
}
