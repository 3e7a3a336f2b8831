//! The faulty emulator (`STREAMGUARD_EMULATOR_FAULTS`, `PUT /emulator/tables/{t}/faults`):
//! a statement whose answer is lost is adopted by settlement, not written twice; a quota
//! storm slows the table's pace without opening the breaker, and every unit lands after it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::store::jobs::GroupBounds;
use uuid::Uuid;

use crate::helpers::{game_batch, game_rows, spawn_app_on_clock, spawn_app_with};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const PROCESSOR: &str = "bdl_boxscores_processor";

#[sqlx::test]
async fn a_statement_whose_answer_was_lost_is_adopted_and_lands_once(pool: PgPool) {
    // Every statement lands, and every answer is lost on the way back.
    let app = spawn_app_with(pool.clone(), |s| {
        s.emulator.faults = "lost_answer=1,seed=42".parse().unwrap();
    })
    .await;
    let (status, view) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "v1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let batch_id = view["batch_id"].as_str().unwrap().to_owned();

    let view = app.settle(&batch_id, Duration::from_secs(30)).await;
    let unit = &view["units"][0];
    assert_eq!(unit["state"], "loaded", "{view}");
    let unit_id: Uuid = unit["unit_id"].as_str().unwrap().parse().unwrap();

    // Exactly one statement carried the unit, it landed, and the loading attempt points at it.
    let statements: Vec<(i64, String)> = sqlx::query_as(
        "select s.statement_id, s.state from statements s join statement_units su using (statement_id)
         where su.unit_id = $1",
    )
    .bind(unit_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(statements.len(), 1, "{statements:?}");
    let (statement_id, state) = &statements[0];
    assert_eq!(state, "done");
    let attempts: Vec<(i32, String, Option<i64>)> = sqlx::query_as(
        "select attempt, outcome, statement_id from attempts where unit_id = $1 order by attempt",
    )
    .bind(unit_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let loaded: Vec<_> = attempts.iter().filter(|a| a.1 == "loaded").collect();
    assert_eq!(loaded.len(), 1, "{attempts:?}");
    assert_eq!(loaded[0].2, Some(*statement_id), "{attempts:?}");
    assert_eq!(
        attempts[0].1, "transient",
        "the first attempt saw the lost answer as a timeout: {attempts:?}"
    );
    // The warehouse ran one statement, and holds the game's rows once.
    let jobs: i64 = sqlx::query_scalar("select count(*) from emulator.jobs where state = 'done'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    assert_eq!(app.table_rows(TABLE).await.len(), 3);
    app.stop().await;
}

async fn pacing_interval(pool: &PgPool) -> f64 {
    sqlx::query_scalar::<_, f64>("select interval_seconds from table_pacing where table_ref = $1")
        .bind(TABLE)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(0.0)
}

#[sqlx::test]
async fn a_quota_storm_slows_the_table_down_without_opening_the_breaker(pool: PgPool) {
    // One key per statement, so the storm refuses many statements: more than enough
    // conflicts to open a breaker if quota answers counted as conflicts.
    let app = spawn_app_on_clock(pool.clone(), |s| {
        s.scheduler.bounds = GroupBounds::SINGLE;
    })
    .await;
    let path = format!("/emulator/tables/{TABLE}/faults");
    let (status, body) = app
        .put(&path, &json!({"faults": "quota_exceeded=1,seed=42"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["faults"]["quota_exceeded"], 1.0);

    let rows: Vec<Value> = (0..4)
        .flat_map(|g| {
            game_rows(
                &format!("2026012{g}_LAL_BOS"),
                &format!("2026-01-2{g}"),
                2,
                "v1",
            )
            .as_array()
            .unwrap()
            .clone()
        })
        .collect();
    let mut batch = game_batch(TABLE, "x", "2026-01-20", 1, "v1");
    batch["rows"] = Value::Array(rows);
    let (status, view) = app.post_batch(&batch, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let batch_id = view["batch_id"].as_str().unwrap().to_owned();

    // The pace doubles with each refusal: wait for two (the pace is updated as the answer
    // comes, the attempts are recorded just after).
    let slowed = app
        .eventually(
            Duration::from_secs(30),
            "two refusals slowing the pace",
            || async {
                let interval = pacing_interval(&app.pool).await;
                let refused: i64 = sqlx::query_scalar(
                    "select count(*) from attempts where error_class = 'quota_exceeded'",
                )
                .fetch_one(&app.pool)
                .await
                .unwrap();
                (interval >= 2.0 && refused >= 2).then_some(interval)
            },
        )
        .await;
    let breaker = app.breaker(PROCESSOR).await;
    assert_eq!(breaker["state"], "closed", "{breaker}");

    // The storm passes; every unit lands, each game once, and the breaker never opened.
    let (status, body) = app.delete(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["faults"]["quota_exceeded"], 0.0);
    let view = app.settle(&batch_id, Duration::from_secs(60)).await;
    let states: Vec<&str> = view["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["loaded"; 4], "{view}");
    assert_eq!(app.table_rows(TABLE).await.len(), 8);
    let breaker = app.breaker(PROCESSOR).await;
    assert_eq!(breaker["state"], "closed", "{breaker}");
    assert_eq!(breaker["trips"], 0, "{breaker}");
    assert!(slowed >= 2.0);
    app.stop().await;
}

#[sqlx::test]
async fn a_bad_fault_spec_is_refused_with_its_place(pool: PgPool) {
    let app = spawn_app_with(pool, |_| {}).await;
    let (status, body) = app
        .put(
            &format!("/emulator/tables/{TABLE}/faults"),
            &json!({"faults": "quota_exceeded=2"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/faults", "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("quota_exceeded expects a rate from 0 to 1"));
    app.stop().await;
}
