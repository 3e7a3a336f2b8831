//! The scheduler end to end: partitions, supersession, pure deletes, giving up, and the
//! conflict views that explain it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use streamguard::warehouse::emulator::ConflictScope;

use crate::helpers::{game_batch, game_rows, spawn_app_on_clock, spawn_app_with};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const SETTLE: Duration = Duration::from_secs(20);

#[sqlx::test]
async fn key_in_an_unbuffered_partition_loads_while_a_buffered_partition_defers(pool: PgPool) {
    let app = spawn_app_on_clock(pool, |_| {}).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_ATL_BOS", "2026-01-24", 2, "orchestration"),
        "5s",
    )
    .await;
    let mut body = game_batch(TABLE, "20260125_LAL_BOS", "2026-01-25", 2, "backfill");
    body["rows"].as_array_mut().unwrap().extend(
        game_rows("20260124_MIA_NYK", "2026-01-24", 2, "backfill")
            .as_array()
            .unwrap()
            .clone(),
    );

    let (status, view) = app.post_batch(&body, Some(10.0)).await;

    assert_eq!(status, StatusCode::OK);
    let units = view["units"].as_array().unwrap();
    assert_eq!(
        (units[0]["state"].as_str(), units[1]["state"].as_str()),
        (Some("loaded"), Some("deferred"))
    );
    assert!(units[1]["next_attempt_at"].is_string());
    assert!(units[1]["conflict_id"].is_string());
    assert!(units[1]["error"]
        .as_str()
        .unwrap()
        .contains("streaming buffer"));

    let view = app.settle(view["batch_id"].as_str().unwrap(), SETTLE).await;
    assert_eq!(view["units"][1]["state"], "loaded");
    assert!(view["units"][1]["attempts"].as_i64().unwrap() >= 2);
    app.stop().await;
}

#[sqlx::test]
async fn row_scope_lets_other_keys_of_a_buffered_partition_through(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.emulator.conflict_scope = ConflictScope::Row).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_ATL_BOS", "2026-01-24", 2, "orchestration"),
        "30s",
    )
    .await;
    let (_, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_MIA_NYK", "2026-01-24", 2, "backfill"),
            Some(10.0),
        )
        .await;
    assert_eq!(view["units"][0]["state"], "loaded");
    let (_, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_ATL_BOS", "2026-01-24", 2, "backfill"),
            Some(10.0),
        )
        .await;
    assert_eq!(view["units"][0]["state"], "deferred");
    app.stop().await;
}

#[sqlx::test]
async fn a_newer_batch_supersedes_an_older_deferred_one(pool: PgPool) {
    let app = spawn_app_on_clock(pool, |_| {}).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 3, "orchestration"),
        "5s",
    )
    .await;
    let (_, old) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "old-backfill"),
            Some(10.0),
        )
        .await;
    assert_eq!(old["units"][0]["state"], "deferred");

    let (status, new) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "new-backfill"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let new = app.settle(new["batch_id"].as_str().unwrap(), SETTLE).await;
    assert_eq!(new["units"][0]["state"], "loaded");
    let (_, old) = app
        .get(&format!(
            "/v1/batches/{}",
            old["batch_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(old["units"][0]["state"], "superseded");
    app.until_no_job_can_run().await; // no retry the old unit had scheduled is left
    let rows = app.table_rows(TABLE).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r["source"] == "new-backfill"),
        "{rows:?}"
    );

    let conflict_id = old["units"][0]["conflict_id"].as_str().unwrap();
    let (_, conflict) = app.get(&format!("/v1/conflicts/{conflict_id}")).await;
    assert_eq!(
        (
            conflict["resolved"].as_bool(),
            conflict["resolution_method"].as_str()
        ),
        (Some(true), Some("superseded"))
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_pure_delete_that_hits_the_buffer_is_deferred_then_empties_the_key(pool: PgPool) {
    let app = spawn_app_on_clock(pool, |_| {}).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 3, "orchestration"),
        "0s",
    )
    .await;
    app.insert_all(
        TABLE,
        game_rows("20260124_MIA_NYK", "2026-01-24", 2, "orchestration"),
        "5s",
    )
    .await;
    let body = json!({
        "processor_name": "bdl_boxscores_processor",
        "table": TABLE,
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "delete_keys": [{"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24"}],
    });

    let (status, view) = app.post_batch(&body, Some(10.0)).await;

    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["units"][0]["rows"], 0);
    assert_eq!(view["units"][0]["state"], "deferred");
    let view = app.settle(view["batch_id"].as_str().unwrap(), SETTLE).await;
    assert_eq!(view["units"][0]["state"], "loaded");
    let rows = app.table_rows(TABLE).await;
    assert!(
        rows.iter().all(|r| r["game_id"] != "20260124_LAL_BOS"),
        "the key has 0 rows"
    );
    assert_eq!(rows.len(), 2, "the other game is untouched");
    app.stop().await;
}

#[sqlx::test]
async fn attempts_run_out_and_the_conflict_is_unresolved_with_timeout(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.retry = streamguard::domain::RetryPolicy::new(vec![Duration::from_millis(100)], 3, 0.0)
            .unwrap();
    })
    .await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 1, "orchestration"),
        "60s",
    )
    .await;

    let (_, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "backfill"),
            None,
        )
        .await;
    // The scheduler places each retry after the emulator's buffer can have drained (60 s
    // away); move the clock instead of waiting: make every scheduled retry due now.
    let batch = format!("/v1/batches/{}", view["batch_id"].as_str().unwrap());
    let view = app
        .eventually(SETTLE, "the unit to be given up", || async {
            sqlx::query("update jobs set run_at = now() where state = 'available'")
                .execute(&app.pool)
                .await
                .unwrap();
            sqlx::query("update partition_holds set until = now()")
                .execute(&app.pool)
                .await
                .unwrap();
            let (_, view) = app.get(&batch).await;
            (view["units"][0]["state"] == "unresolved").then_some(view)
        })
        .await;

    let unit = &view["units"][0];
    assert_eq!(unit["state"], "unresolved");
    assert_eq!(unit["attempts"], 3);
    assert!(unit["next_attempt_at"].is_null());
    let (_, unresolved) = app.get("/v1/conflicts/unresolved").await;
    let listed = &unresolved["conflicts"][0];
    assert_eq!(listed["conflict_id"], unit["conflict_id"]);
    assert_eq!(
        (listed["game_id"].as_str(), listed["game_date"].as_str()),
        (Some("20260124_LAL_BOS"), Some("2026-01-24"))
    );
    assert_eq!(
        (
            listed["resolution_method"].as_str(),
            listed["unit_state"].as_str()
        ),
        (Some("timeout"), Some("unresolved"))
    );
    assert_eq!(
        (
            listed["retry_attempt"].as_i64(),
            listed["max_retries"].as_i64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(listed["key"], json!({"game_id": "20260124_LAL_BOS"}));

    let (_, conflict) = app
        .get(&format!(
            "/v1/conflicts/{}",
            unit["conflict_id"].as_str().unwrap()
        ))
        .await;
    let attempts = conflict["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(attempts
        .iter()
        .all(|a| a["outcome"] == "conflict" && a["error_class"] == "streaming_buffer"));
    let delay = attempts[0]["delay_seconds"].as_i64().unwrap();
    assert!(
        (55..=60).contains(&delay),
        "not before the buffer can have drained: {delay}"
    );
    assert!(
        attempts[2]["next_attempt_at"].is_null(),
        "no attempt after the last"
    );
    assert_eq!(
        app.table_rows(TABLE).await.len(),
        1,
        "nothing was written over the buffer"
    );

    let (_, summary) = app.get("/v1/conflicts/summary").await;
    assert_eq!(
        (
            summary["summary"][0]["unresolved"].as_i64(),
            summary["summary"][0]["resolved"].as_i64()
        ),
        (Some(1), Some(0))
    );
    app.stop().await;
}

#[sqlx::test]
async fn operators_list_units_by_state_with_their_errors(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.breaker.min_outcomes = u32::MAX).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 1, "orchestration"),
        "60s",
    )
    .await;
    let (_, deferred) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "backfill"),
            Some(10.0),
        )
        .await;
    app.post_batch(
        &game_batch(TABLE, "20260125_MIA_NYK", "2026-01-25", 2, "backfill"),
        Some(10.0),
    )
    .await;

    let (status, listed) = app.get("/v1/units?state=deferred").await;

    assert_eq!(status, StatusCode::OK);
    let units = listed["units"].as_array().unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(units[0]["unit_id"], deferred["units"][0]["unit_id"]);
    assert_eq!(units[0]["batch_id"], deferred["batch_id"]);
    assert_eq!(units[0]["processor_name"], "bdl_boxscores_processor");
    assert!(units[0]["error"]
        .as_str()
        .unwrap()
        .contains("streaming buffer"));
    assert!(units[0]["next_attempt_at"].is_string());
    let (_, loaded) = app.get("/v1/units?state=loaded&limit=5").await;
    assert_eq!(loaded["units"].as_array().unwrap().len(), 1);
    let (status, problem) = app.get("/v1/units?state=stuck").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("unresolved"));
    app.stop().await;
}

/// Issue 10, "jitter retries early": with a large jitter fraction, no retry is scheduled
/// before the policy's delay, and none runs before it was scheduled. The refusals are
/// injected backend errors, which (unlike the streaming buffer) have no floor that would
/// hide an early retry, nor slow the table's pace.
#[sqlx::test]
async fn jitter_never_brings_a_retry_before_its_delay(pool: PgPool) {
    let base = Duration::from_millis(400);
    let app = spawn_app_on_clock(pool.clone(), move |s| {
        s.retry = streamguard::domain::RetryPolicy::new(vec![base], 30, 0.9).unwrap();
        s.emulator.faults = "transient=0.6,seed=7".parse().unwrap();
    })
    .await;
    let mut ids = Vec::new();
    for (game, date) in [("G1", "2026-01-24"), ("G2", "2026-01-25")] {
        let (status, view) = app
            .post_batch(&game_batch(TABLE, game, date, 2, "backfill"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{view}");
        ids.push(view["batch_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let view = app.settle(id, SETTLE).await;
        assert_eq!(view["units"][0]["state"], "loaded", "{view}");
    }

    type Row = (
        uuid::Uuid,
        i32,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let attempts: Vec<Row> = sqlx::query_as(
        "select unit_id, attempt, started_at, next_attempt_at from attempts
         where outcome <> 'lost' order by unit_id, attempt",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut retries = 0;
    for pair in attempts.windows(2) {
        let ((unit, _, started, next_at), (next_unit, _, next_started, _)) = (&pair[0], &pair[1]);
        if unit != next_unit {
            continue;
        }
        let next_at = next_at.expect("a retried attempt has its next time");
        let waited = (next_at - *started).to_std().unwrap_or_default();
        assert!(
            waited >= base,
            "scheduled {waited:?} after its start: {attempts:?}"
        );
        assert!(
            *next_started >= next_at,
            "ran before its time: {attempts:?}"
        );
        retries += 1;
    }
    assert!(retries >= 2, "the faults caused retries: {attempts:?}");
    app.stop().await;
}
