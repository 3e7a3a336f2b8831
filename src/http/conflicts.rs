//! The operators' conflict views: the seed's two dashboard queries, the searchable list of
//! every conflict (open and closed, cursor-paged), and one conflict with its attempts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Path, Query};
use super::{AppState, Error, Result};
use crate::domain::ConflictType;
use crate::store::conflict_list::{
    ConflictFilter, ConflictListing, Cursor, Resolution, RESOLUTION_METHODS,
};
use crate::store::conflicts::{AttemptRow, ConflictRow, SummaryRow, UnresolvedRow};

/// The conflict routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conflicts", get(list))
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

/// Query of `GET /v1/conflicts`: every filter optional, all of them must match.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Exact `processor_name`.
    #[param(example = "bdl_boxscores_processor")]
    pub processor: Option<String>,
    /// Exact table, `project.dataset.table`.
    #[param(example = "nba-props-platform.nba_raw.bdl_player_boxscores")]
    pub table: Option<String>,
    /// Text the key must contain, case-insensitively (matched against the key's JSON).
    #[param(example = "LAL")]
    pub key: Option<String>,
    /// `streaming_buffer`, `concurrent_dml` or `quota_exceeded`.
    #[param(example = "streaming_buffer")]
    pub r#type: Option<String>,
    /// `open` (still retrying), `closed` (ended any way), or one method: `auto_retry`,
    /// `manual`, `force_mode`, `timeout`, `superseded`.
    #[param(example = "open")]
    pub resolution: Option<String>,
    /// First seen at or after this instant (RFC 3339).
    #[param(example = "2026-01-24T00:00:00Z")]
    pub since: Option<DateTime<Utc>>,
    /// First seen before this instant (RFC 3339).
    #[param(example = "2026-01-26T00:00:00Z")]
    pub until: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page; omitted: the newest page.
    pub cursor: Option<String>,
    /// At most this many conflicts, 1 to 500 (default 50).
    #[serde(default = "default_list_limit")]
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: u32,
}
fn default_list_limit() -> u32 {
    50
}

/// `GET /v1/conflicts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConflictList {
    /// The page, newest first (then by id).
    pub conflicts: Vec<ConflictListing>,
    /// Pass as `cursor` for the next (older) page, with the same filters; `null` on the
    /// last page.
    pub next_cursor: Option<String>,
}

/// Every conflict, open and closed, newest first, filtered and paged by a cursor: what the
/// console's searchable list reads.
#[utoipa::path(
    get,
    path = "/v1/conflicts",
    operation_id = "list_conflicts",
    tag = "conflicts",
    params(ListParams),
    responses(
        (status = 200, description = "One page of conflicts and the cursor of the next.", body = ConflictList),
        (status = 400, description = "A filter is not one of its values, `since`/`until` is not RFC 3339, the cursor is not one this route gave, `limit` is out of range, or an unknown parameter was sent.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<ConflictList>> {
    if !(1..=500).contains(&p.limit) {
        return Err(Error::BadRequest(format!(
            "`limit` must be from 1 to 500; got {}",
            p.limit
        )));
    }
    if let Some(t) = p.r#type.as_deref() {
        let types = [
            ConflictType::StreamingBuffer,
            ConflictType::ConcurrentDml,
            ConflictType::QuotaExceeded,
        ];
        if !types.iter().any(|ct| ct.as_str() == t) {
            return Err(Error::BadRequest(format!(
                "`type` must be streaming_buffer, concurrent_dml or quota_exceeded; got {t:?}"
            )));
        }
    }
    let resolution = match p.resolution.as_deref() {
        None => None,
        Some("open") => Some(Resolution::Open),
        Some("closed") => Some(Resolution::Closed),
        Some(m) if RESOLUTION_METHODS.contains(&m) => Some(Resolution::Method(m.to_owned())),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "`resolution` must be open, closed, {}; got {other:?}",
                RESOLUTION_METHODS.join(", ")
            )))
        }
    };
    let after = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            Error::BadRequest(format!(
                "`cursor` {text:?} is not a cursor this route gave; pass `next_cursor` unchanged"
            ))
        })?),
    };
    for (name, value) in [
        ("processor", &p.processor),
        ("table", &p.table),
        ("key", &p.key),
    ] {
        if value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(Error::BadRequest(format!(
                "`{name}` must not contain NUL characters"
            )));
        }
    }
    let blank = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = ConflictFilter {
        processor: blank(p.processor),
        table: blank(p.table),
        key: blank(p.key),
        conflict_type: blank(p.r#type),
        resolution,
        since: p.since,
        until: p.until,
    };
    let (conflicts, next) = state.store.list_conflicts(&filter, after, p.limit).await?;
    Ok(Json(ConflictList {
        conflicts,
        next_cursor: next.map(|c| c.encode()),
    }))
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
