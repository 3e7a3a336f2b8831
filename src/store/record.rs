//! Recording attempts: the verdicts of the units one statement carried are applied in one
//! transaction, each fenced on its claim, following the lifecycle decided in
//! [`crate::domain::lifecycle::decide`] — the unit, its job, its conflict, the alert, the
//! breaker's count and the attempt row move together or not at all.
//!
//! The recording is set-based where it can be: the statement's units and jobs are locked
//! (and the fences checked) in two statements, and the units' new states, the jobs'
//! completions or new run times and the attempt rows are written in one statement each at
//! the end; what varies per unit (the breaker's count, a conflict, an alert) stays per unit.
//!
//! Why it is long (about 600 lines): recording is one transaction over a statement's units
//! and everything they touch — units, jobs, conflicts (opened, updated, closed), alerts, the
//! breaker and the attempt rows — written set-based, and the pieces only make sense read
//! together.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::jobs::{AttemptLog, ClaimedJob, Recorded};
use super::{alerts, Error, Store};
use crate::domain::lifecycle::{decide, AttemptOutcome, ConflictStep, Decision, JobStep, Verdict};
use crate::domain::{ConflictType, ResolutionMethod, UnitState};

/// One unit's verdict from a statement (or from no statement: superseded before the call).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitVerdict<'a> {
    /// The claimed job.
    pub job: &'a ClaimedJob,
    /// What the attempt came to.
    pub verdict: Verdict,
}

impl Store {
    /// Applies one attempt's verdict for a job that no statement carried (or one outside a
    /// group), as [`Store::record_statement`] does for a group.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record(
        &self,
        job: &ClaimedJob,
        verdict: &Verdict,
        log: &AttemptLog,
    ) -> Result<Recorded, Error> {
        let unit = UnitVerdict {
            job,
            verdict: verdict.clone(),
        };
        Ok(self
            .record_statement(&[unit], None, log, false)
            .await?
            .pop()
            .unwrap_or(Recorded::LeaseLost))
    }

    /// Applies the verdicts of the units statement `statement` (its record's id, with its
    /// job id `warehouse_job_id`) carried, in one transaction; `forced` marks an operator's
    /// force-mode attempt. Returns what recording did for each unit, in order.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn record_statement(
        &self,
        units: &[UnitVerdict<'_>],
        statement: Option<(i64, &str)>,
        log: &AttemptLog,
        forced: bool,
    ) -> Result<Vec<Recorded>, Error> {
        let mut tx = self.pool.begin().await?;
        // Lock order everywhere: write_units, then jobs (intake's supersession does the
        // same), each by id, so concurrent recordings and intake cannot deadlock. Both
        // are locked set-based: every unit of the statement, then every job still held by
        // its claim (the fence), in two statements whatever the statement's size.
        let unit_ids: Vec<Uuid> = units.iter().map(|u| u.job.unit_id).collect();
        let locked: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
            "select unit_id, state, conflict_id from write_units where unit_id = any($1)
             order by unit_id for update",
        )
        .bind(&unit_ids)
        .fetch_all(&mut *tx)
        .await?;
        let job_ids: Vec<i64> = units.iter().map(|u| u.job.job_id).collect();
        let claims: Vec<i32> = units.iter().map(|u| u.job.attempt).collect();
        let fenced: HashSet<i64> = sqlx::query_scalar(
            "select j.job_id from jobs j join unnest($1::bigint[], $2::int[]) as c(job_id, attempt)
                 on j.job_id = c.job_id and j.attempt = c.attempt
             where j.state = 'running' order by j.job_id for update of j",
        )
        .bind(&job_ids)
        .bind(&claims)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let locked: HashMap<Uuid, (String, Option<Uuid>)> = locked
            .into_iter()
            .map(|(id, state, conflict)| (id, (state, conflict)))
            .collect();
        let mut order: Vec<usize> = (0..units.len()).collect();
        order.sort_by_key(|&i| units[i].job.unit_id);
        let mut writes = Writes::default();
        let mut recorded = vec![Recorded::LeaseLost; units.len()];
        for i in order {
            let Some((state, conflict_id)) = locked.get(&units[i].job.unit_id) else {
                return Err(Error::Database(sqlx::Error::RowNotFound));
            };
            let current = Current {
                state,
                conflict_id: *conflict_id,
                fenced: fenced.contains(&units[i].job.job_id),
            };
            recorded[i] = self
                .record_unit(
                    &mut tx,
                    &units[i],
                    current,
                    forced,
                    &mut writes,
                    statement.map(|s| s.0),
                )
                .await?;
        }
        writes.apply(&mut tx, statement, log).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn record_unit(
        &self,
        tx: &mut sqlx::PgConnection,
        unit: &UnitVerdict<'_>,
        current: Current<'_>,
        forced: bool,
        writes: &mut Writes,
        statement_id: Option<i64>,
    ) -> Result<Recorded, Error> {
        let (job, verdict) = (unit.job, &unit.verdict);
        let (state, conflict_id) = (current.state, current.conflict_id);
        if !current.fenced {
            if matches!(verdict, Verdict::Loaded { .. }) {
                heal_after_stale_write(tx, job, statement_id).await?;
            }
            return Ok(Recorded::LeaseLost);
        }
        if job.bypass_breaker {
            sqlx::query("update jobs set bypass_breaker = false where job_id = $1")
                .bind(job.job_id)
                .execute(&mut *tx)
                .await?;
        }
        let current = UnitState::parse(state).unwrap_or(UnitState::Pending);
        let decision = decide(current, conflict_id.is_some(), verdict, forced);
        let scope = self
            .config
            .breaker_scope
            .of(&job.processor_name, &job.table_ref)
            .to_owned();
        match decision.breaker {
            Some(outcome) => {
                self.count_outcome(tx, &scope, outcome, job.probe(), "scheduler")
                    .await?
            }
            None => self.release_probe(tx, &scope, job.probe()).await?,
        }
        let attempt = AttemptRow {
            job,
            decision: &decision,
            verdict,
        };
        if matches!(current, UnitState::Superseded | UnitState::Cancelled) {
            let landed = decision.state == UnitState::Loaded;
            if landed || !matches!(job.state.as_str(), "superseded" | "cancelled") {
                // The attempt did reach the warehouse (the unit was superseded or cancelled
                // while it ran): count it, so the unit does not claim it was never tried, and
                // when it landed, say so: its rows are in the table until the newer unit's
                // replace (which is never sent before this attempt's statement is settled)
                // lands.
                sqlx::query(
                    "update write_units set attempts = $2, updated_at = streamguard_now(), state = $3,
                            loaded_at = case when $3 = 'loaded' then streamguard_now() else loaded_at end
                     where unit_id = $1",
                )
                .bind(job.unit_id)
                .bind(job.attempt)
                .bind(decision.state.as_str())
                .execute(&mut *tx)
                .await?;
            }
            writes.completed.push(job.job_id);
            writes.attempt(&attempt, conflict_id);
            return Ok(Recorded::Superseded);
        }
        let conflict_id = match decision.conflict {
            ConflictStep::Keep => conflict_id,
            ConflictStep::Record(kind) | ConflictStep::GiveUp(kind) => {
                let id = upsert_conflict(tx, job, conflict_id, kind, verdict, decision.job).await?;
                if matches!(decision.conflict, ConflictStep::GiveUp(_)) {
                    close_conflict(tx, id, ResolutionMethod::Timeout, job.attempt, None).await?;
                }
                Some(id)
            }
            ConflictStep::Resolve(method) => {
                if let Some(id) = conflict_id {
                    let rows = match verdict {
                        Verdict::Loaded { rows_inserted } => Some(*rows_inserted),
                        _ => None,
                    };
                    close_conflict(tx, id, method, job.attempt, rows).await?;
                }
                conflict_id
            }
        };
        let next_attempt_at = match decision.job {
            JobStep::RunAt(at) => Some(at),
            JobStep::Complete => None,
        };
        writes.units.push(UnitWrite {
            unit_id: job.unit_id,
            state: decision.state.as_str(),
            attempts: job.attempt,
            next_attempt_at,
            error: verdict.message().map(str::to_owned),
            conflict_id,
        });
        match decision.job {
            JobStep::Complete => writes.completed.push(job.job_id),
            JobStep::RunAt(at) => writes.rescheduled.push((job.job_id, at)),
        }
        if let Some(kind) = decision.alert {
            let message = verdict.message().unwrap_or_default();
            let summary = if decision.state == UnitState::Unresolved {
                format!(
                    "{} gave up on {} key {} after {} attempts: {message}",
                    job.processor_name, job.table_ref, job.key, job.attempt
                )
            } else {
                format!(
                    "{} unit for {} key {} failed: {message}",
                    job.processor_name, job.table_ref, job.key
                )
            };
            alerts::insert(
                tx,
                self,
                kind.as_str(),
                &scope,
                &summary,
                json!({
                    "processor_name": job.processor_name, "table": job.table_ref, "key": job.key,
                    "partition": job.partition_value, "unit_id": job.unit_id, "batch_id": job.batch_id,
                    "conflict_id": conflict_id, "attempts": job.attempt, "error": message,
                    "error_class": verdict.class().map(|c| c.as_str()),
                }),
            )
            .await?;
        }
        writes.attempt(&attempt, conflict_id);
        Ok(Recorded::Applied(decision.state.as_str()))
    }
}

/// A unit's row as locked by the recording: its state, its open conflict, and whether its
/// job is still held by the claim being recorded (the fence).
struct Current<'a> {
    state: &'a str,
    conflict_id: Option<Uuid>,
    fenced: bool,
}

/// A unit's new state, written with the others of its statement in one `update`.
struct UnitWrite {
    unit_id: Uuid,
    state: &'static str,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    error: Option<String>,
    conflict_id: Option<Uuid>,
}

/// The rows one recording writes for all of its units, applied set-based at its end (one
/// statement each for the units, the completed jobs, the rescheduled jobs and the attempt
/// rows) instead of one statement per unit each. The units and jobs are locked already;
/// what each unit's decision wrote meanwhile (conflicts, alerts, the breaker's outcomes)
/// never reads these rows.
#[derive(Default)]
struct Writes {
    units: Vec<UnitWrite>,
    completed: Vec<i64>,
    rescheduled: Vec<(i64, DateTime<Utc>)>,
    attempts: Vec<AttemptValues>,
}

/// The per-unit columns of an attempt row; the statement, replica and times are the
/// recording's.
struct AttemptValues {
    unit_id: Uuid,
    attempt: i32,
    conflict_id: Option<Uuid>,
    outcome: &'static str,
    error_class: Option<&'static str>,
    error_message: Option<String>,
    delay_seconds: Option<i32>,
    next_attempt_at: Option<DateTime<Utc>>,
}

impl Writes {
    fn attempt(&mut self, row: &AttemptRow<'_>, conflict_id: Option<Uuid>) {
        let retry = match (row.verdict, row.decision.outcome) {
            (
                Verdict::Retry {
                    at, delay_seconds, ..
                },
                o,
            ) if o != AttemptOutcome::Superseded => Some((*at, *delay_seconds)),
            _ => None,
        };
        self.attempts.push(AttemptValues {
            unit_id: row.job.unit_id,
            attempt: row.job.attempt,
            conflict_id,
            outcome: row.decision.outcome.as_str(),
            error_class: row.verdict.class().map(|c| c.as_str()),
            error_message: row.verdict.message().map(str::to_owned),
            delay_seconds: retry.map(|r| r.1),
            next_attempt_at: retry.map(|r| r.0),
        });
    }

    async fn apply(
        self,
        tx: &mut sqlx::PgConnection,
        statement: Option<(i64, &str)>,
        log: &AttemptLog,
    ) -> Result<(), Error> {
        if !self.units.is_empty() {
            let u = &self.units;
            sqlx::query(
                "update write_units w set state = c.state, attempts = c.attempts, next_attempt_at = c.next_attempt_at,
                        error = c.error, conflict_id = c.conflict_id, updated_at = streamguard_now(),
                        loaded_at = case when c.state = 'loaded' then streamguard_now() else w.loaded_at end
                 from unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::uuid[])
                      as c(unit_id, state, attempts, next_attempt_at, error, conflict_id)
                 where w.unit_id = c.unit_id",
            )
            .bind(u.iter().map(|w| w.unit_id).collect::<Vec<_>>())
            .bind(u.iter().map(|w| w.state).collect::<Vec<_>>())
            .bind(u.iter().map(|w| w.attempts).collect::<Vec<_>>())
            .bind(u.iter().map(|w| w.next_attempt_at).collect::<Vec<_>>())
            .bind(u.iter().map(|w| w.error.clone()).collect::<Vec<_>>())
            .bind(u.iter().map(|w| w.conflict_id).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !self.completed.is_empty() {
            sqlx::query(
                "update jobs set state = 'completed', completed_at = streamguard_now(), lease_expires_at = null, group_id = null,
                        updated_at = streamguard_now()
                 where job_id = any($1)",
            )
            .bind(&self.completed)
            .execute(&mut *tx)
            .await?;
        }
        if !self.rescheduled.is_empty() {
            sqlx::query(
                "update jobs j set state = 'available', run_at = c.run_at, lease_expires_at = null, locked_by = null,
                        group_id = null, updated_at = streamguard_now()
                 from unnest($1::bigint[], $2::timestamptz[]) as c(job_id, run_at)
                 where j.job_id = c.job_id",
            )
            .bind(self.rescheduled.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(self.rescheduled.iter().map(|r| r.1).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !self.attempts.is_empty() {
            let a = &self.attempts;
            sqlx::query(
                "insert into attempts (unit_id, attempt, conflict_id, outcome, error_class, error_message, delay_seconds,
                                       next_attempt_at, warehouse_job_id, statement_id, replica, started_at, finished_at)
                 select c.unit_id, c.attempt, c.conflict_id, c.outcome, c.error_class, c.error_message, c.delay_seconds,
                        c.next_attempt_at, $9, $10, $11, $12, $13
                 from unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[],
                             $8::timestamptz[])
                      as c(unit_id, attempt, conflict_id, outcome, error_class, error_message, delay_seconds, next_attempt_at)
                 on conflict on constraint attempts_unit_attempt_unique do nothing",
            )
            .bind(a.iter().map(|r| r.unit_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.attempt).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.conflict_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.outcome).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.error_class).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.error_message.clone()).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.delay_seconds).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .bind(statement.map(|s| s.1))
            .bind(statement.map(|s| s.0))
            .bind(&log.replica)
            .bind(log.started_at)
            .bind(log.finished_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// The attempt row of one verdict.
struct AttemptRow<'a> {
    job: &'a ClaimedJob,
    decision: &'a Decision,
    verdict: &'a Verdict,
}

/// A replace landed after its claim was lost: a stalled replica's late write, which may
/// have put this unit's rows over those of a newer unit of the same key that already
/// landed. The warehouse call cannot be recalled, so the newest unit is re-applied: when
/// the newest unit of the key is `loaded`, its job runs again at once (a replace is
/// idempotent). A newer unit still waiting lands later anyway; without a newer unit, the
/// late write wrote this unit's own rows and nothing is stale.
///
/// Nothing is re-applied when the late statement had already been settled as landed
/// before the newest unit's statement was sent: settlement ran it first, so the newest
/// rows are on top (the simulation found such a needless second landing).
async fn heal_after_stale_write(
    tx: &mut sqlx::PgConnection,
    job: &ClaimedJob,
    statement_id: Option<i64>,
) -> Result<(), Error> {
    let healed: Option<Uuid> = sqlx::query_scalar(
        "with newest as (
             select u.unit_id, u.state from write_units u join write_units me on me.unit_id = $1
             where u.table_ref = me.table_ref and u.key = me.key
               and u.partition_value is not distinct from me.partition_value
               and u.seq > me.seq and u.state in ('loaded', 'pending', 'deferred')
             order by u.seq desc limit 1),
         late as (select finished_at from statements where statement_id = $2 and state = 'done'),
         landing as (
             select s.sent_at from newest
             join attempts a on a.unit_id = newest.unit_id and a.outcome = 'loaded'
             join statements s on s.statement_id = a.statement_id
             order by a.attempt desc limit 1)
         update jobs j set state = 'available', run_at = streamguard_now(), lease_expires_at = null, locked_by = null,
                completed_at = null, updated_at = streamguard_now()
         from newest where j.unit_id = newest.unit_id and newest.state = 'loaded' and j.state = 'completed'
           and not exists (select 1 from late, landing where late.finished_at <= landing.sent_at)
         returning j.unit_id",
    )
    .bind(job.unit_id)
    .bind(statement_id)
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

/// Closes conflict `id`: resolved by `method`, or — for `timeout` — left unresolved with
/// the policy's give-up recorded.
async fn close_conflict(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    method: ResolutionMethod,
    attempt: i32,
    rows: Option<u64>,
) -> Result<(), Error> {
    sqlx::query(
        "update conflicts set resolved = $2, resolution_method = $3, resolution_time = streamguard_now(),
                retry_attempt = $4, rows_affected = coalesce($5, rows_affected), updated_at = streamguard_now()
         where conflict_id = $1 and not resolved",
    )
    .bind(id)
    .bind(method != ResolutionMethod::Timeout)
    .bind(method.as_str())
    .bind(attempt)
    .bind(rows.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
    .execute(tx)
    .await?;
    Ok(())
}

/// `game_id` and `game_date` for the seed's columns, when the key (or partition) has them.
pub(super) fn seed_columns(
    key: &Value,
    partition_column: Option<&str>,
    partition_value: Option<&Value>,
) -> (Option<String>, Option<NaiveDate>) {
    let mut identity: Map<String, Value> = key.as_object().cloned().unwrap_or_default();
    if let (Some(column), Some(value)) = (partition_column, partition_value) {
        identity.insert(column.to_owned(), value.clone());
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

/// A conflict to open, with the seed's columns.
pub(super) struct NewConflict<'a> {
    pub processor_name: &'a str,
    pub table_ref: &'a str,
    pub key: &'a Value,
    pub partition_column: Option<&'a str>,
    pub partition_value: Option<&'a Value>,
    pub batch_id: Uuid,
    pub unit_id: Uuid,
    pub kind: ConflictType,
    pub attempt: i32,
    pub max_attempts: i32,
    pub delay_seconds: Option<i32>,
    pub rows: usize,
    pub message: &'a str,
    /// What found it: `scheduler` (a refused attempt) or `partition_hold`.
    pub source: &'a str,
}

/// Opens a conflict; returns its id.
pub(super) async fn insert_conflict(
    tx: &mut sqlx::PgConnection,
    c: &NewConflict<'_>,
) -> Result<Uuid, Error> {
    let id = Uuid::new_v4();
    let (game_id, game_date) = seed_columns(c.key, c.partition_column, c.partition_value);
    sqlx::query(
        "insert into conflicts (conflict_id, processor_name, table_ref, key, partition_value, game_id, game_date, unit_id,
                                conflict_type, retry_attempt, max_retries, delay_seconds, rows_affected, error_message, details)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id)
    .bind(c.processor_name)
    .bind(c.table_ref)
    .bind(c.key)
    .bind(c.partition_value)
    .bind(game_id)
    .bind(game_date)
    .bind(c.unit_id)
    .bind(c.kind.as_str())
    .bind(c.attempt)
    .bind(c.max_attempts)
    .bind(c.delay_seconds)
    .bind(i32::try_from(c.rows).unwrap_or(i32::MAX))
    .bind(c.message)
    .bind(json!({"batch_id": c.batch_id, "partition_column": c.partition_column, "source": c.source}))
    .execute(tx)
    .await?;
    Ok(id)
}

async fn upsert_conflict(
    tx: &mut sqlx::PgConnection,
    job: &ClaimedJob,
    existing: Option<Uuid>,
    kind: ConflictType,
    verdict: &Verdict,
    step: JobStep,
) -> Result<Uuid, Error> {
    let message = verdict.message().unwrap_or_default();
    let delay_seconds = match (verdict, step) {
        (Verdict::Retry { delay_seconds, .. }, JobStep::RunAt(_)) => Some(*delay_seconds),
        _ => None,
    };
    if let Some(id) = existing {
        sqlx::query(
            "update conflicts set conflict_type = $2, retry_attempt = $3, delay_seconds = $4, error_message = $5,
                    updated_at = streamguard_now() where conflict_id = $1",
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
    insert_conflict(
        tx,
        &NewConflict {
            processor_name: &job.processor_name,
            table_ref: &job.table_ref,
            key: &job.key,
            partition_column: job.partition_column.as_deref(),
            partition_value: job.partition_value.as_ref(),
            batch_id: job.batch_id,
            unit_id: job.unit_id,
            kind,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            delay_seconds,
            rows: job.rows.as_array().map_or(0, Vec::len),
            message,
            source: "scheduler",
        },
    )
    .await
}
