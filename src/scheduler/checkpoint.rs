//! Checkpoints: the boundaries of a round where a test may stop or interleave a replica.
//!
//! The simulation (`tests/sim/`) installs [`Checkpoints`] on its schedulers. At each
//! checkpoint it may move the clock, run another replica's round, or kill this replica:
//! its hook then never returns and the simulation drops the round's future, exactly as a
//! process killed at that point would leave things (claims committed, leases running out,
//! a statement sent or not). Production installs none; a checkpoint is then one branch.
//!
//! A recording is one transaction, so dying inside it is dying before it (Postgres rolls
//! it back); [`Checkpoint::Answered`] and [`Checkpoint::Recorded`] bracket it.

use async_trait::async_trait;

/// A boundary inside a round, in the order a statement meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Groups are claimed (committed): their leases run; nothing else happened.
    Claimed,
    /// A statement is recorded as `sent` and its leases confirmed; the warehouse is about
    /// to be called.
    Sending,
    /// The warehouse answered (or the wait for it ended); the statement's outcome and its
    /// units' verdicts are not recorded yet.
    Answered,
    /// A statement's verdicts are committed; the round may go on with other parts.
    Recorded,
}

impl Checkpoint {
    /// Every checkpoint.
    pub const ALL: [Self; 4] = [Self::Claimed, Self::Sending, Self::Answered, Self::Recorded];
}

/// What a test does at a checkpoint. `replica` is the scheduler's replica name.
#[async_trait]
pub trait Checkpoints: Send + Sync + std::fmt::Debug {
    /// Called when `replica`'s round reaches `at`; the round goes on when this returns.
    async fn reached(&self, replica: &str, at: Checkpoint);
}
