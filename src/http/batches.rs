//! `POST /v1/batches` (intake) and `GET /v1/batches/{batch_id}`.
//!
//! Intake ([`crate::ops::intake`]) validates the whole batch first (nothing of a bad batch
//! is accepted), stores it durably in one transaction, and answers `202 Accepted` with a `Location` — or, with
//! `?wait=<seconds>`, waits up to that long for every unit's first attempt and answers
//! `200 OK` with the per-unit results. Re-posting an idempotency key replays the original
//! batch (header `Idempotent-Replayed: true`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::{AppState, Error, Result};
use crate::domain::BatchRequest;
use crate::store::batches::BatchView;

/// How often a waiting request re-reads its batch.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// The batch routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/batches", post(create))
        .route("/v1/batches/{batch_id}", get(show))
}

/// Query string of `POST /v1/batches`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Seconds to wait for every unit's first attempt (0 to `STREAMGUARD_MAX_WAIT`,
    /// default 60); without it the answer is `202 Accepted` at once.
    #[serde(default)]
    #[param(minimum = 0, example = 5)]
    pub wait: Option<f64>,
}

/// Submit a batch.
///
/// Validates the whole batch (nothing of a bad batch is accepted) and checks every row
/// against the table's schema (`schema_check` in the answer says whether it could), stores
/// it with one job per write unit in one transaction, and answers `202 Accepted` with a
/// `Location`; with
/// `?wait=` it waits for every unit's first attempt and answers `200 OK`. Re-posting an
/// idempotency key with the same payload replays the original batch
/// (`Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/v1/batches",
    operation_id = "create_batch",
    tag = "batches",
    params(CreateParams),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; units are pending.", body = BatchView,
            headers(("Location" = String, description = "`/v1/batches/{batch_id}`"),
                    ("Idempotent-Replayed" = String, description = "`true` when an idempotency key replayed an earlier batch")),
            links(("GetBatch" = (operation_id = "get_batch", parameters(("batch_id" = "$response.body#/batch_id")), description = "Follow the batch's units.")))),
        (status = 200, description = "With `?wait=`: the units after their first attempt (or when the wait ran out).", body = BatchView,
            headers(("Location" = String, description = "`/v1/batches/{batch_id}`")),
            links(("GetBatch" = (operation_id = "get_batch", parameters(("batch_id" = "$response.body#/batch_id")), description = "Follow the batch's units.")))),
        (status = 400, description = "The body is not JSON (syntax, invalid UTF-8, a lone surrogate escape), or `wait` is out of range.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The table has units not landed yet keyed by other columns; keys of different shapes cannot supersede each other. Nothing was accepted.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The batch breaks a rule or a limit, or does not fit the table's schema (a value its column's type cannot hold, an unknown or missing REQUIRED column, NULL inside an array, a key or partition column BigQuery cannot compare, the partition column a table requiring a partition filter needs); `errors[]` names each offending field by JSON pointer (e.g. `/rows/3/game_id`) and, for a limit, its setting in `limit`. Nothing of the batch was accepted.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
#[tracing::instrument(skip_all, fields(processor = %request.processor_name, table = %request.table, batch_id))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Query(params): Query<CreateParams>,
    Json(request): Json<BatchRequest>,
) -> Result<Response> {
    let wait = wait_duration(params.wait, state.settings.max_wait)?;
    let submitted = state.ops.submit(&request).await?;
    let (intake, schema_check) = (submitted.intake, submitted.schema_check);
    tracing::Span::current().record("batch_id", tracing::field::display(intake.batch_id));
    tracing::info!(
        units = submitted.units,
        replayed = intake.replayed,
        superseded = intake.superseded,
        "batch accepted"
    );

    let mut view = match wait {
        Some(wait) => wait_for_first_attempts(&state, intake.batch_id, wait).await?,
        None => load(&state, intake.batch_id).await?,
    };
    view.schema_check = Some(schema_check);
    let status = if wait.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (status, axum::Json(view)).into_response();
    let location = HeaderValue::from_str(&format!("/v1/batches/{}", intake.batch_id))
        .expect("a UUID path is a valid header");
    response.headers_mut().insert(header::LOCATION, location);
    if intake.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One batch with its write units' current state.
#[utoipa::path(
    get,
    path = "/v1/batches/{batch_id}",
    operation_id = "get_batch",
    tag = "batches",
    params(("batch_id" = Uuid, Path, description = "The batch's id, from `Location`.")),
    responses(
        (status = 200, description = "The batch.", body = BatchView),
        (status = 404, description = "No such batch (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(batch_id): Path<Uuid>,
) -> Result<axum::Json<BatchView>> {
    load(&state, batch_id).await.map(axum::Json)
}

async fn load(state: &AppState, batch_id: Uuid) -> Result<BatchView> {
    state
        .store
        .batch(batch_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no batch {batch_id}")))
}

fn wait_duration(wait: Option<f64>, max: Duration) -> Result<Option<Duration>> {
    match wait {
        None => Ok(None),
        Some(w) if w.is_finite() && w >= 0.0 && w <= max.as_secs_f64() => Ok(Some(Duration::from_secs_f64(w))),
        Some(w) => Err(Error::BadRequest(format!(
            "query parameter `wait` must be a number of seconds from 0 to {} (STREAMGUARD_MAX_WAIT); got {w}",
            max.as_secs_f64()
        ))),
    }
}

/// Re-reads the batch until every unit had its first attempt or `wait` passed. Reads
/// Postgres, so it sees attempts made by any replica.
async fn wait_for_first_attempts(
    state: &AppState,
    batch_id: Uuid,
    wait: Duration,
) -> Result<BatchView> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = load(state, batch_id).await?;
        let shutting_down = state.shutdown.is_cancelled();
        if view.first_attempts_done() || shutting_down || tokio::time::Instant::now() >= deadline {
            // On shutdown, answer with what is known now: the batch is durable, and the
            // caller follows it with GET /v1/batches/{id}.
            return Ok(view);
        }
        tokio::select! {
            () = tokio::time::sleep(WAIT_POLL.min(deadline - tokio::time::Instant::now())) => {}
            () = state.shutdown.cancelled() => {}
        }
    }
}
