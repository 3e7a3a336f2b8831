//! Write units across batches, for operators: which are failed, unresolved, deferred or
//! still pending, newest change first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store};
use crate::domain::UnitState;

/// One unit with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UnitListing {
    /// The unit's id.
    pub unit_id: Uuid,
    /// Its batch (`GET /v1/batches/{batch_id}`).
    pub batch_id: Uuid,
    /// Who sent it.
    pub processor_name: String,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// The partition column's value, or `null`.
    pub partition: Option<Value>,
    /// The unit's state.
    pub state: String,
    /// Rows in the unit.
    pub rows: i32,
    /// Attempts made so far.
    pub attempts: i32,
    /// Its conflict, if it had one (`GET /v1/conflicts/{conflict_id}`).
    pub conflict_id: Option<Uuid>,
    /// When the scheduler attempts it next; `null` when it will not.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error: Option<String>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Units in `state` (any state when `None`), most recently changed first, at most
    /// `limit`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn units_in_state(
        &self,
        state: Option<UnitState>,
        limit: u32,
    ) -> Result<Vec<UnitListing>, Error> {
        Ok(sqlx::query_as(
            "select u.unit_id, u.batch_id, b.processor_name, u.table_ref as \"table\", u.key,
                    u.partition_value as partition, u.state, u.row_count as rows, u.attempts, u.conflict_id,
                    u.next_attempt_at, u.error, u.updated_at
             from write_units u join batches b using (batch_id)
             where ($1::text is null or u.state = $1)
             order by u.updated_at desc, u.unit_id
             limit $2",
        )
        .bind(state.map(UnitState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
