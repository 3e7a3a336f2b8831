//! Operator actions and processor-reported conflicts:
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/conflicts` | a processor reports a conflict it hit (with `rows`: the service takes the write over) |
//! | `POST /v1/conflicts/{id}/attempts` | the processor tried again and hit it again |
//! | `POST /v1/conflicts/{id}/resolve` | ended: `manual` (note required) or, for a processor's own, `auto_retry` |
//! | `POST /v1/conflicts/{id}/retry` | attempt now, ignoring backoff (and the breaker with `ignore_breaker`) |
//! | `POST /v1/conflicts/{id}/force` | force mode, made safe: `reason` required, `dry_run` writes nothing, refused on a superseded unit, always the atomic replace |
//! | `POST /v1/units/{id}/cancel` | stop retrying a unit |
//!
//! Every action is recorded with the [`Actor`], the reason and the time, in the conflict
//! log (`details.operator_actions`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::auth::Actor;
use super::breakers::required_reason;
use super::extract::{Json as ApiJson, Path};
use super::{AppState, Error, Result};
use crate::domain::{
    BatchRequest, ColumnName, ConflictType, ErrorClass, FieldError, ProcessorName, TableRef,
};
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::jobs::{GroupBounds, Recorded, Verdict};
use crate::store::operator::{ActionResult, Report};
use crate::warehouse::{KeyRows, StreamingBuffer, WriteUnit};

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

/// The operator and report routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conflicts", post(report))
        .route("/v1/conflicts/{conflict_id}/attempts", post(attempt))
        .route("/v1/conflicts/{conflict_id}/resolve", post(resolve))
        .route("/v1/conflicts/{conflict_id}/retry", post(retry))
        .route("/v1/conflicts/{conflict_id}/force", post(force))
        .route("/v1/units/{unit_id}/cancel", post(cancel))
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

/// Body of `/resolve`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `manual` (default; `note` required) or `auto_retry` (a processor's own retry landed).
    #[serde(default = "manual")]
    pub method: String,
    /// What the operator did.
    #[serde(default)]
    pub note: String,
}
fn manual() -> String {
    "manual".into()
}

/// Body of `/retry`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Attempt even while the scope's breaker is open (once).
    #[serde(default)]
    pub ignore_breaker: bool,
    /// Why (optional).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `/force`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceBody {
    /// Why (required).
    #[serde(default)]
    pub reason: String,
    /// Answer what would happen, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of `/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why (required).
    #[serde(default)]
    pub reason: String,
}

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

#[utoipa::path(
    post,
    path = "/v1/conflicts",
    operation_id = "report_conflict",
    tag = "conflicts",
    request_body(content = ReportBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Logged with the conflict log's columns and counted for the breaker; with `rows`, the service took the write over.", body = ReportAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule (names, key, partition, counts, rows of another key); `errors[]` names each by JSON pointer. Nothing was logged.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReportBody>,
) -> Result<impl IntoResponse> {
    let mut errors = Vec::new();
    if let Err(e) = ProcessorName::parse(&body.processor_name) {
        errors.push(FieldError::new("/processor_name", e.0));
    }
    let table =
        TableRef::parse(&body.table).map_err(|e| errors.push(FieldError::new("/table", e.0)));
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
    if !errors.is_empty() || table.is_err() {
        return Err(Error::Unprocessable {
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
    let policy = &*state.retry;
    let (conflict_id, unit_id, next) = match &body.rows {
        None => {
            let (id, _) = state.store.report_conflict(&report, None).await?;
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
                .validate(&state.limits)
                .map_err(|errors| Error::Unprocessable {
                    detail: "the rows break a rule; nothing was logged".into(),
                    errors,
                })?;
            let hash = Sha256::digest(
                serde_json::to_vec(&request).map_err(|e| Error::Internal(e.into()))?,
            );
            let class = match body.conflict_type {
                ConflictType::StreamingBuffer => ErrorClass::StreamingBuffer,
                ConflictType::ConcurrentDml => ErrorClass::ConcurrentDml,
                ConflictType::QuotaExceeded => ErrorClass::QuotaExceeded,
            };
            let delay = body
                .delay_seconds
                .map(|s| std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or_else(|| policy.base_delay(1, class));
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            let (id, unit) = state
                .store
                .report_conflict(&report, Some((&batch, &hash, policy.max_attempts(), at)))
                .await?;
            (id, unit, Some(at))
        }
    };
    tracing::info!(%conflict_id, processor = %body.processor_name, table = %body.table, taken_over = unit_id.is_some(), "conflict reported by processor");
    let breaker_state = breaker_state(&state, &body.processor_name, &body.table).await?;
    Ok((
        StatusCode::CREATED,
        Json(ReportAnswer {
            conflict_id,
            unit_id,
            taken_over: unit_id.is_some(),
            next_attempt_at: next,
            retry_attempt: report.retry_attempt,
            breaker_state,
        }),
    ))
}

async fn breaker_state(state: &AppState, processor: &str, table: &str) -> Result<String> {
    let scope = state.store.config().breaker_scope.of(processor, table);
    Ok(state
        .store
        .breaker(scope)
        .await?
        .map_or("closed", |(b, _)| b.state.as_str())
        .to_owned())
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/attempts",
    operation_id = "report_conflict_attempt",
    tag = "conflicts",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = AttemptBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged and counted for the breaker; `breaker_state` says whether to wait.", body = ReportAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The conflict is retried by the service, or has ended.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A count or delay is out of range.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn attempt(
    State(state): State<AppState>,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<AttemptBody>,
) -> Result<Json<ReportAnswer>> {
    let errors = counts(&[
        ("/retry_attempt", body.retry_attempt, MAX_ATTEMPT),
        ("/delay_seconds", body.delay_seconds, MAX_DELAY_SECONDS),
    ]);
    if !errors.is_empty() {
        return Err(Error::Unprocessable {
            detail: "the attempt report breaks a rule; nothing was logged".into(),
            errors,
        });
    }
    let retry_attempt = state
        .store
        .report_attempt(
            conflict_id,
            body.retry_attempt,
            body.delay_seconds,
            body.error_message.as_deref(),
        )
        .await?;
    let t = target(&state, conflict_id).await?;
    Ok(Json(ReportAnswer {
        conflict_id,
        unit_id: None,
        taken_over: false,
        next_attempt_at: None,
        retry_attempt,
        breaker_state: breaker_state(&state, &t.processor_name, &t.table).await?,
    }))
}

async fn target(state: &AppState, conflict_id: Uuid) -> Result<crate::store::operator::Target> {
    state
        .store
        .operator_target(conflict_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no conflict {conflict_id}")))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/resolve",
    operation_id = "resolve_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = ResolveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Resolved; a unit the service still retried is cancelled.", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already resolved, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`note` missing for `manual`, an unknown `method`, or `auto_retry` on the service's own conflict.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<ActionResult>> {
    let t = target(&state, conflict_id).await?;
    let note =
        match body.method.as_str() {
            "manual" => required_reason(&body.note, "/note")?.to_owned(),
            "auto_retry" if t.unit_id.is_none() => {
                let n = body.note.trim();
                if n.is_empty() {
                    "the processor's own retry landed".to_owned()
                } else {
                    n.to_owned()
                }
            }
            "auto_retry" => return Err(Error::Unprocessable {
                detail:
                    "the service retries this conflict itself; an operator resolves it as `manual`"
                        .into(),
                errors: vec![FieldError::new(
                    "/method",
                    "only `manual` for the service's own conflicts",
                )],
            }),
            _ => {
                return Err(Error::Unprocessable {
                    detail: "`method` is `manual` or `auto_retry`".into(),
                    errors: vec![FieldError::new("/method", "`manual` or `auto_retry`")],
                })
            }
        };
    Ok(Json(
        state
            .store
            .resolve_conflict(conflict_id, &body.method, &note, &actor.name)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/retry",
    operation_id = "retry_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = RetryBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The unit is due now (a given-up unit gets one more attempt).", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved, kept by its processor, superseded, cancelled, landed, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body does not have the expected shape (an unknown field, a wrong type).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<RetryBody>,
) -> Result<Json<ActionResult>> {
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("(no reason given)");
    Ok(Json(
        state
            .store
            .retry_conflict(conflict_id, body.ignore_breaker, &actor.name, reason)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/conflicts/{conflict_id}/force",
    operation_id = "force_conflict",
    tag = "operator",
    params(("conflict_id" = Uuid, Path, description = "The conflict's id.")),
    request_body(content = ForceBody, content_type = "application/json"),
    responses(
        (status = 200, description = "A dry run's answer (nothing written), or a real run's: the atomic replace landed (`force_mode`) or was refused (a conflict, recorded).", body = ForceAnswer),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conflict (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Superseded by a newer batch, resolved, kept by its processor, cancelled, landed, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason` is missing or blank.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dry run: the warehouse could not count the key's rows.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn force(
    State(state): State<AppState>,
    actor: Actor,
    Path(conflict_id): Path<Uuid>,
    ApiJson(body): ApiJson<ForceBody>,
) -> Result<Json<ForceAnswer>> {
    let reason = required_reason(&body.reason, "/reason")?.to_owned();
    if body.dry_run {
        return Ok(Json(ForceAnswer::DryRun(
            dry_run(&state, conflict_id).await?,
        )));
    }
    let replica = format!("operator:{}", actor.name);
    let job = state
        .store
        .claim_for_force(
            conflict_id,
            &replica,
            state.scheduler.lease,
            &actor.name,
            &reason,
        )
        .await?;
    let unit_id = job.unit_id;
    tracing::warn!(%conflict_id, %unit_id, actor = %actor.name, %reason, "force mode: attempting the atomic replace now");
    let scheduler = Scheduler::new(
        state.store.clone(),
        state.warehouse.clone(),
        (*state.retry).clone(),
        SchedulerSettings {
            replica,
            concurrency: 1,
            bounds: GroupBounds::SINGLE,
            linger: std::time::Duration::ZERO,
            ..(*state.scheduler).clone()
        },
    );
    let (verdict, recorded) = scheduler
        .attempt_and_record(job, true)
        .await
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("recording the forced attempt failed")))?;
    if recorded == Recorded::LeaseLost {
        return Err(Error::Conflict(
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
    let (unit_state, next_attempt_at) = unit_now(&state, unit_id).await?;
    Ok(Json(ForceAnswer::Forced(Forced {
        dry_run: false,
        landed,
        outcome,
        result: ActionResult {
            action: "force",
            conflict_id: Some(conflict_id),
            unit_id: Some(unit_id),
            unit_state: Some(unit_state),
            next_attempt_at,
            actor: actor.name,
            reason,
        },
        error,
    })))
}

async fn unit_now(state: &AppState, unit_id: Uuid) -> Result<(String, Option<DateTime<Utc>>)> {
    let view = state
        .store
        .unit(unit_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no unit {unit_id}")))?;
    Ok((view.state, view.next_attempt_at))
}

async fn dry_run(state: &AppState, conflict_id: Uuid) -> Result<DryRun> {
    let t = state.store.check_force(conflict_id).await?;
    let table = TableRef::parse(&t.table).map_err(|e| Error::Internal(anyhow::anyhow!(e.0)))?;
    let partition = match (&t.partition_column, &t.partition) {
        (Some(c), Some(v)) => Some((
            ColumnName::parse(c).map_err(|e| Error::Internal(anyhow::anyhow!(e.0)))?,
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
    let rows_stored = state.warehouse.key_rows(&table, &unit).await.map_err(|e| {
        Error::Unavailable(format!("the warehouse could not count the key's rows: {e}"))
    })?;
    let buffer = state
        .warehouse
        .streaming_buffer(&table)
        .await
        .ok()
        .flatten();
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

#[utoipa::path(
    post,
    path = "/v1/units/{unit_id}/cancel",
    operation_id = "cancel_unit",
    tag = "operator",
    params(("unit_id" = Uuid, Path, description = "The write unit's id.")),
    request_body(content = CancelBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled: never attempted again; its open conflict resolved `manual`.", body = ActionResult),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such unit (or the id is not a UUID).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The unit already landed or ended, or an attempt is in flight.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason` is missing or blank.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    Path(unit_id): Path<Uuid>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Json<ActionResult>> {
    let reason = required_reason(&body.reason, "/reason")?;
    Ok(Json(
        state
            .store
            .cancel_unit(unit_id, &actor.name, reason)
            .await?,
    ))
}
