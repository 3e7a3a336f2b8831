//! Benchmark of the job table on real Postgres: intake throughput, and claim → record
//! throughput and claim latency with a large backlog. Prints figures; run with
//! `cargo bench --bench job_table` (needs the local Postgres; uses a throwaway database
//! `streamguard_bench`). `BENCH_UNITS` sets the backlog (default 20,000 units),
//! `BENCH_TABLES` how many tables share it (default 200), `BENCH_MAX_CLAIMS` stops the
//! claim phase early (default: drain the backlog).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;
use streamguard::domain::batch::BatchLimits;
use streamguard::domain::BatchRequest;
use streamguard::store::jobs::{AttemptLog, Verdict};
use streamguard::store::Store;

const URL: &str = "postgres://postgres@127.0.0.1:5432/streamguard_bench";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let units: usize = std::env::var("BENCH_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let tables = env("BENCH_TABLES", 200);
    let max_claims = env("BENCH_MAX_CLAIMS", usize::MAX);
    if Postgres::database_exists(URL).await? {
        Postgres::drop_database(URL).await?;
    }
    let store = Store::connect(URL, 10).await?;
    store.migrate().await?;

    // Intake: one batch per table, units/tables games each, 20 rows per game.
    let per_table = units / tables;
    // At most 50,000 rows per batch (the intake limit): fewer rows per unit for big tables.
    let rows_per_unit = (50_000 / per_table.max(1)).clamp(1, 20);
    let started = Instant::now();
    for t in 0..tables {
        let rows: Vec<_> = (0..per_table)
            .flat_map(|g| (0..rows_per_unit).map(move |p| json!({"game_id": format!("g{g}"), "game_date": "2026-01-24", "player": p, "points": p})))
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
        store.insert_batch(&batch, &t.to_be_bytes(), 8).await?;
    }
    let intake = started.elapsed();
    println!(
        "intake: {} units ({} rows) in {:.2?} = {:.0} units/s, {:.0} rows/s",
        tables * per_table,
        tables * per_table * rows_per_unit,
        intake,
        (tables * per_table) as f64 / intake.as_secs_f64(),
        (tables * per_table * rows_per_unit) as f64 / intake.as_secs_f64()
    );

    // Claim 8 at a time (one per table), record each as loaded, until the backlog is empty.
    let log = AttemptLog {
        replica: "bench".into(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
    };
    let verdict = Verdict::Loaded { rows_inserted: 20 };
    let mut claim_latencies = Vec::new();
    let mut record_latencies = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while claim_latencies.len() < max_claims {
        let t = Instant::now();
        let jobs = store.claim("bench", 8, 1, Duration::from_secs(30)).await?;
        claim_latencies.push(t.elapsed());
        if jobs.is_empty() {
            break;
        }
        for job in &jobs {
            let t = Instant::now();
            store.record(job, &verdict, &log).await?;
            record_latencies.push(t.elapsed());
        }
        done += jobs.len();
    }
    let elapsed = started.elapsed();
    claim_latencies.sort();
    record_latencies.sort();
    println!(
        "claim+record: {done} jobs in {elapsed:.2?} = {:.0} jobs/s (one process, sequential)",
        done as f64 / elapsed.as_secs_f64()
    );
    println!(
        "claim latency (8 jobs, backlog {units} → 0): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&claim_latencies, 0.5),
        percentile(&claim_latencies, 0.99),
        claim_latencies.last().copied().unwrap_or_default()
    );
    println!(
        "record latency: p50 {:.2?}, p99 {:.2?}",
        percentile(&record_latencies, 0.5),
        percentile(&record_latencies, 0.99)
    );
    store.pool().close().await;
    Postgres::drop_database(URL).await?;
    Ok(())
}
