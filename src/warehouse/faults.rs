//! Injected warehouse faults for the emulator (`STREAMGUARD_EMULATOR_FAULTS`, and per table
//! with `PUT /emulator/tables/{table}/faults`): refusals BigQuery really sends, a statement
//! that lands but whose answer is lost, and extra latency, each at a rate, from a seeded
//! random generator so a run can be repeated.
//!
//! Written `concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,latency=0.5s..2s,seed=42`
//! (any subset, any order; `none` or an empty string for no faults). Each statement draws
//! at most one of the four outcomes, so their rates add up to at most 1. Messages and
//! classes follow `shared/bigquery-facts.md` B6:
//!
//! | fault | what the caller gets | class |
//! |---|---|---|
//! | `concurrent_dml` | `Could not serialize access to table <t> due to concurrent update` (400 `invalidQuery`) | concurrent DML |
//! | `quota_exceeded` | `Exceeded rate limits: too many table update operations for this table` (403 `rateLimitExceeded`) | quota |
//! | `transient` | `Error encountered during execution. Retrying may solve the problem.` (5xx `backendError`); nothing was written | transient |
//! | `lost_answer` | the statement commits, then the caller sees a timeout | transient |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Error;
use crate::domain::TableRef;

/// The longest injected latency accepted: 1 hour (a statement timeout is far shorter).
pub const MAX_FAULT_LATENCY: Duration = Duration::from_secs(3600);

/// What the emulator injects, at which rates (each a probability in `[0, 1]` per statement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Faults {
    /// Refused as concurrent DML.
    pub concurrent_dml: f64,
    /// Refused for a rate limit.
    pub quota_exceeded: f64,
    /// Refused with a server error; nothing written.
    pub transient: f64,
    /// Written, but the caller sees a timeout.
    pub lost_answer: f64,
    /// Extra latency drawn uniformly per statement, seconds `[min, max]`; `null` for none.
    #[schema(value_type = Option<[f64; 2]>)]
    #[serde(serialize_with = "latency_seconds")]
    pub latency: Option<(Duration, Duration)>,
    /// The random generator's seed; `null` draws from the operating system (not repeatable).
    pub seed: Option<u64>,
}

fn latency_seconds<S: serde::Serializer>(
    latency: &Option<(Duration, Duration)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    latency
        .map(|(min, max)| [min.as_secs_f64(), max.as_secs_f64()])
        .serialize(s)
}

/// One statement's draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refuse as concurrent DML.
    ConcurrentDml,
    /// Refuse for a rate limit.
    QuotaExceeded,
    /// Refuse with a server error.
    Transient,
    /// Commit, then answer with a timeout.
    LostAnswer,
}

impl Faults {
    /// No faults (the default).
    pub const NONE: Self = Self {
        concurrent_dml: 0.0,
        quota_exceeded: 0.0,
        transient: 0.0,
        lost_answer: 0.0,
        latency: None,
        seed: None,
    };

    /// Whether anything is injected at all.
    pub fn is_none(&self) -> bool {
        self.concurrent_dml + self.quota_exceeded + self.transient + self.lost_answer == 0.0
            && self.latency.is_none()
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    humantime::parse_duration(s)
        .ok()
        .or_else(|| {
            // humantime takes whole numbers only; `0.5s` is too useful to refuse.
            s.strip_suffix('s')
                .and_then(|n| n.parse::<f64>().ok())
                .and_then(|n| Duration::try_from_secs_f64(n).ok())
        })
        .ok_or_else(|| format!("{s:?} is not a duration like `500ms` or `0.5s`"))
}

impl std::str::FromStr for Faults {
    type Err = String;

    /// Parses `name=value` pairs separated by commas: the four rates, `latency=<d>` or
    /// `latency=<min>..<max>`, `seed=<u64>`. Errors name the offending pair.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut faults = Self::default();
        let mut seen = Vec::new();
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed == "none" {
            return Ok(faults);
        }
        for pair in trimmed.split(',') {
            let (name, value) = pair
                .split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .ok_or_else(|| format!("{pair:?} is not `name=value`"))?;
            if seen.contains(&name) {
                return Err(format!("{name} is given twice"));
            }
            seen.push(name);
            let rate = |value: &str| match value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!(
                    "{name} expects a rate from 0 to 1, like 0.05; got {value:?}"
                )),
            };
            match name {
                "concurrent_dml" => faults.concurrent_dml = rate(value)?,
                "quota_exceeded" => faults.quota_exceeded = rate(value)?,
                "transient" => faults.transient = rate(value)?,
                "lost_answer" => faults.lost_answer = rate(value)?,
                "latency" => {
                    let (min, max) = match value.split_once("..") {
                        Some((a, b)) => (seconds(a)?, seconds(b)?),
                        None => (seconds(value)?, seconds(value)?),
                    };
                    if min > max {
                        return Err(format!("latency {value:?}: the range's start is after its end"));
                    }
                    if max > MAX_FAULT_LATENCY {
                        return Err(format!("latency may be at most 1h; got {value:?}"));
                    }
                    faults.latency = (!max.is_zero()).then_some((min, max));
                }
                "seed" => {
                    faults.seed = Some(value.parse().map_err(|_| {
                        format!("seed expects a whole number from 0 to 2^64-1; got {value:?}")
                    })?);
                }
                _ => {
                    return Err(format!(
                        "unknown fault {name:?}; known: concurrent_dml, quota_exceeded, transient, lost_answer, latency, seed"
                    ))
                }
            }
        }
        let sum =
            faults.concurrent_dml + faults.quota_exceeded + faults.transient + faults.lost_answer;
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "the rates of concurrent_dml, quota_exceeded, transient and lost_answer add up to {sum}, more than 1 (a statement gets at most one)"
            ));
        }
        Ok(faults)
    }
}

/// A fault spec with its own random generator: the draws of one seed repeat exactly.
#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    rng: Mutex<StdRng>,
}

impl Injector {
    /// An injector for `faults`, seeded from `faults.seed` or the operating system.
    pub fn new(faults: Faults) -> Self {
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            faults,
            rng: Mutex::new(rng),
        }
    }

    /// The spec it injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Draws one statement's extra latency and fault (`None`: it runs normally).
    pub fn draw(&self) -> (Duration, Option<Fault>) {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let latency = match self.faults.latency {
            Some((min, max)) if max > min => {
                Duration::from_secs_f64(rng.random_range(min.as_secs_f64()..=max.as_secs_f64()))
            }
            Some((min, _)) => min,
            None => Duration::ZERO,
        };
        let x: f64 = rng.random();
        let f = &self.faults;
        let fault = [
            (f.concurrent_dml, Fault::ConcurrentDml),
            (f.quota_exceeded, Fault::QuotaExceeded),
            (f.transient, Fault::Transient),
            (f.lost_answer, Fault::LostAnswer),
        ]
        .into_iter()
        .scan(0.0, |upto, (rate, fault)| {
            *upto += rate;
            Some((*upto, fault))
        })
        .find(|(upto, _)| x < *upto)
        .map(|(_, fault)| fault);
        (latency, fault)
    }
}

impl Fault {
    /// The error the caller sees, with BigQuery's message and class
    /// (`shared/bigquery-facts.md` B6, B7).
    pub fn error(self, table: &TableRef, job_id: &str) -> Error {
        match self {
            Self::ConcurrentDml => Error::ConcurrentUpdate {
                message: format!(
                    "Could not serialize access to table {table} due to concurrent update"
                ),
            },
            Self::QuotaExceeded => Error::QuotaExceeded {
                message: "Exceeded rate limits: too many table update operations for this table"
                    .into(),
                retry_after: None,
            },
            Self::Transient => Error::Transient {
                message: "Error encountered during execution. Retrying may solve the problem."
                    .into(),
            },
            Self::LostAnswer => Error::Transient {
                message: format!("job {job_id}: operation timed out waiting for the answer"),
            },
        }
    }
}

/// The faults in force: the variable's for every table, unless a table has its own.
#[derive(Debug, Clone)]
pub struct FaultTable {
    default: Arc<Injector>,
    tables: Arc<Mutex<HashMap<String, Arc<Injector>>>>,
}

impl FaultTable {
    /// Every table gets `faults` until one is given its own.
    pub fn new(faults: Faults) -> Self {
        Self {
            default: Arc::new(Injector::new(faults)),
            tables: Arc::default(),
        }
    }

    /// The injector for `table`.
    pub fn for_table(&self, table: &TableRef) -> Arc<Injector> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables
            .get(&table.to_string())
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }

    /// Gives `table` its own faults (a fresh generator from their seed); `None` returns it
    /// to the variable's. Returns the faults now in force for it.
    pub fn set(&self, table: &TableRef, faults: Option<Faults>) -> Faults {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        match faults {
            Some(f) => {
                tables.insert(table.to_string(), Arc::new(Injector::new(f)));
                f
            }
            None => {
                tables.remove(&table.to_string());
                *self.default.faults()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_spec_parses() {
        let f: Faults =
            "concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,latency=0.5s..2s,seed=42"
                .parse()
                .unwrap();
        assert_eq!(f.concurrent_dml, 0.1);
        assert_eq!(f.lost_answer, 0.02);
        assert_eq!(
            f.latency,
            Some((Duration::from_millis(500), Duration::from_secs(2)))
        );
        assert_eq!(f.seed, Some(42));
        assert!("none".parse::<Faults>().unwrap().is_none());
        assert!("".parse::<Faults>().unwrap().is_none());
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (bad, says) in [
            (
                "quota_exceeded=2",
                "quota_exceeded expects a rate from 0 to 1",
            ),
            ("quota=0.1", "unknown fault \"quota\""),
            ("transient", "is not `name=value`"),
            ("transient=0.1,transient=0.2", "given twice"),
            ("concurrent_dml=0.6,quota_exceeded=0.6", "more than 1"),
            ("latency=2s..1s", "start is after its end"),
            ("latency=2d", "at most 1h"),
            ("latency=soon", "not a duration"),
            ("seed=-1", "seed expects a whole number"),
        ] {
            let e = bad.parse::<Faults>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_seed_repeats_its_draws_and_rates_hold_over_many() {
        let f: Faults = "concurrent_dml=0.1,quota_exceeded=0.2,transient=0.05,lost_answer=0.05,latency=10ms..20ms,seed=7"
            .parse()
            .unwrap();
        let (a, b) = (Injector::new(f), Injector::new(f));
        let draws: Vec<_> = (0..10_000).map(|_| a.draw()).collect();
        assert_eq!(draws, (0..10_000).map(|_| b.draw()).collect::<Vec<_>>());
        let share =
            |fault| draws.iter().filter(|d| d.1 == Some(fault)).count() as f64 / draws.len() as f64;
        assert!((share(Fault::ConcurrentDml) - 0.1).abs() < 0.02);
        assert!((share(Fault::QuotaExceeded) - 0.2).abs() < 0.02);
        assert!((share(Fault::LostAnswer) - 0.05).abs() < 0.015);
        assert!(draws
            .iter()
            .all(|d| d.0 >= Duration::from_millis(10) && d.0 <= Duration::from_millis(20)));
        let never = Injector::new(Faults::default());
        assert!((0..1000).all(|_| never.draw() == (Duration::ZERO, None)));
        let always = Injector::new("quota_exceeded=1".parse().unwrap());
        assert!((0..1000).all(|_| always.draw().1 == Some(Fault::QuotaExceeded)));
    }

    #[test]
    fn injected_refusals_carry_bigquerys_class() {
        use crate::domain::ErrorClass;
        let t = TableRef::parse("demo-project.nba.games").unwrap();
        let class = |f: Fault| f.error(&t, "j").class();
        assert_eq!(class(Fault::ConcurrentDml), ErrorClass::ConcurrentDml);
        assert_eq!(class(Fault::QuotaExceeded), ErrorClass::QuotaExceeded);
        assert_eq!(class(Fault::Transient), ErrorClass::Transient);
        assert_eq!(class(Fault::LostAnswer), ErrorClass::Transient);
        assert!(Fault::ConcurrentDml.error(&t, "j").to_string().contains(
            "Could not serialize access to table demo-project.nba.games due to concurrent update"
        ));
    }
}
