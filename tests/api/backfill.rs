//! The seed's backfill, end to end: 89 games, 56 of them still in the streaming buffer.

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::StatusCode;
use sqlx::PgPool;
use streamguard::demo::{self, BackfillArgs};

use crate::helpers::spawn_app_with;

#[sqlx::test]
async fn seed_backfill_lands_every_game_exactly_once(pool: PgPool) {
    // The seed's incident as it was, without a breaker: every buffered game is attempted
    // and retried (the breaker's own backfill test is in `breakers.rs`).
    let app = spawn_app_with(pool, |s| s.breaker.min_outcomes = u32::MAX).await;
    let args = BackfillArgs {
        url: app.base.clone(),
        games: 89,
        buffered: 56,
        conflict_share: None,
        buffer: "12s".into(),
        players: 5,
        table: "nba-props-platform.nba_raw.bdl_player_boxscores".into(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(60),
        quiet: true,
        token: None,
    };

    let report = demo::run(&args, |_| {}).await.expect("demo runs");

    assert_eq!(report.files, 89);
    assert_eq!(report.loaded_first_attempt, 33);
    assert_eq!(report.resolved_by_retry, 56);
    assert_eq!((report.unresolved, report.failed), (0, 0));
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    assert_eq!((report.breaker_trips, report.held_by_breaker), (0, 0));

    // The table holds exactly the backfill's rows: 89 games x 2 teams x 5 players.
    let rows = app.table_rows(&args.table).await;
    assert_eq!(rows.len(), 89 * 10);
    assert!(
        rows.iter().all(|r| r["source"] == "backfill"),
        "no stale rows survive"
    );

    let (status, summary) = app.get("/v1/conflicts/summary?days=7").await;
    assert_eq!(status, StatusCode::OK);
    let row = &summary["summary"][0];
    assert_eq!(summary["summary"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            row["total_conflicts"].as_i64(),
            row["resolved"].as_i64(),
            row["unresolved"].as_i64()
        ),
        (Some(56), Some(56), Some(0))
    );
    assert_eq!(row["sample_games"].as_array().unwrap().len(), 10);
    assert_eq!(row["processor_name"], "bdl_boxscores_processor");
    assert_eq!(row["table"], args.table);

    let (_, unresolved) = app.get("/v1/conflicts/unresolved?hours=24").await;
    assert_eq!(unresolved["conflicts"], serde_json::json!([]));

    let resolved: Vec<(String,)> =
        sqlx::query_as("select distinct resolution_method from conflicts")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(resolved, vec![("auto_retry".to_owned(),)]);
    app.stop().await;
}
