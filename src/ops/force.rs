//! An operator's force (`POST /v1/conflicts/{id}/force`), made safe: a reason is required,
//! a dry run writes nothing and says what a real run would do, a superseded unit is
//! refused, and a real run is always the atomic replace — run now, through the scheduler's
//! own attempt and recording code, fenced by the job's lease.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{required_reason, Error, Ops};
use crate::domain::{ColumnName, ErrorClass, TableRef};
use crate::store::jobs::{Recorded, Verdict};
use crate::store::operator::ActionResult;
use crate::warehouse::{KeyRows, StreamingBuffer, WriteUnit};

/// Answer of a force dry run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// Always `true`: nothing was written.
    pub dry_run: bool,
    /// The conflict.
    pub conflict_id: Uuid,
    /// Its unit.
    pub unit_id: Option<Uuid>,
    /// Target table.
    pub table: String,
    /// Key column → value.
    pub key: Value,
    /// The partition value, if any.
    pub partition: Option<Value>,
    /// Rows the table holds for the key now (all deleted by the replace); `null` when the
    /// warehouse cannot say.
    pub rows_stored: Option<KeyRows>,
    /// Rows the replace would insert.
    pub rows_to_write: i32,
    /// The table's streaming buffer, when the warehouse reports one.
    pub streaming_buffer: Option<BufferView>,
    /// What a real run would do, in words.
    pub would: String,
}

/// The streaming-buffer hint in a dry run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BufferView {
    /// Lower-bound estimate of buffered rows in the table.
    pub estimated_rows: Option<u64>,
    /// When the buffer can first have drained.
    pub earliest_drain: Option<DateTime<Utc>>,
}

impl From<StreamingBuffer> for BufferView {
    fn from(b: StreamingBuffer) -> Self {
        Self {
            estimated_rows: b.estimated_rows,
            earliest_drain: b.earliest_drain,
        }
    }
}

/// Answer of `POST /v1/conflicts/{id}/force`: a dry run's or a real run's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ForceAnswer {
    /// `dry_run: true`: what would happen; nothing written.
    DryRun(DryRun),
    /// A real run's result.
    Forced(Forced),
}

/// Answer of a real force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Forced {
    /// Always `false`.
    pub dry_run: bool,
    /// Whether the replace landed (the conflict is then resolved `force_mode`).
    pub landed: bool,
    /// `loaded`, `conflict` (refused; recorded, retried by the policy), `transient`, `failed`.
    pub outcome: &'static str,
    /// The unit's state afterwards, with the actor and reason.
    #[serde(flatten)]
    pub result: ActionResult,
    /// The warehouse's message when it did not land.
    pub error: Option<String>,
}

impl Ops {
    /// Forces the conflict's unit now (or, with `dry_run`, says what that would do).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank reason; [`Error::NotFound`]; [`Error::Refused`] when
    /// the unit is superseded, ended, in flight, or the forced attempt lost its lease;
    /// [`Error::Unavailable`] when a dry run cannot count the key's rows.
    pub async fn force(
        &self,
        conflict_id: Uuid,
        actor: &str,
        reason: &str,
        dry_run: bool,
    ) -> Result<ForceAnswer, Error> {
        let reason = required_reason(reason, "/reason")?.to_owned();
        if dry_run {
            return Ok(ForceAnswer::DryRun(self.dry_run(conflict_id).await?));
        }
        let job = self
            .store
            .claim_for_force(
                conflict_id,
                &format!("operator:{actor}"),
                self.lease,
                actor,
                &reason,
            )
            .await?;
        let unit_id = job.unit_id;
        tracing::warn!(%conflict_id, %unit_id, %actor, %reason, "force mode: attempting the atomic replace now");
        let (verdict, recorded) = self
            .forcer
            .attempt_and_record(job, true)
            .await
            .ok_or_else(|| anyhow::anyhow!("recording the forced attempt failed"))?;
        if recorded == Recorded::LeaseLost {
            return Err(Error::Refused(
                "the forced attempt lost its lease; its result was dropped".into(),
            ));
        }
        let (landed, outcome, error) = match &verdict {
            Verdict::Loaded { .. } => (true, "loaded", None),
            Verdict::Retry { class, message, .. } | Verdict::GiveUp { class, message } => (
                false,
                match class {
                    c if c.conflict_type().is_some() => "conflict",
                    ErrorClass::Permanent => "failed",
                    _ => "transient",
                },
                Some(message.clone()),
            ),
        };
        let unit = self
            .store
            .unit(unit_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no unit {unit_id}")))?;
        Ok(ForceAnswer::Forced(Forced {
            dry_run: false,
            landed,
            outcome,
            result: ActionResult {
                action: "force",
                conflict_id: Some(conflict_id),
                unit_id: Some(unit_id),
                unit_state: Some(unit.state),
                next_attempt_at: unit.next_attempt_at,
                actor: actor.to_owned(),
                reason,
            },
            error,
        }))
    }

    async fn dry_run(&self, conflict_id: Uuid) -> Result<DryRun, Error> {
        let t = self.store.check_force(conflict_id).await?;
        let table = TableRef::parse(&t.table).map_err(|e| anyhow::anyhow!(e.0))?;
        let partition = match (&t.partition_column, &t.partition) {
            (Some(c), Some(v)) => Some((
                ColumnName::parse(c).map_err(|e| anyhow::anyhow!(e.0))?,
                v.clone(),
            )),
            _ => None,
        };
        let unit = WriteUnit {
            unit_id: t.unit_id.unwrap_or_default(),
            attempt: 0,
            key: t.key.as_object().cloned().unwrap_or_default(),
            partition,
            rows: Vec::new(),
        };
        let rows_stored = self.warehouse.key_rows(&table, &unit).await.map_err(|e| {
            Error::Unavailable(format!("the warehouse could not count the key's rows: {e}"))
        })?;
        let buffer = self.warehouse.streaming_buffer(&table).await.ok().flatten();
        let rows_to_write = t.row_count.unwrap_or(0);
        let would = match rows_stored {
            Some(KeyRows { stored, buffered }) if buffered > 0 => format!(
                "refused: {buffered} of the key's {stored} stored rows are in the streaming buffer, so the atomic replace would fail (a conflict, recorded) and write nothing"
            ),
            Some(KeyRows { stored, .. }) => format!(
                "one atomic replace: delete the key's {stored} stored rows and insert {rows_to_write}, or change nothing"
            ),
            None => format!(
                "one atomic replace: delete every stored row of the key and insert {rows_to_write}, or change nothing"
            ),
        };
        Ok(DryRun {
            dry_run: true,
            conflict_id,
            unit_id: t.unit_id,
            table: t.table,
            key: t.key,
            partition: t.partition,
            rows_stored,
            rows_to_write,
            streaming_buffer: buffer.map(Into::into),
            would,
        })
    }
}
