//! A write unit's state, as callers see it in `units[].state`.

use serde::{Deserialize, Serialize};

/// Where a write unit stands.
///
/// `pending` → (first attempt) → `loaded` | `deferred` | `failed`; `deferred` → … →
/// `loaded` | `unresolved` (the retry policy gave up); any not-landed unit → `superseded`
/// when a newer batch for the same table and key arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// Accepted, not attempted yet.
    Pending,
    /// Replaced in the warehouse.
    Loaded,
    /// Refused for a reason time cures; the next attempt is scheduled.
    Deferred,
    /// Refused for a reason time cannot cure; the error says why.
    Failed,
    /// A newer batch for the same table and key replaced it before it landed.
    Superseded,
    /// The retry policy gave up (conflict resolution `timeout`); needs an operator.
    Unresolved,
}

impl UnitState {
    /// The snake_case name stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Loaded => "loaded",
            Self::Deferred => "deferred",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::Unresolved => "unresolved",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "loaded" => Self::Loaded,
            "deferred" => Self::Deferred,
            "failed" => Self::Failed,
            "superseded" => Self::Superseded,
            "unresolved" => Self::Unresolved,
            _ => return None,
        })
    }

    /// Whether the unit will not be attempted again by the scheduler.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Deferred)
    }
}
