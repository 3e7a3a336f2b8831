//! Running one statement as a query job under the caller's job id: jobs.insert, sent
//! once; then jobs.getQueryResults, which waits server-side, until the job is complete;
//! then one jobs.get for its final status and statistics — within a bound.
//!
//! - The job id is the caller's (the scheduler records it before the call) and is sent
//!   **once** per call. One place decides how often a statement is retried — the
//!   scheduler's retry policy — so a jobs.insert that times out, answers 5xx or cannot
//!   connect returns [`Error::Transient`] at once: whether BigQuery received it is unknown,
//!   and [`super::fate`] settles it later. When the caller sends the same id again, a 409
//!   `duplicate` means the job exists: it is looked up and waited for (how a lost answer
//!   is recovered; bigquery-facts B6) — unless the id holds a *tombstone* that settlement
//!   put there ([`TOMBSTONE_LABEL`]), in which case the statement was abandoned and
//!   nothing was written (transient, never landed).
//! - Waiting: `GET /projects/{p}/queries/{job}?location=…&timeoutMs=…&maxResults=0`
//!   (jobs.getQueryResults) holds each call up to [`WAIT_PER_CALL`] and answers
//!   `jobComplete`; no client-side polling schedule. A failed job answers that call with
//!   its error, so any non-transient answer goes to jobs.get, the authority.
//! - The final jobs.get gives `status.errorResult` (classified like any other failure,
//!   A3) or `statistics.query.dmlStats` (`insertedRowCount`, `deletedRowCount`) and
//!   `statistics.query.totalBytesBilled`, all strings in BigQuery's JSON.
//! - A job still running when `STREAMGUARD_BIGQUERY_JOB_TIMEOUT` passes is reported as
//!   transient, "outcome unknown"; a cancel is requested (best effort — BigQuery may run
//!   it to the end anyway), and the caller settles the statement with its fate.

use std::collections::HashMap;
use std::time::Duration;

use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_query::JobConfigurationQuery;
use gcp_bigquery_client::model::job_reference::JobReference;
use gcp_bigquery_client::model::job_status::JobStatus;
use serde::Deserialize;
use tokio::time::Instant;

use super::classify::{classify, Classified, Failure};
use super::params::MAX_REQUEST_BYTES;
use super::sql::Statement;
use super::BigQuery;
use crate::warehouse::{Error, ReplaceOutcome};

/// The longest server-side wait asked of one jobs.getQueryResults call (`timeoutMs`; the
/// API's own default is 10 s). Also kept under half the HTTP request timeout.
pub const WAIT_PER_CALL: Duration = Duration::from_secs(10);
/// Consecutive failed calls tolerated while waiting for one job.
const WAIT_FAILURES: u32 = 5;
/// The least time between two wait calls: a server that answers `jobComplete: false`
/// without holding the call is not hammered. Also the pause unit after a failed call.
const WAIT_FLOOR: Duration = Duration::from_millis(500);

/// The label (value `true`) of a tombstone: a `SELECT 1` job that settlement inserts under
/// the id of a statement BigQuery never received, so that a late arrival of the statement
/// is refused as a duplicate and can never run.
pub const TOMBSTONE_LABEL: &str = "streamguard_tombstone";
/// The tombstone's query: no table, nothing billed.
pub const TOMBSTONE_SQL: &str = "SELECT 1";

/// The parts of a `Job` resource read back (statistics via a small type of our own: the
/// crate's `JobStatistics2` has no `dmlStats`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobReply {
    #[serde(default)]
    job_reference: Option<JobReference>,
    #[serde(default)]
    status: Option<JobStatus>,
    #[serde(default)]
    statistics: Option<Statistics>,
    #[serde(default)]
    configuration: Option<ConfigurationReply>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigurationReply {
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
    #[serde(default)]
    query: Option<QueryConfigurationReply>,
}

#[derive(Debug, Default, Deserialize)]
struct QueryConfigurationReply {
    #[serde(default)]
    query: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Statistics {
    #[serde(default)]
    query: Option<QueryStatistics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryStatistics {
    #[serde(default)]
    dml_stats: Option<DmlStats>,
    #[serde(default)]
    total_bytes_billed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DmlStats {
    #[serde(default)]
    inserted_row_count: Option<String>,
    #[serde(default)]
    deleted_row_count: Option<String>,
}

/// The parts of a jobs.getQueryResults answer read (`GetQueryResultsResponse`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResultsReply {
    #[serde(default)]
    job_complete: bool,
}

/// What a finished job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `statistics.query.dmlStats.insertedRowCount`.
    pub inserted: Option<u64>,
    /// `statistics.query.dmlStats.deletedRowCount`.
    pub deleted: Option<u64>,
    /// `statistics.query.totalBytesBilled`.
    pub bytes_billed: Option<u64>,
}

impl Finished {
    /// The outcome, with `inserted` standing in when BigQuery did not report dmlStats.
    pub fn outcome(&self, inserted: u64) -> ReplaceOutcome {
        ReplaceOutcome {
            rows_deleted: self.deleted,
            rows_inserted: self.inserted.unwrap_or(inserted),
            bytes_billed: self.bytes_billed,
        }
    }
}

impl JobReply {
    pub(super) fn is_done(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.state.as_deref())
            .is_some_and(|s| s == "DONE")
    }

    pub(super) fn location(&self) -> Option<String> {
        self.job_reference.as_ref().and_then(|r| r.location.clone())
    }

    /// Whether this job is a tombstone rather than a statement: it carries the tombstone
    /// label, or its query text (when reported) is the tombstone's. Not "any text but this
    /// call's SQL": the same statement re-sent after a schema refresh has other text, and
    /// is still ours.
    pub(super) fn is_tombstone(&self) -> bool {
        let config = self.configuration.as_ref();
        let labelled = config
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(TOMBSTONE_LABEL))
            .is_some_and(|v| v == "true");
        let text = config
            .and_then(|c| c.query.as_ref())
            .and_then(|q| q.query.as_deref());
        labelled || text.is_some_and(|t| t.trim() == TOMBSTONE_SQL)
    }

    /// The result of a `DONE` job. A job cancelled (reason `stopped`) wrote nothing and
    /// may be sent again: transient.
    pub(super) fn result(&self) -> Result<Finished, Error> {
        if let Some(e) = self.status.as_ref().and_then(|s| s.error_result.as_ref()) {
            if e.reason.as_deref() == Some("stopped") {
                return Err(Error::Transient {
                    message: format!(
                        "the job was cancelled before it finished; nothing was written. BigQuery said: {}",
                        e.message.as_deref().unwrap_or("stopped")
                    ),
                });
            }
            return Err(as_error(&Failure::Job {
                reason: e.reason.clone(),
                message: e.message.clone(),
            }));
        }
        let query = self.statistics.as_ref().and_then(|s| s.query.as_ref());
        let dml = query.and_then(|q| q.dml_stats.as_ref());
        let count = |c: Option<&String>| c.and_then(|c| c.parse().ok());
        Ok(Finished {
            inserted: count(dml.and_then(|d| d.inserted_row_count.as_ref())),
            deleted: count(dml.and_then(|d| d.deleted_row_count.as_ref())),
            bytes_billed: count(query.and_then(|q| q.total_bytes_billed.as_ref())),
        })
    }
}

/// Classification where a duplicate cannot be the answer (it is only meaningful for
/// jobs.insert): treated as transient.
pub(super) fn as_error(f: &Failure) -> Error {
    match classify(f) {
        Classified::Error(e) => e,
        Classified::Duplicate => Error::Transient {
            message: "BigQuery answered `duplicate` where no job was being created".into(),
        },
    }
}

impl BigQuery {
    /// A query job running `sql` with `params`, named `job_id`, labelled `labels`.
    fn query_job(
        &self,
        job_id: &str,
        location: Option<String>,
        query: JobConfigurationQuery,
        labels: &[(&str, &str)],
    ) -> Job {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Job {
            configuration: Some(JobConfiguration {
                query: Some(JobConfigurationQuery {
                    use_legacy_sql: Some(false),
                    ..query
                }),
                labels: Some(labels),
                ..Default::default()
            }),
            job_reference: Some(JobReference {
                job_id: Some(job_id.to_owned()),
                location,
                project_id: Some(self.settings.project.clone()),
            }),
            ..Default::default()
        }
    }

    /// The query job for `statement`, named `job_id`.
    pub(super) fn job(&self, job_id: &str, statement: &Statement) -> Job {
        let query = JobConfigurationQuery {
            query: statement.sql.clone(),
            query_parameters: Some(statement.params.clone()),
            parameter_mode: Some("NAMED".into()),
            ..Default::default()
        };
        let location = self.settings.location.clone();
        self.query_job(job_id, location, query, &[("app", "streamguard")])
    }

    /// The tombstone job occupying `job_id` ([`TOMBSTONE_SQL`], [`TOMBSTONE_LABEL`]).
    pub(super) fn tombstone(&self, job_id: &str, location: Option<String>) -> Job {
        let query = JobConfigurationQuery {
            query: TOMBSTONE_SQL.into(),
            ..Default::default()
        };
        let labels = [("app", "streamguard"), (TOMBSTONE_LABEL, "true")];
        self.query_job(job_id, location, query, &labels)
    }

    /// The jobs.insert path.
    pub(super) fn jobs_path(&self) -> String {
        format!("/projects/{}/jobs", self.settings.project)
    }

    /// Runs `statement` as job `job_id` to completion, sending it once.
    ///
    /// # Errors
    /// A classified [`Error`]; [`Error::Permanent`] when the request would exceed
    /// BigQuery's 10 MB limit (nothing is sent then); [`Error::Transient`] when the send
    /// got no usable answer, the job outlived `STREAMGUARD_BIGQUERY_JOB_TIMEOUT`, or the id
    /// holds a tombstone.
    pub(super) async fn run(&self, job_id: &str, statement: &Statement) -> Result<Finished, Error> {
        let job = self.job(job_id, statement);
        let size = serde_json::to_vec(&job).map_or(0, |b| b.len());
        if size > MAX_REQUEST_BYTES {
            return Err(Error::Permanent {
                message: format!(
                    "the replace request is {size} bytes; BigQuery refuses requests over 10 MB; send fewer keys or rows per statement"
                ),
            });
        }
        let started = Instant::now();
        let location = self.settings.location.clone();
        let reply: JobReply = match self.rest.post(&self.jobs_path(), &job).await {
            Ok(reply) => reply,
            Err(failure) => match classify(&failure) {
                Classified::Duplicate => {
                    tracing::info!(job_id, "job exists already (an earlier send reached BigQuery); looking it up");
                    let found = self.get_job(job_id, location.as_deref()).await?;
                    if found.is_tombstone() {
                        return Err(Error::Transient {
                            message: format!("job {job_id} was abandoned by settlement (its id holds a tombstone); the statement never ran and nothing was written"),
                        });
                    }
                    found
                }
                Classified::Error(Error::Transient { message }) => {
                    return Err(Error::Transient {
                        message: format!("jobs.insert of job {job_id} got no usable answer, so whether BigQuery received it is unknown (it is not sent again; its fate is settled later): {message}"),
                    })
                }
                Classified::Error(e) => return Err(e),
            },
        };
        if reply.is_done() {
            return reply.result();
        }
        let location = reply.location().or(location);
        let deadline = started + self.settings.job_timeout;
        match self.wait(job_id, location.as_deref(), deadline).await? {
            Some(done) => done.result(),
            None => {
                self.cancel(job_id, location.as_deref()).await;
                Err(Error::Transient {
                    message: format!(
                        "job {job_id} was still running after {:?} (STREAMGUARD_BIGQUERY_JOB_TIMEOUT); cancel requested, outcome unknown",
                        self.settings.job_timeout
                    ),
                })
            }
        }
    }

    /// Waits for job `job_id` with jobs.getQueryResults until it is complete or
    /// `deadline` passes, then reads it with jobs.get: `Some` (a `DONE` job) or `None`
    /// (still running at the deadline).
    ///
    /// # Errors
    /// A classified [`Error`] when BigQuery cannot be asked ([`WAIT_FAILURES`] transient
    /// failures in a row, or a permanent one jobs.get confirms).
    pub(super) async fn wait(
        &self,
        job_id: &str,
        location: Option<&str>,
        deadline: Instant,
    ) -> Result<Option<JobReply>, Error> {
        let path = format!("/projects/{}/queries/{job_id}", self.settings.project);
        let per_call = WAIT_PER_CALL.min(self.settings.request_timeout / 2);
        let mut failures = 0;
        loop {
            let called = Instant::now();
            if called >= deadline {
                return Ok(None);
            }
            let timeout_ms = (deadline - called).min(per_call).as_millis().to_string();
            let mut query = vec![("timeoutMs", timeout_ms.as_str()), ("maxResults", "0")];
            query.extend(location.map(|l| ("location", l)));
            // `Some(why)` when this round failed transiently.
            let failed = match self.rest.get::<QueryResultsReply>(&path, &query).await {
                Ok(r) if !r.job_complete => None,
                Err(f) if matches!(classify(&f), Classified::Error(Error::Transient { .. })) => {
                    Some(as_error(&f).to_string())
                }
                // Complete, or an error: a failed job answers getQueryResults with its
                // error, so jobs.get, the authority, says which.
                _ => match self.get_job(job_id, location).await {
                    Ok(reply) if reply.is_done() => return Ok(Some(reply)),
                    Ok(_) => None,
                    Err(Error::Transient { message }) => Some(message),
                    Err(e) => return Err(e),
                },
            };
            let pause = if let Some(why) = failed {
                failures += 1;
                if failures >= WAIT_FAILURES {
                    return Err(Error::Transient {
                        message: format!("waiting for job {job_id} failed {failures} times in a row, outcome unknown; last: {why}"),
                    });
                }
                WAIT_FLOOR * failures
            } else {
                failures = 0;
                // Nothing when the server held the call; a pause when it answered at once.
                WAIT_FLOOR.saturating_sub(called.elapsed())
            };
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// jobs.get for `job_id` (in `location`).
    pub(super) async fn get_job(
        &self,
        job_id: &str,
        location: Option<&str>,
    ) -> Result<JobReply, Error> {
        self.get_job_raw(job_id, location)
            .await
            .map_err(|f| as_error(&f))
    }

    /// jobs.get, with the failure as it came back.
    pub(super) async fn get_job_raw(
        &self,
        job_id: &str,
        location: Option<&str>,
    ) -> Result<JobReply, Failure> {
        let path = format!("/projects/{}/jobs/{job_id}", self.settings.project);
        let query: Vec<(&str, &str)> = location.map(|l| ("location", l)).into_iter().collect();
        self.rest.get(&path, &query).await
    }

    /// Asks BigQuery to cancel a job; failures are logged only.
    async fn cancel(&self, job_id: &str, location: Option<&str>) {
        let mut path = format!("/projects/{}/jobs/{job_id}/cancel", self.settings.project);
        if let Some(l) = location {
            path.push_str(&format!("?location={l}"));
        }
        if let Err(f) = self
            .rest
            .post::<_, serde_json::Value>(&path, &serde_json::json!({}))
            .await
        {
            tracing::warn!(job_id, error = ?f, "cancelling the job failed");
        }
    }
}
