//! The BigQuery warehouse: [`BigQuery`] implements [`Warehouse`] against the BigQuery REST
//! API, on the `gcp-bigquery-client` crate's authenticator and request models.
//!
//! A replace is one `MERGE … ON FALSE` statement ([`sql`]) whose rows, keys and partition
//! values are query parameters built from the table's schema ([`params`], [`table`]), run
//! as a query job under the caller's job id, sent once and waited for with
//! jobs.getQueryResults' server-side timeout ([`job`]). A statement whose answer the caller
//! did not see is settled by [`Warehouse::statement_fate`] ([`fate`]): landed, failed,
//! still running, or never arrived — made final by occupying the id with a tombstone job.
//! Every failure is classified in one place ([`classify`]). DML does not pass through the
//! streaming buffer, so the service never creates the conflicts it retries.
//!
//! Facts relied on are in `docs/bigquery-facts.md` (cited by section, e.g. "A3").

pub mod auth;
pub mod check;
pub mod classify;
pub mod fate;
pub mod job;
pub mod params;
pub mod rest;
pub mod sql;
pub mod table;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::time::Instant;

pub use auth::Credentials;

use self::classify::{Classified, Failure};
use self::params::{estimate_request_bytes, Field, MAX_REQUEST_BYTES};
use self::rest::Rest;
use self::table::{SchemaCache, TableMeta};
use super::{write_check, Error, Fate, ReplaceOutcome, StreamingBuffer, Warehouse, WriteUnit};
use crate::domain::{TableRef, TableSchema};

/// BigQuery's REST endpoint (the crate's default, bigquery-facts A2).
pub const DEFAULT_ENDPOINT: &str = "https://bigquery.googleapis.com/bigquery/v2";

/// Timeout of each BigQuery HTTP request, unless set (`STREAMGUARD_BIGQUERY_TIMEOUT`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout of BigQuery HTTP requests, unless set
/// (`STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one job, unless set (`STREAMGUARD_BIGQUERY_JOB_TIMEOUT`).
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a `/readyz` probe result is reused before BigQuery is asked again.
const READINESS_TTL: Duration = Duration::from_secs(30);

/// How to reach BigQuery (from `STREAMGUARD_BIGQUERY_*` and `GOOGLE_APPLICATION_CREDENTIALS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQuerySettings {
    /// The project jobs run in and are billed to (`STREAMGUARD_BIGQUERY_PROJECT`); tables
    /// may live in other projects.
    pub project: String,
    /// Where jobs run, e.g. `US`, `EU`, `us-central1` (`STREAMGUARD_BIGQUERY_LOCATION`);
    /// `None` lets BigQuery pick from the tables the statement names.
    pub location: Option<String>,
    /// The REST base URL, without a trailing slash (`STREAMGUARD_BIGQUERY_ENDPOINT`,
    /// default [`DEFAULT_ENDPOINT`]); a test server or emulator serves `/projects/...` under it.
    pub endpoint: String,
    /// Where access tokens come from.
    pub credentials: Credentials,
    /// Whole-request timeout of each HTTP call (`STREAMGUARD_BIGQUERY_TIMEOUT`).
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout (`STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest wait for one job to finish inside `replace`; past it the call returns
    /// transient ("outcome unknown") after requesting a cancel, and the caller settles the
    /// statement with its fate (`STREAMGUARD_BIGQUERY_JOB_TIMEOUT`).
    pub job_timeout: Duration,
}

/// The BigQuery warehouse.
pub struct BigQuery {
    settings: BigQuerySettings,
    rest: Rest,
    schemas: SchemaCache,
    definitions: SchemaCache<TableSchema>,
    readiness: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for BigQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQuery")
            .field("settings", &self.settings)
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl BigQuery {
    /// Builds the adapter: reads the credentials (a key file is parsed now) and the HTTP
    /// client. Fetches no token and calls nothing; see [`Warehouse::readiness`].
    ///
    /// # Errors
    /// A sentence naming the setting to fix (e.g. an unreadable
    /// `GOOGLE_APPLICATION_CREDENTIALS` file).
    pub async fn connect(settings: BigQuerySettings) -> Result<Self, String> {
        let auth = settings
            .credentials
            .authenticator(settings.request_timeout)
            .await?;
        let rest = Rest::new(
            &settings.endpoint,
            auth,
            settings.request_timeout,
            settings.connect_timeout,
        )?;
        Ok(Self {
            settings,
            rest,
            schemas: SchemaCache::default(),
            definitions: SchemaCache::default(),
            readiness: Mutex::new(None),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &BigQuerySettings {
        &self.settings
    }

    /// tables.get.
    ///
    /// # Errors
    /// The classified failure (a 404 is [`Error::Permanent`]).
    pub async fn table_meta(&self, table: &TableRef) -> Result<TableMeta, Error> {
        let body = self
            .rest
            .get::<Value>(&table::path(table), &[])
            .await
            .map_err(|f| match classify::classify(&f) {
                Classified::Error(e) => e,
                Classified::Duplicate => Error::Transient {
                    message: "tables.get answered `duplicate`".into(),
                },
            })?;
        let meta = TableMeta::decode(body).map_err(|e| Error::Transient {
            message: format!("tables.get answered a body that is not a table: {e}"),
        })?;
        if let Some(definition) = &meta.definition {
            self.definitions.put(table, definition.clone());
        }
        Ok(meta)
    }

    /// The table's schema, from the cache unless `refresh`.
    async fn schema(
        &self,
        table: &TableRef,
        refresh: bool,
    ) -> Result<std::sync::Arc<Vec<Field>>, Error> {
        if !refresh {
            if let Some(s) = self.schemas.get(table) {
                return Ok(s);
            }
        }
        let fields = self.table_meta(table).await?.fields();
        if fields.is_empty() {
            return Err(Error::Permanent {
                message: format!("table {table} has no schema; give it one before writing to it"),
            });
        }
        Ok(self.schemas.put(table, fields))
    }

    /// Builds the statement from the cached schema, refreshing it once when the units do
    /// not fit (a column may have been added since it was cached).
    async fn statement(
        &self,
        table: &TableRef,
        units: &[WriteUnit],
    ) -> Result<(sql::Statement, std::sync::Arc<Vec<Field>>), Error> {
        let schema = self.schema(table, false).await?;
        // Batches accepted while the schema could not be read are checked here, before
        // BigQuery sees them; problems found with the cached schema are confirmed with a
        // fresh one.
        if let Some(definition) = self.definitions.get(table) {
            if !write_check::check_units(&definition, units).is_empty() {
                let fresh = self.table_meta(table).await?.definition;
                let problems = fresh
                    .map(|d| write_check::check_units(&d, units))
                    .unwrap_or_default();
                if !problems.is_empty() {
                    return Err(write_check::refused(&problems, false));
                }
            }
        }
        match sql::replace(table, &schema, units) {
            Ok(s) => Ok((s, schema)),
            Err(first) => {
                let fresh = self.schema(table, true).await?;
                if fresh == schema {
                    return Err(Error::Permanent { message: first });
                }
                sql::replace(table, &fresh, units)
                    .map(|s| (s, fresh))
                    .map_err(|message| Error::Permanent { message })
            }
        }
    }
}

#[async_trait]
impl Warehouse for BigQuery {
    #[tracing::instrument(skip_all, fields(table = %table, units = units.len(), job_id))]
    async fn replace(
        &self,
        table: &TableRef,
        job_id: &str,
        units: &[WriteUnit],
    ) -> Result<ReplaceOutcome, Error> {
        tracing::Span::current().record("job_id", job_id);
        let (statement, schema) = self.statement(table, units).await?;
        match self.run(job_id, &statement).await {
            Ok(done) => Ok(done.outcome(statement.rows)),
            Err(Error::Permanent { message }) => {
                // BigQuery may have refused because the cached schema is stale (a column
                // changed type or went away): if so, the next attempt uses the new one.
                match self.schema(table, true).await {
                    Ok(fresh) if fresh != schema => Err(Error::Transient {
                        message: format!("the schema of {table} changed since it was cached; retrying with the new one. BigQuery said: {message}"),
                    }),
                    _ => Err(Error::Permanent { message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn statement_fate(
        &self,
        table: &TableRef,
        job_id: &str,
        wait: Duration,
    ) -> Result<Fate, Error> {
        self.fate(table, job_id, wait).await
    }

    /// 5 table update operations per 10 seconds per table ("Maximum rate of table
    /// metadata update operations per table", BigQuery quotas page; bigquery-facts.md).
    fn statement_interval(&self) -> Duration {
        Duration::from_secs(2)
    }

    async fn streaming_buffer(&self, table: &TableRef) -> Result<Option<StreamingBuffer>, Error> {
        let meta = self.table_meta(table).await?;
        let fields = meta.fields();
        if !fields.is_empty() {
            self.schemas.put(table, fields);
        }
        Ok(meta.streaming_buffer())
    }

    async fn table_schema(
        &self,
        table: &TableRef,
        refresh: bool,
    ) -> Result<Option<TableSchema>, Error> {
        if !refresh {
            if let Some(cached) = self.definitions.get(table) {
                return Ok(Some((*cached).clone()));
            }
        }
        let meta = self.table_meta(table).await?;
        if let Some(definition) = &meta.definition {
            if !definition.fields.is_empty() {
                self.schemas.put(table, meta.fields());
            }
        }
        Ok(meta.definition.filter(|d| !d.fields.is_empty()))
    }

    fn kind(&self) -> &'static str {
        "bigquery"
    }

    fn check_unit(&self, rows: &[Value]) -> Result<(), String> {
        let estimate = estimate_request_bytes(rows);
        if estimate > MAX_REQUEST_BYTES {
            return Err(format!(
                "the key's {} rows would make a BigQuery request of about {:.1} MB; BigQuery refuses requests over 10 MB, and one key's rows are replaced in one statement (splitting it would not be atomic). Send fewer or smaller rows per key",
                rows.len(),
                estimate as f64 / 1e6
            ));
        }
        Ok(())
    }

    async fn readiness(&self) -> Result<(), String> {
        if let Some((at, result)) = self.readiness.lock().expect("readiness lock").as_ref() {
            if at.elapsed() < READINESS_TTL {
                return result.clone();
            }
        }
        let result = check::probe_project(self).await;
        *self.readiness.lock().expect("readiness lock") = Some((Instant::now(), result.clone()));
        result
    }
}

/// Turns a failure of a call made on behalf of an operator (check, readiness) into words
/// that name the setting to fix.
pub(crate) fn explain(settings: &BigQuerySettings, failure: &Failure) -> String {
    match failure {
        Failure::Transport { message } if message.starts_with("could not get an access token") => format!(
            "{message}; the credentials come from {} — fix GOOGLE_APPLICATION_CREDENTIALS or the machine's default credentials",
            settings.credentials.describe()
        ),
        Failure::Transport { message } => format!(
            "cannot reach BigQuery at {} (STREAMGUARD_BIGQUERY_ENDPOINT): {message}",
            settings.endpoint
        ),
        Failure::Http { status: 401, .. } => format!(
            "BigQuery rejected the access token from {} (HTTP 401); fix GOOGLE_APPLICATION_CREDENTIALS",
            settings.credentials.describe()
        ),
        Failure::Http { status: 403, body } => format!(
            "access denied in project {} (STREAMGUARD_BIGQUERY_PROJECT): the credentials need bigquery.jobs.create there (role roles/bigquery.jobUser) and write access to the tables (roles/bigquery.dataEditor). BigQuery said: {}",
            settings.project,
            message_of(failure).unwrap_or_else(|| body.clone())
        ),
        Failure::Http { status: 404, .. } => format!(
            "BigQuery answered 404 for project {} (STREAMGUARD_BIGQUERY_PROJECT): {}; check the project id and STREAMGUARD_BIGQUERY_ENDPOINT",
            settings.project,
            message_of(failure).unwrap_or_else(|| "not found".into())
        ),
        other => message_of(other).unwrap_or_else(|| format!("{other:?}")),
    }
}

fn message_of(failure: &Failure) -> Option<String> {
    match classify::classify(failure) {
        Classified::Error(e) => Some(e.to_string()),
        Classified::Duplicate => None,
    }
}

#[cfg(test)]
mod tests;
