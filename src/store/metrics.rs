//! What `/metrics` and `GET /v1/overview` report: a snapshot of the job table, the units, the conflict log, the
//! breakers and the alert outbox, counted in one statement at scrape time. Derived from
//! Postgres, so every replica reports the same shared state.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Error, Store};
use crate::domain::breaker::BreakerState;
use crate::domain::UnitState;

/// Every unit state, in lifecycle order: the labels `/metrics` always exports.
pub const UNIT_STATES: [UnitState; 7] = [
    UnitState::Pending,
    UnitState::Deferred,
    UnitState::Loaded,
    UnitState::Failed,
    UnitState::Unresolved,
    UnitState::Superseded,
    UnitState::Cancelled,
];

/// Every breaker state: the labels `/metrics` always exports.
pub const BREAKER_STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

/// Counts at one instant.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Snapshot {
    /// Write units by state: `{"loaded": 89, "deferred": 3, …}`.
    pub units: Value,
    /// Jobs due now and not claimed.
    pub jobs_due: i64,
    /// Jobs waiting for a later `run_at` (deferred retries, held by a breaker).
    pub jobs_scheduled: i64,
    /// Jobs claimed and running.
    pub jobs_running: i64,
    /// Running jobs whose lease expired (a dead replica's; the next claim takes them).
    pub jobs_lease_expired: i64,
    /// Seconds since the oldest due job became due (0 when none is due): how far behind
    /// the schedulers are.
    pub oldest_due_seconds: f64,
    /// Conflicts not resolved (retrying, or given up: `timeout`).
    pub conflicts_unresolved: i64,
    /// Breakers by state: `{"closed": 2, "open": 1}`.
    pub breakers: Value,
    /// Alert deliveries not sent yet.
    pub alerts_pending: i64,
    /// When the soonest scheduled (not yet due) job runs; `None` when none is scheduled.
    pub next_scheduled_at: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// Units per state, every state present (0 when none): `[("pending", 0), …]`.
    pub fn units_by_state(&self) -> Vec<(&'static str, i64)> {
        UNIT_STATES
            .iter()
            .map(|s| (s.as_str(), count(&self.units, s.as_str())))
            .collect()
    }

    /// Breakers per state, every state present (0 when none).
    pub fn breakers_by_state(&self) -> Vec<(&'static str, i64)> {
        BREAKER_STATES
            .iter()
            .map(|s| (s.as_str(), count(&self.breakers, s.as_str())))
            .collect()
    }
}

fn count(by_state: &Value, state: &str) -> i64 {
    by_state.get(state).and_then(Value::as_i64).unwrap_or(0)
}

impl Store {
    /// Counts the service's state for `/metrics`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        Ok(sqlx::query_as(
            "select
               (select coalesce(jsonb_object_agg(state, n), '{}') from
                  (select state, count(*) as n from write_units group by state) s) as units,
               (select count(*) from jobs where state = 'available' and run_at <= streamguard_now()) as jobs_due,
               (select count(*) from jobs where state = 'available' and run_at > streamguard_now()) as jobs_scheduled,
               (select count(*) from jobs where state = 'running') as jobs_running,
               (select count(*) from jobs where state = 'running' and lease_expires_at <= streamguard_now()) as jobs_lease_expired,
               (select coalesce(extract(epoch from streamguard_now() - min(run_at)), 0)::float8 from jobs
                 where state = 'available' and run_at <= streamguard_now()) as oldest_due_seconds,
               (select count(*) from conflicts where not resolved) as conflicts_unresolved,
               (select coalesce(jsonb_object_agg(state, n), '{}') from
                  (select state, count(*) as n from breakers group by state) b) as breakers,
               (select count(*) from alert_deliveries where state <> 'sent') as alerts_pending,
               (select min(run_at) from jobs where state = 'available' and run_at > streamguard_now()) as next_scheduled_at",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
