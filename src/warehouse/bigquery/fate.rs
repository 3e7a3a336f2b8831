//! Settling a statement whose caller did not see its answer ([`Warehouse::statement_fate`]
//! for BigQuery): what became of job `job_id`?
//!
//! - jobs.get (with the job's location: the configured one, else the table's) finds it
//!   `DONE` without `errorResult` → [`Fate::Landed`], with `dmlStats` and
//!   `totalBytesBilled`; `DONE` with `errorResult` → [`Fate::Failed`] (classified; a
//!   cancelled job is transient); `PENDING`/`RUNNING` → waited for up to `wait` with
//!   jobs.getQueryResults' server-side timeout ([`super::job`]), then
//!   [`Fate::Running`] if still not done.
//! - 404 `Not found: Job …` → the job never reached BigQuery, but a stalled caller could
//!   still send it. To make [`Fate::NeverArrived`] true, the id is occupied with a
//!   *tombstone*: a `SELECT 1` job labelled `streamguard_tombstone=true` inserted under the
//!   same id (nothing billed). A late send of the statement is then refused with 409
//!   `duplicate`, and `replace` reports it abandoned, never landed. If the tombstone's own
//!   insert answers 409 `duplicate`, the real job arrived meanwhile: it is looked up and
//!   its fate answered. A job found to be a tombstone (settled before) is `NeverArrived`.
//!
//! [`Warehouse::statement_fate`]: crate::warehouse::Warehouse::statement_fate

use std::time::Duration;

use tokio::time::Instant;

use super::classify::{classify, Classified, Failure};
use super::job::{as_error, JobReply};
use super::BigQuery;
use crate::domain::TableRef;
use crate::warehouse::{Error, Fate};

impl BigQuery {
    /// The fate of job `job_id`, sent to `table`, waiting up to `wait` while it runs.
    ///
    /// # Errors
    /// A classified [`Error`] when BigQuery cannot be asked (or the tombstone cannot be
    /// inserted): the fate is unknown.
    pub(super) async fn fate(
        &self,
        table: &TableRef,
        job_id: &str,
        wait: Duration,
    ) -> Result<Fate, Error> {
        let location = self.job_location(table).await?;
        match self.get_job_raw(job_id, location.as_deref()).await {
            Ok(found) => self.fate_of(job_id, found, location, wait).await,
            Err(f) if job_not_found(&f) => self.occupy(job_id, location, wait).await,
            Err(f) => Err(as_error(&f)),
        }
    }

    /// Inserts the tombstone under `job_id`; on `duplicate`, the real job's fate.
    async fn occupy(
        &self,
        job_id: &str,
        location: Option<String>,
        wait: Duration,
    ) -> Result<Fate, Error> {
        let tombstone = self.tombstone(job_id, location.clone());
        match self
            .rest
            .post::<_, JobReply>(&self.jobs_path(), &tombstone)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    job_id,
                    "job never reached BigQuery; its id now holds a tombstone"
                );
                Ok(Fate::NeverArrived)
            }
            Err(f) => match classify(&f) {
                Classified::Duplicate => {
                    tracing::info!(
                        job_id,
                        "job arrived while its tombstone was being inserted; settling it"
                    );
                    let found = self.get_job(job_id, location.as_deref()).await?;
                    self.fate_of(job_id, found, location, wait).await
                }
                Classified::Error(e) => Err(e),
            },
        }
    }

    /// The fate of a job found by jobs.get, waiting up to `wait` while it runs.
    async fn fate_of(
        &self,
        job_id: &str,
        found: JobReply,
        location: Option<String>,
        wait: Duration,
    ) -> Result<Fate, Error> {
        if found.is_tombstone() {
            return Ok(Fate::NeverArrived);
        }
        let done = if found.is_done() {
            found
        } else {
            let location = found.location().or(location);
            let deadline = Instant::now() + wait;
            match self.wait(job_id, location.as_deref(), deadline).await? {
                Some(done) => done,
                None => return Ok(Fate::Running),
            }
        };
        Ok(match done.result() {
            Ok(finished) => Fate::Landed(finished.outcome(0)),
            Err(e) => Fate::Failed(e),
        })
    }

    /// Where jobs over `table` run: the configured location, else the table's own
    /// (tables.get), which is where BigQuery placed the statement.
    async fn job_location(&self, table: &TableRef) -> Result<Option<String>, Error> {
        if let Some(l) = &self.settings.location {
            return Ok(Some(l.clone()));
        }
        match self.table_meta(table).await {
            Ok(meta) => Ok(meta.location),
            Err(e @ Error::Transient { .. }) => Err(e),
            // A table that is gone: ask without a location (BigQuery's default).
            Err(_) => Ok(None),
        }
    }
}

/// Whether jobs.get answered 404 for the job itself (`Not found: Job p:L.id`), not for
/// the project or dataset.
fn job_not_found(f: &Failure) -> bool {
    match f {
        Failure::Http { status: 404, body } => body.contains("Not found: Job"),
        _ => false,
    }
}
