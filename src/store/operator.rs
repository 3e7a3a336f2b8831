//! Operator actions on conflicts and units, and conflicts reported by processors.
//!
//! Every operator action is one transaction that changes the unit, its job and its
//! conflict together and records who did it, when and why — in `operator_actions` and
//! appended to the conflict's `details.operator_actions`, so the conflict log shows it.
//! A force-mode attempt is claimed here like a scheduler claim (one fenced statement) and
//! then run and recorded by the scheduler's own code.
//!
//! Processors that write to BigQuery themselves report their conflicts: with `rows` the
//! service takes the write over (a batch of one unit, first attempt after the delay, stored
//! in the same transaction as the conflict);
//! without, the processor logs each attempt and ends the conflict itself, and a conflict
//! it never ends is closed as `timeout` after the retry horizon.
//!
//! Why it is long (about 850 lines): every write of the conflict log outside the scheduler —
//! each operator action and each processor report is one fenced transaction — sits here
//! beside the helpers they share (`Report`, `ActionResult`, the recorded action), so the
//! rules that guard them can be read side by side.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::batches::UnitView;
use super::jobs::ClaimedJob;
use super::{alerts, Error, Store, JOBS_CHANNEL};
use crate::domain::breaker::{Outcome, Probe};
use crate::domain::{ConflictType, ValidatedBatch};

/// The probe identity of a processor's own outcomes: never a half-open permit holder.
const PROCESSOR_PROBE: Probe = Probe {
    job_id: 0,
    attempt: 0,
};

/// A conflict's unit as an operator action sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Target {
    /// The conflict.
    pub conflict_id: Uuid,
    /// Whether it is resolved.
    pub resolved: bool,
    /// How it ended, if it did.
    pub resolution_method: Option<String>,
    /// `scheduler` (the service's own) or `processor` (reported).
    pub source: String,
    /// Who sent the unit.
    pub processor_name: String,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// The partition value, if any.
    pub partition: Option<Value>,
    /// The batch's partition column, if any.
    pub partition_column: Option<String>,
    /// The unit (none for a processor-kept conflict).
    pub unit_id: Option<Uuid>,
    /// The unit's state.
    pub unit_state: Option<String>,
    /// Rows the unit would write.
    pub row_count: Option<i32>,
    /// The unit's job state: `available`, `running` (with a live lease) or `completed`.
    pub job_state: Option<String>,
    /// A newer unit of the same table and key exists (so writing this one would put stale
    /// rows over fresh ones).
    pub superseded_by_newer: bool,
}

/// What an operator action did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionResult {
    /// `retry`, `resolve`, `force` or `cancel`.
    pub action: &'static str,
    /// The conflict, when the action was on one.
    pub conflict_id: Option<Uuid>,
    /// The unit.
    pub unit_id: Option<Uuid>,
    /// The unit's state afterwards.
    pub unit_state: Option<String>,
    /// When the unit is attempted next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// A conflict a processor reports (`POST /v1/conflicts`), validated by the HTTP layer.
#[derive(Debug, Clone)]
pub struct Report {
    /// Who hit it.
    pub processor_name: String,
    /// Target table, `project.dataset.table`.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// Partition column and value, if any.
    pub partition: Option<(String, Value)>,
    /// Why BigQuery refused.
    pub conflict_type: ConflictType,
    /// BigQuery's message.
    pub error_message: String,
    /// The processor's attempt number so far (default 1).
    pub retry_attempt: i32,
    /// The delay the processor chose before its next attempt, seconds.
    pub delay_seconds: Option<i32>,
    /// The processor's own attempt budget, when it has one (the seed's `max_retries`).
    pub max_retries: Option<i32>,
    /// Rows the write would affect.
    pub rows_affected: Option<i32>,
    /// Free-form details.
    pub details: Option<Value>,
}

impl Store {
    /// The conflict `conflict_id` with its unit and job; `None` when unknown.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn operator_target(&self, conflict_id: Uuid) -> Result<Option<Target>, Error> {
        Ok(sqlx::query_as(TARGET)
            .bind(conflict_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// `POST /v1/conflicts/{id}/retry`: the unit's job is due now, ignoring backoff (and
    /// the breaker once, when `ignore_breaker`). A unit the policy gave up on gets one
    /// more attempt and its conflict is open again.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Refused`] when the conflict is resolved or kept by
    /// its processor, the unit superseded or cancelled, or an attempt is in flight.
    pub async fn retry_conflict(
        &self,
        conflict_id: Uuid,
        ignore_breaker: bool,
        actor: &str,
        reason: &str,
    ) -> Result<ActionResult, Error> {
        let mut tx = self.pool.begin().await?;
        let t = lock_target(&mut tx, conflict_id).await?;
        let unit_id = t.unit_id.ok_or_else(|| Error::Refused(format!(
            "conflict {conflict_id} is kept by its processor (reported without rows); the processor retries it"
        )))?;
        refuse_unless_open(&t)?;
        let moved = sqlx::query(
            "update jobs set state = 'available', run_at = streamguard_now(), bypass_breaker = $2,
                    max_attempts = greatest(max_attempts, attempt + 1), lease_expires_at = null,
                    locked_by = null, updated_at = streamguard_now()
             where unit_id = $1 and state <> 'running'",
        )
        .bind(unit_id)
        .bind(ignore_breaker)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Err(Error::Refused(format!(
                "an attempt of unit {unit_id} is in flight; wait for it to end"
            )));
        }
        sqlx::query(
            "update write_units set state = 'deferred', next_attempt_at = streamguard_now(), updated_at = streamguard_now()
             where unit_id = $1",
        )
        .bind(unit_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update conflicts set resolution_method = null, resolution_time = null, updated_at = streamguard_now()
             where conflict_id = $1 and not resolved",
        )
        .bind(conflict_id)
        .execute(&mut *tx)
        .await?;
        // "Now" means now: the unit's partition, held after a streaming-buffer refusal,
        // is let into groups again (its other units keep their own times).
        sqlx::query(
            "delete from partition_holds h using write_units u
             where u.unit_id = $1 and h.table_ref = u.table_ref and h.partition_value = u.partition_value",
        )
        .bind(unit_id)
        .execute(&mut *tx)
        .await?;
        log_action(
            &mut tx,
            "retry",
            Some(conflict_id),
            Some(unit_id),
            actor,
            reason,
            json!({"ignore_breaker": ignore_breaker}),
        )
        .await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        self.action_result("retry", Some(conflict_id), unit_id, actor, reason)
            .await
    }

    /// `POST /v1/conflicts/{id}/resolve`: marks the conflict resolved with `method`
    /// (`manual`, or `auto_retry` for a processor that landed its own retry). A unit the
    /// service still retries is cancelled: the operator fixed it by hand, so the service
    /// must not write over the fix.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Refused`] when already resolved or an attempt is in
    /// flight.
    pub async fn resolve_conflict(
        &self,
        conflict_id: Uuid,
        method: &str,
        note: &str,
        actor: &str,
    ) -> Result<ActionResult, Error> {
        let mut tx = self.pool.begin().await?;
        let t = lock_target(&mut tx, conflict_id).await?;
        if t.resolved {
            return Err(Error::Refused(format!(
                "conflict {conflict_id} is already resolved ({})",
                t.resolution_method.as_deref().unwrap_or("?")
            )));
        }
        if let Some(unit_id) = t.unit_id {
            stop_unit(&mut tx, unit_id, &t).await?;
        }
        sqlx::query(
            "update conflicts set resolved = true, resolution_method = $2, resolution_time = streamguard_now(), updated_at = streamguard_now()
             where conflict_id = $1",
        )
        .bind(conflict_id)
        .bind(method)
        .execute(&mut *tx)
        .await?;
        if t.source == "processor" && t.unit_id.is_none() && method == "auto_retry" {
            let scope = self.scope_of(&t.processor_name, &t.table);
            self.count_outcome(
                &mut tx,
                &scope,
                Outcome::Landed,
                PROCESSOR_PROBE,
                "processor",
            )
            .await?;
        }
        log_action(
            &mut tx,
            "resolve",
            Some(conflict_id),
            t.unit_id,
            actor,
            note,
            json!({"method": method}),
        )
        .await?;
        tx.commit().await?;
        match t.unit_id {
            Some(unit_id) => {
                self.action_result("resolve", Some(conflict_id), unit_id, actor, note)
                    .await
            }
            None => Ok(ActionResult {
                action: "resolve",
                conflict_id: Some(conflict_id),
                unit_id: None,
                unit_state: None,
                next_attempt_at: None,
                actor: actor.to_owned(),
                reason: note.to_owned(),
            }),
        }
    }

    /// `POST /v1/units/{id}/cancel`: the unit is never attempted again; its open conflict
    /// is closed as `manual` (an operator decided).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Refused`] when the unit already landed or ended, or an
    /// attempt is in flight.
    pub async fn cancel_unit(
        &self,
        unit_id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<ActionResult, Error> {
        let mut tx = self.pool.begin().await?;
        let conflict_id: Option<Option<Uuid>> =
            sqlx::query_scalar("select conflict_id from write_units where unit_id = $1 for update")
                .bind(unit_id)
                .fetch_optional(&mut *tx)
                .await?;
        let conflict_id =
            conflict_id.ok_or_else(|| Error::NotFound(format!("no unit {unit_id}")))?;
        // The job too, in the writers' order (unit, then job): a claim committing now is
        // waited for and then seen as an attempt in flight, not cancelled under its feet.
        sqlx::query("select 1 from jobs where unit_id = $1 for update")
            .bind(unit_id)
            .execute(&mut *tx)
            .await?;
        let t: Target = sqlx::query_as(TARGET_BY_UNIT)
            .bind(unit_id)
            .fetch_one(&mut *tx)
            .await?;
        stop_unit(&mut tx, unit_id, &t).await?;
        if let Some(id) = conflict_id {
            sqlx::query(
                "update conflicts set resolved = true, resolution_method = 'manual', resolution_time = streamguard_now(), updated_at = streamguard_now()
                 where conflict_id = $1 and not resolved",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        log_action(
            &mut tx,
            "cancel",
            conflict_id,
            Some(unit_id),
            actor,
            reason,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        self.action_result("cancel", conflict_id, unit_id, actor, reason)
            .await
    }

    /// The table a unit is written to; `None` for an unknown unit.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn unit_table(&self, unit_id: Uuid) -> Result<Option<String>, Error> {
        Ok(
            sqlx::query_scalar("select table_ref from write_units where unit_id = $1")
                .bind(unit_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Claims the conflict's job for a force-mode attempt by `replica` (one fenced
    /// statement, like a scheduler claim; the operator's attempt counts like any other),
    /// and records the action. The caller runs and records the attempt.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Refused`] when the conflict is resolved or kept by
    /// its processor, the unit superseded (or a newer unit of the key exists), or an
    /// attempt is in flight.
    pub async fn claim_for_force(
        &self,
        conflict_id: Uuid,
        replica: &str,
        lease: std::time::Duration,
        actor: &str,
        reason: &str,
    ) -> Result<ClaimedJob, Error> {
        let mut tx = self.pool.begin().await?;
        let t = lock_target(&mut tx, conflict_id).await?;
        let unit_id = t.unit_id.ok_or_else(|| Error::Refused(format!(
            "conflict {conflict_id} is kept by its processor (reported without rows); the service holds no rows to force"
        )))?;
        refuse_unless_open(&t)?;
        let job_id: Option<i64> = sqlx::query_scalar(
            "update jobs set state = 'running', attempt = attempt + 1, max_attempts = greatest(max_attempts, attempt + 1),
                    lease_expires_at = streamguard_now() + make_interval(secs => $2), locked_by = $3, updated_at = streamguard_now()
             where unit_id = $1 and (state <> 'running' or lease_expires_at <= streamguard_now())
             returning job_id",
        )
        .bind(unit_id)
        .bind(lease.as_secs_f64())
        .bind(replica)
        .fetch_optional(&mut *tx)
        .await?;
        let job_id = job_id.ok_or_else(|| {
            Error::Refused(format!(
                "an attempt of unit {unit_id} is in flight; wait for it to end"
            ))
        })?;
        log_action(
            &mut tx,
            "force",
            Some(conflict_id),
            Some(unit_id),
            actor,
            reason,
            json!({"dry_run": false}),
        )
        .await?;
        tx.commit().await?;
        self.load_claimed(&[job_id])
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("job {job_id} vanished")))
    }

    /// Checks what a force would be refused for, without changing anything.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Refused`] as [`Store::claim_for_force`].
    pub async fn check_force(&self, conflict_id: Uuid) -> Result<Target, Error> {
        let t = self
            .operator_target(conflict_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))?;
        if t.unit_id.is_none() {
            return Err(Error::Refused(format!(
                "conflict {conflict_id} is kept by its processor (reported without rows); the service holds no rows to force"
            )));
        }
        refuse_unless_open(&t)?;
        if t.job_state.as_deref() == Some("running") {
            return Err(Error::Refused(
                "an attempt is in flight; wait for it to end".into(),
            ));
        }
        Ok(t)
    }

    /// `POST /v1/conflicts`: logs a processor's conflict with the seed's columns, counts
    /// it for the breaker. With `batch` (the processor handed its rows over), the batch's
    /// single unit carries the conflict and is retried by the service from `first_attempt_at`.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::IdempotencyMismatch`], [`Error::Invalid`] when the rows
    /// do not form exactly one unit of the reported key.
    pub async fn report_conflict(
        &self,
        report: &Report,
        batch: Option<(&ValidatedBatch, &[u8], u32, DateTime<Utc>)>,
    ) -> Result<(Uuid, Option<Uuid>), Error> {
        // One transaction: the batch, its unit, the conflict and the breaker outcome land
        // together, and the scheduler cannot attempt the unit before it carries its conflict.
        let mut tx = self.pool.begin().await?;
        let unit_id = match batch {
            Some((batch, hash, max_attempts, at)) => {
                // Compared in the units' canonical spelling, so `1.0` names the key `1` does.
                let key: Option<serde_json::Map<String, Value>> = report.key.as_object().map(|m| {
                    m.iter()
                        .map(|(c, v)| (c.clone(), crate::domain::batch::canonical(v)))
                        .collect()
                });
                let partition = report
                    .partition
                    .as_ref()
                    .map(|p| crate::domain::batch::canonical(&p.1));
                let matches = batch.units.len() == 1
                    && key.as_ref() == Some(&batch.units[0].key)
                    && partition.as_ref() == batch.units[0].partition.as_ref();
                if !matches {
                    return Err(Error::Invalid(
                        "/rows".into(),
                        "every row must carry the reported key (and partition): the rows form one write unit".into(),
                    ));
                }
                let intake = self
                    .insert_batch_in(&mut tx, batch, hash, max_attempts, Some(at))
                    .await?;
                let (unit, existing): (Uuid, Option<Uuid>) = sqlx::query_as(
                    "select unit_id, conflict_id from write_units where batch_id = $1",
                )
                .bind(intake.batch_id)
                .fetch_one(&mut *tx)
                .await?;
                // The same report re-posted with its idempotency key: nothing new.
                if let (true, Some(conflict_id)) = (intake.replayed, existing) {
                    return Ok((conflict_id, Some(unit)));
                }
                Some((unit, at, max_attempts))
            }
            None => None,
        };
        let conflict_id = Uuid::new_v4();
        let (game_id, game_date) = super::record::seed_columns(
            &report.key,
            report.partition.as_ref().map(|(c, _)| c.as_str()),
            report.partition.as_ref().map(|(_, v)| v),
        );
        let partition_column = report.partition.as_ref().map(|p| p.0.clone());
        sqlx::query(
            "insert into conflicts (conflict_id, processor_name, table_ref, key, partition_value, game_id, game_date, unit_id,
                                    conflict_type, retry_attempt, max_retries, delay_seconds, rows_affected, error_message,
                                    details, source)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'processor')",
        )
        .bind(conflict_id)
        .bind(&report.processor_name)
        .bind(&report.table)
        .bind(&report.key)
        .bind(report.partition.as_ref().map(|p| &p.1))
        .bind(game_id)
        .bind(game_date)
        .bind(unit_id.map(|u| u.0))
        .bind(report.conflict_type.as_str())
        .bind(report.retry_attempt)
        .bind(
            unit_id
                .map(|u| i32::try_from(u.2).unwrap_or(i32::MAX))
                .or(report.max_retries)
                .unwrap_or(0),
        )
        .bind(report.delay_seconds)
        .bind(report.rows_affected)
        .bind(&report.error_message)
        .bind(json!({
            "source": "processor",
            "partition_column": partition_column,
            "reported": report.details,
            "taken_over": unit_id.is_some(),
        }))
        .execute(&mut *tx)
        .await?;
        if let Some((unit, at, _)) = unit_id {
            sqlx::query(
                "update write_units set conflict_id = $2, state = 'deferred', next_attempt_at = $3, updated_at = streamguard_now()
                 where unit_id = $1 and state = 'pending'",
            )
            .bind(unit)
            .bind(conflict_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        let scope = self.scope_of(&report.processor_name, &report.table);
        self.count_outcome(
            &mut tx,
            &scope,
            Outcome::Conflict,
            PROCESSOR_PROBE,
            "processor",
        )
        .await?;
        tx.commit().await?;
        Ok((conflict_id, unit_id.map(|u| u.0)))
    }

    /// `POST /v1/conflicts/{id}/attempts`: the processor tried again and hit the conflict
    /// again. Counted for the breaker.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Refused`] when the conflict is the service's, or ended.
    pub async fn report_attempt(
        &self,
        conflict_id: Uuid,
        retry_attempt: Option<i32>,
        delay_seconds: Option<i32>,
        error_message: Option<&str>,
    ) -> Result<i32, Error> {
        let mut tx = self.pool.begin().await?;
        let t = lock_target(&mut tx, conflict_id).await?;
        if t.unit_id.is_some() || t.source != "processor" {
            return Err(Error::Refused(format!(
                "conflict {conflict_id} is retried by the service; its attempts are logged by the service"
            )));
        }
        if t.resolved || t.resolution_method.is_some() {
            return Err(Error::Refused(format!(
                "conflict {conflict_id} has ended ({})",
                t.resolution_method.as_deref().unwrap_or("resolved")
            )));
        }
        let attempt: i32 = sqlx::query_scalar(
            "update conflicts set retry_attempt = coalesce($2, retry_attempt + 1), delay_seconds = coalesce($3, delay_seconds),
                    error_message = coalesce($4, error_message), updated_at = streamguard_now()
             where conflict_id = $1 returning retry_attempt",
        )
        .bind(conflict_id)
        .bind(retry_attempt)
        .bind(delay_seconds)
        .bind(error_message)
        .fetch_one(&mut *tx)
        .await?;
        let scope = self.scope_of(&t.processor_name, &t.table);
        self.count_outcome(
            &mut tx,
            &scope,
            Outcome::Conflict,
            PROCESSOR_PROBE,
            "processor",
        )
        .await?;
        tx.commit().await?;
        Ok(attempt)
    }

    /// Closes as `timeout` the processor-kept conflicts that were not ended within the
    /// retry horizon, each with its alert, in one transaction. Returns how many.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn close_stale_reported_conflicts(&self) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        let closed: Vec<(Uuid, String, String, Value, i32)> = sqlx::query_as(
            "update conflicts set resolution_method = 'timeout', resolution_time = streamguard_now(), updated_at = streamguard_now()
             where conflict_id in (
                 select conflict_id from conflicts
                 where source = 'processor' and unit_id is null and not resolved and resolution_method is null
                   and updated_at < streamguard_now() - make_interval(secs => $1)
                 for update skip locked)
             returning conflict_id, processor_name, table_ref, key, retry_attempt",
        )
        .bind(self.config.retry_horizon.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        for (conflict_id, processor, table, key, attempts) in &closed {
            let scope = self.scope_of(processor, table);
            alerts::insert(
                &mut tx,
                self,
                "conflict_timeout",
                &scope,
                &format!(
                    "{processor} never ended its conflict on {table} key {key} within the retry horizon ({attempts} attempts reported)"
                ),
                json!({"conflict_id": conflict_id, "processor_name": processor, "table": table, "key": key,
                       "attempts": attempts, "source": "processor"}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(closed.len() as u64)
    }

    /// One unit's current state; `None` when unknown.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn unit(&self, unit_id: Uuid) -> Result<Option<UnitView>, Error> {
        Ok(sqlx::query_as(
            "select unit_id, key, partition_value, state, row_count, attempts, conflict_id, next_attempt_at, error
             from write_units where unit_id = $1",
        )
        .bind(unit_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    fn scope_of(&self, processor: &str, table: &str) -> String {
        self.config.breaker_scope.of(processor, table).to_owned()
    }

    async fn action_result(
        &self,
        action: &'static str,
        conflict_id: Option<Uuid>,
        unit_id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<ActionResult, Error> {
        let (state, next): (String, Option<DateTime<Utc>>) =
            sqlx::query_as("select state, next_attempt_at from write_units where unit_id = $1")
                .bind(unit_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(ActionResult {
            action,
            conflict_id,
            unit_id: Some(unit_id),
            unit_state: Some(state),
            next_attempt_at: next,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

const TARGET: &str = "select c.conflict_id, c.resolved, c.resolution_method, c.source, c.processor_name,
        c.table_ref as \"table\", c.key, c.partition_value as partition,
        coalesce(b.partition_column, c.details ->> 'partition_column') as partition_column,
        c.unit_id, u.state as unit_state, u.row_count,
        case when j.state = 'running' and j.lease_expires_at <= streamguard_now() then 'available' else j.state end as job_state,
        coalesce(u.state = 'superseded' or exists (
            select 1 from write_units n where n.table_ref = u.table_ref and n.key = u.key
              and n.partition_value is not distinct from u.partition_value and n.seq > u.seq
              and n.state <> 'cancelled'), false) as superseded_by_newer
     from conflicts c left join write_units u on u.unit_id = c.unit_id left join jobs j on j.unit_id = c.unit_id
     left join batches b on b.batch_id = u.batch_id
     where c.conflict_id = $1";

const TARGET_BY_UNIT: &str = "select coalesce(c.conflict_id, '00000000-0000-0000-0000-000000000000'::uuid) as conflict_id,
        coalesce(c.resolved, false) as resolved, c.resolution_method, coalesce(c.source, 'scheduler') as source,
        b.processor_name, u.table_ref as \"table\", u.key, u.partition_value as partition,
        b.partition_column, u.unit_id,
        u.state as unit_state, u.row_count,
        case when j.state = 'running' and j.lease_expires_at <= streamguard_now() then 'available' else j.state end as job_state,
        false as superseded_by_newer
     from write_units u join batches b using (batch_id) join jobs j on j.unit_id = u.unit_id
     left join conflicts c on c.conflict_id = u.conflict_id
     where u.unit_id = $1";

/// Locks the conflict with its unit and job, in the order every writer uses (write_units,
/// jobs, conflicts — as recording an attempt does), and reads them.
async fn lock_target(tx: &mut sqlx::PgConnection, conflict_id: Uuid) -> Result<Target, Error> {
    let unit: Option<Option<Uuid>> =
        sqlx::query_scalar("select unit_id from conflicts where conflict_id = $1")
            .bind(conflict_id)
            .fetch_optional(&mut *tx)
            .await?;
    let unit = unit.ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))?;
    if let Some(unit_id) = unit {
        sqlx::query("select 1 from write_units where unit_id = $1 for update")
            .bind(unit_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("select 1 from jobs where unit_id = $1 for update")
            .bind(unit_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("select 1 from conflicts where conflict_id = $1 for update")
        .bind(conflict_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query_as(TARGET)
        .bind(conflict_id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))
}

/// Refuses an action on a conflict that ended or a unit that must not be written.
fn refuse_unless_open(t: &Target) -> Result<(), Error> {
    if t.superseded_by_newer {
        return Err(Error::Refused(format!(
            "a newer batch superseded unit {} of {} key {}: writing it would put stale rows over fresh ones",
            t.unit_id.map(|u| u.to_string()).unwrap_or_default(),
            t.table,
            t.key
        )));
    }
    if t.resolved {
        return Err(Error::Refused(format!(
            "conflict {} is already resolved ({})",
            t.conflict_id,
            t.resolution_method.as_deref().unwrap_or("?")
        )));
    }
    match t.unit_state.as_deref() {
        Some("loaded") => Err(Error::Refused("the unit has already landed".into())),
        Some("cancelled") => Err(Error::Refused("the unit was cancelled".into())),
        _ => Ok(()),
    }
}

/// Stops a not-landed unit: `cancelled`, its waiting job completed. Refused while an
/// attempt is in flight, or when the unit already ended.
async fn stop_unit(tx: &mut sqlx::PgConnection, unit_id: Uuid, t: &Target) -> Result<(), Error> {
    if let Some(done @ ("loaded" | "superseded" | "cancelled")) = t.unit_state.as_deref() {
        return Err(Error::Refused(format!("unit {unit_id} is already {done}")));
    }
    if t.job_state.as_deref() == Some("running") {
        return Err(Error::Refused(format!(
            "an attempt of unit {unit_id} is in flight; wait for it to end"
        )));
    }
    // A statement that carried the unit and landed — or may still land — wrote (or may
    // write) its rows: cancelling it then would say it was not written when it was.
    let landing: Option<(String, String)> = sqlx::query_as(
        "select s.job_id, s.state from statement_units su join statements s using (statement_id)
         where su.unit_id = $1
           and (s.state in ('sent', 'running', 'unknown')
                or (s.state = 'done' and not exists (
                        select 1 from attempts a
                        where a.statement_id = s.statement_id and a.unit_id = su.unit_id
                          and a.outcome = 'loaded')))
         order by s.statement_id desc limit 1",
    )
    .bind(unit_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((job_id, state)) = landing {
        return Err(Error::Refused(if state == "done" {
            format!(
                "unit {unit_id} already landed in statement {job_id} (its verdict is recorded when the unit is next claimed, which writes nothing again), so it cannot be stopped — see GET /v1/statements/{job_id}"
            )
        } else {
            format!(
                "statement {job_id}, which carried unit {unit_id}, may still land (the warehouse could not say it will not); try again once it is settled — see GET /v1/statements/{job_id}"
            )
        }));
    }
    let stopped = sqlx::query(
        "update jobs set state = 'completed', completed_at = streamguard_now(), lease_expires_at = null, updated_at = streamguard_now()
         where unit_id = $1 and (state <> 'running' or lease_expires_at <= streamguard_now())",
    )
    .bind(unit_id)
    .execute(&mut *tx)
    .await?;
    if stopped.rows_affected() != 1 {
        return Err(Error::Refused(format!(
            "an attempt of unit {unit_id} is in flight; wait for it to end"
        )));
    }
    sqlx::query(
        "update write_units set state = 'cancelled', next_attempt_at = null, updated_at = streamguard_now() where unit_id = $1",
    )
    .bind(unit_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records an operator action, and appends it to the conflict's `details.operator_actions`.
async fn log_action(
    tx: &mut sqlx::PgConnection,
    action: &str,
    conflict_id: Option<Uuid>,
    unit_id: Option<Uuid>,
    actor: &str,
    reason: &str,
    details: Value,
) -> Result<(), Error> {
    let at: DateTime<Utc> = sqlx::query_scalar(
        "insert into operator_actions (action, conflict_id, unit_id, actor, reason, details)
         values ($1, $2, $3, $4, $5, $6) returning created_at",
    )
    .bind(action)
    .bind(conflict_id)
    .bind(unit_id)
    .bind(actor)
    .bind(reason)
    .bind(&details)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(id) = conflict_id {
        let entry = json!({"action": action, "actor": actor, "reason": reason, "at": at, "details": details});
        sqlx::query(
            "update conflicts set details = coalesce(details, '{}'::jsonb)
                    || jsonb_build_object('operator_actions', coalesce(details -> 'operator_actions', '[]'::jsonb) || $2),
                    updated_at = streamguard_now()
             where conflict_id = $1",
        )
        .bind(id)
        .bind(Value::Array(vec![entry]))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn notify(tx: &mut sqlx::PgConnection) -> Result<(), Error> {
    sqlx::query("select pg_notify($1, 'operator')")
        .bind(JOBS_CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}
