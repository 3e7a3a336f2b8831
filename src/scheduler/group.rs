//! One round of a claimed group: ask the breakers, settle earlier statements of the
//! group's keys, then land the group in as few statements as the warehouse allows.
//!
//! **Breakers.** Each unit's scope is asked once. A unit the breaker holds is put back
//! unattempted. A half-open breaker's probe is sent alone first, so its outcome is its
//! own; the units of its scope claimed with it wait for that outcome in this round and
//! follow at once when the probe closes the breaker.
//!
//! **Settlement.** Before anything is sent for a key, every earlier statement that touched
//! it and may still run (`sent`, `running`, `unknown`) is settled with the warehouse: one
//! that landed is adopted (the units it carried are `loaded` by it, nothing is sent), one
//! still running is waited for (the units wait, unattempted, and the next claim asks
//! again), one refused or never arrived counts as not landed. So a key's statements run one
//! at a time, in order, even across a crash or a timeout.
//!
//! Sending, splitting and pacing statements: [`super::land`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Scheduler;
use crate::domain::breaker::Admission;
use crate::domain::lifecycle::Verdict;
use crate::domain::{ErrorClass, TableRef};
use crate::store::jobs::{AttemptLog, ClaimedJob, Recorded};
use crate::store::record::UnitVerdict;
use crate::store::statements::StatementState;
use crate::warehouse::Fate;

/// Statements one round may send while splitting a refused group.
pub const MAX_STATEMENTS_PER_ROUND: u32 = 64;

/// How long settlement waits for a statement still running before the units wait for the
/// next claim.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A unit's end in this round.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The unit.
    pub unit_id: Uuid,
    /// What its attempt came to.
    pub verdict: Verdict,
    /// What recording did; `None` when recording failed (logged).
    pub recorded: Option<Recorded>,
}

/// Job ids of the group whose lease was lost, as the renewer found them.
pub(super) type Lost = Arc<Mutex<HashSet<i64>>>;

impl Scheduler {
    /// Runs a claimed group (jobs of one table) to the end of its round and records every
    /// verdict. `forced` marks an operator's force-mode attempt (no breaker, resolution
    /// `force_mode`). Never fails: what cannot be recorded is logged, and the leases then
    /// expire and the jobs are claimed again.
    #[tracing::instrument(skip_all, fields(table = %table_ref, units = jobs.len()))]
    pub(crate) async fn run_group(
        &self,
        table_ref: &str,
        jobs: Vec<ClaimedJob>,
        forced: bool,
    ) -> Vec<Settled> {
        let lost: Lost = Arc::default();
        let stop = CancellationToken::new();
        // Cancels the renewer even when this future is dropped (an aborted round at
        // shutdown): a leaked renewer would keep dead attempts' leases alive for ever.
        let _stop_on_drop = stop.clone().drop_guard();
        let renewer = self.renew_in_background(&jobs, stop.clone(), lost.clone());
        let mut round = Round {
            scheduler: self,
            table_ref,
            forced,
            lost,
            settled: Vec::new(),
            started_at: self.store.clock().now(),
            open_partitions: HashSet::new(),
        };
        round.run(jobs).await;
        stop.cancel();
        let _ = renewer.await;
        round.settled
    }

    /// Renews the leases of `jobs` every third of the lease until `stop`.
    fn renew_in_background(
        &self,
        jobs: &[ClaimedJob],
        stop: CancellationToken,
        lost: Lost,
    ) -> tokio::task::JoinHandle<()> {
        let (store, lease) = (self.store.clone(), self.settings.lease);
        let claims: Vec<(i64, i32)> = jobs.iter().map(|j| (j.job_id, j.attempt)).collect();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(lease / 3) => {}
                }
                match store.renew_leases(&claims, lease).await {
                    Ok(gone) if gone.is_empty() => {}
                    Ok(gone) => {
                        tracing::warn!(jobs = ?gone, "leases lost while the warehouse works");
                        lost.lock().expect("lost-lease set").extend(gone);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing leases failed; trying again")
                    }
                }
            }
        })
    }
}

/// What became of an earlier statement, asked of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// It landed: the units it carried are adopted, not sent again.
    Landed,
    /// It may still run (or the warehouse could not say): its keys wait.
    Running,
    /// Refused, or never arrived (and now never will): it counts as not landed.
    NotLanded,
}

impl Scheduler {
    /// Asks the warehouse what became of `statement` (waiting up to [`SETTLE_WAIT`] for one
    /// still running) and records the answer on its statement record.
    pub(crate) async fn settle_statement(
        &self,
        table: &TableRef,
        statement: &crate::store::statements::Unsettled,
    ) -> Settlement {
        let fate = self
            .warehouse
            .statement_fate(table, &statement.job_id, SETTLE_WAIT)
            .await;
        let (settlement, state, outcome, error) = match &fate {
            Ok(Fate::Running) | Err(_) => {
                tracing::info!(job_id = %statement.job_id, error = ?fate.as_ref().err(),
                    "an earlier statement for these keys may still run; they wait for it");
                return Settlement::Running;
            }
            Ok(Fate::Landed(outcome)) => {
                tracing::info!(job_id = %statement.job_id, "an earlier statement landed; its units are adopted");
                (
                    Settlement::Landed,
                    StatementState::Done,
                    Some(outcome),
                    None,
                )
            }
            Ok(Fate::Failed(e)) => (
                Settlement::NotLanded,
                StatementState::Failed,
                None,
                Some((e.class().as_str(), e.to_string())),
            ),
            Ok(Fate::NeverArrived) => (
                Settlement::NotLanded,
                StatementState::Failed,
                None,
                Some(("transient", "the warehouse never received it".to_owned())),
            ),
        };
        let error = error.as_ref().map(|(c, m)| (*c, m.as_str()));
        if let Err(e) = self
            .store
            .finish_statement(statement.statement_id, state, outcome, error)
            .await
        {
            tracing::error!(error = %e, "recording a settled statement failed");
        }
        settlement
    }
}

/// A breaker's answer for one unit.
enum Gate {
    Run,
    Probe,
    Defer(DateTime<Utc>),
}

pub(super) struct Round<'a> {
    pub(super) scheduler: &'a Scheduler,
    pub(super) table_ref: &'a str,
    pub(super) forced: bool,
    pub(super) lost: Lost,
    pub(super) settled: Vec<Settled>,
    pub(super) started_at: DateTime<Utc>,
    /// Partitions a statement landed in this round: not blocked as a whole, so a refusal
    /// there is narrowed to its keys.
    pub(super) open_partitions: HashSet<String>,
}

impl Round<'_> {
    async fn run(&mut self, jobs: Vec<ClaimedJob>) {
        let table = match TableRef::parse(self.table_ref) {
            Ok(t) => t,
            Err(e) => {
                let verdicts = jobs.iter().map(|j| (j, permanent(&e.0))).collect();
                return self.record(verdicts, None).await;
            }
        };
        let mut gone = Vec::new();
        let (mut live, mut probes, mut behind_probe) = (Vec::new(), Vec::new(), Vec::new());
        for job in jobs {
            if job.state == "superseded" || job.state == "cancelled" {
                gone.push(job);
                continue;
            }
            if self.forced {
                live.push(job);
                continue;
            }
            match self.admission(&job).await {
                Gate::Run => live.push(job),
                Gate::Probe => probes.push(job),
                // The scope's probe is in this group: wait for its verdict, in this round.
                Gate::Defer(_) if probes.iter().any(|p| self.same_scope(p, &job)) => {
                    behind_probe.push(job)
                }
                Gate::Defer(at) => self.defer_for_breaker(&job, at).await,
            }
        }
        self.started_at = self.scheduler.store.clock().now();
        // A unit superseded or cancelled after an earlier statement carried it may still
        // have landed there: settle that first, so the unit says `loaded` when it did.
        let gone = self.settle(&table, gone).await;
        let verdicts = gone
            .iter()
            .map(|j| (j, permanent(&format!("{} before this attempt", j.state))))
            .collect();
        self.record(verdicts, None).await;
        if !probes.is_empty() {
            // A half-open breaker's probe goes alone, so its outcome is its own; when it
            // closes the breaker, the units of its scope claimed with it follow at once.
            let probes = self.settle(&table, probes).await;
            self.land(&table, probes).await;
            for job in behind_probe {
                match self.admission(&job).await {
                    Gate::Run | Gate::Probe => live.push(job),
                    Gate::Defer(at) => self.defer_for_breaker(&job, at).await,
                }
            }
        }
        let live = self.settle(&table, live).await;
        self.land(&table, live).await;
    }

    fn same_scope(&self, a: &ClaimedJob, b: &ClaimedJob) -> bool {
        let scope = &self.scheduler.store.config().breaker_scope;
        scope.of(&a.processor_name, &a.table_ref) == scope.of(&b.processor_name, &b.table_ref)
    }

    /// What the breaker of the job's scope says: run, run as the half-open probe, or wait
    /// until a time (an operator's bypass always runs).
    async fn admission(&self, job: &ClaimedJob) -> Gate {
        if job.bypass_breaker || !matches!(job.state.as_str(), "pending" | "deferred") {
            return Gate::Run;
        }
        let s = self.scheduler;
        let scope = s
            .store
            .config()
            .breaker_scope
            .of(&job.processor_name, &job.table_ref);
        match s.store.admit(scope, job.probe()).await {
            Ok(Admission::Run) => Gate::Run,
            Ok(Admission::Probe) => {
                tracing::info!(scope, unit_id = %job.unit_id, "breaker half-open: this unit is the probe");
                Gate::Probe
            }
            Ok(Admission::Defer(at)) => Gate::Defer(at),
            Err(e) => {
                // Without the breaker's answer, be conservative: wait one lease, ask again.
                tracing::error!(error = %e, "reading the breaker failed; job re-scheduled");
                Gate::Defer(
                    s.store.clock().now()
                        + chrono::Duration::from_std(s.settings.lease).unwrap_or_default(),
                )
            }
        }
    }

    /// Puts the job back, unattempted, until the breaker may let it through.
    async fn defer_for_breaker(&self, job: &ClaimedJob, at: DateTime<Utc>) {
        match self.scheduler.store.defer_for_breaker(job, at).await {
            Ok(true) => {
                tracing::info!(unit_id = %job.unit_id, next_attempt_at = %at, "breaker open: unit re-scheduled, not attempted")
            }
            Ok(false) => tracing::warn!("lease lost before the breaker deferral was recorded"),
            Err(e) => tracing::error!(error = %e, "re-scheduling for the breaker failed"),
        }
    }

    /// Settles every earlier statement that may still run and touches a key of `jobs`;
    /// returns the jobs still to send.
    async fn settle(&mut self, table: &TableRef, jobs: Vec<ClaimedJob>) -> Vec<ClaimedJob> {
        if jobs.is_empty() {
            return jobs;
        }
        let s = self.scheduler;
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.unit_id).collect();
        let unsettled = match s.store.unsettled_statements(self.table_ref, &ids).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "reading earlier statements failed; the group waits");
                self.put_back(&jobs, s.settings.poll_interval).await;
                return Vec::new();
            }
        };
        let (mut waiting, mut adopted) = (HashSet::new(), Vec::new());
        for statement in unsettled {
            if statement.landed {
                // Landed, its verdict never recorded: adopt the units it carried that still
                // wait (a loaded unit claimed again is a heal, and is sent again).
                let waiting: Vec<Uuid> = jobs
                    .iter()
                    .filter(|j| {
                        statement.carried.contains(&j.unit_id)
                            && matches!(
                                j.state.as_str(),
                                "pending" | "deferred" | "superseded" | "cancelled"
                            )
                    })
                    .map(|j| j.unit_id)
                    .collect();
                adopted.push((statement.statement_id, statement.job_id.clone(), waiting));
                continue;
            }
            match s.settle_statement(table, &statement).await {
                Settlement::Running => waiting.extend(statement.touches.iter().copied()),
                Settlement::Landed => adopted.push((
                    statement.statement_id,
                    statement.job_id.clone(),
                    statement.carried.clone(),
                )),
                Settlement::NotLanded => {}
            }
        }
        let mut rest = Vec::with_capacity(jobs.len());
        let mut held = Vec::new();
        for job in jobs {
            if let Some((id, job_id, _)) = adopted.iter().find(|a| a.2.contains(&job.unit_id)) {
                let (id, job_id) = (*id, job_id.clone());
                let rows = job.rows.as_array().map_or(0, Vec::len) as u64;
                let verdict = Verdict::Loaded {
                    rows_inserted: rows,
                };
                self.record(vec![(&job, verdict)], Some((id, &job_id)))
                    .await;
            } else if waiting.contains(&job.unit_id) {
                held.push(job);
            } else {
                rest.push(job);
            }
        }
        self.put_back(
            &held,
            s.settings
                .poll_interval
                .max(std::time::Duration::from_secs(1)),
        )
        .await;
        rest
    }

    /// Records verdicts of one statement (or of none) in one transaction.
    pub(super) async fn record(
        &mut self,
        verdicts: Vec<(&ClaimedJob, Verdict)>,
        statement: Option<(i64, &str)>,
    ) {
        if verdicts.is_empty() {
            return;
        }
        let s = self.scheduler;
        let log = AttemptLog {
            replica: s.settings.replica.clone(),
            started_at: self.started_at,
            finished_at: s.store.clock().now(),
        };
        let units: Vec<UnitVerdict<'_>> = verdicts
            .iter()
            .map(|(job, verdict)| UnitVerdict {
                job,
                verdict: verdict.clone(),
            })
            .collect();
        let recorded = match s
            .store
            .record_statement(&units, statement, &log, self.forced)
            .await
        {
            Ok(r) => r.into_iter().map(Some).collect(),
            Err(e) => {
                tracing::error!(error = %e, "recording the statement's verdicts failed; the jobs are claimed again when their leases expire");
                vec![None; units.len()]
            }
        };
        s.checkpoint(super::Checkpoint::Recorded).await;
        for ((job, verdict), recorded) in verdicts.into_iter().zip(recorded) {
            log_verdict(job, &verdict, recorded);
            self.settled.push(Settled {
                unit_id: job.unit_id,
                verdict,
                recorded,
            });
        }
    }

    /// Undoes the claims of `jobs` (no attempt counted); they run again after `after`.
    pub(super) async fn put_back(&self, jobs: &[ClaimedJob], after: std::time::Duration) {
        let store = &self.scheduler.store;
        let now = store.now().await.unwrap_or_else(|_| store.clock().now());
        let at = now + chrono::Duration::from_std(after).unwrap_or_default();
        for job in jobs {
            if let Err(e) = self.scheduler.store.put_back(job, at, false).await {
                tracing::error!(error = %e, unit_id = %job.unit_id, "putting a job back failed; it is claimed again when its lease expires");
            }
        }
    }
}

pub(super) fn permanent(message: &str) -> Verdict {
    Verdict::GiveUp {
        class: ErrorClass::Permanent,
        message: message.to_owned(),
    }
}

fn log_verdict(job: &ClaimedJob, verdict: &Verdict, recorded: Option<Recorded>) {
    let unit_id = job.unit_id;
    match (recorded, verdict) {
        (Some(Recorded::Applied(state)), Verdict::Loaded { rows_inserted }) => {
            tracing::info!(%unit_id, state, rows = rows_inserted, "unit loaded")
        }
        (
            Some(Recorded::Applied(state)),
            Verdict::Retry {
                class,
                at,
                delay_seconds,
                message,
            },
        ) => {
            tracing::info!(%unit_id, state, class = class.as_str(), next_attempt_at = %at, delay_seconds, error = %message, "unit deferred")
        }
        (Some(Recorded::Applied(state)), Verdict::GiveUp { class, message }) => {
            tracing::warn!(%unit_id, state, class = class.as_str(), error = %message, "unit given up")
        }
        (Some(Recorded::Superseded), _) => {
            tracing::info!(%unit_id, "unit was superseded during its attempt; nothing rescheduled")
        }
        (Some(Recorded::LeaseLost), _) => {
            tracing::warn!(%unit_id, "lease lost during the attempt (another replica re-claimed the job); result dropped")
        }
        (None, _) => {}
    }
}
