//! `streamguard bigquery check`: tells an operator, in plain words, whether the service
//! will be able to write — credentials, project, and (when named) the table — and what
//! to fix when not. It writes nothing: the project is checked with a dry-run `SELECT 1`
//! and the table with a dry run of the very `MERGE` the service sends (a dry run is
//! validated and access-checked by BigQuery but not executed and not billed:
//! <https://cloud.google.com/bigquery/docs/running-queries#dry-run>).
//!
//! The key and partition columns get the schema checks intake makes
//! ([`crate::domain::schema::check`]), in the same words.
//!
//! The same project probe backs `/readyz` and the start-up check.

use gcp_bigquery_client::model::query_request::QueryRequest;
use serde_json::{Map, Value};

use super::classify::Failure;
use super::{explain, sql, BigQuery, BigQuerySettings};
use crate::domain::{ColumnName, TableRef, TableSchema};
use crate::warehouse::WriteUnit;

/// What `check` looks at beyond the project.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    /// The table to check.
    pub table: TableRef,
    /// Its key columns, as processors will send them.
    pub key_columns: Vec<ColumnName>,
    /// Its partition column, if processors send one.
    pub partition_column: Option<ColumnName>,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Whether this step passed.
    pub ok: bool,
    /// What was checked and found, in words.
    pub text: String,
}

/// Dry-runs `SELECT 1` in the configured project: proves a token can be had, the
/// endpoint answers, the project exists and the credentials may create jobs there.
///
/// # Errors
/// A sentence naming the setting to fix.
pub async fn probe_project(bq: &BigQuery) -> Result<(), String> {
    dry_run(bq, "SELECT 1", vec![]).await
}

async fn dry_run(
    bq: &BigQuery,
    sql: &str,
    params: Vec<gcp_bigquery_client::model::query_parameter::QueryParameter>,
) -> Result<(), String> {
    let mut request = QueryRequest::new(sql);
    request.dry_run = Some(true);
    request.location = bq.settings.location.clone();
    if !params.is_empty() {
        request.parameter_mode = Some("NAMED".into());
        request.query_parameters = Some(params);
    }
    let path = format!("/projects/{}/queries", bq.settings.project);
    bq.rest
        .post::<_, Value>(&path, &request)
        .await
        .map(drop)
        .map_err(|f| explain(&bq.settings, &f))
}

/// Runs every check and returns the report; stops at the first failing step, since later
/// steps depend on it.
pub async fn run(settings: &BigQuerySettings, target: Option<&CheckTarget>) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut push = |ok: bool, text: String| {
        lines.push(Line { ok, text });
        ok
    };
    push(
        true,
        format!(
            "project {} (STREAMGUARD_BIGQUERY_PROJECT), endpoint {}, location {}",
            settings.project,
            settings.endpoint,
            settings.location.as_deref().unwrap_or("chosen by BigQuery")
        ),
    );
    let bq = match BigQuery::connect(settings.clone()).await {
        Ok(bq) => bq,
        Err(e) => {
            push(false, e);
            return lines;
        }
    };
    match bq.rest.token().await {
        Ok(_) => push(
            true,
            format!(
                "an access token was obtained from {}",
                settings.credentials.describe()
            ),
        ),
        Err(e) => {
            let failure = Failure::Transport { message: e };
            return finish(lines, false, explain(settings, &failure));
        }
    };
    match probe_project(&bq).await {
        Ok(()) => push(
            true,
            format!(
                "the credentials may run jobs in project {}",
                settings.project
            ),
        ),
        Err(e) => return finish(lines, false, e),
    };
    let Some(target) = target else {
        return lines;
    };
    let meta = match bq.table_meta(&target.table).await {
        Ok(meta) => meta,
        Err(e) => {
            return finish(
                lines,
                false,
                format!("table {} cannot be read: {e}", target.table),
            )
        }
    };
    let fields = meta.fields();
    push(
        true,
        format!(
            "table {} exists ({}, {} columns{})",
            target.table,
            meta.kind.as_deref().unwrap_or("TABLE"),
            fields.len(),
            meta.time_partitioning
                .as_ref()
                .and_then(|p| p
                    .get("field")
                    .and_then(Value::as_str)
                    .map(|f| format!(", partitioned by {f}")))
                .unwrap_or_default()
        ),
    );
    match meta.streaming_buffer() {
        Some(b) => push(
            true,
            format!(
                "it has a streaming buffer (about {} rows, oldest entry {}): replaces touching those rows are deferred until it drains",
                b.estimated_rows.map_or("?".into(), |r| r.to_string()),
                b.oldest_entry_time.map_or("unknown".into(), |t| t.to_rfc3339())
            ),
        ),
        None => push(true, "it has no streaming buffer now".into()),
    };
    if let Some(definition) = &meta.definition {
        let found = check_columns(definition, target);
        let ok = found.iter().all(|l| l.ok);
        for line in found {
            push(line.ok, line.text);
        }
        if !ok {
            return lines;
        }
    }
    let unit = probe_unit(target);
    let statement = match sql::replace(&target.table, &fields, std::slice::from_ref(&unit)) {
        Ok(s) => s,
        Err(e) => {
            return finish(
                lines,
                false,
                format!("the key columns do not fit the table: {e}"),
            )
        }
    };
    match dry_run(&bq, &statement.sql, statement.params).await {
        Ok(()) => push(
            true,
            format!(
                "a dry run of the replace statement on {} passed: the table is writable",
                target.table
            ),
        ),
        Err(e) => push(
            false,
            format!("a dry run of the replace statement failed: {e}"),
        ),
    };
    lines
}

/// The schema checks intake makes on every batch, for the key and partition columns
/// processors will send: they exist, BigQuery can compare them for equality, and the
/// partition column is the one a table requiring a partition filter needs. One line per
/// problem, in the words intake answers with, or one line saying all is well.
fn check_columns(definition: &TableSchema, target: &CheckTarget) -> Vec<Line> {
    let mut lines = Vec::new();
    let keys: Vec<String> = target
        .key_columns
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let partition = target.partition_column.as_ref().map(ColumnName::as_str);
    let problems = definition.check_parts(&keys, partition, &[], &[]);
    for p in &problems {
        let flag = if p.pointer == "/partition_column" {
            "--partition-column".to_owned()
        } else {
            let i: usize = p
                .pointer
                .rsplit('/')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            format!("--key-column {}", keys.get(i).map_or("", String::as_str))
        };
        lines.push(Line {
            ok: false,
            text: format!("{flag}: {}", p.detail),
        });
    }
    if problems.is_empty() {
        let filter = match definition.partitioning.as_ref() {
            Some(p) if p.require_partition_filter => format!(
                "; the table requires a partition filter, which --partition-column {} gives",
                partition.unwrap_or_default()
            ),
            _ => String::new(),
        };
        lines.push(Line {
            ok: true,
            text: format!(
                "the key columns ({}) exist and BigQuery can compare them for equality{filter}; every batch's rows are checked against the schema at intake",
                keys.join(", ")
            ),
        });
    }
    lines
}

fn finish(mut lines: Vec<Line>, ok: bool, text: String) -> Vec<Line> {
    lines.push(Line { ok, text });
    lines
}

/// A unit whose key is NULL, with one row of NULL key columns: the statement has the
/// service's real shape and types (both branches), and is only dry-run.
fn probe_unit(target: &CheckTarget) -> WriteUnit {
    let key: Map<String, Value> = target
        .key_columns
        .iter()
        .map(|c| (c.as_str().to_owned(), Value::Null))
        .collect();
    let mut row = key.clone();
    if let Some(p) = &target.partition_column {
        row.insert(p.as_str().to_owned(), Value::Null);
    }
    WriteUnit {
        unit_id: uuid::Uuid::nil(),
        attempt: 0,
        key,
        partition: target.partition_column.clone().map(|c| (c, Value::Null)),
        rows: vec![Value::Object(row)],
    }
}
