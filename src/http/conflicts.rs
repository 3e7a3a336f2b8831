//! The operators' conflict views: the seed's two dashboard queries and one conflict with
//! its attempts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Path, Query};
use super::{AppState, Error, Result};
use crate::store::conflicts::{AttemptRow, ConflictRow, SummaryRow, UnresolvedRow};

/// The conflict routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conflicts/unresolved", get(unresolved))
        .route("/v1/conflicts/summary", get(summary))
        .route("/v1/conflicts/{conflict_id}", get(show))
}

/// `?hours=` of the unresolved list: 1 to 8,760 (a year), default 24 (the seed's).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoursParams {
    /// Look-back window, hours (1 to 8,760; default 24).
    #[serde(default = "default_hours")]
    #[param(minimum = 1, maximum = 8760, example = 24)]
    pub hours: u32,
}
fn default_hours() -> u32 {
    24
}

/// `?days=` of the summary: 1 to 366, default 7 (the seed's).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DaysParams {
    /// Look-back window, days (1 to 366; default 7).
    #[serde(default = "default_days")]
    #[param(minimum = 1, maximum = 366, example = 7)]
    pub days: u32,
}
fn default_days() -> u32 {
    7
}

/// `GET /v1/conflicts/unresolved`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "hours": 24,
    "conflicts": [{
        "conflict_id": "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a",
        "timestamp": "2026-01-25T09:14:04Z",
        "processor_name": "bdl_boxscores_processor",
        "game_id": "20260124_LAL_BOS",
        "game_date": "2026-01-24",
        "retry_attempt": 2,
        "error_message": "UPDATE or DELETE statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported",
        "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
        "key": {"game_id": "20260124_LAL_BOS"},
        "conflict_type": "streaming_buffer",
        "max_retries": 8,
        "resolution_method": null,
        "unit_state": "deferred",
        "next_attempt_at": "2026-01-25T09:34:04Z"
    }]
}))]
pub struct UnresolvedResponse {
    /// The window, hours.
    pub hours: u32,
    /// Unresolved conflicts first seen in the window, newest first.
    pub conflicts: Vec<UnresolvedRow>,
}

/// `GET /v1/conflicts/summary`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "days": 7,
    "summary": [{
        "date": "2026-01-25",
        "processor_name": "bdl_boxscores_processor",
        "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
        "total_conflicts": 56,
        "resolved": 56,
        "unresolved": 0,
        "avg_retries": 1.4,
        "sample_games": ["20260117_ATL_BOS", "20260124_LAL_BOS"],
        "sample_keys": [{"game_id": "20260117_ATL_BOS"}, {"game_id": "20260124_LAL_BOS"}]
    }]
}))]
pub struct SummaryResponse {
    /// The window, days.
    pub days: u32,
    /// One row per day, processor and table; newest day first.
    pub summary: Vec<SummaryRow>,
}

/// `GET /v1/conflicts/{conflict_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConflictDetail {
    /// The conflict's columns.
    #[serde(flatten)]
    pub conflict: ConflictRow,
    /// Every attempt on its unit, oldest first.
    pub attempts: Vec<AttemptRow>,
}

/// Unresolved conflicts first seen in the last `hours` (the seed's "requiring attention"
/// query), newest first, with what the service will do next.
#[utoipa::path(
    get,
    path = "/v1/conflicts/unresolved",
    operation_id = "unresolved_conflicts",
    tag = "conflicts",
    params(HoursParams),
    responses(
        (status = 200, description = "The unresolved conflicts.", body = UnresolvedResponse),
        (status = 400, description = "`hours` is not a whole number from 1 to 8760, or an unknown parameter was sent.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn unresolved(
    State(state): State<AppState>,
    Query(p): Query<HoursParams>,
) -> Result<Json<UnresolvedResponse>> {
    if !(1..=8760).contains(&p.hours) {
        return Err(Error::BadRequest(format!(
            "`hours` must be from 1 to 8760; got {}",
            p.hours
        )));
    }
    let conflicts = state.store.unresolved_conflicts(p.hours).await?;
    Ok(Json(UnresolvedResponse {
        hours: p.hours,
        conflicts,
    }))
}

/// The seed's daily conflict summary over the last `days`: one row per day, processor
/// and table.
#[utoipa::path(
    get,
    path = "/v1/conflicts/summary",
    operation_id = "conflict_summary",
    tag = "conflicts",
    params(DaysParams),
    responses(
        (status = 200, description = "The summary.", body = SummaryResponse),
        (status = 400, description = "`days` is not a whole number from 1 to 366, or an unknown parameter was sent.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn summary(
    State(state): State<AppState>,
    Query(p): Query<DaysParams>,
) -> Result<Json<SummaryResponse>> {
    if !(1..=366).contains(&p.days) {
        return Err(Error::BadRequest(format!(
            "`days` must be from 1 to 366; got {}",
            p.days
        )));
    }
    let summary = state.store.conflict_summary(p.days).await?;
    Ok(Json(SummaryResponse {
        days: p.days,
        summary,
    }))
}

/// One conflict, every column of the seed's conflict log, and every attempt on its unit.
#[utoipa::path(
    get,
    path = "/v1/conflicts/{conflict_id}",
    operation_id = "get_conflict",
    tag = "conflicts",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    responses(
        (status = 200, description = "The conflict.", body = ConflictDetail),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(conflict_id): Path<Uuid>,
) -> Result<Json<ConflictDetail>> {
    let (conflict, attempts) = state
        .store
        .conflict(conflict_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))?;
    Ok(Json(ConflictDetail { conflict, attempts }))
}
