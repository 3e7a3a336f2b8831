//! The job table against the peer job queues (issue 8, benchmark 2), with their protocol
//! (`/work/shared/bench/peers/README.md`): N one-row units bulk-inserted through the store's
//! own intake (`Store::insert_batch`, batches of at most 5,000 units: batches, write
//! units and jobs exactly as a POST makes them), then R replicas × K claimers — each a
//! loop of the real [`Scheduler::run_once`] (claim groups, run them, record every verdict
//! with its attempt row and statement record, fenced) — drain them against a warehouse
//! that answers every statement at once; the clock runs from the first claim until every
//! unit is `loaded`. Runs over one table and over 200, with groups of one
//! (`GroupBounds::SINGLE`: one statement and one recording transaction per unit, the
//! peers' per-job acks) and with the default bounds (one statement and one recording
//! transaction per group, batched acks).
//!
//! It uses the peers' throwaway cluster (127.0.0.1:54329, started by the peers'
//! `install.sh`) and a database of its own, `sg_bench_job_table`, dropped and recreated
//! for every run, with a `CHECKPOINT` before each run as the peers' `run.sh` does. Printed
//! per run: units/s, WAL bytes per unit (`pg_current_wal_lsn()` across the drain), dead
//! tuples (`sum(n_dead_tup)` of our tables once the claimers' connections closed), load1.
//!
//! `cargo bench --bench job_table`. Settings (environment):
//! - `BENCH_UNITS` (default 5,000; the peers' protocol is 20,000),
//! - `BENCH_TABLES` (`1,200`), `BENCH_MODES` (`single,grouped`), `BENCH_REPLICAS` (`1`;
//!   e.g. `1,3`), `BENCH_CLAIMERS` (K claimers per replica, 4), `BENCH_GROUPS_PER_CLAIM`
//!   (groups one claim takes, the scheduler's concurrency, 8),
//! - `BENCH_MAX_PER_TABLE` (statements in flight per table across replicas; default
//!   1,000, i.e. no limit, as the peers have none — the service's default is 1),
//! - `BENCH_PG` (server URL without database, `postgres://postgres@127.0.0.1:54329`),
//! - `BENCH_PEERS` (a file with `run.sh`'s JSON lines; ratios to the best peer per ack
//!   class are printed when given).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;
use streamguard::domain::batch::BatchLimits;
use streamguard::domain::{BatchRequest, RetryPolicy, TableRef};
use streamguard::scheduler::{Scheduler, SchedulerSettings};
use streamguard::store::jobs::GroupBounds;
use streamguard::store::{Store, StoreConfig};
use streamguard::warehouse::{self, Fate, ReplaceOutcome, StreamingBuffer, Warehouse, WriteUnit};

/// A warehouse that lands every statement at once.
struct NoOp;

#[async_trait]
impl Warehouse for NoOp {
    async fn replace(
        &self,
        _table: &TableRef,
        _job_id: &str,
        units: &[WriteUnit],
    ) -> Result<ReplaceOutcome, warehouse::Error> {
        Ok(ReplaceOutcome {
            rows_inserted: units.iter().map(|u| u.rows.len() as u64).sum(),
            ..ReplaceOutcome::default()
        })
    }

    async fn statement_fate(
        &self,
        _table: &TableRef,
        _job_id: &str,
        _wait: Duration,
    ) -> Result<Fate, warehouse::Error> {
        Ok(Fate::NeverArrived)
    }

    async fn streaming_buffer(
        &self,
        _table: &TableRef,
    ) -> Result<Option<StreamingBuffer>, warehouse::Error> {
        Ok(None)
    }

    fn kind(&self) -> &'static str {
        "noop"
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One run's settings.
#[derive(Clone, Copy)]
struct Run {
    units: usize,
    tables: usize,
    grouped: bool,
    replicas: usize,
    claimers: usize,
    groups_per_claim: u32,
    max_per_table: u32,
}

/// One run's figures.
struct Figures {
    units_per_s: f64,
    wal_per_unit: f64,
    dead_tuples: i64,
    load1: f64,
    statements: i64,
    attempts: i64,
    intake_per_s: f64,
}

async fn run(server: &str, r: Run) -> anyhow::Result<Figures> {
    let url = format!("{server}/sg_bench_job_table");
    if Postgres::database_exists(&url).await? {
        Postgres::drop_database(&url).await?;
    }
    Postgres::create_database(&url).await?;
    let connections = (r.replicas * r.claimers) as u32 * 3 + 4;
    let store = Store::connect(&url, connections.min(150))
        .await?
        .with_config(StoreConfig::default());
    store.migrate().await?;

    // Intake: the store's own, one row per unit, at most 5,000 units per batch.
    let started = Instant::now();
    let per_table = r.units / r.tables;
    for t in 0..r.tables {
        let mut g = 0;
        while g < per_table {
            let n = (per_table - g).min(5_000);
            let rows: Vec<Value> = (g..g + n)
                .map(
                    |i| json!({"game_id": format!("g{i}"), "game_date": "2026-01-24", "points": i}),
                )
                .collect();
            let request: BatchRequest = serde_json::from_value(json!({
                "processor_name": "bench",
                "table": format!("bench-project.nba.table_{t}"),
                "key_columns": ["game_id"],
                "partition_column": "game_date",
                "rows": rows,
            }))?;
            let batch = request
                .validate(&BatchLimits::default())
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            store
                .insert_batch(&batch, &(t * 1_000_000 + g).to_be_bytes(), 8)
                .await?;
            g += n;
        }
    }
    let total = per_table * r.tables;
    let intake_per_s = total as f64 / started.elapsed().as_secs_f64();

    // Planner statistics for the bulk-inserted tables, as autovacuum would have them in
    // a service that runs for longer than a benchmark (without them the claim's plan
    // over 20,000 fresh rows is a nested scan that takes tens of seconds).
    sqlx::query("analyze").execute(store.pool()).await?;
    sqlx::query("checkpoint").execute(store.pool()).await?;
    let lsn = || async {
        let l: i64 = sqlx::query_scalar("select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
            .fetch_one(store.pool())
            .await?;
        anyhow::Ok(l)
    };
    let load = load1();
    let before = lsn().await?;
    let bounds = if r.grouped {
        GroupBounds::DEFAULT
    } else {
        GroupBounds::SINGLE
    };
    let warehouse: Arc<dyn Warehouse> = Arc::new(NoOp);
    let policy = RetryPolicy::new(vec![Duration::from_secs(5)], 8, 0.0)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for replica in 0..r.replicas {
        let scheduler = Arc::new(Scheduler::new(
            store.clone(),
            warehouse.clone(),
            policy.clone(),
            SchedulerSettings {
                replica: format!("bench-{replica}"),
                poll_interval: Duration::from_millis(50),
                lease: Duration::from_secs(60),
                concurrency: r.groups_per_claim,
                max_per_table: r.max_per_table,
                bounds,
                linger: Duration::ZERO,
                statement_timeout: Duration::from_secs(60),
                shutdown_timeout: Duration::from_secs(5),
            },
        ));
        for _ in 0..r.claimers {
            let (scheduler, store) = (scheduler.clone(), store.clone());
            tasks.spawn(async move {
                loop {
                    if scheduler.run_once().await? > 0 {
                        continue;
                    }
                    let left: i64 =
                        sqlx::query_scalar("select count(*) from jobs where state <> 'completed'")
                            .fetch_one(store.pool())
                            .await?;
                    if left == 0 {
                        return anyhow::Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed();
    let after = lsn().await?;
    let (loaded, attempts, statements): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from write_units where state = 'loaded'),
                (select count(*) from attempts where outcome = 'loaded' and statement_id is not null),
                (select count(*) from statements where state = 'done')",
    )
    .fetch_one(store.pool())
    .await?;
    anyhow::ensure!(
        loaded == total as i64 && attempts == total as i64,
        "{loaded} units loaded, {attempts} attempt rows, of {total}"
    );
    store.pool().close().await;
    // Backends report their statistics when they exit; read them from a fresh connection.
    let stats = Store::connect(&url, 1).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let dead: i64 = sqlx::query_scalar(
        "select coalesce(sum(n_dead_tup), 0)::bigint from pg_stat_user_tables where schemaname = 'public'",
    )
    .fetch_one(stats.pool())
    .await?;
    stats.pool().close().await;
    Ok(Figures {
        units_per_s: total as f64 / elapsed.as_secs_f64(),
        wal_per_unit: (after - before) as f64 / total as f64,
        dead_tuples: dead,
        load1: load,
        statements,
        attempts,
        intake_per_s,
    })
}

/// The best peer's `jobs_per_s` per ack class (`per_job`, `batched`) from `run.sh`'s
/// JSON lines, with the system's name.
fn best_peers(path: &str) -> Vec<(String, String, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("BENCH_PEERS={path}: unreadable; no ratios");
        return Vec::new();
    };
    let mut best: Vec<(String, String, f64)> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(ack), Some(rate)) = (v["ack"].as_str(), v["jobs_per_s"].as_f64()) else {
            continue;
        };
        let name = format!(
            "{} {}",
            v["system"].as_str().unwrap_or("?"),
            v["config"].as_str().unwrap_or("")
        );
        match best.iter_mut().find(|b| b.0 == ack) {
            Some(b) if b.2 >= rate => {}
            Some(b) => *b = (ack.to_owned(), name, rate),
            None => best.push((ack.to_owned(), name, rate)),
        }
    }
    best
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server =
        std::env::var("BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329".into());
    let units = env_usize("BENCH_UNITS", 5_000);
    let claimers = env_usize("BENCH_CLAIMERS", 4);
    let groups_per_claim = env_usize("BENCH_GROUPS_PER_CLAIM", 8) as u32;
    let max_per_table = env_usize("BENCH_MAX_PER_TABLE", 1_000) as u32;
    let peers = std::env::var("BENCH_PEERS")
        .ok()
        .map(|p| best_peers(&p))
        .unwrap_or_default();
    for (ack, name, rate) in &peers {
        println!("best peer, {ack}: {name} = {rate:.0} jobs/s");
    }
    println!(
        "{:<8} {:>6} {:>8} {:>8} {:>10} {:>9} {:>10} {:>11} {:>7} {:>9} {:>6}",
        "mode",
        "tables",
        "replicas",
        "units",
        "units/s",
        "vs peer",
        "WAL B/unit",
        "dead tuples",
        "stmts",
        "intake/s",
        "load1"
    );
    for mode in env_list("BENCH_MODES", "single,grouped") {
        for tables in env_list("BENCH_TABLES", "1,200") {
            for replicas in env_list("BENCH_REPLICAS", "1") {
                let r = Run {
                    units,
                    tables: tables.parse()?,
                    grouped: mode == "grouped",
                    replicas: replicas.parse()?,
                    claimers,
                    groups_per_claim,
                    max_per_table,
                };
                let f = run(&server, r).await?;
                let ack = if r.grouped { "batched" } else { "per_job" };
                let ratio = peers.iter().find(|p| p.0 == ack).map_or_else(
                    || "-".to_owned(),
                    |p| format!("{:.2}x", f.units_per_s / p.2),
                );
                println!(
                    "{:<8} {:>6} {:>8} {:>8} {:>10.0} {:>9} {:>10.0} {:>11} {:>7} {:>9.0} {:>6.2}",
                    mode,
                    r.tables,
                    r.replicas,
                    f.attempts,
                    f.units_per_s,
                    ratio,
                    f.wal_per_unit,
                    f.dead_tuples,
                    f.statements,
                    f.intake_per_s,
                    f.load1
                );
            }
        }
    }
    println!(
        "(K = {claimers} claimers per replica, {groups_per_claim} groups per claim, at most {max_per_table} statements in flight per table)"
    );
    Ok(())
}
