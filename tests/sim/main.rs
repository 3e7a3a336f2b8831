//! Deterministic simulation: thousands of random histories of processors, operators, two
//! replicas, crashes, expiring leases, injected warehouse faults and a moving clock, run
//! against the real scheduler, store (a fresh Postgres database) and emulator, each checked
//! against a model when it ends (see `world/check.rs` for the promises checked).
//!
//! - `cargo test --test sim` runs the regression cases, then `SIM_SEEDS` histories
//!   (default 1,000) from seed `SIM_FIRST` (default 0), on `SIM_WORKERS` worlds at once
//!   (default 4), and prints histories per second.
//! - A failing history is shrunk to a small one that still fails, then printed with its
//!   seed, its tables and database, its log and the broken promises (a failing run keeps
//!   its worlds' databases); `SIM_SEED=<seed> cargo test --test sim` replays that seed
//!   alone, up to `SIM_REPEAT` times (20) until it fails, since a race may need tries.
//!
//! A history is data drawn from its seed (`history.rs`), so it replays exactly; what the
//! real components do in it is deterministic up to the order Postgres serves concurrent
//! connections in (a replica's round runs its groups one at a time here, and only an
//! emulator statement cut off by a crash runs on beside the next step).

mod history;
mod regressions;
mod world;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions;

use history::{generate, show, shrink, Step};
use world::World;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}"))
    })
}

/// Namespaces for shrinking runs, apart from any seed's.
static SHRINK_NAMESPACE: AtomicU64 = AtomicU64::new(1 << 40);

/// Runs `seed`'s history in `world`; on a broken promise, shrinks it and returns the
/// report to print.
async fn check_seed(
    world: &World,
    seed: u64,
    tally: &Mutex<BTreeMap<&'static str, i64>>,
) -> Option<String> {
    let history = generate(seed);
    let mut run = world.run(seed, &history).await;
    // A replay runs the history again (in a fresh namespace) until it fails: a race
    // (a `Together` step, a statement outliving a killed round) may need a few tries.
    if let (Some(_), true) = (env_u64("SIM_SEED"), run.violations.is_empty()) {
        for _ in 1..env_u64("SIM_REPEAT").unwrap_or(20) {
            let n = SHRINK_NAMESPACE.fetch_add(1, Ordering::Relaxed);
            run = world.run(n, &history).await;
            if !run.violations.is_empty() {
                break;
            }
        }
    }
    {
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, v) in &run.tally {
            *tally.entry(k).or_default() += v;
        }
    }
    if run.violations.is_empty() {
        return None;
    }
    let shrunk = shrink(history.clone(), 150, |candidate: Vec<Step>| async move {
        let n = SHRINK_NAMESPACE.fetch_add(1, Ordering::Relaxed);
        !world.run(n, &candidate).await.violations.is_empty()
    })
    .await;
    let n = SHRINK_NAMESPACE.fetch_add(1, Ordering::Relaxed);
    let again = world.run(n, &shrunk).await;
    let (history, run) = if again.violations.is_empty() {
        (history, run) // the shrunk one passed when run again: show the original
    } else {
        (shrunk, again)
    };
    Some(format!(
        "seed {seed} broke a promise (replay: SIM_SEED={seed} cargo test --test sim; tables \
         sim-project.sim.h{}_t0/_t1, processor sim-h{}, in database {})\n\
         history ({} steps):\n{}log:\n  {}\nbroken:\n  {}\n",
        run.namespace(),
        run.namespace(),
        world.database(),
        history.len(),
        show(&history),
        run.log.join("\n  "),
        run.violations.join("\n  ")
    ))
}

/// World `i`'s database name. Postgres cuts names at 63 bytes: keep the test database's
/// distinct tail.
fn world_database_name(test: &PgConnectOptions, i: u64) -> String {
    let test_name = test.get_database().unwrap_or("streamguard_sim");
    let tail = &test_name[test_name.len().saturating_sub(20)..];
    format!("sim_w{i}_{tail}")
}

/// A fresh database for world `i` beside the test's own: worlds run at once on clocks of
/// their own, and one world's replicas must not claim another's jobs.
async fn database_of_its_own(test: &PgConnectOptions, i: u64) -> PgConnectOptions {
    let name = world_database_name(test, i);
    // An identifier cannot be a bind parameter; this one is made of the test database's
    // name (letters, digits, underscores) and a number.
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let mut conn = test.connect().await.expect("test database");
    for sql in [
        format!("drop database if exists \"{name}\" with (force)"),
        format!("create database \"{name}\""),
        // Durability across a Postgres crash is not what is simulated; waiting for every
        // commit's flush would make the simulation disk-bound.
        format!("alter database \"{name}\" set synchronous_commit = off"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("a database for a world");
    }
    // Loopback: TLS would only spend the simulation's time on encryption.
    test.clone()
        .database(&name)
        .ssl_mode(sqlx::postgres::PgSslMode::Disable)
}

#[sqlx::test]
async fn simulated_histories_keep_every_promise(_: PgPoolOptions, connect: PgConnectOptions) {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("SIM_FIRST").unwrap_or(0);
            let count = env_u64("SIM_SEEDS").unwrap_or(1_000);
            (first..first + count).collect()
        }
    };
    // One world replays one seed; four run the thousand.
    let default_workers = if env_u64("SIM_SEED").is_some() { 1 } else { 4 };
    let workers = env_u64("SIM_WORKERS").unwrap_or(default_workers).max(1);
    let mut worlds = Vec::new();
    for i in 0..workers {
        worlds.push(World::new(&database_of_its_own(&connect, i).await).await);
    }
    if env_u64("SIM_SEED").is_none() {
        for (i, (seed, found, history)) in regressions::cases().into_iter().enumerate() {
            let run = worlds[0].run((1 << 41) + i as u64, &history).await;
            assert!(
                run.violations.is_empty(),
                "regression case of seed {seed} ({found}) broke again:\n{}log:\n  {}\nbroken:\n  {}",
                show(&history),
                run.log.join("\n  "),
                run.violations.join("\n  ")
            );
        }
    }
    let next = AtomicU64::new(0);
    let tally = Mutex::new(BTreeMap::new());
    let started = Instant::now();
    let failures: Vec<String> = futures::future::join_all(worlds.iter().map(|world| {
        let (next, seeds, tally) = (&next, &seeds, &tally);
        async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                if let Some(report) = check_seed(world, seed, tally).await {
                    failures.push(report);
                    break; // one failure per world is enough to print
                }
            }
            failures
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let done = (next.load(Ordering::Relaxed) as usize).min(seeds.len());
    let seconds = started.elapsed().as_secs_f64();
    // Straight to stderr, past the test harness's capture: CI's log shows the figures of
    // a passing run too.
    let tally = tally.into_inner().unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(
        std::io::stderr(),
        "simulation: {done} histories in {seconds:.1} s ({:.1} histories/s, {workers} worlds), {} failed\n\
         simulation exercised: {}",
        done as f64 / seconds,
        failures.len(),
        tally
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for world in &worlds {
        world.close().await;
    }
    if failures.is_empty() {
        // A failure keeps the worlds' databases for a look; the next run drops them.
        let mut conn = connect.connect().await.expect("test database");
        for i in 0..workers {
            let name = world_database_name(&connect, i);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "drop database if exists \"{name}\" with (force)"
            )))
            .execute(&mut conn)
            .await
            .expect("dropping a world's database");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
