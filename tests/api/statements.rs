//! Statements: many keys in one statement, a refused group split so every part that can
//! land lands in the same round, a permanent error isolated to its key, and earlier
//! statements settled — waited for or adopted — before anything else is sent for their keys.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::scheduler::{Scheduler, SchedulerSettings};
use streamguard::store::jobs::GroupBounds;
use streamguard::store::Store;
use streamguard::warehouse::emulator::{ConflictScope, Emulator};

use crate::helpers::{eventually, fast_settings, game_rows, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

/// One batch of `games` (`(game_id, game_date)`), two rows each, `version` in `source`.
fn batch(games: &[(String, String)], version: &str) -> Value {
    let rows: Vec<Value> = games
        .iter()
        .flat_map(|(id, date)| game_rows(id, date, 2, version).as_array().unwrap().clone())
        .collect();
    json!({"processor_name": "bdl_boxscores_processor", "table": TABLE, "key_columns": ["game_id"],
           "partition_column": "game_date", "rows": rows})
}

/// `n` games over `days` days (partitions), round robin.
fn games(n: usize, days: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let day = 1 + i % days;
            (
                format!("202601{day:02}_G{i:03}"),
                format!("2026-01-{day:02}"),
            )
        })
        .collect()
}

async fn statements(app: &TestApp) -> Vec<(i64, String, i32, Option<String>)> {
    sqlx::query_as(
        "select statement_id, state, units, error_class from statements order by statement_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

fn units_in(view: &Value, state: &str) -> usize {
    view["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["state"] == state)
        .count()
}

#[sqlx::test]
async fn forty_keys_over_eight_partitions_land_in_one_statement(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let (status, view) = app
        .post_batch(&batch(&games(40, 8), "backfill"), Some(10.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(units_in(&view, "loaded"), 40, "{view}");

    let sent = statements(&app).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].1.as_str(), sent[0].2), ("done", 40));
    // Every attempt points at it; the statement lists its units and BigQuery-style counts.
    let job_id: String = sqlx::query_scalar("select job_id from statements")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let pointing: i64 = sqlx::query_scalar(
        "select count(*) from attempts a join statements s using (statement_id)
         where a.outcome = 'loaded' and a.warehouse_job_id = s.job_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(pointing, 40);
    let (status, statement) = app.get(&format!("/v1/statements/{job_id}")).await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    assert_eq!(statement["state"], "done");
    assert_eq!(statement["rows_inserted"], 80);
    assert_eq!(statement["unit_attempts"].as_array().unwrap().len(), 40);
    for missing in ["streamguard-nope", "streamguard-%00", "%00"] {
        let (status, _) = app.get(&format!("/v1/statements/{missing}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        let (status, _) = app.get(&format!("/v1/runs/{missing}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(&format!(
        "streamguard_warehouse_statements_total{{table=\"{TABLE}\",outcome=\"loaded\"}} 1\n"
    )));
    assert!(metrics.contains("streamguard_units_per_statement_bucket{le=\"50\"} 1\n"));
    assert!(metrics.contains("streamguard_units_total{outcome=\"loaded\"} 40\n"));
    app.stop().await;
}

#[sqlx::test]
async fn a_buffered_partition_is_split_off_and_the_other_keys_land_in_the_same_round(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let all = games(12, 4);
    app.insert_all(
        TABLE,
        game_rows("20260102_STREAM", "2026-01-02", 1, "orchestration"),
        "60s",
    )
    .await;
    let (status, view) = app.post_batch(&batch(&all, "backfill"), Some(10.0)).await;
    assert_eq!(status, StatusCode::OK, "{view}");

    // The nine games of the three clean days land on attempt 1; the three of the buffered
    // day wait, each with its conflict, and the day is held.
    for unit in view["units"].as_array().unwrap() {
        let buffered = unit["partition"] == "2026-01-02";
        assert_eq!(
            unit["state"],
            if buffered { "deferred" } else { "loaded" },
            "{unit}"
        );
        assert_eq!(unit["attempts"], 1, "{unit}");
        assert_eq!(unit["conflict_id"].is_null(), !buffered, "{unit}");
    }
    let sent = statements(&app).await;
    assert!(
        sent.len() <= 6,
        "a few statements find the buffered day: {sent:?}"
    );
    assert_eq!(
        sent.iter()
            .filter(|s| s.1 == "done")
            .map(|s| s.2)
            .sum::<i32>(),
        9,
        "{sent:?}"
    );
    let held: i64 = sqlx::query_scalar(
        "select count(*) from partition_holds where partition_value = '\"2026-01-02\"'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(held, 1);

    // A blocked unit's attempt names the statement that refused it.
    let blocked = view["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["state"] == "deferred")
        .unwrap();
    let (_, conflict) = app
        .get(&format!(
            "/v1/conflicts/{}",
            blocked["conflict_id"].as_str().unwrap()
        ))
        .await;
    let job_id = conflict["attempts"][0]["statement_job_id"]
        .as_str()
        .unwrap();
    let (status, statement) = app.get(&format!("/v1/statements/{job_id}")).await;
    assert_eq!(
        (status, statement["state"].as_str()),
        (StatusCode::OK, Some("failed"))
    );
    assert_eq!(statement["error_class"], "streaming_buffer");

    // A new game of the held day, posted now, waits unattempted with a conflict of its own.
    let (_, late) = app
        .post_batch(
            &batch(&[("20260102_LATE".into(), "2026-01-02".into())], "backfill"),
            None,
        )
        .await;
    assert_eq!(late["units"][0]["state"], "deferred", "{late}");
    assert_eq!(late["units"][0]["attempts"], 0, "{late}");
    assert!(!late["units"][0]["conflict_id"].is_null(), "{late}");
    assert!(
        late["units"][0]["error"].as_str().unwrap().contains("held"),
        "{late}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn with_row_scope_the_other_keys_of_a_buffered_partition_land(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.emulator.conflict_scope = ConflictScope::Row).await;
    let all = games(8, 1);
    let (blocked, _) = &all[3];
    app.insert_all(
        TABLE,
        game_rows(blocked, "2026-01-01", 2, "orchestration"),
        "60s",
    )
    .await;
    let (status, view) = app.post_batch(&batch(&all, "backfill"), Some(10.0)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(units_in(&view, "loaded"), 7, "{view}");
    let deferred: Vec<&Value> = view["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["state"] == "deferred")
        .collect();
    assert_eq!(deferred.len(), 1, "{view}");
    assert_eq!(deferred[0]["key"]["game_id"], blocked.as_str());
    app.stop().await;
}

/// A scheduler of the test's own over `app`'s database (the app's is off).
fn scheduler(pool: &PgPool) -> Scheduler {
    let s = fast_settings(pool);
    Scheduler::new(
        Store::new(pool.clone()),
        Arc::new(Emulator::new(pool.clone(), s.emulator)),
        s.retry.clone(),
        SchedulerSettings {
            replica: "test".into(),
            concurrency: 1,
            max_per_table: 1,
            bounds: GroupBounds::DEFAULT,
            linger: Duration::ZERO,
            ..s.scheduler.clone()
        },
    )
}

#[sqlx::test]
async fn a_permanent_error_in_one_key_fails_that_key_alone(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |s| s.run_scheduler = false).await;
    // The first write gives the table its schema (`points` INT64).
    app.insert_all(
        TABLE,
        game_rows("20251231_OLD", "2025-12-31", 1, "seed"),
        "0s",
    )
    .await;
    let all = games(8, 2);
    let (status, view) = app.post_batch(&batch(&all, "backfill"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    // The table changed after intake checked the rows: one unit's rows no longer fit.
    let bad = &all[5].0;
    sqlx::query(
        "update write_units set rows = jsonb_set(rows, '{0,points}', '\"eleven\"') where key->>'game_id' = $1",
    )
    .bind(bad)
    .execute(&pool)
    .await
    .unwrap();

    let claimed = scheduler(&pool).run_once().await.unwrap();
    assert_eq!(claimed, 8);
    let batch_id = view["batch_id"].as_str().unwrap();
    let (_, view) = app.get(&format!("/v1/batches/{batch_id}")).await;
    for unit in view["units"].as_array().unwrap() {
        let expected = if unit["key"]["game_id"] == bad.as_str() {
            "failed"
        } else {
            "loaded"
        };
        assert_eq!(unit["state"], expected, "{unit}");
        assert_eq!(unit["attempts"], 1, "{unit}");
    }
    let sent = statements(&app).await;
    // Halving 8 units to isolate one: at most 2·log2(8) + 1 statements.
    assert!(sent.len() <= 7, "{sent:?}");
    assert_eq!(
        sent.iter()
            .filter(|s| s.1 == "done")
            .map(|s| s.2)
            .sum::<i32>(),
        7,
        "{sent:?}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_statement_that_outlives_its_timeout_is_waited_for_and_never_overtaken(pool: PgPool) {
    // Each statement takes 1.5 s; the round stops waiting after 0.3 s. The first
    // statement's fate is unknown when the newer batch arrives: the newer unit waits for
    // it, and lands after it.
    let app = spawn_app_with(pool, |s| {
        s.emulator.latency = Duration::from_millis(1500);
        s.scheduler.statement_timeout = Duration::from_millis(300);
    })
    .await;
    let game = vec![("20260124_LAL_BOS".to_owned(), "2026-01-24".to_owned())];
    let (_, older) = app.post_batch(&batch(&game, "older"), None).await;
    eventually(
        Duration::from_secs(10),
        "the first statement's timeout",
        || async {
            let s = statements(&app).await;
            (s.first().map(|s| s.1.as_str()) == Some("unknown")).then_some(())
        },
    )
    .await;
    let (_, newer) = app.post_batch(&batch(&game, "newer"), None).await;
    let newer = app
        .settle(newer["batch_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(newer["units"][0]["state"], "loaded", "{newer}");
    let (_, older) = app
        .get(&format!(
            "/v1/batches/{}",
            older["batch_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        matches!(
            older["units"][0]["state"].as_str(),
            Some("superseded" | "loaded")
        ),
        "{older}"
    );
    let rows = app.table_rows(TABLE).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["source"] == "newer"), "{rows:?}");
    // Both statements landed, one after the other; none is left unsettled.
    let sent = statements(&app).await;
    assert_eq!(
        sent.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        vec!["done", "done"],
        "{sent:?}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_replica_stopped_after_sending_is_adopted_not_sent_again(pool: PgPool) {
    let slow = |s: &mut streamguard::config::Settings| {
        s.emulator.latency = Duration::from_millis(1500);
        s.scheduler.shutdown_timeout = Duration::ZERO; // stopping aborts the round in flight
    };
    let a = spawn_app_with(pool.clone(), slow).await;
    let game = vec![("20260124_LAL_BOS".to_owned(), "2026-01-24".to_owned())];
    let (_, view) = a.post_batch(&batch(&game, "backfill"), None).await;
    eventually(
        Duration::from_secs(10),
        "the statement to be sent",
        || async { (!statements(&a).await.is_empty()).then_some(()) },
    )
    .await;
    a.stop().await; // the statement goes on in the warehouse; its caller is gone
                    // Its lease runs out (moved, not waited for).
    sqlx::query(
        "update jobs set lease_expires_at = now() - interval '1 second' where state = 'running'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let b = spawn_app_with(pool.clone(), slow).await;
    let settled = b
        .settle(view["batch_id"].as_str().unwrap(), Duration::from_secs(20))
        .await;
    assert_eq!(settled["units"][0]["state"], "loaded", "{settled}");
    assert_eq!(settled["units"][0]["attempts"], 2, "{settled}");
    let sent = statements(&b).await;
    assert_eq!(sent.len(), 1, "adopted, not sent again: {sent:?}");
    let history: Vec<(i32, String, Option<i64>)> =
        sqlx::query_as("select attempt, outcome, statement_id from attempts order by attempt")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        history,
        vec![
            (1, "lost".into(), Some(sent[0].0)),
            (2, "loaded".into(), Some(sent[0].0))
        ]
    );
    assert_eq!(b.table_rows(TABLE).await.len(), 2);
    b.stop().await;
}

#[sqlx::test]
async fn after_a_half_open_probe_lands_the_units_claimed_with_it_follow_in_the_same_round(
    pool: PgPool,
) {
    // A failed probe would wait 30 s (`probe_wait`); the units behind a landed probe do not.
    let app = spawn_app_with(pool, |s| {
        s.breaker.open_for = Duration::from_secs(1);
        s.breaker.max_open_for = Duration::from_secs(1);
        s.breaker.probe_wait = Duration::from_secs(30);
    })
    .await;
    let buffered = games(3, 3);
    for (id, date) in &buffered {
        app.insert_all(TABLE, game_rows(id, date, 1, "orchestration"), "4s")
            .await;
    }
    let (_, tripping) = app
        .post_batch(&batch(&buffered, "backfill"), Some(5.0))
        .await;
    assert_eq!(units_in(&tripping, "deferred"), 3, "{tripping}");
    let breaker = app.breaker("bdl_boxscores_processor").await;
    assert_eq!(breaker["state"], "open", "{breaker}");

    let clean: Vec<(String, String)> = (0..6)
        .map(|i| (format!("20260210_C{i}"), "2026-02-10".to_owned()))
        .collect();
    let (_, view) = app.post_batch(&batch(&clean, "backfill"), None).await;
    let settled = app
        .settle(view["batch_id"].as_str().unwrap(), Duration::from_secs(15))
        .await;
    assert_eq!(units_in(&settled, "loaded"), 6, "{settled}");
    let breaker = app.breaker("bdl_boxscores_processor").await;
    assert_eq!(breaker["state"], "closed", "{breaker}");
    app.stop().await;
}

#[sqlx::test]
async fn a_statement_that_landed_but_was_never_recorded_is_adopted(pool: PgPool) {
    // The replica died (or its recording failed) between the warehouse's answer and the
    // record: the statement is `done`, its unit still waits.
    let app = spawn_app_with(pool.clone(), |s| s.run_scheduler = false).await;
    let game = vec![("20260124_LAL_BOS".to_owned(), "2026-01-24".to_owned())];
    let (_, view) = app.post_batch(&batch(&game, "backfill"), None).await;
    let store = Store::new(pool.clone());
    let job = store
        .claim("dead-replica", 1, 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let statement = store
        .begin_statement(
            "streamguard-landed-unrecorded",
            TABLE,
            "dead-replica",
            &[&job],
        )
        .await
        .unwrap();
    let outcome = streamguard::warehouse::ReplaceOutcome {
        rows_deleted: Some(0),
        rows_inserted: 2,
        bytes_billed: None,
    };
    store
        .finish_statement(
            statement,
            streamguard::store::statements::StatementState::Done,
            Some(&outcome),
            None,
        )
        .await
        .unwrap();
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();

    scheduler(&pool).run_once().await.unwrap();

    let (_, view) = app
        .get(&format!(
            "/v1/batches/{}",
            view["batch_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(view["units"][0]["state"], "loaded", "{view}");
    assert_eq!(statements(&app).await.len(), 1, "adopted, not sent again");
    let history: Vec<(i32, String, Option<i64>)> =
        sqlx::query_as("select attempt, outcome, statement_id from attempts order by attempt")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        history,
        vec![
            (1, "lost".into(), Some(statement)),
            (2, "loaded".into(), Some(statement))
        ]
    );
    app.stop().await;
}
