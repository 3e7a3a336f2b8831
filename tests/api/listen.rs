//! The scheduler's LISTEN connection is visible: `/readyz` shows its state (never failing
//! readiness), `/metrics` exports `streamguard_listen_connected`, and a connection killed
//! by the server is re-established and counted.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{eventually, game_batch, spawn_app, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

async fn listen(app: &TestApp) -> Value {
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["listen"].clone()
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[sqlx::test]
async fn readyz_and_metrics_show_the_listen_connection_and_its_notifications(pool: PgPool) {
    let app = spawn_app(pool).await;
    eventually(
        Duration::from_secs(10),
        "the scheduler listening",
        || async { (listen(&app).await["state"] == "connected").then_some(()) },
    )
    .await;
    assert!(metrics(&app)
        .await
        .contains("\nstreamguard_listen_connected 1\n"));
    assert_eq!(listen(&app).await["last_notification_at"], Value::Null);

    let (status, body) = app
        .post_batch(&game_batch(TABLE, "G1", "2026-01-24", 2, "v1"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let at = eventually(Duration::from_secs(10), "intake's notification", || async {
        listen(&app).await["last_notification_at"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
    app.stop().await;
}

#[sqlx::test]
async fn a_listen_connection_killed_by_the_server_is_reestablished_and_counted(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    eventually(
        Duration::from_secs(10),
        "the scheduler listening",
        || async { (listen(&app).await["state"] == "connected").then_some(()) },
    )
    .await;

    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and query ilike 'listen%') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1, "one LISTEN connection");

    let report = eventually(Duration::from_secs(10), "a reconnect", || async {
        let l = listen(&app).await;
        (l["state"] == "connected" && l["reconnects"] == 1).then_some(l)
    })
    .await;
    assert!(report["since"].is_string(), "{report}");
    assert!(metrics(&app)
        .await
        .contains("\nstreamguard_listen_reconnects 1\n"));
    // And it listens again: a new batch is noticed.
    let (status, _) = app
        .post_batch(&game_batch(TABLE, "G2", "2026-01-24", 1, "v1"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(
        Duration::from_secs(10),
        "a notification after the reconnect",
        || async {
            listen(&app).await["last_notification_at"]
                .as_str()
                .map(drop)
        },
    )
    .await;
    app.stop().await;
}

#[sqlx::test]
async fn a_replica_without_a_scheduler_says_so_and_stays_ready(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.run_scheduler = false).await;
    let l = listen(&app).await;
    assert_eq!(l["state"], "off", "{l}");
    assert!(metrics(&app)
        .await
        .contains("\nstreamguard_listen_connected 0\n"));
    app.stop().await;
}
