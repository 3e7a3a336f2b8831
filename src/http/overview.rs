//! `GET /v1/overview`: the same snapshot `/metrics` exports, as JSON, for the console's
//! "Now" panel and anyone who wants the whole state in one request — units and breakers by
//! state (every state present), jobs due / scheduled / running, the oldest due job's age,
//! the next scheduled attempt, unresolved conflicts and unsent alerts — and `GET /v1/me`,
//! who the caller's token is and what it may do (the console shows its buttons by it).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::Scope;
use super::{Actor, AppState, Result};

/// The overview route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/overview", get(overview))
        .route("/v1/me", get(me))
}

/// `GET /v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "ops", "scopes": ["read", "admin"], "tokens_configured": true}))]
pub struct Me {
    /// The token's configured name, or `anonymous` when the service has no tokens.
    pub name: String,
    /// What it may do: `write`, `read`, `admin`.
    pub scopes: Vec<String>,
    /// Whether the service checks tokens at all (false: everyone may do everything).
    pub tokens_configured: bool,
}

/// The caller: its token's name and scopes.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "me",
    tag = "health",
    responses((status = 200, description = "The caller.", body = Me)),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn me(State(state): State<AppState>, actor: Actor) -> Json<Me> {
    Json(Me {
        scopes: Scope::ALL
            .into_iter()
            .filter(|s| actor.can(*s))
            .map(|s| s.as_str().to_owned())
            .collect(),
        name: actor.name,
        tokens_configured: !state.settings.access.tokens.is_empty(),
    })
}

/// Jobs by state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobCounts {
    /// Due now, waiting for a claim.
    pub due: i64,
    /// Waiting for a later time (a retry's backoff, a breaker's open period).
    pub scheduled: i64,
    /// Claimed and being attempted.
    pub running: i64,
    /// Running, but their lease expired (a dead replica's; the next claim takes them).
    pub lease_expired: i64,
}

/// `GET /v1/overview`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "units": {"pending": 0, "deferred": 3, "loaded": 86, "failed": 0, "unresolved": 0, "superseded": 0, "cancelled": 0},
    "jobs": {"due": 0, "scheduled": 3, "running": 0, "lease_expired": 0},
    "oldest_due_seconds": 0.0,
    "next_scheduled_at": "2026-01-25T09:34:04Z",
    "conflicts_unresolved": 3,
    "breakers": {"closed": 0, "open": 1, "half_open": 0, "forced_open": 0, "disabled": 0},
    "alerts_pending": 1,
    "as_of": "2026-01-25T09:30:00Z"
}))]
pub struct Overview {
    /// Write units per state; every state present.
    pub units: BTreeMap<String, i64>,
    /// Jobs per state.
    pub jobs: JobCounts,
    /// Seconds since the oldest due job became due (0 when none is due): how far behind
    /// the schedulers are.
    pub oldest_due_seconds: f64,
    /// When the soonest scheduled job runs; `null` when none is scheduled.
    pub next_scheduled_at: Option<DateTime<Utc>>,
    /// Conflicts not resolved (still retrying, or given up: `timeout`).
    pub conflicts_unresolved: i64,
    /// Breakers per state; every state present.
    pub breakers: BTreeMap<String, i64>,
    /// Alert deliveries not sent yet.
    pub alerts_pending: i64,
    /// When the service answered (its clock), so a page can show ages without trusting
    /// the browser's clock.
    pub as_of: DateTime<Utc>,
}

/// The service's state at a glance: what `/metrics` counts, as JSON.
#[utoipa::path(
    get,
    path = "/v1/overview",
    operation_id = "overview",
    tag = "health",
    responses(
        (status = 200, description = "Counts at one instant, from Postgres.", body = Overview),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn overview(State(state): State<AppState>) -> Result<Json<Overview>> {
    let s = state.store.snapshot().await?;
    let own = |v: Vec<(&str, i64)>| v.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    Ok(Json(Overview {
        units: own(s.units_by_state()),
        jobs: JobCounts {
            due: s.jobs_due,
            scheduled: s.jobs_scheduled,
            running: s.jobs_running,
            lease_expired: s.jobs_lease_expired,
        },
        oldest_due_seconds: s.oldest_due_seconds,
        next_scheduled_at: s.next_scheduled_at,
        conflicts_unresolved: s.conflicts_unresolved,
        breakers: own(s.breakers_by_state()),
        alerts_pending: s.alerts_pending,
        as_of: Utc::now(),
    }))
}
