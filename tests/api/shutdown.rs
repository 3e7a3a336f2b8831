//! Shutdown is bounded: a request waiting (`?wait=`) when shutdown starts does not keep the
//! service alive past `STREAMGUARD_SHUTDOWN_TIMEOUT`, and handlers see shutdown through
//! `AppState::shutdown`.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use streamguard::store::Store;
use streamguard::App;
use tokio_util::sync::CancellationToken;

use crate::helpers::{fast_settings, game_batch};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

#[sqlx::test]
async fn a_waiting_request_does_not_outlast_the_shutdown_timeout(pool: PgPool) {
    let mut settings = fast_settings(&pool);
    // No scheduler: the batch's units are never attempted, so `?wait=` waits its full time.
    settings.run_scheduler = false;
    settings.scheduler.shutdown_timeout = Duration::from_secs(1);
    let app = App::build_with_store(settings, Store::new(pool.clone()))
        .await
        .expect("app builds");
    let base = format!("http://{}", app.address());
    let handlers = app.state().shutdown.clone();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v1");
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/batches?wait=40"))
            .json(&body)
            .send()
            .await
    });
    crate::helpers::eventually(Duration::from_secs(10), "the batch stored", || async {
        let n: i64 = sqlx::query_scalar("select count(*) from batches")
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    assert!(!waiting.is_finished(), "the request waits");
    assert!(!handlers.is_cancelled());

    let started = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), handlers.cancelled())
        .await
        .expect("AppState::shutdown is cancelled when shutdown starts");
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run_until_stopped returns within the shutdown timeout, not after the wait")
        .expect("app task")
        .expect("app ran cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The waiting request was answered, not cut off: the batch is durable and pending.
    let response = waiting
        .await
        .expect("request task")
        .expect("the request got an answer");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let view: serde_json::Value = response.json().await.unwrap();
    assert_eq!(view["units"][0]["state"], "pending");
}
