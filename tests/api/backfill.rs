//! The seed's backfill, end to end: 89 games, 56 of them still in the streaming buffer.

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::StatusCode;
use sqlx::PgPool;
use streamguard::cli::demo::{self, BackfillArgs};

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
        // Longer than the backfill takes to post, on any machine; the test drains the
        // buffer itself once every game has been tried (or held), instead of waiting.
        buffer: "10m".into(),
        players: 5,
        table: "nba-props-platform.nba_raw.bdl_player_boxscores".into(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(60),
        quiet: true,
        token: None,
        faults: None,
    };

    let drain = tokio::spawn(drain_once_every_game_was_tried(app.pool.clone(), 89));
    let report = demo::run(&args, |_| {}).await.expect("demo runs");
    drain.await.unwrap();

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
    // Each demo run posts as a processor of its own (a breaker with an empty window).
    let processor = row["processor_name"].as_str().unwrap();
    assert!(
        processor.starts_with("bdl_boxscores_processor_"),
        "{processor}"
    );
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

/// Waits until `games` batches are in and none of their units is still pending (each was
/// refused or held, or landed), then moves the clock: the emulator's buffer drains now, and
/// every deferred job is due.
async fn drain_once_every_game_was_tried(pool: PgPool, games: i64) {
    crate::helpers::eventually(Duration::from_secs(60), "every game tried", || async {
        let (batches, pending): (i64, i64) = sqlx::query_as(
            "select (select count(*) from batches), (select count(*) from write_units where state = 'pending')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (batches == games && pending == 0).then_some(())
    })
    .await;
    for statement in [
        "update emulator.rows set buffered_until = now() where buffered_until > now()",
        "update partition_holds set until = now()",
        "update jobs set run_at = now() where state = 'available'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
}

/// The README's experiment: the service goes away while the demo follows its units and
/// comes back on the same address; the demo says so once, waits, and still prints the
/// final table with its duplicate/missing check.
#[sqlx::test]
async fn demo_waits_out_a_service_restart(pool: PgPool) {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tweak = move |s: &mut streamguard::config::Settings| {
        s.listen = address;
        s.breaker.min_outcomes = u32::MAX;
    };
    let first = spawn_app_with(pool.clone(), tweak).await;
    let args = BackfillArgs {
        url: first.base.clone(),
        games: 6,
        buffered: 3,
        conflict_share: None,
        buffer: "3s".into(),
        players: 2,
        table: "nba-props-platform.nba_raw.bdl_player_boxscores".into(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(60),
        quiet: true,
        token: None,
        faults: None,
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let printed = lines.clone();
    let demo = tokio::spawn(async move {
        demo::run(&args, move |line| printed.lock().unwrap().push(line)).await
    });

    // Once every batch is posted, the demo only follows: take the service away then.
    crate::helpers::eventually(Duration::from_secs(20), "the demo posted 6 batches", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("select count(*) from batches")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n == 6).then_some(())
        }
    })
    .await;
    first.stop().await;
    crate::helpers::eventually(
        Duration::from_secs(20),
        "the demo noticing the service is gone",
        || async {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("service unreachable"))
                .then_some(())
        },
    )
    .await;
    assert!(!demo.is_finished(), "the demo waits for the service");
    let second = spawn_app_with(pool.clone(), tweak).await;

    let report = demo
        .await
        .unwrap()
        .expect("the demo finishes after the restart");
    assert_eq!(report.files, 6);
    assert_eq!((report.unresolved, report.failed), (0, 0));
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    let lines = lines.lock().unwrap().clone();
    let unreachable = lines
        .iter()
        .filter(|l| l.contains("service unreachable"))
        .count();
    assert_eq!(unreachable, 1, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("reachable again")),
        "{lines:#?}"
    );
    second.stop().await;
}

#[sqlx::test]
async fn demo_reposts_batches_across_a_restart_without_duplicating_them(pool: PgPool) {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tweak = move |s: &mut streamguard::config::Settings| {
        s.listen = address;
        s.breaker.min_outcomes = u32::MAX;
    };
    let first = spawn_app_with(pool.clone(), tweak).await;
    let games = 120;
    let args = BackfillArgs {
        url: first.base.clone(),
        games,
        buffered: 0,
        conflict_share: None,
        buffer: "1s".into(),
        players: 1,
        table: "nba-props-platform.nba_raw.bdl_player_boxscores".into(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(60),
        quiet: true,
        token: None,
        faults: None,
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let printed = lines.clone();
    let demo = tokio::spawn(async move {
        demo::run(&args, move |line| printed.lock().unwrap().push(line)).await
    });
    let count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("select count(*) from batches")
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    // Take the service away while the demo is still posting.
    crate::helpers::eventually(Duration::from_secs(20), "the first batches", || {
        let pool = pool.clone();
        async move { (count(pool).await >= 3).then_some(()) }
    })
    .await;
    first.stop().await;
    let posted = count(pool.clone()).await;
    assert!(posted < games as i64, "stopped mid-post ({posted} posted)");
    crate::helpers::eventually(
        Duration::from_secs(20),
        "the demo noticing the service is gone",
        || async {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("service unreachable"))
                .then_some(())
        },
    )
    .await;
    let second = spawn_app_with(pool.clone(), tweak).await;

    let report = demo
        .await
        .unwrap()
        .expect("the demo finishes after the restart");
    assert_eq!(report.files, games);
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    assert_eq!(
        count(pool.clone()).await,
        games as i64,
        "each game posted once"
    );
    second.stop().await;
}

#[sqlx::test]
async fn demo_with_faults_rides_through_them_and_lands_every_game_once(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), |s| s.breaker.min_outcomes = u32::MAX).await;
    let args = BackfillArgs {
        url: app.base.clone(),
        games: 12,
        buffered: 3,
        conflict_share: None,
        buffer: "1s".into(),
        players: 2,
        table: "nba-props-platform.nba_raw.bdl_player_boxscores".into(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(90),
        quiet: true,
        token: None,
        faults: Some(
            "concurrent_dml=0.2,quota_exceeded=0.1,transient=0.1,lost_answer=0.1,latency=10ms..30ms,seed=42"
                .into(),
        ),
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let printed = lines.clone();

    let report = demo::run(&args, move |line| printed.lock().unwrap().push(line))
        .await
        .expect("demo runs");

    assert_eq!(report.files, 12);
    assert_eq!((report.unresolved, report.failed), (0, 0));
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    let injected: Vec<(String, i64)> = sqlx::query_as(
        "select error_class, count(*) from attempts
         where error_class in ('concurrent_dml', 'quota_exceeded', 'transient')
         group by error_class order by error_class",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!injected.is_empty(), "the faults were injected");
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("injecting faults")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("cleared")), "{lines:#?}");
    // The table is back to the service's own faults (none here).
    let (_, body) = app
        .delete(&format!("/emulator/tables/{}/faults", args.table))
        .await;
    assert_eq!(body["faults"]["concurrent_dml"], 0.0, "{body}");
    app.stop().await;
}
