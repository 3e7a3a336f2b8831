//! Histories: what processors, operators, replicas, the clock and the warehouse do, as
//! plain data drawn from a seed, so that a failing history can be printed, replayed and
//! shrunk.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use streamguard::scheduler::Checkpoint;

/// Tables, keys and partitions of one history: small, so that batches supersede each
/// other, share statements and meet each other's buffered rows.
pub(crate) const TABLES: u8 = 2;
pub(crate) const KEYS: u8 = 4;
pub(crate) const DAYS: u8 = 2;

/// One step of a history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A processor posts a batch: per key `(k, day, rows)`, `rows == 0` a pure delete.
    Post {
        table: u8,
        keys: Vec<(u8, u8, u8)>,
        idempotency: Idempotency,
    },
    /// A processor streams one row (its own key, `k >= 100`) into `day`'s partition; it
    /// stays in the buffer `residence` seconds.
    Stream { table: u8, day: u8, residence: u32 },
    /// A replica runs one round, maybe meeting a fault at a checkpoint.
    Round {
        replica: u8,
        fault: Option<RoundFault>,
    },
    /// A replica's round and another step (a post, an operator's action, a stream, a
    /// flush) at the same time: races inside single statements meet here, in whatever
    /// order Postgres serves them.
    Together {
        replica: u8,
        fault: Option<RoundFault>,
        with: Box<Step>,
    },
    /// The clock moves forward.
    Advance { seconds: u32 },
    /// An operator acts on the `pick`-th open conflict (or waiting unit, for `Cancel`).
    Operator { action: Action, pick: u16 },
    /// The emulator injects faults into the table's statements from here on (`None`:
    /// none).
    Faults { table: u8, faults: Option<String> },
    /// The emulator flushes the table's streaming buffer.
    Flush { table: u8 },
}

/// How a batch uses its idempotency key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Idempotency {
    /// No key.
    None,
    /// A key of its own.
    Fresh,
    /// The same request as the `n`-th earlier post with a key: must be answered as a
    /// replay, writing nothing.
    Repeat(u16),
    /// The key of the `n`-th earlier post with a key, other rows: must be refused.
    Conflicting(u16),
}

/// Something that happens to a round when it reaches a checkpoint for the `nth` time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RoundFault {
    pub(crate) at: Checkpoint,
    pub(crate) nth: u8,
    pub(crate) what: AtCheckpoint,
}

/// What happens there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AtCheckpoint {
    /// The replica dies: the round stops there for good.
    Crash,
    /// The clock moves `advance` seconds (past the lease when it is long enough), then the
    /// other replica runs a round; then this one goes on.
    Interleave { advance: u32 },
    /// The clock moves `advance` seconds, then the other replica's round runs *beside*
    /// this one's rest, at the same time: the races inside single statements (a claim
    /// against a fenced recording) are met here, in whatever order Postgres serves them.
    Race { advance: u32 },
}

/// An operator's action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    RetryNow,
    RetryIgnoringBreaker,
    Resolve,
    Force,
    Cancel,
}

/// The history of `seed`: 4 to 16 steps (enough for a crash, a race and a supersession to
/// meet; longer ones mostly repeat what shorter ones do).
pub(crate) fn generate(seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = rng.random_range(4..=16);
    (0..len).map(|_| step(&mut rng)).collect()
}

fn step(rng: &mut StdRng) -> Step {
    let table = rng.random_range(0..TABLES);
    match rng.random_range(0..100) {
        0..35 => {
            let n = rng.random_range(1..=3);
            let mut keys: Vec<(u8, u8, u8)> = Vec::new();
            while keys.len() < n {
                let (k, day) = (rng.random_range(0..KEYS), rng.random_range(0..DAYS));
                if keys.iter().all(|&(k2, d2, _)| (k2, d2) != (k, day)) {
                    let rows = if rng.random_bool(0.15) {
                        0
                    } else {
                        rng.random_range(1..=2)
                    };
                    keys.push((k, day, rows));
                }
            }
            let idempotency = match rng.random_range(0..100) {
                0..50 => Idempotency::None,
                50..80 => Idempotency::Fresh,
                80..92 => Idempotency::Repeat(rng.random_range(0..8)),
                _ => Idempotency::Conflicting(rng.random_range(0..8)),
            };
            Step::Post {
                table,
                keys,
                idempotency,
            }
        }
        35..43 => Step::Stream {
            table,
            day: rng.random_range(0..DAYS),
            residence: rng.random_range(30..=900),
        },
        43..73 => {
            let advance = if rng.random_bool(0.6) {
                rng.random_range(31..=120) // past the 30 s lease
            } else {
                rng.random_range(0..=5)
            };
            let fault = match rng.random_range(0..100) {
                0..50 => None,
                50..72 => Some(AtCheckpoint::Crash),
                72..88 => Some(AtCheckpoint::Interleave { advance }),
                _ => Some(AtCheckpoint::Race { advance }),
            }
            .map(|what| RoundFault {
                at: Checkpoint::ALL[rng.random_range(0..Checkpoint::ALL.len())],
                nth: rng.random_range(0..=1),
                what,
            });
            let replica = rng.random_range(0..2);
            if rng.random_bool(0.2) {
                // Anything but a round, a move of the clock or another pair.
                let with = loop {
                    match step(rng) {
                        Step::Round { .. } | Step::Advance { .. } | Step::Together { .. } => {}
                        other => break other,
                    }
                };
                return Step::Together {
                    replica,
                    fault,
                    with: Box::new(with),
                };
            }
            Step::Round { replica, fault }
        }
        73..85 => Step::Advance {
            seconds: *[1, 5, 30, 60, 300, 900]
                .get(rng.random_range(0..6))
                .expect("in range"),
        },
        85..93 => Step::Operator {
            action: [
                Action::RetryNow,
                Action::RetryIgnoringBreaker,
                Action::Resolve,
                Action::Force,
                Action::Cancel,
            ][rng.random_range(0..5)],
            pick: rng.random_range(0..4),
        },
        93..97 => Step::Faults {
            table,
            faults: rng.random_bool(0.75).then(|| {
                let rate = |rng: &mut StdRng| f64::from(rng.random_range(0..=15u8)) / 100.0;
                format!(
                    "concurrent_dml={},quota_exceeded={},transient={},lost_answer={},seed={}",
                    rate(rng),
                    rate(rng),
                    rate(rng),
                    rate(rng),
                    rng.random::<u32>()
                )
            }),
        },
        _ => Step::Flush { table },
    }
}

/// The smallest history that still fails, found greedily: drop chunks of steps (halves,
/// quarters, … single steps), then strip each round of its fault, keeping every change
/// after which `fails` still says so. At most `budget` calls of `fails`.
pub(crate) async fn shrink<F, Fut>(
    mut history: Vec<Step>,
    mut budget: usize,
    mut fails: F,
) -> Vec<Step>
where
    F: FnMut(Vec<Step>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut chunk = history.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < history.len() && budget > 0 {
            let mut candidate = history.clone();
            candidate.drain(start..(start + chunk).min(history.len()));
            budget -= 1;
            if fails(candidate.clone()).await {
                history = candidate;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 || budget == 0 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for i in 0..history.len() {
        if budget == 0 {
            break;
        }
        let simpler = match &history[i] {
            Step::Round {
                replica,
                fault: Some(_),
            } => Step::Round {
                replica: *replica,
                fault: None,
            },
            Step::Together { replica, fault, .. } => Step::Round {
                replica: *replica,
                fault: *fault,
            },
            _ => continue,
        };
        let mut candidate = history.clone();
        candidate[i] = simpler;
        budget -= 1;
        if fails(candidate.clone()).await {
            history = candidate;
        }
    }
    history
}

/// The history, one numbered step a line.
pub(crate) fn show(history: &[Step]) -> String {
    history
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {i:>2}. {s:?}\n"))
        .collect()
}
