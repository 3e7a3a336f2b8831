//! `GET /v1/statements/{job_id}`: one warehouse statement (a BigQuery query job) with the
//! units it carried — what an operator follows from an attempt's `warehouse_job_id`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{AppState, Error, Result};
use crate::store::statements::StatementView;

/// The statements route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/statements/{job_id}", get(show))
}

/// One statement: its job id, table, state (`sent`, `running`, `done`, `failed`,
/// `unknown`), the replica that sent it, BigQuery's `dmlStats` and bytes billed where
/// reported, the refusal's class and message, and every unit it carried with the attempt.
#[utoipa::path(
    get,
    path = "/v1/statements/{job_id}",
    operation_id = "get_statement",
    tag = "batches",
    params(("job_id" = String, Path, description = "The statement's warehouse job id, as each attempt's `warehouse_job_id` gives it.", example = "streamguard-1b4e28ba-2fa1-11d2-883f-0016d3cca427")),
    responses(
        (status = 200, description = "The statement and its units.", body = StatementView),
        (status = 404, description = "No statement has this job id.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<StatementView>> {
    // Job ids are ASCII; Postgres cannot take a NUL in a text parameter.
    if job_id.contains('\0') {
        return Err(Error::NotFound(format!(
            "no statement with job id {job_id:?}"
        )));
    }
    state
        .store
        .statement(&job_id)
        .await?
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("no statement with job id {job_id:?}")))
}
