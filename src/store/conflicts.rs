//! The conflict log's read side: the seed's two dashboard queries (daily summary over N
//! days, unresolved in the last N hours; `docs/architecture.md`, "Words") and one
//! conflict with its attempts.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store};

/// One row of the daily summary: the seed's columns plus `table` and `sample_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SummaryRow {
    /// The UTC day the conflicts were first seen.
    pub date: NaiveDate,
    /// Who sent the units.
    pub processor_name: String,
    /// Target table.
    pub table: String,
    /// Conflicts first seen that day.
    pub total_conflicts: i64,
    /// Of which resolved (auto_retry, manual, force_mode, superseded).
    pub resolved: i64,
    /// Of which not resolved (still retrying, or given up: `timeout`).
    pub unresolved: i64,
    /// Mean of `retry_attempt`.
    pub avg_retries: f64,
    /// Up to 10 distinct `game_id`s.
    pub sample_games: Vec<String>,
    /// Up to 10 distinct keys (JSON objects), for tables keyed otherwise.
    pub sample_keys: Vec<Value>,
}

/// One unresolved conflict: the seed's columns plus the table, the key, and what the
/// service will do next.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UnresolvedRow {
    /// The conflict.
    pub conflict_id: Uuid,
    /// When it was first seen.
    pub timestamp: DateTime<Utc>,
    /// Who sent the unit.
    pub processor_name: String,
    /// `game_id` of the key, when it has one.
    pub game_id: Option<String>,
    /// `game_date` of the key or partition, when it has one.
    pub game_date: Option<NaiveDate>,
    /// Attempts so far.
    pub retry_attempt: i32,
    /// The warehouse's last message.
    pub error_message: Option<String>,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// `streaming_buffer`, `concurrent_dml` or `quota_exceeded`.
    pub conflict_type: String,
    /// Attempts allowed.
    pub max_retries: i32,
    /// `timeout` when the service gave up, `null` while it is still retrying.
    pub resolution_method: Option<String>,
    /// The unit's state (`deferred` while retrying, `unresolved` after giving up).
    pub unit_state: Option<String>,
    /// When the service attempts it next; `null` when it will not.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One conflict, every seed column.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConflictRow {
    /// The conflict.
    pub conflict_id: Uuid,
    /// When it was first seen.
    pub timestamp: DateTime<Utc>,
    /// Who sent the unit.
    pub processor_name: String,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// The partition value, if any.
    pub partition: Option<Value>,
    /// `game_id` of the key, when it has one.
    pub game_id: Option<String>,
    /// `game_date` of the key or partition, when it has one.
    pub game_date: Option<NaiveDate>,
    /// The write unit.
    pub unit_id: Option<Uuid>,
    /// `streaming_buffer`, `concurrent_dml` or `quota_exceeded`.
    pub conflict_type: String,
    /// Attempts so far.
    pub retry_attempt: i32,
    /// Attempts allowed.
    pub max_retries: i32,
    /// The last delay chosen, seconds.
    pub delay_seconds: Option<i32>,
    /// Whether it is resolved.
    pub resolved: bool,
    /// When it was resolved (or given up).
    pub resolution_time: Option<DateTime<Utc>>,
    /// How it ended.
    pub resolution_method: Option<String>,
    /// Rows of the unit.
    pub rows_affected: Option<i32>,
    /// The warehouse's last message.
    pub error_message: Option<String>,
    /// Free-form details.
    pub details: Option<Value>,
    /// The unit's state now (`deferred`, `loaded`, `unresolved`, …); `null` without a
    /// unit (a processor's own write).
    pub unit_state: Option<String>,
    /// When the service attempts the unit next; `null` when it will not.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One attempt on a conflict's unit.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptRow {
    /// Attempt number (1-based).
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// `loaded`, `conflict`, `transient`, `failed`, `superseded` or `lost`.
    pub outcome: String,
    /// The error class, when it failed.
    pub error_class: Option<String>,
    /// The warehouse's message.
    pub error_message: Option<String>,
    /// The delay chosen before the next attempt, seconds.
    pub delay_seconds: Option<i32>,
    /// When the next attempt was scheduled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Which replica ran it.
    pub replica: String,
    /// The job id of the statement that decided it (`GET /v1/statements/{job_id}`);
    /// `null` when none was sent.
    pub statement_job_id: Option<String>,
}

impl Store {
    /// The seed's daily summary over the last `days` days, newest day first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn conflict_summary(&self, days: u32) -> Result<Vec<SummaryRow>, Error> {
        Ok(sqlx::query_as(
            "select (\"timestamp\" at time zone 'UTC')::date as date, processor_name, table_ref as \"table\",
                    count(*) as total_conflicts,
                    count(*) filter (where resolved) as resolved,
                    count(*) filter (where not resolved) as unresolved,
                    coalesce(avg(retry_attempt), 0)::float8 as avg_retries,
                    coalesce((array_agg(distinct game_id) filter (where game_id is not null))[1:10], '{}') as sample_games,
                    coalesce((array_agg(distinct key))[1:10], '{}') as sample_keys
             from conflicts
             where \"timestamp\" >= streamguard_now() - make_interval(days => $1)
             group by 1, 2, 3
             order by date desc, total_conflicts desc, processor_name, \"table\"",
        )
        .bind(days as i32)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The seed's "unresolved conflicts requiring attention" over the last `hours` hours,
    /// newest first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn unresolved_conflicts(&self, hours: u32) -> Result<Vec<UnresolvedRow>, Error> {
        Ok(sqlx::query_as(
            "select c.conflict_id, c.\"timestamp\", c.processor_name, c.game_id, c.game_date, c.retry_attempt,
                    c.error_message, c.table_ref as \"table\", c.key, c.conflict_type, c.max_retries,
                    c.resolution_method, u.state as unit_state, u.next_attempt_at
             from conflicts c left join write_units u using (unit_id)
             where not c.resolved and c.\"timestamp\" >= streamguard_now() - make_interval(hours => $1)
             order by c.\"timestamp\" desc, c.conflict_id",
        )
        .bind(hours as i32)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One conflict and every attempt on its unit, oldest first; `None` when unknown.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn conflict(
        &self,
        conflict_id: Uuid,
    ) -> Result<Option<(ConflictRow, Vec<AttemptRow>)>, Error> {
        let conflict: Option<ConflictRow> = sqlx::query_as(
            "select c.conflict_id, c.\"timestamp\", c.processor_name, c.table_ref as \"table\", c.key,
                    c.partition_value as partition, c.game_id, c.game_date, c.unit_id, c.conflict_type,
                    c.retry_attempt, c.max_retries, c.delay_seconds, c.resolved, c.resolution_time,
                    c.resolution_method, c.rows_affected, c.error_message, c.details,
                    u.state as unit_state, u.next_attempt_at
             from conflicts c left join write_units u using (unit_id)
             where c.conflict_id = $1",
        )
        .bind(conflict_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(conflict) = conflict else {
            return Ok(None);
        };
        let attempts = sqlx::query_as(
            "select attempt, started_at, finished_at, outcome, error_class, error_message, delay_seconds,
                    next_attempt_at, replica, warehouse_job_id as statement_job_id
             from attempts where unit_id = $1 order by attempt",
        )
        .bind(conflict.unit_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((conflict, attempts)))
    }
}
