//! Statement records, their settlement, and per-table pacing.
//!
//! A statement's row (`statements`, with its units in `statement_units`) is written before
//! the warehouse is called, with a job id that names it, so that a statement whose answer
//! was never seen — the replica killed after sending, a timeout — is found again:
//! [`Store::unsettled_statements`] lists the statements that may still run and that touch a
//! key about to be sent, and the scheduler settles each (adopts, waits, or drops it) before
//! anything else is sent for that key.
//!
//! Pacing is shared by every replica through `table_pacing`: each statement reserves the
//! table's next slot ([`Store::reserve_slot`]); quota and DML-queue answers double the
//! interval, successes bring it back toward the warehouse's documented rate
//! ([`Store::pace`]). `partition_holds` keeps a partition just refused for the streaming
//! buffer out of new groups until it can have drained.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::jobs::ClaimedJob;
use super::record::{insert_conflict, NewConflict};
use super::{Error, Store};
use crate::domain::ConflictType;
use crate::warehouse::ReplaceOutcome;

/// The longest interval pacing backs off to between two statements to one table.
pub const MAX_PACING_INTERVAL: Duration = Duration::from_secs(300);

/// A statement that may still run, and the units it carried that share a key with the
/// units about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    /// The statement's record.
    pub statement_id: i64,
    /// Its warehouse job id.
    pub job_id: String,
    /// It is known to have landed (`done`) but carried a unit about to be sent again: its
    /// verdict was never recorded (the replica died, or recording failed, after it landed).
    pub landed: bool,
    /// Units of the group about to be sent whose key (and partition) it touched.
    pub touches: Vec<Uuid>,
    /// Units of the group about to be sent that it carried themselves (an earlier attempt
    /// of the same unit): adopted when it landed.
    pub carried: Vec<Uuid>,
}

/// How a statement ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementState {
    /// The warehouse has it (a settlement found it running).
    Running,
    /// It landed.
    Done,
    /// It was refused or cancelled, or never arrived: nothing was written.
    Failed,
    /// We stopped waiting; settled before the next statement for its keys.
    Unknown,
}

impl StatementState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// One statement as `GET /v1/statements/{job_id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StatementView {
    /// The warehouse's job id.
    pub job_id: String,
    /// `project.dataset.table`.
    pub table: String,
    /// `sent`, `running`, `done`, `failed` or `unknown`.
    pub state: String,
    /// The replica that sent it.
    pub replica: String,
    /// Units it carried.
    pub units: i32,
    /// Rows deleted (BigQuery's `dmlStats.deletedRowCount`), when reported.
    pub rows_deleted: Option<i64>,
    /// Rows inserted, when reported.
    pub rows_inserted: Option<i64>,
    /// Bytes billed (`statistics.query.totalBytesBilled`), when reported.
    pub bytes_billed: Option<i64>,
    /// The class of the refusal, when refused.
    pub error_class: Option<String>,
    /// The warehouse's message, when refused.
    pub error_message: Option<String>,
    /// When it was written, just before sending.
    pub sent_at: DateTime<Utc>,
    /// When its outcome was recorded.
    pub finished_at: Option<DateTime<Utc>>,
    /// The units it carried, with the attempt of each.
    #[sqlx(json)]
    #[schema(value_type = Vec<Object>)]
    pub unit_attempts: Value,
}

impl Store {
    /// Records statement `job_id` over `units` (each at its claimed attempt) before it is
    /// sent; returns its id.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn begin_statement(
        &self,
        job_id: &str,
        table: &str,
        replica: &str,
        units: &[&ClaimedJob],
    ) -> Result<i64, Error> {
        let unit_ids: Vec<Uuid> = units.iter().map(|j| j.unit_id).collect();
        let attempts: Vec<i32> = units.iter().map(|j| j.attempt).collect();
        Ok(sqlx::query_scalar(
            "with s as (
                 insert into statements (job_id, table_ref, replica, units) values ($1, $2, $3, $4)
                 returning statement_id),
             su as (
                 insert into statement_units (statement_id, unit_id, attempt)
                 select s.statement_id, u.unit_id, u.attempt from s, unnest($5::uuid[], $6::int[]) as u(unit_id, attempt))
             select statement_id from s",
        )
        .bind(job_id)
        .bind(table)
        .bind(replica)
        .bind(i32::try_from(units.len()).unwrap_or(i32::MAX))
        .bind(&unit_ids)
        .bind(&attempts)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records how statement `statement_id` ended: landed with `outcome`, or refused with
    /// `(class, message)`, or `state` alone (running, unknown). `finished_at` keeps the
    /// first time an end was recorded (a settlement's, before a late caller's).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn finish_statement(
        &self,
        statement_id: i64,
        state: StatementState,
        outcome: Option<&ReplaceOutcome>,
        error: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        let as_i64 = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        sqlx::query(
            "update statements set state = $2, rows_deleted = $3, rows_inserted = $4, bytes_billed = $5,
                    error_class = $6, error_message = $7,
                    finished_at = case when $2 in ('done', 'failed') then coalesce(finished_at, streamguard_now())
                                       else finished_at end,
                    updated_at = streamguard_now()
             where statement_id = $1",
        )
        .bind(statement_id)
        .bind(state.as_str())
        .bind(as_i64(outcome.and_then(|o| o.rows_deleted)))
        .bind(as_i64(outcome.map(|o| o.rows_inserted)))
        .bind(as_i64(outcome.and_then(|o| o.bytes_billed)))
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Statements of `table` that may still run (sent, running, unknown) and touch the key
    /// (and partition) of any of `units`, and statements that landed (done) carrying one of
    /// `units` itself — a landing whose verdict was never recorded.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn unsettled_statements(
        &self,
        table: &str,
        units: &[Uuid],
    ) -> Result<Vec<Unsettled>, Error> {
        Ok(sqlx::query_as(
            "select s.statement_id, s.job_id, s.state = 'done' as landed,
                    array_agg(distinct g.unit_id) as touches,
                    array_agg(distinct g.unit_id) filter (where o.unit_id = g.unit_id) as carried_raw
             from statements s
             join statement_units su using (statement_id)
             join write_units o on o.unit_id = su.unit_id
             join write_units g on g.unit_id = any($2)
                  and g.table_ref = o.table_ref and g.key = o.key
                  and g.partition_value is not distinct from o.partition_value
             where s.table_ref = $1
               and (s.state in ('sent', 'running', 'unknown') or (s.state = 'done' and o.unit_id = g.unit_id))
             group by s.statement_id, s.job_id
             order by s.statement_id",
        )
        .bind(table)
        .bind(units)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row: UnsettledRow| Unsettled {
            statement_id: row.statement_id,
            job_id: row.job_id,
            landed: row.landed,
            touches: row.touches,
            carried: row.carried_raw.unwrap_or_default(),
        })
        .collect())
    }

    /// Reserves the next slot for a statement to `table`: returns how long to wait before
    /// sending. The first statement to a table starts at `base` interval.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn reserve_slot(&self, table: &str, base: Duration) -> Result<Duration, Error> {
        let wait: f64 = sqlx::query_scalar(
            "insert into table_pacing as p (table_ref, interval_seconds, next_at)
             values ($1, $2, streamguard_now() + make_interval(secs => $2))
             on conflict (table_ref) do update
                set next_at = greatest(p.next_at, streamguard_now()) + make_interval(secs => p.interval_seconds),
                    updated_at = streamguard_now()
             returning greatest(extract(epoch from (next_at - streamguard_now())) - interval_seconds, 0)::float8",
        )
        .bind(table)
        .bind(base.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(Duration::from_secs_f64(wait.max(0.0)))
    }

    /// Feeds a statement's answer back into the table's pace: a quota or DML-queue refusal
    /// (`slow_down`) doubles the interval (at most [`MAX_PACING_INTERVAL`]) and pushes the
    /// next slot out by it; any other answer shrinks it by a quarter, never below `base`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn pace(&self, table: &str, base: Duration, slow_down: bool) -> Result<(), Error> {
        sqlx::query(
            "update table_pacing set
                interval_seconds = case when $3
                    then least(greatest(interval_seconds * 2, $2, 1), $4)
                    else greatest(interval_seconds * 0.75, $2) end,
                next_at = case when $3
                    then greatest(next_at, streamguard_now() + make_interval(secs => least(greatest(interval_seconds * 2, $2, 1), $4)))
                    else next_at end,
                updated_at = streamguard_now()
             where table_ref = $1",
        )
        .bind(table)
        .bind(base.as_secs_f64())
        .bind(slow_down)
        .bind(MAX_PACING_INTERVAL.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps `partition` of `table` out of new groups until `until`, and defers its
    /// waiting units until then, unattempted: each is known to be blocked, so it gets (or
    /// keeps) a `streaming_buffer` conflict with `reason`. Returns how many were deferred.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn hold_partition(
        &self,
        table: &str,
        partition: &Value,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        // Intake's per-table lock: a batch committing meanwhile is either seen here (and
        // deferred) or sees the hold (and defers itself) — never neither.
        sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
            .bind(super::batches::INTAKE_LOCK_SPACE)
            .bind(table)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into partition_holds (table_ref, partition_value, until) values ($1, $2, $3)
             on conflict (table_ref, partition_value) do update
                set until = greatest(partition_holds.until, excluded.until), updated_at = streamguard_now()",
        )
        .bind(table)
        .bind(partition)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        let n = defer_held_units(&mut tx, table, partition, until, reason, None).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One statement with its units, by job id; `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn statement(&self, job_id: &str) -> Result<Option<StatementView>, Error> {
        Ok(sqlx::query_as(
            "select s.job_id, s.table_ref as table, s.state, s.replica, s.units, s.rows_deleted,
                    s.rows_inserted, s.bytes_billed, s.error_class, s.error_message, s.sent_at,
                    s.finished_at,
                    coalesce((select jsonb_agg(jsonb_build_object('unit_id', su.unit_id, 'attempt', su.attempt,
                                                                  'key', u.key, 'partition', u.partition_value)
                                               order by u.seq)
                              from statement_units su join write_units u using (unit_id)
                              where su.statement_id = s.statement_id), '[]'::jsonb) as unit_attempts
             from statements s where s.job_id = $1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

#[derive(sqlx::FromRow)]
struct UnsettledRow {
    statement_id: i64,
    job_id: String,
    landed: bool,
    touches: Vec<Uuid>,
    carried_raw: Option<Vec<Uuid>>,
}

/// A waiting unit of a held partition.
#[derive(sqlx::FromRow)]
struct HeldUnit {
    unit_id: Uuid,
    batch_id: Uuid,
    key: Value,
    partition_value: Option<Value>,
    conflict_id: Option<Uuid>,
    attempts: i32,
    max_attempts: i32,
    processor_name: String,
    partition_column: Option<String>,
    rows: i32,
}

/// Defers the waiting units of `partition` of `table` (of batch `batch` alone, when given)
/// until `until`, opening a `streaming_buffer` conflict for each that has none. Intake
/// calls it for a batch that lands in a held partition.
pub(crate) async fn defer_held_units(
    tx: &mut sqlx::PgConnection,
    table: &str,
    partition: &Value,
    until: DateTime<Utc>,
    reason: &str,
    batch: Option<Uuid>,
) -> Result<u64, Error> {
    // Lock order everywhere: write_units, then jobs.
    let held: Vec<HeldUnit> = sqlx::query_as(
        "select w.unit_id, w.batch_id, w.key, w.partition_value, w.conflict_id, w.attempts, j.max_attempts,
                b.processor_name, b.partition_column, w.row_count as rows
         from write_units w join jobs j using (unit_id) join batches b using (batch_id)
         where w.table_ref = $1 and w.partition_value = $2 and w.state in ('pending', 'deferred')
           and j.state = 'available' and j.run_at < $3 and ($4::uuid is null or w.batch_id = $4)
         order by w.unit_id
         for update of w",
    )
    .bind(table)
    .bind(partition)
    .bind(until)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("select streamguard_now()")
        .fetch_one(&mut *tx)
        .await?;
    let delay = i32::try_from((until - now).num_seconds().max(0)).unwrap_or(i32::MAX);
    for unit in &held {
        let conflict_id = match unit.conflict_id {
            Some(id) => id,
            None => {
                insert_conflict(
                    tx,
                    &NewConflict {
                        processor_name: &unit.processor_name,
                        table_ref: table,
                        key: &unit.key,
                        partition_column: unit.partition_column.as_deref(),
                        partition_value: unit.partition_value.as_ref(),
                        batch_id: unit.batch_id,
                        unit_id: unit.unit_id,
                        kind: ConflictType::StreamingBuffer,
                        attempt: unit.attempts,
                        max_attempts: unit.max_attempts,
                        delay_seconds: Some(delay),
                        rows: usize::try_from(unit.rows).unwrap_or(0),
                        message: reason,
                        source: "partition_hold",
                    },
                )
                .await?
            }
        };
        sqlx::query(
            "update write_units set state = 'deferred', next_attempt_at = $2, error = $3, conflict_id = $4,
                    updated_at = streamguard_now()
             where unit_id = $1",
        )
        .bind(unit.unit_id)
        .bind(until)
        .bind(reason)
        .bind(conflict_id)
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<Uuid> = held.iter().map(|u| u.unit_id).collect();
    sqlx::query(
        "update jobs set run_at = greatest(run_at, $2), updated_at = streamguard_now()
         where unit_id = any($1) and state = 'available'",
    )
    .bind(&ids)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    Ok(held.len() as u64)
}
