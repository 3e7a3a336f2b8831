//! The conflict log as a searchable list for operators (`GET /v1/conflicts`): open and
//! closed conflicts filtered by processor, table, key text, type, resolution and time,
//! newest first, paged by a keyset cursor so a page never repeats or skips a row while new
//! conflicts arrive.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store};

/// Which conflicts to list; every field narrows, `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConflictFilter {
    /// Exact `processor_name`.
    pub processor: Option<String>,
    /// Exact table, `project.dataset.table`.
    pub table: Option<String>,
    /// Text the key's JSON must contain, case-insensitively (e.g. `LAL` finds
    /// `{"game_id": "20260124_LAL_BOS"}`).
    pub key: Option<String>,
    /// Exact `conflict_type`.
    pub conflict_type: Option<String>,
    /// [`Resolution`] filter.
    pub resolution: Option<Resolution>,
    /// First seen at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// First seen before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// How a listed conflict ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Not ended: no resolution method yet (the service is still retrying).
    Open,
    /// Ended one way or another (any resolution method, `timeout` included).
    Closed,
    /// Ended with this method: `auto_retry`, `manual`, `force_mode`, `timeout`, `superseded`.
    Method(String),
}

/// The resolution methods the conflict log holds (the seed's, plus `superseded`).
pub const RESOLUTION_METHODS: [&str; 5] = [
    "auto_retry",
    "manual",
    "force_mode",
    "timeout",
    "superseded",
];

/// Where a page starts: strictly after this (`timestamp`, `conflict_id`) in the list's
/// order (newest first, then id descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last listed conflict's `timestamp`.
    pub timestamp: DateTime<Utc>,
    /// The last listed conflict's id.
    pub conflict_id: Uuid,
}

impl Cursor {
    /// The cursor's text form, `<unix microseconds>_<conflict_id>`: opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.timestamp.timestamp_micros(), self.conflict_id)
    }

    /// Parses [`Cursor::encode`]'s form; `None` when it is not one.
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        Some(Self {
            timestamp: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            conflict_id: id.parse().ok()?,
        })
    }
}

/// One listed conflict: the seed's columns, how it ended, and its unit's state and next
/// attempt.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConflictListing {
    /// The conflict (`GET /v1/conflicts/{conflict_id}`).
    pub conflict_id: Uuid,
    /// When it was first seen.
    pub timestamp: DateTime<Utc>,
    /// Who sent the unit.
    pub processor_name: String,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// `game_id` of the key, when it has one.
    pub game_id: Option<String>,
    /// `game_date` of the key or partition, when it has one.
    pub game_date: Option<NaiveDate>,
    /// The write unit, when the service owns the write.
    pub unit_id: Option<Uuid>,
    /// `streaming_buffer`, `concurrent_dml` or `quota_exceeded`.
    pub conflict_type: String,
    /// Attempts so far.
    pub retry_attempt: i32,
    /// Attempts allowed.
    pub max_retries: i32,
    /// Whether it is resolved (`timeout` is not: it needs an operator).
    pub resolved: bool,
    /// How it ended, `null` while open.
    pub resolution_method: Option<String>,
    /// When it ended.
    pub resolution_time: Option<DateTime<Utc>>,
    /// The warehouse's last message.
    pub error_message: Option<String>,
    /// The unit's state now (`deferred`, `loaded`, `unresolved`, …).
    pub unit_state: Option<String>,
    /// When the service attempts the unit next; `null` when it will not.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Store {
    /// At most `limit` conflicts matching `filter`, newest first, starting after `after`;
    /// plus the cursor of the next page when there may be more.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn list_conflicts(
        &self,
        filter: &ConflictFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<(Vec<ConflictListing>, Option<Cursor>), Error> {
        let (resolution_kind, method) = match &filter.resolution {
            None => (None, None),
            Some(Resolution::Open) => (Some("open"), None),
            Some(Resolution::Closed) => (Some("closed"), None),
            Some(Resolution::Method(m)) => (Some("method"), Some(m.as_str())),
        };
        // Every filter is a bound parameter that is either null (no filter) or compared;
        // the keyset condition `(timestamp, id) < (cursor)` follows the order by, which
        // conflicts_timestamp_idx serves.
        let mut rows: Vec<ConflictListing> = sqlx::query_as(
            "select c.conflict_id, c.\"timestamp\", c.processor_name, c.table_ref as \"table\", c.key,
                    c.game_id, c.game_date, c.unit_id, c.conflict_type, c.retry_attempt, c.max_retries,
                    c.resolved, c.resolution_method, c.resolution_time, c.error_message,
                    u.state as unit_state, u.next_attempt_at
             from conflicts c left join write_units u using (unit_id)
             where ($1::text is null or c.processor_name = $1)
               and ($2::text is null or c.table_ref = $2)
               and ($3::text is null or strpos(lower(c.key::text), lower($3)) > 0)
               and ($4::text is null or c.conflict_type = $4)
               and ($5::text is null
                    or ($5 = 'open' and c.resolution_method is null)
                    or ($5 = 'closed' and c.resolution_method is not null)
                    or ($5 = 'method' and c.resolution_method = $6))
               and ($7::timestamptz is null or c.\"timestamp\" >= $7)
               and ($8::timestamptz is null or c.\"timestamp\" < $8)
               and ($9::timestamptz is null or (c.\"timestamp\", c.conflict_id) < ($9, $10::uuid))
             order by c.\"timestamp\" desc, c.conflict_id desc
             limit $11",
        )
        .bind(filter.processor.as_deref())
        .bind(filter.table.as_deref())
        .bind(filter.key.as_deref())
        .bind(filter.conflict_type.as_deref())
        .bind(resolution_kind)
        .bind(method)
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.map(|c| c.timestamp))
        .bind(after.map(|c| c.conflict_id))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more.then(|| {
            let last = rows.last().expect("a full page");
            Cursor {
                timestamp: last.timestamp,
                conflict_id: last.conflict_id,
            }
        });
        Ok((rows, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_garbage() {
        let c = Cursor {
            timestamp: DateTime::from_timestamp_micros(1_769_332_444_123_456).unwrap(),
            conflict_id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "x",
            "1_",
            "_00000000-0000-0000-0000-000000000000",
            "1_nope",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
