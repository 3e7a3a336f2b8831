//! A process killed in the middle of an attempt: restarted, every unit lands exactly once.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{database_url, game_batch};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary against the test's database; each replace takes 1 s.
fn start(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_streamguard"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("STREAMGUARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("STREAMGUARD_EMULATOR_LATENCY", "1s")
        .env("STREAMGUARD_LEASE", "2s")
        .env("STREAMGUARD_RETRY_DELAYS", "200ms")
        .env("STREAMGUARD_RETRY_JITTER", "0")
        .env("STREAMGUARD_POLL_INTERVAL", "100ms")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the streamguard binary starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("service at {base} never became ready");
}

/// Waits (up to 2 s) until a job is running, and returns how many are.
async fn attempts_in_flight(pool: &PgPool) -> i64 {
    let mut running = 0;
    for _ in 0..100 {
        running = sqlx::query_scalar("select count(*) from jobs where state = 'running'")
            .fetch_one(pool)
            .await
            .unwrap();
        if running > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running
}

#[sqlx::test]
async fn killed_mid_attempt_and_restarted_every_unit_lands_exactly_once(pool: PgPool) {
    let url = database_url(&pool);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&url, port);
    wait_ready(&client, &base).await;

    let mut batch_ids = Vec::new();
    for g in 0..4 {
        let body = game_batch(
            TABLE,
            &format!("20260124_G{g}"),
            "2026-01-24",
            3,
            "backfill",
        );
        let view: Value = client
            .post(format!("{base}/v1/batches"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        batch_ids.push(view["batch_id"].as_str().unwrap().to_owned());
    }
    // Kill it while a statement is in flight (replaces take 1 s, one statement at a time
    // per table; the four games may share it).
    let in_flight = attempts_in_flight(&pool).await;
    assert!(in_flight >= 1, "an attempt is in flight");
    child.kill().unwrap(); // SIGKILL: no drain, no goodbye
    child.wait().unwrap();
    let stranded: i64 = sqlx::query_scalar("select count(*) from jobs where state = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stranded >= 1, "the killed attempt left its claim behind");

    let mut child = start(&url, port);
    wait_ready(&client, &base).await;
    for batch_id in &batch_ids {
        let mut state = String::new();
        for _ in 0..300 {
            let view: Value = client
                .get(format!("{base}/v1/batches/{batch_id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            state = view["units"][0]["state"].as_str().unwrap().to_owned();
            if state == "loaded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "loaded", "batch {batch_id}");
    }
    let rows: Value = client
        .get(format!("{base}/emulator/tables/{TABLE}/rows"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(
        rows["total_rows"], 12,
        "4 games x 3 rows, no duplicates, none missing"
    );
    let rescued: i64 = sqlx::query_scalar("select count(*) from jobs where attempt = 2")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rescued, stranded,
        "the stranded jobs were claimed again after their lease expired"
    );
    // Each unit's history shows the killed attempt, pointing at the statement it was in if
    // one was sent, and every statement was settled (one in flight never landed: the
    // emulator died with it) before the next one was sent.
    let lost: Vec<(i32, Option<i64>)> =
        sqlx::query_as("select attempt, statement_id from attempts where outcome = 'lost'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(lost.len() as i64, stranded, "{lost:?}");
    // Killed after the claim: before its statement was written (no statement) or after.
    assert!(lost.iter().all(|(attempt, _)| *attempt == 1), "{lost:?}");
    let unsettled: i64 = sqlx::query_scalar(
        "select count(*) from statements where state in ('sent', 'running', 'unknown')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unsettled, 0, "every statement's fate is known");
}

#[sqlx::test]
async fn sigterm_drains_the_attempt_in_flight_before_exiting(pool: PgPool) {
    let url = database_url(&pool);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&url, port);
    wait_ready(&client, &base).await;
    let body = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 3, "backfill");
    let view: Value = client
        .post(format!("{base}/v1/batches"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(attempts_in_flight(&pool).await, 1);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();

    assert!(exit.success(), "clean exit after draining: {exit:?}");
    let state: String =
        sqlx::query_scalar("select state from write_units where batch_id = $1::uuid")
            .bind(view["batch_id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        state, "loaded",
        "the in-flight attempt finished and was recorded"
    );
}
