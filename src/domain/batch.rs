//! A batch as a processor posts it, its validation, and its split into write units.
//!
//! Validation is total: a batch is accepted whole or refused whole, and a refusal lists
//! every problem found (up to [`MAX_REPORTED_ERRORS`]) as a JSON pointer into the request
//! body (`/rows/3/game_id`) with a sentence saying what is wrong there.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{ColumnName, IdempotencyKey, ProcessorName, TableRef};

/// At most this many problems are reported for one refused batch.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// The body of `POST /v1/batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Who sends the batch, e.g. `bdl_boxscores_processor`; the breaker's default scope.
    pub processor_name: String,
    /// Target table, `project.dataset.table`.
    pub table: String,
    /// Columns whose values identify one replaceable slice, e.g. `["game_id"]`.
    pub key_columns: Vec<String>,
    /// The table's partition column, e.g. `game_date`; part of every unit's key when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_column: Option<String>,
    /// The rows, JSON objects that carry every key column (and the partition column).
    #[serde(default)]
    pub rows: Vec<Value>,
    /// Keys (objects of the key columns and the partition column) whose rows are to be
    /// deleted without replacement: a pure delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_keys: Vec<Value>,
    /// Re-posting the same key returns the original batch instead of writing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// One problem with a request: where (a JSON pointer into the body) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the offending value, e.g. `/rows/3/game_id`.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

impl FieldError {
    /// A problem at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// Size limits a batch must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Rows per batch. Default 50,000 (BigQuery's insertAll cap per request, a size
    /// processors already batch by).
    pub max_rows: usize,
    /// Key columns per batch. Default 16.
    pub max_key_columns: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_rows: 50_000,
            max_key_columns: 16,
        }
    }
}

/// A batch that passed validation, split into write units.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedBatch {
    /// Who sent it.
    pub processor_name: ProcessorName,
    /// Target table.
    pub table: TableRef,
    /// Key columns, in the order given.
    pub key_columns: Vec<ColumnName>,
    /// Partition column, if the table is partitioned.
    pub partition_column: Option<ColumnName>,
    /// Caller's idempotency key.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The write units, in order of first appearance in the request.
    pub units: Vec<NewUnit>,
}

/// The rows of a batch that share one key (and partition) value: the unit of replace,
/// retry and conflict. A unit without rows is a pure delete.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUnit {
    /// Key column → value, e.g. `{"game_id": "20260124_LAL_BOS"}`.
    pub key: Map<String, Value>,
    /// The partition column's value, e.g. `"2026-01-24"`, when the batch names one.
    pub partition: Option<Value>,
    /// The unit's rows (JSON objects); empty for a pure delete.
    pub rows: Vec<Value>,
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        if self.0.len() < MAX_REPORTED_ERRORS {
            self.0.push(FieldError::new(pointer, detail));
        }
    }
    fn full(&self) -> bool {
        self.0.len() >= MAX_REPORTED_ERRORS
    }
}

/// Escapes a JSON object member name for use in a JSON pointer (RFC 6901).
fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl BatchRequest {
    /// Validates the request and splits its rows into write units by key and partition.
    ///
    /// # Errors
    /// Every problem found (up to [`MAX_REPORTED_ERRORS`]), each with the JSON pointer of the
    /// offending value: bad names, a row that is not an object, a missing, null, nested or
    /// mixed-type key or partition value, column names that differ only in case, a key
    /// that is both replaced and deleted, an empty batch, a limit exceeded.
    pub fn validate(&self, limits: &BatchLimits) -> Result<ValidatedBatch, Vec<FieldError>> {
        let mut errors = Errors(Vec::new());
        let processor_name = ProcessorName::parse(&self.processor_name)
            .map_err(|e| errors.push("/processor_name", e.0))
            .ok();
        let table = TableRef::parse(&self.table)
            .map_err(|e| errors.push("/table", e.0))
            .ok();
        let idempotency_key = match &self.idempotency_key {
            Some(k) => IdempotencyKey::parse(k)
                .map_err(|e| errors.push("/idempotency_key", e.0))
                .ok(),
            None => None,
        };
        let key_columns = self.key_columns(limits, &mut errors);
        let partition_column = match &self.partition_column {
            Some(p) => match ColumnName::parse(p) {
                Ok(c)
                    if key_columns
                        .iter()
                        .any(|k| k.as_str().eq_ignore_ascii_case(c.as_str())) =>
                {
                    errors.push(
                        "/partition_column",
                        "the partition column must not also be a key column",
                    );
                    None
                }
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push("/partition_column", e.0);
                    None
                }
            },
            None => None,
        };
        if self.rows.is_empty() && self.delete_keys.is_empty() {
            errors.push(
                "/rows",
                "a batch needs at least one row or one entry in delete_keys",
            );
        }
        if self.rows.len() > limits.max_rows {
            errors.push(
                "/rows",
                format!(
                    "{} rows exceed the limit of {} rows per batch",
                    self.rows.len(),
                    limits.max_rows
                ),
            );
        }
        let units = if errors.0.is_empty() {
            let mut grouper = Grouper::new(&key_columns, partition_column.as_ref());
            grouper.add_rows(&self.rows, &mut errors);
            grouper.add_delete_keys(&self.delete_keys, &mut errors);
            grouper.units
        } else {
            Vec::new()
        };
        match (errors.0.is_empty(), processor_name, table) {
            (true, Some(processor_name), Some(table)) => Ok(ValidatedBatch {
                processor_name,
                table,
                key_columns,
                partition_column,
                idempotency_key,
                units,
            }),
            _ => Err(errors.0),
        }
    }

    fn key_columns(&self, limits: &BatchLimits, errors: &mut Errors) -> Vec<ColumnName> {
        if self.key_columns.is_empty() {
            errors.push(
                "/key_columns",
                "at least one key column is needed, e.g. [\"game_id\"]",
            );
        }
        if self.key_columns.len() > limits.max_key_columns {
            errors.push(
                "/key_columns",
                format!(
                    "{} key columns exceed the limit of {}",
                    self.key_columns.len(),
                    limits.max_key_columns
                ),
            );
        }
        let mut columns: Vec<ColumnName> = Vec::new();
        for (i, name) in self.key_columns.iter().enumerate() {
            match ColumnName::parse(name) {
                Ok(c)
                    if columns
                        .iter()
                        .any(|k| k.as_str().eq_ignore_ascii_case(c.as_str())) =>
                {
                    errors.push(format!("/key_columns/{i}"), format!("key column {name:?} is listed twice (column names are case-insensitive)"));
                }
                Ok(c) => columns.push(c),
                Err(e) => errors.push(format!("/key_columns/{i}"), e.0),
            }
        }
        columns
    }
}

/// Groups rows into units by (key, partition), checking each row on the way.
struct Grouper<'a> {
    key_columns: &'a [ColumnName],
    partition_column: Option<&'a ColumnName>,
    /// JSON type of each key/partition column, from the first row that had it.
    column_types: HashMap<&'a str, (&'static str, String)>,
    index: HashMap<String, usize>,
    units: Vec<NewUnit>,
}

impl<'a> Grouper<'a> {
    fn new(key_columns: &'a [ColumnName], partition_column: Option<&'a ColumnName>) -> Self {
        Self {
            key_columns,
            partition_column,
            column_types: HashMap::new(),
            index: HashMap::new(),
            units: Vec::new(),
        }
    }

    fn identifying_columns(&self) -> impl Iterator<Item = &'a ColumnName> {
        self.key_columns.iter().chain(self.partition_column)
    }

    /// Checks one key or partition value at `pointer`.
    fn check_value(
        &mut self,
        column: &'a str,
        value: Option<&Value>,
        pointer: &str,
        errors: &mut Errors,
    ) -> bool {
        let Some(value) = value else {
            errors.push(
                pointer,
                format!("the row has no value for key column {column:?}"),
            );
            return false;
        };
        match value {
            Value::Null => errors.push(
                pointer,
                format!("key column {column:?} is null; keys must have a value"),
            ),
            Value::Array(_) | Value::Object(_) => errors.push(
                pointer,
                format!(
                    "key column {column:?} is {}; keys must be strings, numbers or booleans",
                    json_type(value)
                ),
            ),
            _ => {
                let this = json_type(value);
                match self.column_types.get(column) {
                    Some((first, at)) if *first != this => errors.push(
                        pointer,
                        format!("key column {column:?} is {this} here but {first} at {at}; one column must have one type"),
                    ),
                    Some(_) => {}
                    None => {
                        self.column_types.insert(column, (this, pointer.to_owned()));
                    }
                }
                return true;
            }
        }
        false
    }

    fn add_rows(&mut self, rows: &[Value], errors: &mut Errors) {
        for (i, row) in rows.iter().enumerate() {
            if errors.full() {
                return;
            }
            let Value::Object(object) = row else {
                errors.push(
                    format!("/rows/{i}"),
                    format!(
                        "each row must be a JSON object, this one is {}",
                        json_type(row)
                    ),
                );
                continue;
            };
            if !self.check_columns(object, &format!("/rows/{i}"), errors) {
                continue;
            }
            let mut ok = true;
            for column in self.identifying_columns().collect::<Vec<_>>() {
                let pointer = format!("/rows/{i}/{}", pointer_token(column.as_str()));
                ok &= self.check_value(
                    column.as_str(),
                    object.get(column.as_str()),
                    &pointer,
                    errors,
                );
            }
            if ok {
                let slot = self.slot(object);
                self.units[slot].rows.push(row.clone());
            }
        }
    }

    fn add_delete_keys(&mut self, keys: &[Value], errors: &mut Errors) {
        for (i, entry) in keys.iter().enumerate() {
            let pointer = format!("/delete_keys/{i}");
            let Value::Object(object) = entry else {
                errors.push(
                    pointer,
                    format!(
                        "each delete key must be a JSON object of the key columns, this one is {}",
                        json_type(entry)
                    ),
                );
                continue;
            };
            let mut ok = true;
            for column in object.keys() {
                if !self.identifying_columns().any(|c| c.as_str() == column) {
                    errors.push(
                        format!("{pointer}/{}", pointer_token(column)),
                        format!("{column:?} is neither a key column nor the partition column"),
                    );
                    ok = false;
                }
            }
            for column in self.identifying_columns().collect::<Vec<_>>() {
                let p = format!("{pointer}/{}", pointer_token(column.as_str()));
                ok &= self.check_value(column.as_str(), object.get(column.as_str()), &p, errors);
            }
            if !ok {
                continue;
            }
            let (fingerprint, _, _) = self.identity(object);
            match self.index.get(&fingerprint) {
                Some(&slot) if !self.units[slot].rows.is_empty() => errors.push(
                    pointer,
                    "this key also has rows in `rows`; a key is either replaced or deleted in one batch",
                ),
                Some(_) => {} // the same delete key twice: one unit
                None => {
                    self.slot(object);
                }
            }
        }
    }

    /// Checks the row's column names: valid BigQuery names, no two equal but for case.
    fn check_columns(
        &self,
        object: &Map<String, Value>,
        pointer: &str,
        errors: &mut Errors,
    ) -> bool {
        let mut ok = true;
        let mut seen: HashMap<String, &str> = HashMap::new();
        for name in object.keys() {
            if let Err(e) = ColumnName::parse(name) {
                errors.push(format!("{pointer}/{}", pointer_token(name)), e.0);
                ok = false;
            } else if let Some(other) = seen.insert(name.to_ascii_lowercase(), name) {
                errors.push(
                    format!("{pointer}/{}", pointer_token(name)),
                    format!("columns {other:?} and {name:?} differ only in case; BigQuery column names are case-insensitive"),
                );
                ok = false;
            }
        }
        ok
    }

    fn identity(&self, object: &Map<String, Value>) -> (String, Map<String, Value>, Option<Value>) {
        let key: Map<String, Value> = self
            .key_columns
            .iter()
            .map(|c| (c.as_str().to_owned(), object[c.as_str()].clone()))
            .collect();
        let partition = self.partition_column.map(|c| object[c.as_str()].clone());
        let fingerprint =
            serde_json::to_string(&(&key, &partition)).expect("JSON values serialize");
        (fingerprint, key, partition)
    }

    /// The unit for this row's key, created on first sight.
    fn slot(&mut self, object: &Map<String, Value>) -> usize {
        let (fingerprint, key, partition) = self.identity(object);
        let next = self.units.len();
        let slot = *self.index.entry(fingerprint).or_insert(next);
        if slot == next {
            self.units.push(NewUnit {
                key,
                partition,
                rows: Vec::new(),
            });
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(rows: Value) -> BatchRequest {
        serde_json::from_value(json!({
            "processor_name": "bdl_boxscores_processor",
            "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
            "key_columns": ["game_id"],
            "partition_column": "game_date",
            "rows": rows,
        }))
        .unwrap()
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn rows_are_grouped_by_key_and_partition_in_order_of_appearance() {
        let batch = request(json!([
            {"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player": "A", "points": 30},
            {"game_id": "20260124_MIA_NYK", "game_date": "2026-01-24", "player": "B", "points": 12},
            {"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player": "C", "points": 8},
        ]))
        .validate(&BatchLimits::default())
        .unwrap();
        assert_eq!(batch.units.len(), 2);
        assert_eq!(
            batch.units[0].key,
            json!({"game_id": "20260124_LAL_BOS"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(batch.units[0].partition, Some(json!("2026-01-24")));
        assert_eq!(batch.units[0].rows.len(), 2);
        assert_eq!(batch.units[1].rows.len(), 1);
    }

    #[test]
    fn same_key_in_two_partitions_is_two_units() {
        let batch = request(json!([
            {"game_id": "g1", "game_date": "2026-01-24"},
            {"game_id": "g1", "game_date": "2026-01-25"},
        ]))
        .validate(&BatchLimits::default())
        .unwrap();
        assert_eq!(batch.units.len(), 2);
    }

    #[test]
    fn every_bad_row_is_named_with_its_column() {
        let errors = request(json!([
            {"game_id": "g1", "game_date": "2026-01-24"},
            {"game_date": "2026-01-24"},
            "not an object",
            {"game_id": null, "game_date": "2026-01-24"},
            {"game_id": 7, "game_date": "2026-01-24"},
            {"game_id": "g2"},
            {"game_id": {"nested": 1}, "game_date": "2026-01-24"},
            {"game_id": "g3", "game_date": "2026-01-24", "Points": 1, "points": 2},
            {"game_id": "g4", "game_date": "2026-01-24", "bad column": 1},
        ]))
        .validate(&BatchLimits::default())
        .unwrap_err();
        assert_eq!(
            pointers(&errors),
            vec![
                "/rows/1/game_id",
                "/rows/2",
                "/rows/3/game_id",
                "/rows/4/game_id",
                "/rows/5/game_date",
                "/rows/6/game_id",
                "/rows/7/points",
                "/rows/8/bad column",
            ]
        );
        assert!(
            errors[3]
                .detail
                .contains("a number here but a string at /rows/0/game_id"),
            "{}",
            errors[3].detail
        );
    }

    #[test]
    fn names_and_emptiness_are_checked() {
        let mut req = request(json!([]));
        req.table = "proj.d.t`; DROP".into();
        req.key_columns = vec!["game_id".into(), "GAME_ID".into()];
        req.processor_name = "".into();
        let errors = req.validate(&BatchLimits::default()).unwrap_err();
        assert_eq!(
            pointers(&errors),
            vec!["/processor_name", "/table", "/key_columns/1", "/rows"]
        );
    }

    #[test]
    fn delete_keys_make_pure_delete_units() {
        let mut req = request(json!([{"game_id": "g1", "game_date": "2026-01-24", "points": 1}]));
        req.delete_keys = vec![json!({"game_id": "g2", "game_date": "2026-01-24"})];
        let batch = req.validate(&BatchLimits::default()).unwrap();
        assert_eq!(batch.units.len(), 2);
        assert!(batch.units[1].rows.is_empty());
        assert_eq!(batch.units[1].key["game_id"], json!("g2"));
    }

    #[test]
    fn a_key_cannot_be_replaced_and_deleted_at_once() {
        let mut req = request(json!([{"game_id": "g1", "game_date": "2026-01-24"}]));
        req.delete_keys = vec![
            json!({"game_id": "g1", "game_date": "2026-01-24"}),
            json!({"game_id": "g2", "game_date": "2026-01-24", "player": "x"}),
        ];
        let errors = req.validate(&BatchLimits::default()).unwrap_err();
        assert_eq!(
            pointers(&errors),
            vec!["/delete_keys/0", "/delete_keys/1/player"]
        );
    }

    #[test]
    fn limits_are_enforced_and_named() {
        let limits = BatchLimits {
            max_rows: 1,
            max_key_columns: 1,
        };
        let mut req = request(
            json!([{"game_id": "g1", "game_date": "d"}, {"game_id": "g2", "game_date": "d"}]),
        );
        req.key_columns = vec!["game_id".into(), "team".into()];
        let errors = req.validate(&limits).unwrap_err();
        assert!(errors
            .iter()
            .any(|e| e.pointer == "/rows" && e.detail.contains("limit of 1 rows")));
        assert!(errors
            .iter()
            .any(|e| e.pointer == "/key_columns" && e.detail.contains("limit of 1")));
    }

    #[test]
    fn json_pointer_tokens_are_escaped() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }
}
