//! Use cases: the service's operations, each with its rules in one place, shared by every
//! entry point. HTTP handlers parse a request, call one operation here and answer; the
//! scheduler's own attempts go through [`crate::scheduler`], and an operator's forced
//! attempt goes through the same scheduler code from here.
//!
//! | operation | module |
//! | --- | --- |
//! | intake of a batch: limits, sizes, schema, durable write | [`intake`] |
//! | a processor's conflict report and its later attempts, with or without a hand-over | [`report`] |
//! | an operator's resolve, retry-now and cancel | [`actions`] |
//! | an operator's force (and its dry run) | [`force`] |
//!
//! Errors are [`Error`]: what was refused and why, which `http` turns into problem+json.

pub mod actions;
pub mod force;
pub mod intake;
pub mod report;

use std::sync::Arc;

use crate::domain::batch::BatchLimits;
use crate::domain::{FieldError, RetryPolicy};
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::jobs::GroupBounds;
use crate::store::Store;
use crate::warehouse::Warehouse;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule or a limit; each problem with its JSON pointer.
    #[error("{detail}")]
    Invalid {
        /// Summary.
        detail: String,
        /// Each problem.
        errors: Vec<FieldError>,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Refused in the resource's current state.
    #[error("{0}")]
    Refused(String),
    /// A dependency (the warehouse) could not answer.
    #[error("{0}")]
    Unavailable(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the operations need: the store, the warehouse, the configured limits and retry
/// policy, and a scheduler for operators' forced attempts (built once, one key per
/// statement, no linger).
pub struct Ops {
    store: Store,
    warehouse: Arc<dyn Warehouse>,
    limits: BatchLimits,
    retry: RetryPolicy,
    lease: std::time::Duration,
    forcer: Scheduler,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("warehouse", &self.warehouse.kind())
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The replica name of operators' forced attempts in the attempt log and statements (the
/// job's lease names the operator: `operator:<name>`).
pub const FORCE_REPLICA: &str = "operator";

impl Ops {
    /// The operations over `store` and `warehouse`, with the configured `limits`, `retry`
    /// policy and `scheduler` settings (lease, statement timeout, per-table limit).
    pub fn new(
        store: Store,
        warehouse: Arc<dyn Warehouse>,
        limits: BatchLimits,
        retry: RetryPolicy,
        scheduler: &SchedulerSettings,
    ) -> Self {
        let forcer = Scheduler::new(
            store.clone(),
            warehouse.clone(),
            retry.clone(),
            SchedulerSettings {
                replica: FORCE_REPLICA.to_owned(),
                concurrency: 1,
                bounds: GroupBounds::SINGLE,
                linger: std::time::Duration::ZERO,
                ..scheduler.clone()
            },
        );
        Self {
            store,
            warehouse,
            limits,
            retry,
            lease: scheduler.lease,
            forcer,
        }
    }

    /// The input limits in force.
    pub fn limits(&self) -> &BatchLimits {
        &self.limits
    }

    /// The retry policy in force.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// An operator's reason (or note): trimmed, not blank, at most 2,000 characters.
///
/// # Errors
/// [`Error::Invalid`] naming `pointer` otherwise.
pub fn required_reason<'a>(value: &'a str, pointer: &str) -> Result<&'a str, Error> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > 2000 {
        return Err(Error::Invalid {
            detail: format!(
                "`{}` is required: say why, in up to 2,000 characters",
                pointer.trim_start_matches('/')
            ),
            errors: vec![FieldError::new(
                pointer,
                "required, not blank, at most 2,000 characters",
            )],
        });
    }
    Ok(v)
}
