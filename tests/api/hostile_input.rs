//! Hostile and malformed input: every kind of bad batch is refused with its status and the
//! JSON pointer of the offending row and column (and, for a limit, the setting that holds
//! it); nothing of a bad batch is accepted; a batch accepted before is untouched.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{game_batch, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const GAME: &str = "20260124_LAL_BOS";
const DATE: &str = "2026-01-24";

/// One bad request and what the answer must say.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    /// The JSON pointer named; a trailing `*` matches any pointer starting with the rest.
    pointer: &'static str,
    limit: Option<&'static str>,
}

fn case(name: &'static str, body: Value, status: u16, pointer: &'static str) -> Case {
    raw(name, serde_json::to_vec(&body).unwrap(), status, pointer)
}

fn raw(name: &'static str, body: Vec<u8>, status: u16, pointer: &'static str) -> Case {
    Case {
        name,
        body,
        status: StatusCode::from_u16(status).unwrap(),
        pointer,
        limit: None,
    }
}

fn limited(mut c: Case, setting: &'static str) -> Case {
    c.limit = Some(setting);
    c
}

/// A batch for the accepted game's key (so an accepted bad batch would replace its rows),
/// with `rows`.
fn batch(rows: Value) -> Value {
    json!({
        "processor_name": "bdl_boxscores_processor",
        "table": TABLE,
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": rows,
    })
}

fn row(extra: Value) -> Value {
    let mut row = json!({"game_id": GAME, "game_date": DATE, "player_lookup": "lebronjames", "points": 28, "rebounds": 8, "assists": 9});
    row.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    row
}

/// Accepts one good batch and waits until it landed; returns its view and the table.
async fn accept_good_batch(app: &TestApp) -> (Value, Vec<Value>) {
    let (status, view) = app
        .post_batch(&game_batch(TABLE, GAME, DATE, 3, "good"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let id = view["batch_id"].as_str().unwrap();
    let settled = app.settle(id, Duration::from_secs(20)).await;
    assert_eq!(settled["units"][0]["state"], "loaded", "{settled}");
    (settled, app.table_rows(TABLE).await)
}

/// Sends every case and checks its answer; then checks that the good batch, its units and
/// the table are exactly as before and that no other batch exists.
async fn refuse_all(app: &TestApp, cases: Vec<Case>) {
    let (before, table_before) = accept_good_batch(app).await;
    for c in cases {
        let (status, headers, problem) = app
            .post_raw("/v1/batches", "application/json", c.body, None)
            .await;
        assert_eq!(status, c.status, "{}: {problem}", c.name);
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{}",
            c.name
        );
        let errors = problem["errors"].as_array().cloned().unwrap_or_default();
        // A pointer ending in `*` matches as a prefix (where the parser stopped).
        let hit = errors.iter().find(|e| {
            let at = e["pointer"].as_str().unwrap_or_default();
            match c.pointer.strip_suffix('*') {
                Some(prefix) => at.starts_with(prefix),
                None => at == c.pointer,
            }
        });
        let Some(hit) = hit else {
            panic!("{}: no error at {}: {problem}", c.name, c.pointer)
        };
        if let Some(setting) = c.limit {
            assert_eq!(hit["limit"], setting, "{}: {problem}", c.name);
        }
    }
    let (n,): (i64,) = sqlx::query_as("select count(*) from batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the good batch was ever accepted");
    let (units,): (i64,) = sqlx::query_as("select count(*) from write_units")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(units, 1);
    let (_, after) = app
        .get(&format!(
            "/v1/batches/{}",
            before["batch_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(after, before, "the accepted batch is untouched");
    assert_eq!(
        app.table_rows(TABLE).await,
        table_before,
        "the table is untouched"
    );
}

#[sqlx::test]
async fn malformed_batches_name_row_and_column_and_change_nothing(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let good = serde_json::to_string(&batch(json!([row(json!({}))]))).unwrap();
    let cases = vec![
        case(
            "mixed-type key",
            batch(json!([row(json!({})), row(json!({"game_id": 20260124}))])),
            422,
            "/rows/1/game_id",
        ),
        case(
            "null key",
            batch(json!([row(json!({"game_id": null}))])),
            422,
            "/rows/0/game_id",
        ),
        case(
            "columns differing only in case",
            batch(json!([row(json!({"Points": 30}))])),
            422,
            "/rows/0/points",
        ),
        case(
            "missing partition column",
            batch(json!([{"game_id": GAME, "points": 1}])),
            422,
            "/rows/0/game_date",
        ),
        case(
            "row not an object",
            batch(json!([row(json!({})), [1, 2]])),
            422,
            "/rows/1",
        ),
        raw(
            "integer beyond i64",
            good.replace("\"points\":28", "\"points\":99999999999999999999")
                .into_bytes(),
            422,
            "/rows/0/points",
        ),
        raw(
            "decimal beyond f64",
            good.replace("\"rebounds\":8", "\"rebounds\":0.30000000000000000001")
                .into_bytes(),
            422,
            "/rows/0/rebounds",
        ),
        raw(
            "lone surrogate escape",
            good.replace("lebronjames", "lebron\\ud800james")
                .into_bytes(),
            400,
            "/rows/0/player_lookup",
        ),
        raw(
            "NUL character (Postgres cannot store it)",
            good.replace("lebronjames", "lebron\\u0000james")
                .into_bytes(),
            422,
            "/rows/0/player_lookup",
        ),
        raw(
            "invalid UTF-8",
            good.replace("lebronjames", "lebron\u{1}james")
                .into_bytes()
                .into_iter()
                .map(|b| if b == 1 { 0xff } else { b })
                .collect(),
            400,
            "/rows/0/player_lookup",
        ),
        case(
            "look-alike column (Cyrillic a)",
            batch(json!([row(json!({"tеam": "LAL"}))])),
            422,
            "/rows/0/tеam",
        ),
        case(
            "look-alike key column",
            json!({"processor_name": "p", "table": TABLE, "key_columns": ["gаme_id"], "rows": [row(json!({}))]}),
            422,
            "/key_columns/0",
        ),
        case(
            "look-alike table",
            json!({"processor_name": "p", "table": "nba-props-platform.nba_raw.bdl_plаyer_boxscores", "key_columns": ["game_id"], "rows": [row(json!({}))]}),
            422,
            "/table",
        ),
        case(
            "SQL in the table name",
            json!({"processor_name": "p", "table": "nba-props-platform.nba_raw.t`; DROP TABLE x; --", "key_columns": ["game_id"], "rows": [row(json!({}))]}),
            422,
            "/table",
        ),
        case(
            "backquote and comment in a column name",
            batch(json!([row(json!({"points`--": 1}))])),
            422,
            "/rows/0/points`--",
        ),
        case(
            "newline in a nested field name",
            batch(json!([row(json!({"stats": {"fg\npct": 0.5}}))])),
            422,
            "/rows/0/stats/fg\npct",
        ),
        case(
            "wrong shape",
            json!({"processor_name": "p", "table": TABLE, "key_columns": "game_id", "rows": []}),
            422,
            "/key_columns",
        ),
        raw(
            "not JSON",
            b"{\"processor_name\": ".to_vec(),
            400,
            "/processor_name*",
        ),
        limited(
            raw(
                "nested beyond the parser",
                good.replace(
                    "\"points\":28",
                    &format!("\"points\":{}1{}", "[".repeat(200), "]".repeat(200)),
                )
                .into_bytes(),
                422,
                "/rows/0/points/0/0*",
            ),
            "STREAMGUARD_MAX_DEPTH",
        ),
    ];
    refuse_all(&app, cases).await;
    app.stop().await;
}

#[sqlx::test]
async fn every_limit_is_configurable_and_named(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.max_body_bytes = 4096;
        s.limits.max_rows = 3;
        s.limits.max_key_columns = 2;
        s.limits.max_row_bytes = 400;
        s.limits.max_depth = 3;
        s.limits.max_name_chars = 20;
        s.limits.max_key_value_chars = 24;
    })
    .await;
    let many = |n: usize| Value::Array((0..n).map(|_| row(json!({}))).collect());
    let cases = vec![
        limited(
            case(
                "body size",
                batch(json!([row(json!({"notes": "x".repeat(5000)}))])),
                413,
                "",
            ),
            "STREAMGUARD_MAX_BODY_BYTES",
        ),
        limited(
            case("rows per batch", batch(many(4)), 422, "/rows"),
            "STREAMGUARD_MAX_ROWS",
        ),
        limited(
            case(
                "bytes per row",
                batch(json!([row(json!({"notes": "x".repeat(500)}))])),
                422,
                "/rows/0",
            ),
            "STREAMGUARD_MAX_ROW_BYTES",
        ),
        limited(
            case(
                "key columns",
                json!({"processor_name": "p", "table": TABLE, "key_columns": ["game_id", "team", "player_lookup"], "rows": [row(json!({}))]}),
                422,
                "/key_columns",
            ),
            "STREAMGUARD_MAX_KEY_COLUMNS",
        ),
        limited(
            case(
                "nesting depth",
                batch(json!([row(json!({"shots": [{"zones": [1, 2]}]}))])),
                422,
                "/rows/0/shots/0/zones",
            ),
            "STREAMGUARD_MAX_DEPTH",
        ),
        limited(
            case(
                "name length",
                batch(json!([row(json!({"points_in_the_paint_second_half": 10}))])),
                422,
                "/rows/0/points_in_the_paint_second_half",
            ),
            "STREAMGUARD_MAX_NAME_CHARS",
        ),
        limited(
            case(
                "key length",
                batch(json!([row(
                    json!({"game_id": "20260124_LAL_BOS_REPLAY_2"})
                )])),
                422,
                "/rows/0/game_id",
            ),
            "STREAMGUARD_MAX_KEY_VALUE_CHARS",
        ),
    ];
    refuse_all(&app, cases).await;
    app.stop().await;
}

#[sqlx::test]
async fn emulator_insert_all_is_strict_too(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let path = format!("/emulator/tables/{TABLE}/insertAll");
    app.insert_all(TABLE, json!([row(json!({}))]), "0s").await;

    let (status, problem) = app
        .post(
            &path,
            &json!({"rows": [row(json!({})), "not a row"], "buffer": "1s"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rows/1");
    let text = format!(r#"{{"rows": [{{"game_id": "{GAME}", "points": 18446744073709551616}}]}}"#);
    let (status, _, problem) = app
        .post_raw(&path, "application/json", text.into_bytes(), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rows/0/points");

    assert_eq!(
        app.table_rows(TABLE).await,
        vec![row(json!({}))],
        "only the good row"
    );
    app.stop().await;
}

/// Bodies that serde would take or that confuse the summary: an array for a batch, a
/// repeated member name, a NUL character; each 422 with its pointer and a detail that says
/// what was found. Nothing is accepted.
#[sqlx::test]
async fn non_object_bodies_repeated_names_and_nul_are_refused_plainly(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let array = format!(r#"["qa","{TABLE}",["game_id"],null,[{{"game_id":"{GAME}"}}],[],null]"#);
    let (status, _, problem) = app
        .post_raw("/v1/batches", "application/json", array.into_bytes(), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object"),
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["pointer"], "");

    let repeated = format!(
        r#"{{"processor_name":"qa","table":"{TABLE}","key_columns":["game_id"],"rows":[{{"game_id":"{GAME}","points":1,"points":2}}]}}"#
    );
    let (status, _, problem) = app
        .post_raw(
            "/v1/batches",
            "application/json",
            repeated.into_bytes(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/rows/0/points",
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{problem}"
    );

    let nul = format!(
        r#"{{"processor_name":"qa","table":"{TABLE}","key_columns":["game_id"],"rows":[{{"game_id":"{GAME}","player":"a\u0000b"}}]}}"#
    );
    let (status, _, problem) = app
        .post_raw("/v1/batches", "application/json", nul.into_bytes(), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("NUL") && !detail.contains("precision"),
        "{problem}"
    );

    let count: i64 = sqlx::query_scalar("select count(*) from batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing accepted");
    app.stop().await;
}

/// 405 and bad path parameters answer problem+json in plain words.
#[sqlx::test]
async fn wrong_methods_and_bad_uuids_answer_problem_json(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/batches".to_owned()),
        (
            reqwest::Method::GET,
            format!("/emulator/tables/{TABLE}/insertAll"),
        ),
    ] {
        let r = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(r.headers().contains_key("allow"), "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["status"], 405, "{problem}");
        assert_eq!(problem["type"], "/problems/method-not-allowed", "{problem}");
    }

    let (status, problem) = app.get("/v1/batches/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("`batch_id`") && detail.contains("must be a UUID"),
        "{problem}"
    );
    assert!(!detail.contains("Invalid URL"), "{problem}");
    app.stop().await;
}

/// insertAll refuses column names BigQuery would refuse, and buffers past the maximum.
#[sqlx::test]
async fn emulator_insert_all_checks_column_names_and_buffer_bounds(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let path = format!("/emulator/tables/{TABLE}/insertAll");
    let (status, problem) = app
        .post(&path, &json!({"rows": [{"game_id": GAME, "a b; drop": 1}]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/rows/0/a b; drop",
        "{problem}"
    );

    for buffer in ["400000y", "8d", "1s..8d"] {
        let (status, problem) = app
            .post(&path, &json!({"rows": [{"a": 1}], "buffer": buffer}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{buffer}: {problem}"
        );
        assert_eq!(problem["errors"][0]["pointer"], "/buffer", "{problem}");
    }
    assert!(app.table_rows(TABLE).await.is_empty());
    app.stop().await;
}
