//! The scheduler: runs in every replica, claims due jobs from the job table, attempts each
//! unit's replace in the warehouse, and records the verdict.
//!
//! - [`Scheduler::run`] is the worker loop: it wakes on `LISTEN streamguard_jobs` (intake
//!   notifies on commit), on a finished attempt, or on the poll interval; a semaphore bounds
//!   attempts in flight; on shutdown it stops claiming and drains in-flight attempts under a
//!   timeout (an attempt cut off then is claimed again when its lease expires).
//! - [`Scheduler::run_once`] claims and runs one round to completion, so tests can drive the
//!   scheduler without timers.
//!
//! Before an attempt, the scope's circuit breaker is asked (one read, or one
//! compare-and-swap when the job takes the half-open permit); a job it turns away is put
//! back without counting an attempt. Every few seconds a replica also closes
//! processor-reported conflicts that nobody ended within the retry horizon.
//!
//! Correctness rests on the store: claims are committed before the warehouse is called,
//! leases are renewed while an attempt runs, and every write after the claim is fenced on
//! the attempt number. A replace is atomic and idempotent, so re-running an attempt whose
//! result was lost (a killed process) writes the same rows once.

mod attempt;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::RetryPolicy;
use crate::store::{Store, JOBS_CHANNEL};
use crate::warehouse::Warehouse;

/// How often a replica closes processor-reported conflicts that outlived the retry horizon.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// How the scheduler works (all from [`crate::config::Settings`]).
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// This replica's name in leases and attempt logs.
    pub replica: String,
    /// Fallback poll interval when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claim is valid without renewal; renewed every third of it.
    pub lease: Duration,
    /// Attempts in flight in this replica.
    pub concurrency: u32,
    /// Replaces in flight per BigQuery table across all replicas (BigQuery serialises DML
    /// per table; more only earns `concurrent_dml` conflicts). Default 1.
    pub max_per_table: u32,
    /// How long shutdown waits for in-flight attempts.
    pub shutdown_timeout: Duration,
}

/// Claims due jobs and runs their attempts.
pub struct Scheduler {
    store: Store,
    warehouse: Arc<dyn Warehouse>,
    policy: RetryPolicy,
    settings: SchedulerSettings,
}

impl Scheduler {
    /// A scheduler over the store and warehouse.
    pub fn new(
        store: Store,
        warehouse: Arc<dyn Warehouse>,
        policy: RetryPolicy,
        settings: SchedulerSettings,
    ) -> Self {
        Self {
            store,
            warehouse,
            policy,
            settings,
        }
    }

    /// Claims up to `concurrency` due jobs and runs them to completion, concurrently.
    /// Returns how many were attempted (0: nothing was due).
    ///
    /// # Errors
    /// When the claim itself fails; a failed attempt is recorded, not returned.
    pub async fn run_once(&self) -> Result<usize, crate::store::Error> {
        let jobs = self
            .store
            .claim(
                &self.settings.replica,
                self.settings.concurrency,
                self.settings.max_per_table,
                self.settings.lease,
            )
            .await?;
        let n = jobs.len();
        futures::future::join_all(jobs.into_iter().map(|job| self.attempt(job))).await;
        Ok(n)
    }

    /// The worker loop; returns when `shutdown` is cancelled and in-flight attempts have
    /// drained (or the drain timeout passed).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut listener = match PgListener::connect_with(self.store.pool()).await {
            Ok(mut l) => match l.listen(JOBS_CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN failed; polling only");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no LISTEN connection; polling only");
                None
            }
        };
        let permits = Arc::new(Semaphore::new(self.settings.concurrency as usize));
        let mut tasks = JoinSet::new();
        tracing::info!(replica = %self.settings.replica, warehouse = self.warehouse.kind(), "scheduler started");
        let mut last_sweep = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if last_sweep.elapsed() >= SWEEP_INTERVAL {
                last_sweep = tokio::time::Instant::now();
                match self.store.close_stale_reported_conflicts().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(closed = n, "processor-reported conflicts not ended within the retry horizon closed as timeout"),
                    Err(e) => tracing::warn!(error = %e, "closing stale processor-reported conflicts failed"),
                }
            }
            let free = permits.available_permits() as u32;
            let mut claimed_all = false;
            if free > 0 {
                match self
                    .store
                    .claim(
                        &self.settings.replica,
                        free,
                        self.settings.max_per_table,
                        self.settings.lease,
                    )
                    .await
                {
                    Ok(jobs) => {
                        claimed_all = jobs.len() as u32 == free;
                        for job in jobs {
                            let permit = permits
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("semaphore is never closed");
                            let this = self.clone();
                            tasks.spawn(async move {
                                this.attempt(job).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "claiming jobs failed"),
                }
            }
            if claimed_all {
                continue; // more may be due right now
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                notification = recv(&mut listener) => {
                    if let Err(e) = notification {
                        tracing::warn!(error = %e, "LISTEN connection failed; it reconnects on the next wake-up");
                        tokio::time::sleep(self.settings.poll_interval).await;
                    }
                }
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, timeout = ?self.settings.shutdown_timeout, "draining in-flight attempts");
        }
        let drained = tokio::time::timeout(self.settings.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "drain timed out; their leases expire and another claim picks them up"
            );
            tasks.abort_all();
        }
        tracing::info!("scheduler stopped");
    }
}

async fn recv(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(drop),
        None => std::future::pending().await,
    }
}
