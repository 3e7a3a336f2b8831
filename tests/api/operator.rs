//! Operator actions (force mode made safe, retry, resolve, cancel) and conflicts reported
//! by processors themselves.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::config::Settings;
use streamguard::domain::RetryPolicy;
use streamguard::store::{Store, StoreConfig};

use crate::helpers::{eventually, game_batch, game_rows, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const GAME: &str = "20260124_LAL_BOS";
const DATE: &str = "2026-01-24";

/// No breaker trips, and retries wait a minute (so a conflict stays put while the test
/// acts on it).
fn patient(s: &mut Settings) {
    s.breaker.min_outcomes = u32::MAX;
    s.retry = RetryPolicy::new(vec![Duration::from_secs(60)], 5, 0.0).unwrap();
}

/// Streams 2 rows of the game into the buffer for `buffer`, posts the backfill's 3 rows,
/// and returns (unit, conflict id) once the first attempt conflicted.
async fn conflicted(app: &TestApp, buffer: &str) -> (Value, String) {
    app.insert_all(TABLE, game_rows(GAME, DATE, 2, "orchestration"), buffer)
        .await;
    let (status, view) = app
        .post_batch(&game_batch(TABLE, GAME, DATE, 3, "backfill"), Some(10.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let unit = view["units"][0].clone();
    assert_eq!(unit["state"], "deferred", "{unit}");
    let conflict = unit["conflict_id"].as_str().unwrap().to_owned();
    (unit, conflict)
}

async fn conflict(app: &TestApp, id: &str) -> Value {
    let (status, c) = app.get(&format!("/v1/conflicts/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    c
}

#[sqlx::test]
async fn force_dry_run_writes_nothing_and_a_real_force_on_a_buffered_key_fails_safely(
    pool: PgPool,
) {
    let app = spawn_app_with(pool, patient).await;
    let (unit, id) = conflicted(&app, "120s").await;
    let before = app.table_rows(TABLE).await;

    let (status, problem) = app
        .post(
            &format!("/v1/conflicts/{id}/force"),
            &json!({"dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/reason");

    let (status, dry) = app
        .post(
            &format!("/v1/conflicts/{id}/force"),
            &json!({"dry_run": true, "reason": "backfill deadline"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["rows_stored"], json!({"stored": 2, "buffered": 2}));
    assert_eq!(dry["rows_to_write"], 3);
    assert!(
        dry["would"].as_str().unwrap().starts_with("refused"),
        "{dry}"
    );
    assert_eq!(
        app.table_rows(TABLE).await,
        before,
        "a dry run writes nothing"
    );
    assert_eq!(
        conflict(&app, &id).await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (status, forced) = app
        .post(
            &format!("/v1/conflicts/{id}/force"),
            &json!({"reason": "backfill deadline"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(
        (forced["landed"].as_bool(), forced["outcome"].as_str()),
        (Some(false), Some("conflict"))
    );
    assert_eq!(forced["unit_state"], "deferred");
    assert_eq!(forced["actor"], "anonymous");
    // Nothing written: the buffered rows stand alone, the backfill's did not sneak in.
    assert_eq!(
        app.table_rows(TABLE).await,
        before,
        "never inserts without deleting"
    );
    let c = conflict(&app, &id).await;
    assert_eq!(
        (c["resolved"].as_bool(), c["retry_attempt"].as_i64()),
        (Some(false), Some(2))
    );
    assert_eq!(
        c["attempts"].as_array().unwrap().len(),
        2,
        "the forced attempt is logged"
    );
    let actions = c["details"]["operator_actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["action"], "force");
    assert_eq!(actions[0]["reason"], "backfill deadline");
    assert_eq!(unit["unit_id"], forced["unit_id"]);
    app.stop().await;
}

#[sqlx::test]
async fn force_is_refused_on_a_superseded_unit(pool: PgPool) {
    let app = spawn_app_with(pool, patient).await;
    let (_, id) = conflicted(&app, "120s").await;
    // A newer batch for the same key supersedes the deferred unit.
    let (status, _) = app
        .post_batch(&game_batch(TABLE, GAME, DATE, 4, "newer"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for body in [
        json!({"reason": "try anyway", "dry_run": true}),
        json!({"reason": "try anyway"}),
    ] {
        let (status, problem) = app.post(&format!("/v1/conflicts/{id}/force"), &body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("superseded"),
            "{problem}"
        );
    }
    app.stop().await;
}

#[sqlx::test]
async fn force_lands_once_the_buffer_drained_and_is_recorded_as_force_mode(pool: PgPool) {
    let app = spawn_app_with(pool, patient).await;
    let (_, id) = conflicted(&app, "1s").await;
    app.drain_buffer().await; // the buffer drains; the retry is a minute away
    let (status, forced) = app
        .post(
            &format!("/v1/conflicts/{id}/force"),
            &json!({"reason": "buffer drained"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(
        (forced["landed"].as_bool(), forced["unit_state"].as_str()),
        (Some(true), Some("loaded"))
    );
    let rows = app.table_rows(TABLE).await;
    assert_eq!(rows.len(), 3, "exactly the backfill's rows: {rows:?}");
    assert!(rows.iter().all(|r| r["source"] == "backfill"));
    let c = conflict(&app, &id).await;
    assert_eq!(
        (c["resolved"].as_bool(), c["resolution_method"].as_str()),
        (Some(true), Some("force_mode"))
    );
    app.stop().await;
}

#[sqlx::test]
async fn retry_attempts_now_ignoring_backoff(pool: PgPool) {
    let app = spawn_app_with(pool, patient).await;
    let (_, id) = conflicted(&app, "1s").await;
    app.drain_buffer().await;
    let (status, r) = app
        .post(
            &format!("/v1/conflicts/{id}/retry"),
            &json!({"reason": "buffer is empty now"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let c = eventually(
        Duration::from_secs(5),
        "the retried unit to land",
        || async {
            let c = conflict(&app, &id).await;
            (c["resolved"] == true).then_some(c)
        },
    )
    .await;
    assert_eq!(c["resolution_method"], "auto_retry");
    assert_eq!(c["details"]["operator_actions"][0]["action"], "retry");
    assert_eq!(app.table_rows(TABLE).await.len(), 3);
    app.stop().await;
}

#[sqlx::test]
async fn cancel_and_resolve_stop_the_unit_with_a_recorded_reason(pool: PgPool) {
    let app = spawn_app_with(pool, patient).await;
    let (unit, id) = conflicted(&app, "120s").await;
    let unit_id = unit["unit_id"].as_str().unwrap();

    let (status, problem) = app
        .post(&format!("/v1/units/{unit_id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/reason"))
    );
    let (status, r) = app
        .post(
            &format!("/v1/units/{unit_id}/cancel"),
            &json!({"reason": "game was postponed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["unit_state"], "cancelled");
    let c = conflict(&app, &id).await;
    assert_eq!(
        (c["resolved"].as_bool(), c["resolution_method"].as_str()),
        (Some(true), Some("manual"))
    );
    let (status, _) = app
        .post(
            &format!("/v1/units/{unit_id}/cancel"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Resolve: a second game, fixed by hand.
    app.insert_all(
        TABLE,
        game_rows("20260125_NYK_MIA", "2026-01-25", 2, "orchestration"),
        "120s",
    )
    .await;
    let (_, view) = app
        .post_batch(
            &game_batch(TABLE, "20260125_NYK_MIA", "2026-01-25", 3, "backfill"),
            Some(10.0),
        )
        .await;
    let id2 = view["units"][0]["conflict_id"].as_str().unwrap().to_owned();
    let (status, problem) = app
        .post(&format!("/v1/conflicts/{id2}/resolve"), &json!({}))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/note"))
    );
    let (status, r) = app
        .post(
            &format!("/v1/conflicts/{id2}/resolve"),
            &json!({"note": "reloaded by hand from the file"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        r["unit_state"], "cancelled",
        "the service no longer writes over the fix"
    );
    let c = conflict(&app, &id2).await;
    assert_eq!(c["resolution_method"], "manual");
    assert_eq!(
        c["details"]["operator_actions"][0]["reason"],
        "reloaded by hand from the file"
    );
    app.stop().await;
}

fn report(processor: &str, game: &str, date: &str) -> Value {
    json!({
        "processor_name": processor,
        "table": TABLE,
        "key": {"game_id": game},
        "partition": {"game_date": date},
        "conflict_type": "streaming_buffer",
        "error_message": "UPDATE or DELETE statement over table would affect rows in the streaming buffer, which is not supported",
        "delay_seconds": 300,
    })
}

#[sqlx::test]
async fn processors_report_their_own_conflicts_and_the_breaker_counts_them(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |s| {
        s.breaker.open_for = Duration::from_secs(120);
    })
    .await;
    let (status, r) = app
        .post(
            "/v1/conflicts",
            &report("nbac_gamebook_processor", GAME, DATE),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["taken_over"].as_bool(), r["breaker_state"].as_str()),
        (Some(false), Some("closed"))
    );
    let id = r["conflict_id"].as_str().unwrap().to_owned();

    let (status, a) = app
        .post(
            &format!("/v1/conflicts/{id}/attempts"),
            &json!({"delay_seconds": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["retry_attempt"], 2);
    let (_, unresolved) = app.get("/v1/conflicts/unresolved").await;
    let listed = &unresolved["conflicts"][0];
    assert_eq!(
        (
            listed["conflict_id"].as_str(),
            listed["game_id"].as_str(),
            listed["game_date"].as_str()
        ),
        (Some(id.as_str()), Some(GAME), Some(DATE))
    );

    // A third conflict in the scope: 3 of 3 outcomes → the processor's breaker opens,
    // and a processor that checks before writing sees it.
    let (_, r3) = app
        .post(
            "/v1/conflicts",
            &report("nbac_gamebook_processor", "20260125_NYK_MIA", "2026-01-25"),
        )
        .await;
    assert_eq!(r3["breaker_state"], "open", "{r3}");
    let b = app.breaker("nbac_gamebook_processor").await;
    assert_eq!(
        (b["state"].as_str(), b["allows_writes"].as_bool()),
        (Some("open"), Some(false))
    );

    let (status, _) = app
        .post(
            &format!("/v1/conflicts/{id}/resolve"),
            &json!({"method": "auto_retry"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = conflict(&app, &id).await;
    assert_eq!(
        (c["resolved"].as_bool(), c["resolution_method"].as_str()),
        (Some(true), Some("auto_retry"))
    );
    let (status, _) = app
        .post(&format!("/v1/conflicts/{id}/attempts"), &json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended conflict takes no more attempts"
    );

    // One the processor never ends is closed as `timeout` after the retry horizon (here
    // a store whose horizon is zero does the sweep), with an alert.
    let (_, r4) = app
        .post(
            "/v1/conflicts",
            &report("other_processor", "20260126_DAL_PHX", "2026-01-26"),
        )
        .await;
    let stale = Store::new(pool.clone()).with_config(StoreConfig {
        retry_horizon: Duration::ZERO,
        ..StoreConfig::default()
    });
    assert!(stale.close_stale_reported_conflicts().await.unwrap() >= 1);
    let c = conflict(&app, r4["conflict_id"].as_str().unwrap()).await;
    assert_eq!(
        (c["resolved"].as_bool(), c["resolution_method"].as_str()),
        (Some(false), Some("timeout"))
    );
    let timeouts: i64 = sqlx::query_scalar(
        "select count(*) from alerts where kind = 'conflict_timeout' and scope = 'other_processor'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(timeouts, 1);
    app.stop().await;
}

#[sqlx::test]
async fn a_processor_can_hand_its_rows_over(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.breaker.min_outcomes = u32::MAX).await;
    let mut body = report("nbac_gamebook_processor", GAME, DATE);
    body["delay_seconds"] = json!(0);
    body["rows"] = game_rows(GAME, DATE, 3, "processor");
    let (status, r) = app.post("/v1/conflicts", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["taken_over"], true);
    let id = r["conflict_id"].as_str().unwrap().to_owned();
    let c = eventually(
        Duration::from_secs(5),
        "the taken-over unit to land",
        || async {
            let c = conflict(&app, &id).await;
            (c["resolved"] == true).then_some(c)
        },
    )
    .await;
    assert_eq!(c["resolution_method"], "auto_retry");
    assert_eq!(c["unit_id"], r["unit_id"]);
    assert_eq!(app.table_rows(TABLE).await.len(), 3);

    // The same hand-over posted twice with its idempotency key is one conflict.
    let mut again = report("nbac_gamebook_processor", "20260127_BOS_NYK", "2026-01-27");
    again["rows"] = game_rows("20260127_BOS_NYK", "2026-01-27", 2, "processor");
    again["idempotency_key"] = json!("gamebook-20260127-1");
    let (_, first) = app.post("/v1/conflicts", &again).await;
    let (status, second) = app.post("/v1/conflicts", &again).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(first["conflict_id"], second["conflict_id"]);
    assert_eq!(first["unit_id"], second["unit_id"]);

    // Rows of another key are refused.
    let mut bad = report("nbac_gamebook_processor", GAME, DATE);
    bad["rows"] = game_rows("20260125_NYK_MIA", DATE, 1, "processor");
    let (status, problem) = app.post("/v1/conflicts", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rows");
    app.stop().await;
}

#[sqlx::test]
async fn a_processor_outside_the_service_is_governed_by_its_breaker(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.breaker.open_for = Duration::from_secs(1);
        s.breaker.max_open_for = Duration::from_secs(8);
    })
    .await;
    let p = "nbac_gamebook_processor";
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, r) = app
            .post(
                "/v1/conflicts",
                &report(p, &format!("2026012{i}_LAL_BOS"), &format!("2026-01-2{i}")),
            )
            .await;
        ids.push(r["conflict_id"].as_str().unwrap().to_owned());
    }
    let b = app.breaker(p).await;
    assert_eq!(
        (b["state"].as_str(), b["allows_writes"].as_bool()),
        (Some("open"), Some(false))
    );

    // After the open period the processor may write: its write is the probe.
    let b = eventually(Duration::from_secs(5), "the open period to end", || async {
        let b = app.breaker(p).await;
        (b["allows_writes"] == true).then_some(b)
    })
    .await;
    assert_eq!(b["state"], "open");
    // It conflicts again: re-opened, for twice as long.
    app.post(&format!("/v1/conflicts/{}/attempts", ids[0]), &json!({}))
        .await;
    let b = app.breaker(p).await;
    assert_eq!(
        (
            b["state"].as_str(),
            b["reopens"].as_i64(),
            b["allows_writes"].as_bool()
        ),
        (Some("open"), Some(1), Some(false))
    );
    // Its next write, after the longer period, lands: closed.
    eventually(
        Duration::from_secs(5),
        "the second open period to end",
        || async { (app.breaker(p).await["allows_writes"] == true).then_some(()) },
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/v1/conflicts/{}/resolve", ids[0]),
            &json!({"method": "auto_retry"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let b = app.breaker(p).await;
    assert_eq!(
        (b["state"].as_str(), b["trips"].as_i64()),
        (Some("closed"), Some(2)),
        "{b}"
    );
    assert_eq!(
        b["last_reason"],
        "first outcome after the open period landed"
    );
    app.stop().await;
}

/// A processor's hand-over is checked against the configured limits
/// (`STREAMGUARD_MAX_ROWS` here), exactly as a batch is: over them, nothing is logged.
#[sqlx::test]
async fn configured_limits_apply_to_processor_reports(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.breaker.min_outcomes = u32::MAX;
        s.limits.max_rows = 2;
        s.limits.max_key_value_chars = 24;
    })
    .await;
    let mut body = report("nbac_gamebook_processor", GAME, DATE);
    body["rows"] = game_rows(GAME, DATE, 3, "processor");
    let (status, r) = app.post("/v1/conflicts", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(
        (
            r["errors"][0]["pointer"].as_str(),
            r["errors"][0]["limit"].as_str()
        ),
        (Some("/rows"), Some("STREAMGUARD_MAX_ROWS")),
        "{r}"
    );
    let (_, unresolved) = app.get("/v1/conflicts/unresolved").await;
    assert_eq!(unresolved["conflicts"], json!([]), "nothing was logged");

    body["rows"] = game_rows(GAME, DATE, 2, "processor");
    let (status, r) = app.post("/v1/conflicts", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["taken_over"], true);
    app.stop().await;
}

/// Found by the simulation (seed 856): a unit whose statement landed but whose answer was
/// lost could be cancelled, and then said `cancelled` while its rows were in the table.
/// Cancel now asks the warehouse first and refuses, naming the statement; the unit's next
/// attempt adopts that statement and writes nothing again.
#[sqlx::test]
async fn a_unit_whose_statement_landed_unanswered_cannot_be_cancelled(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |s| {
        s.retry = RetryPolicy::new(vec![Duration::from_secs(3600)], 5, 0.0).unwrap();
    })
    .await;
    let path = format!("/emulator/tables/{TABLE}/faults");
    let (status, body) = app
        .put(&path, &json!({"faults": "lost_answer=1,seed=1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, view) = app
        .post_batch(&game_batch(TABLE, GAME, DATE, 2, "backfill"), Some(10.0))
        .await;
    let unit = &view["units"][0];
    assert_eq!(unit["state"], "deferred", "the answer was lost: {view}");
    let unit_id = unit["unit_id"].as_str().unwrap();
    assert_eq!(app.table_rows(TABLE).await.len(), 2, "yet the rows landed");

    let (status, problem) = app
        .post(
            &format!("/v1/units/{unit_id}/cancel"),
            &json!({"reason": "not wanted after all"}),
        )
        .await;

    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("already landed in statement streamguard-"),
        "{detail}"
    );
    let batch_id = view["batch_id"].as_str().unwrap();
    let (_, now) = app.get(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(
        now["units"][0]["state"], "deferred",
        "nothing was cancelled: {now}"
    );
    // Its next attempt adopts the landed statement: loaded, nothing written again.
    app.delete(&path).await;
    sqlx::query("update jobs set run_at = now() where state = 'available'")
        .execute(&pool)
        .await
        .unwrap();
    let view = app.settle(batch_id, Duration::from_secs(20)).await;
    assert_eq!(view["units"][0]["state"], "loaded", "{view}");
    assert_eq!(app.table_rows(TABLE).await.len(), 2);
    let landed: i64 = sqlx::query_scalar("select count(*) from emulator.jobs where state = 'done'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(landed, 1, "written once");
    app.stop().await;
}
