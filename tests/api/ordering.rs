//! Newest data wins: concurrent posts for one key, mixed key shapes, long keys, and a
//! stalled replica's late write.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::domain::TableRef;
use streamguard::store::jobs::{AttemptLog, Recorded, Verdict};
use streamguard::store::Store;
use streamguard::warehouse::emulator::Emulator;
use streamguard::warehouse::{Warehouse, WriteUnit};

use crate::helpers::{eventually, game_batch, game_rows, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const SETTLE: Duration = Duration::from_secs(20);

async fn app(pool: PgPool, scheduler: bool) -> TestApp {
    spawn_app_with(pool, |s| {
        s.run_scheduler = scheduler;
        s.breaker.min_outcomes = u32::MAX; // these tests are about ordering, not the breaker
    })
    .await
}

/// The version of the newest unit of the key (highest `seq`), and the table's versions.
async fn newest_and_table(app: &TestApp) -> (String, Vec<Value>) {
    let newest: Value =
        sqlx::query_scalar("select rows->0->'source' from write_units order by seq desc limit 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let table = app
        .table_rows(TABLE)
        .await
        .iter()
        .map(|r| r["source"].clone())
        .collect();
    (newest.as_str().unwrap().to_owned(), table)
}

#[sqlx::test]
async fn concurrent_posts_for_one_key_leave_the_newest_in_the_table(pool: PgPool) {
    let app = app(pool, true).await;
    let posts = (0..12).map(|v| {
        let body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, &format!("v{v}"));
        let app = &app;
        async move { app.post_batch(&body, None).await }
    });

    let answers = futures::future::join_all(posts).await;

    assert!(answers.iter().all(|(s, _)| *s == StatusCode::ACCEPTED));
    eventually(SETTLE, "every unit settled", || async {
        let open: i64 = sqlx::query_scalar(
            "select count(*) from write_units where state in ('pending', 'deferred')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let running: i64 = sqlx::query_scalar("select count(*) from jobs where state = 'running'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (open + running == 0).then_some(())
    })
    .await;
    let (newest, table) = newest_and_table(&app).await;
    assert_eq!(
        table,
        vec![json!(newest), json!(newest)],
        "the last batch to commit is the one in the table"
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_batch_keyed_otherwise_waits_for_the_tables_open_units(pool: PgPool) {
    let app = app(pool, true).await;
    app.insert_all(
        TABLE,
        game_rows("20260124_LAL_BOS", "2026-01-24", 1, "orchestration"),
        "4s",
    )
    .await;
    let (_, whole_game) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "whole-game"),
            Some(10.0),
        )
        .await;
    assert_eq!(whole_game["units"][0]["state"], "deferred");

    let mut correction = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 1, "correction");
    correction["key_columns"] = json!(["game_id", "player_lookup"]);
    let (status, problem) = app.post_batch(&correction, None).await;

    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("[\"game_id\"]"),
        "{problem}"
    );
    app.settle(whole_game["batch_id"].as_str().unwrap(), SETTLE)
        .await;
    let (status, _) = app.post_batch(&correction, Some(10.0)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "accepted once the whole-game unit landed"
    );
    app.stop().await;
}

#[sqlx::test]
async fn long_key_values_within_the_limits_are_accepted(pool: PgPool) {
    let app = app(pool, false).await;
    let long = "界".repeat(1024);
    let body = json!({
        "processor_name": "bdl_boxscores_processor",
        "table": TABLE,
        "key_columns": ["a", "b", "c", "d"],
        "rows": [{"a": long, "b": long, "c": long, "d": long, "points": 1}],
    });
    let (status, view) = app.post_batch(&body, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let (status, _) = app.post_batch(&body, None).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "and the second supersedes the first"
    );
    let states: Vec<String> = sqlx::query_scalar("select state from write_units order by seq")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(states, vec!["superseded", "pending"]);
    app.stop().await;
}

#[sqlx::test]
async fn a_stalled_replicas_late_write_is_healed_by_reapplying_the_newest_unit(pool: PgPool) {
    // A "zombie" replica claims v1, then stalls past its lease.
    let intake = app(pool.clone(), false).await;
    let (_, v1) = intake
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v1"),
            None,
        )
        .await;
    let store = Store::new(pool.clone());
    let zombie = store
        .claim("zombie", 1, 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    // Meanwhile v2 arrives and a live replica lands it.
    let (_, v2) = intake
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v2"),
            None,
        )
        .await;
    let live = app(pool.clone(), true).await;
    live.settle(v2["batch_id"].as_str().unwrap(), SETTLE).await;
    assert!(live
        .table_rows(TABLE)
        .await
        .iter()
        .all(|r| r["source"] == "v2"));

    // The zombie wakes: its replace of v1 reaches the warehouse, then recording finds the lease gone.
    let unit = WriteUnit {
        unit_id: zombie.unit_id,
        attempt: zombie.attempt,
        key: zombie.key.as_object().unwrap().clone(),
        partition: Some((
            streamguard::domain::ColumnName::parse("game_date").unwrap(),
            json!("2026-01-24"),
        )),
        rows: zombie.rows.as_array().unwrap().clone(),
    };
    let emulator = Emulator::new(
        pool.clone(),
        streamguard::config::Settings::for_tests("").emulator,
    );
    emulator
        .replace(
            &TableRef::parse(TABLE).unwrap(),
            "streamguard-zombie-late-write",
            &[unit],
        )
        .await
        .unwrap();
    assert!(
        live.table_rows(TABLE)
            .await
            .iter()
            .all(|r| r["source"] == "v1"),
        "the stale write landed"
    );
    let log = AttemptLog {
        replica: "zombie".into(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
    };
    let recorded = store
        .record(&zombie, &Verdict::Loaded { rows_inserted: 2 }, &log)
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::LeaseLost);

    eventually(SETTLE, "v2 re-applied", || async {
        let rows = live.table_rows(TABLE).await;
        (rows.len() == 2 && rows.iter().all(|r| r["source"] == "v2")).then_some(())
    })
    .await;
    let (_, v1) = live
        .get(&format!("/v1/batches/{}", v1["batch_id"].as_str().unwrap()))
        .await;
    assert_eq!(v1["units"][0]["state"], "superseded");
    intake.stop().await;
    live.stop().await;
}

#[sqlx::test]
async fn a_key_is_one_key_however_its_typed_value_is_spelled(pool: PgPool) {
    let app = crate::helpers::spawn_app(pool).await;
    let (status, body) = app
        .post(
            "/emulator/tables",
            &json!({"tableReference": {"projectId": "qa-proj", "datasetId": "d", "tableId": "n1"},
                    "schema": {"fields": [{"name": "n", "type": "INTEGER", "mode": "REQUIRED"},
                                          {"name": "p", "type": "DATE"},
                                          {"name": "v", "type": "INTEGER"}]},
                    "timePartitioning": {"type": "DAY", "field": "p"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let post = |n: Value, p: &str, v: i64| {
        json!({"processor_name": "p", "table": "qa-proj.d.n1", "key_columns": ["n"],
               "partition_column": "p", "rows": [{"n": n, "p": p, "v": v}]})
    };
    for (i, (n, p)) in [
        (json!(31), "2026-01-05"),
        (json!("0x1F"), "2026-1-5"),
        (json!(" 31"), "2026-01-5"),
        (json!("+31"), "2026-1-05"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, view) = app.post_batch(&post(n, p, i as i64), Some(10.0)).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["units"][0]["key"], json!({"n": 31}), "{view}");
        assert_eq!(view["units"][0]["partition"], json!("2026-01-05"), "{view}");
        assert_eq!(view["units"][0]["state"], "loaded", "{view}");
    }
    let rows = app.table_rows("qa-proj.d.n1").await;
    assert_eq!(rows, vec![json!({"n": 31, "p": "2026-01-05", "v": 3})]);
    app.stop().await;
}
