//! A processor's own conflict reports (`POST /v1/conflicts`, `/{id}/attempts`): the seed's
//! conflict-log columns checked field by field, logged and counted for the breaker. With
//! `rows` the service takes the write over: the rows are checked against the configured
//! [`crate::domain::batch::BatchLimits`] exactly like a batch, and stored as a write unit
//! whose first attempt waits for the processor's delay (or the policy's first delay).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Error, Ops};
use crate::domain::TableRef;
use crate::domain::{
    BatchRequest, ColumnName, ConflictType, ErrorClass, FieldError, ProcessorName,
};
use crate::store::operator::Report;

/// Largest attempt number or attempt budget a processor may report (the count is stored
/// as a 32-bit integer and incremented).
pub const MAX_ATTEMPT: i32 = 1_000_000;
/// Longest delay a processor may report: a year, in seconds.
pub const MAX_DELAY_SECONDS: i32 = 366 * 24 * 3600;

/// Each `(pointer, value, max)` whose value is outside `0..=max`, as a field error.
fn counts(fields: &[(&str, Option<i32>, i32)]) -> Vec<FieldError> {
    fields
        .iter()
        .filter(|(_, v, max)| v.is_some_and(|v| !(0..=*max).contains(&v)))
        .map(|(pointer, _, max)| FieldError::new(*pointer, format!("must be from 0 to {max}")))
        .collect()
}

/// Body of `POST /v1/conflicts`: the seed's conflict-log columns.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// Who hit the conflict.
    pub processor_name: String,
    /// Target table, `project.dataset.table`.
    pub table: String,
    /// Key column → value, e.g. `{"game_id": "20260124_LAL_BOS"}`.
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    /// Partition column → value (one entry), e.g. `{"game_date": "2026-01-24"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub partition: Option<Map<String, Value>>,
    /// `streaming_buffer`, `concurrent_dml` or `quota_exceeded`.
    pub conflict_type: ConflictType,
    /// BigQuery's message.
    pub error_message: String,
    /// The processor's attempts so far (default 1).
    #[serde(default)]
    pub retry_attempt: Option<i32>,
    /// The processor's chosen delay before its next attempt, seconds.
    #[serde(default)]
    pub delay_seconds: Option<i32>,
    /// The processor's attempt budget (with `rows` the service's policy applies instead).
    #[serde(default)]
    pub max_retries: Option<i32>,
    /// Rows the write affects.
    #[serde(default)]
    pub rows_affected: Option<i32>,
    /// Free-form details.
    #[serde(default)]
    pub details: Option<Value>,
    /// The rows to write: the service takes the write over and retries it.
    #[serde(default)]
    pub rows: Option<Vec<Value>>,
    /// With `rows`: re-posting the same key does not create a second unit.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Answer of `POST /v1/conflicts` and `/attempts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportAnswer {
    /// The conflict.
    pub conflict_id: Uuid,
    /// The write unit, when the service took the write over.
    pub unit_id: Option<Uuid>,
    /// Whether the service retries it (`rows` were given).
    pub taken_over: bool,
    /// When the service attempts it (taken over) — not before the delay.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The processor's attempt count.
    pub retry_attempt: i32,
    /// The scope's breaker state now: check it before writing again.
    pub breaker_state: String,
}

/// Body of `/attempts`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptBody {
    /// The attempt number (default: the last plus one).
    #[serde(default)]
    pub retry_attempt: Option<i32>,
    /// The delay chosen before the next attempt, seconds.
    #[serde(default)]
    pub delay_seconds: Option<i32>,
    /// BigQuery's message this time.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// The field errors of a report's own columns (not its rows).
fn check(body: &ReportBody) -> (Vec<FieldError>, Option<(String, Value)>) {
    let mut errors = Vec::new();
    if let Err(e) = ProcessorName::parse(&body.processor_name) {
        errors.push(FieldError::new("/processor_name", e.0));
    }
    if let Err(e) = TableRef::parse(&body.table) {
        errors.push(FieldError::new("/table", e.0));
    }
    if body.key.is_empty() {
        errors.push(FieldError::new("/key", "at least one key column"));
    }
    for column in body.key.keys() {
        if let Err(e) = ColumnName::parse(column) {
            errors.push(FieldError::new(format!("/key/{column}"), e.0));
        }
    }
    let partition = match &body.partition {
        None => None,
        Some(p) if p.len() == 1 => p
            .iter()
            .next()
            .and_then(|(c, v)| match ColumnName::parse(c) {
                Ok(_) => Some((c.clone(), v.clone())),
                Err(e) => {
                    errors.push(FieldError::new(format!("/partition/{c}"), e.0));
                    None
                }
            }),
        Some(_) => {
            errors.push(FieldError::new("/partition", "one column → value"));
            None
        }
    };
    if body.error_message.trim().is_empty() {
        errors.push(FieldError::new(
            "/error_message",
            "required: BigQuery's message",
        ));
    }
    errors.extend(counts(&[
        ("/retry_attempt", body.retry_attempt, MAX_ATTEMPT),
        ("/delay_seconds", body.delay_seconds, MAX_DELAY_SECONDS),
        ("/rows_affected", body.rows_affected, i32::MAX),
        ("/max_retries", body.max_retries, MAX_ATTEMPT),
    ]));
    (errors, partition)
}

/// The retry class of a reported conflict type.
fn class(t: ConflictType) -> ErrorClass {
    match t {
        ConflictType::StreamingBuffer => ErrorClass::StreamingBuffer,
        ConflictType::ConcurrentDml => ErrorClass::ConcurrentDml,
        ConflictType::QuotaExceeded => ErrorClass::QuotaExceeded,
    }
}

impl Ops {
    /// Logs a processor's conflict; with `rows`, takes the write over.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming each field that breaks a rule or limit (nothing logged);
    /// the store's refusals.
    pub async fn report(&self, body: &ReportBody) -> Result<ReportAnswer, Error> {
        let (errors, partition) = check(body);
        if !errors.is_empty() {
            return Err(Error::Invalid {
                detail: "the conflict report breaks a rule; nothing was logged".into(),
                errors,
            });
        }
        let report = Report {
            processor_name: body.processor_name.clone(),
            table: body.table.clone(),
            key: Value::Object(body.key.clone()),
            partition: partition.clone(),
            conflict_type: body.conflict_type,
            error_message: body.error_message.clone(),
            retry_attempt: body.retry_attempt.unwrap_or(1),
            delay_seconds: body.delay_seconds,
            max_retries: body.max_retries,
            rows_affected: body.rows_affected.or(body
                .rows
                .as_ref()
                .map(|r| i32::try_from(r.len()).unwrap_or(i32::MAX))),
            details: body.details.clone(),
        };
        let (conflict_id, unit_id, next) = match &body.rows {
            None => {
                let (id, _) = self.store.report_conflict(&report, None).await?;
                (id, None, None)
            }
            Some(rows) => {
                let request = BatchRequest {
                    processor_name: body.processor_name.clone(),
                    table: body.table.clone(),
                    key_columns: body.key.keys().cloned().collect(),
                    partition_column: partition.as_ref().map(|p| p.0.clone()),
                    rows: rows.clone(),
                    delete_keys: Vec::new(),
                    idempotency_key: body.idempotency_key.clone(),
                    run: None,
                };
                let batch = request
                    .validate(&self.limits)
                    .map_err(|errors| Error::Invalid {
                        detail: "the rows break a rule; nothing was logged".into(),
                        errors,
                    })?;
                let hash =
                    Sha256::digest(serde_json::to_vec(&request).map_err(anyhow::Error::from)?);
                let delay = body
                    .delay_seconds
                    .map(|s| std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                    .unwrap_or_else(|| self.retry.base_delay(1, class(body.conflict_type)));
                let at =
                    self.store.now().await? + chrono::Duration::from_std(delay).unwrap_or_default();
                let (id, unit) = self
                    .store
                    .report_conflict(
                        &report,
                        Some((&batch, &hash, self.retry.max_attempts(), at)),
                    )
                    .await?;
                (id, unit, Some(at))
            }
        };
        tracing::info!(%conflict_id, processor = %body.processor_name, table = %body.table, taken_over = unit_id.is_some(), "conflict reported by processor");
        Ok(ReportAnswer {
            conflict_id,
            unit_id,
            taken_over: unit_id.is_some(),
            next_attempt_at: next,
            retry_attempt: report.retry_attempt,
            breaker_state: self
                .breaker_state(&body.processor_name, &body.table)
                .await?,
        })
    }

    /// Logs a processor's next attempt at a conflict it reported.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a count or delay out of range; [`Error::NotFound`]; the
    /// store's refusals (the service retries it, or it has ended).
    pub async fn report_attempt(
        &self,
        conflict_id: Uuid,
        body: &AttemptBody,
    ) -> Result<ReportAnswer, Error> {
        let errors = counts(&[
            ("/retry_attempt", body.retry_attempt, MAX_ATTEMPT),
            ("/delay_seconds", body.delay_seconds, MAX_DELAY_SECONDS),
        ]);
        if !errors.is_empty() {
            return Err(Error::Invalid {
                detail: "the attempt report breaks a rule; nothing was logged".into(),
                errors,
            });
        }
        let retry_attempt = self
            .store
            .report_attempt(
                conflict_id,
                body.retry_attempt,
                body.delay_seconds,
                body.error_message.as_deref(),
            )
            .await?;
        let t = self.target(conflict_id).await?;
        Ok(ReportAnswer {
            conflict_id,
            unit_id: None,
            taken_over: false,
            next_attempt_at: None,
            retry_attempt,
            breaker_state: self.breaker_state(&t.processor_name, &t.table).await?,
        })
    }

    /// The conflict an action names.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none.
    pub async fn target(&self, conflict_id: Uuid) -> Result<crate::store::operator::Target, Error> {
        self.store
            .operator_target(conflict_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))
    }

    async fn breaker_state(&self, processor: &str, table: &str) -> Result<String, Error> {
        let scope = self.store.config().breaker_scope.of(processor, table);
        Ok(self
            .store
            .breaker(scope)
            .await?
            .map_or("closed", |(b, _)| b.state.as_str())
            .to_owned())
    }
}
