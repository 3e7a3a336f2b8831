//! Intake over HTTP: answers, idempotency, bad input, and that nothing already accepted
//! is lost when a later request is refused.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{game_batch, spawn_app, spawn_app_with};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(match table {
        "batches" => "select count(*) from batches",
        "write_units" => "select count(*) from write_units",
        _ => "select count(*) from jobs",
    })
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn accepted_batch_answers_202_with_location_and_units(pool: PgPool) {
    // No scheduler: the answer shows the units as accepted, before any attempt.
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    let mut body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "backfill");
    body["rows"].as_array_mut().unwrap().extend(
        game_batch(TABLE, "20260124_MIA_NYK", "2026-01-24", 2, "backfill")["rows"]
            .as_array()
            .unwrap()
            .clone(),
    );

    let response = app
        .client
        .post(format!("{}/v1/batches", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let view: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/batches/{}", view["batch_id"].as_str().unwrap())
    );
    let units = view["units"].as_array().unwrap();
    assert_eq!(units.len(), 2);
    assert_eq!(units[0]["key"], json!({"game_id": "20260124_LAL_BOS"}));
    assert_eq!(units[0]["partition"], json!("2026-01-24"));
    assert_eq!(
        (units[0]["rows"].as_i64(), units[1]["rows"].as_i64()),
        (Some(3), Some(2))
    );
    assert!(units
        .iter()
        .all(|u| u["state"] == "pending" && u["attempts"] == 0));

    // The answer says whether the rows were checked against the table's schema: the
    // emulator table is new, so there was none yet (the first write infers one).
    let mut view = view;
    let check = view
        .as_object_mut()
        .unwrap()
        .remove("schema_check")
        .unwrap();
    assert_eq!(check["status"], "unchecked", "{check}");
    let (status, again) = app.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again, view,
        "GET shows the batch without the intake-time schema_check"
    );
    app.stop().await;
}

#[sqlx::test]
async fn wait_answers_200_with_first_attempt_results(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 4, "backfill"),
            Some(10.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["units"][0]["state"], "loaded");
    assert_eq!(view["units"][0]["attempts"], 1);
    assert_eq!(app.table_rows(TABLE).await.len(), 4);
    app.stop().await;
}

#[sqlx::test]
async fn same_idempotency_key_twice_at_once_makes_one_batch(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 5, "backfill");
    body["idempotency_key"] = json!("backfill-2026-01-24-LAL-BOS");

    let (a, b) = tokio::join!(app.post_batch(&body, None), app.post_batch(&body, None));

    assert_eq!((a.0, b.0), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(a.1["batch_id"], b.1["batch_id"]);
    assert_eq!(count(&app.pool, "batches").await, 1);
    assert_eq!(count(&app.pool, "write_units").await, 1);
    let view = app
        .settle(
            a.1["batch_id"].as_str().unwrap(),
            std::time::Duration::from_secs(10),
        )
        .await;
    assert_eq!(view["units"][0]["state"], "loaded");
    assert_eq!(app.table_rows(TABLE).await.len(), 5, "written once");

    // A third post after it landed replays too, and writes nothing.
    let (status, replay) = app.post_batch(&body, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(replay["units"][0]["state"], "loaded");
    assert_eq!(count(&app.pool, "jobs").await, 1);
    app.stop().await;
}

#[sqlx::test]
async fn reused_idempotency_key_with_other_payload_is_422(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    let mut body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "backfill");
    body["idempotency_key"] = json!("k-1");
    let (first, original) = app.post_batch(&body, None).await;
    assert_eq!(first, StatusCode::ACCEPTED);

    body["rows"][0]["points"] = json!(99);
    let (status, problem) = app.post_batch(&body, None).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/idempotency_key");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains(original["batch_id"].as_str().unwrap()));
    assert_eq!(count(&app.pool, "batches").await, 1);
    app.stop().await;
}

#[sqlx::test]
async fn bad_input_is_a_clear_4xx_and_loses_nothing_accepted(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.run_scheduler = false;
        s.http.max_body_bytes = 64 * 1024;
    })
    .await;
    let (status, accepted) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "backfill"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Malformed JSON.
    let r = app
        .client
        .post(format!("{}/v1/batches", app.base))
        .header("content-type", "application/json")
        .body("{\"rows\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("line 1"),
        "{problem}"
    );

    // Missing key column in row 1, invalid table.
    let mut body = game_batch(TABLE, "g1", "2026-01-24", 2, "backfill");
    body["rows"][1].as_object_mut().unwrap().remove("game_id");
    body["table"] = json!("nba.raw;drop");
    let (status, problem) = app.post_batch(&body, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, vec!["/table"]);
    body["table"] = json!(TABLE);
    let (_, problem) = app.post_batch(&body, None).await;
    assert_eq!(problem["errors"][0]["pointer"], "/rows/1/game_id");
    assert!(problem["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("game_id"));

    // Unknown field, and a body over the limit.
    let mut body = game_batch(TABLE, "g1", "2026-01-24", 1, "backfill");
    body["colums"] = json!([]);
    let (status, _) = app.post_batch(&body, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, problem) = app
        .post_batch(
            &game_batch(TABLE, "g1", "2026-01-24", 2000, "backfill"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");

    // A bad `wait`.
    let (status, _) = app
        .post_batch(
            &game_batch(TABLE, "g2", "2026-01-24", 1, "backfill"),
            Some(-1.0),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(
        count(&app.pool, "batches").await,
        1,
        "only the first batch was accepted"
    );
    let (status, still) = app
        .get(&format!(
            "/v1/batches/{}",
            accepted["batch_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut accepted = accepted;
    accepted.as_object_mut().unwrap().remove("schema_check");
    assert_eq!(still, accepted);
    app.stop().await;
}

#[sqlx::test]
async fn unknown_things_are_404_problems(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    for path in [
        "/v1/batches/6f1c6a4e-0000-4000-8000-000000000000",
        "/v1/batches/not-a-uuid",
        "/v1/conflicts/6f1c6a4e-0000-4000-8000-000000000000",
        "/nowhere",
    ] {
        let (status, problem) = app.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem["status"], 404, "{path}");
    }
    let (status, _) = app.get("/v1/conflicts/unresolved?hours=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[sqlx::test]
async fn health_and_readiness(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["warehouse"], "emulator");

    sqlx::query("delete from _sqlx_migrations where version = 2")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, problem) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        problem["detail"].as_str().unwrap().contains("emulator"),
        "{problem}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn metrics_count_the_shared_state_in_prometheus_text(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    app.post_batch(
        &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "backfill"),
        None,
    )
    .await;

    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();

    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("streamguard_units{state=\"pending\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("streamguard_jobs{state=\"due\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("streamguard_conflicts_unresolved 0\n"),
        "{text}"
    );
    app.stop().await;
}
