//! The scheduler: runs in every replica, claims groups of due jobs from the job table,
//! lands each group in as few warehouse statements as it can, and records the verdicts.
//!
//! - [`Scheduler::run`] is the worker loop: it wakes on `LISTEN streamguard_jobs` (intake
//!   notifies on commit), on a finished round, or on the poll interval; a semaphore bounds
//!   groups in flight; on shutdown it stops claiming and drains in-flight rounds under a
//!   timeout (a round cut off then is claimed again when its leases expire).
//! - [`Scheduler::run_once`] claims and runs one round to completion, so tests can drive the
//!   scheduler without timers.
//!
//! A round (`group`) asks each unit's circuit breaker, settles earlier statements of its
//! keys, then sends statements, splitting a refused group to land every part that can.
//! Every few seconds a replica also closes processor-reported conflicts that nobody ended
//! within the retry horizon.
//!
//! Correctness rests on the store: claims are committed before the warehouse is called,
//! leases are renewed while a round runs, every write after the claim is fenced on the
//! attempt number, and a statement is recorded before it is sent, so its fate is settled
//! before another statement touches its keys.

pub mod checkpoint;
mod group;
mod land;
pub mod listen;

pub use checkpoint::{Checkpoint, Checkpoints};
pub use group::{Settled, MAX_STATEMENTS_PER_ROUND};
pub use listen::{ListenState, ListenStatus};

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::lifecycle::Verdict;
use crate::domain::RetryPolicy;
use crate::store::jobs::{ClaimedGroup, ClaimedJob, GroupBounds, Recorded};
use crate::store::{Store, JOBS_CHANNEL};
use crate::warehouse::Warehouse;

/// How often a replica closes processor-reported conflicts that outlived the retry horizon.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Fallback poll interval unless set (`STREAMGUARD_POLL_INTERVAL`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Lease of a claimed job unless set (`STREAMGUARD_LEASE`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Groups in flight per replica unless set (`STREAMGUARD_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Statements in flight per table unless set (`STREAMGUARD_MAX_PER_TABLE`).
pub const DEFAULT_MAX_PER_TABLE: u32 = 1;
/// How long units wait to share a statement unless set (`STREAMGUARD_LINGER`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(200);
/// How long a round waits for a statement unless set (`STREAMGUARD_STATEMENT_TIMEOUT`).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long shutdown waits for in-flight attempts and requests unless set
/// (`STREAMGUARD_SHUTDOWN_TIMEOUT`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for SchedulerSettings {
    /// Every default; `replica` is empty until the application names it.
    fn default() -> Self {
        Self {
            replica: String::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            lease: DEFAULT_LEASE,
            concurrency: DEFAULT_CONCURRENCY,
            max_per_table: DEFAULT_MAX_PER_TABLE,
            bounds: GroupBounds::DEFAULT,
            linger: DEFAULT_LINGER,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// How the scheduler works; the application fills it from its settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// This replica's name in leases and attempt logs.
    pub replica: String,
    /// Fallback poll interval when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claim is valid without renewal; renewed every third of it.
    pub lease: Duration,
    /// Groups (statements) in flight in this replica.
    pub concurrency: u32,
    /// Statements in flight per BigQuery table across all replicas (BigQuery serialises DML
    /// per table; more only earns `concurrent_dml` conflicts). Default 1.
    pub max_per_table: u32,
    /// What one statement may carry.
    pub bounds: GroupBounds,
    /// How old a table's oldest due job must be before its group is claimed, so that
    /// batches posted in quick succession share a statement.
    pub linger: Duration,
    /// How long a round waits for one statement's answer; past it the statement's fate is
    /// unknown and is settled before the next statement for its keys.
    pub statement_timeout: Duration,
    /// How long shutdown waits for in-flight attempts.
    pub shutdown_timeout: Duration,
}

/// Claims due jobs and runs their attempts.
pub struct Scheduler {
    store: Store,
    warehouse: Arc<dyn Warehouse>,
    policy: RetryPolicy,
    settings: SchedulerSettings,
    listen: ListenStatus,
    checkpoints: Option<Arc<dyn Checkpoints>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("warehouse", &self.warehouse.kind())
            .field("policy", &self.policy)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
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
            listen: ListenStatus::connecting(),
            checkpoints: None,
        }
    }

    /// The same scheduler, calling `checkpoints` at each [`Checkpoint`] of its rounds (the
    /// simulation's hook; see [`checkpoint`]).
    pub fn with_checkpoints(self, checkpoints: Arc<dyn Checkpoints>) -> Self {
        Self {
            checkpoints: Some(checkpoints),
            ..self
        }
    }

    /// Calls the installed checkpoints, if any.
    async fn checkpoint(&self, at: Checkpoint) {
        if let Some(c) = &self.checkpoints {
            c.reached(&self.settings.replica, at).await;
        }
    }

    /// The state of this scheduler's LISTEN connection (shown by `/readyz` and `/metrics`).
    pub fn listen_status(&self) -> ListenStatus {
        self.listen.clone()
    }

    /// Claims up to `concurrency` groups of due jobs (without waiting for the linger) and
    /// runs them to completion, concurrently. Returns how many jobs were claimed (0:
    /// nothing was due).
    ///
    /// # Errors
    /// When the claim itself fails; a failed attempt is recorded, not returned.
    pub async fn run_once(&self) -> Result<usize, crate::store::Error> {
        let groups = self
            .claim(self.settings.concurrency, Duration::ZERO)
            .await?;
        let n = groups.iter().map(|g| g.jobs.len()).sum();
        if n > 0 {
            self.checkpoint(Checkpoint::Claimed).await;
        }
        futures::future::join_all(
            groups
                .into_iter()
                .map(|g| async move { self.run_group(&g.table_ref, g.jobs, false).await }),
        )
        .await;
        Ok(n)
    }

    /// Runs one claimed job alone — an operator's forced attempt when `forced` — and
    /// records it. Returns its verdict and what recording did; `None` when it was not
    /// attempted (held, waiting for an earlier statement) or recording failed.
    pub(crate) async fn attempt_and_record(
        &self,
        job: ClaimedJob,
        forced: bool,
    ) -> Option<(Verdict, Recorded)> {
        let table = job.table_ref.clone();
        self.run_group(&table, vec![job], forced)
            .await
            .pop()
            .and_then(|s| s.recorded.map(|r| (s.verdict, r)))
    }

    async fn claim(
        &self,
        groups: u32,
        linger: Duration,
    ) -> Result<Vec<ClaimedGroup>, crate::store::Error> {
        self.store
            .claim_groups(
                &self.settings.replica,
                groups,
                &self.settings.bounds,
                self.settings.max_per_table,
                self.settings.lease,
                linger,
            )
            .await
    }

    /// The worker loop; returns when `shutdown` is cancelled and in-flight attempts have
    /// drained (or the drain timeout passed).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut listener = listen(&self.store, &self.listen).await;
        let permits = Arc::new(Semaphore::new(self.settings.concurrency as usize));
        let mut tasks = JoinSet::new();
        tracing::info!(replica = %self.settings.replica, warehouse = self.warehouse.kind(), "scheduler started");
        let mut last_sweep = tokio::time::Instant::now();
        let mut notified = false;
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                // Lost or never made: try again once per wake-up, outside the select so
                // that another branch winning cannot cut a connection attempt short.
                listener = listen(&self.store, &self.listen).await;
            }
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
            let mut claimed_none = false;
            if free > 0 {
                match self.claim(free, self.settings.linger).await {
                    Ok(groups) => {
                        claimed_all = groups.len() as u32 == free;
                        claimed_none = groups.is_empty();
                        for group in groups {
                            let permit = permits
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("semaphore is never closed");
                            let this = self.clone();
                            tasks.spawn(async move {
                                this.run_group(&group.table_ref, group.jobs, false).await;
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
            // Woken by new jobs that were still lingering: look again when the linger is
            // over, not a whole poll interval later.
            let wait = if std::mem::take(&mut notified) && claimed_none {
                self.settings.linger.min(self.settings.poll_interval)
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                notification = recv(&mut listener, &self.listen) => {
                    notified = notification.is_ok();
                    if let Err(e) = notification {
                        tracing::warn!(error = %e, "LISTEN connection failed; polling only until it reconnects on a later wake-up");
                        self.listen.reconnecting();
                        tokio::time::sleep(self.settings.poll_interval).await;
                    }
                }
                () = tokio::time::sleep(wait) => {}
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

/// How long one attempt to open the LISTEN connection may take.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the LISTEN connection and records the outcome in `status`; `None` when it could
/// not be made (the scheduler polls meanwhile).
async fn listen(store: &Store, status: &ListenStatus) -> Option<PgListener> {
    let connect = async {
        let mut l = PgListener::connect_with(store.pool()).await?;
        l.listen(JOBS_CHANNEL).await?;
        Ok::<_, sqlx::Error>(l)
    };
    match tokio::time::timeout(LISTEN_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(l)) => {
            status.connected();
            Some(l)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no LISTEN connection; polling only until it can be made");
            status.reconnecting();
            None
        }
        Err(_) => {
            tracing::warn!(timeout = ?LISTEN_CONNECT_TIMEOUT, "opening the LISTEN connection timed out; polling only until it can be made");
            status.reconnecting();
            None
        }
    }
}

/// Waits for the next notification on the LISTEN connection (forever without one) and
/// keeps `status` up to date. An error means the connection was lost and not
/// re-established: `listener` is emptied, and the loop opens a new one on a later wake-up.
async fn recv(listener: &mut Option<PgListener>, status: &ListenStatus) -> Result<(), sqlx::Error> {
    let Some(l) = listener else {
        return std::future::pending().await;
    };
    loop {
        // `try_recv` answers `None` when the connection was lost and re-established.
        match l.try_recv().await {
            Ok(Some(_)) => {
                status.notified();
                return Ok(());
            }
            Ok(None) => status.reconnected(),
            Err(e) => {
                // Start over with a new connection on a later wake-up, so that its
                // success is seen (and counted) rather than hidden inside the listener.
                *listener = None;
                return Err(e);
            }
        }
    }
}
