//! Schema-checked intake (issue 9), against the emulator and against a server playing
//! BigQuery: each case at the top of the issue answers 422 at POST with its pointer and
//! stores nothing; an unreadable schema is accepted and said so; the emulator declares
//! tables with BigQuery's `tables.insert` body, infers a schema for undeclared ones, and
//! refuses writes that do not fit with BigQuery's messages; an HTML 413 from Google's
//! front end fails the unit at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::domain::ColumnName;
use streamguard::warehouse::bigquery::{BigQuerySettings, Credentials};
use streamguard::warehouse::emulator::{BufferTime, ConflictScope, Emulator, EmulatorSettings};
use streamguard::warehouse::{Warehouse, WriteUnit};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const TABLE_PATH: &str =
    "/projects/nba-props-platform/datasets/nba_raw/tables/bdl_player_boxscores";
const JOBS: &str = "/projects/test-project/jobs";

/// The table, in BigQuery's form: partitioned by `game_date` with a required partition
/// filter, a REQUIRED column, an ARRAY, a RECORD and the types the issue names.
fn definition() -> Value {
    json!({
        "schema": {"fields": [
            {"name": "game_id", "type": "STRING", "mode": "REQUIRED"},
            {"name": "game_date", "type": "DATE", "mode": "REQUIRED"},
            {"name": "player_lookup", "type": "STRING", "mode": "REQUIRED"},
            {"name": "points", "type": "INTEGER"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "tipoff", "type": "TIMESTAMP"},
            {"name": "local_tipoff", "type": "DATETIME"},
            {"name": "extra", "type": "JSON"},
            {"name": "arena", "type": "GEOGRAPHY"},
            {"name": "stats", "type": "RECORD", "fields": [{"name": "minutes", "type": "FLOAT"}]}
        ]},
        "timePartitioning": {"type": "DAY", "field": "game_date"},
        "requirePartitionFilter": true,
        "clustering": {"fields": ["game_id"]}
    })
}

fn row(extra: Value) -> Value {
    let mut r = json!({"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebronjames", "points": 28});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() && k == "player_lookup" {
            r.as_object_mut().unwrap().remove(k);
        } else {
            r[k] = v.clone();
        }
    }
    r
}

fn batch(key_columns: Value, partition: Option<&str>, r: Value) -> Value {
    let mut b = json!({"processor_name": "bdl_boxscores_processor", "table": TABLE, "key_columns": key_columns, "rows": [r]});
    if let Some(p) = partition {
        b["partition_column"] = json!(p);
    }
    b
}

/// The cases at the top of issue 9: (what, batch, the pointer the 422 must name).
fn issue_cases() -> Vec<(&'static str, Value, &'static str)> {
    let key = || json!(["game_id"]);
    let p = Some("game_date");
    vec![
        (
            "require_partition_filter without partition_column",
            batch(key(), None, row(json!({}))),
            "/partition_column",
        ),
        (
            "a column the table does not have",
            batch(key(), p, row(json!({"assists": 9}))),
            "/rows/0/assists",
        ),
        (
            "a REQUIRED column missing",
            batch(key(), p, row(json!({"player_lookup": null}))),
            "/rows/0/player_lookup",
        ),
        (
            "NULL inside an ARRAY",
            batch(key(), p, row(json!({"tags": ["a", null]}))),
            "/rows/0/tags/1",
        ),
        (
            "5.0 for an INT64",
            batch(key(), p, row(json!({"points": 5.0}))),
            "/rows/0/points",
        ),
        (
            "a JSON key column",
            batch(json!(["extra"]), p, row(json!({"extra": "x"}))),
            "/key_columns/0",
        ),
        (
            "a GEOGRAPHY key column",
            batch(json!(["arena"]), p, row(json!({"arena": "POINT(1 2)"}))),
            "/key_columns/0",
        ),
        (
            "a REPEATED key column",
            batch(json!(["tags"]), p, row(json!({"tags": "a"}))),
            "/key_columns/0",
        ),
        (
            "a STRUCT key column",
            batch(json!(["stats"]), p, row(json!({"stats": 1}))),
            "/key_columns/0",
        ),
        (
            "epoch seconds in a string for a TIMESTAMP",
            batch(key(), p, row(json!({"tipoff": "1700000000"}))),
            "/rows/0/tipoff",
        ),
        (
            "a DATETIME with Z",
            batch(
                key(),
                p,
                row(json!({"local_tipoff": "2026-01-24T19:30:00Z"})),
            ),
            "/rows/0/local_tipoff",
        ),
    ]
}

async fn assert_each_case_refused(app: &TestApp) {
    for (what, body, pointer) in issue_cases() {
        let (status, problem) = app.post_batch(&body, None).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {problem}"
        );
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["pointer"] == pointer),
            "{what}: no error at {pointer}: {problem}"
        );
    }
    let batches: i64 = sqlx::query_scalar("select count(*) from batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(batches, 0, "nothing of a refused batch is stored");
}

fn good_batch() -> Value {
    batch(
        json!(["game_id"]),
        Some("game_date"),
        row(
            json!({"tags": ["starter"], "tipoff": "2026-01-24 19:30:00-05", "local_tipoff": "2026-01-24T19:30:00", "extra": {"q": [1, null]}, "arena": "POINT(-71.06 42.37)", "stats": {"minutes": 35.5}}),
        ),
    )
}

#[sqlx::test]
async fn the_issues_cases_answer_422_with_their_pointer_against_the_emulator(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut declare = definition();
    declare["tableReference"] = json!({"projectId": "nba-props-platform", "datasetId": "nba_raw", "tableId": "bdl_player_boxscores"});
    let (status, view) = app.post("/emulator/tables", &declare).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["schema_source"], "declared");
    let (status, again) = app.post("/emulator/tables", &declare).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(
        again["detail"],
        "Already Exists: Table nba-props-platform:nba_raw.bdl_player_boxscores"
    );

    assert_each_case_refused(&app).await;

    let (status, accepted) = app.post_batch(&good_batch(), Some(10.0)).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["schema_check"]["status"], "checked", "{accepted}");
    assert_eq!(accepted["units"][0]["state"], "loaded", "{accepted}");

    // The emulator's own writes are checked too, in BigQuery's words.
    let (status, refused) = app
        .post(
            &format!("/emulator/tables/{TABLE}/insertAll"),
            &json!({"rows": [row(json!({"points": 5.0, "tags": ["a", null]}))]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["errors"],
        json!([{"pointer": "/rows/0/points", "detail": "Bad int64 value: 5.0"},
               {"pointer": "/rows/0/tags/1", "detail": "Array cannot have a null element; error in writing field tags"}])
    );
    assert_eq!(
        app.table_rows(TABLE).await.len(),
        1,
        "nothing of the refused insertAll landed"
    );

    // A declaration BigQuery would refuse is refused with pointers into its body.
    let (status, bad) = app
        .post("/emulator/tables", &json!({"tableReference": {"projectId": "nba-props-platform", "datasetId": "nba_raw", "tableId": "other"},
            "schema": {"fields": [{"name": "d", "type": "STRING"}]}, "timePartitioning": {"type": "DAY", "field": "d"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["errors"][0]["pointer"], "/timePartitioning/field");
    let (status, bad) = app
        .post("/emulator/tables", &json!({"tableReference": {"projectId": "nba-props-platform", "datasetId": "nba_raw", "tableId": "other"},
            "schema": {"fields": [{"name": "d", "type": "STRING"}, {"name": "e", "type": "STRING", "mode": "SOMETIMES"}]}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["errors"][0]["pointer"], "/schema/fields/1", "{bad}");
    app.stop().await;
}

#[sqlx::test]
async fn an_undeclared_emulator_table_infers_its_schema_from_the_first_write_and_says_so(
    pool: PgPool,
) {
    let app = spawn_app(pool).await;
    let first = batch(json!(["game_id"]), Some("game_date"), row(json!({})));
    let (status, answer) = app.post_batch(&first, Some(10.0)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["schema_check"]["status"], "unchecked");
    assert!(
        answer["schema_check"]["detail"]
            .as_str()
            .unwrap()
            .contains("inferred"),
        "{answer}"
    );
    assert_eq!(answer["units"][0]["state"], "loaded", "{answer}");

    // insertAll says which schema it checked against, too.
    let (status, streamed) = app
        .post(
            &format!("/emulator/tables/{TABLE}/insertAll"),
            &json!({"rows": [row(json!({"game_id": "20260125_MIA_NYK"}))], "buffer": "0s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{streamed}");
    assert_eq!(streamed["schema_source"], "inferred");
    let (status, table) = app.get(&format!("/emulator/tables/{TABLE}")).await;
    assert_eq!(status, StatusCode::OK, "{table}");
    assert_eq!(table["schema_source"], "inferred");
    let fields = &table["definition"]["schema"]["fields"];
    assert_eq!(
        fields[3],
        json!({"name": "points", "type": "INTEGER", "mode": "NULLABLE"}),
        "{table}"
    );

    let (status, problem) = app
        .post_batch(
            &batch(
                json!(["game_id"]),
                Some("game_date"),
                row(json!({"points": 5.5})),
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rows/0/points");
    app.stop().await;
}

#[sqlx::test]
async fn the_emulator_refuses_a_replace_that_does_not_fit_with_bigquerys_message(pool: PgPool) {
    streamguard::store::Store::new(pool.clone())
        .migrate()
        .await
        .unwrap();
    let emulator = Emulator::new(
        pool,
        EmulatorSettings {
            buffer: BufferTime::fixed(Duration::ZERO),
            conflict_scope: ConflictScope::Partition,
            latency: Duration::ZERO,
            faults: Default::default(),
        },
    );
    let table = streamguard::domain::TableRef::parse(TABLE).unwrap();
    let schema = serde_json::from_value(definition()).unwrap();
    emulator.declare(&table, &schema).await.unwrap();
    let unit = |rows: Vec<Value>, partition: bool| WriteUnit {
        unit_id: uuid::Uuid::new_v4(),
        attempt: 1,
        key: serde_json::Map::from_iter([("game_id".to_owned(), json!("20260124_LAL_BOS"))]),
        partition: partition
            .then(|| (ColumnName::parse("game_date").unwrap(), json!("2026-01-24"))),
        rows,
    };
    let e = emulator
        .replace(
            &table,
            &format!("streamguard-test-{}", uuid::Uuid::new_v4()),
            &[unit(vec![row(json!({"points": 5.0}))], true)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), streamguard::domain::ErrorClass::Permanent);
    assert_eq!(
        e.to_string(),
        "Bad int64 value: 5.0 (at /units/0/rows/0/points)"
    );
    let e = emulator
        .replace(
            &table,
            &format!("streamguard-test-{}", uuid::Uuid::new_v4()),
            &[unit(vec![], false)],
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Cannot query over table without a filter over column(s) 'game_date'"),
        "{e}"
    );
    assert!(emulator.rows(&table).await.unwrap().is_empty());
    emulator
        .replace(
            &table,
            &format!("streamguard-test-{}", uuid::Uuid::new_v4()),
            &[unit(vec![row(json!({}))], true)],
        )
        .await
        .unwrap();
    assert_eq!(emulator.rows(&table).await.unwrap().len(), 1);
}

/// A server playing BigQuery whose `tables.get` answers the issue's table.
async fn fake_bigquery(table_answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(table_answer)
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

async fn spawn_bigquery(pool: PgPool, server: &MockServer) -> TestApp {
    let settings = BigQuerySettings {
        project: "test-project".into(),
        location: None,
        endpoint: server.uri(),
        credentials: Credentials::Token("test-token".into()),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        job_timeout: Duration::from_secs(5),
    };
    spawn_app_with(pool, move |s| s.bigquery = Some(settings)).await
}

fn table_resource() -> Value {
    let mut t = definition();
    t["kind"] = json!("bigquery#table");
    t["type"] = json!("TABLE");
    t
}

async fn jobs_sent(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == JOBS)
        .count()
}

#[sqlx::test]
async fn the_issues_cases_answer_422_with_their_pointer_against_bigquery(pool: PgPool) {
    let server = fake_bigquery(ResponseTemplate::new(200).set_body_json(table_resource())).await;
    let app = spawn_bigquery(pool, &server).await;
    assert_each_case_refused(&app).await;
    assert_eq!(jobs_sent(&server).await, 0, "nothing reached BigQuery");
    app.stop().await;
}

#[sqlx::test]
async fn an_unreadable_schema_accepts_the_batch_and_says_so(pool: PgPool) {
    let server = fake_bigquery(
        ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
    )
    .await;
    let app = spawn_bigquery(pool, &server).await;
    let (status, answer) = app.post_batch(&good_batch(), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["schema_check"]["status"], "unchecked", "{answer}");
    let detail = answer["schema_check"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("could not be read") && detail.contains("first attempt"),
        "{detail}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn an_html_413_from_googles_front_end_fails_the_unit_at_once(pool: PgPool) {
    let server = fake_bigquery(ResponseTemplate::new(200).set_body_json(table_resource())).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(
            ResponseTemplate::new(413)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .set_body_string("<!DOCTYPE html><html><title>Error 413 (Request Entity Too Large)!!1</title><p><b>413.</b> That’s an error.</html>"),
        )
        .mount(&server)
        .await;
    let app = spawn_bigquery(pool, &server).await;
    let (status, answer) = app.post_batch(&good_batch(), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let settled = app
        .settle(
            answer["batch_id"].as_str().unwrap(),
            Duration::from_secs(20),
        )
        .await;
    let unit = &settled["units"][0];
    assert_eq!(unit["state"], "failed", "{settled}");
    assert_eq!(unit["attempts"], 1, "{settled}");
    let error = unit["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 413") && error.contains("too large"),
        "{error}"
    );
    assert_eq!(jobs_sent(&server).await, 1, "sent once, not retried");
    app.stop().await;
}
