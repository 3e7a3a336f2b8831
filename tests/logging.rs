//! Logging, in a test binary of its own: tracing caches which call sites are enabled
//! process-wide, so a log capture in a test that runs beside others in parallel threads
//! can miss lines (it did, under load). Here it is alone.

#[allow(dead_code, unreachable_pub)]
#[path = "api/helpers.rs"]
mod helpers;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use streamguard::http::auth::{token_digest, Tokens};

use helpers::{game_batch, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

async fn secured(pool: PgPool) -> TestApp {
    let text = format!(
        "bdl-processor write {}\ndashboard read {}",
        token_digest("w-token"),
        token_digest("r-token")
    );
    spawn_app_with(pool, |s| {
        s.http.access.tokens = Tokens::parse(&text, "test").unwrap()
    })
    .await
}

fn body(batch: &Value) -> Vec<u8> {
    serde_json::to_vec(batch).unwrap()
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test]
async fn the_token_name_is_logged_and_the_token_never(pool: PgPool) {
    // `#[sqlx::test]` runs on a current-thread runtime, so the server's tasks run on this
    // thread and see this thread's default subscriber.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("streamguard=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = secured(pool).await;

    let batch = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 1, "v1");
    let (status, _, _) = app
        .post_raw(
            "/v1/batches",
            "application/json",
            body(&batch),
            Some("w-token"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = app.get_as("/v1/conflicts/summary", Some("r-token")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // One line per request: the batch (a decision) at info, the read at debug.
    let answered = |actor: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| l.contains(&format!("actor=\"{actor}\"")) && l.contains("answered"))
            .collect()
    };
    let post = answered("bdl-processor");
    assert_eq!(post.len(), 1, "{log}");
    assert!(
        post[0].contains(" INFO ") && post[0].contains("status=202"),
        "{log}"
    );
    let read = answered("dashboard");
    assert_eq!(read.len(), 1, "{log}");
    assert!(
        read[0].contains("DEBUG ") && read[0].contains("status=200"),
        "{log}"
    );
    for secret in ["w-token", "r-token", &token_digest("w-token")] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}
