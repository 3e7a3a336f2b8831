//! The circuit breakers: `GET /v1/breakers` (every scope), `GET /v1/breakers/{scope}` (one,
//! with its last transitions; what a processor writing on its own checks before writing),
//! and the operators' `POST /v1/breakers/{scope}/reset`, `/force-open`, `/disable`, each
//! with a required `reason`, recorded with the actor and the time.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::Actor;
use super::extract::{Json as ApiJson, Path};
use super::{AppState, Error, Result};
use crate::domain::breaker::{BreakerScope, BreakerState, OperatorAction, Window};
use crate::store::breakers::{BreakerView, TransitionRow};

/// The breaker routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/breakers", get(list))
        .route("/v1/breakers/{scope}", get(show))
        .route("/v1/breakers/{scope}/reset", post(reset))
        .route("/v1/breakers/{scope}/force-open", post(force_open))
        .route("/v1/breakers/{scope}/disable", post(disable))
}

/// `GET /v1/breakers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreakerList {
    /// What a scope is: `processor` (processor_name) or `table`.
    pub scope_by: BreakerScope,
    /// Every scope that has counted an outcome or been changed by an operator.
    pub breakers: Vec<BreakerView>,
}

/// `GET /v1/breakers/{scope}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreakerDetail {
    /// The breaker (closed with an empty window when the scope has none yet); its
    /// `allows_writes` is what a processor writing on its own checks before writing.
    #[serde(flatten)]
    pub breaker: BreakerView,
    /// Its last 20 transitions, newest first.
    pub transitions: Vec<TransitionRow>,
}

/// Body of the operator actions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why (required, not blank); kept with the transition.
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(
    get,
    path = "/v1/breakers",
    operation_id = "list_breakers",
    tag = "breakers",
    responses(
        (status = 200, description = "Every scope that has counted an outcome or been changed by an operator.", body = BreakerList),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<BreakerList>> {
    Ok(Json(BreakerList {
        scope_by: state.store.config().breaker_scope,
        breakers: state.store.breakers().await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/breakers/{scope}",
    operation_id = "get_breaker",
    tag = "breakers",
    params(("scope" = String, Path, description = "A processor name (or a table with STREAMGUARD_BREAKER_SCOPE=table).")),
    responses(
        (status = 200, description = "The breaker with its last transitions; closed if the scope has none yet. A processor writing on its own checks `allows_writes` first.", body = BreakerDetail),
        (status = 404, description = "Not a scope (blank, over 1,024 bytes, or holding a NUL).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Result<Json<BreakerDetail>> {
    check_scope(&scope)?;
    let (breaker, transitions) = match state.store.breaker(&scope).await? {
        Some(found) => found,
        None => (closed(scope), Vec::new()),
    };
    Ok(Json(BreakerDetail {
        breaker,
        transitions,
    }))
}

fn closed(scope: String) -> BreakerView {
    BreakerView {
        scope,
        state: BreakerState::Closed,
        window: Window::default(),
        conflict_rate: 0.0,
        opened_at: None,
        reopens_at: None,
        reopens: 0,
        trips: 0,
        probe: None,
        allows_writes: true,
        last_reason: None,
        last_actor: None,
        last_transition_at: None,
    }
}

async fn operate(
    state: &AppState,
    scope: &str,
    action: OperatorAction,
    actor: &Actor,
    body: &ActionBody,
) -> Result<Json<BreakerView>> {
    let reason = required_reason(&body.reason, "/reason")?;
    check_scope(scope)?;
    Ok(Json(
        state
            .store
            .operate_breaker(scope, action, reason, &actor.name)
            .await?,
    ))
}

/// The errors every breaker action can answer, documented once for the three routes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only read by the OpenAPI derive
enum ActionErrors {
    #[response(
        status = 400,
        description = "The body is not JSON.",
        content_type = "application/problem+json"
    )]
    BadRequest(crate::http::Problem),
    #[response(
        status = 404,
        description = "Not a scope (blank, over 1,024 bytes, or holding a NUL).",
        content_type = "application/problem+json"
    )]
    NotFound(crate::http::Problem),
    #[response(
        status = 409,
        description = "Other replicas kept changing the breaker; try again.",
        content_type = "application/problem+json"
    )]
    Conflict(crate::http::Problem),
    #[response(
        status = 422,
        description = "`reason` is missing, blank or over 2,000 characters.",
        content_type = "application/problem+json"
    )]
    Unprocessable(crate::http::Problem),
}

#[utoipa::path(
    post,
    path = "/v1/breakers/{scope}/reset",
    operation_id = "reset_breaker",
    tag = "breakers",
    params(("scope" = String, Path, description = "A processor name (or a table with STREAMGUARD_BREAKER_SCOPE=table).")),
    request_body(content = ActionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Closed, counting restarted. The breaker afterwards; the transition is recorded with the actor and the reason.", body = BreakerView),
        ActionErrors,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn reset(
    State(state): State<AppState>,
    actor: Actor,
    Path(scope): Path<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<BreakerView>> {
    operate(&state, &scope, OperatorAction::Reset, &actor, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/breakers/{scope}/force-open",
    operation_id = "force_open_breaker",
    tag = "breakers",
    params(("scope" = String, Path, description = "A processor name (or a table with STREAMGUARD_BREAKER_SCOPE=table).")),
    request_body(content = ActionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Forced open until a reset: nothing of the scope is attempted. The breaker afterwards; the transition is recorded with the actor and the reason.", body = BreakerView),
        ActionErrors,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn force_open(
    State(state): State<AppState>,
    actor: Actor,
    Path(scope): Path<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<BreakerView>> {
    operate(&state, &scope, OperatorAction::ForceOpen, &actor, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/breakers/{scope}/disable",
    operation_id = "disable_breaker",
    tag = "breakers",
    params(("scope" = String, Path, description = "A processor name (or a table with STREAMGUARD_BREAKER_SCOPE=table).")),
    request_body(content = ActionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Disabled until a reset: everything goes through, nothing trips it. The breaker afterwards; the transition is recorded with the actor and the reason.", body = BreakerView),
        ActionErrors,
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    actor: Actor,
    Path(scope): Path<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<BreakerView>> {
    operate(&state, &scope, OperatorAction::Disable, &actor, &body).await
}

/// A scope is a processor name or a table: not blank, at most 1,024 bytes, no NUL (which
/// Postgres text cannot hold). Anything else names no breaker.
fn check_scope(scope: &str) -> Result<()> {
    if scope.trim().is_empty() || scope.len() > 1024 || scope.contains('\0') {
        return Err(Error::NotFound(
            "no such breaker scope: a processor name or a table".into(),
        ));
    }
    Ok(())
}

/// An operator's reason: see [`crate::ops::required_reason`].
pub(super) fn required_reason<'a>(value: &'a str, pointer: &str) -> Result<&'a str> {
    Ok(crate::ops::required_reason(value, pointer)?)
}
