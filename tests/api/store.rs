//! The job table against real Postgres: claims, leases, fencing, rescue.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use streamguard::domain::batch::BatchLimits;
use streamguard::domain::{BatchRequest, ErrorClass};
use streamguard::store::jobs::{AttemptLog, GroupBounds, Recorded, Verdict};
use streamguard::store::Store;

async fn store_with_units(pool: PgPool, tables: usize, games_per_table: usize) -> Store {
    let store = Store::new(pool);
    store.migrate().await.unwrap();
    for t in 0..tables {
        let rows: Vec<_> = (0..games_per_table)
            .map(|g| json!({"game_id": format!("g{g}"), "points": 1}))
            .collect();
        let request: BatchRequest = serde_json::from_value(json!({
            "processor_name": "p",
            "table": format!("demo-project.nba.table_{t}"),
            "key_columns": ["game_id"],
            "rows": rows,
        }))
        .unwrap();
        let batch = request.validate(&BatchLimits::default()).unwrap();
        store.insert_batch(&batch, &[t as u8], 5).await.unwrap();
    }
    store
}

fn log() -> AttemptLog {
    AttemptLog {
        replica: "test".into(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
    }
}

const LEASE: Duration = Duration::from_secs(30);

#[sqlx::test]
async fn two_claimers_never_get_the_same_job(pool: PgPool) {
    let store = store_with_units(pool, 20, 3).await;

    let (a, b) = tokio::join!(
        store.claim("a", 15, 3, LEASE),
        store.claim("b", 15, 3, LEASE)
    );

    let (a, b) = (a.unwrap(), b.unwrap());
    let ids: HashSet<i64> = a.iter().chain(&b).map(|j| j.job_id).collect();
    assert_eq!(ids.len(), a.len() + b.len(), "no job handed out twice");
    assert_eq!(ids.len(), 30);
    assert!(a.iter().chain(&b).all(|j| j.attempt == 1));
}

#[sqlx::test]
async fn at_most_max_per_table_jobs_of_a_table_run_at_once(pool: PgPool) {
    let store = store_with_units(pool, 2, 4).await;

    let first = store.claim("a", 10, 1, LEASE).await.unwrap();
    assert_eq!(first.len(), 2, "one per table");
    assert_ne!(first[0].table_ref, first[1].table_ref);
    assert!(
        store.claim("b", 10, 1, LEASE).await.unwrap().is_empty(),
        "both tables are busy"
    );

    let done = &first[0];
    let verdict = Verdict::Loaded { rows_inserted: 1 };
    assert_eq!(
        store.record(done, &verdict, &log()).await.unwrap(),
        Recorded::Applied("loaded")
    );
    let next = store.claim("b", 10, 1, LEASE).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].table_ref, done.table_ref);
}

#[sqlx::test]
async fn an_expired_lease_is_reclaimed_and_the_old_claimer_is_fenced_out(pool: PgPool) {
    let store = store_with_units(pool, 1, 1).await;
    let stale = store.claim("a", 1, 1, LEASE).await.unwrap().remove(0);
    assert!(
        store.claim("b", 1, 1, LEASE).await.unwrap().is_empty(),
        "lease still valid"
    );
    // The replica died; its lease runs out (moved forward instead of waited for).
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second'")
        .execute(store.pool())
        .await
        .unwrap();

    let fresh = store.claim("b", 1, 1, LEASE).await.unwrap().remove(0);

    assert_eq!(fresh.job_id, stale.job_id);
    assert_eq!(fresh.attempt, 2);
    assert!(!store
        .renew_lease(stale.job_id, stale.attempt, LEASE)
        .await
        .unwrap());
    assert!(store
        .renew_lease(fresh.job_id, fresh.attempt, LEASE)
        .await
        .unwrap());
    let loaded = Verdict::Loaded { rows_inserted: 1 };
    assert_eq!(
        store.record(&stale, &loaded, &log()).await.unwrap(),
        Recorded::LeaseLost
    );
    let retry = Verdict::Retry {
        class: ErrorClass::StreamingBuffer,
        message: "would affect rows in the streaming buffer".into(),
        at: Utc::now(),
        delay_seconds: 0,
    };
    assert_eq!(
        store.record(&fresh, &retry, &log()).await.unwrap(),
        Recorded::Applied("deferred")
    );
    // The result of the re-claimed attempt stands; a late write of the stale one is dropped.
    assert_eq!(
        store.record(&stale, &loaded, &log()).await.unwrap(),
        Recorded::LeaseLost
    );
    let state: String = sqlx::query_scalar("select state from write_units")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state, "deferred");
}

#[sqlx::test]
async fn a_job_is_not_due_before_its_run_at(pool: PgPool) {
    let store = store_with_units(pool, 1, 1).await;
    let job = store.claim("a", 1, 1, LEASE).await.unwrap().remove(0);
    let later = Utc::now() + chrono::Duration::seconds(60);
    let retry = Verdict::Retry {
        class: ErrorClass::StreamingBuffer,
        message: "buffer".into(),
        at: later,
        delay_seconds: 60,
    };
    store.record(&job, &retry, &log()).await.unwrap();

    assert!(store.claim("a", 1, 1, LEASE).await.unwrap().is_empty());

    sqlx::query("update jobs set run_at = now()")
        .execute(store.pool())
        .await
        .unwrap();
    let again = store.claim("a", 1, 1, LEASE).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    assert!(
        again[0].conflict_id.is_some(),
        "the conflict opened by attempt 1 travels with the job"
    );
}

/// One table, `games` keys over `days` partitions.
async fn store_with_partitions(pool: PgPool, games: usize, days: usize) -> Store {
    let store = Store::new(pool);
    store.migrate().await.unwrap();
    let rows: Vec<_> = (0..games)
        .map(|g| json!({"game_id": format!("g{g}"), "game_date": format!("2026-01-{:02}", 1 + g % days), "points": 1}))
        .collect();
    let request: BatchRequest = serde_json::from_value(json!({
        "processor_name": "p",
        "table": "demo-project.nba.games",
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": rows,
    }))
    .unwrap();
    let batch = request.validate(&BatchLimits::default()).unwrap();
    store.insert_batch(&batch, &[1], 5).await.unwrap();
    store
}

#[sqlx::test]
async fn a_group_respects_its_key_partition_and_byte_bounds(pool: PgPool) {
    let store = store_with_partitions(pool, 12, 4).await;
    let claim = |bounds: GroupBounds| {
        let store = store.clone();
        async move {
            let groups = store
                .claim_groups("a", 1, &bounds, 1, LEASE, Duration::ZERO)
                .await
                .unwrap();
            assert!(groups.len() <= 1);
            let jobs = groups.into_iter().flat_map(|g| g.jobs).collect::<Vec<_>>();
            // Put them back for the next claim.
            sqlx::query(
                "update jobs set state = 'available', lease_expires_at = null, group_id = null",
            )
            .execute(store.pool())
            .await
            .unwrap();
            jobs
        }
    };
    let keys = claim(GroupBounds {
        max_keys: 5,
        ..GroupBounds::DEFAULT
    })
    .await;
    assert_eq!(keys.len(), 5);
    let two_days = claim(GroupBounds {
        max_partitions: 2,
        ..GroupBounds::DEFAULT
    })
    .await;
    let days: HashSet<String> = two_days
        .iter()
        .map(|j| j.partition_value.as_ref().unwrap().to_string())
        .collect();
    assert_eq!((two_days.len(), days.len()), (6, 2));
    // One unit's rows are about 70 bytes of JSON: 150 bytes hold two.
    let small = claim(GroupBounds {
        max_bytes: 150,
        ..GroupBounds::DEFAULT
    })
    .await;
    assert_eq!(small.len(), 2);
    // A unit over the byte bound still forms a group alone.
    let one = claim(GroupBounds {
        max_bytes: 1,
        ..GroupBounds::DEFAULT
    })
    .await;
    assert_eq!(one.len(), 1);
    // Every job of one claim is one group, of one table.
    let all = claim(GroupBounds::DEFAULT).await;
    assert_eq!(all.len(), 12);
}

#[sqlx::test]
async fn the_per_table_limit_counts_statements_not_keys(pool: PgPool) {
    let store = store_with_partitions(pool, 12, 4).await;
    let bounds = GroupBounds {
        max_keys: 4,
        ..GroupBounds::DEFAULT
    };
    let first = store
        .claim_groups("a", 10, &bounds, 2, LEASE, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|g| g.jobs.len()).collect::<Vec<_>>(),
        vec![4, 4]
    );
    assert!(
        store
            .claim_groups("b", 10, &bounds, 2, LEASE, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "two statements of the table are in flight"
    );
}

/// Waits until another session of this database is blocked on a row lock (a claim that
/// reached the job a second connection holds), so the interleaving is fixed, not timed.
async fn until_a_claim_waits_on_a_lock(pool: &PgPool) {
    crate::helpers::eventually(Duration::from_secs(10), "a claim blocked on the job's row lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock' and query ilike '%jobs%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
}

/// Issue 10, "a completed job is claimed and run again": a claim chose a due job; before
/// its update locked the row, the job was completed (by a recording, an operator action)
/// and that commit landed while the claim waited for the row. The claim must re-check
/// what it locks and leave the completed job alone.
#[sqlx::test]
async fn a_job_completed_while_the_claim_waits_for_its_row_is_not_claimed(pool: PgPool) {
    let store = store_with_units(pool.clone(), 1, 1).await;
    let job_id: i64 = sqlx::query_scalar("select job_id from jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    // A second connection completes the job and holds the row until told to commit.
    let mut completion = pool.begin().await.unwrap();
    sqlx::query("update jobs set state = 'completed', updated_at = now() where job_id = $1")
        .bind(job_id)
        .execute(&mut *completion)
        .await
        .unwrap();

    // The claim still sees the committed row (available, due), chooses it, and blocks on
    // the row lock in its update.
    let claimer = store.clone();
    let claim = tokio::spawn(async move { claimer.claim("b", 1, 1, LEASE).await });
    until_a_claim_waits_on_a_lock(&pool).await;
    completion.commit().await.unwrap();

    let claimed = claim.await.unwrap().unwrap();
    assert!(
        claimed.is_empty(),
        "the completed job was claimed: {claimed:?}"
    );
    let (state, attempt): (String, i32) =
        sqlx::query_as("select state, attempt from jobs where job_id = $1")
            .bind(job_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempt), ("completed", 0));
}

/// The issue's own history: a worker's lease ran out while its statement ran; its fenced
/// completion commits while a claim is rescuing expired leases. The claim must neither
/// take the job again nor log the finished attempt as lost.
#[sqlx::test]
async fn a_completion_that_commits_during_the_rescue_of_its_lease_wins(pool: PgPool) {
    let store = store_with_units(pool.clone(), 1, 1).await;
    let stale = store.claim("a", 1, 1, LEASE).await.unwrap().remove(0);
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    // The worker's fenced completion, held open at the point of commit.
    let mut completion = pool.begin().await.unwrap();
    let fenced = sqlx::query(
        "update jobs set state = 'completed', lease_expires_at = null, updated_at = now()
         where job_id = $1 and attempt = $2 and state = 'running'",
    )
    .bind(stale.job_id)
    .bind(stale.attempt)
    .execute(&mut *completion)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(fenced, 1);

    let claimer = store.clone();
    let claim = tokio::spawn(async move { claimer.claim("b", 1, 1, LEASE).await });
    until_a_claim_waits_on_a_lock(&pool).await;
    completion.commit().await.unwrap();

    let claimed = claim.await.unwrap().unwrap();
    assert!(
        claimed.is_empty(),
        "the completed job was claimed again: {claimed:?}"
    );
    let (state, attempt): (String, i32) =
        sqlx::query_as("select state, attempt from jobs where job_id = $1")
            .bind(stale.job_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempt), ("completed", 1));
    let lost: i64 = sqlx::query_scalar("select count(*) from attempts where outcome = 'lost'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lost, 0, "a finished attempt was logged as lost");
}
