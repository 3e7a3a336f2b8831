//! Emulator table definitions over HTTP (mounted with the other emulator routes):
//! `POST /emulator/tables` takes the body of BigQuery's `tables.insert`
//! (<https://cloud.google.com/bigquery/docs/reference/rest/v2/tables/insert>) and
//! `GET /emulator/tables/{table}` shows a table's definition and whether it was declared
//! or inferred from the first write.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Json as ApiJson, Path};
use super::{AppState, Error, Result};
use crate::domain::{FieldError, TableRef, TableSchema};
use crate::warehouse::emulator::Emulator;
use crate::warehouse::emulator_tables::{DeclareError, SchemaSource};

/// The table-definition routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/emulator/tables", post(declare))
        .route("/emulator/tables/{table}", get(show))
}

/// `tableReference` of a `tables.insert` body.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableReference {
    /// Project id, e.g. `nba-props-platform`.
    pub project_id: String,
    /// Dataset id, e.g. `nba_raw`.
    pub dataset_id: String,
    /// Table id, e.g. `bdl_player_boxscores`.
    pub table_id: String,
}

/// The body of `POST /emulator/tables`: BigQuery's `Table` resource as `tables.insert`
/// takes it (other members of the resource are accepted and ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "tableReference": {"projectId": "nba-props-platform", "datasetId": "nba_raw", "tableId": "bdl_player_boxscores"},
    "schema": {"fields": [
        {"name": "game_id", "type": "STRING", "mode": "REQUIRED"},
        {"name": "game_date", "type": "DATE", "mode": "REQUIRED"},
        {"name": "player_lookup", "type": "STRING"},
        {"name": "points", "type": "INTEGER"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"}
    ]},
    "timePartitioning": {"type": "DAY", "field": "game_date"},
    "requirePartitionFilter": true,
    "clustering": {"fields": ["game_id"]}
}))]
pub struct TableInsertRequest {
    /// Which table.
    pub table_reference: TableReference,
    /// `{"fields": [{"name", "type", "mode", "fields", "precision", "scale", "maxLength"}]}`.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// `{"type": "DAY"|"HOUR"|"MONTH"|"YEAR", "field", "requirePartitionFilter"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub time_partitioning: Option<Value>,
    /// `{"field", "range": {"start", "end", "interval"}}` (int64 values as strings).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub range_partitioning: Option<Value>,
    /// `{"fields": [up to 4 column names]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub clustering: Option<Value>,
    /// Whether every statement must filter on the partitioning column.
    #[serde(default)]
    pub require_partition_filter: Option<bool>,
}

/// A table's definition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableView {
    /// The table, `project.dataset.table`.
    pub table: String,
    /// `declared` (by `POST /emulator/tables`) or `inferred` (from the first write).
    pub schema_source: SchemaSource,
    /// The definition in BigQuery's `tables.get` form: `schema`, `timePartitioning` or
    /// `rangePartitioning`, `requirePartitionFilter`, `clustering`.
    #[schema(value_type = Object)]
    pub definition: TableSchema,
}

fn emulator(state: &AppState) -> Result<&Emulator> {
    state
        .emulator
        .as_ref()
        .ok_or_else(|| Error::NotFound("the emulator is not the warehouse".into()))
}

fn invalid(errors: Vec<FieldError>) -> Error {
    Error::Unprocessable {
        detail: format!(
            "the table definition has {} problem(s); nothing was created",
            errors.len()
        ),
        errors,
    }
}

/// Declare an emulator table with a schema, as BigQuery's `tables.insert` does.
///
/// Writes to the table (insertAll, replaces) are then checked against it, and refused with
/// BigQuery's messages. A table written before without a declaration (its schema inferred)
/// takes the declared one when every row it holds fits.
#[utoipa::path(
    post,
    path = "/emulator/tables",
    operation_id = "emulator_declare_table",
    tag = "emulator",
    request_body(content = TableInsertRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Declared.", body = TableView),
        (status = 400, description = "The body is not JSON.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The table already has a declared schema (BigQuery: `Already Exists: Table p:d.t`).", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad table reference, a schema BigQuery would refuse (names, types, modes, partitioning, clustering), or stored rows that do not fit it; each problem with its pointer.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["write"]))
)]
pub(crate) async fn declare(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TableInsertRequest>,
) -> Result<Json<TableView>> {
    let r = &request.table_reference;
    let table = TableRef::parse(&format!("{}.{}.{}", r.project_id, r.dataset_id, r.table_id))
        .map_err(|e| invalid(vec![FieldError::new("/tableReference", e.0)]))?;
    let mut resource = serde_json::json!({"schema": request.schema});
    for (name, value) in [
        ("timePartitioning", request.time_partitioning),
        ("rangePartitioning", request.range_partitioning),
        ("clustering", request.clustering),
        (
            "requirePartitionFilter",
            request.require_partition_filter.map(Value::Bool),
        ),
    ] {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            resource[name] = v;
        }
    }
    let schema: TableSchema = serde_path_to_error::deserialize(resource).map_err(|e| {
        let pointer = super::extract::pointer(e.path());
        invalid(vec![FieldError::new(pointer, e.into_inner().to_string())])
    })?;
    let errors = schema.validate();
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    match emulator(&state)?.declare(&table, &schema).await {
        Ok(()) => {}
        Err(e @ DeclareError::AlreadyExists(_)) => return Err(Error::Conflict(e.to_string())),
        Err(DeclareError::RowsDoNotFit(problems)) => {
            return Err(Error::Unprocessable {
                detail: "rows the table already holds do not fit this schema (pointers index the table's rows in insertion order); nothing was changed".into(),
                errors: problems.into_iter().map(Into::into).collect(),
            })
        }
        Err(DeclareError::Storage(e)) => return Err(Error::Internal(e.into())),
    }
    tracing::info!(table = %table, columns = schema.fields.len(), "emulator: table declared");
    Ok(Json(TableView {
        table: table.to_string(),
        schema_source: SchemaSource::Declared,
        definition: schema,
    }))
}

/// An emulator table's definition, declared or inferred from its first write.
#[utoipa::path(
    get,
    path = "/emulator/tables/{table}",
    operation_id = "emulator_show_table",
    tag = "emulator",
    params(("table" = String, Path, description = "`project.dataset.table`", example = "nba-props-platform.nba_raw.bdl_player_boxscores")),
    responses(
        (status = 200, description = "The definition.", body = TableView),
        (status = 404, description = "No such table (never declared nor written), or the emulator is not the warehouse.", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The table name breaks BigQuery's naming rules.", body = crate::http::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TableView>> {
    let table = TableRef::parse(&raw).map_err(|e| Error::Unprocessable {
        detail: format!("bad table in the path: {e}"),
        errors: vec![FieldError::new("/table", e.0)],
    })?;
    let (definition, schema_source) = emulator(&state)?
        .definition(&table)
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .ok_or_else(|| Error::NotFound(format!("the emulator has no table {table} (declare it with POST /emulator/tables, or write to it)")))?;
    Ok(Json(TableView {
        table: table.to_string(),
        schema_source,
        definition,
    }))
}
