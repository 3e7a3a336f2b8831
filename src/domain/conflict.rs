//! The conflict log's vocabulary, kept from the seed (`docs/architecture.md`, "Words"):
//! conflict types and resolution methods, plus the error classes the warehouse reports.

use serde::{Deserialize, Serialize};

/// How a warehouse failure is to be treated. The warehouse adapter classifies; nothing
/// downstream matches on error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The statement would touch rows in BigQuery's streaming buffer; time cures it.
    StreamingBuffer,
    /// Another DML statement or transaction touched the table; retry soon.
    ConcurrentDml,
    /// A rate limit or quota; retry later.
    QuotaExceeded,
    /// The outcome is unknown or the service failed (5xx, timeout, undecodable body); retry.
    Transient,
    /// Waiting cannot cure it (bad table, bad schema, access denied): the unit fails.
    Permanent,
}

impl ErrorClass {
    /// The conflict type for this class, or `None` when it is not a conflict.
    pub fn conflict_type(self) -> Option<ConflictType> {
        match self {
            Self::StreamingBuffer => Some(ConflictType::StreamingBuffer),
            Self::ConcurrentDml => Some(ConflictType::ConcurrentDml),
            Self::QuotaExceeded => Some(ConflictType::QuotaExceeded),
            Self::Transient | Self::Permanent => None,
        }
    }

    /// Whether another attempt can succeed.
    pub fn is_retryable(self) -> bool {
        self != Self::Permanent
    }

    /// The snake_case name stored in Postgres and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamingBuffer => "streaming_buffer",
            Self::ConcurrentDml => "concurrent_dml",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

/// Why BigQuery refused a write unit in a way that time cures (seed: `conflict_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictType {
    /// Rows of the key are (or may be) in the streaming buffer.
    StreamingBuffer,
    /// Concurrent mutating DML on the same table.
    ConcurrentDml,
    /// Rate limit or quota exceeded.
    QuotaExceeded,
}

impl ConflictType {
    /// The snake_case name stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamingBuffer => "streaming_buffer",
            Self::ConcurrentDml => "concurrent_dml",
            Self::QuotaExceeded => "quota_exceeded",
        }
    }
}

/// How a conflict ended (seed: `resolution_method`, plus `superseded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionMethod {
    /// A later attempt by the scheduler landed.
    AutoRetry,
    /// An operator marked it resolved by hand.
    Manual,
    /// An operator forced the replace.
    ForceMode,
    /// The retry policy gave up; the conflict stays unresolved.
    Timeout,
    /// A newer batch for the same table and key replaced the unit before it landed.
    Superseded,
}

impl ResolutionMethod {
    /// The snake_case name stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AutoRetry => "auto_retry",
            Self::Manual => "manual",
            Self::ForceMode => "force_mode",
            Self::Timeout => "timeout",
            Self::Superseded => "superseded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_time_curable_classes_are_conflicts() {
        assert_eq!(
            ErrorClass::StreamingBuffer.conflict_type(),
            Some(ConflictType::StreamingBuffer)
        );
        assert_eq!(
            ErrorClass::ConcurrentDml.conflict_type(),
            Some(ConflictType::ConcurrentDml)
        );
        assert_eq!(
            ErrorClass::QuotaExceeded.conflict_type(),
            Some(ConflictType::QuotaExceeded)
        );
        assert_eq!(ErrorClass::Transient.conflict_type(), None);
        assert_eq!(ErrorClass::Permanent.conflict_type(), None);
        assert!(!ErrorClass::Permanent.is_retryable());
        assert!(ErrorClass::Transient.is_retryable());
    }

    #[test]
    fn names_match_the_seed_vocabulary() {
        let json = serde_json::to_string(&ResolutionMethod::AutoRetry).unwrap();
        assert_eq!(json, "\"auto_retry\"");
        assert_eq!(ResolutionMethod::ForceMode.as_str(), "force_mode");
        assert_eq!(ConflictType::ConcurrentDml.as_str(), "concurrent_dml");
    }
}
