//! The warehouse seam: one trait, [`Warehouse`], with two implementations — the embedded
//! [`emulator`] (the default, and the backend of the demo and the end-to-end tests) and
//! BigQuery itself ([`bigquery`]).
//!
//! A replace deletes every row of the table whose key (and partition) equals a unit's, and
//! inserts the unit's rows, for every unit passed in — all land, or none does. Failures
//! are *classified* here ([`Error`]), so the scheduler never matches on text.

pub mod bigquery;
pub mod emulator;
pub mod emulator_tables;
pub mod faults;
pub mod write_check;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{ColumnName, ErrorClass, TableRef, TableSchema};

/// One write unit as the warehouse sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteUnit {
    /// The unit's id (stable across attempts).
    pub unit_id: Uuid,
    /// The attempt number (1-based); with `unit_id` it makes a deterministic job id, so a
    /// resubmitted attempt is recognised.
    pub attempt: i32,
    /// Key column → value, e.g. `{"game_id": "20260124_LAL_BOS"}`.
    pub key: Map<String, Value>,
    /// Partition column and value, when the table is partitioned.
    pub partition: Option<(ColumnName, Value)>,
    /// The rows to write (JSON objects); empty for a pure delete.
    pub rows: Vec<Value>,
}

impl WriteUnit {
    /// The object a stored row must contain to belong to this unit: the key columns plus
    /// the partition column.
    pub fn identity(&self) -> Map<String, Value> {
        let mut m = self.key.clone();
        if let Some((column, value)) = &self.partition {
            m.insert(column.as_str().to_owned(), value.clone());
        }
        m
    }
}

/// What a successful replace did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplaceOutcome {
    /// Rows deleted, when the warehouse reports it.
    pub rows_deleted: Option<u64>,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Bytes billed (BigQuery's `statistics.query.totalBytesBilled`), when reported.
    pub bytes_billed: Option<u64>,
}

/// The fate of a statement sent earlier whose answer the caller did not see (a crash after
/// sending, a timeout), from [`Warehouse::statement_fate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Still running: wait for it before sending anything else for its keys.
    Running,
    /// It landed: its units are loaded by it.
    Landed(ReplaceOutcome),
    /// It was refused or cancelled: nothing was written.
    Failed(Error),
    /// The warehouse never received it, and now never will: a late arrival of the same job
    /// id is refused. Nothing was written.
    NeverArrived,
}

/// The state of a table's streaming buffer (BigQuery `tables.get` → `streamingBuffer`,
/// <https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#streamingbuffer>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingBuffer {
    /// Lower-bound estimate of the rows in the buffer.
    pub estimated_rows: Option<u64>,
    /// The oldest entry's time (BigQuery reports milliseconds since the epoch).
    pub oldest_entry_time: Option<DateTime<Utc>>,
    /// A lower bound on when the buffer can next shrink: no buffered row leaves before it,
    /// so no replace the buffer blocks can succeed before it. The scheduler never places a
    /// retry earlier. The emulator knows it exactly (each row's residence is set at
    /// insertAll); BigQuery does not document one, so its adapter leaves it `None` unless
    /// it can justify an estimate.
    pub earliest_drain: Option<DateTime<Utc>>,
}

/// A classified warehouse failure. The message is the warehouse's own text, kept for the
/// conflict log and the unit's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The statement would affect rows in the streaming buffer (BigQuery's message:
    /// "UPDATE or DELETE statement over table … would affect rows in the streaming buffer,
    /// which is not supported").
    #[error("{message}")]
    StreamingBuffer {
        /// The warehouse's message.
        message: String,
    },
    /// Concurrent DML or an aborted transaction on the same table.
    #[error("{message}")]
    ConcurrentUpdate {
        /// The warehouse's message.
        message: String,
    },
    /// A rate limit or quota.
    #[error("{message}")]
    QuotaExceeded {
        /// The warehouse's message.
        message: String,
        /// How long the warehouse asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Unknown outcome or a server-side failure; retry.
    #[error("{message}")]
    Transient {
        /// What happened.
        message: String,
    },
    /// Waiting cannot cure it.
    #[error("{message}")]
    Permanent {
        /// What happened.
        message: String,
    },
}

impl Error {
    /// The class the scheduler acts on.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::StreamingBuffer { .. } => ErrorClass::StreamingBuffer,
            Self::ConcurrentUpdate { .. } => ErrorClass::ConcurrentDml,
            Self::QuotaExceeded { .. } => ErrorClass::QuotaExceeded,
            Self::Transient { .. } => ErrorClass::Transient,
            Self::Permanent { .. } => ErrorClass::Permanent,
        }
    }
}

/// A place rows are replaced in: BigQuery, or the emulator.
#[async_trait]
pub trait Warehouse: Send + Sync + 'static {
    /// Runs one statement, `job_id`, that atomically replaces, for every unit (all of one
    /// `table`), the rows of its key with its rows: all units land, or none does. The job
    /// id is the caller's (recorded before the call) and is sent once: a second call with
    /// the same id never runs the statement twice.
    ///
    /// The statement may outlive this call (the future dropped, the process killed after
    /// the warehouse received it): [`Warehouse::statement_fate`] tells later what became
    /// of it.
    ///
    /// # Errors
    /// A classified [`Error`]; on any error but [`Error::Transient`] nothing was written.
    /// A transient error may leave the statement running: settle it before sending another
    /// for the same keys.
    async fn replace(
        &self,
        table: &TableRef,
        job_id: &str,
        units: &[WriteUnit],
    ) -> Result<ReplaceOutcome, Error>;

    /// What became of statement `job_id`, sent to `table` earlier, waiting at most `wait`
    /// for it to finish when it is still running.
    ///
    /// # Errors
    /// A classified [`Error`] when the warehouse cannot be asked; the fate is then unknown.
    async fn statement_fate(
        &self,
        table: &TableRef,
        job_id: &str,
        wait: Duration,
    ) -> Result<Fate, Error>;

    /// The shortest interval between two statements to one table that the warehouse
    /// accepts without quota refusals; pacing starts there and backs off on quota answers.
    /// BigQuery documents 5 table update operations per 10 seconds per table; the
    /// default is no limit.
    fn statement_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// The table's streaming-buffer state; `None` when it has no buffer (or does not exist).
    /// A hint only: BigQuery's metadata lags behind streaming inserts by seconds, so "no
    /// buffer" never proves a replace will succeed.
    ///
    /// # Errors
    /// A classified [`Error`] when the metadata cannot be read.
    async fn streaming_buffer(&self, table: &TableRef) -> Result<Option<StreamingBuffer>, Error>;

    /// Rows the table holds now for the unit's key (and partition), and how many of them
    /// are in the streaming buffer — what a force-mode dry run reports. `None` when the
    /// warehouse cannot say cheaply (the default).
    ///
    /// # Errors
    /// A classified [`Error`] when the rows cannot be counted.
    async fn key_rows(&self, table: &TableRef, unit: &WriteUnit) -> Result<Option<KeyRows>, Error> {
        let _ = (table, unit);
        Ok(None)
    }

    /// The table's schema, partitioning and clustering, for checking rows at intake:
    /// BigQuery's from `tables.get` (cached; `refresh` reads it again), the emulator's as
    /// declared with `POST /emulator/tables` or inferred from the first write. `None` when
    /// the warehouse knows no schema for the table (the default).
    ///
    /// # Errors
    /// A classified [`Error`] when the metadata cannot be read (e.g. BigQuery unreachable).
    async fn table_schema(
        &self,
        table: &TableRef,
        refresh: bool,
    ) -> Result<Option<TableSchema>, Error> {
        let _ = (table, refresh);
        Ok(None)
    }

    /// A short name for logs and `/readyz`: `emulator` or `bigquery`.
    fn kind(&self) -> &'static str;

    /// Refuses, at intake, a unit (its rows) that this warehouse could never write in one
    /// statement, e.g. over BigQuery's 10 MB request limit. The default accepts all.
    ///
    /// # Errors
    /// Why, in words for the caller.
    fn check_unit(&self, rows: &[Value]) -> Result<(), String> {
        let _ = rows;
        Ok(())
    }

    /// Whether the warehouse can be reached with the configured credentials, for
    /// `/readyz` and start-up. The default is always ready.
    ///
    /// # Errors
    /// What is wrong, naming the setting to fix.
    async fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The rows stored for one key, from [`Warehouse::key_rows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct KeyRows {
    /// Rows whose key (and partition) equal the unit's: what a replace deletes.
    pub stored: u64,
    /// Of which still in the streaming buffer (a replace touching them is refused).
    pub buffered: u64,
}
