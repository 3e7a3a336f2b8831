//! The circuit breaker across replicas: two apps on one database share one breaker; across
//! both exactly one half-open probe reaches the warehouse; a probe whose replica dies does
//! not leave the breaker stuck; a burst of conflicts trips one processor's breaker while
//! another processor goes on untouched; operator actions are recorded with actor and reason.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::config::Settings;
use streamguard::store::jobs::GroupBounds;

use crate::helpers::{eventually, game_batch, game_rows, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const PROCESSOR: &str = "bdl_boxscores_processor";

/// Game `i`: its own id and its own date (partition), so buffered rows of one game never
/// block another.
fn game(i: usize) -> (String, String) {
    let date = format!("2026-01-{:02}", 1 + i);
    (format!("202601{:02}_LAL_BOS", 1 + i), date)
}

/// One batch of several games of `processor` to `table`.
fn games_batch(processor: &str, table: &str, games: &[usize]) -> Value {
    let rows: Vec<Value> = games
        .iter()
        .flat_map(|&i| {
            let (id, date) = game(i);
            game_rows(&id, &date, 2, "backfill")
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    json!({
        "processor_name": processor,
        "table": table,
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": rows,
    })
}

async fn buffer_games(app: &TestApp, games: &[usize], buffer: &str) {
    for &i in games {
        let (id, date) = game(i);
        app.insert_all(TABLE, game_rows(&id, &date, 2, "orchestration"), buffer)
            .await;
    }
}

/// Short open periods, and one key per statement: these tests follow the breaker unit by
/// unit (grouping is tested in `statements.rs`).
fn tweak(open_for: Duration) -> impl Fn(&mut Settings) + Clone {
    move |s: &mut Settings| {
        s.scheduler.bounds = GroupBounds::SINGLE;
        s.breaker.open_for = open_for;
        s.breaker.max_open_for = open_for;
        s.breaker.probe_wait = s.scheduler.lease;
    }
}

#[sqlx::test]
async fn a_breaker_tripped_by_replica_a_is_open_for_replica_b(pool: PgPool) {
    let settings = tweak(Duration::from_secs(120));
    let a = spawn_app_with(pool.clone(), settings.clone()).await;
    buffer_games(&a, &[0, 1, 2, 3], "120s").await;

    // Replica A attempts four buffered games one after the other: three conflicts trip it.
    let (status, view) = a
        .post_batch(&games_batch(PROCESSOR, TABLE, &[0, 1, 2, 3]), Some(20.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let attempts: Vec<i64> = view["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        vec![1, 1, 1, 0],
        "the fourth is not attempted: {view}"
    );
    let fourth = &view["units"][3];
    assert_eq!(fourth["state"], "deferred");

    // Replica B, started now, sees the same open breaker.
    let b = spawn_app_with(pool.clone(), settings).await;
    let breaker = b.breaker(PROCESSOR).await;
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert_eq!(breaker["allows_writes"], false);
    assert_eq!(breaker["trips"], 1);
    assert_eq!(breaker["window"], json!({"outcomes": 3, "conflicts": 3}));
    assert_eq!(breaker["last_actor"], "scheduler");
    assert_eq!(fourth["next_attempt_at"], breaker["reopens_at"]);
    a.stop().await;

    // A new batch of the scope is accepted and answers `deferred` at once, even without
    // waiting for an attempt.
    let (status, view) = b
        .post_batch(
            &game_batch(TABLE, "20260202_NYK_MIA", "2026-02-02", 2, "backfill"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["units"][0]["state"], "deferred", "{view}");
    assert_eq!(view["units"][0]["next_attempt_at"], breaker["reopens_at"]);

    // B's scheduler defers a new, clean game of the same processor without calling the
    // warehouse, and does not count it as an attempt.
    let (status, view) = b
        .post_batch(
            &game_batch(TABLE, "20260201_NYK_MIA", "2026-02-01", 2, "backfill"),
            Some(5.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let unit = &view["units"][0];
    assert_eq!(
        (unit["state"].as_str(), unit["attempts"].as_i64()),
        (Some("deferred"), Some(0)),
        "{view}"
    );
    assert_eq!(unit["next_attempt_at"], breaker["reopens_at"]);
    assert!(b
        .table_rows(TABLE)
        .await
        .iter()
        .all(|r| r["game_id"] != "20260201_NYK_MIA"));
    let (job_attempt, logged): (i32, i64) = sqlx::query_as(
        "select j.attempt, (select count(*) from attempts a where a.unit_id = j.unit_id)
         from jobs j where j.unit_id = $1::text::uuid",
    )
    .bind(unit["unit_id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (job_attempt, logged),
        (0, 0),
        "a deferral is not an attempt"
    );
    b.stop().await;
}

#[sqlx::test]
async fn exactly_one_half_open_probe_reaches_the_warehouse_across_two_replicas(pool: PgPool) {
    let settings = {
        let base = tweak(Duration::from_secs(1));
        move |s: &mut Settings| {
            base(s);
            s.emulator.latency = Duration::from_millis(400);
        }
    };
    let a = spawn_app_with(pool.clone(), settings.clone()).await;
    let b = spawn_app_with(pool.clone(), settings).await;
    let games: Vec<usize> = (0..8).collect();
    buffer_games(&a, &games, "3s").await;
    let (status, view) = b
        .post_batch(&games_batch(PROCESSOR, TABLE, &games), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let batch_id = view["batch_id"].as_str().unwrap().to_owned();
    let settled = a.settle(&batch_id, Duration::from_secs(60)).await;
    assert!(
        settled["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["state"] == "loaded"),
        "{settled}"
    );

    // Every half-open period saw exactly one attempt start, and no attempt started while
    // the breaker was open.
    let transitions: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select from_state, to_state, created_at from breaker_transitions order by transition_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        transitions.len() >= 3,
        "tripped, probed, closed: {transitions:?}"
    );
    assert_eq!(transitions[0].1, "open");
    assert_eq!(transitions.last().unwrap().1, "closed");
    let starts: Vec<(chrono::DateTime<chrono::Utc>,)> =
        sqlx::query_as("select started_at from attempts order by started_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut half_open_periods = 0;
    for pair in transitions.windows(2) {
        let (from, to) = (pair[0].2, pair[1].2);
        let inside = starts.iter().filter(|(t,)| *t >= from && *t < to).count();
        match pair[0].1.as_str() {
            "half_open" => {
                half_open_periods += 1;
                assert_eq!(inside, 1, "one probe per half-open period: {transitions:?}");
            }
            "open" => assert_eq!(inside, 0, "nothing attempted while open"),
            _ => {}
        }
    }
    assert!(half_open_periods >= 1);
    assert_eq!(a.table_rows(TABLE).await.len(), 8 * 2, "no duplicates");
    a.stop().await;
    b.stop().await;
}

#[sqlx::test]
async fn killing_the_probing_replica_does_not_leave_the_breaker_stuck(pool: PgPool) {
    let settings = {
        let base = tweak(Duration::from_secs(1));
        move |s: &mut Settings| {
            base(s);
            s.emulator.latency = Duration::from_millis(1500);
            s.scheduler.shutdown_timeout = Duration::ZERO; // stopping aborts the in-flight attempt
        }
    };
    let a = spawn_app_with(pool.clone(), settings.clone()).await;
    let b = spawn_app_with(pool.clone(), settings).await;
    let games: Vec<usize> = (0..4).collect();
    buffer_games(&a, &games, "5s").await;
    let (_, view) = a
        .post_batch(&games_batch(PROCESSOR, TABLE, &games), None)
        .await;
    let batch_id = view["batch_id"].as_str().unwrap().to_owned();

    // Wait for a probe in flight, and find its replica.
    let holder: String = eventually(Duration::from_secs(30), "a half-open probe", || async {
        sqlx::query_scalar(
            "select j.locked_by from breakers b join jobs j
               on j.job_id = b.probe_job_id and j.attempt = b.probe_attempt and j.state = 'running'
             where b.state = 'half_open'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    let port_of = |app: &TestApp| app.base.rsplit(':').next().unwrap().to_owned();
    let (dead, alive) = if holder.contains(&format!(":{}:", port_of(&a))) {
        (a, b)
    } else {
        (b, a)
    };
    dead.stop().await; // the probe's attempt is aborted mid-replace; its lease is not renewed

    let settled = alive.settle(&batch_id, Duration::from_secs(60)).await;
    assert!(
        settled["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["state"] == "loaded"),
        "{settled}"
    );
    let breaker = alive.breaker(PROCESSOR).await;
    assert_eq!(breaker["state"], "closed", "{breaker}");
    let handed_on: i64 = sqlx::query_scalar(
        "select count(*) from breaker_transitions where reason like '%lost its lease%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(handed_on >= 1, "the dead probe's permit was handed on");
    assert_eq!(alive.table_rows(TABLE).await.len(), 4 * 2, "no duplicates");
    alive.stop().await;
}

#[sqlx::test]
async fn five_conflicts_in_eight_trip_one_processor_and_leave_another_alone(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), tweak(Duration::from_secs(120))).await;
    // Landed, conflict, landed, conflict, landed, conflict, conflict, conflict.
    let order = [0, 1, 2, 3, 4, 5, 6, 7];
    buffer_games(&app, &[1, 3, 5, 6, 7], "120s").await;
    let other_table = "nba-props-platform.nba_raw.odds_api_props";

    let (mine, theirs) = (
        games_batch(PROCESSOR, TABLE, &order),
        games_batch("odds_api_processor", other_table, &order),
    );
    let started = std::time::Instant::now();
    let ((s1, burst), (s2, other)) = tokio::join!(
        app.post_batch(&mine, Some(20.0)),
        app.post_batch(&theirs, Some(20.0)),
    );
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let other_settled = app
        .settle(other["batch_id"].as_str().unwrap(), Duration::from_secs(5))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the other processor was not held up"
    );
    for u in other_settled["units"].as_array().unwrap() {
        assert_eq!(
            (u["state"].as_str(), u["attempts"].as_i64()),
            (Some("loaded"), Some(1)),
            "{u}"
        );
    }
    assert_eq!(app.table_rows(other_table).await.len(), 16);

    let breaker = app.breaker(PROCESSOR).await;
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert_eq!(breaker["window"], json!({"outcomes": 7, "conflicts": 4}));
    assert!(breaker["last_reason"]
        .as_str()
        .unwrap()
        .starts_with("4 of the last 7"));
    let states: Vec<(&str, i64)> = burst["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["state"].as_str().unwrap(),
                u["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("loaded", 1),
            ("deferred", 1),
            ("loaded", 1),
            ("deferred", 1),
            ("loaded", 1),
            ("deferred", 1),
            ("deferred", 1),
            ("deferred", 0),
        ]
    );
    let untouched = app.breaker("odds_api_processor").await;
    assert_eq!(
        (untouched["state"].as_str(), untouched["trips"].as_i64()),
        (Some("closed"), Some(0))
    );

    let (_, list) = app.get("/v1/breakers").await;
    assert_eq!(list["scope_by"], "processor");
    assert_eq!(list["breakers"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[sqlx::test]
async fn operators_reset_force_open_and_disable_with_a_recorded_reason(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), tweak(Duration::from_secs(120))).await;
    let (status, _) = app.get("/v1/breakers/bad%00scope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a NUL names no breaker");
    let (status, problem) = app
        .post(&format!("/v1/breakers/{PROCESSOR}/force-open"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/reason");

    let (status, b) = app
        .post(
            &format!("/v1/breakers/{PROCESSOR}/force-open"),
            &json!({"reason": "BigQuery incident INC-42"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(
        (b["state"].as_str(), b["last_actor"].as_str()),
        (Some("forced_open"), Some("anonymous"))
    );

    // A forced-open breaker holds a clean game back.
    let (_, view) = app
        .post_batch(
            &game_batch(TABLE, "20260301_NYK_MIA", "2026-03-01", 2, "backfill"),
            Some(5.0),
        )
        .await;
    assert_eq!(view["units"][0]["state"], "deferred", "{view}");
    assert_eq!(view["units"][0]["attempts"], 0);

    let (_, b) = app
        .post(
            &format!("/v1/breakers/{PROCESSOR}/disable"),
            &json!({"reason": "noisy during the backfill"}),
        )
        .await;
    assert_eq!(b["state"], "disabled");
    let (_, b) = app
        .post(
            &format!("/v1/breakers/{PROCESSOR}/reset"),
            &json!({"reason": "incident over"}),
        )
        .await;
    assert_eq!(b["state"], "closed");

    let detail = app.breaker(PROCESSOR).await;
    let reasons: Vec<&str> = detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "reset by operator: incident over",
            "disable by operator: noisy during the backfill",
            "force-open by operator: BigQuery incident INC-42",
        ]
    );
    assert!(detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["actor"] == "anonymous"));
    app.stop().await;
}

#[sqlx::test]
async fn the_demo_with_a_high_conflict_share_trips_and_recovers(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        // Unit by unit, so that the breaker opens while games are still waiting.
        s.scheduler.bounds = GroupBounds::SINGLE;
        s.breaker.open_for = Duration::from_secs(2);
        s.breaker.max_open_for = Duration::from_secs(8);
        s.breaker.probe_wait = s.scheduler.lease;
    })
    .await;
    let args = streamguard::cli::demo::BackfillArgs {
        url: app.base.clone(),
        games: 20,
        buffered: 0,
        conflict_share: Some(0.9),
        buffer: "3s".into(),
        players: 2,
        table: TABLE.into(),
        start_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 17).unwrap(),
        timeout: Duration::from_secs(60),
        quiet: true,
        token: None,
        faults: None,
    };
    let report = streamguard::cli::demo::run(&args, |_| {})
        .await
        .expect("demo runs");
    assert_eq!(report.files, 20);
    assert_eq!(
        report.loaded_first_attempt + report.resolved_by_retry,
        20,
        "{report}"
    );
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    assert!(report.breaker_trips >= 1, "{report}");
    assert!(report.breaker_recoveries >= 1, "{report}");
    assert!(report.held_by_breaker >= 1, "{report}");
    // The demo posts as a processor of its own per run: its one breaker ends closed.
    let (_, list) = app.get("/v1/breakers").await;
    let breakers = list["breakers"].as_array().unwrap();
    assert_eq!(breakers.len(), 1, "{list}");
    assert!(
        breakers[0]["scope"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{PROCESSOR}_")),
        "{list}"
    );
    assert_eq!(breakers[0]["state"], "closed", "{list}");
    app.stop().await;
}

#[sqlx::test]
async fn concurrent_claimers_take_exactly_one_half_open_permit(pool: PgPool) {
    use streamguard::domain::breaker::{Admission, Probe};
    use streamguard::store::Store;

    let store = Store::new(pool.clone());
    store.migrate().await.unwrap();
    let request: streamguard::domain::BatchRequest =
        serde_json::from_value(games_batch(PROCESSOR, TABLE, &(0..10).collect::<Vec<_>>()))
            .unwrap();
    let batch = request
        .validate(&streamguard::domain::batch::BatchLimits::default())
        .unwrap();
    store.insert_batch(&batch, b"hash", 5).await.unwrap();
    let jobs = store
        .claim("test", 10, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 10);
    sqlx::query("insert into breakers (scope, state, opened_at, reopens_at) values ($1, 'open', now() - interval '1 minute', now() - interval '1 second')")
        .bind(PROCESSOR)
        .execute(&pool)
        .await
        .unwrap();

    // Ten claimers (as if on ten replicas) ask at once.
    let answers = futures::future::join_all(jobs.iter().map(|j| {
        let store = store.clone();
        let probe = Probe {
            job_id: j.job_id,
            attempt: j.attempt,
        };
        async move { store.admit(PROCESSOR, probe).await.unwrap() }
    }))
    .await;
    let probes = answers.iter().filter(|a| **a == Admission::Probe).count();
    let deferred = answers
        .iter()
        .filter(|a| matches!(a, Admission::Defer(_)))
        .count();
    assert_eq!((probes, deferred), (1, 9), "{answers:?}");
    let half_open: i64 =
        sqlx::query_scalar("select count(*) from breaker_transitions where to_state = 'half_open'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(half_open, 1);
}
