//! Operator actions and processor-reported conflicts:
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/conflicts` | a processor reports a conflict it hit (with `rows`: the service takes the write over) |
//! | `POST /v1/conflicts/{id}/attempts` | the processor tried again and hit it again |
//! | `POST /v1/conflicts/{id}/resolve` | ended: `manual` (note required) or, for a processor's own, `auto_retry` |
//! | `POST /v1/conflicts/{id}/retry` | attempt now, ignoring backoff (and the breaker with `ignore_breaker`) |
//! | `POST /v1/conflicts/{id}/force` | force mode, made safe: `reason` required, `dry_run` writes nothing, refused on a superseded unit, always the atomic replace |
//! | `POST /v1/units/{id}/cancel` | stop retrying a unit |
//!
//! Every action is recorded with the [`Actor`], the reason and the time, in the conflict
//! log (`details.operator_actions`). The rules live in [`crate::ops`] (reports in
//! [`crate::ops::report`], actions in [`crate::ops::actions`], force in
//! [`crate::ops::force`]); the handlers parse, call one
//! operation and answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Actor;
use super::extract::{Json as ApiJson, Path};
use super::{AppState, Result};
pub use crate::ops::force::{BufferView, DryRun, ForceAnswer, Forced};
pub use crate::ops::report::{
    AttemptBody, ReportAnswer, ReportBody, MAX_ATTEMPT, MAX_DELAY_SECONDS,
};
use crate::store::operator::ActionResult;

/// The operator and report routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conflicts", post(report))
        .route("/v1/conflicts/{conflict_id}/attempts", post(attempt))
        .route("/v1/conflicts/{conflict_id}/resolve", post(resolve))
        .route("/v1/conflicts/{conflict_id}/retry", post(retry))
        .route("/v1/conflicts/{conflict_id}/force", post(force))
        .route("/v1/units/{unit_id}/cancel", post(cancel))
}

/// Body of `/resolve`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `manual` (default; `note` required) or `auto_retry` (a processor's own retry landed).
    #[serde(default = "manual")]
    pub method: String,
    /// What the operator did.
    #[serde(default)]
    pub note: String,
}
fn manual() -> String {
    "manual".into()
}

/// Body of `/retry`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Attempt even while the scope's breaker is open (once).
    #[serde(default)]
    pub ignore_breaker: bool,
    /// Why (optional).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `/force`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceBody {
    /// Why (required).
    #[serde(default)]
    pub reason: String,
    /// Answer what would happen, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of `/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why (required).
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/conflicts",
    operation_id = "report_conflict",
    tag = "conflicts",
    request_body(content = ReportBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Logged with the conflict log's columns and counted for the breaker; with `rows`, the service took the write over.", body = ReportAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule (names, key, partition, counts, rows of another key); `errors[]` names each by JSON pointer. Nothing was logged.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReportBody>,
) -> Result<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(state.ops.report(&body).await?)))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/attempts",
    operation_id = "report_conflict_attempt",
    tag = "conflicts",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = AttemptBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged and counted for the breaker; `breaker_state` says whether to wait.", body = ReportAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The conflict is retried by the service, or has ended.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A count or delay is out of range.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn attempt(
    State(state): State<AppState>,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<AttemptBody>,
) -> Result<Json<ReportAnswer>> {
    Ok(Json(state.ops.report_attempt(conflict_id, &body).await?))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/resolve",
    operation_id = "resolve_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = ResolveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Resolved; a unit the service still retried is cancelled.", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already resolved, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`note` missing for `manual`, an unknown `method`, or `auto_retry` on the service's own conflict.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<ActionResult>> {
    Ok(Json(
        state
            .ops
            .resolve(conflict_id, &body.method, &body.note, &actor.name)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/retry",
    operation_id = "retry_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = RetryBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The unit is due now (a given-up unit gets one more attempt).", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved, kept by its processor, superseded, cancelled, landed, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body does not have the expected shape (an unknown field, a wrong type).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<RetryBody>,
) -> Result<Json<ActionResult>> {
    Ok(Json(
        state
            .ops
            .retry_now(
                conflict_id,
                body.ignore_breaker,
                &actor.name,
                body.reason.as_deref(),
            )
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/force",
    operation_id = "force_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = ForceBody, content_type = "application/json"),
    responses(
        (status = 200, description = "A dry run's answer (nothing written), or a real run's: the atomic replace landed (`force_mode`) or was refused (a conflict, recorded).", body = ForceAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Superseded by a newer batch, resolved, kept by its processor, cancelled, landed, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason` is missing or blank.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dry run: the warehouse could not count the key's rows.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn force(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<ForceBody>,
) -> Result<Json<ForceAnswer>> {
    Ok(Json(
        state
            .ops
            .force(conflict_id, &actor.name, &body.reason, body.dry_run)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/units/{unit_id}/cancel",
    operation_id = "cancel_unit",
    tag = "operator",
    params(("unit_id" = Uuid, Path, description = "The write unit's id.")),
    request_body(content = CancelBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled: never attempted again; its open conflict resolved `manual`.", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such unit (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The unit already landed or ended, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason` is missing or blank.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    Path(unit_id): Path<Uuid>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Json<ActionResult>> {
    Ok(Json(
        state.ops.cancel(unit_id, &actor.name, &body.reason).await?,
    ))
}
