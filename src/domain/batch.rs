//! A batch as a processor posts it, its validation, and its split into write units.
//!
//! Validation is total: a batch is accepted whole or refused whole, and a refusal lists
//! every problem found (up to [`MAX_REPORTED_ERRORS`]) as a JSON pointer into the request
//! body (`/rows/3/game_id`) with a sentence saying what is wrong there.
//!
//! Why it is long (about 700 lines): the request, its limits and the one validation pass
//! that must see them together to be total (every problem listed, each with its pointer).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{ColumnName, IdempotencyKey, ProcessorName, TableRef};
use super::run::RunName;

/// At most this many problems are reported for one refused batch.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// The body of `POST /v1/batches`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "processor_name": "bdl_boxscores_processor",
    "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
    "key_columns": ["game_id"],
    "partition_column": "game_date",
    "rows": [
        {"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebronjames", "team": "LAL", "points": 28, "rebounds": 8, "assists": 9},
        {"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "jaysontatum", "team": "BOS", "points": 31, "rebounds": 11, "assists": 5}
    ],
    "idempotency_key": "bdl-backfill-2026-01-24-LAL-BOS"
}))]
pub struct BatchRequest {
    /// Who sends the batch, e.g. `bdl_boxscores_processor`; the breaker's default scope.
    /// 1 to 128 printable ASCII characters without spaces.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub processor_name: String,
    /// Target table, `project.dataset.table` (BigQuery's naming rules, ASCII only; see
    /// [`TableRef`]).
    #[schema(
        pattern = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_-]{1,1024}$"
    )]
    pub table: String,
    /// Columns whose values identify one replaceable slice, e.g. `["game_id"]` (at least
    /// one; at most `STREAMGUARD_MAX_KEY_COLUMNS`).
    #[schema(min_items = 1, inline, value_type = Vec<ColumnNameSchema>)]
    pub key_columns: Vec<String>,
    /// The table's partition column, e.g. `game_date`; part of every unit's key when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ColumnNameSchema>)]
    pub partition_column: Option<String>,
    /// The rows, JSON objects that carry every key column (and the partition column).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// Keys (objects of the key columns and the partition column) whose rows are to be
    /// deleted without replacement: a pure delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub delete_keys: Vec<Value>,
    /// Re-posting the same key returns the original batch instead of writing again.
    /// 1 to 255 printable ASCII characters without spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
    /// The backfill run this batch belongs to, e.g. `bdl_boxscores backfill 2026-01-24`
    /// (`GET /v1/runs/{run}` reports on it). 1 to 200 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$",
        example = "bdl_boxscores backfill 2026-01-24"
    )]
    pub run: Option<String>,
}

/// A BigQuery column name as the OpenAPI document describes it: letters, digits and
/// underscores, starting with a letter or underscore, at most 300 characters (the reserved
/// prefixes of [`ColumnName`] are checked by the service, not the pattern).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ColumnName, value_type = String, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,299}$", example = "game_id")]
pub struct ColumnNameSchema(pub String);

/// One problem with a request: where (a JSON pointer into the body) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"pointer": "/rows/3/game_id", "detail": "key column \"game_id\" is null; keys must have a value"}))]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the offending value, e.g. `/rows/3/game_id`; the empty
    /// string means the whole body.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
    /// When a configurable limit was exceeded: the setting that holds it, e.g.
    /// `STREAMGUARD_MAX_ROWS`. Absent for every other problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl FieldError {
    /// A problem at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
            limit: None,
        }
    }

    /// A limit exceeded at `pointer`; `setting` names the environment variable that
    /// holds the limit (see [`BatchLimits`]).
    pub fn limit(
        pointer: impl Into<String>,
        detail: impl Into<String>,
        setting: &'static str,
    ) -> Self {
        Self {
            limit: Some(setting.into()),
            ..Self::new(pointer, detail)
        }
    }
}

/// Size limits a batch must respect. Each is a setting (named in brackets) and each
/// refusal names it in [`FieldError::limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Rows per batch (`STREAMGUARD_MAX_ROWS`). Default 50,000 (BigQuery's insertAll cap
    /// per request, a size processors already batch by).
    pub max_rows: usize,
    /// Key columns per batch (`STREAMGUARD_MAX_KEY_COLUMNS`). Default 16.
    pub max_key_columns: usize,
    /// Bytes of one row, measured as its compact JSON serialization
    /// (`STREAMGUARD_MAX_ROW_BYTES`). Default 1 MiB: a box-score row is about 1 KB, and
    /// BigQuery's own cap for a streamed row is 10 MB.
    pub max_row_bytes: usize,
    /// Nesting depth of a row: the row object is level 1, and every object or array inside
    /// it adds one (`STREAMGUARD_MAX_DEPTH`). Default 15, BigQuery's limit of nested
    /// RECORD levels (<https://cloud.google.com/bigquery/quotas#table_limits>).
    pub max_depth: usize,
    /// Characters in a column or nested field name (`STREAMGUARD_MAX_NAME_CHARS`).
    /// Default 300, BigQuery's column-name limit; a lower value is stricter.
    pub max_name_chars: usize,
    /// Characters in a string key or partition value (`STREAMGUARD_MAX_KEY_VALUE_CHARS`).
    /// Default 1,024.
    pub max_key_value_chars: usize,
}

impl BatchLimits {
    /// The variable that sets `max_rows`, named by refusals that hit it.
    pub const MAX_ROWS_VAR: &'static str = "STREAMGUARD_MAX_ROWS";
    /// The variable that sets `max_key_columns`, named by refusals that hit it.
    pub const MAX_KEY_COLUMNS_VAR: &'static str = "STREAMGUARD_MAX_KEY_COLUMNS";
    /// The variable that sets `max_row_bytes`, named by refusals that hit it.
    pub const MAX_ROW_BYTES_VAR: &'static str = "STREAMGUARD_MAX_ROW_BYTES";
    /// The variable that sets `max_depth`, named by refusals that hit it.
    pub const MAX_DEPTH_VAR: &'static str = "STREAMGUARD_MAX_DEPTH";
    /// The variable that sets `max_name_chars`, named by refusals that hit it.
    pub const MAX_NAME_CHARS_VAR: &'static str = "STREAMGUARD_MAX_NAME_CHARS";
    /// The variable that sets `max_key_value_chars`, named by refusals that hit it.
    pub const MAX_KEY_VALUE_CHARS_VAR: &'static str = "STREAMGUARD_MAX_KEY_VALUE_CHARS";

    /// The defaults (each field's documentation gives its reason).
    pub const DEFAULT: Self = Self {
        max_rows: 50_000,
        max_key_columns: 16,
        max_row_bytes: 1024 * 1024,
        max_depth: 15,
        max_name_chars: 300,
        max_key_value_chars: 1024,
    };
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self::DEFAULT
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
    /// The backfill run it belongs to.
    pub run: Option<RunName>,
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
        self.push_error(FieldError::new(pointer, detail));
    }
    fn push_error(&mut self, error: FieldError) {
        if self.0.len() < MAX_REPORTED_ERRORS {
            self.0.push(error);
        }
    }
    fn full(&self) -> bool {
        self.0.len() >= MAX_REPORTED_ERRORS
    }
}

/// One spelling per key value: a number with an integral value that a 64-bit float holds
/// exactly (|x| ≤ 2^53) becomes an integer, so `1`, `1.0` and `1e0` name one key — as they
/// do for BigQuery's typed comparison and for Postgres's `jsonb` equality. Without this,
/// rows spelled differently would form two units whose replaces delete each other's rows.
pub fn canonical(value: &Value) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Value::from(f as i64),
            _ => value.clone(),
        },
        _ => value.clone(),
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

/// Whether `name` respects [`BatchLimits::max_name_chars`]; records the problem if not.
fn name_fits(name: &str, pointer: &str, limits: &BatchLimits, errors: &mut Errors) -> bool {
    let chars = name.chars().count();
    if chars <= limits.max_name_chars {
        return true;
    }
    errors.push_error(FieldError::limit(
        pointer,
        format!(
            "the name has {chars} characters, over the limit of {}",
            limits.max_name_chars
        ),
        BatchLimits::MAX_NAME_CHARS_VAR,
    ));
    false
}

/// The length in bytes of `value`'s compact JSON serialization, without building it.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("JSON values serialize");
    count.0
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
        let run = match &self.run {
            Some(r) => RunName::parse(r).map_err(|e| errors.push("/run", e)).ok(),
            None => None,
        };
        let key_columns = self.key_columns(limits, &mut errors);
        let partition_column = match &self.partition_column {
            Some(p) if !name_fits(p, "/partition_column", limits, &mut errors) => None,
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
            errors.push_error(FieldError::limit(
                "/rows",
                format!(
                    "{} rows exceed the limit of {} rows per batch; split the batch",
                    self.rows.len(),
                    limits.max_rows
                ),
                BatchLimits::MAX_ROWS_VAR,
            ));
        }
        let units = if errors.0.is_empty() {
            let mut grouper = Grouper::new(&key_columns, partition_column.as_ref(), limits);
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
                run,
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
            errors.push_error(FieldError::limit(
                "/key_columns",
                format!(
                    "{} key columns exceed the limit of {}",
                    self.key_columns.len(),
                    limits.max_key_columns
                ),
                BatchLimits::MAX_KEY_COLUMNS_VAR,
            ));
        }
        let mut columns: Vec<ColumnName> = Vec::new();
        for (i, name) in self.key_columns.iter().enumerate() {
            if !name_fits(name, &format!("/key_columns/{i}"), limits, errors) {
                continue;
            }
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
    limits: &'a BatchLimits,
}

impl<'a> Grouper<'a> {
    fn new(
        key_columns: &'a [ColumnName],
        partition_column: Option<&'a ColumnName>,
        limits: &'a BatchLimits,
    ) -> Self {
        Self {
            key_columns,
            partition_column,
            limits,
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
            let holder = if pointer.starts_with("/delete_keys") {
                "the delete key"
            } else {
                "the row"
            };
            let role = if self.partition_column.is_some_and(|p| p.as_str() == column) {
                "the partition column"
            } else {
                "key column"
            };
            errors.push(
                pointer,
                format!("{holder} has no value for {role} {column:?}"),
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
            Value::String(text) if text.chars().count() > self.limits.max_key_value_chars => {
                errors.push_error(FieldError::limit(
                    pointer,
                    format!(
                        "key column {column:?} has {} characters, over the limit of {}",
                        text.chars().count(),
                        self.limits.max_key_value_chars
                    ),
                    BatchLimits::MAX_KEY_VALUE_CHARS_VAR,
                ));
            }
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
            let pointer = format!("/rows/{i}");
            if !self.check_columns(object, &pointer, errors)
                | !self.check_shape(row, &pointer, errors)
            {
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
            let at = format!("{pointer}/{}", pointer_token(name));
            if !name_fits(name, &at, self.limits, errors) {
                ok = false;
            } else if let Err(e) = ColumnName::parse(name) {
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

    /// Checks a row's size and nesting: its compact JSON length against
    /// [`BatchLimits::max_row_bytes`], its depth against [`BatchLimits::max_depth`], and the
    /// names of nested fields (BigQuery STRUCT fields follow the column-name rules).
    fn check_shape(&self, row: &Value, pointer: &str, errors: &mut Errors) -> bool {
        let bytes = json_len(row);
        if bytes > self.limits.max_row_bytes {
            errors.push_error(FieldError::limit(
                pointer,
                format!(
                    "the row is {bytes} bytes of JSON, over the limit of {} bytes per row",
                    self.limits.max_row_bytes
                ),
                BatchLimits::MAX_ROW_BYTES_VAR,
            ));
            return false;
        }
        let Value::Object(object) = row else {
            return true;
        };
        object.iter().fold(true, |ok, (name, value)| {
            let at = format!("{pointer}/{}", pointer_token(name));
            self.check_nested(value, &at, 2, errors) & ok
        })
    }

    /// Checks a value at `depth` (the row is depth 1) and everything inside it.
    fn check_nested(
        &self,
        value: &Value,
        pointer: &str,
        depth: usize,
        errors: &mut Errors,
    ) -> bool {
        let children: Box<dyn Iterator<Item = (String, &Value)>> = match value {
            Value::Object(m) => Box::new(m.iter().map(|(k, v)| (k.clone(), v))),
            Value::Array(a) => Box::new(a.iter().enumerate().map(|(i, v)| (i.to_string(), v))),
            _ => return true,
        };
        if depth > self.limits.max_depth {
            errors.push_error(FieldError::limit(
                pointer,
                format!(
                    "the row nests deeper than the limit of {} levels here",
                    self.limits.max_depth
                ),
                BatchLimits::MAX_DEPTH_VAR,
            ));
            return false;
        }
        let mut ok = true;
        for (name, child) in children {
            let at = format!("{pointer}/{}", pointer_token(&name));
            if let Value::Object(_) = value {
                if !name_fits(&name, &at, self.limits, errors) {
                    ok = false;
                    continue;
                }
                if let Err(e) = ColumnName::parse(&name) {
                    errors.push(at, format!("nested field name: {}", e.0));
                    ok = false;
                    continue;
                }
            }
            ok &= self.check_nested(child, &at, depth + 1, errors);
            if errors.full() {
                return false;
            }
        }
        ok
    }

    fn identity(&self, object: &Map<String, Value>) -> (String, Map<String, Value>, Option<Value>) {
        let key: Map<String, Value> = self
            .key_columns
            .iter()
            .map(|c| (c.as_str().to_owned(), canonical(&object[c.as_str()])))
            .collect();
        let partition = self
            .partition_column
            .map(|c| canonical(&object[c.as_str()]));
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
            ..BatchLimits::default()
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
    fn row_size_depth_names_and_key_lengths_are_limited_and_named() {
        let limits = BatchLimits {
            max_row_bytes: 120,
            max_depth: 2,
            max_name_chars: 12,
            max_key_value_chars: 10,
            ..BatchLimits::default()
        };
        let errors = request(json!([
            {"game_id": "g1", "game_date": "d", "notes": "x".repeat(200)},
            {"game_id": "g2", "game_date": "d", "stats": {"fg": [1]}},
            {"game_id": "g3", "game_date": "d", "rebounds_offensive": 3},
            {"game_id": "20260124_LAL_BOS", "game_date": "d"},
            {"game_id": "g5", "game_date": "d", "stats": {"bad name": 1}},
        ]))
        .validate(&limits)
        .unwrap_err();
        let found: Vec<(&str, Option<&str>)> = errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.limit.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("/rows/0", Some("STREAMGUARD_MAX_ROW_BYTES")),
                ("/rows/1/stats/fg", Some("STREAMGUARD_MAX_DEPTH")),
                (
                    "/rows/2/rebounds_offensive",
                    Some("STREAMGUARD_MAX_NAME_CHARS")
                ),
                ("/rows/3/game_id", Some("STREAMGUARD_MAX_KEY_VALUE_CHARS")),
                ("/rows/4/stats/bad name", None),
            ]
        );
    }

    #[test]
    fn json_pointer_tokens_are_escaped() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn one_number_spelled_three_ways_is_one_key() {
        let mut req = request(json!([]));
        req.key_columns = vec!["seq".into()];
        req.partition_column = None;
        req.rows = vec![
            json!({"seq": 1, "who": "A"}),
            json!({"seq": 1.0, "who": "B"}),
            serde_json::from_str(r#"{"seq": 1e0, "who": "C"}"#).unwrap(),
        ];
        let batch = req.validate(&BatchLimits::default()).unwrap();
        assert_eq!(batch.units.len(), 1);
        assert_eq!(batch.units[0].rows.len(), 3);
        assert_eq!(
            batch.units[0].key,
            json!({"seq": 1}).as_object().unwrap().clone()
        );
        assert_eq!(canonical(&json!(1.5)), json!(1.5));
        assert_eq!(
            canonical(&json!(1e300)),
            json!(1e300),
            "beyond 2^53 stays a float"
        );
    }

    #[test]
    fn a_delete_key_spelled_differently_still_collides_with_rows() {
        let mut req = request(json!([]));
        req.key_columns = vec!["points".into()];
        req.partition_column = None;
        req.rows = vec![json!({"points": 7, "who": "keep-me"})];
        req.delete_keys = vec![json!({"points": 7.0})];
        let errors = req.validate(&BatchLimits::default()).unwrap_err();
        assert_eq!(errors[0].pointer, "/delete_keys/0");
    }

    #[test]
    fn a_delete_key_without_its_partition_value_says_so() {
        let mut req = request(json!([]));
        req.delete_keys = vec![json!({"game_id": "g"})];
        let errors = req.validate(&BatchLimits::default()).unwrap_err();
        assert_eq!(errors[0].pointer, "/delete_keys/0/game_date");
        assert!(
            errors[0]
                .detail
                .starts_with("the delete key has no value for the partition column"),
            "{}",
            errors[0].detail
        );
    }
}
