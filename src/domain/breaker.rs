//! The circuit breaker: a pure state machine, one per scope (a processor name by default,
//! or a target table), after riverqueue/river's `rivershared/circuitbreaker` and the
//! seed's defaults (`docs/architecture.md`, "Words": trips above 0.5 over at least 3
//! outcomes, `CIRCUIT_BREAKER_COOLDOWN = 1800` seconds).
//!
//! ```text
//!            conflict rate > threshold over >= min outcomes
//!   closed ───────────────────────────────────────────────▶ open (until reopens_at)
//!     ▲                                                      │ now >= reopens_at, a job is due
//!     │ probe landed                                         ▼
//!     └──────────────────────────────────────────────── half_open (one probe in flight)
//!                                                            │ probe conflicted
//!                                                            └──▶ open, for open_for × 2^reopens (capped)
//! operators: reset → closed; force-open → forced_open (admits nothing); disable → disabled (admits all)
//! ```
//!
//! Nothing here reads the clock or the database: `now`, the window's counts and whether the
//! probe still holds its lease are arguments. The store applies each [`Transition`] as one
//! compare-and-swap statement, so every replica sees the same breaker.
//!
//! Why it is long (about 500 lines before its tests): the state machine, each transition
//! and the settings, documented where they are decided.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Attempts go through; outcomes are counted.
    Closed,
    /// Tripped: attempts of the scope are deferred until `reopens_at`.
    Open,
    /// The open period is over: exactly one probe attempt may run.
    HalfOpen,
    /// Opened by an operator: nothing goes through until a reset.
    ForcedOpen,
    /// Switched off by an operator: everything goes through and nothing trips it.
    Disabled,
}

impl BreakerState {
    /// The snake_case name stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "closed" => Self::Closed,
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            "forced_open" => Self::ForcedOpen,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }

    /// Whether this state stops ordinary attempts (alerts call it "open").
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::ForcedOpen)
    }
}

/// Which jobs share a breaker (`STREAMGUARD_BREAKER_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerScope {
    /// One breaker per `processor_name` (the default, as in the seed).
    Processor,
    /// One breaker per target table, `project.dataset.table`.
    Table,
}

impl BreakerScope {
    /// The default: one breaker per processor.
    pub const DEFAULT: Self = Self::Processor;

    /// The scope value of a job sent by `processor_name` to `table`.
    pub fn of<'a>(self, processor_name: &'a str, table: &'a str) -> &'a str {
        match self {
            Self::Processor => processor_name,
            Self::Table => table,
        }
    }
}

impl Default for BreakerScope {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for BreakerScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Processor => "processor",
            Self::Table => "table",
        })
    }
}

impl std::str::FromStr for BreakerScope {
    /// The accepted words.
    type Err = String;

    /// `processor` (or `processor_name`) or `table`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "processor" | "processor_name" => Ok(Self::Processor),
            "table" => Ok(Self::Table),
            _ => Err("`processor` or `table`".into()),
        }
    }
}

/// Open time of a first trip against BigQuery: the seed's
/// `CIRCUIT_BREAKER_COOLDOWN = 1800` seconds.
pub const BIGQUERY_DEFAULT_OPEN_FOR: Duration = Duration::from_secs(1800);
/// Cap of the doubling open time against BigQuery.
pub const BIGQUERY_DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(4 * 3600);
/// Open time against the emulator: the seed's 30 minutes as seconds, the same scaling as
/// [`crate::domain::retry::EMULATOR_DEFAULT_DELAYS`].
pub const EMULATOR_DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// Cap of the doubling open time against the emulator.
pub const EMULATOR_DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(240);

/// The breaker's knobs. Defaults are the seed's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Trips when the conflict share of the window is strictly more than this (0.5).
    pub threshold: f64,
    /// ...and the window holds at least this many outcomes (3).
    pub min_outcomes: u32,
    /// The window: at most the last this many outcomes (20)...
    pub window_outcomes: u32,
    /// ...of at most this age (10 minutes).
    pub window: Duration,
    /// How long the first trip stays open (30 minutes, the seed's cooldown).
    pub open_for: Duration,
    /// Cap of the doubling open time after failed probes (4 hours).
    pub max_open_for: Duration,
    /// How long a job waits when a half-open probe is already in flight (30 seconds).
    pub probe_wait: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl BreakerSettings {
    /// The defaults against BigQuery (the seed's).
    pub const DEFAULT: Self = Self {
        threshold: 0.5,
        min_outcomes: 3,
        window_outcomes: 20,
        window: Duration::from_secs(600),
        open_for: BIGQUERY_DEFAULT_OPEN_FOR,
        max_open_for: BIGQUERY_DEFAULT_MAX_OPEN_FOR,
        probe_wait: Duration::from_secs(30),
    };

    /// The default open time and its cap for a warehouse: BigQuery's when `bigquery`, else
    /// the emulator's.
    pub const fn default_open_for(bigquery: bool) -> (Duration, Duration) {
        if bigquery {
            (BIGQUERY_DEFAULT_OPEN_FOR, BIGQUERY_DEFAULT_MAX_OPEN_FOR)
        } else {
            (EMULATOR_DEFAULT_OPEN_FOR, EMULATOR_DEFAULT_MAX_OPEN_FOR)
        }
    }

    /// The open time after `reopens` consecutive failed probes: `open_for × 2^reopens`,
    /// capped at `max_open_for`.
    pub fn open_time(&self, reopens: u32) -> Duration {
        let factor = 2u32.saturating_pow(reopens.min(20));
        self.open_for
            .checked_mul(factor)
            .unwrap_or(self.max_open_for)
            .min(self.max_open_for.max(self.open_for))
    }
}

/// The half-open permit: which job attempt holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Probe {
    /// The job.
    pub job_id: i64,
    /// Its claim (attempt) number.
    pub attempt: i32,
}

/// One breaker's persisted state.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// The state.
    pub state: BreakerState,
    /// When it last opened (automatically or by force).
    pub opened_at: Option<DateTime<Utc>>,
    /// When an `open` breaker lets a probe through.
    pub reopens_at: Option<DateTime<Utc>>,
    /// Failed probes since it last closed (drives the doubling open time).
    pub reopens: u32,
    /// Outcomes before this time do not count (the window restarts when it closes).
    pub counting_since: Option<DateTime<Utc>>,
    /// The half-open permit holder.
    pub probe: Option<Probe>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            opened_at: None,
            reopens_at: None,
            reopens: 0,
            counting_since: None,
            probe: None,
        }
    }
}

/// Outcomes counted in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Window {
    /// Outcomes (landed + conflicts).
    pub outcomes: u32,
    /// Of which conflicts.
    pub conflicts: u32,
}

impl Window {
    /// Conflicts / outcomes, 0 for an empty window.
    pub fn conflict_rate(&self) -> f64 {
        if self.outcomes == 0 {
            0.0
        } else {
            f64::from(self.conflicts) / f64::from(self.outcomes)
        }
    }
}

/// What an attempt's result means to the breaker. Transient and permanent errors are not
/// outcomes at all: they never reach the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The replace landed.
    Landed,
    /// The replace was refused for a conflict (streaming buffer, concurrent DML, quota).
    Conflict,
}

/// The scheduler's question: may this claimed job run now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes, as an ordinary attempt.
    Run,
    /// Yes, as the half-open probe (the transition takes the permit).
    Probe,
    /// No: re-schedule at this time, without counting an attempt.
    Defer(DateTime<Utc>),
}

/// A change of state, with the sentence recorded as its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The breaker after it.
    pub to: Breaker,
    /// Why, in words (shown as `last_reason`).
    pub reason: String,
}

/// Whether the job `candidate` of the scope may run at `now`, and the transition that
/// admitting it implies (taking the probe permit). `probe_alive` says whether the current
/// permit holder still holds its job lease: a dead probe's permit is released, so the
/// breaker never sticks in half-open.
pub fn admit(
    b: &Breaker,
    s: &BreakerSettings,
    now: DateTime<Utc>,
    candidate: Probe,
    probe_alive: bool,
) -> (Admission, Option<Transition>) {
    let take_probe = |reason: String| {
        let to = Breaker {
            state: BreakerState::HalfOpen,
            probe: Some(candidate),
            ..b.clone()
        };
        (Admission::Probe, Some(Transition { to, reason }))
    };
    match b.state {
        BreakerState::Closed | BreakerState::Disabled => (Admission::Run, None),
        BreakerState::ForcedOpen => (Admission::Defer(now + chrono_duration(s.open_for)), None),
        BreakerState::Open => match b.reopens_at {
            Some(at) if now < at => (Admission::Defer(at), None),
            _ => take_probe("open period over; one probe let through".into()),
        },
        BreakerState::HalfOpen => match b.probe {
            Some(p) if p == candidate => (Admission::Probe, None),
            Some(_) if probe_alive => (Admission::Defer(now + chrono_duration(s.probe_wait)), None),
            Some(p) => take_probe(format!(
                "probe job {} (attempt {}) lost its lease; permit handed on",
                p.job_id, p.attempt
            )),
            None => take_probe("half-open; one probe let through".into()),
        },
    }
}

/// The transition an outcome causes. `window` already counts this outcome; `probe` is the
/// job attempt that produced it.
pub fn record(
    b: &Breaker,
    s: &BreakerSettings,
    now: DateTime<Utc>,
    outcome: Outcome,
    window: Window,
    from: Probe,
) -> Option<Transition> {
    match b.state {
        BreakerState::Closed => {
            let trips =
                window.outcomes >= s.min_outcomes.max(1) && window.conflict_rate() > s.threshold;
            trips.then(|| {
                open(
                    b,
                    s,
                    now,
                    0,
                    format!(
                        "{} of the last {} outcomes were conflicts ({:.0} % > {:.0} %)",
                        window.conflicts,
                        window.outcomes,
                        window.conflict_rate() * 100.0,
                        s.threshold * 100.0
                    ),
                )
            })
        }
        // The probe's own outcome decides. So does the first outcome after the open period
        // when no probe holds the permit: a processor writing on its own (which checked
        // `GET /v1/breakers/{scope}` and found it may write) is the probe then, so a scope
        // with no jobs in the service is governed too.
        BreakerState::HalfOpen if b.probe == Some(from) || b.probe.is_none() => {
            Some(probe_outcome(b, s, now, outcome, "probe"))
        }
        BreakerState::Open if b.reopens_at.is_none_or(|at| now >= at) => Some(probe_outcome(
            b,
            s,
            now,
            outcome,
            "first outcome after the open period",
        )),
        // Attempts that started before the breaker opened, or a non-probe outcome, change
        // nothing but the window.
        BreakerState::HalfOpen
        | BreakerState::Open
        | BreakerState::ForcedOpen
        | BreakerState::Disabled => None,
    }
}

fn probe_outcome(
    b: &Breaker,
    s: &BreakerSettings,
    now: DateTime<Utc>,
    outcome: Outcome,
    what: &str,
) -> Transition {
    match outcome {
        Outcome::Landed => close(now, format!("{what} landed")),
        Outcome::Conflict => {
            let reopens = b.reopens.saturating_add(1);
            open(
                b,
                s,
                now,
                reopens,
                format!("{what} conflicted (failed probe {reopens})"),
            )
        }
    }
}

/// Whether a write of the scope may go ahead now, for a processor that writes on its own
/// and checks first: closed or disabled; or the open period is over and no probe holds the
/// permit (the processor's write is then the probe, and its outcome decides).
pub fn allows_writes(b: &Breaker, now: DateTime<Utc>, probe_alive: bool) -> bool {
    match b.state {
        BreakerState::Closed | BreakerState::Disabled => true,
        BreakerState::Open => b.reopens_at.is_none_or(|at| now >= at),
        BreakerState::HalfOpen => b.probe.is_none() || !probe_alive,
        BreakerState::ForcedOpen => false,
    }
}

/// The half-open probe ended without an outcome (a transient or permanent error): the
/// permit is released so that the next due job probes.
pub fn release_probe(b: &Breaker, from: Probe) -> Option<Transition> {
    (b.state == BreakerState::HalfOpen && b.probe == Some(from)).then(|| Transition {
        to: Breaker {
            probe: None,
            ..b.clone()
        },
        reason: "probe ended without an outcome (transient or permanent error); permit released"
            .into(),
    })
}

/// An operator's action on a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// Close it and restart counting.
    Reset,
    /// Open it until a reset.
    ForceOpen,
    /// Let everything through until a reset.
    Disable,
}

impl OperatorAction {
    /// The URL segment and log name: `reset`, `force-open`, `disable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::ForceOpen => "force-open",
            Self::Disable => "disable",
        }
    }
}

/// The transition an operator's action causes (always one; the reason carries theirs).
pub fn operate(
    b: &Breaker,
    now: DateTime<Utc>,
    action: OperatorAction,
    reason: &str,
) -> Transition {
    let why = format!("{} by operator: {reason}", action.as_str());
    match action {
        OperatorAction::Reset => close(now, why),
        OperatorAction::ForceOpen => Transition {
            to: Breaker {
                state: BreakerState::ForcedOpen,
                opened_at: Some(now),
                reopens_at: None,
                probe: None,
                ..b.clone()
            },
            reason: why,
        },
        OperatorAction::Disable => Transition {
            to: Breaker {
                state: BreakerState::Disabled,
                opened_at: None,
                reopens_at: None,
                reopens: 0,
                probe: None,
                counting_since: Some(now),
            },
            reason: why,
        },
    }
}

fn open(
    b: &Breaker,
    s: &BreakerSettings,
    now: DateTime<Utc>,
    reopens: u32,
    reason: String,
) -> Transition {
    Transition {
        to: Breaker {
            state: BreakerState::Open,
            opened_at: Some(now),
            reopens_at: Some(now + chrono_duration(s.open_time(reopens))),
            reopens,
            counting_since: b.counting_since,
            probe: None,
        },
        reason,
    }
}

fn close(now: DateTime<Utc>, reason: String) -> Transition {
    Transition {
        to: Breaker {
            counting_since: Some(now),
            ..Breaker::default()
        },
        reason,
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 25, 12, 0, 0).unwrap()
    }
    fn mins(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }
    fn w(outcomes: u32, conflicts: u32) -> Window {
        Window {
            outcomes,
            conflicts,
        }
    }
    const P1: Probe = Probe {
        job_id: 1,
        attempt: 1,
    };
    const P2: Probe = Probe {
        job_id: 2,
        attempt: 3,
    };

    fn open_at(now: DateTime<Utc>, reopens: u32) -> Breaker {
        let s = BreakerSettings::default();
        Breaker {
            state: BreakerState::Open,
            opened_at: Some(now),
            reopens_at: Some(now + chrono_duration(s.open_time(reopens))),
            reopens,
            ..Breaker::default()
        }
    }
    fn half_open(probe: Option<Probe>, reopens: u32) -> Breaker {
        Breaker {
            state: BreakerState::HalfOpen,
            probe,
            ..open_at(t0(), reopens)
        }
    }

    /// The seed's rule, row by row: (window, trips?).
    #[test]
    fn closed_trips_only_above_half_of_at_least_three() {
        let s = BreakerSettings::default();
        let cases = [
            (w(1, 1), false), // too few outcomes
            (w(2, 2), false),
            (w(3, 1), false),
            (w(4, 2), false), // exactly 50 % is not more than 50 %
            (w(3, 2), true),
            (w(8, 5), true), // the issue's burst: 5 of 8
            (w(20, 11), true),
            (w(20, 10), false),
        ];
        for (window, trips) in cases {
            let t = record(&Breaker::default(), &s, t0(), Outcome::Conflict, window, P1);
            assert_eq!(t.is_some(), trips, "{window:?}");
            if let Some(t) = t {
                assert_eq!(t.to.state, BreakerState::Open);
                assert_eq!(t.to.opened_at, Some(t0()));
                assert_eq!(t.to.reopens_at, Some(t0() + mins(30)));
                assert!(t.reason.contains("were conflicts"), "{}", t.reason);
            }
        }
    }

    #[test]
    fn open_defers_until_reopens_at_then_admits_exactly_one_probe() {
        let s = BreakerSettings::default();
        let b = open_at(t0(), 0);
        assert_eq!(
            admit(&b, &s, t0() + mins(29), P1, false),
            (Admission::Defer(t0() + mins(30)), None)
        );
        let (admission, t) = admit(&b, &s, t0() + mins(30), P1, false);
        assert_eq!(admission, Admission::Probe);
        let half = t.expect("takes the permit").to;
        assert_eq!((half.state, half.probe), (BreakerState::HalfOpen, Some(P1)));
        // A second job while the probe holds its lease waits.
        assert_eq!(
            admit(&half, &s, t0() + mins(31), P2, true),
            (
                Admission::Defer(t0() + mins(31) + chrono::Duration::seconds(30)),
                None
            )
        );
        // The probe itself (re-checked) is still the probe.
        assert_eq!(
            admit(&half, &s, t0() + mins(31), P1, true),
            (Admission::Probe, None)
        );
    }

    #[test]
    fn a_dead_probes_permit_passes_to_the_next_job() {
        let s = BreakerSettings::default();
        let (admission, t) = admit(&half_open(Some(P1), 0), &s, t0(), P2, false);
        assert_eq!(admission, Admission::Probe);
        let t = t.unwrap();
        assert_eq!(t.to.probe, Some(P2));
        assert!(t.reason.contains("lost its lease"));
        let (admission, t) = admit(&half_open(None, 0), &s, t0(), P2, false);
        assert_eq!(
            (admission, t.unwrap().to.probe),
            (Admission::Probe, Some(P2))
        );
    }

    #[test]
    fn probe_landing_closes_and_restarts_the_window() {
        let s = BreakerSettings::default();
        let t = record(
            &half_open(Some(P1), 2),
            &s,
            t0(),
            Outcome::Landed,
            w(9, 8),
            P1,
        )
        .unwrap();
        assert_eq!(t.to.state, BreakerState::Closed);
        assert_eq!((t.to.reopens, t.to.probe, t.to.opened_at), (0, None, None));
        assert_eq!(t.to.counting_since, Some(t0()));
    }

    #[test]
    fn probe_conflict_reopens_for_twice_as_long_capped() {
        let s = BreakerSettings::default();
        let t = record(
            &half_open(Some(P1), 0),
            &s,
            t0(),
            Outcome::Conflict,
            w(1, 1),
            P1,
        )
        .unwrap();
        assert_eq!(t.to.state, BreakerState::Open);
        assert_eq!((t.to.reopens, t.to.reopens_at), (1, Some(t0() + mins(60))));
        let t = record(
            &half_open(Some(P1), 2),
            &s,
            t0(),
            Outcome::Conflict,
            w(1, 1),
            P1,
        )
        .unwrap();
        assert_eq!(t.to.reopens_at, Some(t0() + mins(240)), "30m × 2^3 = 4h");
        let t = record(
            &half_open(Some(P1), 9),
            &s,
            t0(),
            Outcome::Conflict,
            w(1, 1),
            P1,
        )
        .unwrap();
        assert_eq!(t.to.reopens_at, Some(t0() + mins(240)), "capped at 4h");
        assert_eq!(s.open_time(40), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn outcomes_of_other_jobs_do_not_move_an_open_or_half_open_breaker() {
        let s = BreakerSettings::default();
        // Open and still in its open period (an attempt that started before the trip), or
        // half-open while the probe holds the permit.
        for b in [open_at(t0(), 0), half_open(Some(P1), 0)] {
            for outcome in [Outcome::Landed, Outcome::Conflict] {
                assert_eq!(record(&b, &s, t0() + mins(1), outcome, w(10, 10), P2), None);
            }
        }
    }

    #[test]
    fn without_a_probe_the_first_outcome_after_the_open_period_decides() {
        let s = BreakerSettings::default();
        let after = t0() + mins(30);
        let t = record(&open_at(t0(), 0), &s, after, Outcome::Landed, w(1, 0), P2).unwrap();
        assert_eq!(t.to.state, BreakerState::Closed);
        assert_eq!(t.reason, "first outcome after the open period landed");
        let t = record(
            &open_at(t0(), 1),
            &s,
            after + mins(30),
            Outcome::Conflict,
            w(1, 1),
            P2,
        )
        .unwrap();
        assert_eq!((t.to.state, t.to.reopens), (BreakerState::Open, 2));
        let t = record(
            &half_open(None, 0),
            &s,
            t0(),
            Outcome::Conflict,
            w(1, 1),
            P2,
        )
        .unwrap();
        assert_eq!(t.to.state, BreakerState::Open);
    }

    #[test]
    fn a_processor_may_write_when_closed_or_when_it_would_be_the_probe() {
        assert!(allows_writes(&Breaker::default(), t0(), false));
        let open = open_at(t0(), 0);
        assert!(!allows_writes(&open, t0() + mins(29), false));
        assert!(allows_writes(&open, t0() + mins(30), false));
        assert!(!allows_writes(&half_open(Some(P1), 0), t0(), true));
        assert!(allows_writes(&half_open(Some(P1), 0), t0(), false));
        assert!(allows_writes(&half_open(None, 0), t0(), false));
        let forced = operate(&open, t0(), OperatorAction::ForceOpen, "x").to;
        assert!(!allows_writes(&forced, t0() + mins(600), false));
    }

    #[test]
    fn a_probe_without_outcome_releases_its_permit() {
        let t = release_probe(&half_open(Some(P1), 1), P1).unwrap();
        assert_eq!(
            (t.to.state, t.to.probe, t.to.reopens),
            (BreakerState::HalfOpen, None, 1)
        );
        assert_eq!(release_probe(&half_open(Some(P1), 1), P2), None);
        assert_eq!(release_probe(&Breaker::default(), P1), None);
    }

    #[test]
    fn operator_states() {
        let s = BreakerSettings::default();
        let forced = operate(
            &Breaker::default(),
            t0(),
            OperatorAction::ForceOpen,
            "BQ incident",
        )
        .to;
        assert_eq!(forced.state, BreakerState::ForcedOpen);
        assert!(matches!(
            admit(&forced, &s, t0() + mins(600), P1, false).0,
            Admission::Defer(_)
        ));
        assert_eq!(
            record(&forced, &s, t0(), Outcome::Landed, w(5, 0), P1),
            None
        );

        let disabled = operate(&forced, t0(), OperatorAction::Disable, "noisy").to;
        assert_eq!(disabled.state, BreakerState::Disabled);
        assert_eq!(
            admit(&disabled, &s, t0(), P1, false),
            (Admission::Run, None)
        );
        assert_eq!(
            record(&disabled, &s, t0(), Outcome::Conflict, w(10, 10), P1),
            None
        );

        let t = operate(
            &open_at(t0(), 3),
            t0() + mins(1),
            OperatorAction::Reset,
            "fixed",
        );
        assert_eq!(t.to.state, BreakerState::Closed);
        assert_eq!(
            (t.to.reopens, t.to.counting_since),
            (0, Some(t0() + mins(1)))
        );
        assert_eq!(t.reason, "reset by operator: fixed");
    }

    #[test]
    fn closed_and_disabled_admit_everything() {
        let s = BreakerSettings::default();
        assert_eq!(
            admit(&Breaker::default(), &s, t0(), P1, false),
            (Admission::Run, None)
        );
    }

    #[test]
    fn scope_and_names() {
        assert_eq!(BreakerScope::Processor.of("p", "t"), "p");
        assert_eq!(BreakerScope::Table.of("p", "t"), "t");
        for s in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
        ] {
            assert_eq!(BreakerState::parse(s.as_str()), Some(s));
        }
        assert_eq!(w(0, 0).conflict_rate(), 0.0);
    }
}
