//! A backfill against a slow warehouse (issue 8, benchmark 1): the real service, built
//! in-process as the end-to-end tests build it (`App::build_with_store`, every default
//! setting but the emulator's latency), on a fresh database per scenario, driven over HTTP.
//!
//! The backfill: `BACKFILL_KEYS` keys (2,000) of one table over `BACKFILL_PARTITIONS`
//! partitions (100, one `game_date` each, keys spread evenly), 5 rows per key, posted as a
//! processor walking its game files in date order would: one batch per key (`game_id`),
//! `BACKFILL_POSTERS` (8) posts in flight. The emulator answers every statement after
//! `BACKFILL_LATENCY` (6 s; `STREAMGUARD_EMULATOR_LATENCY`).
//!
//! Scenarios (`BACKFILL_SCENARIOS`, default `a,b,c`):
//! - `a`: no buffered rows; time from the first POST until every key landed, statements
//!   per key (from the `statements` table).
//! - `b`: every fifth partition (20 of 100) has a row streamed with a buffer of
//!   `BACKFILL_BUFFER` (120 s, the emulator's `insertAll` `buffer`) just before the
//!   backfill; time from the last POST until the 1,600 other keys landed, and until all
//!   landed; then every key's rows are checked to be in the table exactly once (5 rows per
//!   key, from `GET /emulator/tables/{t}/rows`); statements per key in all.
//! - `c`: one key alone, posted with `?wait=30`: its latency against the linger plus one
//!   statement (the emulator's latency).
//!
//! `cargo bench --bench backfill` (needs the local Postgres at 127.0.0.1:5432; databases
//! `sg_bench_backfill_{a,b,c}`, dropped first; `BACKFILL_PG` changes the server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;
use streamguard::config::Settings;
use streamguard::store::Store;
use streamguard::App;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "bench-project.nba.boxscores";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

struct Service {
    base: String,
    client: reqwest::Client,
    store: Store,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    linger: Duration,
}

impl Service {
    async fn start(server: &str, name: &str, latency: Duration) -> anyhow::Result<Self> {
        let url = format!("{server}/sg_bench_backfill_{name}");
        if Postgres::database_exists(&url).await? {
            Postgres::drop_database(&url).await?;
        }
        Postgres::create_database(&url).await?;
        let mut settings = Settings::for_tests(&url);
        settings.emulator.latency = latency;
        let linger = settings.scheduler.linger;
        let store = Store::connect(&url, settings.scheduler.concurrency + 10).await?;
        let app = App::build_with_store(settings, store.clone()).await?;
        let base = format!("http://{}", app.address());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Self {
            base,
            client: reqwest::Client::new(),
            store,
            shutdown,
            handle,
            linger,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(self.store.pool()).await?)
    }

    /// Units loaded outside the partitions (days after the first) in `except`.
    async fn loaded(&self, except: &[i32]) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "select count(*) from write_units where state = 'loaded'
               and not (((partition_value #>> '{}')::date - date '2025-10-21') = any($1))",
        )
        .bind(except)
        .fetch_one(self.store.pool())
        .await?)
    }

    /// Waits until at least `n` units outside `except` are loaded; the time it took from
    /// `since`.
    async fn until(
        &self,
        except: &[i32],
        n: i64,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            if self.loaded(except).await? >= n {
                return Ok(since.elapsed());
            }
            anyhow::ensure!(
                since.elapsed() < limit,
                "gave up after {limit:?}: fewer than {n} units loaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await??;
        self.store.pool().close().await;
        Ok(())
    }
}

fn date(partition: usize) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(2025, 10, 21).expect("valid")
        + chrono::Days::new(partition as u64);
    d.format("%Y-%m-%d").to_string()
}

fn game(key: usize, partition: usize) -> Value {
    let rows: Vec<Value> = (0..5)
        .map(|p| json!({"game_id": format!("g{key:05}"), "game_date": date(partition), "player_lookup": format!("player_{p}"), "points": p}))
        .collect();
    json!({
        "processor_name": "bench_backfill",
        "table": TABLE,
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": rows,
    })
}

/// Posts every key (date order, `posters` in flight); returns when the last POST answered.
async fn post_all(
    service: &Arc<Service>,
    keys: usize,
    partitions: usize,
    posters: usize,
) -> anyhow::Result<()> {
    let per_partition = keys.div_ceil(partitions);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..posters {
        let (service, next) = (service.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let key = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if key >= keys {
                    return anyhow::Ok(());
                }
                service
                    .post("/v1/batches", &game(key, key / per_partition))
                    .await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

const STATEMENTS: &str = "select count(*) from statements";

async fn scenario_a(
    server: &str,
    keys: usize,
    partitions: usize,
    posters: usize,
    latency: Duration,
) -> anyhow::Result<()> {
    let service = Arc::new(Service::start(server, "a", latency).await?);
    let load = load1();
    let started = Instant::now();
    post_all(&service, keys, partitions, posters).await?;
    let posted = started.elapsed();
    let landed = service
        .until(&[], keys as i64, started, Duration::from_secs(3_600))
        .await?;
    let statements = service.count(STATEMENTS).await?;
    println!(
        "(a) no buffer: {keys} keys posted in {posted:.1?}, all landed {landed:.1?} after the first POST (target <= 2 min); {statements} statements = {:.4} per key (target <= 0.02); load1 {load}",
        statements as f64 / keys as f64
    );
    Arc::try_unwrap(service)
        .map_err(|_| anyhow::anyhow!("service still shared"))?
        .stop()
        .await
}

async fn scenario_b(
    server: &str,
    keys: usize,
    partitions: usize,
    posters: usize,
    latency: Duration,
) -> anyhow::Result<()> {
    let buffer: String = env("BACKFILL_BUFFER", "120s".to_owned());
    let service = Arc::new(Service::start(server, "b", latency).await?);
    let load = load1();
    let blocked: Vec<usize> = (0..partitions).filter(|p| p % 5 == 0).collect();
    let per_partition = keys.div_ceil(partitions);
    for &p in &blocked {
        let row = json!([{"game_id": format!("streamed_{p}"), "game_date": date(p), "player_lookup": "live", "points": 0}]);
        service
            .post(
                &format!("/emulator/tables/{TABLE}/insertAll"),
                &json!({"rows": row, "buffer": buffer}),
            )
            .await?;
    }
    let blocked_keys = (0..keys).filter(|k| (k / per_partition) % 5 == 0).count();
    let clear = (keys - blocked_keys) as i64;
    let started = Instant::now();
    post_all(&service, keys, partitions, posters).await?;
    let last_post = Instant::now();
    let posted = started.elapsed();
    let except: Vec<i32> = blocked.iter().map(|&p| p as i32).collect();
    let clear_landed = service
        .until(&except, clear, last_post, Duration::from_secs(3_600))
        .await?;
    let statements_clear = service.count(STATEMENTS).await?;
    let all_landed = service
        .until(&[], keys as i64, last_post, Duration::from_secs(3_600))
        .await?;
    let statements = service.count(STATEMENTS).await?;
    // Every key exactly once: 5 rows per posted key, and the streamed rows untouched.
    let r = service
        .client
        .get(format!("{}/emulator/tables/{TABLE}/rows", service.base))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let rows = r["rows"].as_array().cloned().unwrap_or_default();
    let mut per_key = std::collections::BTreeMap::<String, usize>::new();
    for row in &rows {
        *per_key
            .entry(row["data"]["game_id"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let exact = (0..keys)
        .filter(|k| per_key.get(&format!("g{k:05}")) == Some(&5))
        .count();
    let extra = per_key.keys().filter(|k| k.starts_with('g')).count() - exact;
    println!(
        "(b) {} of {partitions} partitions buffered for {buffer}: {keys} keys posted in {posted:.1?}; the {clear} others landed {clear_landed:.1?} after the last POST (target <= 3 min, {statements_clear} statements by then); all landed {all_landed:.1?} after it; {exact} of {keys} keys exactly once (5 rows), {extra} keys wrong; {statements} statements = {:.4} per key (target <= 0.1); load1 {load}",
        blocked.len(),
        statements as f64 / keys as f64
    );
    Arc::try_unwrap(service)
        .map_err(|_| anyhow::anyhow!("service still shared"))?
        .stop()
        .await
}

async fn scenario_c(server: &str, latency: Duration) -> anyhow::Result<()> {
    let service = Service::start(server, "c", latency).await?;
    let load = load1();
    let started = Instant::now();
    let body = service.post("/v1/batches?wait=30", &game(0, 0)).await?;
    let took = started.elapsed();
    let state = body["units"][0]["state"].as_str().unwrap_or("?").to_owned();
    println!(
        "(c) one key alone, ?wait=30: answered {took:.2?} after the POST, unit {state}; linger {:?} + one statement {latency:?} = {:.2?}; load1 {load}",
        service.linger,
        service.linger + latency
    );
    service.stop().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server: String = env(
        "BACKFILL_PG",
        "postgres://postgres@127.0.0.1:5432".to_owned(),
    );
    let keys: usize = env("BACKFILL_KEYS", 2_000);
    let partitions: usize = env("BACKFILL_PARTITIONS", 100);
    let posters: usize = env("BACKFILL_POSTERS", 8);
    let latency = humantime::parse_duration(&env("BACKFILL_LATENCY", "6s".to_owned()))?;
    let scenarios: String = env("BACKFILL_SCENARIOS", "a,b,c".to_owned());
    println!(
        "backfill: {keys} keys x 5 rows, {partitions} partitions, one batch per key, {posters} posts in flight, statement latency {latency:?}"
    );
    for s in scenarios.split(',') {
        match s.trim() {
            "a" => scenario_a(&server, keys, partitions, posters, latency).await?,
            "b" => scenario_b(&server, keys, partitions, posters, latency).await?,
            "c" => scenario_c(&server, latency).await?,
            other => anyhow::bail!("unknown scenario {other:?} (a, b, c)"),
        }
    }
    Ok(())
}
