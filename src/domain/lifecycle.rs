//! The unit lifecycle: what an attempt's verdict does to a write unit — its next state,
//! its conflict, the alert, the breaker's count and the job — decided in one pure function,
//! [`decide`], that the store applies in the transaction of the statement's outcome.
//!
//! ```text
//! pending ─┬─ landed ─────────────────────────────▶ loaded   (conflict resolved auto_retry / force_mode)
//! deferred ┼─ refused, time cures, budget left ───▶ deferred (conflict opened or updated; job re-scheduled)
//!          ├─ refused, time cures, budget spent ──▶ unresolved when it had a conflict (timeout; alert
//!          │                                        conflict_timeout), else failed (alert unit_failed)
//!          └─ refused, permanent ─────────────────▶ failed   (alert unit_failed)
//! superseded / cancelled while the attempt ran ───▶ unchanged, or loaded when the attempt landed
//!                                                   (its rows are in the table until the newer
//!                                                   unit lands); the job ends
//! ```
//!
//! The breaker counts one outcome per unit and attempt: landed, or refused for the streaming
//! buffer (the seed's rate is "games that conflict"). Quota and concurrent-DML answers slow
//! the table down (pacing) and do not move a breaker; they still open a conflict, so an
//! operator sees them.

use chrono::{DateTime, Utc};

use super::breaker::Outcome;
use super::{ConflictType, ErrorClass, ResolutionMethod, UnitState};

/// How an attempt ended, as the scheduler decided it from the warehouse's answer and the
/// retry policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The replace landed.
    Loaded {
        /// Rows written.
        rows_inserted: u64,
    },
    /// Refused for a reason time may cure; try again at `at`.
    Retry {
        /// Why.
        class: ErrorClass,
        /// The warehouse's message.
        message: String,
        /// When to try again.
        at: DateTime<Utc>,
        /// The chosen delay, seconds.
        delay_seconds: i32,
    },
    /// Refused, and the scheduler will not try again: attempts used up for a retryable
    /// class, or a permanent error.
    GiveUp {
        /// Why.
        class: ErrorClass,
        /// The warehouse's message.
        message: String,
    },
}

impl Verdict {
    /// The error class of a refusal; `None` when it landed.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Self::Loaded { .. } => None,
            Self::Retry { class, .. } | Self::GiveUp { class, .. } => Some(*class),
        }
    }

    /// The warehouse's message of a refusal.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Loaded { .. } => None,
            Self::Retry { message, .. } | Self::GiveUp { message, .. } => Some(message),
        }
    }
}

/// An attempt row's `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The replace landed.
    Loaded,
    /// Refused for a conflict class (streaming buffer, concurrent DML, quota).
    Conflict,
    /// Refused for an unknown or server-side reason.
    Transient,
    /// Refused for good.
    Failed,
    /// The unit was superseded or cancelled; its attempt did not land.
    Superseded,
    /// The replica running it stopped and its lease expired.
    Lost,
}

impl AttemptOutcome {
    /// The name stored in `attempts.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Conflict => "conflict",
            Self::Transient => "transient",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::Lost => "lost",
        }
    }
}

/// What happens to the unit's conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictStep {
    /// Nothing.
    Keep,
    /// Open the unit's conflict of this type, or update the open one.
    Record(ConflictType),
    /// Close the open conflict, if any, as resolved by this method.
    Resolve(ResolutionMethod),
    /// Record this refusal on the conflict, then close it as given up (`timeout`).
    GiveUp(ConflictType),
}

/// The alert an outcome raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The retry policy gave up on a conflict.
    ConflictTimeout,
    /// A unit failed.
    UnitFailed,
}

impl AlertKind {
    /// The alert `kind` in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConflictTimeout => "conflict_timeout",
            Self::UnitFailed => "unit_failed",
        }
    }
}

/// What to do with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStep {
    /// Nothing more to do.
    Complete,
    /// Run again at this time.
    RunAt(DateTime<Utc>),
}

/// Everything an attempt's verdict changes, for the store to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The unit's state afterwards (unchanged for a superseded unit that did not land).
    pub state: UnitState,
    /// The attempt row's outcome.
    pub outcome: AttemptOutcome,
    /// The conflict's step.
    pub conflict: ConflictStep,
    /// The alert to queue.
    pub alert: Option<AlertKind>,
    /// What the breaker counts (`None`: nothing; a half-open permit held is released).
    pub breaker: Option<Outcome>,
    /// The job's step.
    pub job: JobStep,
}

/// Decides what `verdict` does to a unit that is `current` now, that had an open conflict
/// when `has_conflict`, for an attempt an operator `forced` (a landed forced attempt
/// resolves as `force_mode`).
pub fn decide(current: UnitState, has_conflict: bool, verdict: &Verdict, forced: bool) -> Decision {
    let breaker = match verdict {
        Verdict::Loaded { .. } => Some(Outcome::Landed),
        _ if verdict.class() == Some(ErrorClass::StreamingBuffer) => Some(Outcome::Conflict),
        _ => None,
    };
    let conflict_type = verdict.class().and_then(ErrorClass::conflict_type);
    let outcome = match verdict {
        Verdict::Loaded { .. } => AttemptOutcome::Loaded,
        Verdict::GiveUp {
            class: ErrorClass::Permanent,
            ..
        } => AttemptOutcome::Failed,
        _ if conflict_type.is_some() => AttemptOutcome::Conflict,
        _ => AttemptOutcome::Transient,
    };
    if matches!(current, UnitState::Superseded | UnitState::Cancelled) {
        let landed = matches!(verdict, Verdict::Loaded { .. });
        return Decision {
            state: if landed { UnitState::Loaded } else { current },
            outcome: if landed {
                AttemptOutcome::Loaded
            } else {
                AttemptOutcome::Superseded
            },
            conflict: ConflictStep::Keep,
            alert: None,
            breaker,
            job: JobStep::Complete,
        };
    }
    match verdict {
        Verdict::Loaded { .. } => Decision {
            state: UnitState::Loaded,
            outcome,
            conflict: ConflictStep::Resolve(if forced {
                ResolutionMethod::ForceMode
            } else {
                ResolutionMethod::AutoRetry
            }),
            alert: None,
            breaker,
            job: JobStep::Complete,
        },
        Verdict::Retry { at, .. } => Decision {
            state: UnitState::Deferred,
            outcome,
            conflict: conflict_type.map_or(ConflictStep::Keep, ConflictStep::Record),
            alert: None,
            breaker,
            job: JobStep::RunAt(*at),
        },
        Verdict::GiveUp { class, .. } => {
            let unresolved =
                *class != ErrorClass::Permanent && (has_conflict || conflict_type.is_some());
            Decision {
                state: if unresolved {
                    UnitState::Unresolved
                } else {
                    UnitState::Failed
                },
                outcome,
                conflict: match (unresolved, conflict_type) {
                    (true, Some(t)) => ConflictStep::GiveUp(t),
                    (true, None) => ConflictStep::Resolve(ResolutionMethod::Timeout),
                    (false, _) => ConflictStep::Keep,
                },
                alert: Some(if unresolved {
                    AlertKind::ConflictTimeout
                } else {
                    AlertKind::UnitFailed
                }),
                breaker,
                job: JobStep::Complete,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(class: ErrorClass) -> Verdict {
        Verdict::Retry {
            class,
            message: "m".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            delay_seconds: 300,
        }
    }

    fn give_up(class: ErrorClass) -> Verdict {
        Verdict::GiveUp {
            class,
            message: "m".into(),
        }
    }

    #[test]
    fn a_landed_attempt_loads_the_unit_and_resolves_its_conflict() {
        let loaded = Verdict::Loaded { rows_inserted: 3 };
        let d = decide(UnitState::Deferred, true, &loaded, false);
        assert_eq!(d.state, UnitState::Loaded);
        assert_eq!(d.outcome, AttemptOutcome::Loaded);
        assert_eq!(
            d.conflict,
            ConflictStep::Resolve(ResolutionMethod::AutoRetry)
        );
        assert_eq!(d.breaker, Some(Outcome::Landed));
        assert_eq!(d.job, JobStep::Complete);
        let forced = decide(UnitState::Unresolved, true, &loaded, true);
        assert_eq!(
            forced.conflict,
            ConflictStep::Resolve(ResolutionMethod::ForceMode)
        );
    }

    #[test]
    fn only_streaming_buffer_refusals_move_the_breaker() {
        let sb = decide(
            UnitState::Pending,
            false,
            &retry(ErrorClass::StreamingBuffer),
            false,
        );
        assert_eq!(sb.breaker, Some(Outcome::Conflict));
        assert_eq!(sb.state, UnitState::Deferred);
        assert_eq!(
            sb.conflict,
            ConflictStep::Record(ConflictType::StreamingBuffer)
        );
        assert_eq!(sb.job, JobStep::RunAt(DateTime::<Utc>::UNIX_EPOCH));
        for class in [
            ErrorClass::QuotaExceeded,
            ErrorClass::ConcurrentDml,
            ErrorClass::Transient,
        ] {
            let d = decide(UnitState::Pending, false, &retry(class), false);
            assert_eq!(d.breaker, None, "{class:?}");
            assert_eq!(d.state, UnitState::Deferred);
        }
        let quota = decide(
            UnitState::Pending,
            false,
            &retry(ErrorClass::QuotaExceeded),
            false,
        );
        assert_eq!(quota.outcome, AttemptOutcome::Conflict);
        assert_eq!(
            quota.conflict,
            ConflictStep::Record(ConflictType::QuotaExceeded)
        );
        let transient = decide(
            UnitState::Pending,
            false,
            &retry(ErrorClass::Transient),
            false,
        );
        assert_eq!(transient.outcome, AttemptOutcome::Transient);
        assert_eq!(transient.conflict, ConflictStep::Keep);
    }

    #[test]
    fn giving_up_is_unresolved_after_a_conflict_and_failed_otherwise() {
        let d = decide(
            UnitState::Deferred,
            true,
            &give_up(ErrorClass::StreamingBuffer),
            false,
        );
        assert_eq!(d.state, UnitState::Unresolved);
        assert_eq!(
            d.conflict,
            ConflictStep::GiveUp(ConflictType::StreamingBuffer)
        );
        assert_eq!(d.alert, Some(AlertKind::ConflictTimeout));
        // A conflict earlier, transient errors at the end: still the conflict's timeout.
        let d = decide(
            UnitState::Deferred,
            true,
            &give_up(ErrorClass::Transient),
            false,
        );
        assert_eq!(d.state, UnitState::Unresolved);
        assert_eq!(d.conflict, ConflictStep::Resolve(ResolutionMethod::Timeout));
        let d = decide(
            UnitState::Deferred,
            false,
            &give_up(ErrorClass::Transient),
            false,
        );
        assert_eq!(
            (d.state, d.alert),
            (UnitState::Failed, Some(AlertKind::UnitFailed))
        );
        let d = decide(
            UnitState::Deferred,
            true,
            &give_up(ErrorClass::Permanent),
            false,
        );
        assert_eq!(d.state, UnitState::Failed);
        assert_eq!(d.outcome, AttemptOutcome::Failed);
        assert_eq!(d.conflict, ConflictStep::Keep);
    }

    #[test]
    fn a_unit_superseded_during_its_attempt_only_records_it() {
        let d = decide(
            UnitState::Superseded,
            true,
            &retry(ErrorClass::StreamingBuffer),
            false,
        );
        assert_eq!(d.state, UnitState::Superseded);
        assert_eq!(d.outcome, AttemptOutcome::Superseded);
        assert_eq!(d.conflict, ConflictStep::Keep);
        assert_eq!(d.job, JobStep::Complete);
        let landed = decide(
            UnitState::Cancelled,
            false,
            &Verdict::Loaded { rows_inserted: 1 },
            false,
        );
        assert_eq!(landed.state, UnitState::Loaded);
        assert_eq!(landed.outcome, AttemptOutcome::Loaded);
    }
}
