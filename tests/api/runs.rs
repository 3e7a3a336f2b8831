//! Backfill runs: `run` on POST /v1/batches (validated, echoed, part of the idempotency
//! payload), and the progress and report of `GET /v1/runs/{run}` and `GET /v1/runs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{game_batch, game_rows, spawn_app, spawn_app_on_clock, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

fn in_run(mut batch: Value, run: &str) -> Value {
    batch["run"] = json!(run);
    batch
}

/// Polls the run until it is done.
async fn run_done(app: &TestApp, path: &str) -> Value {
    app.eventually(Duration::from_secs(20), "the run to be done", || async {
        let (status, body) = app.get(path).await;
        (status == StatusCode::OK && body["done"] == true).then_some(body)
    })
    .await
}

#[sqlx::test]
async fn a_run_reports_first_attempts_retries_and_its_end(pool: PgPool) {
    // On a manual clock: the buffer holds until the clock moves past it, however slowly
    // the first attempt comes.
    let app = spawn_app_on_clock(pool, |_| {}).await;
    let run = "bdl_boxscores backfill 2026-01-24/25 ⚽";
    let path = "/v1/runs/bdl_boxscores%20backfill%202026-01-24%2F25%20%E2%9A%BD";
    // One game still in the streaming buffer (1 s in the test settings), two flushed.
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 2, "orchestration"),
        "1s",
    )
    .await;
    let mut ids = Vec::new();
    for (game, date) in [
        ("20260124_LAL_BOS", "2026-01-24"),
        ("20260125_MIA_NYK", "2026-01-25"),
        ("20260125_GSW_DEN", "2026-01-25"),
    ] {
        let (status, body) = app
            .post_batch(
                &in_run(game_batch(TABLE, game, date, 3, "backfill"), run),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["run"], run);
        ids.push(body["batch_id"].as_str().unwrap().to_owned());
    }
    let (_, batch) = app.get(&format!("/v1/batches/{}", ids[0])).await;
    assert_eq!(batch["run"], run, "GET /v1/batches echoes the run");

    let report = run_done(&app, path).await;

    assert_eq!(report["run"], run);
    assert_eq!(report["processors"], json!(["bdl_boxscores_processor"]));
    assert_eq!(report["tables"], json!([TABLE]));
    assert_eq!(report["batches"], 3);
    assert_eq!(
        report["units"],
        json!({"total": 3, "pending": 0, "deferred": 0, "loaded": 3, "failed": 0,
               "unresolved": 0, "superseded": 0, "cancelled": 0})
    );
    assert_eq!(report["loaded_first_attempt"], 2);
    assert_eq!(report["deferred"], 1);
    assert_eq!(report["resolved_by_retry"], 1);
    assert_eq!(
        (report["unresolved"].as_i64(), report["failed"].as_i64()),
        (Some(0), Some(0))
    );
    let mut attempts = 0;
    for id in &ids {
        let (_, view) = app.get(&format!("/v1/batches/{id}")).await;
        attempts += view["units"][0]["attempts"].as_i64().unwrap();
    }
    assert!(attempts >= 4, "3 first attempts and at least 1 retry");
    assert_eq!(report["attempts"], attempts, "{report}");
    // Every statement that carried one of the run's units, the ones spent splitting a
    // refused group included: here, every statement the service sent.
    let statements = report["statements"].as_i64().unwrap();
    let sent: i64 = sqlx::query_scalar("select count(*) from statements")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(statements, sent, "{report}");
    assert_eq!(report["estimated_done_at"], Value::Null);
    let started = report["started_at"].as_str().unwrap();
    let last = report["last_change_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(last).unwrap()
            >= chrono::DateTime::parse_from_rfc3339(started).unwrap()
    );
    assert_eq!(app.table_rows(TABLE).await.len(), 9);
}

#[sqlx::test]
async fn a_waiting_run_estimates_its_end_from_the_next_retry(pool: PgPool) {
    // On a manual clock: the buffer holds until the clock moves past it, however slowly
    // the first attempt comes.
    let app = spawn_app_on_clock(pool, |_| {}).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 1, "orchestration"),
        "1s",
    )
    .await;
    let (status, body) = app
        .post_batch(
            &in_run(
                game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 1, "backfill"),
                "waiting",
            ),
            Some(10.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["units"][0]["state"], "deferred", "{body}");

    let (status, report) = app.get("/v1/runs/waiting").await;

    assert_eq!(status, StatusCode::OK);
    if report["done"] == false {
        // The unit may have landed between the two requests; while it waits, the estimate
        // is its next attempt.
        assert_eq!(report["units"]["deferred"], 1, "{report}");
        let next = chrono::DateTime::parse_from_rfc3339(
            body["units"][0]["next_attempt_at"].as_str().unwrap(),
        )
        .unwrap();
        let estimate =
            chrono::DateTime::parse_from_rfc3339(report["estimated_done_at"].as_str().unwrap())
                .unwrap();
        assert!(estimate >= next, "{report}");
    }
    run_done(&app, "/v1/runs/waiting").await;
}

#[sqlx::test]
async fn bad_runs_are_refused_with_their_pointer(pool: PgPool) {
    let app = spawn_app(pool).await;
    for bad in [json!(""), json!("a\nb"), json!("r".repeat(201)), json!(7)] {
        let batch = in_run(
            game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 1, "v"),
            "x",
        );
        let mut batch = batch;
        batch["run"] = bad.clone();

        let (status, body) = app.post_batch(&batch, None).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["errors"][0]["pointer"], "/run", "{bad}: {body}");
    }
    let (status, runs) = app.get("/v1/runs").await;
    assert_eq!((status, runs), (StatusCode::OK, json!({"runs": []})));
}

#[sqlx::test]
async fn the_run_is_part_of_the_idempotent_payload(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut batch = in_run(
        game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 1, "v"),
        "one",
    );
    batch["idempotency_key"] = json!("k-1");
    let (first, a) = app.post_batch(&batch, None).await;
    let (again, b) = app.post_batch(&batch, None).await;
    assert_eq!((first, again), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(a["batch_id"], b["batch_id"]);

    batch["run"] = json!("two");
    let (status, body) = app.post_batch(&batch, None).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app.get("/v1/runs/two").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn runs_are_listed_most_recent_change_first(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (run, game) in [("older", "20260124_LAL_BOS"), ("newer", "20260124_MIA_NYK")] {
        let (status, body) = app
            .post_batch(
                &in_run(game_batch(TABLE, game, "2026-01-24", 1, "v"), run),
                Some(10.0),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A batch without a run is in no run.
    app.post_batch(
        &game_batch(TABLE, "20260124_GSW_DEN", "2026-01-24", 1, "v"),
        Some(10.0),
    )
    .await;

    let (status, body) = app.get("/v1/runs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["newer", "older"]);
    let (_, one) = app.get("/v1/runs?limit=1").await;
    assert_eq!(one["runs"].as_array().unwrap().len(), 1);
    assert_eq!(one["runs"][0]["run"], "newer");

    for bad in ["/v1/runs?limit=0", "/v1/runs?limit=101", "/v1/runs?limit=x"] {
        let (status, body) = app.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = app.get("/v1/runs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["status"], 404);
}
