//! The job table: claim, lease renewal, and the fenced recording of an attempt.
//!
//! A claim is one committed statement (after a transaction-scoped advisory lock that
//! serialises claimers, so the per-table in-flight limit holds across replicas): due jobs,
//! and running jobs whose lease expired, are marked `running` with `attempt + 1` and a
//! lease. No transaction is held while the warehouse works. Every later write is fenced on
//! `(job_id, attempt, state = 'running')`: zero rows means another claimer took the job
//! over after our lease ran out, and the result is dropped.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{alerts, Error, Store};
use crate::domain::breaker::{Outcome, Probe};
use crate::domain::{ConflictType, ErrorClass};

/// Key of the advisory lock that serialises claims (any constant; "sg" in ASCII).
const CLAIM_LOCK: i64 = 0x7367;

/// A job claimed for one attempt, with everything the attempt needs.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedJob {
    /// The job.
    pub job_id: i64,
    /// This attempt's number (1-based); the fence.
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// The unit.
    pub unit_id: Uuid,
    /// The unit's batch.
    pub batch_id: Uuid,
    /// Who sent it.
    pub processor_name: String,
    /// Target table, `project.dataset.table`.
    pub table_ref: String,
    /// Key column → value.
    pub key: Value,
    /// The batch's partition column.
    pub partition_column: Option<String>,
    /// The unit's partition value.
    pub partition_value: Option<Value>,
    /// The unit's rows (a JSON array).
    pub rows: Value,
    /// The unit's state when claimed.
    pub state: String,
    /// The unit's open conflict, if any.
    pub conflict_id: Option<Uuid>,
    /// An operator asked for this attempt to run even while the breaker is open.
    pub bypass_breaker: bool,
}

impl ClaimedJob {
    /// This claim as the breaker's probe identity.
    pub fn probe(&self) -> Probe {
        Probe {
            job_id: self.job_id,
            attempt: self.attempt,
        }
    }
}

/// How an attempt ended, as the scheduler decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The replace landed.
    Loaded {
        /// Rows written.
        rows_inserted: u64,
        /// The warehouse's job id, if any.
        warehouse_job_id: Option<String>,
    },
    /// Refused for a reason time may cure; try again at `at`.
    Retry {
        /// Why.
        class: ErrorClass,
        /// The warehouse's message.
        message: String,
        /// When to try again.
        at: DateTime<Utc>,
        /// The chosen delay, seconds.
        delay_seconds: i32,
    },
    /// Refused, and the scheduler will not try again: attempts used up for a retryable
    /// class (the unit becomes `unresolved` when it had a conflict, else `failed`), or a
    /// permanent error (`failed`).
    GiveUp {
        /// Why.
        class: ErrorClass,
        /// The warehouse's message.
        message: String,
    },
}

/// What [`Store::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The verdict was applied; the unit is now in this state.
    Applied(&'static str),
    /// The unit had been superseded meanwhile: the attempt is logged, nothing rescheduled.
    Superseded,
    /// The lease was lost (another replica re-claimed the job): nothing was written.
    LeaseLost,
}

/// One attempt's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptLog {
    /// Which replica ran it.
    pub replica: String,
    /// When the warehouse call started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

impl Store {
    /// Claims up to `limit` due jobs for `replica`, with a lease of `lease`, never letting
    /// more than `max_per_table` jobs of one table run at once (expired leases do not
    /// count), and never starting a unit while an older unit of the same key is running.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn claim(
        &self,
        replica: &str,
        limit: u32,
        max_per_table: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let claimed: Vec<i64> = sqlx::query_scalar(
            "with recursive due_tables(table_ref) as (
                 (select table_ref from jobs where state = 'available' and run_at <= now()
                  order by table_ref limit 1)
                 union all
                 select (select j.table_ref from jobs j
                         where j.state = 'available' and j.run_at <= now() and j.table_ref > d.table_ref
                         order by j.table_ref limit 1)
                 from due_tables d where d.table_ref is not null
             ), running as (
                 select table_ref, count(*) as n from jobs
                 where state = 'running' and lease_expires_at > now()
                 group by table_ref
             ), candidates as (
                 select c.job_id from due_tables t left join running r using (table_ref)
                 cross join lateral (
                     select j.job_id from jobs j
                     where j.table_ref = t.table_ref and j.state = 'available' and j.run_at <= now()
                     order by j.run_at, j.job_id
                     limit greatest($1 - coalesce(r.n, 0), 0)) c
                 where t.table_ref is not null
                 union all
                 select job_id from jobs where state = 'running' and lease_expires_at <= now()
             ), due as (
                 select j.job_id, j.table_ref, j.run_at,
                        row_number() over (partition by j.table_ref order by j.run_at, j.job_id) as rank
                 from candidates c join jobs j using (job_id) join write_units u using (unit_id)
                 where not exists (
                       select 1 from write_units o join jobs oj on oj.unit_id = o.unit_id
                       where o.table_ref = u.table_ref and o.key = u.key
                         and o.partition_value is not distinct from u.partition_value
                         and o.seq < u.seq and oj.state = 'running' and oj.lease_expires_at > now())
             ), chosen as (
                 select d.job_id from due d left join running r using (table_ref)
                 where d.rank + coalesce(r.n, 0) <= $1
                 order by d.run_at, d.job_id
                 limit $2
             ), locked as (
                 select job_id from jobs where job_id in (select job_id from chosen)
                 for update skip locked
             )
             update jobs j set state = 'running', attempt = j.attempt + 1,
                    lease_expires_at = now() + make_interval(secs => $3), locked_by = $4, updated_at = now()
             from locked where j.job_id = locked.job_id
             returning j.job_id",
        )
        .bind(i64::from(max_per_table))
        .bind(i64::from(limit))
        .bind(lease.as_secs_f64())
        .bind(replica)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        self.load_claimed(&claimed).await
    }

    /// The claimed jobs `job_ids` with everything an attempt needs.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn load_claimed(&self, job_ids: &[i64]) -> Result<Vec<ClaimedJob>, Error> {
        Ok(sqlx::query_as(
            "select j.job_id, j.attempt, j.max_attempts, u.unit_id, u.batch_id, b.processor_name, u.table_ref,
                    u.key, b.partition_column, u.partition_value, u.rows, u.state, u.conflict_id,
                    j.bypass_breaker
             from jobs j join write_units u using (unit_id) join batches b using (batch_id)
             where j.job_id = any($1) order by j.run_at, j.job_id",
        )
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Extends a running job's lease; `false` when the lease was lost.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn renew_lease(
        &self,
        job_id: i64,
        attempt: i32,
        lease: Duration,
    ) -> Result<bool, Error> {
        let n = sqlx::query(
            "update jobs set lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
             where job_id = $1 and attempt = $2 and state = 'running'",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Puts a claimed job back because its breaker is open, without counting the claim as
    /// an attempt: the job's `attempt` goes back to what it was before the claim (the fence
    /// still holds: only this claim could match it), no attempt row is written, and a
    /// not-landed unit answers `deferred` with `next_attempt_at = at`. Fenced; `false` when
    /// the lease was lost.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn defer_for_breaker(
        &self,
        job: &ClaimedJob,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        // Lock order everywhere: write_units, then jobs.
        sqlx::query("select 1 from write_units where unit_id = $1 for update")
            .bind(job.unit_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "update jobs set state = 'available', attempt = attempt - 1, run_at = $3, lease_expires_at = null,
                    locked_by = null, updated_at = now()
             where job_id = $1 and attempt = $2 and state = 'running'",
        )
        .bind(job.job_id)
        .bind(job.attempt)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query(
            "update write_units set state = 'deferred', next_attempt_at = $2, updated_at = now()
             where unit_id = $1 and state in ('pending', 'deferred')",
        )
        .bind(job.unit_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies an attempt's verdict in one transaction, fenced on the claim: the job,
    /// the unit, the conflict log and the attempt row move together or not at all.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record(
        &self,
        job: &ClaimedJob,
        verdict: &Verdict,
        log: &AttemptLog,
    ) -> Result<Recorded, Error> {
        self.record_attempt(job, verdict, log, false).await
    }

    /// [`Store::record`] for an attempt an operator forced (`POST /v1/conflicts/{id}/force`)
    /// when `forced`: a landed replace then resolves the conflict as `force_mode` instead
    /// of `auto_retry`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record_attempt(
        &self,
        job: &ClaimedJob,
        verdict: &Verdict,
        log: &AttemptLog,
        forced: bool,
    ) -> Result<Recorded, Error> {
        let mut tx = self.pool.begin().await?;
        // Lock order everywhere: write_units, then jobs (intake's supersession does the same),
        // so concurrent intake and recording cannot deadlock.
        let (state, conflict_id): (String, Option<Uuid>) = sqlx::query_as(
            "select state, conflict_id from write_units where unit_id = $1 for update",
        )
        .bind(job.unit_id)
        .fetch_one(&mut *tx)
        .await?;
        let fenced: Option<i64> = sqlx::query_scalar(
            "select job_id from jobs where job_id = $1 and attempt = $2 and state = 'running' for update",
        )
        .bind(job.job_id)
        .bind(job.attempt)
        .fetch_optional(&mut *tx)
        .await?;
        if fenced.is_none() {
            if matches!(verdict, Verdict::Loaded { .. }) {
                heal_after_stale_write(&mut tx, job).await?;
                tx.commit().await?;
            }
            return Ok(Recorded::LeaseLost);
        }
        if job.bypass_breaker {
            sqlx::query("update jobs set bypass_breaker = false where job_id = $1")
                .bind(job.job_id)
                .execute(&mut *tx)
                .await?;
        }
        // The breaker counts landed and conflicting attempts; any other end releases the
        // half-open permit if this attempt held it.
        let scope = self
            .config
            .breaker_scope
            .of(&job.processor_name, &job.table_ref)
            .to_owned();
        let breaker_outcome = match verdict {
            Verdict::Loaded { .. } => Some(Outcome::Landed),
            Verdict::Retry { class, .. } | Verdict::GiveUp { class, .. }
                if class.conflict_type().is_some() =>
            {
                Some(Outcome::Conflict)
            }
            _ => None,
        };
        match breaker_outcome {
            Some(outcome) => {
                self.count_outcome(&mut tx, &scope, outcome, job.probe(), "scheduler")
                    .await?
            }
            None => self.release_probe(&mut tx, &scope, job.probe()).await?,
        }

        let (outcome, class, message, retry) = match verdict {
            Verdict::Loaded { .. } => ("loaded", None, None, None),
            Verdict::Retry {
                class,
                message,
                at,
                delay_seconds,
            } => {
                let outcome = if class.conflict_type().is_some() {
                    "conflict"
                } else {
                    "transient"
                };
                (
                    outcome,
                    Some(*class),
                    Some(message.as_str()),
                    Some((*at, *delay_seconds)),
                )
            }
            Verdict::GiveUp { class, message } => {
                let outcome = match class {
                    ErrorClass::Permanent => "failed",
                    c if c.conflict_type().is_some() => "conflict",
                    _ => "transient",
                };
                (outcome, Some(*class), Some(message.as_str()), None)
            }
        };

        if state == "superseded" || state == "cancelled" {
            let outcome = if matches!(verdict, Verdict::Loaded { .. }) {
                "loaded"
            } else {
                "superseded"
            };
            if !matches!(job.state.as_str(), "superseded" | "cancelled") {
                // The attempt did reach the warehouse (the unit was superseded or cancelled
                // while it ran): count it, so the unit does not claim it was never tried, and
                // when it landed, say so: its rows are in the table until the newer unit's
                // replace (which the claim never starts before this attempt ended) lands.
                sqlx::query(
                    "update write_units set attempts = $2, updated_at = now(),
                            state = case when $3 then 'loaded' else state end,
                            loaded_at = case when $3 then now() else loaded_at end
                     where unit_id = $1",
                )
                .bind(job.unit_id)
                .bind(job.attempt)
                .bind(outcome == "loaded")
                .execute(&mut *tx)
                .await?;
            }
            complete_job(&mut tx, job.job_id).await?;
            insert_attempt(
                &mut tx,
                job,
                conflict_id,
                outcome,
                class,
                message,
                None,
                None,
                log,
            )
            .await?;
            tx.commit().await?;
            return Ok(Recorded::Superseded);
        }

        // A conflict-class refusal opens the unit's conflict, or updates the open one.
        let conflict_id = match class.and_then(ErrorClass::conflict_type) {
            Some(kind) => Some(
                upsert_conflict(
                    &mut tx,
                    job,
                    conflict_id,
                    kind,
                    message.unwrap_or_default(),
                    retry.map(|r| r.1),
                )
                .await?,
            ),
            None => conflict_id,
        };

        let new_state = match verdict {
            Verdict::Loaded {
                rows_inserted,
                warehouse_job_id,
            } => {
                sqlx::query(
                    "update write_units set state = 'loaded', attempts = $2, next_attempt_at = null, error = null,
                            loaded_at = now(), updated_at = now() where unit_id = $1",
                )
                .bind(job.unit_id)
                .bind(job.attempt)
                .execute(&mut *tx)
                .await?;
                if let Some(id) = conflict_id {
                    sqlx::query(
                        "update conflicts set resolved = true, resolution_method = $4, resolution_time = now(),
                                retry_attempt = $2, rows_affected = $3, updated_at = now()
                         where conflict_id = $1 and not resolved",
                    )
                    .bind(id)
                    .bind(job.attempt)
                    .bind(i32::try_from(*rows_inserted).unwrap_or(i32::MAX))
                    .bind(if forced { "force_mode" } else { "auto_retry" })
                    .execute(&mut *tx)
                    .await?;
                }
                complete_job(&mut tx, job.job_id).await?;
                insert_attempt(
                    &mut tx,
                    job,
                    conflict_id,
                    outcome,
                    None,
                    None,
                    None,
                    warehouse_job_id.as_deref(),
                    log,
                )
                .await?;
                "loaded"
            }
            Verdict::Retry {
                at,
                delay_seconds,
                message,
                ..
            } => {
                sqlx::query(
                    "update write_units set state = 'deferred', attempts = $2, next_attempt_at = $3, error = $4,
                            conflict_id = $5, updated_at = now() where unit_id = $1",
                )
                .bind(job.unit_id)
                .bind(job.attempt)
                .bind(at)
                .bind(message)
                .bind(conflict_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "update jobs set state = 'available', run_at = $2, lease_expires_at = null, locked_by = null,
                            updated_at = now() where job_id = $1",
                )
                .bind(job.job_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                insert_attempt(
                    &mut tx,
                    job,
                    conflict_id,
                    outcome,
                    class,
                    message.as_str().into(),
                    Some((*at, *delay_seconds)),
                    None,
                    log,
                )
                .await?;
                "deferred"
            }
            Verdict::GiveUp {
                class: give_up_class,
                message,
            } => {
                let new_state = if conflict_id.is_some() && *give_up_class != ErrorClass::Permanent
                {
                    "unresolved"
                } else {
                    "failed"
                };
                sqlx::query(
                    "update write_units set state = $2, attempts = $3, next_attempt_at = null, error = $4,
                            conflict_id = $5, updated_at = now() where unit_id = $1",
                )
                .bind(job.unit_id)
                .bind(new_state)
                .bind(job.attempt)
                .bind(message)
                .bind(conflict_id)
                .execute(&mut *tx)
                .await?;
                if let (Some(id), "unresolved") = (conflict_id, new_state) {
                    sqlx::query(
                        "update conflicts set resolution_method = 'timeout', resolution_time = now(), updated_at = now()
                         where conflict_id = $1 and not resolved",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                let (kind, summary) = if new_state == "unresolved" {
                    (
                        "conflict_timeout",
                        format!(
                            "{} gave up on {} key {} after {} attempts: {message}",
                            job.processor_name, job.table_ref, job.key, job.attempt
                        ),
                    )
                } else {
                    (
                        "unit_failed",
                        format!(
                            "{} unit for {} key {} failed: {message}",
                            job.processor_name, job.table_ref, job.key
                        ),
                    )
                };
                alerts::insert(
                    &mut tx,
                    self,
                    kind,
                    &scope,
                    &summary,
                    json!({
                        "processor_name": job.processor_name, "table": job.table_ref, "key": job.key,
                        "partition": job.partition_value, "unit_id": job.unit_id, "batch_id": job.batch_id,
                        "conflict_id": conflict_id, "attempts": job.attempt, "error": message,
                        "error_class": give_up_class.as_str(),
                    }),
                )
                .await?;
                complete_job(&mut tx, job.job_id).await?;
                insert_attempt(
                    &mut tx,
                    job,
                    conflict_id,
                    outcome,
                    class,
                    message.as_str().into(),
                    None,
                    None,
                    log,
                )
                .await?;
                new_state
            }
        };
        tx.commit().await?;
        Ok(Recorded::Applied(new_state))
    }
}

/// A replace landed after its claim was lost: a stalled replica's late write, which may
/// have put this unit's rows over those of a newer unit of the same key that already
/// landed. The warehouse call cannot be recalled, so the newest unit is re-applied: when
/// the newest unit of the key is `loaded`, its job runs again at once (a replace is
/// idempotent). A newer unit still waiting lands later anyway; without a newer unit, the
/// late write wrote this unit's own rows and nothing is stale.
async fn heal_after_stale_write(
    tx: &mut sqlx::PgConnection,
    job: &ClaimedJob,
) -> Result<(), Error> {
    let healed: Option<Uuid> = sqlx::query_scalar(
        "with newest as (
             select u.unit_id, u.state from write_units u join write_units me on me.unit_id = $1
             where u.table_ref = me.table_ref and u.key = me.key
               and u.partition_value is not distinct from me.partition_value
               and u.seq > me.seq and u.state in ('loaded', 'pending', 'deferred')
             order by u.seq desc limit 1)
         update jobs j set state = 'available', run_at = now(), lease_expires_at = null, locked_by = null,
                completed_at = null, updated_at = now()
         from newest where j.unit_id = newest.unit_id and newest.state = 'loaded' and j.state = 'completed'
         returning j.unit_id",
    )
    .bind(job.unit_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(newest) = healed {
        tracing::warn!(
            stale_unit = %job.unit_id, %newest,
            "an attempt whose lease was lost wrote to the warehouse; re-applying the newest unit of its key"
        );
    }
    Ok(())
}

async fn complete_job(tx: &mut sqlx::PgConnection, job_id: i64) -> Result<(), Error> {
    sqlx::query(
        "update jobs set state = 'completed', completed_at = now(), lease_expires_at = null, updated_at = now()
         where job_id = $1",
    )
    .bind(job_id)
    .execute(tx)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_attempt(
    tx: &mut sqlx::PgConnection,
    job: &ClaimedJob,
    conflict_id: Option<Uuid>,
    outcome: &str,
    class: Option<ErrorClass>,
    message: Option<&str>,
    retry: Option<(DateTime<Utc>, i32)>,
    warehouse_job_id: Option<&str>,
    log: &AttemptLog,
) -> Result<(), Error> {
    sqlx::query(
        "insert into attempts (unit_id, attempt, conflict_id, outcome, error_class, error_message, delay_seconds,
                               next_attempt_at, warehouse_job_id, replica, started_at, finished_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict on constraint attempts_unit_attempt_unique do nothing",
    )
    .bind(job.unit_id)
    .bind(job.attempt)
    .bind(conflict_id)
    .bind(outcome)
    .bind(class.map(ErrorClass::as_str))
    .bind(message)
    .bind(retry.map(|r| r.1))
    .bind(retry.map(|r| r.0))
    .bind(warehouse_job_id)
    .bind(&log.replica)
    .bind(log.started_at)
    .bind(log.finished_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// `game_id` and `game_date` for the seed's columns, when the key (or partition) has them.
fn seed_columns(job: &ClaimedJob) -> (Option<String>, Option<NaiveDate>) {
    let mut identity: Map<String, Value> = job.key.as_object().cloned().unwrap_or_default();
    if let (Some(column), Some(value)) = (&job.partition_column, &job.partition_value) {
        identity.insert(column.clone(), value.clone());
    }
    let game_id = identity.get("game_id").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let game_date = identity
        .get("game_date")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok());
    (game_id, game_date)
}

async fn upsert_conflict(
    tx: &mut sqlx::PgConnection,
    job: &ClaimedJob,
    existing: Option<Uuid>,
    kind: ConflictType,
    message: &str,
    delay_seconds: Option<i32>,
) -> Result<Uuid, Error> {
    if let Some(id) = existing {
        sqlx::query(
            "update conflicts set conflict_type = $2, retry_attempt = $3, delay_seconds = $4, error_message = $5,
                    updated_at = now() where conflict_id = $1",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(job.attempt)
        .bind(delay_seconds)
        .bind(message)
        .execute(tx)
        .await?;
        return Ok(id);
    }
    let id = Uuid::new_v4();
    let (game_id, game_date) = seed_columns(job);
    let rows = job.rows.as_array().map_or(0, Vec::len);
    sqlx::query(
        "insert into conflicts (conflict_id, processor_name, table_ref, key, partition_value, game_id, game_date, unit_id,
                                conflict_type, retry_attempt, max_retries, delay_seconds, rows_affected, error_message, details)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id)
    .bind(&job.processor_name)
    .bind(&job.table_ref)
    .bind(&job.key)
    .bind(&job.partition_value)
    .bind(game_id)
    .bind(game_date)
    .bind(job.unit_id)
    .bind(kind.as_str())
    .bind(job.attempt)
    .bind(job.max_attempts)
    .bind(delay_seconds)
    .bind(i32::try_from(rows).unwrap_or(i32::MAX))
    .bind(message)
    .bind(json!({"batch_id": job.batch_id, "partition_column": job.partition_column, "source": "scheduler"}))
    .execute(tx)
    .await?;
    Ok(id)
}
