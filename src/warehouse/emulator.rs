//! The embedded BigQuery emulator: the default warehouse when no BigQuery project is
//! configured, and the backend of the demo and the end-to-end tests.
//!
//! It understands the service's own operations, not SQL. Its tables live in the service's
//! Postgres database, in the `emulator` schema (see `migrations/0002_emulator.sql`), so a
//! restarted service and every replica see one warehouse. It follows BigQuery's semantics
//! as described in `docs/bigquery-facts.md`:
//! - rows streamed with [`Emulator::insert_all`] sit in a streaming buffer for a configured
//!   time ([`BufferTime`]);
//! - a replace that would touch buffered rows is refused with BigQuery's error class and
//!   message; what "touch" means is a setting ([`ConflictScope`]), because BigQuery does
//!   not document it;
//! - a replace is atomic (one Postgres transaction, serialised per table as BigQuery
//!   serialises DML per table), and the rows it writes never enter the buffer.
//!
//! Faults can be injected ([`super::faults`]): BigQuery's other refusals, a statement that
//! lands but whose answer is lost, and extra latency.
//!
//! A table appears on its first write, or is declared with a schema in BigQuery's form
//! ([`super::emulator_tables`]); either way every write is checked against its schema.
//!
//! Why it is long (about 550 lines): the whole emulated write path — buffer, conflict
//! scopes, the atomic replace and statement fates — in one place; tables and schemas are
//! in [`super::emulator_tables`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgPool;

use super::emulator_tables::{self, InsertAllError, SchemaSource};
use super::faults::{Fault, FaultTable, Faults};
use super::{Error, Fate, KeyRows, ReplaceOutcome, StreamingBuffer, Warehouse, WriteUnit};
use crate::domain::batch::MAX_REPORTED_ERRORS;
use crate::domain::retry::add_saturating;
use crate::domain::{TableRef, TableSchema};

/// How long streamed rows stay in the buffer: a fixed time or a range drawn from uniformly
/// per insertAll call. Written `30s` or `20s..60s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTime {
    /// Shortest residence.
    pub min: Duration,
    /// Longest residence (equal to `min` for a fixed time).
    pub max: Duration,
}

impl BufferTime {
    /// A fixed residence time.
    pub fn fixed(d: Duration) -> Self {
        Self { min: d, max: d }
    }

    /// Draws one residence time from the range.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        Duration::from_secs_f64(rng.random_range(self.min.as_secs_f64()..=self.max.as_secs_f64()))
    }
}

/// The longest residence accepted (`STREAMGUARD_EMULATOR_BUFFER` and insertAll's
/// `buffer`): 7 days, ten times BigQuery's documented ~90-minute worst case and then some.
pub const MAX_BUFFER: Duration = Duration::from_secs(7 * 24 * 3600);

impl std::str::FromStr for BufferTime {
    type Err = String;

    /// Parses `30s` (fixed) or `20s..60s` (a range), in `humantime` units, each at most
    /// [`MAX_BUFFER`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = |x: &str| {
            humantime::parse_duration(x.trim())
                .map_err(|e| format!("{x:?} is not a duration ({e})"))
        };
        let buffer = match s.split_once("..") {
            Some((min, max)) => Self {
                min: d(min)?,
                max: d(max)?,
            },
            None => Self::fixed(d(s)?),
        };
        if buffer.min > buffer.max {
            return Err("the range's start is after its end".into());
        }
        if buffer.max > MAX_BUFFER {
            return Err(format!(
                "a buffer time may be at most 7 days ({}s); got {s:?}",
                MAX_BUFFER.as_secs()
            ));
        }
        Ok(buffer)
    }
}

impl std::fmt::Display for BufferTime {
    /// `30s` for a fixed time, `20s..60s` for a range (what its `FromStr` reads).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = humantime::format_duration;
        if self.min == self.max {
            write!(f, "{}", words(self.min))
        } else {
            write!(f, "{}..{}", words(self.min), words(self.max))
        }
    }
}

/// Which buffered rows block a replace (`STREAMGUARD_EMULATOR_CONFLICT_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictScope {
    /// A buffered row with the unit's key (and partition).
    Row,
    /// A buffered row in the unit's partition; for a unit without a partition column, any
    /// buffered row of the table. The default.
    Partition,
    /// Any buffered row of the table.
    Table,
}

impl std::fmt::Display for ConflictScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Row => "row",
            Self::Partition => "partition",
            Self::Table => "table",
        })
    }
}

impl std::str::FromStr for ConflictScope {
    /// The accepted words.
    type Err = String;

    /// `partition`, `row` or `table`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "partition" => Ok(Self::Partition),
            "row" => Ok(Self::Row),
            "table" => Ok(Self::Table),
            _ => Err("`partition`, `row` or `table`".into()),
        }
    }
}

impl EmulatorSettings {
    /// The defaults: rows stay buffered 10 to 30 seconds, a buffered row blocks replaces
    /// in its partition, no added latency, no injected faults.
    pub const DEFAULT: Self = Self {
        buffer: BufferTime {
            min: Duration::from_secs(10),
            max: Duration::from_secs(30),
        },
        conflict_scope: ConflictScope::Partition,
        latency: Duration::ZERO,
        faults: super::faults::Faults::NONE,
    };
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The emulator's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmulatorSettings {
    /// Residence time of streamed rows.
    pub buffer: BufferTime,
    /// What a replace must not touch.
    pub conflict_scope: ConflictScope,
    /// Added to every replace before it commits, to imitate BigQuery's seconds-long DML
    /// (and to let tests kill the service mid-attempt).
    pub latency: Duration,
    /// Injected refusals, lost answers and extra latency (`STREAMGUARD_EMULATOR_FAULTS`);
    /// none by default.
    pub faults: Faults,
}

/// One stored row, as `GET /emulator/tables/{table}/rows` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredRow {
    /// The row's columns.
    pub data: Value,
    /// Whether it is still in the streaming buffer.
    pub buffered: bool,
    /// When it leaves the buffer (`null` for rows written by a replace).
    pub buffered_until: Option<DateTime<Utc>>,
}

/// How often settlement looks again at a statement still running.
const FATE_POLL: Duration = Duration::from_millis(50);

/// The emulator, backed by the `emulator` schema of the service's database.
#[derive(Debug, Clone)]
pub struct Emulator {
    pool: PgPool,
    settings: EmulatorSettings,
    faults: FaultTable,
}

/// BigQuery's streaming-buffer error text (error-messages page, `badRequest` row; see
/// `docs/bigquery-facts.md` B1).
pub fn streaming_buffer_message(table: &TableRef) -> String {
    format!(
        "UPDATE or DELETE statement over table {table} would affect rows in the streaming buffer, which is not supported"
    )
}

fn database_error(e: sqlx::Error) -> Error {
    Error::Transient {
        message: format!("emulator storage failed: {e}"),
    }
}

impl Emulator {
    /// An emulator over `pool`; the `emulator` schema must be migrated.
    pub fn new(pool: PgPool, settings: EmulatorSettings) -> Self {
        Self {
            pool,
            settings,
            faults: FaultTable::new(settings.faults),
        }
    }

    /// Gives `table` its own injected faults in this process (`None`: back to
    /// `STREAMGUARD_EMULATOR_FAULTS`); returns the faults now in force for it.
    pub fn set_faults(&self, table: &TableRef, faults: Option<Faults>) -> Faults {
        self.faults.set(table, faults)
    }

    /// The settings in force.
    pub fn settings(&self) -> &EmulatorSettings {
        &self.settings
    }

    /// The pool its tables live in.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Streams rows into the table's buffer, as `tabledata.insertAll` would. Returns when
    /// they leave it (on Postgres's clock), and whether the table's schema was declared or
    /// inferred. `buffer` overrides the configured residence for this call. The rows are
    /// checked against the table's schema (inferred from them on the table's first write);
    /// one bad row refuses them all, as insertAll without `skipInvalidRows` does.
    ///
    /// # Errors
    /// [`InsertAllError::Refused`] with each problem; [`InsertAllError::Storage`] when
    /// Postgres fails.
    pub async fn insert_all(
        &self,
        table: &TableRef,
        rows: &[Map<String, Value>],
        buffer: Option<BufferTime>,
    ) -> Result<(DateTime<Utc>, SchemaSource), InsertAllError> {
        let residence = buffer
            .unwrap_or(self.settings.buffer)
            .sample(&mut rand::rng());
        let values = emulator_tables::as_values(rows);
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        // Residence on Postgres's clock, the one every buffer check compares with.
        let now: DateTime<Utc> = sqlx::query_scalar("select streamguard_clock()")
            .fetch_one(&mut *tx)
            .await
            .map_err(database_error)?;
        let until = add_saturating(now, residence);
        ensure_table(&mut tx, table).await?;
        let (schema, source) =
            emulator_tables::definition_for_write(&mut tx, table, &values).await?;
        let problems = schema.check_rows(&values, "/rows", MAX_REPORTED_ERRORS);
        if !problems.is_empty() {
            return Err(InsertAllError::Refused(problems));
        }
        let rows = Value::Array(values);
        sqlx::query(
            "insert into emulator.rows (table_ref, data, buffered_until)
             select $1, r, $3 from jsonb_array_elements($2) as r",
        )
        .bind(table.to_string())
        .bind(&rows)
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
        tx.commit().await.map_err(database_error)?;
        Ok((until, source))
    }

    /// Flushes the table's streaming buffer now, as BigQuery eventually does on its own:
    /// every buffered row leaves it, so replaces touching them are no longer refused.
    /// Returns how many rows left the buffer (0 for an unknown table). For tests and demos,
    /// which then never wait for a buffer to drain.
    ///
    /// # Errors
    /// [`Error::Transient`] when Postgres fails.
    pub async fn flush(&self, table: &TableRef) -> Result<u64, Error> {
        let flushed = sqlx::query(
            "update emulator.rows set buffered_until = streamguard_clock()
             where table_ref = $1 and buffered_until > streamguard_clock()",
        )
        .bind(table.to_string())
        .execute(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(flushed.rows_affected())
    }

    /// Every row of the table, in insertion order; empty when the table does not exist.
    ///
    /// # Errors
    /// [`Error::Transient`] when Postgres fails.
    pub async fn rows(&self, table: &TableRef) -> Result<Vec<StoredRow>, Error> {
        sqlx::query_as(
            "select data, coalesce(buffered_until > streamguard_clock(), false) as buffered, buffered_until
             from emulator.rows where table_ref = $1 order by row_id",
        )
        .bind(table.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)
    }

    /// Whether a buffered row blocks replacing `unit`, under the configured scope.
    async fn blocked(
        &self,
        tx: &mut sqlx::PgConnection,
        table: &TableRef,
        unit: &WriteUnit,
    ) -> Result<bool, Error> {
        let filter: Option<Value> = match (self.settings.conflict_scope, &unit.partition) {
            (ConflictScope::Row, _) => Some(Value::Object(unit.identity())),
            (ConflictScope::Partition, Some((column, value))) => Some(Value::Object(
                Map::from_iter([(column.as_str().to_owned(), value.clone())]),
            )),
            (ConflictScope::Partition, None) | (ConflictScope::Table, _) => None,
        };
        sqlx::query_scalar(
            "select exists (select 1 from emulator.rows
              where table_ref = $1 and buffered_until > streamguard_clock()
                and ($2::jsonb is null or data @> $2))",
        )
        .bind(table.to_string())
        .bind(filter)
        .fetch_one(tx)
        .await
        .map_err(database_error)
    }
}

async fn ensure_table(tx: &mut sqlx::PgConnection, table: &TableRef) -> Result<(), Error> {
    sqlx::query("insert into emulator.tables (table_ref) values ($1) on conflict do nothing")
        .bind(table.to_string())
        .execute(tx)
        .await
        .map_err(database_error)?;
    Ok(())
}

impl Emulator {
    /// Runs one statement in its own transaction, holding its job id's lock throughout.
    async fn run_statement(
        &self,
        table: &TableRef,
        job_id: &str,
        units: &[WriteUnit],
    ) -> Result<ReplaceOutcome, Error> {
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        // A running statement holds its job id's advisory lock for its transaction, so
        // settlement can tell a running statement from a finished or never-received one.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7367))")
            .bind(job_id)
            .execute(&mut *tx)
            .await
            .map_err(database_error)?;
        // A job id is run at most once, as in BigQuery (409 `duplicate`): a second send
        // answers the first one's outcome; a job id settlement gave up on is refused.
        let seen: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "select state, rows_deleted, rows_inserted from emulator.jobs where job_id = $1",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database_error)?;
        match seen {
            Some((state, deleted, inserted)) if state == "done" => {
                return Ok(outcome(deleted, inserted));
            }
            Some(_) => {
                return Err(Error::Transient {
                    message: format!("job {job_id} was abandoned by settlement before it arrived; nothing was written"),
                })
            }
            None => {}
        }
        ensure_table(&mut tx, table).await?;
        // BigQuery runs mutating DML on one table one after the other; so does the emulator.
        // `no key update` leaves concurrent insertAll calls (whose foreign key takes a
        // key-share lock on the table row) unblocked, as streaming is in BigQuery.
        sqlx::query("select 1 from emulator.tables where table_ref = $1 for no key update")
            .bind(table.to_string())
            .execute(&mut *tx)
            .await
            .map_err(database_error)?;
        // BigQuery analyses a statement before it runs it: a value the table cannot hold,
        // or a key it cannot compare, is refused before any buffered row is looked at.
        let (schema, _) =
            emulator_tables::definition_for_write(&mut tx, table, &emulator_tables::sample(units))
                .await?;
        let problems = emulator_tables::check_units(&schema, units);
        if !problems.is_empty() {
            return Err(emulator_tables::refused(&problems, true));
        }
        let (extra_latency, fault) = self.faults.for_table(table).draw();
        let latency = self.settings.latency + extra_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(f @ (Fault::ConcurrentDml | Fault::QuotaExceeded | Fault::Transient)) = fault {
            // Refused before anything is written; the transaction rolls back.
            return Err(f.error(table, job_id));
        }
        for unit in units {
            if self.blocked(&mut tx, table, unit).await? {
                return Err(Error::StreamingBuffer {
                    message: streaming_buffer_message(table),
                });
            }
        }
        let (mut deleted, mut inserted) = (0i64, 0i64);
        for unit in units {
            let d = sqlx::query("delete from emulator.rows where table_ref = $1 and data @> $2")
                .bind(table.to_string())
                .bind(Value::Object(unit.identity()))
                .execute(&mut *tx)
                .await
                .map_err(database_error)?
                .rows_affected();
            let i = sqlx::query(
                "insert into emulator.rows (table_ref, data) select $1, r from jsonb_array_elements($2) as r",
            )
            .bind(table.to_string())
            .bind(Value::Array(unit.rows.clone()))
            .execute(&mut *tx)
            .await
            .map_err(database_error)?
            .rows_affected();
            deleted += i64::try_from(d).unwrap_or(i64::MAX);
            inserted += i64::try_from(i).unwrap_or(i64::MAX);
        }
        sqlx::query(
            "insert into emulator.jobs (job_id, table_ref, state, rows_deleted, rows_inserted)
             values ($1, $2, 'done', $3, $4)",
        )
        .bind(job_id)
        .bind(table.to_string())
        .bind(deleted)
        .bind(inserted)
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
        tx.commit().await.map_err(database_error)?;
        if fault == Some(Fault::LostAnswer) {
            // The statement landed; its answer is lost on the way back.
            return Err(Fault::LostAnswer.error(table, job_id));
        }
        Ok(outcome(Some(deleted), Some(inserted)))
    }
}

fn outcome(deleted: Option<i64>, inserted: Option<i64>) -> ReplaceOutcome {
    ReplaceOutcome {
        rows_deleted: deleted.and_then(|d| u64::try_from(d).ok()),
        rows_inserted: inserted.and_then(|i| u64::try_from(i).ok()).unwrap_or(0),
        bytes_billed: None,
    }
}

#[async_trait]
impl Warehouse for Emulator {
    async fn replace(
        &self,
        table: &TableRef,
        job_id: &str,
        units: &[WriteUnit],
    ) -> Result<ReplaceOutcome, Error> {
        // The statement runs on a task of its own, so it outlives a caller that stops
        // waiting (a timeout, an aborted attempt), as a BigQuery job outlives its client.
        let (this, table, job_id, units) = (
            self.clone(),
            table.clone(),
            job_id.to_owned(),
            units.to_vec(),
        );
        tokio::spawn(async move { this.run_statement(&table, &job_id, &units).await })
            .await
            .unwrap_or_else(|e| {
                Err(Error::Transient {
                    message: format!("the emulator's statement task ended abnormally: {e}"),
                })
            })
    }

    async fn statement_fate(
        &self,
        table: &TableRef,
        job_id: &str,
        wait: Duration,
    ) -> Result<Fate, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut tx = self.pool.begin().await.map_err(database_error)?;
            let free: bool =
                sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 7367))")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(database_error)?;
            if !free {
                drop(tx);
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Fate::Running);
                }
                tokio::time::sleep(FATE_POLL.min(deadline - tokio::time::Instant::now())).await;
                continue;
            }
            // Holding the lock: no statement with this id runs now, and none can start
            // before this transaction ends.
            let seen: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "select state, rows_deleted, rows_inserted from emulator.jobs where job_id = $1",
            )
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(database_error)?;
            let fate = match seen {
                Some((state, deleted, inserted)) if state == "done" => {
                    Fate::Landed(outcome(deleted, inserted))
                }
                Some(_) => Fate::NeverArrived,
                None => {
                    // Never received, or refused (its transaction rolled back): either way
                    // nothing was written. Tombstone the id so a late arrival is refused.
                    sqlx::query(
                        "insert into emulator.jobs (job_id, table_ref, state) values ($1, $2, 'abandoned')",
                    )
                    .bind(job_id)
                    .bind(table.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(database_error)?;
                    Fate::NeverArrived
                }
            };
            tx.commit().await.map_err(database_error)?;
            return Ok(fate);
        }
    }

    async fn streaming_buffer(&self, table: &TableRef) -> Result<Option<StreamingBuffer>, Error> {
        let (rows, oldest, earliest): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "select count(*), min(created_at), min(buffered_until) from emulator.rows
              where table_ref = $1 and buffered_until > streamguard_clock()",
            )
            .bind(table.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        Ok((rows > 0).then(|| StreamingBuffer {
            estimated_rows: u64::try_from(rows).ok(),
            oldest_entry_time: oldest,
            earliest_drain: earliest,
        }))
    }

    async fn key_rows(&self, table: &TableRef, unit: &WriteUnit) -> Result<Option<KeyRows>, Error> {
        let (stored, buffered): (i64, i64) = sqlx::query_as(
            "select count(*), count(*) filter (where buffered_until > streamguard_clock())
             from emulator.rows where table_ref = $1 and data @> $2",
        )
        .bind(table.to_string())
        .bind(Value::Object(unit.identity()))
        .fetch_one(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(Some(KeyRows {
            stored: u64::try_from(stored).unwrap_or(0),
            buffered: u64::try_from(buffered).unwrap_or(0),
        }))
    }

    async fn table_schema(
        &self,
        table: &TableRef,
        _refresh: bool,
    ) -> Result<Option<TableSchema>, Error> {
        Ok(self.definition(table).await?.map(|(schema, _)| schema))
    }

    fn kind(&self) -> &'static str {
        "emulator"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_time_samples_within_its_range() {
        let b = BufferTime {
            min: Duration::from_secs(20),
            max: Duration::from_secs(60),
        };
        let mut rng = rand::rng();
        for _ in 0..100 {
            let d = b.sample(&mut rng);
            assert!(d >= b.min && d <= b.max);
        }
        assert_eq!(
            BufferTime::fixed(Duration::from_secs(5)).sample(&mut rng),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn buffer_times_are_bounded_and_time_arithmetic_saturates() {
        for bad in ["400000y", "8d", "1s..8d", "500000000000y"] {
            let e = bad.parse::<BufferTime>().unwrap_err();
            assert!(e.contains("7 days"), "{bad}: {e}");
        }
        assert_eq!("7d".parse::<BufferTime>().unwrap().max, MAX_BUFFER);
        let now = Utc::now();
        let latest = add_saturating(now, Duration::from_secs(u64::MAX));
        assert_eq!(latest.to_rfc3339(), "9999-12-31T23:59:59+00:00");
        assert_eq!(
            add_saturating(now, Duration::from_secs(30)),
            now + chrono::Duration::seconds(30)
        );
    }
}
