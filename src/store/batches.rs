//! Intake and the batch view.
//!
//! Intake is one transaction: the batch, its write units and one job per unit, the
//! supersession of older units of the same keys, and a `pg_notify` that wakes the
//! schedulers when it commits. The service answers only after the commit, so an accepted
//! batch is never lost.
//!
//! Why it is long (about 450 lines): intake's transaction (batch, units, jobs,
//! supersession) and the batch views read back from it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store, JOBS_CHANNEL};
use crate::domain::ValidatedBatch;

/// What intake did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intake {
    /// The batch's id.
    pub batch_id: Uuid,
    /// `true` when the idempotency key matched an earlier batch with the same payload:
    /// nothing new was written.
    pub replayed: bool,
    /// Older units that this batch superseded.
    pub superseded: u64,
}

/// A batch and its units, as `GET /v1/batches/{id}` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "batch_id": "5b0f3c1e-2a7d-4c1b-9f3e-6d2a8b4c0e11",
    "processor_name": "bdl_boxscores_processor",
    "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
    "created_at": "2026-01-25T09:14:03Z",
    "run": "bdl_boxscores backfill 2026-01-24",
    "units": [{
        "unit_id": "0c4a9e2f-7b1d-4e3a-8c5f-1a2b3c4d5e6f",
        "key": {"game_id": "20260124_LAL_BOS"},
        "partition": "2026-01-24",
        "state": "deferred",
        "rows": 26,
        "attempts": 1,
        "conflict_id": "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a",
        "next_attempt_at": "2026-01-25T09:19:03Z",
        "error": "UPDATE or DELETE statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported"
    }]
}))]
pub struct BatchView {
    /// The batch's id.
    pub batch_id: Uuid,
    /// Who sent it.
    pub processor_name: String,
    /// Target table, `project.dataset.table`.
    pub table: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// The backfill run it belongs to (`GET /v1/runs/{run}`), or `null`.
    pub run: Option<String>,
    /// Its write units, in order of first appearance in the request.
    pub units: Vec<UnitView>,
    /// On the answer to `POST /v1/batches` only: whether the rows were checked against the
    /// table's schema, or accepted unchecked because it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_check: Option<crate::domain::schema::SchemaCheck>,
}

/// One write unit's current state.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UnitView {
    /// The unit's id.
    pub unit_id: Uuid,
    /// Key column → value.
    pub key: Value,
    /// The partition column's value, or `null`.
    #[sqlx(rename = "partition_value")]
    pub partition: Option<Value>,
    /// `pending`, `loaded`, `deferred`, `failed`, `superseded`, `unresolved` or `cancelled`.
    pub state: String,
    /// Rows in the unit (0 for a pure delete).
    #[sqlx(rename = "row_count")]
    pub rows: i32,
    /// Attempts made so far.
    pub attempts: i32,
    /// The unit's conflict, once it had one.
    pub conflict_id: Option<Uuid>,
    /// When the scheduler will attempt it next (deferred units).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error, for deferred, failed and unresolved units.
    pub error: Option<String>,
}

impl BatchView {
    /// Whether every unit has had its first attempt or will not be attempted.
    pub fn first_attempts_done(&self) -> bool {
        self.units
            .iter()
            .all(|u| u.attempts > 0 || u.state != "pending")
    }
}

/// How often intake runs its transaction when Postgres aborts it to break a deadlock.
pub const INTAKE_TRIES: u32 = 3;

impl Store {
    /// Stores a validated batch, its units and their jobs in one transaction, superseding
    /// older not-landed units of the same table and key.
    ///
    /// `payload_hash` identifies the request body; with an idempotency key already used for
    /// the same processor, an equal hash replays the original batch and a different one is
    /// [`Error::IdempotencyMismatch`].
    ///
    /// Superseding locks the key's older units and jobs, which a claim or a recording may
    /// hold in another order; when Postgres breaks such a deadlock by aborting this
    /// transaction (SQLSTATE `40P01`), the whole transaction is run again, up to
    /// [`INTAKE_TRIES`] times — it was rolled back, so nothing is written twice (found by
    /// the simulation, seed 506: a post beside a claim).
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::IdempotencyMismatch`]; [`Error::Contention`] when
    /// every try met a deadlock.
    pub async fn insert_batch(
        &self,
        batch: &ValidatedBatch,
        payload_hash: &[u8],
        max_attempts: u32,
    ) -> Result<Intake, Error> {
        for _ in 0..INTAKE_TRIES {
            let mut tx = self.pool.begin().await?;
            let tried = match self
                .insert_batch_in(&mut tx, batch, payload_hash, max_attempts, None)
                .await
            {
                Ok(intake) => tx.commit().await.map(|()| intake).map_err(Error::from),
                Err(e) => Err(e),
            };
            match tried {
                Err(Error::Database(sqlx::Error::Database(db)))
                    if db.code().as_deref() == Some("40P01") =>
                {
                    tracing::warn!(table = %batch.table, "intake met a deadlock; trying again");
                }
                other => return other,
            }
        }
        Err(Error::Contention(format!(
            "intake into {} (deadlocked {INTAKE_TRIES} times)",
            batch.table
        )))
    }

    /// [`Store::insert_batch`] inside the caller's transaction, with the units' first
    /// attempt due at `first_attempt_at` (`None`: now). A processor's report stores its
    /// batch and its conflict together this way, and its first attempt waits the delay.
    /// The caller commits.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::IdempotencyMismatch`].
    pub(crate) async fn insert_batch_in(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: &ValidatedBatch,
        payload_hash: &[u8],
        max_attempts: u32,
        first_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<Intake, Error> {
        let table = batch.table.to_string();
        // Intake is serialised per table, so that of two batches for one key the one that
        // commits second always sees — and supersedes — the first: concurrent posts can
        // never both land with the older last. Held until the caller commits.
        sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
            .bind(INTAKE_LOCK_SPACE)
            .bind(&table)
            .execute(&mut *tx)
            .await?;
        let batch_id = Uuid::new_v4();
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "insert into batches (batch_id, processor_name, table_ref, key_columns, partition_column, idempotency_key, payload_hash, run)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             on conflict on constraint batches_idempotency_key_unique do nothing
             returning batch_id",
        )
        .bind(batch_id)
        .bind(batch.processor_name.as_str())
        .bind(batch.table.to_string())
        .bind(batch.key_columns.iter().map(|c| c.as_str().to_owned()).collect::<Vec<_>>())
        .bind(batch.partition_column.as_ref().map(|c| c.as_str().to_owned()))
        .bind(batch.idempotency_key.as_ref().map(|k| k.as_str().to_owned()))
        .bind(payload_hash)
        .bind(batch.run.as_ref().map(|r| r.as_str().to_owned()))
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let key = batch
                .idempotency_key
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default();
            let (original, hash): (Uuid, Vec<u8>) = sqlx::query_as(
                "select batch_id, payload_hash from batches where processor_name = $1 and idempotency_key = $2",
            )
            .bind(batch.processor_name.as_str())
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
            if hash != payload_hash {
                return Err(Error::IdempotencyMismatch {
                    key,
                    batch_id: original,
                });
            }
            return Ok(Intake {
                batch_id: original,
                replayed: true,
                superseded: 0,
            });
        }

        let unit_ids: Vec<Uuid> = batch.units.iter().map(|_| Uuid::new_v4()).collect();
        let positions: Vec<i32> = (0..batch.units.len() as i32).collect();
        let keys: Vec<Value> = batch
            .units
            .iter()
            .map(|u| Value::Object(u.key.clone()))
            .collect();
        let partitions: Vec<Option<Value>> =
            batch.units.iter().map(|u| u.partition.clone()).collect();
        let rows: Vec<Value> = batch
            .units
            .iter()
            .map(|u| Value::Array(u.rows.clone()))
            .collect();
        let counts: Vec<i32> = batch.units.iter().map(|u| u.rows.len() as i32).collect();

        refuse_other_key_shape(tx, batch, &table).await?;
        let superseded = supersede(tx, &table, &keys, &partitions).await?;

        sqlx::query(
            "insert into write_units (unit_id, batch_id, position, table_ref, key, partition_value, rows, row_count)
             select u.unit_id, $1, u.position, $2, u.key, u.partition_value, u.rows, u.row_count
             from unnest($3::uuid[], $4::int[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::int[])
                  as u(unit_id, position, key, partition_value, rows, row_count)",
        )
        .bind(batch_id)
        .bind(&table)
        .bind(&unit_ids)
        .bind(&positions)
        .bind(&keys)
        .bind(&partitions)
        .bind(&rows)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into jobs (unit_id, table_ref, max_attempts, run_at)
             select unit_id, table_ref, $2, coalesce($3, streamguard_now()) from write_units where batch_id = $1 order by position",
        )
        .bind(batch_id)
        .bind(max_attempts as i32)
        .bind(first_attempt_at)
        .execute(&mut *tx)
        .await?;
        hold_if_breaker_open(
            tx,
            batch_id,
            self.config
                .breaker_scope
                .of(batch.processor_name.as_str(), &table),
            self.config.breaker.open_for,
        )
        .await?;
        defer_if_partition_held(tx, batch_id, &table, &partitions).await?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(JOBS_CHANNEL)
            .bind(batch_id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(Intake {
            batch_id,
            replayed: false,
            superseded,
        })
    }

    /// The batch with its units' current state, or `None` when there is no such batch.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn batch(&self, batch_id: Uuid) -> Result<Option<BatchView>, Error> {
        let head: Option<(String, String, DateTime<Utc>, Option<String>)> = sqlx::query_as(
            "select processor_name, table_ref, created_at, run from batches where batch_id = $1",
        )
        .bind(batch_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((processor_name, table, created_at, run)) = head else {
            return Ok(None);
        };
        let units = sqlx::query_as(
            "select unit_id, key, partition_value, state, row_count, attempts, conflict_id, next_attempt_at, error
             from write_units where batch_id = $1 order by position",
        )
        .bind(batch_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(BatchView {
            batch_id,
            processor_name,
            table,
            created_at,
            run,
            units,
            schema_check: None,
        }))
    }
}

/// Advisory-lock space of intake's per-table lock (the two-key form; the claim lock uses
/// the one-key form, a separate space).
pub(super) const INTAKE_LOCK_SPACE: i32 = 0x7367_0001;

/// Refuses a batch whose key columns (or partition column) differ from those of units of
/// the same table that have not landed yet. Supersession compares keys of one shape only:
/// a whole-game unit still waiting and a later per-player correction would both land, the
/// older last, and overwrite the correction. Once the waiting units have landed (or been
/// cancelled), the table may be written with another key.
async fn refuse_other_key_shape(
    tx: &mut sqlx::PgConnection,
    batch: &ValidatedBatch,
    table: &str,
) -> Result<(), Error> {
    let columns: Vec<String> = batch
        .key_columns
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let partition = batch
        .partition_column
        .as_ref()
        .map(|c| c.as_str().to_owned());
    let other: Option<(Vec<String>, Option<String>, i64)> = sqlx::query_as(
        "select b.key_columns, b.partition_column, count(*)
         from write_units u join batches b using (batch_id)
         where u.table_ref = $1 and u.state in ('pending', 'deferred')
           and (not (b.key_columns @> $2 and b.key_columns <@ $2) or b.partition_column is distinct from $3)
         group by 1, 2 limit 1",
    )
    .bind(table)
    .bind(&columns)
    .bind(&partition)
    .fetch_optional(&mut *tx)
    .await?;
    match other {
        None => Ok(()),
        Some((their_columns, their_partition, waiting)) => Err(Error::Refused(format!(
            "table {table} has {waiting} unit(s) not landed yet keyed by {their_columns:?}{}; this batch is keyed by {columns:?}{}. \
             Keys of different shapes cannot supersede each other, so the older could overwrite the newer: \
             use the same key columns, or wait until those units have landed",
            their_partition.map(|p| format!(" partitioned by {p:?}")).unwrap_or_default(),
            partition.map(|p| format!(" partitioned by {p:?}")).unwrap_or_default(),
        ))),
    }
}

/// Units of the batch in a partition held after a streaming-buffer refusal wait for the
/// hold to end, unattempted, with the partition's conflict (see
/// [`super::statements::defer_held_units`]).
async fn defer_if_partition_held(
    tx: &mut sqlx::PgConnection,
    batch_id: Uuid,
    table: &str,
    partitions: &[Option<Value>],
) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<Value> = partitions
        .iter()
        .flatten()
        .filter(|p| seen.insert(p.to_string()))
        .cloned()
        .collect();
    if distinct.is_empty() {
        return Ok(());
    }
    let holds: Vec<(Value, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select partition_value, until from partition_holds
         where table_ref = $1 and partition_value = any($2) and until > streamguard_now()",
    )
    .bind(table)
    .bind(&distinct)
    .fetch_all(&mut *tx)
    .await?;
    for (partition, until) in holds {
        let reason = format!(
            "partition {partition} of {table} is held until {until}: a statement touching it was refused for the streaming buffer; not attempted before then"
        );
        super::statements::defer_held_units(tx, table, &partition, until, &reason, Some(batch_id))
            .await?;
    }
    Ok(())
}

/// When the batch's breaker is open, its units answer `deferred` at once, with
/// `next_attempt_at` at the end of the open period (for a forced-open breaker, one open
/// period from now, when the scheduler asks again), and their jobs wait until then: the
/// batch is accepted and durable, and no warehouse call is made for it meanwhile.
async fn hold_if_breaker_open(
    tx: &mut sqlx::PgConnection,
    batch_id: Uuid,
    scope: &str,
    open_for: std::time::Duration,
) -> Result<(), Error> {
    sqlx::query(
        "with b as (
             select case when state = 'forced_open' then streamguard_now() + make_interval(secs => $3) else reopens_at end as until
             from breakers
             where scope = $2 and (state = 'forced_open' or (state = 'open' and reopens_at > streamguard_now()))),
         u as (
             update write_units w set state = 'deferred', next_attempt_at = b.until, updated_at = streamguard_now()
             from b where w.batch_id = $1 and w.state = 'pending'
             returning w.unit_id, b.until)
         update jobs j set run_at = greatest(j.run_at, u.until), updated_at = streamguard_now()
         from u where j.unit_id = u.unit_id",
    )
    .bind(batch_id)
    .bind(scope)
    .bind(open_for.as_secs_f64())
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks older not-landed units of the same table, key and partition `superseded`, takes
/// their waiting jobs off the schedule and resolves their open conflicts as `superseded`.
/// A superseded unit whose attempt is running right now finishes that attempt (a BigQuery
/// call cannot be recalled), but the claim query never starts the newer unit before it
/// ends, so the newer rows always land last.
async fn supersede(
    tx: &mut sqlx::PgConnection,
    table: &str,
    keys: &[Value],
    partitions: &[Option<Value>],
) -> Result<u64, Error> {
    // The units are locked in unit_id order first, the order a statement's recording locks
    // them in, so intake and recording never wait on each other in a cycle.
    let superseded: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "with older as (
             select w.unit_id from write_units w
             join unnest($2::jsonb[], $3::jsonb[]) as n(key, partition_value)
               on md5(w.key::text || coalesce(w.partition_value::text, '')) = md5(n.key::text || coalesce(n.partition_value::text, ''))
              and w.key = n.key and w.partition_value is not distinct from n.partition_value
             where w.table_ref = $1 and w.state in ('pending', 'deferred')
             order by w.unit_id
             for update of w)
         update write_units w set state = 'superseded', next_attempt_at = null, updated_at = streamguard_now()
         from older where w.unit_id = older.unit_id and w.state in ('pending', 'deferred')
         returning w.unit_id, w.conflict_id",
    )
    .bind(table)
    .bind(keys)
    .bind(partitions)
    .fetch_all(&mut *tx)
    .await?;
    if superseded.is_empty() {
        return Ok(0);
    }
    let unit_ids: Vec<Uuid> = superseded.iter().map(|(u, _)| *u).collect();
    let conflict_ids: Vec<Uuid> = superseded.iter().filter_map(|(_, c)| *c).collect();
    sqlx::query(
        "update jobs set state = 'completed', completed_at = streamguard_now(), updated_at = streamguard_now()
         where unit_id = any($1) and state = 'available'",
    )
    .bind(&unit_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update conflicts set resolved = true, resolution_method = 'superseded', resolution_time = streamguard_now(), updated_at = streamguard_now()
         where conflict_id = any($1) and not resolved",
    )
    .bind(&conflict_ids)
    .execute(&mut *tx)
    .await?;
    Ok(superseded.len() as u64)
}
