//! The job table: claims of groups, lease renewal, rescue of expired leases, and the
//! breaker's deferral. Recording an attempt's verdict lives in [`super::record`].
//!
//! A claim takes a **group**: due jobs of one table whose units share a key shape (key
//! columns and partition column), at most one unit per key, bounded by [`GroupBounds`] —
//! the units one statement will carry. Claims are serialised by a transaction-scoped
//! advisory lock so the per-table limit of statements in flight holds across replicas, and
//! every claim re-checks, in its own `UPDATE`, that each job is still claimable when it
//! locks it (a job completed between the choice and the update is not taken again). No
//! transaction is held while the warehouse works. Every later write is fenced on
//! `(job_id, attempt, state = 'running')`: zero rows means another claimer took the job
//! over after our lease ran out, and the result is dropped.
//!
//! A group waits until a table's oldest due job was created `linger` ago, so that the
//! units of batches posted in quick succession share a statement; a lone key is delayed by
//! the linger at most, and a retry not at all. A unit never starts while an older unit of its key is running, and the
//! partitions held after a streaming-buffer refusal stay out of groups until they can
//! have drained. Intake supersedes older waiting units of a key, so a table has at most
//! one due unit per key; a group still takes one per key, the oldest due.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store};
use crate::domain::breaker::Probe;
pub use crate::domain::lifecycle::Verdict;

/// Key of the advisory lock that serialises claims (any constant; "sg" in ASCII).
const CLAIM_LOCK: i64 = 0x7367;

/// What one statement may carry. Defaults and their sources: BigQuery's limits on a query
/// request (10 MB including parameters) and on partitions modified by one job (4,000),
/// <https://cloud.google.com/bigquery/quotas>; the statement's SQL text does not grow with
/// its keys (every value is a parameter), so the 1,024K-character limit is never near.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBounds {
    /// Keys (units) per statement.
    pub max_keys: u32,
    /// Bytes of row JSON per statement; a single unit over it still forms a group alone.
    pub max_bytes: u64,
    /// Distinct partitions per statement.
    pub max_partitions: u32,
}

impl GroupBounds {
    /// One key per statement: the job table without coalescing.
    pub const SINGLE: Self = Self {
        max_keys: 1,
        max_bytes: u64::MAX,
        max_partitions: 1,
    };
}

impl GroupBounds {
    /// The defaults: 2,000 keys, 8 MB of rows (BigQuery's 10 MB request, less room for
    /// the SQL text and the keys and partitions parameters), 4,000 partitions.
    pub const DEFAULT: Self = Self {
        max_keys: 2_000,
        max_bytes: 8_000_000,
        max_partitions: 4_000,
    };
}

impl Default for GroupBounds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A claimed group: jobs of one table, one key shape, one unit per key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedGroup {
    /// The claim's id (jobs.group_id).
    pub group_id: Uuid,
    /// `project.dataset.table`.
    pub table_ref: String,
    /// The jobs, oldest due first.
    pub jobs: Vec<ClaimedJob>,
}

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

/// A candidate row of a group, before the bounds are applied.
#[derive(sqlx::FromRow)]
struct Candidate {
    job_id: i64,
    key: Value,
    partition_value: Option<Value>,
    bytes: i64,
    key_columns: Vec<String>,
    partition_column: Option<String>,
}

/// The message of the attempt row a rescued (lost) attempt gets.
const LOST_MESSAGE: &str = "the replica running this attempt stopped (killed or stalled) and its lease expired; any statement it sent is settled before the next one for its keys";

impl Store {
    /// Claims up to `limit` groups of one key each (no coalescing): the job table as a
    /// plain queue, as the peer job queues are measured.
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
        let groups = self
            .claim_groups(
                replica,
                limit,
                &GroupBounds::SINGLE,
                max_per_table,
                lease,
                Duration::ZERO,
            )
            .await?;
        Ok(groups.into_iter().flat_map(|g| g.jobs).collect())
    }

    /// Claims up to `max_groups` groups for `replica`, each within `bounds`, with a lease of
    /// `lease`, never letting more than `max_per_table` statements of one table be in
    /// flight (expired leases do not count), from tables whose oldest due job is at least
    /// `linger` old and whose pace allows a statement now. Expired leases are rescued
    /// first: their jobs become due again and their attempts are logged as `lost`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn claim_groups(
        &self,
        replica: &str,
        max_groups: u32,
        bounds: &GroupBounds,
        max_per_table: u32,
        lease: Duration,
        linger: Duration,
    ) -> Result<Vec<ClaimedGroup>, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        rescue_expired(&mut tx).await?;
        // Tables with due jobs (a loose index scan over jobs_due_by_table_idx), with room
        // for statements, their pace allowing one now, oldest due first.
        let tables: Vec<(String, i64)> = sqlx::query_as(
            "with recursive due_tables(table_ref) as (
                 (select table_ref from jobs where state = 'available' and run_at <= streamguard_now()
                  order by table_ref limit 1)
                 union all
                 select (select j.table_ref from jobs j
                         where j.state = 'available' and j.run_at <= streamguard_now() and j.table_ref > d.table_ref
                         order by j.table_ref limit 1)
                 from due_tables d where d.table_ref is not null)
             select t.table_ref,
                    $1 - (select count(distinct coalesce(r.group_id::text, r.job_id::text)) from jobs r
                          where r.table_ref = t.table_ref and r.state = 'running' and r.lease_expires_at > streamguard_now()) as free
             from due_tables t
             cross join lateral (select j.run_at, j.created_at from jobs j
                                 where j.table_ref = t.table_ref and j.state = 'available' and j.run_at <= streamguard_now()
                                 order by j.run_at limit 1) oldest
             left join table_pacing p on p.table_ref = t.table_ref
             where t.table_ref is not null
               and oldest.created_at <= streamguard_now() - make_interval(secs => $2)
               and (p.next_at is null or p.next_at <= streamguard_now())
             order by oldest.run_at",
        )
        .bind(i64::from(max_per_table))
        .bind(linger.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::new();
        'tables: for (table, free) in tables {
            for _ in 0..free.max(0) {
                if claimed.len() as u32 >= max_groups {
                    break 'tables;
                }
                let group_id = Uuid::new_v4();
                let ids = claim_one(&mut tx, &table, bounds, group_id, replica, lease).await?;
                if ids.is_empty() {
                    continue 'tables;
                }
                claimed.push((group_id, table.clone(), ids));
            }
        }
        tx.commit().await?;
        let mut groups = Vec::with_capacity(claimed.len());
        for (group_id, table_ref, ids) in claimed {
            groups.push(ClaimedGroup {
                group_id,
                table_ref,
                jobs: self.load_claimed(&ids).await?,
            });
        }
        Ok(groups)
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

    /// Extends the leases of running jobs `(job_id, attempt)`; returns the job ids whose
    /// lease was lost.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn renew_leases(
        &self,
        jobs: &[(i64, i32)],
        lease: Duration,
    ) -> Result<Vec<i64>, Error> {
        let ids: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let attempts: Vec<i32> = jobs.iter().map(|j| j.1).collect();
        // Rows a recording holds right now are skipped, not waited for: the recording locks
        // units and jobs one by one in its own order, and waiting here could close a cycle
        // (a deadlock that aborts the recording of a statement that landed). A skipped job
        // is being recorded by its own claimer; it is lost only if it no longer runs under
        // this claim, which the second query tells without a lock.
        let renewed: Vec<i64> = sqlx::query_scalar(
            "with mine as (
                 select j.job_id from jobs j
                 join unnest($1::bigint[], $2::int[]) as c(job_id, attempt)
                   on j.job_id = c.job_id and j.attempt = c.attempt
                 where j.state = 'running'
                 order by j.job_id
                 for update of j skip locked)
             update jobs j set lease_expires_at = streamguard_now() + make_interval(secs => $3), updated_at = streamguard_now()
             from mine where j.job_id = mine.job_id
             returning j.job_id",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let renewed: HashSet<i64> = renewed.into_iter().collect();
        let skipped: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !renewed.contains(id))
            .collect();
        if skipped.is_empty() {
            return Ok(skipped);
        }
        let still_mine: Vec<i64> = sqlx::query_scalar(
            "select j.job_id from jobs j
             join unnest($1::bigint[], $2::int[]) as c(job_id, attempt)
               on j.job_id = c.job_id and j.attempt = c.attempt
             where j.state = 'running' and j.job_id = any($3)",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&skipped)
        .fetch_all(&self.pool)
        .await?;
        Ok(skipped
            .into_iter()
            .filter(|id| !still_mine.contains(id))
            .collect())
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
        Ok(self
            .renew_leases(&[(job_id, attempt)], lease)
            .await?
            .is_empty())
    }

    /// Puts a claimed job back without counting the claim as an attempt — its breaker is
    /// open, or a statement for its key is still running — : the job's `attempt` goes back
    /// to what it was before the claim (the fence still holds: only this claim could match
    /// it), no attempt row is written, and a not-landed unit answers `deferred` with
    /// `next_attempt_at = at`. Fenced; `false` when the lease was lost.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn defer_for_breaker(
        &self,
        job: &ClaimedJob,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.put_back(job, at, true).await
    }

    /// [`Store::defer_for_breaker`], leaving the unit's state as it is unless `deferred`:
    /// the claim is undone and the job runs again at `at`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn put_back(
        &self,
        job: &ClaimedJob,
        at: DateTime<Utc>,
        deferred: bool,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        // Lock order everywhere: write_units, then jobs.
        sqlx::query("select 1 from write_units where unit_id = $1 for update")
            .bind(job.unit_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "update jobs set state = 'available', attempt = attempt - 1, run_at = $3, lease_expires_at = null,
                    locked_by = null, group_id = null, updated_at = streamguard_now()
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
        if deferred {
            sqlx::query(
                "update write_units set state = 'deferred', next_attempt_at = $2, updated_at = streamguard_now()
                 where unit_id = $1 and state in ('pending', 'deferred')",
            )
            .bind(job.unit_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Makes the jobs whose lease expired due again, and logs their attempts as `lost`, pointing
/// at the last statement the attempt was in (if any), so each unit's history shows them.
async fn rescue_expired(tx: &mut sqlx::PgConnection) -> Result<(), Error> {
    sqlx::query(
        "with lost as (
             select job_id, unit_id, attempt, coalesce(locked_by, 'unknown') as replica, updated_at
             from jobs where state = 'running' and lease_expires_at <= streamguard_now()
             for update),
         rescued as (
             update jobs j set state = 'available', run_at = streamguard_now(), lease_expires_at = null, locked_by = null,
                    group_id = null, updated_at = streamguard_now()
             from lost where j.job_id = lost.job_id)
         insert into attempts (unit_id, attempt, outcome, error_class, error_message, replica, started_at,
                               finished_at, statement_id, warehouse_job_id)
         select lost.unit_id, lost.attempt, 'lost', 'transient', $1, lost.replica, lost.updated_at, streamguard_now(),
                s.statement_id, s.job_id
         from lost
         left join lateral (select su.statement_id, st.job_id from statement_units su
                            join statements st using (statement_id)
                            where su.unit_id = lost.unit_id and su.attempt = lost.attempt
                            order by su.statement_id desc limit 1) s on true
         on conflict on constraint attempts_unit_attempt_unique do nothing",
    )
    .bind(LOST_MESSAGE)
    .execute(tx)
    .await?;
    Ok(())
}

/// Chooses and claims one group of `table`; returns its job ids (empty: nothing claimable).
async fn claim_one(
    tx: &mut sqlx::PgConnection,
    table: &str,
    bounds: &GroupBounds,
    group_id: Uuid,
    replica: &str,
    lease: Duration,
) -> Result<Vec<i64>, Error> {
    // Twice the key bound, so that a few units of another shape or a repeated key do not
    // leave the group short.
    let fetch = i64::from(bounds.max_keys.saturating_mul(2).max(2));
    let candidates: Vec<Candidate> = sqlx::query_as(
        "select j.job_id, u.key, u.partition_value, octet_length(u.rows::text)::bigint as bytes,
                b.key_columns, b.partition_column
         from jobs j join write_units u using (unit_id) join batches b using (batch_id)
         where j.table_ref = $1 and j.state = 'available' and j.run_at <= streamguard_now()
           and not exists (
               select 1 from partition_holds h
               where h.table_ref = u.table_ref and h.partition_value = u.partition_value and h.until > streamguard_now())
           and not exists (
               select 1 from write_units o join jobs oj on oj.unit_id = o.unit_id
               where o.table_ref = u.table_ref and o.key = u.key
                 and o.partition_value is not distinct from u.partition_value
                 and o.seq < u.seq and oj.state = 'running' and oj.lease_expires_at > streamguard_now())
         order by j.run_at, j.job_id
         limit $2",
    )
    .bind(table)
    .bind(fetch)
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = candidates.first() else {
        return Ok(Vec::new());
    };
    let shape = (first.key_columns.clone(), first.partition_column.clone());
    let (mut keys, mut partitions) = (HashSet::new(), HashSet::new());
    let (mut chosen, mut bytes) = (Vec::new(), 0u64);
    for c in &candidates {
        if chosen.len() as u32 >= bounds.max_keys {
            break;
        }
        if (&c.key_columns, &c.partition_column) != (&shape.0, &shape.1) {
            continue;
        }
        let identity = (
            c.key.to_string(),
            c.partition_value.as_ref().map(Value::to_string),
        );
        if keys.contains(&identity) {
            continue;
        }
        let size = u64::try_from(c.bytes).unwrap_or(0);
        let new_partition = !partitions.contains(&identity.1);
        if !chosen.is_empty()
            && (bytes.saturating_add(size) > bounds.max_bytes
                || (new_partition && partitions.len() as u32 >= bounds.max_partitions))
        {
            continue;
        }
        bytes = bytes.saturating_add(size);
        partitions.insert(identity.1.clone());
        keys.insert(identity);
        chosen.push(c.job_id);
    }
    // The update re-checks that each job is still due: a job completed or re-scheduled
    // since the choice above (by a recording that committed meanwhile) is not taken.
    Ok(sqlx::query_scalar(
        "update jobs j set state = 'running', attempt = j.attempt + 1, group_id = $2,
                lease_expires_at = streamguard_now() + make_interval(secs => $3), locked_by = $4, updated_at = streamguard_now()
         where j.job_id = any($1) and j.state = 'available' and j.run_at <= streamguard_now()
         returning j.job_id",
    )
    .bind(&chosen)
    .bind(group_id)
    .bind(lease.as_secs_f64())
    .bind(replica)
    .fetch_all(&mut *tx)
    .await?)
}
