//! The real service with BigQuery as its warehouse, played by a local HTTP server
//! (wiremock) that speaks BigQuery's REST paths and answers with its real bodies, and a
//! fixed access token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::warehouse::bigquery::{BigQuerySettings, Credentials};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{game_batch, spawn_app_with, TestApp};

const PROJECT: &str = "test-project";
const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const TABLE_PATH: &str =
    "/projects/nba-props-platform/datasets/nba_raw/tables/bdl_player_boxscores";
const JOBS: &str = "/projects/test-project/jobs";
const STREAMING_BUFFER: &str = "UPDATE or DELETE statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported";
const UPSERT: &str =
    "DELETE/UPDATE/MERGE DMLs are currently not supported over tables that had UPSERT streams";

fn bigquery(server: &MockServer) -> BigQuerySettings {
    BigQuerySettings {
        project: PROJECT.into(),
        location: None,
        endpoint: server.uri(),
        credentials: Credentials::Token("test-token".into()),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(5),
    }
}

fn error_body(reason: &str, message: &str) -> Value {
    json!({"error": {"code": 400, "message": message,
        "errors": [{"domain": "global", "location": "q", "locationType": "parameter", "message": message, "reason": reason}],
        "status": "INVALID_ARGUMENT"}})
}

fn done() -> Value {
    json!({"kind": "bigquery#job", "jobReference": {"projectId": PROJECT, "jobId": "x", "location": "US"},
        "status": {"state": "DONE"},
        "statistics": {"query": {"statementType": "MERGE", "dmlStats": {"insertedRowCount": "3", "deletedRowCount": "0"}}}})
}

/// A server playing BigQuery: the table's schema and a passing dry run for `/readyz`.
async fn fake_bigquery() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "TABLE",
            "schema": {"fields": [
                {"name": "game_id", "type": "STRING", "mode": "REQUIRED"},
                {"name": "game_date", "type": "DATE"},
                {"name": "player_lookup", "type": "STRING"},
                {"name": "points", "type": "INTEGER"},
                {"name": "source", "type": "STRING"}]},
            "timePartitioning": {"type": "DAY", "field": "game_date"}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/projects/test-project/queries"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"kind": "bigquery#queryResponse", "jobComplete": true})),
        )
        .mount(&server)
        .await;
    server
}

async fn spawn(pool: PgPool, server: &MockServer) -> TestApp {
    let settings = bigquery(server);
    spawn_app_with(pool, move |s| s.bigquery = Some(settings)).await
}

/// The job ids of every jobs.insert the server received, in order.
async fn job_ids(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == JOBS)
        .map(|r| {
            let body: Value = r.body_json().unwrap();
            body["jobReference"]["jobId"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[sqlx::test]
async fn a_streaming_buffer_conflict_is_deferred_retried_and_loaded(pool: PgPool) {
    let server = fake_bigquery().await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(error_body("invalidQuery", STREAMING_BUFFER)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(done()))
        .mount(&server)
        .await;
    let app = spawn(pool, &server).await;

    let (status, first) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "backfill"),
            Some(5.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let unit = &first["units"][0];
    assert_eq!(unit["state"], "deferred", "{first}");
    assert!(unit["next_attempt_at"].is_string());
    assert_eq!(unit["error"], STREAMING_BUFFER);

    let batch_id = first["batch_id"].as_str().unwrap();
    let settled = app.settle(batch_id, Duration::from_secs(20)).await;

    let unit = &settled["units"][0];
    assert_eq!(unit["state"], "loaded", "{settled}");
    assert_eq!(unit["attempts"], 2);
    // Two statements, each sent once under its own id (the scheduler names them; the
    // adapter never re-sends a jobs.insert).
    let ids = job_ids(&server).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    assert!(
        ids.iter().all(|id| id.starts_with("streamguard-")),
        "{ids:?}"
    );
    let (conflict_type, resolved, method): (String, bool, Option<String>) =
        sqlx::query_as("select conflict_type, resolved, resolution_method from conflicts")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (conflict_type.as_str(), resolved, method.as_deref()),
        ("streaming_buffer", true, Some("auto_retry"))
    );
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["warehouse"], "bigquery", "{ready}");
    let (status, _) = app.get(&format!("/emulator/tables/{TABLE}/rows")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "emulator routes are not mounted against BigQuery"
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_running_job_is_waited_for_with_get_query_results_and_sent_once(pool: PgPool) {
    let server = fake_bigquery().await;
    let running = json!({"kind": "bigquery#job", "jobReference": {"projectId": PROJECT, "jobId": "x", "location": "US"},
        "status": {"state": "RUNNING"}});
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(running))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/projects/test-project/queries/streamguard-[0-9a-z-]+$"))
        .and(query_param("maxResults", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"kind": "bigquery#getQueryResultsResponse", "jobComplete": true, "numDmlAffectedRows": "3"}),
        ))
        .mount(&server)
        .await;
    let mut finished = done();
    finished["statistics"]["query"]["totalBytesBilled"] = json!("10485760");
    Mock::given(method("GET"))
        .and(path_regex(
            "^/projects/test-project/jobs/streamguard-[0-9a-z-]+$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(finished))
        .mount(&server)
        .await;
    let app = spawn(pool, &server).await;

    let (status, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "backfill"),
            Some(10.0),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["units"][0]["state"], "loaded", "{view}");
    assert_eq!(job_ids(&server).await.len(), 1);
    let waits = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().starts_with("/projects/test-project/queries/"))
        .count();
    assert_eq!(waits, 1, "one held getQueryResults call, no client polling");
    app.stop().await;
}

#[sqlx::test]
async fn an_upsert_streams_refusal_fails_the_unit_after_exactly_one_attempt(pool: PgPool) {
    let server = fake_bigquery().await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(400).set_body_json(error_body("invalidQuery", UPSERT)))
        .mount(&server)
        .await;
    let app = spawn(pool, &server).await;

    let (status, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "backfill"),
            Some(5.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    // No job is left that could (wrongly) try again.
    app.until_no_job_can_run().await;

    let (_, view) = app
        .get(&format!(
            "/v1/batches/{}",
            view["batch_id"].as_str().unwrap()
        ))
        .await;
    let unit = &view["units"][0];
    assert_eq!(unit["state"], "failed", "{view}");
    assert_eq!(unit["error"], UPSERT);
    assert_eq!(unit["attempts"], 1);
    assert_eq!(job_ids(&server).await.len(), 1);
    let conflicts: i64 = sqlx::query_scalar("select count(*) from conflicts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(conflicts, 0, "a permanent failure is never a conflict");
    app.stop().await;
}

#[sqlx::test]
async fn a_key_over_ten_megabytes_is_refused_at_intake(pool: PgPool) {
    let server = fake_bigquery().await;
    let app = spawn(pool, &server).await;
    let blob = "x".repeat(1_000);
    let rows: Vec<Value> = (0..11_000)
        .map(|p| json!({"game_id": "g1", "game_date": "2026-01-24", "player_lookup": format!("p{p}"), "source": blob}))
        .collect();
    let batch = json!({"processor_name": "bdl_boxscores_processor", "table": TABLE,
        "key_columns": ["game_id"], "partition_column": "game_date", "rows": rows});

    let (status, problem) = app.post_batch(&batch, None).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rows");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("10 MB") && detail.contains("g1"),
        "{detail}"
    );
    let batches: i64 = sqlx::query_scalar("select count(*) from batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(batches, 0);
    assert!(job_ids(&server).await.is_empty());
    app.stop().await;
}

#[sqlx::test]
async fn readyz_says_which_setting_to_fix_when_bigquery_is_unreachable(pool: PgPool) {
    let server = MockServer::start().await;
    let mut settings = bigquery(&server);
    settings.endpoint = "http://127.0.0.1:9".into();
    let app = spawn_app_with(pool, move |s| s.bigquery = Some(settings)).await;

    let (status, problem) = app.get("/readyz").await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("STREAMGUARD_BIGQUERY_ENDPOINT"),
        "{problem}"
    );
    app.stop().await;
}
