//! A write unit's state, as callers see it in `units[].state`.

use serde::{Deserialize, Serialize};

/// Where a write unit stands.
///
/// `pending` → (first attempt) → `loaded` | `deferred` | `failed`; `deferred` → … →
/// `loaded` | `unresolved` (the retry policy gave up); any not-landed unit → `superseded`
/// when a newer batch for the same table and key arrives; any not-landed unit →
/// `cancelled` when an operator cancels it (`POST /v1/units/{id}/cancel`) or resolves its
/// conflict by hand.
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
    /// An operator stopped it; it is never attempted again.
    Cancelled,
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
            Self::Cancelled => "cancelled",
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
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Whether the unit will not be attempted again by the scheduler.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_waiting_units_are_not_final() {
        for s in [
            UnitState::Pending,
            UnitState::Loaded,
            UnitState::Deferred,
            UnitState::Failed,
            UnitState::Superseded,
            UnitState::Unresolved,
            UnitState::Cancelled,
        ] {
            assert_eq!(UnitState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.is_final(),
                !matches!(s, UnitState::Pending | UnitState::Deferred)
            );
        }
        assert_eq!(UnitState::parse("gone"), None);
    }
}
