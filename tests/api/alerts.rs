//! Alerts from the outbox: exactly one message per event across a restart and two
//! replicas, a storm counted in one message, e-mail to a local SMTP sink, and a failing
//! channel retried without holding another back.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::config::Settings;
use streamguard::domain::breaker::OperatorAction;
use streamguard::domain::RetryPolicy;
use streamguard::notify::email::{SmtpSettings, SmtpTls};
use streamguard::store::{Store, StoreConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{eventually, game_batch, game_rows, spawn_app, spawn_app_with};

const SCOPE: &str = "bdl_boxscores_processor";

async fn receiver(route: &str, failures: u64) -> MockServer {
    let server = MockServer::start().await;
    if failures > 0 {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(500).set_body_string("receiver down"))
            .up_to_n_times(failures)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn quick(s: &mut Settings) {
    s.alerts.rate_window = Duration::ZERO;
    s.alerts.retry_base = Duration::from_millis(100);
    s.alerts.poll_interval = Duration::from_millis(50);
}

#[sqlx::test]
async fn one_slack_message_per_event_across_a_restart_and_two_replicas(pool: PgPool) {
    let slack = receiver("/slack", 0).await;
    let url = format!("{}/slack", slack.uri());
    // The event commits and the process dies before delivering anything: the breaker is
    // forced open through a store configured like the app's, with no app running.
    let store = Store::new(pool.clone()).with_config(StoreConfig {
        alert_channels: vec!["slack".into()],
        ..StoreConfig::default()
    });
    store.migrate().await.unwrap();
    store
        .operate_breaker(
            SCOPE,
            OperatorAction::ForceOpen,
            "BigQuery incident",
            "alice",
        )
        .await
        .unwrap();
    assert!(bodies(&slack).await.is_empty());

    // Restart as two replicas at once.
    let tweak = {
        let url = url.clone();
        move |s: &mut Settings| {
            quick(s);
            s.alerts.slack_webhook = Some(url.clone());
        }
    };
    let a = spawn_app_with(pool.clone(), tweak.clone()).await;
    let b = spawn_app_with(pool.clone(), tweak.clone()).await;
    eventually(Duration::from_secs(10), "the Slack message", || async {
        (!bodies(&slack).await.is_empty()).then_some(())
    })
    .await;
    every_delivery_sent(&pool).await;
    a.stop().await;
    b.stop().await;
    let c = spawn_app_with(pool.clone(), tweak).await; // and once more

    let messages = bodies(&slack).await;
    assert_eq!(messages.len(), 1, "exactly one message: {messages:?}");
    let text = messages[0]["text"].as_str().unwrap();
    assert!(
        text.contains("circuit breaker opened") && text.contains(SCOPE),
        "{text}"
    );
    assert!(
        text.contains("force-open by operator: BigQuery incident"),
        "{text}"
    );
    assert_eq!(messages[0]["blocks"][0]["type"], "header");

    // The breaker's closing is its own event, and its own single message.
    let (status, _) = c
        .post(
            &format!("/v1/breakers/{SCOPE}/reset"),
            &json!({"reason": "incident over"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(Duration::from_secs(10), "the closing message", || async {
        (bodies(&slack).await.len() == 2).then_some(())
    })
    .await;
    every_delivery_sent(&pool).await;
    let messages = bodies(&slack).await;
    assert_eq!(messages.len(), 2, "one message per event: {messages:?}");
    assert!(messages[1]["text"]
        .as_str()
        .unwrap()
        .contains("circuit breaker closed"));
    c.stop().await;
}

/// Waits until every alert delivery is recorded as sent: from then on no replica (this
/// one, a restarted one) has anything left to send, so the receiver's count is final.
async fn every_delivery_sent(pool: &PgPool) {
    eventually(
        Duration::from_secs(10),
        "every delivery recorded as sent",
        || async {
            let open: i64 =
                sqlx::query_scalar("select count(*) from alert_deliveries where state <> 'sent'")
                    .fetch_one(pool)
                    .await
                    .unwrap();
            (open == 0).then_some(())
        },
    )
    .await;
}

#[sqlx::test]
async fn a_storm_of_give_ups_is_counted_not_repeated(pool: PgPool) {
    let hook = receiver("/hook", 0).await;
    let url = format!("{}/hook", hook.uri());
    let app = spawn_app_with(pool.clone(), move |s| {
        quick(s);
        s.alerts.rate_window = Duration::from_secs(2);
        s.alerts.webhook = Some(url.clone());
        s.breaker.min_outcomes = u32::MAX;
        s.retry = RetryPolicy::new(vec![Duration::from_secs(1)], 1, 0.0).unwrap();
        // give up at once
    })
    .await;
    let table = "nba-props-platform.nba_raw.bdl_player_boxscores";
    for i in 0..6 {
        let (game, date) = (format!("2026010{i}_LAL_BOS"), format!("2026-01-0{}", i + 1));
        app.insert_all(table, game_rows(&game, &date, 1, "orchestration"), "120s")
            .await;
        app.post_batch(&game_batch(table, &game, &date, 2, "backfill"), None)
            .await;
    }
    let messages = eventually(
        Duration::from_secs(15),
        "all six give-ups alerted",
        || async {
            let m = bodies(&hook).await;
            let counted: u64 = m.iter().map(|b| b["count"].as_u64().unwrap()).sum();
            (counted == 6).then_some(m)
        },
    )
    .await;
    assert!(
        messages.len() <= 2,
        "rate-limited: {} messages",
        messages.len()
    );
    assert!(messages
        .iter()
        .all(|m| m["kind"] == "conflict_timeout" && m["scope"] == SCOPE));
    assert_eq!(messages[0]["events"][0]["error_class"], "streaming_buffer");
    app.stop().await;
}

/// A tiny SMTP server that accepts every mail and hands each one's text over.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink ESMTP\r\n").await.ok();
                let (mut in_data, mut mail) = (false, String::new());
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            tx.send(std::mem::take(&mut mail)).ok();
                            w.write_all(b"250 queued\r\n").await.ok();
                        } else {
                            mail.push_str(&line);
                            mail.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(answer).await.ok();
                    if verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[sqlx::test]
async fn email_reaches_a_local_smtp_sink(pool: PgPool) {
    let (port, mut mails) = smtp_sink().await;
    let app = spawn_app_with(pool, move |s| {
        quick(s);
        s.alerts.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            credentials: None,
            from: "streamguard@example.com".into(),
            to: vec!["oncall@example.com".into()],
        });
    })
    .await;
    let (status, _) = app
        .post(
            &format!("/v1/breakers/{SCOPE}/force-open"),
            &json!({"reason": "maintenance"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mail = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .expect("a mail within 10 s")
        .unwrap();
    assert!(
        mail.contains("Subject: streamguard: circuit breaker opened"),
        "{mail}"
    );
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
    let body = mail.replace("=\n", ""); // undo quoted-printable soft line breaks
    assert!(
        body.contains("force-open by operator: maintenance"),
        "{mail}"
    );
    app.stop().await;
}

#[sqlx::test]
async fn a_failing_channel_is_retried_and_does_not_hold_another_back(pool: PgPool) {
    let slack = receiver("/slack", 0).await;
    let hook = receiver("/hook", 2).await; // fails twice, then accepts
    let (slack_url, hook_url) = (
        format!("{}/slack", slack.uri()),
        format!("{}/hook", hook.uri()),
    );
    let app = spawn_app_with(pool.clone(), move |s| {
        quick(s);
        s.alerts.slack_webhook = Some(slack_url.clone());
        s.alerts.webhook = Some(hook_url.clone());
    })
    .await;
    app.post(
        &format!("/v1/breakers/{SCOPE}/force-open"),
        &json!({"reason": "maintenance"}),
    )
    .await;
    eventually(Duration::from_secs(10), "the Slack message", || async {
        (bodies(&slack).await.len() == 1).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the webhook's third try",
        || async { (hook.received_requests().await.unwrap_or_default().len() == 3).then_some(()) },
    )
    .await;
    let (state, attempts, error): (String, i32, Option<String>) = eventually(
        Duration::from_secs(5),
        "the webhook delivery marked sent",
        || async {
            let row: (String, i32, Option<String>) = sqlx::query_as(
                "select state, attempts, last_error from alert_deliveries where channel = 'webhook'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (row.0 == "sent").then_some(row)
        },
    )
    .await;
    assert_eq!((state.as_str(), attempts, error), ("sent", 3, None));
    let slack_row: (String, i32) =
        sqlx::query_as("select state, attempts from alert_deliveries where channel = 'slack'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(slack_row, ("sent".to_owned(), 1));
    assert_eq!(bodies(&slack).await.len(), 1);
    let hook_body = &bodies(&hook).await[2];
    assert_eq!(
        (hook_body["kind"].as_str(), hook_body["count"].as_u64()),
        (Some("breaker_opened"), Some(1))
    );
    app.stop().await;
}

#[sqlx::test]
async fn with_no_channel_configured_alerts_are_logged(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.post(
        &format!("/v1/breakers/{SCOPE}/force-open"),
        &json!({"reason": "maintenance"}),
    )
    .await;
    let delivered: Vec<(String, String)> =
        eventually(Duration::from_secs(10), "the logged alert", || async {
            let rows: Vec<(String, String)> =
                sqlx::query_as("select channel, state from alert_deliveries")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows.iter()
                .all(|r| r.1 == "sent")
                .then_some(rows)
                .filter(|r| !r.is_empty())
        })
        .await;
    assert_eq!(delivered, vec![("log".to_owned(), "sent".to_owned())]);
    app.stop().await;
}

#[sqlx::test]
async fn the_daily_digest_is_queued_once_a_day(pool: PgPool) {
    let store = Store::new(pool.clone());
    store.migrate().await.unwrap();
    store
        .operate_breaker(SCOPE, OperatorAction::ForceOpen, "maintenance", "alice")
        .await
        .unwrap();
    assert!(
        store.queue_daily_digest().await.unwrap(),
        "the first is queued"
    );
    assert!(!store.queue_daily_digest().await.unwrap(), "one a day");
    let (summary, payload): (String, Value) =
        sqlx::query_as("select summary, payload from alerts where kind = 'daily_digest'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(payload["breaker_trips"], 1);
    assert_eq!(payload["conflicts"], 0);
    assert_eq!(payload["unresolved"], json!([]));
    assert!(summary.starts_with("daily health check"), "{summary}");
}
