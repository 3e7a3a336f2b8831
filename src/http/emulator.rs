//! The emulator's routes, mounted only when the emulator is the warehouse: stream rows
//! into a table's buffer as a processor's `insertAll` would, and read a table back — so
//! anyone can create conflicts and check the final table from outside. Table definitions
//! (`POST /emulator/tables`) are in [`super::emulator_tables`].

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::extract::{Json as ApiJson, Path};
use super::{AppState, Error, Result};
use crate::domain::{ColumnName, FieldError, TableRef};
use crate::warehouse::emulator::{BufferTime, Emulator, StoredRow};
use crate::warehouse::emulator_tables::{InsertAllError, SchemaSource};

/// The emulator routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/emulator/tables/{table}/insertAll", post(insert_all))
        .route("/emulator/tables/{table}/rows", get(rows))
        .merge(super::emulator_tables::router())
        .merge(super::emulator_faults::router())
}

/// Body of `POST /emulator/tables/{table}/insertAll`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"rows": [{"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebronjames", "points": 28, "rebounds": 8, "assists": 9}], "buffer": "30s"}))]
#[serde(deny_unknown_fields)]
pub struct InsertAllRequest {
    /// Rows (JSON objects) to stream into the buffer.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// How long these rows stay buffered (`30s`, `20s..60s`); the configured
    /// `STREAMGUARD_EMULATOR_BUFFER` when absent.
    #[serde(default)]
    pub buffer: Option<String>,
}

/// Answer of insertAll.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"table": "nba-props-platform.nba_raw.bdl_player_boxscores", "inserted": 26, "buffered_until": "2026-01-25T09:15:00Z", "schema_source": "declared"}))]
pub struct InsertAllResponse {
    /// The table.
    pub table: String,
    /// Rows streamed.
    pub inserted: usize,
    /// When they leave the buffer.
    pub buffered_until: chrono::DateTime<chrono::Utc>,
    /// The schema the rows were checked against: `declared` (`POST /emulator/tables`) or
    /// `inferred` (nobody declared one; inferred from the table's first write, maybe
    /// this one — see `GET /emulator/tables/{table}`).
    pub schema_source: SchemaSource,
}

/// Answer of `GET /emulator/tables/{table}/rows`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
    "total_rows": 2,
    "buffered_rows": 1,
    "rows": [
        {"data": {"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebronjames", "points": 28, "rebounds": 8, "assists": 9}, "buffered": false, "buffered_until": null},
        {"data": {"game_id": "20260124_MIA_NYK", "game_date": "2026-01-24", "player_lookup": "jalenbrunson", "points": 35, "rebounds": 4, "assists": 7}, "buffered": true, "buffered_until": "2026-01-25T09:15:00Z"}
    ]
}))]
pub struct RowsResponse {
    /// The table.
    pub table: String,
    /// Rows in all.
    pub total_rows: usize,
    /// Of which still in the streaming buffer.
    pub buffered_rows: usize,
    /// Every row, in insertion order.
    pub rows: Vec<StoredRow>,
}

pub(super) fn emulator(state: &AppState) -> Result<&Emulator> {
    state
        .emulator
        .as_ref()
        .ok_or_else(|| Error::NotFound("the emulator is not the warehouse".into()))
}

pub(super) fn table(raw: &str) -> Result<TableRef> {
    TableRef::parse(raw).map_err(|e| Error::Unprocessable {
        detail: format!("bad table in the path: {e}"),
        errors: vec![FieldError::new("/table", e.0)],
    })
}

/// Streams rows into a table's streaming buffer, as a processor's `insertAll` would
/// (creates the table on first use, its schema inferred from these rows unless declared
/// with `POST /emulator/tables`). Rows are checked against the table's schema; one bad row
/// refuses them all, each problem answered with BigQuery's message. Buffered rows make a replace of their partition
/// conflict until the buffer time passes.
#[utoipa::path(
    post,
    path = "/emulator/tables/{table}/insertAll",
    operation_id = "emulator_insert_all",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    request_body(content = InsertAllRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Streamed.", body = InsertAllResponse),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad table name, a row that is not an object, a column name BigQuery refuses, a bad or too long buffer time, a number that would be rounded, or rows that do not fit the table's schema (each with its pointer and BigQuery's message).", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn insert_all(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(request): ApiJson<InsertAllRequest>,
) -> Result<Json<InsertAllResponse>> {
    let table = table(&raw)?;
    let mut errors = Vec::new();
    let rows: Vec<Map<String, Value>> = request
        .rows
        .into_iter()
        .enumerate()
        .filter_map(|(i, row)| match row {
            Value::Object(m) => {
                // The same naming rule as batches: a BigQuery column name.
                for name in m.keys() {
                    if let Err(e) = ColumnName::parse(name) {
                        let token = name.replace('~', "~0").replace('/', "~1");
                        errors.push(FieldError::new(format!("/rows/{i}/{token}"), e.0));
                    }
                }
                Some(m)
            }
            _ => {
                errors.push(FieldError::new(
                    format!("/rows/{i}"),
                    "each row must be a JSON object",
                ));
                None
            }
        })
        .collect();
    let buffer = request.buffer.as_deref().map(|b| {
        b.parse::<BufferTime>()
            .map_err(|e| errors.push(FieldError::new("/buffer", e)))
    });
    if !errors.is_empty() {
        return Err(Error::Unprocessable {
            detail: "nothing was inserted".into(),
            errors,
        });
    }
    let buffer = buffer.and_then(Result::ok);
    let (buffered_until, schema_source) = emulator(&state)?
        .insert_all(&table, &rows, buffer)
        .await
        .map_err(|e| match e {
            InsertAllError::Refused(problems) => Error::Unprocessable {
                detail: format!(
                    "{} problem(s) with the rows against the table's schema, in BigQuery's words; nothing was inserted",
                    problems.len()
                ),
                errors: problems
                    .into_iter()
                    .map(|p| FieldError::new(p.pointer, p.bigquery))
                    .collect(),
            },
            InsertAllError::Storage(e) => Error::Internal(e.into()),
        })?;
    Ok(Json(InsertAllResponse {
        table: table.to_string(),
        inserted: rows.len(),
        buffered_until,
        schema_source,
    }))
}

/// Every row of a table, with whether it is still in the streaming buffer.
#[utoipa::path(
    get,
    path = "/emulator/tables/{table}/rows",
    operation_id = "emulator_rows",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    responses(
        (status = 200, description = "The table's rows (none for a table never written).", body = RowsResponse),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The table name breaks BigQuery's naming rules.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn rows(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RowsResponse>> {
    let table = table(&raw)?;
    let rows = emulator(&state)?
        .rows(&table)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let buffered_rows = rows.iter().filter(|r| r.buffered).count();
    Ok(Json(RowsResponse {
        table: table.to_string(),
        total_rows: rows.len(),
        buffered_rows,
        rows,
    }))
}
