//! The test harness: the real app on a random port against the fresh database
//! `#[sqlx::test]` made, with the emulator as warehouse, and typed client calls.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use streamguard::clock::{Clock, ManualClock};
use streamguard::config::Settings;
use streamguard::store::Store;
use streamguard::App;
use tokio_util::sync::CancellationToken;

/// A running app.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub shutdown: CancellationToken,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The app's manual clock ([`spawn_app_on_clock`]); `None` on Postgres's clock.
    pub clock: Option<ManualClock>,
}

/// Settings for fast tests: short delays, no jitter, quick polling, short buffer.
pub fn fast_settings(pool: &PgPool) -> Settings {
    let url = database_url(pool);
    let mut s = Settings::for_tests(&url);
    s.retry =
        streamguard::domain::RetryPolicy::new(vec![Duration::from_millis(300)], 20, 0.0).unwrap();
    s.scheduler.poll_interval = Duration::from_millis(50);
    s.scheduler.lease = Duration::from_secs(2);
    s.emulator.buffer = streamguard::warehouse::emulator::BufferTime::fixed(Duration::from_secs(1));
    s
}

/// The URL of the test's own database (for child processes).
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let db = options.get_database().unwrap_or("postgres");
    format!("postgres://postgres@127.0.0.1:5432/{db}")
}

/// Starts the app with `fast_settings`, changed by `tweak`.
pub async fn spawn_app_with(pool: PgPool, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(pool, tweak, None).await
}

/// Starts the app with `fast_settings` (changed by `tweak`) on a manual clock: due jobs,
/// backoffs, leases, breakers and the emulator's buffer follow it, and it moves only when
/// the test moves it ([`TestApp::settle`] and [`TestApp::eventually`] jump to the next
/// scheduled time). No linger: a batch is claimed as soon as it is posted.
pub async fn spawn_app_on_clock(pool: PgPool, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(
        pool,
        |s| {
            s.scheduler.linger = Duration::ZERO;
            tweak(s);
        },
        Some(ManualClock::starting_at(chrono::Utc::now())),
    )
    .await
}

async fn spawn(
    pool: PgPool,
    tweak: impl FnOnce(&mut Settings),
    clock: Option<ManualClock>,
) -> TestApp {
    let mut settings = fast_settings(&pool);
    tweak(&mut settings);
    let store = match &clock {
        None => Store::new(pool.clone()),
        Some(c) => {
            let clock = Clock::Manual(c.clone());
            let own = clock
                .pool_options(PgPoolOptions::new().max_connections(10))
                .connect_with((*pool.connect_options()).clone())
                .await
                .expect("a pool on the manual clock");
            Store::new(own).with_clock(clock)
        }
    };
    let app = App::build_with_store(settings, store)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.address());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        base,
        client: reqwest::Client::new(),
        pool,
        shutdown,
        handle: Some(handle),
        clock,
    }
}

/// Starts the app with `fast_settings`.
pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |_| {}).await
}

impl TestApp {
    /// POST /v1/batches (with `?wait=` when given).
    pub async fn post_batch(&self, body: &Value, wait: Option<f64>) -> (StatusCode, Value) {
        match wait {
            Some(w) => self.post(&format!("/v1/batches?wait={w}"), body).await,
            None => self.post("/v1/batches", body).await,
        }
    }

    /// GET a path; status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON to a path; status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// Sends JSON with `method` to a path; status and JSON body.
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST a raw body with a content type, optionally with a bearer token; status,
    /// headers and JSON body (`Null` when the body is not JSON).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.expect("request");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// GET a path with an optional bearer token; status, headers and JSON body.
    pub async fn get_as(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.expect("request");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// Streams rows into the emulator's buffer for `buffer` (e.g. "1s", "0s").
    pub async fn insert_all(&self, table: &str, rows: Value, buffer: &str) {
        let (status, body) = self
            .post(
                &format!("/emulator/tables/{table}/insertAll"),
                &json!({"rows": rows, "buffer": buffer}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Every row of an emulator table (the `data` objects).
    pub async fn table_rows(&self, table: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/emulator/tables/{table}/rows")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"].clone())
            .collect()
    }

    /// Polls the batch until every unit is in a final state (on a manual clock, moving it
    /// to the next due time between polls); panics after `timeout`.
    pub async fn settle(&self, batch_id: &str, timeout: Duration) -> Value {
        let path = format!("/v1/batches/{batch_id}");
        let what = format!("batch {batch_id} to settle (GET {path})");
        self.eventually(timeout, &what, || async {
            let (_, view) = self.get(&path).await;
            let settled = view["units"].as_array().is_some_and(|units| {
                units
                    .iter()
                    .all(|u| !matches!(u["state"].as_str(), Some("pending" | "deferred")))
            });
            settled.then_some(view)
        })
        .await
    }

    /// Stops the app and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("app task").expect("app ran cleanly");
        }
    }
}

/// A box-score batch for one game: `players` rows, keyed by game_id, partitioned by game_date.
pub fn game_batch(
    table: &str,
    game_id: &str,
    game_date: &str,
    players: usize,
    version: &str,
) -> Value {
    json!({
        "processor_name": "bdl_boxscores_processor",
        "table": table,
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": game_rows(game_id, game_date, players, version),
    })
}

/// Box-score rows of one game.
pub fn game_rows(game_id: &str, game_date: &str, players: usize, version: &str) -> Value {
    Value::Array(
        (0..players)
            .map(|p| json!({"game_id": game_id, "game_date": game_date, "player_lookup": format!("player_{p}"), "points": p, "source": version}))
            .collect(),
    )
}

/// Polls `check` every 50 ms until it returns `Some`; panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// As [`eventually`], but between polls a manual clock moves to the next time
    /// something becomes due ([`TestApp::advance_to_next_due`]).
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let mut first = true;
        eventually(timeout, what, || {
            let (advance, check) = (!std::mem::take(&mut first), check());
            async move {
                if advance {
                    self.advance_to_next_due().await;
                }
                check.await
            }
        })
        .await
    }

    /// On a manual clock, with no attempt in flight, moves the clock to the next time
    /// something becomes due (a retry, a held partition reopening, a table's pace); does nothing on
    /// Postgres's clock. A job due now is claimed within a poll interval anyway.
    pub async fn advance_to_next_due(&self) {
        let Some(clock) = &self.clock else { return };
        let now = clock.now();
        let next: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "select case when exists (select 1 from jobs where state = 'running') then null
                    else (select min(at) from (
                              select run_at from jobs where state = 'available'
                              union all select until from partition_holds
                              union all select next_at from table_pacing) e(at)
                          where at > $1) end",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .expect("next due time");
        if let Some(wait) = next.and_then(|at| (at - now).to_std().ok()) {
            clock.advance(wait.max(Duration::from_millis(1)));
        }
    }

    /// GET /v1/breakers/{scope}.
    pub async fn breaker(&self, scope: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/breakers/{scope}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

impl TestApp {
    /// Moves the emulator's clock past every buffered row's residence: the streaming
    /// buffer is empty from now on, without waiting for it.
    pub async fn drain_buffer(&self) {
        sqlx::query("update emulator.rows set buffered_until = now() where buffered_until > now()")
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Waits until no job is due, scheduled or running: nothing can attempt anything any
    /// more, so what the warehouse holds now is final.
    pub async fn until_no_job_can_run(&self) {
        self.eventually(Duration::from_secs(10), "every job completed", || async {
            let open: i64 =
                sqlx::query_scalar("select count(*) from jobs where state <> 'completed'")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            (open == 0).then_some(())
        })
        .await;
    }

    /// PUT JSON to a path; status and JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// DELETE a path; status and JSON body.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}
