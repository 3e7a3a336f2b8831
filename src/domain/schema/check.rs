//! Rows, keys and partition columns checked against a [`TableSchema`]: every problem,
//! each with a JSON pointer (RFC 6901) into the body that carried it, a plain sentence,
//! and BigQuery's message for the same fault.
//!
//! Rules (BigQuery's; <https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/insertAll>
//! answers "no such field: x." and "Missing required field: x." with reason `invalid`,
//! and a query writing a NULL into an ARRAY fails with "Array cannot have a null element;
//! error in writing field x"): every member of a row names a column (case-insensitively);
//! a REQUIRED column is present and not null; a REPEATED column is an array (a null one is
//! stored as empty) without NULL elements; a RECORD is an object checked the same way,
//! to any depth; each scalar is a spelling its type accepts ([`values`](super::values)).
//! A batch also needs key and partition columns that exist, that GoogleSQL can compare
//! for equality (not JSON, GEOGRAPHY or ARRAY) and that hold one value (not a STRUCT),
//! and, when the table requires a
//! partition filter, its partitioning column as the batch's `partition_column`.

use serde_json::{Map, Value};

use super::values::{check_scalar, json_type};
use super::{find, Field, FieldType, Mode, TableSchema};
use crate::domain::batch::{BatchRequest, FieldError, MAX_REPORTED_ERRORS};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer to the offending value (or to where a missing one belongs).
    pub pointer: String,
    /// What is wrong, in plain words.
    pub detail: String,
    /// BigQuery's message for it (what the emulator answers, as BigQuery would).
    pub bigquery: String,
}

impl From<Problem> for FieldError {
    fn from(p: Problem) -> Self {
        FieldError::new(p.pointer, p.detail)
    }
}

/// Escapes a member name for a JSON pointer (RFC 6901).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

struct Out {
    problems: Vec<Problem>,
    max: usize,
}

impl Out {
    fn push(&mut self, pointer: String, detail: String, bigquery: String) {
        if self.problems.len() < self.max {
            self.problems.push(Problem {
                pointer,
                detail,
                bigquery,
            });
        }
    }
    fn full(&self) -> bool {
        self.problems.len() >= self.max
    }
}

impl TableSchema {
    /// Checks rows as a write would send them; `pointer` is the JSON pointer of the
    /// array holding them (`/rows`), so row 3's `points` is `/rows/3/points`. At most
    /// `max` problems are returned.
    pub fn check_rows(&self, rows: &[Value], pointer: &str, max: usize) -> Vec<Problem> {
        let mut out = Out {
            problems: Vec::new(),
            max,
        };
        for (i, row) in rows.iter().enumerate() {
            if out.full() {
                break;
            }
            check_row(&self.fields, row, &format!("{pointer}/{i}"), &mut out);
        }
        out.problems
    }

    /// Checks a whole batch against the table: key columns and the partition column
    /// (exist, comparable for equality, the partitioning column when the table requires a
    /// partition filter), every row, every delete key's values. Pointers are into the
    /// `POST /v1/batches` body; at most [`MAX_REPORTED_ERRORS`] problems.
    pub fn check_batch(&self, batch: &BatchRequest) -> Vec<Problem> {
        self.check_parts(
            &batch.key_columns,
            batch.partition_column.as_deref(),
            &batch.rows,
            &batch.delete_keys,
        )
    }

    /// [`check_batch`](Self::check_batch) over the parts of a batch (or of a write unit).
    pub fn check_parts(
        &self,
        key_columns: &[String],
        partition_column: Option<&str>,
        rows: &[Value],
        delete_keys: &[Value],
    ) -> Vec<Problem> {
        let mut out = Out {
            problems: Vec::new(),
            max: MAX_REPORTED_ERRORS,
        };
        for (i, name) in key_columns.iter().enumerate() {
            self.check_identity_column(name, &format!("/key_columns/{i}"), "key", &mut out);
        }
        self.check_partition_column(partition_column, &mut out);
        for (i, row) in rows.iter().enumerate() {
            if out.full() {
                break;
            }
            check_row(&self.fields, row, &format!("/rows/{i}"), &mut out);
        }
        let identity: Vec<&str> = key_columns
            .iter()
            .map(String::as_str)
            .chain(partition_column)
            .collect();
        for (i, entry) in delete_keys.iter().enumerate() {
            let Value::Object(object) = entry else {
                continue;
            };
            for (name, value) in object {
                let field = find(&self.fields, name);
                if let (true, Some(field)) = (identity.contains(&name.as_str()), field) {
                    if field.can_be_key() && !value.is_null() {
                        check_value(
                            field,
                            value,
                            &format!("/delete_keys/{i}/{}", token(name)),
                            &mut out,
                        );
                    }
                }
            }
        }
        out.problems
    }

    fn check_identity_column(&self, name: &str, pointer: &str, role: &str, out: &mut Out) {
        match self.column(name) {
            None => out.push(
                pointer.to_owned(),
                format!("the table has no column `{name}` to use as the {role} column"),
                format!("Unrecognized name: {name}"),
            ),
            Some(f) if f.field_type == FieldType::Record && !f.is_repeated() => out.push(
                pointer.to_owned(),
                format!("`{name}` is a STRUCT (RECORD); a key is a single value (a string, number or boolean), which a STRUCT never equals; choose a {role} column of type STRING, INT64, DATE, TIMESTAMP, DATETIME, BOOL, NUMERIC or BYTES"),
                format!("No matching signature for operator IN UNNEST for argument types: {}, ARRAY<STRING>", f.type_text()),
            ),
            Some(f) if !f.can_be_key() => {
                let t = f.type_text();
                out.push(
                    pointer.to_owned(),
                    format!("`{name}` is {t}, which BigQuery cannot compare for equality, so rows cannot be replaced by it; choose a {role} column of type STRING, INT64, DATE, TIMESTAMP, DATETIME, BOOL, NUMERIC or BYTES"),
                    format!("First argument to IN UNNEST of type {t} does not support equality comparison"),
                );
            }
            Some(_) => {}
        }
    }

    fn check_partition_column(&self, given: Option<&str>, out: &mut Out) {
        let pointer = "/partition_column".to_owned();
        if let Some(name) = given {
            self.check_identity_column(name, &pointer, "partition", out);
        }
        let Some(p) = &self.partitioning else { return };
        match (&p.field, given) {
            (Some(field), Some(name)) if !field.eq_ignore_ascii_case(name) => out.push(
                pointer,
                format!("the table is partitioned by `{field}`, not `{name}`; name `{field}` as the partition column"),
                format!("Cannot query over table without a filter over column(s) '{field}' that can be used for partition elimination"),
            ),
            (Some(field), None) if p.require_partition_filter => out.push(
                pointer,
                format!("the table requires a partition filter on `{field}`: name it as the batch's partition_column, or every replace is refused"),
                format!("Cannot query over table without a filter over column(s) '{field}' that can be used for partition elimination"),
            ),
            (None, _) if p.require_partition_filter => out.push(
                pointer,
                "the table is partitioned by ingestion time and requires a partition filter; streamguard filters on a column, so it cannot replace rows in it".into(),
                "Cannot query over table without a filter over column(s) '_PARTITION_LOAD_TIME', '_PARTITIONDATE', '_PARTITIONTIME' that can be used for partition elimination".into(),
            ),
            _ => {}
        }
    }
}

/// Checks one row (a JSON object) against `fields`.
fn check_row(fields: &[Field], row: &Value, pointer: &str, out: &mut Out) {
    match row {
        Value::Object(object) => check_record(fields, object, pointer, "", out),
        other => out.push(
            pointer.to_owned(),
            format!(
                "a row must be a JSON object, this one is {}",
                json_type(other)
            ),
            "Row is not a JSON object".into(),
        ),
    }
}

/// Checks an object's members against `fields`; `path` is the dotted field path of the
/// object (empty for a row), as BigQuery names nested fields (`stats.points`).
fn check_record(
    fields: &[Field],
    object: &Map<String, Value>,
    pointer: &str,
    path: &str,
    out: &mut Out,
) {
    let dotted = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for (name, value) in object {
        let at = format!("{pointer}/{}", token(name));
        match find(fields, name) {
            None => out.push(
                at,
                format!("the table has no column `{}`", dotted(name)),
                format!("no such field: {}.", dotted(name)),
            ),
            Some(field) => check_field(field, value, &at, &dotted(&field.name), out),
        }
    }
    for field in fields.iter().filter(|f| f.mode == Mode::Required) {
        let value = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field.name))
            .map(|(_, v)| v);
        if value.is_none() {
            out.push(
                format!("{pointer}/{}", token(&field.name)),
                format!("the REQUIRED column `{}` is missing", dotted(&field.name)),
                format!("Missing required field: {}.", dotted(&field.name)),
            );
        }
    }
}

/// Checks the value of one column (any mode).
fn check_field(field: &Field, value: &Value, pointer: &str, path: &str, out: &mut Out) {
    match (field.mode, value) {
        (Mode::Required, Value::Null) => out.push(
            pointer.to_owned(),
            format!("the REQUIRED column `{path}` is null"),
            format!("Only optional fields can be set to NULL. Field: {path}; Value: NULL"),
        ),
        (Mode::Repeated, Value::Null) => {} // stored as an empty array
        (Mode::Repeated, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                if item.is_null() {
                    out.push(
                        at,
                        format!("element {i} of the REPEATED column `{path}` is null; BigQuery arrays cannot hold NULL (leave it out)"),
                        format!("Array cannot have a null element; error in writing field {path}"),
                    );
                } else {
                    check_element(field, item, &at, path, out);
                }
            }
        }
        (Mode::Repeated, other) => out.push(
            pointer.to_owned(),
            format!(
                "`{path}` is a REPEATED column (an ARRAY); send a JSON array, not {}",
                json_type(other)
            ),
            format!(
                "Expected array for repeated field {path}, got {}",
                json_type(other)
            ),
        ),
        (_, Value::Null) => {}
        (_, v) => check_element(field, v, pointer, path, out),
    }
}

/// Checks one non-null value of the column's element type.
fn check_element(field: &Field, value: &Value, pointer: &str, path: &str, out: &mut Out) {
    if field.field_type == FieldType::Record {
        match value {
            Value::Object(object) => check_record(&field.fields, object, pointer, path, out),
            other => out.push(
                pointer.to_owned(),
                format!(
                    "`{path}` is a RECORD; send a JSON object, not {}",
                    json_type(other)
                ),
                format!(
                    "Cannot convert {} to STRUCT for field {path}",
                    json_type(other)
                ),
            ),
        }
        return;
    }
    if let Err(r) = check_scalar(field, value) {
        out.push(
            pointer.to_owned(),
            format!("`{path}`: {}", r.detail),
            r.bigquery,
        );
    }
}

/// Checks a single value of `field` (as a key or partition value is written).
fn check_value(field: &Field, value: &Value, pointer: &str, out: &mut Out) {
    check_field(field, value, pointer, &field.name, out);
}
