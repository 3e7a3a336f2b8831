//! Histories that once broke a promise, shrunk, each with the seed that found it. They run
//! before the random ones, written out step by step so that they keep testing the same
//! thing when the generator changes what a seed draws.

use crate::history::{Action, AtCheckpoint, Idempotency, RoundFault, Step};
use streamguard::scheduler::Checkpoint;

/// `(seed, what it found, the shrunk history)`.
pub(crate) fn cases() -> Vec<(u64, &'static str, Vec<Step>)> {
    vec![
        (
            856,
            "an operator cancelled a unit whose statement had landed, its answer lost: the \
             unit said `cancelled` while its rows were in the table (fixed: cancel settles \
             the unit's statements first and refuses when one landed)",
            vec![
                Step::Faults {
                    table: 1,
                    faults: Some("lost_answer=1,seed=1".into()),
                },
                Step::Post {
                    table: 1,
                    keys: vec![(3, 1, 1), (0, 0, 2)],
                    idempotency: Idempotency::None,
                },
                Step::Round {
                    replica: 1,
                    fault: None,
                },
                Step::Operator {
                    action: Action::Cancel,
                    pick: 0,
                },
            ],
        ),
        (
            800,
            "replica B paused after recording its statement, its lease ran out and A rescued \
             its jobs; B's statement then landed, fenced out; an operator cancelled a unit \
             it had landed (fixed as 856)",
            vec![
                Step::Post {
                    table: 0,
                    keys: vec![(3, 0, 0), (1, 1, 1)],
                    idempotency: Idempotency::None,
                },
                Step::Post {
                    table: 1,
                    keys: vec![(0, 1, 2), (3, 1, 1)],
                    idempotency: Idempotency::Fresh,
                },
                Step::Round {
                    replica: 1,
                    fault: Some(RoundFault {
                        at: Checkpoint::Sending,
                        nth: 0,
                        what: AtCheckpoint::Interleave { advance: 87 },
                    }),
                },
                Step::Operator {
                    action: Action::Cancel,
                    pick: 0,
                },
            ],
        ),
        (
            5505,
            "a unit superseded after its statement landed unanswered (its replica died) \
             stayed `superseded` while its rows were in the table: the round skipped units \
             already superseded without settling their statements (fixed: they are settled \
             and adopted as `loaded` when their statement landed)",
            vec![
                Step::Post {
                    table: 1,
                    keys: vec![(0, 1, 2), (2, 1, 1)],
                    idempotency: Idempotency::Fresh,
                },
                Step::Round {
                    replica: 1,
                    fault: Some(RoundFault {
                        at: Checkpoint::Answered,
                        nth: 0,
                        what: AtCheckpoint::Crash,
                    }),
                },
                Step::Advance { seconds: 30 },
                Step::Post {
                    table: 1,
                    keys: vec![(0, 1, 2), (1, 0, 2), (3, 1, 2)],
                    idempotency: Idempotency::Fresh,
                },
                Step::Round {
                    replica: 0,
                    fault: None,
                },
                Step::Operator {
                    action: Action::Cancel,
                    pick: 0,
                },
            ],
        ),
        (
            6429,
            "replica A's statement landed while A paused past its lease; B adopted it and \
             landed the newer units; A, fenced, re-applied the newer units anyway: each \
             landed twice (fixed: no re-apply when the late statement was settled before \
             the newer one was sent). A race: the replay may need a few runs",
            vec![
                Step::Post {
                    table: 0,
                    keys: vec![(3, 0, 0), (1, 0, 0), (3, 1, 1)],
                    idempotency: Idempotency::Fresh,
                },
                Step::Post {
                    table: 0,
                    keys: vec![(0, 1, 1), (3, 0, 2)],
                    idempotency: Idempotency::Fresh,
                },
                Step::Together {
                    replica: 0,
                    fault: Some(RoundFault {
                        at: Checkpoint::Answered,
                        nth: 0,
                        what: AtCheckpoint::Interleave { advance: 83 },
                    }),
                    with: Box::new(Step::Post {
                        table: 0,
                        keys: vec![(1, 1, 1), (0, 1, 1), (1, 0, 2)],
                        idempotency: Idempotency::None,
                    }),
                },
                Step::Round {
                    replica: 0,
                    fault: None,
                },
            ],
        ),
    ]
}
