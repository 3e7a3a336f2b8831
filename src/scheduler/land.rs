//! Landing a group: statements sent over as many of its units as the warehouse takes, a
//! refused one split to find the units responsible, each statement paced.
//!
//! **Splitting.** A group refused for the streaming buffer, or for a permanent error, is
//! split to find the units responsible, and every part that can land lands in this round:
//! - a part of several partitions is halved by partition;
//! - a part of one partition (or of an unpartitioned table) sends its first unit alone
//!   (the *probe*): refused too, the partition is blocked as a whole (BigQuery blocks by
//!   partition in practice) and all of its units wait; landed, the partition is *open* for
//!   this round, and refusals in it are halved by key down to the blocked rows;
//! - a permanent error is halved by keys until the bad unit stands alone and fails.
//!
//! A partition blocked as a whole (several of its units refused together, the probe
//! among them) is held out of new groups until its units' next attempt, and its waiting
//! units are deferred unattempted with a conflict. Worst case for `b`
//! blocked partitions of `P` in one group: about `2·b·log2(P/b) + 2·b` statements; for `b`
//! bad (or blocked) keys of `n`: about `2·b·log2(n)`. A round sends at most
//! [`MAX_STATEMENTS_PER_ROUND`]; units left undecided then are put back unattempted, and
//! the next claim regroups them without the held partitions.
//!
//! Each statement is recorded before it is sent, paced by the table's shared pace, and its
//! outcome is recorded with its units' verdicts in one transaction. The breaker counts one
//! outcome per unit and round, however many statements found it.

use std::collections::{BTreeSet, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;
use uuid::Uuid;

use super::group::{permanent, Round, MAX_STATEMENTS_PER_ROUND};
use super::{Checkpoint, Scheduler};
use crate::domain::lifecycle::Verdict;
use crate::domain::{ColumnName, ErrorClass, TableRef};
use crate::store::jobs::ClaimedJob;
use crate::store::statements::StatementState;
use crate::warehouse::{self, WriteUnit};

/// A set of units to send together.
struct Part {
    jobs: Vec<ClaimedJob>,
    /// A one-partition part refused for the streaming buffer: its first unit is sent alone
    /// to tell a blocked partition from blocked rows.
    probe: bool,
}

/// A unit's partition value as text (empty for an unpartitioned table).
fn partition_of(job: &ClaimedJob) -> String {
    job.partition_value
        .as_ref()
        .map_or_else(String::new, Value::to_string)
}

impl Round<'_> {
    /// Sends `jobs` in as few statements as the warehouse allows (see the module header).
    pub(super) async fn land(&mut self, table: &TableRef, jobs: Vec<ClaimedJob>) {
        let mut queue = VecDeque::from([Part { jobs, probe: false }]);
        let mut budget = MAX_STATEMENTS_PER_ROUND;
        while let Some(mut part) = queue.pop_front() {
            {
                let lost = self.lost.lock().expect("lost-lease set");
                part.jobs.retain(|j| !lost.contains(&j.job_id));
            }
            if part.jobs.is_empty() {
                continue;
            }
            if budget == 0 {
                self.put_back(&part.jobs, std::time::Duration::ZERO).await;
                continue;
            }
            budget -= 1;
            let rest = if part.probe {
                part.jobs.split_off(1)
            } else {
                Vec::new()
            };
            let sent = part.jobs;
            let Some((statement, result)) = self.send(table, &sent).await else {
                continue;
            };
            match result {
                Ok(_) => {
                    self.open_partitions.extend(sent.iter().map(partition_of));
                    let verdicts = sent
                        .iter()
                        .map(|j| {
                            let rows_inserted = j.rows.as_array().map_or(0, Vec::len) as u64;
                            (j, Verdict::Loaded { rows_inserted })
                        })
                        .collect();
                    self.record(verdicts, Some((statement.0, &statement.1)))
                        .await;
                    if !rest.is_empty() {
                        // The probe landed: the partition is not blocked as a whole; the
                        // rest is tried again (and halved by keys if refused).
                        queue.push_front(Part {
                            jobs: rest,
                            probe: false,
                        });
                    }
                }
                Err(error) if part.probe => {
                    let partition = partition_of(&sent[0]);
                    if self.open_partitions.contains(&partition) {
                        // Blocked rows in an open partition: the probe's key alone waits.
                        self.refuse(table, sent, &error, Some(&statement)).await;
                        if !rest.is_empty() {
                            queue.push_front(Part {
                                jobs: rest,
                                probe: false,
                            });
                        }
                    } else {
                        // Refused alone too: the partition is blocked.
                        let mut all = sent;
                        all.extend(rest);
                        self.refuse(table, all, &error, Some(&statement)).await;
                    }
                }
                Err(error) => {
                    let class = error.class();
                    let splittable =
                        matches!(class, ErrorClass::StreamingBuffer | ErrorClass::Permanent)
                            && sent.len() > 1;
                    if !splittable {
                        self.refuse(table, sent, &error, Some(&statement)).await;
                        continue;
                    }
                    for part in split(sent, class, &self.open_partitions) {
                        queue.push_front(part);
                    }
                }
            }
        }
    }

    /// Records, paces and sends one statement over `jobs`; `None` when nothing was sent
    /// (every lease lost, or the statement could not be recorded).
    async fn send(
        &mut self,
        table: &TableRef,
        jobs: &[ClaimedJob],
    ) -> Option<(
        (i64, String),
        Result<warehouse::ReplaceOutcome, warehouse::Error>,
    )> {
        let s = self.scheduler;
        let base = s.warehouse.statement_interval();
        match s.store.reserve_slot(self.table_ref, base).await {
            Ok(wait) if !wait.is_zero() => s.store.clock().sleep(wait).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reserving a statement slot failed; sending unpaced")
            }
        }
        // The claim may be old by now (a stalled process, a paced wait): confirm the leases
        // just before the call, so a replica that lost its jobs does not write at all.
        let claims: Vec<(i64, i32)> = jobs.iter().map(|j| (j.job_id, j.attempt)).collect();
        let lost = match s.store.renew_leases(&claims, s.settings.lease).await {
            Ok(lost) => lost,
            Err(e) => {
                tracing::error!(error = %e, "could not confirm the leases before the warehouse call; nothing sent");
                self.put_back(jobs, s.settings.poll_interval).await;
                return None;
            }
        };
        let jobs: Vec<&ClaimedJob> = jobs.iter().filter(|j| !lost.contains(&j.job_id)).collect();
        if jobs.is_empty() {
            return None;
        }
        let units: Vec<WriteUnit> = match jobs.iter().map(|j| write_unit(j)).collect() {
            Ok(units) => units,
            Err(e) => {
                let verdicts = jobs
                    .iter()
                    .map(|j| (*j, permanent(&e.to_string())))
                    .collect();
                self.record(verdicts, None).await;
                return None;
            }
        };
        let job_id = format!("streamguard-{}", Uuid::new_v4());
        let statement_id = match s
            .store
            .begin_statement(&job_id, self.table_ref, &s.settings.replica, &jobs)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "recording the statement failed; nothing sent");
                let owned: Vec<ClaimedJob> = jobs.into_iter().cloned().collect();
                self.put_back(&owned, s.settings.poll_interval).await;
                return None;
            }
        };
        // The attempt starts when its statement is sent (the breaker asked, earlier
        // statements settled, the pace waited out).
        self.started_at = s.store.clock().now();
        s.checkpoint(Checkpoint::Sending).await;
        let result = match tokio::time::timeout(
            s.settings.statement_timeout,
            s.warehouse.replace(table, &job_id, &units),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(warehouse::Error::Transient {
                message: format!(
                    "statement {job_id} did not answer within {:?} (STREAMGUARD_STATEMENT_TIMEOUT); it is settled before the next statement for its keys",
                    s.settings.statement_timeout
                ),
            }),
        };
        s.checkpoint(Checkpoint::Answered).await;
        let (state, error) = match &result {
            Ok(_) => (StatementState::Done, None),
            // Unknown outcome: the statement may still run or land.
            Err(e @ warehouse::Error::Transient { .. }) => (
                StatementState::Unknown,
                Some((e.class().as_str(), e.to_string())),
            ),
            Err(e) => (
                StatementState::Failed,
                Some((e.class().as_str(), e.to_string())),
            ),
        };
        let error_ref = error.as_ref().map(|(c, m)| (*c, m.as_str()));
        if let Err(e) = s
            .store
            .finish_statement(statement_id, state, result.as_ref().ok(), error_ref)
            .await
        {
            tracing::error!(error = %e, "recording the statement's outcome failed");
        }
        let slow_down = matches!(
            result.as_ref().map_err(warehouse::Error::class),
            Err(ErrorClass::QuotaExceeded | ErrorClass::ConcurrentDml)
        );
        if let Err(e) = s.store.pace(self.table_ref, base, slow_down).await {
            tracing::warn!(error = %e, "updating the table's pace failed");
        }
        tracing::info!(
            %job_id, units = jobs.len(), outcome = result.as_ref().map_or_else(|e| e.class().as_str(), |_| "loaded"),
            "statement"
        );
        Some(((statement_id, job_id), result))
    }

    /// Gives each of `jobs` the verdict of `error` under the retry policy, holds a
    /// partition refused for the buffer, and records them.
    async fn refuse(
        &mut self,
        table: &TableRef,
        jobs: Vec<ClaimedJob>,
        error: &warehouse::Error,
        statement: Option<&(i64, String)>,
    ) {
        let s = self.scheduler;
        let class = error.class();
        let floor = if class == ErrorClass::StreamingBuffer {
            match s.warehouse.streaming_buffer(table).await {
                Ok(buffer) => buffer.and_then(|b| b.earliest_drain),
                Err(e) => {
                    tracing::debug!(error = %e, "streaming-buffer metadata unavailable; policy delay alone");
                    None
                }
            }
        } else {
            None
        };
        let now = s.store.now().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading Postgres's clock failed; retry times use this replica's");
            Utc::now()
        });
        let verdicts: Vec<(&ClaimedJob, Verdict)> = jobs
            .iter()
            .map(|j| (j, s.verdict(j, error, now, floor)))
            .collect();
        if class == ErrorClass::StreamingBuffer {
            let partitions: BTreeSet<String> = jobs
                .iter()
                .filter_map(|j| j.partition_value.as_ref().map(Value::to_string))
                .collect();
            let until = verdicts
                .iter()
                .filter_map(|(_, v)| match v {
                    Verdict::Retry { at, .. } => Some(*at),
                    _ => None,
                })
                .min();
            // Known blocked as a whole only when several of its units were refused
            // together (a lone refused unit may be blocked by its own rows alone).
            let blocked_as_a_whole = partitions.len() == 1
                && jobs.len() > 1
                && !jobs
                    .first()
                    .is_some_and(|j| self.open_partitions.contains(&partition_of(j)));
            if let (true, Some(until), Some(partition)) = (
                blocked_as_a_whole,
                until,
                jobs.first().and_then(|j| j.partition_value.as_ref()),
            ) {
                let reason = format!(
                    "partition {partition} of {} is held until {until}: a statement touching it was refused for the streaming buffer ({error})",
                    self.table_ref
                );
                match s
                    .store
                    .hold_partition(self.table_ref, partition, until, &reason)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(%partition, %until, units = n, "partition held: its waiting units are deferred unattempted")
                    }
                    Err(e) => tracing::warn!(error = %e, "holding the refused partition failed"),
                }
            }
        }
        let statement = statement.map(|(id, job_id)| (*id, job_id.as_str()));
        self.record(verdicts, statement).await;
    }
}

impl Scheduler {
    /// The verdict for `job` refused with `error` at `now` (Postgres's clock), under the
    /// retry policy; a streaming-buffer retry is not placed before `floor` (the buffer's
    /// earliest drain).
    pub(super) fn verdict(
        &self,
        job: &ClaimedJob,
        error: &warehouse::Error,
        now: DateTime<Utc>,
        floor: Option<DateTime<Utc>>,
    ) -> Verdict {
        let class = error.class();
        let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
        let max = u32::try_from(job.max_attempts).unwrap_or(1).max(1);
        // The job's own attempt budget, fixed when it was created, so a restart with new
        // settings does not change it.
        let policy = crate::domain::RetryPolicy::new(
            self.policy.delays().to_vec(),
            max,
            self.policy.jitter(),
        )
        .unwrap_or_else(|_| self.policy.clone());
        let floor = floor.filter(|_| class == ErrorClass::StreamingBuffer);
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
}

/// Splits a refused part: a streaming-buffer refusal by partition when it spans several
/// (each half probed if it holds one partition not known open), a one-partition part into a
/// probe of its first unit, or — in a partition known open, or for a permanent error — into
/// halves by keys.
fn split(jobs: Vec<ClaimedJob>, class: ErrorClass, open: &HashSet<String>) -> Vec<Part> {
    let by_keys = |mut a: Vec<ClaimedJob>| {
        let b = a.split_off(a.len() / 2);
        vec![
            Part {
                jobs: a,
                probe: false,
            },
            Part {
                jobs: b,
                probe: false,
            },
        ]
    };
    if class != ErrorClass::StreamingBuffer {
        return by_keys(jobs);
    }
    let partitions: BTreeSet<String> = jobs.iter().map(partition_of).collect();
    if partitions.len() == 1 {
        return if open.contains(partitions.first().expect("one partition")) {
            by_keys(jobs)
        } else {
            vec![Part { jobs, probe: true }]
        };
    }
    let first: HashSet<&String> = partitions.iter().take(partitions.len() / 2).collect();
    let (a, b): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|j| first.contains(&partition_of(j)));
    [a, b]
        .into_iter()
        .map(|jobs| {
            let one = jobs.iter().map(partition_of).collect::<BTreeSet<_>>().len() == 1;
            let probe = one && jobs.len() > 1 && !open.contains(&partition_of(&jobs[0]));
            Part { jobs, probe }
        })
        .collect()
}

/// Rebuilds the warehouse's view of the unit from the claimed row. The values were
/// validated at intake; a failure here means the row was edited by hand and is permanent.
fn write_unit(job: &ClaimedJob) -> Result<WriteUnit, warehouse::Error> {
    let permanent = |message: String| warehouse::Error::Permanent { message };
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
    Ok(WriteUnit {
        unit_id: job.unit_id,
        attempt: job.attempt,
        key,
        partition,
        rows,
    })
}
