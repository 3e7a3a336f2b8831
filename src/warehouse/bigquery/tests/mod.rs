//! The adapter against a local HTTP server (wiremock) that answers with BigQuery's REST
//! paths and its real response and error bodies (bigquery-facts B1, B6, B7), with a fixed
//! access token. Here: the shared fakes, SQL shape and parameters, the schema cache, every
//! error class end to end through `replace`, table metadata and readiness. Running a job
//! (one send, waiting, duplicates, the bound) is in [`jobs`]; settling one in [`fates`].

mod fates;
mod jobs;

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::check::{self, CheckTarget};
use super::*;
use crate::domain::{ColumnName, ErrorClass};

const PROJECT: &str = "test-project";
const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const TABLE_PATH: &str =
    "/projects/nba-props-platform/datasets/nba_raw/tables/bdl_player_boxscores";
const JOBS: &str = "/projects/test-project/jobs";
const QUERIES: &str = "/projects/test-project/queries";

fn settings(server: &MockServer) -> BigQuerySettings {
    BigQuerySettings {
        project: PROJECT.into(),
        location: Some("US".into()),
        endpoint: server.uri(),
        credentials: Credentials::Token("test-token".into()),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(5),
    }
}

async fn adapter(server: &MockServer) -> BigQuery {
    BigQuery::connect(settings(server)).await.unwrap()
}

fn table() -> TableRef {
    TableRef::parse(TABLE).unwrap()
}

fn table_body() -> Value {
    json!({"kind": "bigquery#table", "type": "TABLE",
        "tableReference": {"projectId": "nba-props-platform", "datasetId": "nba_raw", "tableId": "bdl_player_boxscores"},
        "schema": {"fields": [
            {"name": "game_id", "type": "STRING", "mode": "REQUIRED"},
            {"name": "game_date", "type": "DATE"},
            {"name": "player_lookup", "type": "STRING"},
            {"name": "points", "type": "INTEGER"}]},
        "timePartitioning": {"type": "DAY", "field": "game_date"}})
}

async fn mount_table(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(table_body()))
        .mount(server)
        .await;
}

fn job(id: &str, state: &str) -> Value {
    json!({"kind": "bigquery#job", "id": format!("{PROJECT}:US.{id}"),
        "jobReference": {"projectId": PROJECT, "jobId": id, "location": "US"},
        "status": {"state": state}})
}

/// A finished MERGE as jobs.get shows it: counts and bytes are strings in BigQuery's JSON.
fn done(id: &str) -> Value {
    let mut j = job(id, "DONE");
    j["configuration"] = json!({"jobType": "QUERY", "labels": {"app": "streamguard"},
        "query": {"useLegacySql": false, "parameterMode": "NAMED"}});
    j["statistics"] = json!({"creationTime": "1769300000000", "startTime": "1769300000100",
        "endTime": "1769300002100", "totalBytesProcessed": "1234",
        "query": {"statementType": "MERGE", "numDmlAffectedRows": "5", "totalBytesProcessed": "1234",
            "totalBytesBilled": "10485760", "billingTier": 1,
            "dmlStats": {"insertedRowCount": "2", "deletedRowCount": "3"}}});
    j
}

/// A jobs.getQueryResults answer (`GetQueryResultsResponse`) for a DML job.
fn query_results(id: &str, complete: bool) -> Value {
    let mut r = json!({"kind": "bigquery#getQueryResultsResponse", "etag": "Eb2C3a==",
        "jobReference": {"projectId": PROJECT, "jobId": id, "location": "US"},
        "jobComplete": complete});
    if complete {
        r["totalRows"] = json!("0");
        r["numDmlAffectedRows"] = json!("5");
        r["totalBytesProcessed"] = json!("1234");
        r["cacheHit"] = json!(false);
    }
    r
}

/// jobs.getQueryResults says complete, and jobs.get shows `final_job`.
async fn mount_completion(server: &MockServer, id: &str, final_job: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(query_results(id, true)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(final_job))
        .mount(server)
        .await;
}

/// The requests the server received for `path`, as (method, query pairs).
async fn calls(server: &MockServer, to: &str) -> Vec<(String, Vec<(String, String)>)> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == to)
        .map(|r| {
            let pairs = r
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()));
            (r.method.to_string(), pairs.collect())
        })
        .collect()
}

fn unit(attempt: i32, rows: Vec<Value>) -> WriteUnit {
    WriteUnit {
        unit_id: Uuid::from_u128(7),
        attempt,
        key: serde_json::Map::from_iter([("game_id".to_owned(), json!("20260124_LAL_BOS"))]),
        partition: Some((ColumnName::parse("game_date").unwrap(), json!("2026-01-24"))),
        rows,
    }
}

/// The job id the tests' statements carry (the scheduler's own ids are its statements').
fn job_id(attempt: i32) -> String {
    format!("streamguard-{}-{attempt}", Uuid::from_u128(7))
}

fn rows() -> Vec<Value> {
    vec![
        json!({"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebronjames", "points": 31}),
        json!({"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "jaysontatum", "points": 28}),
    ]
}

const JOB_ID: &str = "streamguard-00000000-0000-0000-0000-000000000007-2";

async fn inserts(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == JOBS)
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

fn error_body(code: u16, reason: &str, message: &str, status: &str) -> String {
    json!({"error": {"code": code, "message": message,
        "errors": [{"domain": "global", "location": "q", "locationType": "parameter", "message": message, "reason": reason}],
        "status": status}})
    .to_string()
}

#[tokio::test]
async fn replace_runs_one_parameterised_merge_job_under_the_callers_job_id() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "RUNNING")))
        .expect(1)
        .mount(&server)
        .await;
    mount_completion(&server, JOB_ID, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let outcome = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap();

    assert_eq!(
        outcome,
        ReplaceOutcome {
            rows_deleted: Some(3),
            rows_inserted: 2,
            bytes_billed: Some(10_485_760)
        }
    );
    assert_eq!(calls(&server, &format!("{JOBS}/{JOB_ID}")).await.len(), 1);
    let sent = inserts(&server).await;
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(
        body["jobReference"],
        json!({"jobId": JOB_ID, "location": "US", "projectId": PROJECT})
    );
    let query = &body["configuration"]["query"];
    let sql = query["query"].as_str().unwrap();
    assert!(
        sql.starts_with("MERGE `nba-props-platform.nba_raw.bdl_player_boxscores` AS sg_target"),
        "{sql}"
    );
    assert!(
        sql.contains("ON FALSE")
            && sql.contains("WHEN NOT MATCHED BY SOURCE AND")
            && sql.contains("THEN DELETE")
    );
    assert!(sql.contains("WHEN NOT MATCHED THEN INSERT"));
    for value in ["20260124_LAL_BOS", "2026-01-24", "lebronjames", "31"] {
        assert!(
            !sql.contains(value),
            "row value {value} in the SQL text: {sql}"
        );
    }
    assert_eq!(query["parameterMode"], "NAMED");
    assert_eq!(query["useLegacySql"], false);
    let names: Vec<&str> = query["queryParameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rows", "partitions", "keys"]);
    let rows_param = &query["queryParameters"][0];
    assert_eq!(rows_param["parameterType"]["type"], "ARRAY");
    assert_eq!(
        rows_param["parameterType"]["arrayType"]["structTypes"],
        json!([{"name": "game_id", "type": {"type": "STRING"}}, {"name": "game_date", "type": {"type": "DATE"}},
               {"name": "player_lookup", "type": {"type": "STRING"}}, {"name": "points", "type": {"type": "INT64"}}])
    );
    assert_eq!(
        rows_param["parameterValue"]["arrayValues"][0]["structValues"]["points"],
        json!({"value": "31"})
    );
    assert_eq!(
        query["queryParameters"][1]["parameterType"],
        json!({"type": "ARRAY", "arrayType": {"type": "DATE"}})
    );
    assert_eq!(
        query["queryParameters"][2]["parameterType"]["arrayType"]["structTypes"],
        json!([{"name": "game_id", "type": {"type": "STRING"}}, {"name": "game_date", "type": {"type": "DATE"}}])
    );
}

#[tokio::test]
async fn the_schema_is_fetched_once_per_table_and_a_pure_delete_has_no_insert() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(table_body()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(done("any")))
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    bq.replace(&table(), &job_id(1), &[unit(1, rows())])
        .await
        .unwrap();
    let outcome = bq
        .replace(&table(), &job_id(2), &[unit(2, vec![])])
        .await
        .unwrap();

    assert_eq!(outcome.rows_deleted, Some(3));
    let sent = inserts(&server).await;
    assert_eq!(sent.len(), 2);
    let delete = sent[1]["configuration"]["query"]["query"].as_str().unwrap();
    assert!(
        delete.ends_with("THEN DELETE") && !delete.contains("INSERT"),
        "{delete}"
    );
    assert_eq!(sent[1]["jobReference"]["jobId"], JOB_ID);
}

/// Runs one replace against a server whose jobs.insert answers `status` + `body`.
async fn refused_with(status: u16, body: &str) -> (Error, usize) {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(
            ResponseTemplate::new(status)
                .set_body_raw(body.as_bytes().to_vec(), "application/json"),
        )
        .mount(&server)
        .await;
    let bq = adapter(&server).await;
    let error = bq
        .replace(&table(), &job_id(1), &[unit(1, rows())])
        .await
        .unwrap_err();
    (error, inserts(&server).await.len())
}

pub(super) const STREAMING_BUFFER: &str = "UPDATE or DELETE statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported";
pub(super) const UPSERT: &str =
    "DELETE/UPDATE/MERGE DMLs are currently not supported over tables that had UPSERT streams";

#[tokio::test]
async fn every_error_body_is_classified_through_replace() {
    let cases: Vec<(u16, String, ErrorClass)> = vec![
        (400, error_body(400, "invalidQuery", STREAMING_BUFFER, "INVALID_ARGUMENT"), ErrorClass::StreamingBuffer),
        (400, error_body(400, "invalidQuery", "TRUNCATE DML statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported", "INVALID_ARGUMENT"), ErrorClass::StreamingBuffer),
        (400, error_body(400, "invalidQuery", "Could not serialize access to table x.y due to concurrent update", "INVALID_ARGUMENT"), ErrorClass::ConcurrentDml),
        (400, error_body(400, "invalidQuery", "Transaction is aborted due to concurrent update against table nba-props-platform.nba_raw.bdl_player_boxscores", "INVALID_ARGUMENT"), ErrorClass::ConcurrentDml),
        (400, error_body(400, "invalidQuery", "Resources exceeded during query execution: Too many DML statements outstanding against table nba-props-platform.nba_raw.bdl_player_boxscores, limit is 20.", "INVALID_ARGUMENT"), ErrorClass::ConcurrentDml),
        (403, error_body(403, "rateLimitExceeded", "Exceeded rate limits: too many table update operations for this table", "PERMISSION_DENIED"), ErrorClass::QuotaExceeded),
        (403, error_body(403, "quotaExceeded", "Quota exceeded: Your table exceeded quota for imports or query appends per table", "PERMISSION_DENIED"), ErrorClass::QuotaExceeded),
        (400, error_body(400, "jobRateLimitExceeded", "Exceeded rate limits: too many concurrent queries for this project_and_region", "INVALID_ARGUMENT"), ErrorClass::QuotaExceeded),
        (400, error_body(400, "invalidQuery", UPSERT, "INVALID_ARGUMENT"), ErrorClass::Permanent),
        (404, error_body(404, "notFound", "Not found: Dataset test-project:nba_raw", "NOT_FOUND"), ErrorClass::Permanent),
        (403, error_body(403, "accessDenied", "Access Denied: Project test-project: User does not have bigquery.jobs.create permission in project test-project.", "PERMISSION_DENIED"), ErrorClass::Permanent),
        (400, error_body(400, "invalidQuery", "Unrecognized name: pointz at [5:40]", "INVALID_ARGUMENT"), ErrorClass::Permanent),
        (400, error_body(400, "invalid", "The query is too large. The maximum standard SQL query length is 1024.00K characters, including comments and white space characters.", "INVALID_ARGUMENT"), ErrorClass::Permanent),
    ];
    for (status, body, class) in cases {
        let (error, sends) = refused_with(status, &body).await;
        assert_eq!(error.class(), class, "{body}");
        assert_eq!(
            sends, 1,
            "a {class:?} refusal is not re-sent within the attempt"
        );
        assert!(body.contains(&error.to_string()), "message kept: {error}");
    }
}

#[tokio::test]
async fn a_body_without_errors_keeps_its_message() {
    let body = format!("{{\"error\":{{\"code\":400,\"message\":\"{STREAMING_BUFFER}\",\"status\":\"INVALID_ARGUMENT\"}}}}");
    let (error, _) = refused_with(400, &body).await;
    assert_eq!(
        error,
        Error::StreamingBuffer {
            message: STREAMING_BUFFER.into()
        }
    );
}

#[tokio::test]
async fn an_html_413_from_googles_front_end_is_permanent_and_not_resent() {
    let html = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 413 (Request Entity Too Large)!!1</title>\n  <p><b>413.</b> <ins>That\u{2019}s an error.</ins>\n  <p>Your client issued a request that was too large.\n  <ins>That\u{2019}s all we know.</ins>";
    let (error, sends) = refused_with(413, html).await;
    assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
    assert!(
        error.to_string().contains("Request Entity Too Large"),
        "{error}"
    );
    assert_eq!(sends, 1);
}

#[tokio::test]
async fn a_stale_schema_makes_a_refusal_transient_and_is_refreshed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(table_body()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let mut changed = table_body();
    changed["schema"]["fields"][3]["type"] = json!("FLOAT");
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(changed))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(400).set_body_string(error_body(400, "invalidQuery", "Query column 4 has type INT64 which cannot be inserted into column points, which has type FLOAT64 at [6:1]", "INVALID_ARGUMENT")))
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let error = bq
        .replace(&table(), &job_id(1), &[unit(1, rows())])
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert!(error.to_string().contains("schema"), "{error}");
    assert_eq!(bq.schemas.get(&table()).unwrap()[3].kind, "FLOAT");
}

#[tokio::test]
async fn streaming_buffer_metadata_comes_from_tables_get() {
    let server = MockServer::start().await;
    let mut body = table_body();
    body["streamingBuffer"] = json!({"estimatedBytes": "1234", "estimatedRows": "10", "oldestEntryTime": "1700000000000"});
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let buffer = bq.streaming_buffer(&table()).await.unwrap().unwrap();

    assert_eq!(buffer.estimated_rows, Some(10));
    assert_eq!(
        buffer.oldest_entry_time.unwrap().timestamp_millis(),
        1_700_000_000_000
    );
    assert_eq!(buffer.earliest_drain, None);
}

#[tokio::test]
async fn units_over_ten_megabytes_are_refused_before_intake() {
    let server = MockServer::start().await;
    let bq = adapter(&server).await;
    let big = "x".repeat(1_000);
    let rows: Vec<Value> = (0..11_000)
        .map(|i| json!({"game_id": "g", "n": i, "blob": big}))
        .collect();
    let e = bq.check_unit(&rows).unwrap_err();
    assert!(e.contains("10 MB") && e.contains("11000 rows"), "{e}");
    assert!(bq.check_unit(&rows[..100]).is_ok());
}

#[tokio::test]
async fn readiness_and_check_say_what_to_fix() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path_regex("^/projects/test-project/queries$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"kind": "bigquery#queryResponse", "jobComplete": true,
            "jobReference": {"projectId": PROJECT, "location": "US"}, "totalBytesProcessed": "0"}),
        ))
        .mount(&server)
        .await;
    let bq = adapter(&server).await;
    assert_eq!(bq.readiness().await, Ok(()));

    let target = CheckTarget {
        table: table(),
        key_columns: vec![ColumnName::parse("game_id").unwrap()],
        partition_column: Some(ColumnName::parse("game_date").unwrap()),
    };
    let lines = check::run(&settings(&server), Some(&target)).await;
    assert!(lines.iter().all(|l| l.ok), "{lines:?}");
    assert!(lines.last().unwrap().text.contains("writable"), "{lines:?}");
    let dry_runs: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/queries"))
        .map(|r| r.body_json().unwrap())
        .collect();
    assert!(dry_runs.iter().all(|d| d["dryRun"] == true));
    assert!(dry_runs.last().unwrap()["query"]
        .as_str()
        .unwrap()
        .starts_with("MERGE"));

    let denied = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/projects/test-project/queries"))
        .respond_with(ResponseTemplate::new(403).set_body_string(error_body(403, "accessDenied", "Access Denied: Project test-project: User does not have bigquery.jobs.create permission in project test-project.", "PERMISSION_DENIED")))
        .mount(&denied)
        .await;
    let problem = adapter(&denied).await.readiness().await.unwrap_err();
    assert!(
        problem.contains("STREAMGUARD_BIGQUERY_PROJECT")
            && problem.contains("bigquery.jobs.create"),
        "{problem}"
    );

    let mut unreachable = settings(&server);
    unreachable.endpoint = "http://127.0.0.1:9".into();
    let lines = check::run(&unreachable, Some(&target)).await;
    let last = lines.last().unwrap();
    assert!(
        !last.ok && last.text.contains("STREAMGUARD_BIGQUERY_ENDPOINT"),
        "{lines:?}"
    );

    // The schema checks intake makes, for the columns processors will send.
    let json_key = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "TABLE",
            "schema": {"fields": [{"name": "game_id", "type": "JSON"}, {"name": "game_date", "type": "DATE"}]},
            "timePartitioning": {"type": "DAY", "field": "game_date"}, "requirePartitionFilter": true})))
        .mount(&json_key)
        .await;
    Mock::given(method("POST"))
        .and(path("/projects/test-project/queries"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"jobComplete": true})))
        .mount(&json_key)
        .await;
    let no_partition = CheckTarget {
        partition_column: None,
        ..target.clone()
    };
    let lines = check::run(&settings(&json_key), Some(&no_partition)).await;
    let problems: Vec<&str> = lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(problems.len(), 2, "{lines:?}");
    assert!(
        problems[0].starts_with(
            "--key-column game_id: `game_id` is JSON, which BigQuery cannot compare for equality"
        ),
        "{lines:?}"
    );
    assert!(
        problems[1].starts_with(
            "--partition-column: the table requires a partition filter on `game_date`"
        ),
        "{lines:?}"
    );

    let mut missing_key = settings(&server);
    missing_key.credentials = Credentials::KeyFile("/nonexistent/key.json".into());
    let e = BigQuery::connect(missing_key).await.err().unwrap();
    assert!(
        e.contains("GOOGLE_APPLICATION_CREDENTIALS") && e.contains("/nonexistent/key.json"),
        "{e}"
    );
}
