//! Backfill runs: the progress and final report of every batch that names one run, and the
//! list of recent runs. One aggregate query serves both; the estimate of when a run is done
//! is decided by [`crate::domain::run::Progress`] from its counts and the clock's `streamguard_now()`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Error, Store};
use crate::domain::run::Progress;

/// A run's units by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunUnits {
    /// Every unit of the run's batches.
    pub total: i64,
    /// Not attempted yet.
    pub pending: i64,
    /// Waiting for a retry (or held by an open breaker).
    pub deferred: i64,
    /// Landed.
    pub loaded: i64,
    /// Refused permanently.
    pub failed: i64,
    /// Given up after the retry policy's last attempt.
    pub unresolved: i64,
    /// Replaced by a newer batch for the same key before they landed.
    pub superseded: i64,
    /// Cancelled by an operator.
    pub cancelled: i64,
}

/// Progress and report of one run, as `GET /v1/runs/{run}` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "run": "bdl_boxscores backfill 2026-01-24",
    "processors": ["bdl_boxscores_processor"],
    "tables": ["nba-props-platform.nba_raw.bdl_player_boxscores"],
    "batches": 89,
    "units": {"total": 89, "pending": 0, "deferred": 3, "loaded": 86, "failed": 0,
              "unresolved": 0, "superseded": 0, "cancelled": 0},
    "loaded_first_attempt": 33,
    "deferred": 56,
    "resolved_by_retry": 53,
    "unresolved": 0,
    "failed": 0,
    "statements": 12,
    "attempts": 150,
    "started_at": "2026-01-25T09:14:03Z",
    "last_change_at": "2026-01-25T09:41:17Z",
    "done": false,
    "estimated_done_at": "2026-01-25T09:46:17Z"
}))]
pub struct RunReport {
    /// The run's name.
    pub run: String,
    /// Processors that posted batches in it, sorted.
    pub processors: Vec<String>,
    /// Tables its batches write, sorted.
    pub tables: Vec<String>,
    /// Batches that name the run.
    pub batches: i64,
    /// Its units by current state.
    pub units: RunUnits,
    /// Units loaded without ever being refused (on their first attempt).
    pub loaded_first_attempt: i64,
    /// Units refused at least once: they had a conflict or an attempt that BigQuery
    /// refused for a reason time cures.
    pub deferred: i64,
    /// Of the deferred units, those loaded since.
    pub resolved_by_retry: i64,
    /// Units given up (`units.unresolved`).
    pub unresolved: i64,
    /// Units refused permanently (`units.failed`).
    pub failed: i64,
    /// Distinct warehouse statements (BigQuery jobs, `statement_units`) spent on
    /// the run's units; one statement may carry several units.
    pub statements: i64,
    /// Attempts made on the run's units.
    pub attempts: i64,
    /// When its first batch was accepted.
    pub started_at: DateTime<Utc>,
    /// The latest change: a batch accepted, a unit's state changed, an attempt finished.
    pub last_change_at: DateTime<Utc>,
    /// Whether no unit is pending or deferred.
    pub done: bool,
    /// When the run should be done: the last deferred unit's next attempt, or, for pending
    /// units, the rate at which units settled so far; `null` when done or unknown.
    pub estimated_done_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    run: String,
    processors: Vec<String>,
    tables: Vec<String>,
    batches: i64,
    total: i64,
    pending: i64,
    deferred_now: i64,
    loaded: i64,
    failed: i64,
    unresolved: i64,
    superseded: i64,
    cancelled: i64,
    loaded_first_attempt: i64,
    refused: i64,
    resolved_by_retry: i64,
    last_retry_at: Option<DateTime<Utc>>,
    statements: i64,
    attempts: i64,
    started_at: DateTime<Utc>,
    last_change_at: DateTime<Utc>,
    now: DateTime<Utc>,
}

/// The reports of the runs named in `$1`, most recent change first.
///
/// A unit counts as refused when it had a conflict or any attempt whose outcome was
/// `conflict` or `transient`; held by an open breaker without an attempt is not a refusal.
/// Statements are every statement that carried one of the run's units (`statement_units`),
/// the ones spent splitting a refused group included, each counted once however many of
/// the run's units it carried.
const REPORTS: &str = "
with b as (
    select run, batch_id, processor_name, table_ref, created_at from batches where run = any($1)
), u as (
    select b.run, w.unit_id, w.state, w.updated_at, w.next_attempt_at,
           (w.conflict_id is not null or exists (
               select 1 from attempts a
               where a.unit_id = w.unit_id and a.outcome in ('conflict', 'transient'))) as refused
    from b join write_units w using (batch_id)
), a as (
    select u.run, count(*) as attempts, max(a.finished_at) as last_attempt
    from u join attempts a using (unit_id)
    group by u.run
), st as (
    select u.run, count(distinct su.statement_id) as statements
    from u join statement_units su using (unit_id)
    group by u.run
), bs as (
    select run, count(*) as batches,
           array_agg(distinct processor_name order by processor_name) as processors,
           array_agg(distinct table_ref order by table_ref) as tables,
           min(created_at) as started_at, max(created_at) as last_batch
    from b group by run
), us as (
    select run, count(*) as total,
           count(*) filter (where state = 'pending') as pending,
           count(*) filter (where state = 'deferred') as deferred_now,
           count(*) filter (where state = 'loaded') as loaded,
           count(*) filter (where state = 'failed') as failed,
           count(*) filter (where state = 'unresolved') as unresolved,
           count(*) filter (where state = 'superseded') as superseded,
           count(*) filter (where state = 'cancelled') as cancelled,
           count(*) filter (where state = 'loaded' and not refused) as loaded_first_attempt,
           count(*) filter (where refused) as refused,
           count(*) filter (where state = 'loaded' and refused) as resolved_by_retry,
           max(next_attempt_at) filter (where state = 'deferred') as last_retry_at,
           max(updated_at) as last_unit
    from u group by run
)
select bs.run, bs.processors, bs.tables, bs.batches,
       coalesce(us.total, 0) as total, coalesce(us.pending, 0) as pending,
       coalesce(us.deferred_now, 0) as deferred_now, coalesce(us.loaded, 0) as loaded,
       coalesce(us.failed, 0) as failed, coalesce(us.unresolved, 0) as unresolved,
       coalesce(us.superseded, 0) as superseded, coalesce(us.cancelled, 0) as cancelled,
       coalesce(us.loaded_first_attempt, 0) as loaded_first_attempt,
       coalesce(us.refused, 0) as refused, coalesce(us.resolved_by_retry, 0) as resolved_by_retry,
       us.last_retry_at,
       coalesce(st.statements, 0) as statements, coalesce(a.attempts, 0) as attempts,
       bs.started_at, greatest(bs.last_batch, us.last_unit, a.last_attempt) as last_change_at,
       streamguard_now() as now
from bs left join us using (run) left join a using (run) left join st using (run)
order by last_change_at desc, bs.run";

impl Store {
    /// The report of run `run`, or `None` when no batch names it.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn run_report(&self, run: &str) -> Result<Option<RunReport>, Error> {
        Ok(self
            .run_reports(&[run.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// The `limit` runs changed most recently, most recent first.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<RunReport>, Error> {
        // A run's latest change is its newest batch, unit change or attempt; units change
        // (updated_at) whenever an attempt is recorded, so batches and units suffice here.
        let names: Vec<String> = sqlx::query_scalar(
            "select b.run
             from batches b left join write_units w using (batch_id)
             where b.run is not null
             group by b.run
             order by greatest(max(b.created_at), max(w.updated_at)) desc, b.run
             limit $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.run_reports(&names).await
    }

    async fn run_reports(&self, runs: &[String]) -> Result<Vec<RunReport>, Error> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = sqlx::query_as(REPORTS)
            .bind(runs)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(RunReport::from).collect())
    }
}

impl From<Row> for RunReport {
    fn from(r: Row) -> Self {
        let progress = Progress {
            pending: r.pending,
            deferred: r.deferred_now,
            settled: r.total - r.pending - r.deferred_now,
            last_retry_at: r.last_retry_at,
            started_at: r.started_at,
        };
        Self {
            run: r.run,
            processors: r.processors,
            tables: r.tables,
            batches: r.batches,
            units: RunUnits {
                total: r.total,
                pending: r.pending,
                deferred: r.deferred_now,
                loaded: r.loaded,
                failed: r.failed,
                unresolved: r.unresolved,
                superseded: r.superseded,
                cancelled: r.cancelled,
            },
            loaded_first_attempt: r.loaded_first_attempt,
            deferred: r.refused,
            resolved_by_retry: r.resolved_by_retry,
            unresolved: r.unresolved,
            failed: r.failed,
            statements: r.statements,
            attempts: r.attempts,
            started_at: r.started_at,
            last_change_at: r.last_change_at,
            done: progress.done(),
            estimated_done_at: progress.estimated_done_at(r.now),
        }
    }
}
