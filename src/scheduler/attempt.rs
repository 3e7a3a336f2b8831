//! One attempt: ask the breaker, call the warehouse under a renewed lease, turn the result
//! into a [`Verdict`] with the retry policy, and record it (fenced).
//!
//! While the scope's breaker is open the claimed job is put back untouched (its claim is
//! not counted as an attempt; see [`crate::store::Store::defer_for_breaker`]).

use chrono::Utc;
use rand::Rng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Scheduler;
use crate::domain::breaker::Admission;
use crate::domain::{ColumnName, ErrorClass, TableRef};
use crate::store::jobs::{AttemptLog, ClaimedJob, Recorded, Verdict};
use crate::warehouse::{self, WriteUnit};

impl Scheduler {
    /// Runs one claimed job's attempt and records it. Never fails: every outcome is
    /// recorded or, when Postgres is unreachable, logged (the lease then expires and the
    /// job is claimed again).
    #[tracing::instrument(skip_all, fields(unit_id = %job.unit_id, batch_id = %job.batch_id, attempt = job.attempt, table = %job.table_ref))]
    pub(super) async fn attempt(&self, job: ClaimedJob) {
        if job.state == "pending" || job.state == "deferred" {
            if let Some(at) = self.breaker_defers(&job).await {
                match self.store.defer_for_breaker(&job, at).await {
                    Ok(true) => {
                        tracing::info!(next_attempt_at = %at, "breaker open: job re-scheduled, not attempted")
                    }
                    Ok(false) => {
                        tracing::warn!("lease lost before the breaker deferral was recorded")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "re-scheduling for the breaker failed; the job is claimed again when its lease expires")
                    }
                }
                return;
            }
        }
        self.attempt_and_record(job, false).await;
    }

    /// `Some(at)` when the breaker of the job's scope is open and the job must wait until
    /// `at`; `None` when it may run (closed, disabled, the probe, or an operator's bypass).
    async fn breaker_defers(&self, job: &ClaimedJob) -> Option<chrono::DateTime<Utc>> {
        if job.bypass_breaker {
            return None;
        }
        let scope = self
            .store
            .config()
            .breaker_scope
            .of(&job.processor_name, &job.table_ref);
        match self.store.admit(scope, job.probe()).await {
            Ok(Admission::Run) => None,
            Ok(Admission::Probe) => {
                tracing::info!(scope, "breaker half-open: this attempt is the probe");
                None
            }
            Ok(Admission::Defer(at)) => Some(at),
            Err(e) => {
                // Without the breaker's answer, be conservative: wait one lease and ask again.
                tracing::error!(error = %e, "reading the breaker failed; job re-scheduled");
                Some(
                    Utc::now()
                        + chrono::Duration::from_std(self.settings.lease).unwrap_or_default(),
                )
            }
        }
    }

    /// Runs the attempt (no breaker check) and records it; `forced` marks an operator's
    /// force-mode attempt. Returns the verdict and what recording did (`None`: recording
    /// failed, logged).
    pub(crate) async fn attempt_and_record(
        &self,
        job: ClaimedJob,
        forced: bool,
    ) -> Option<(Verdict, Recorded)> {
        let started_at = Utc::now();
        let result = if job.state == "superseded" || job.state == "cancelled" {
            Err(warehouse::Error::Permanent {
                message: format!("{} before this attempt", job.state),
            })
        } else {
            match write_unit(&job) {
                Ok((table, unit)) => self.replace_under_lease(&job, &table, unit).await,
                Err(e) => Err(e),
            }
        };
        let verdict = self.verdict(&job, result).await;
        let log = AttemptLog {
            replica: self.settings.replica.clone(),
            started_at,
            finished_at: Utc::now(),
        };
        let recorded = self
            .store
            .record_attempt(&job, &verdict, &log, forced)
            .await;
        match &recorded {
            Ok(Recorded::Applied(state)) => match &verdict {
                Verdict::Loaded { rows_inserted, .. } => {
                    tracing::info!(state, rows = rows_inserted, "unit loaded")
                }
                Verdict::Retry {
                    class,
                    at,
                    delay_seconds,
                    message,
                } => tracing::info!(
                    state, class = class.as_str(), next_attempt_at = %at, delay_seconds, error = %message,
                    "unit deferred"
                ),
                Verdict::GiveUp { class, message } => {
                    tracing::warn!(state, class = class.as_str(), error = %message, "unit given up")
                }
            },
            Ok(Recorded::Superseded) => {
                tracing::info!("unit was superseded during its attempt; nothing rescheduled")
            }
            Ok(Recorded::LeaseLost) => {
                tracing::warn!("lease lost during the attempt (another replica re-claimed the job); result dropped")
            }
            Err(e) => {
                tracing::error!(error = %e, "recording the attempt failed; the job is claimed again when its lease expires")
            }
        }
        recorded.ok().map(|r| (verdict, r))
    }

    /// Calls the warehouse while a background task renews the lease every third of it.
    async fn replace_under_lease(
        &self,
        job: &ClaimedJob,
        table: &TableRef,
        unit: WriteUnit,
    ) -> Result<warehouse::ReplaceOutcome, warehouse::Error> {
        // The claim may be old by now (a stalled process, a starved pool): confirm the lease
        // just before the call, so a replica that lost its job does not write at all. What
        // this cannot stop — a stall between here and BigQuery — is healed when recording
        // finds the lease lost (see `Store::record_attempt`).
        match self
            .store
            .renew_lease(job.job_id, job.attempt, self.settings.lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(warehouse::Error::Transient {
                    message: "the job's lease was lost before the warehouse call; nothing was sent"
                        .into(),
                })
            }
            Err(e) => {
                return Err(warehouse::Error::Transient {
                    message: format!(
                        "could not confirm the job's lease before the warehouse call: {e}"
                    ),
                })
            }
        }
        let stop = CancellationToken::new();
        let renewer = {
            let (store, stop, lease) = (self.store.clone(), stop.clone(), self.settings.lease);
            let (job_id, attempt) = (job.job_id, job.attempt);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(lease / 3) => {}
                    }
                    match store.renew_lease(job_id, attempt, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job_id, attempt, "lease lost while the warehouse works");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(job_id, error = %e, "renewing the lease failed; trying again")
                        }
                    }
                }
            })
        };
        // Cancels the renewer even when this future is dropped (an aborted attempt at
        // shutdown): a leaked renewer would keep a dead attempt's lease alive for ever.
        let _stop_on_drop = stop.clone().drop_guard();
        let job_id = format!("streamguard-{}", uuid::Uuid::new_v4());
        let result = self
            .warehouse
            .replace(table, &job_id, std::slice::from_ref(&unit))
            .await;
        stop.cancel();
        let _ = renewer.await;
        result
    }

    /// Turns the warehouse's answer into a verdict with the retry policy. For a
    /// streaming-buffer refusal, the next attempt is not placed before the buffer can
    /// have drained, when the warehouse knows that.
    async fn verdict(
        &self,
        job: &ClaimedJob,
        result: Result<warehouse::ReplaceOutcome, warehouse::Error>,
    ) -> Verdict {
        let error = match result {
            Ok(outcome) => {
                return Verdict::Loaded {
                    rows_inserted: outcome.rows_inserted,
                    warehouse_job_id: None,
                };
            }
            Err(e) => e,
        };
        let class = error.class();
        let floor = match (class, TableRef::parse(&job.table_ref)) {
            (ErrorClass::StreamingBuffer, Ok(table)) => {
                match self.warehouse.streaming_buffer(&table).await {
                    Ok(buffer) => buffer.and_then(|b| b.earliest_drain),
                    Err(e) => {
                        tracing::debug!(error = %e, "streaming-buffer metadata unavailable; policy delay alone");
                        None
                    }
                }
            }
            _ => None,
        };
        let now = Utc::now();
        let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
        let policy = self.policy_for(job);
        match policy.next_attempt(attempt, class, now, rand::rng().random::<f64>(), floor) {
            Some(retry) => Verdict::Retry {
                class,
                message: error.to_string(),
                at: retry.at,
                delay_seconds: i32::try_from(retry.delay.as_secs()).unwrap_or(i32::MAX),
            },
            None => Verdict::GiveUp {
                class,
                message: error.to_string(),
            },
        }
    }

    /// The policy for this job: the configured one, with the job's own attempt budget
    /// (fixed when the job was created, so a restart with new settings does not change it).
    fn policy_for(&self, job: &ClaimedJob) -> crate::domain::RetryPolicy {
        let max = u32::try_from(job.max_attempts).unwrap_or(1).max(1);
        crate::domain::RetryPolicy::new(self.policy.delays().to_vec(), max, self.policy.jitter())
            .unwrap_or_else(|_| self.policy.clone())
    }
}

/// Rebuilds the warehouse's view of the unit from the claimed row. The values were
/// validated at intake; a failure here means the row was edited by hand and is permanent.
fn write_unit(job: &ClaimedJob) -> Result<(TableRef, WriteUnit), warehouse::Error> {
    let permanent = |message: String| warehouse::Error::Permanent { message };
    let table = TableRef::parse(&job.table_ref).map_err(|e| permanent(e.0))?;
    let key = job
        .key
        .as_object()
        .cloned()
        .ok_or_else(|| permanent("stored key is not an object".into()))?;
    let partition = match (&job.partition_column, &job.partition_value) {
        (Some(column), Some(value)) => Some((
            ColumnName::parse(column).map_err(|e| permanent(e.0))?,
            value.clone(),
        )),
        _ => None,
    };
    let rows = match &job.rows {
        Value::Array(rows) => rows.clone(),
        _ => return Err(permanent("stored rows are not an array".into())),
    };
    Ok((
        table,
        WriteUnit {
            unit_id: job.unit_id,
            attempt: job.attempt,
            key,
            partition,
            rows,
        },
    ))
}
