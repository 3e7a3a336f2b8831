//! Running one statement as a query job with a deterministic id: jobs.insert, then
//! jobs.get until the job is `DONE`, within a bound.
//!
//! - The job id is `streamguard-<unit>-<attempt>` ([`job_id`]); each claim of a unit has a
//!   new attempt number, so each attempt is one job. A send that timed out or failed with
//!   a server error is sent again *with the same id* (a few times): if the first send had
//!   reached BigQuery, the answer is 409 `duplicate` and the job is looked up instead —
//!   the statement never runs twice (bigquery-facts B6, "Design implications" 5).
//! - A job that fails after acceptance comes back as HTTP 200 with `status.errorResult`
//!   and is classified like any other failure (A3).
//! - Polling backs off from 250 ms to 5 s; a job still running when the bound
//!   (`STREAMGUARD_BIGQUERY_JOB_TIMEOUT`) passes is cancelled (best effort) and reported
//!   as transient: its outcome is unknown, and a later attempt replaces the same rows.

use std::time::Duration;

use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_query::JobConfigurationQuery;
use gcp_bigquery_client::model::job_reference::JobReference;
use gcp_bigquery_client::model::job_status::JobStatus;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::classify::{classify, Classified, Failure};
use super::params::MAX_REQUEST_BYTES;
use super::sql::Statement;
use super::BigQuery;
use crate::warehouse::{Error, Fate, ReplaceOutcome, WriteUnit};

/// Sends of one jobs.insert (the first included) before a transient failure is returned.
const INSERT_SENDS: u32 = 3;
/// Consecutive failed jobs.get calls tolerated while polling.
const POLL_FAILURES: u32 = 5;
const FIRST_POLL: Duration = Duration::from_millis(250);
const LONGEST_POLL: Duration = Duration::from_secs(5);

/// The job id of an attempt: `streamguard-<unit_id>-<attempt>` for one unit. A group of
/// several units is named after its first unit, plus `-g` and 12 hex digits of a hash of
/// every `(unit, attempt)` in it, so two different groups never share an id. Job ids
/// allow letters, digits, `_` and `-`, up to 1,024 characters
/// (<https://cloud.google.com/bigquery/docs/running-jobs#generate-jobid>).
pub fn job_id(units: &[WriteUnit]) -> String {
    let Some(first) = units.first() else {
        return "streamguard-empty".into();
    };
    let base = format!("streamguard-{}-{}", first.unit_id, first.attempt);
    if units.len() == 1 {
        return base;
    }
    let mut hash = Sha256::new();
    for u in units {
        hash.update(format!("{}:{};", u.unit_id, u.attempt));
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{base}-g{hex}")
}

/// The parts of a `Job` resource read back (statistics via a small type of our own: the
/// crate's `JobStatistics2` has no `dmlStats`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobReply {
    #[serde(default)]
    job_reference: Option<JobReference>,
    #[serde(default)]
    status: Option<JobStatus>,
    #[serde(default)]
    statistics: Option<Statistics>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DmlStats {
    #[serde(default)]
    inserted_row_count: Option<String>,
    #[serde(default)]
    deleted_row_count: Option<String>,
}

/// What a finished job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `dmlStats.insertedRowCount`.
    pub inserted: Option<u64>,
    /// `dmlStats.deletedRowCount`.
    pub deleted: Option<u64>,
}

impl JobReply {
    fn is_done(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.state.as_deref())
            .is_some_and(|s| s == "DONE")
    }

    fn location(&self) -> Option<String> {
        self.job_reference.as_ref().and_then(|r| r.location.clone())
    }

    /// The result of a `DONE` job.
    fn result(&self) -> Result<Finished, Error> {
        if let Some(e) = self.status.as_ref().and_then(|s| s.error_result.as_ref()) {
            return Err(as_error(&Failure::Job {
                reason: e.reason.clone(),
                message: e.message.clone(),
            }));
        }
        let dml = self
            .statistics
            .as_ref()
            .and_then(|s| s.query.as_ref())
            .and_then(|q| q.dml_stats.as_ref());
        let count = |c: Option<&String>| c.and_then(|c| c.parse().ok());
        Ok(Finished {
            inserted: count(dml.and_then(|d| d.inserted_row_count.as_ref())),
            deleted: count(dml.and_then(|d| d.deleted_row_count.as_ref())),
        })
    }
}

/// Classification where a duplicate cannot be the answer (it is only meaningful for
/// jobs.insert): treated as transient.
fn as_error(f: &Failure) -> Error {
    match classify(f) {
        Classified::Error(e) => e,
        Classified::Duplicate => Error::Transient {
            message: "BigQuery answered `duplicate` where no job was being created".into(),
        },
    }
}

impl BigQuery {
    /// The query job for `statement`, named `job_id`.
    pub(super) fn job(&self, job_id: &str, statement: &Statement) -> Job {
        Job {
            configuration: Some(JobConfiguration {
                query: Some(JobConfigurationQuery {
                    query: statement.sql.clone(),
                    query_parameters: Some(statement.params.clone()),
                    parameter_mode: Some("NAMED".into()),
                    use_legacy_sql: Some(false),
                    ..Default::default()
                }),
                labels: Some([("app".to_owned(), "streamguard".to_owned())].into()),
                ..Default::default()
            }),
            job_reference: Some(JobReference {
                job_id: Some(job_id.to_owned()),
                location: self.settings.location.clone(),
                project_id: Some(self.settings.project.clone()),
            }),
            ..Default::default()
        }
    }

    /// Runs `statement` as job `job_id` to completion.
    ///
    /// # Errors
    /// A classified [`Error`]; [`Error::Permanent`] when the request would exceed
    /// BigQuery's 10 MB limit (nothing is sent then).
    pub(super) async fn run(&self, job_id: &str, statement: &Statement) -> Result<Finished, Error> {
        let job = self.job(job_id, statement);
        let size = serde_json::to_vec(&job).map_or(0, |b| b.len());
        if size > MAX_REQUEST_BYTES {
            return Err(Error::Permanent {
                message: format!(
                    "the replace request is {size} bytes; BigQuery refuses requests over 10 MB, and a unit cannot be split without losing atomicity"
                ),
            });
        }
        let jobs = format!("/projects/{}/jobs", self.settings.project);
        let mut sends = 0;
        let mut reply: JobReply = loop {
            sends += 1;
            match self.rest.post(&jobs, &job).await {
                Ok(reply) => break reply,
                Err(failure) => {
                    match classify(&failure) {
                        Classified::Duplicate => {
                            tracing::info!(job_id, "job exists already (an earlier send reached BigQuery); looking it up");
                            break self
                                .get_job(job_id, self.settings.location.as_deref())
                                .await?;
                        }
                        Classified::Error(Error::Transient { message }) if sends < INSERT_SENDS => {
                            tracing::warn!(job_id, sends, error = %message, "jobs.insert failed; sending again with the same job id");
                            tokio::time::sleep(FIRST_POLL * 2 * sends).await;
                        }
                        Classified::Error(e) => return Err(e),
                    }
                }
            }
        };
        let location = reply.location().or_else(|| self.settings.location.clone());
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        let mut failures = 0;
        while !reply.is_done() {
            let elapsed = started.elapsed();
            if elapsed >= self.settings.job_timeout {
                self.cancel(job_id, location.as_deref()).await;
                return Err(Error::Transient {
                    message: format!(
                        "job {job_id} was still running after {:?} (STREAMGUARD_BIGQUERY_JOB_TIMEOUT); cancel requested, outcome unknown",
                        self.settings.job_timeout
                    ),
                });
            }
            tokio::time::sleep(pause.min(self.settings.job_timeout - elapsed)).await;
            pause = (pause * 2).min(LONGEST_POLL);
            match self.get_job(job_id, location.as_deref()).await {
                Ok(r) => {
                    failures = 0;
                    reply = r;
                }
                Err(Error::Transient { message }) if failures + 1 < POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(job_id, failures, error = %message, "jobs.get failed; polling on");
                }
                Err(e) => return Err(e),
            }
        }
        reply.result()
    }

    /// What became of job `job_id` (jobs.get): still running, landed, refused, or unknown
    /// to BigQuery (404 `Not found: Job …`).
    pub(super) async fn fate(&self, job_id: &str) -> Result<Fate, Error> {
        match self
            .get_job(job_id, self.settings.location.as_deref())
            .await
        {
            Ok(reply) if reply.is_done() => Ok(match reply.result() {
                Ok(done) => Fate::Landed(ReplaceOutcome {
                    rows_deleted: done.deleted,
                    rows_inserted: done.inserted.unwrap_or(0),
                    bytes_billed: None,
                }),
                Err(e) => Fate::Failed(e),
            }),
            Ok(_) => Ok(Fate::Running),
            Err(Error::Permanent { message }) if message.starts_with("Not found: Job") => {
                Ok(Fate::NeverArrived)
            }
            Err(e) => Err(e),
        }
    }

    async fn get_job(&self, job_id: &str, location: Option<&str>) -> Result<JobReply, Error> {
        let path = format!("/projects/{}/jobs/{job_id}", self.settings.project);
        let query: Vec<(&str, &str)> = location.map(|l| ("location", l)).into_iter().collect();
        self.rest.get(&path, &query).await.map_err(|f| as_error(&f))
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn unit(id: u128, attempt: i32) -> WriteUnit {
        WriteUnit {
            unit_id: Uuid::from_u128(id),
            attempt,
            key: serde_json::Map::new(),
            partition: None,
            rows: vec![],
        }
    }

    #[test]
    fn job_ids_are_deterministic_per_attempt() {
        assert_eq!(
            job_id(&[unit(1, 3)]),
            "streamguard-00000000-0000-0000-0000-000000000001-3"
        );
        assert_ne!(job_id(&[unit(1, 3)]), job_id(&[unit(1, 4)]));
        let group = job_id(&[unit(1, 3), unit(2, 1)]);
        assert!(group.starts_with("streamguard-00000000-0000-0000-0000-000000000001-3-g"));
        assert_eq!(group, job_id(&[unit(1, 3), unit(2, 1)]));
        assert_ne!(group, job_id(&[unit(1, 3), unit(2, 2)]));
        assert!(group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
