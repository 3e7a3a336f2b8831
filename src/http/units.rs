//! `GET /v1/units[?state=]`: units across batches, optionally of one state, for operators —
//! what failed and why, what gave up, what waits and until when, or simply what changed
//! last.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::Query;
use super::{AppState, Error, Result};
use crate::domain::UnitState;
use crate::store::units::UnitListing;

/// The units route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/units", get(list))
}

/// Query of `GET /v1/units`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `pending`, `loaded`, `deferred`, `failed`, `superseded`, `unresolved` or `cancelled`;
    /// omitted: units in any state.
    #[param(example = "failed")]
    pub state: Option<String>,
    /// At most this many units, 1 to 1,000 (default 100).
    #[serde(default = "default_limit")]
    #[param(example = 100)]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// Answer of `GET /v1/units`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnitsResponse {
    /// The state asked for; `null` when every state was listed.
    pub state: Option<String>,
    /// The units, most recently changed first.
    pub units: Vec<UnitListing>,
}

/// Units in one state (or in any state without `state`), most recently changed first.
#[utoipa::path(
    get,
    path = "/v1/units",
    operation_id = "list_units",
    tag = "batches",
    params(ListParams),
    responses(
        (status = 200, description = "Units in the state (any state without `state`), most recently changed first.", body = UnitsResponse),
        (status = 400, description = "`state` is not a unit state, or `limit` is out of range.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<UnitsResponse>> {
    let unit_state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(UnitState::parse(s).ok_or_else(|| {
            Error::BadRequest(format!(
                "`state` must be one of pending, loaded, deferred, failed, superseded, unresolved, cancelled; got {s:?}"
            ))
        })?),
    };
    if !(1..=1000).contains(&p.limit) {
        return Err(Error::BadRequest(format!(
            "`limit` must be from 1 to 1000; got {}",
            p.limit
        )));
    }
    let units = state.store.units_in_state(unit_state, p.limit).await?;
    Ok(Json(UnitsResponse {
        state: p.state,
        units,
    }))
}
