//! The store: every SQL statement of the service (the emulator's own storage excepted, see
//! [`crate::warehouse::emulator`]), over one Postgres pool. Migrations live in
//! `migrations/` and are embedded in the binary.
//!
//! - [`batches`]: intake (batch + write units + one job each, in one transaction),
//!   idempotency, supersession, and the batch view;
//! - [`jobs`]: the job table — claims of groups, lease renewal, rescue of expired leases;
//! - [`record`]: the fenced recording of attempts, one transaction per statement outcome;
//! - [`statements`]: statement records, their settlement, per-table pacing and holds;
//! - [`conflicts`]: the conflict log and the operators' dashboard queries;
//! - [`breakers`]: the circuit breakers shared by every replica;
//! - [`alerts`]: the alert outbox, written in the transaction of the event it reports;
//! - [`operator`]: operator actions on conflicts and units, and conflicts reported by
//!   processors themselves;
//! - [`runs`]: backfill runs' progress and reports.

pub mod alerts;
pub mod batches;
pub mod breakers;
pub mod conflict_list;
pub mod conflicts;
pub mod jobs;
pub mod metrics;
pub mod operator;
pub mod record;
pub mod runs;
pub mod statement_metrics;
pub mod statements;
pub mod units;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::breaker::{BreakerScope, BreakerSettings};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The `pg_notify` channel the scheduler listens on; intake notifies it when new jobs are due.
pub const JOBS_CHANNEL: &str = "streamguard_jobs";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The idempotency key was used before with a different payload.
    #[error(
        "idempotency key {key:?} was already used for batch {batch_id} with a different payload"
    )]
    IdempotencyMismatch {
        /// The key.
        key: String,
        /// The batch it belongs to.
        batch_id: uuid::Uuid,
    },
    /// No such conflict, unit or breaker.
    #[error("{0}")]
    NotFound(String),
    /// The action is refused in the target's current state (superseded, in flight, ended).
    #[error("{0}")]
    Refused(String),
    /// The request breaks a rule the store checks (a field, by JSON pointer, and why).
    #[error("{1}")]
    Invalid(String, String),
    /// Other replicas kept changing the same row; the operation was not applied.
    #[error("too much contention on {0}; try again")]
    Contention(String),
}

/// What the store needs to know beyond the pool: the breaker's rules and scope, and the
/// alert channels an event is queued for.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The breaker's thresholds and times.
    pub breaker: BreakerSettings,
    /// What a breaker covers: a processor (default) or a table.
    pub breaker_scope: BreakerScope,
    /// Names of the configured alert channels (`slack`, `webhook`, `email`); empty means
    /// alerts are only logged (they are queued for the `log` channel).
    pub alert_channels: Vec<String>,
    /// The retry policy's give-up horizon: processor-reported conflicts not ended by then
    /// are closed as `timeout`.
    pub retry_horizon: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            breaker: BreakerSettings::default(),
            breaker_scope: BreakerScope::Processor,
            alert_channels: Vec::new(),
            retry_horizon: Duration::from_secs(195 * 60),
        }
    }
}

/// The service's handle on Postgres. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    config: Arc<StoreConfig>,
    clock: Clock,
}

impl Store {
    /// Wraps an existing pool (tests get theirs from `#[sqlx::test]`), with the default
    /// [`StoreConfig`].
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            config: Arc::default(),
            clock: Clock::Postgres,
        }
    }

    /// The same store with `config`.
    pub fn with_config(self, config: StoreConfig) -> Self {
        Self {
            config: Arc::new(config),
            ..self
        }
    }

    /// The same store reading `clock`. A manual clock must also be installed on the pool
    /// ([`Clock::pool_options`]) for SQL to follow it.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Connects to `url`, creating the database first when it does not exist.
    ///
    /// # Errors
    /// [`Error::Database`] when Postgres is unreachable or refuses.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        if !Postgres::database_exists(url).await? {
            Postgres::create_database(url).await?;
            tracing::info!(database = %database_name(url), "created database");
        }
        let options = PgConnectOptions::from_str(url)?.application_name("streamguard");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::new(pool))
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Migrate`] when a migration fails or the database has migrations this
    /// binary does not know.
    pub async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The shared clock's time ([`crate::clock`]): Postgres's `clock_timestamp()`, or the
    /// manual clock's. Times the job table compares with `streamguard_now()` — retry times,
    /// holds — are placed on this clock, not the service's, so a service whose own clock is
    /// off never retries early or late.
    ///
    /// # Errors
    /// [`Error::Database`] (never for a manual clock).
    pub async fn now(&self) -> Result<chrono::DateTime<chrono::Utc>, Error> {
        if let Some(manual) = self.clock.manual() {
            return Ok(manual.now());
        }
        Ok(sqlx::query_scalar("select streamguard_clock()")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The pool, for the emulator and the scheduler's LISTEN connection.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Readiness: the database answers and every embedded migration has been applied.
    /// Returns what is missing, in words.
    ///
    /// # Errors
    /// [`Error::Database`] when the database does not answer.
    pub async fn readiness(&self) -> Result<Option<String>, Error> {
        let applied: Vec<i64> = sqlx::query_scalar(
            "select version from _sqlx_migrations where success order by version",
        )
        .fetch_all(&self.pool)
        .await
        .or_else(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(Vec::new()),
            _ => Err(e),
        })?;
        let missing: Vec<String> = MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect();
        Ok(
            (!missing.is_empty())
                .then(|| format!("migrations not applied: {}", missing.join(", "))),
        )
    }
}

/// The default database: a local Postgres database named `streamguard` (created if
/// missing), unless `DATABASE_URL` is set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/streamguard";

/// The database name of a Postgres URL, for messages.
pub fn database_name(url: &str) -> String {
    PgConnectOptions::from_str(url)
        .ok()
        .and_then(|o| o.get_database().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
