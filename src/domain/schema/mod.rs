//! BigQuery table schemas, in BigQuery's own JSON form, and the check of rows against
//! them with BigQuery's coercion rules — pure, no I/O.
//!
//! A [`TableSchema`] is what `tables.get` reports and `tables.insert` takes
//! (<https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#Table>): `schema.fields`
//! ([`Field`]: name, type, mode, nested fields, and the precision / scale / maxLength of
//! parameterized types), `timePartitioning` or `rangePartitioning` with
//! `requirePartitionFilter` ([`Partitioning`]), and `clustering.fields`. It deserializes from
//! that JSON (unknown members ignored) and serializes back to it.
//!
//! [`TableSchema::check_batch`] and [`TableSchema::check_rows`] ([`check`]) list every
//! problem of a batch or of a write with a JSON pointer, a plain sentence and BigQuery's
//! own message; [`values`] holds the per-type rules (which JSON spellings each type
//! accepts). [`TableSchema::validate`] checks a declared schema; [`TableSchema::infer`]
//! makes one up from rows, as the emulator does for a table written before it was declared.

pub mod canonical;
pub mod check;
mod infer;
mod temporal;
mod validate;
pub mod values;
mod wire;

use serde::{Deserialize, Serialize};

pub use check::Problem;

/// A column's type, as `tables.get` names it (legacy and GoogleSQL spellings both read:
/// `INTEGER`/`INT64`, `FLOAT`/`FLOAT64`, `BOOLEAN`/`BOOL`, `RECORD`/`STRUCT`,
/// `BIGNUMERIC`/`BIGDECIMAL`; <https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TableFieldSchema.FIELDS.type>).
/// Serialized with the names `tables.get` answers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `STRING`.
    String,
    /// `BYTES` (base64 in JSON).
    Bytes,
    /// `INTEGER` / `INT64`.
    Int64,
    /// `FLOAT` / `FLOAT64`.
    Float64,
    /// `NUMERIC`: 38 digits, 9 after the point, unless parameterized.
    Numeric,
    /// `BIGNUMERIC`: 76.76 digits, 38 after the point, unless parameterized.
    BigNumeric,
    /// `BOOLEAN` / `BOOL`.
    Bool,
    /// `TIMESTAMP`: an absolute point in time, microsecond precision.
    Timestamp,
    /// `DATE`.
    Date,
    /// `TIME`.
    Time,
    /// `DATETIME`: a civil date and time, no time zone.
    Datetime,
    /// `GEOGRAPHY` (WKT or GeoJSON text).
    Geography,
    /// `JSON`.
    Json,
    /// `INTERVAL`.
    Interval,
    /// `RANGE<…>` (query parameters cannot carry it).
    Range,
    /// `RECORD` / `STRUCT`, with nested [`Field::fields`].
    Record,
    /// A type this service does not know, kept by name.
    Other(String),
}

impl FieldType {
    /// Reads a type name, case-insensitively.
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_uppercase().as_str() {
            "STRING" => Self::String,
            "BYTES" => Self::Bytes,
            "INTEGER" | "INT64" => Self::Int64,
            "FLOAT" | "FLOAT64" => Self::Float64,
            "NUMERIC" | "DECIMAL" => Self::Numeric,
            "BIGNUMERIC" | "BIGDECIMAL" => Self::BigNumeric,
            "BOOLEAN" | "BOOL" => Self::Bool,
            "TIMESTAMP" => Self::Timestamp,
            "DATE" => Self::Date,
            "TIME" => Self::Time,
            "DATETIME" => Self::Datetime,
            "GEOGRAPHY" => Self::Geography,
            "JSON" => Self::Json,
            "INTERVAL" => Self::Interval,
            "RANGE" => Self::Range,
            "RECORD" | "STRUCT" => Self::Record,
            _ => Self::Other(name.to_owned()),
        }
    }

    /// The name `tables.get` uses (`INTEGER`, `FLOAT`, `BOOLEAN`, `RECORD`, …).
    pub fn api_name(&self) -> &str {
        match self {
            Self::String => "STRING",
            Self::Bytes => "BYTES",
            Self::Int64 => "INTEGER",
            Self::Float64 => "FLOAT",
            Self::Numeric => "NUMERIC",
            Self::BigNumeric => "BIGNUMERIC",
            Self::Bool => "BOOLEAN",
            Self::Timestamp => "TIMESTAMP",
            Self::Date => "DATE",
            Self::Time => "TIME",
            Self::Datetime => "DATETIME",
            Self::Geography => "GEOGRAPHY",
            Self::Json => "JSON",
            Self::Interval => "INTERVAL",
            Self::Range => "RANGE",
            Self::Record => "RECORD",
            Self::Other(name) => name,
        }
    }

    /// The GoogleSQL name (`INT64`, `FLOAT64`, `BOOL`, `STRUCT`, …), used in messages.
    pub fn sql_name(&self) -> &str {
        match self {
            Self::Int64 => "INT64",
            Self::Float64 => "FLOAT64",
            Self::Bool => "BOOL",
            Self::Record => "STRUCT",
            other => other.api_name(),
        }
    }

    /// Whether GoogleSQL can compare two values of this type with `=` (and so `IN
    /// UNNEST(@keys)`): not JSON, GEOGRAPHY or unknown types
    /// (<https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#data_type_properties>;
    /// ZetaSQL refuses `IN UNNEST` over them: "First argument to IN UNNEST of type JSON
    /// does not support equality comparison"). A STRUCT compares field by field (the
    /// adapter's composite keys rely on it; ZetaSQL accepts it).
    pub fn supports_equality(&self) -> bool {
        !matches!(self, Self::Json | Self::Geography | Self::Other(_))
    }
}

/// `NULLABLE` (the default), `REQUIRED` or `REPEATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// May be NULL.
    #[default]
    Nullable,
    /// Must have a value.
    Required,
    /// An array of the type (never NULL inside).
    Repeated,
}

/// One column (or nested field) of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name (case-insensitive in BigQuery).
    pub name: String,
    /// Its type.
    pub field_type: FieldType,
    /// Its mode.
    pub mode: Mode,
    /// Sub-fields of a RECORD (empty otherwise).
    pub fields: Vec<Field>,
    /// Digits in all, for a parameterized `NUMERIC(P[,S])` / `BIGNUMERIC(P[,S])`.
    pub precision: Option<u32>,
    /// Digits after the point, for a parameterized NUMERIC / BIGNUMERIC.
    pub scale: Option<u32>,
    /// Most characters (STRING) or bytes (BYTES), for `STRING(L)` / `BYTES(L)`.
    pub max_length: Option<u64>,
}

impl Field {
    /// A NULLABLE column of a scalar type.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self {
            name: name.into(),
            field_type,
            mode: Mode::Nullable,
            fields: Vec::new(),
            precision: None,
            scale: None,
            max_length: None,
        }
    }

    /// The same column with `mode`.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether it is an array (`REPEATED`).
    pub fn is_repeated(&self) -> bool {
        self.mode == Mode::Repeated
    }

    /// The column's type as GoogleSQL writes it, e.g. `ARRAY<STRING>`, `NUMERIC(10, 2)`,
    /// `STRUCT<minutes FLOAT64>`.
    pub fn type_text(&self) -> String {
        let base = match (
            &self.field_type,
            self.precision,
            self.scale,
            self.max_length,
        ) {
            (FieldType::Record, ..) => format!(
                "STRUCT<{}>",
                self.fields
                    .iter()
                    .map(|f| format!("{} {}", f.name, f.type_text()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (t, Some(p), Some(s), _) => format!("{}({p}, {s})", t.sql_name()),
            (t, Some(p), None, _) => format!("{}({p})", t.sql_name()),
            (t, _, _, Some(l)) => format!("{}({l})", t.sql_name()),
            (t, ..) => t.sql_name().to_owned(),
        };
        if self.is_repeated() {
            format!("ARRAY<{base}>")
        } else {
            base
        }
    }

    /// Whether GoogleSQL can compare values of this column for equality: a REPEATED
    /// column is an ARRAY, which it cannot.
    pub fn supports_equality(&self) -> bool {
        !self.is_repeated() && self.field_type.supports_equality()
    }

    /// Whether the column can be a key or partition column: comparable for equality and
    /// a single value (a batch's key values are strings, numbers or booleans, so a RECORD
    /// can never match one).
    pub fn can_be_key(&self) -> bool {
        self.supports_equality() && self.field_type != FieldType::Record
    }
}

/// How a table is partitioned
/// (<https://cloud.google.com/bigquery/docs/partitioned-tables>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    /// By time unit or by integer range.
    pub kind: PartitionKind,
    /// The partitioning column; `None` for ingestion-time partitioning.
    pub field: Option<String>,
    /// Whether every query must filter on the partitioning column
    /// (`requirePartitionFilter`).
    pub require_partition_filter: bool,
}

/// The kind of partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKind {
    /// `timePartitioning.type`: `HOUR`, `DAY`, `MONTH` or `YEAR` (a DATE, TIMESTAMP or
    /// DATETIME column, or ingestion time).
    Time(String),
    /// `rangePartitioning`: an INT64 column, partitions of `interval` from `start` to `end`.
    IntegerRange {
        /// First value (inclusive).
        start: i64,
        /// Last value (exclusive).
        end: i64,
        /// Width of each partition.
        interval: i64,
    },
}

/// A table's schema, partitioning and clustering, in BigQuery's `Table` JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "wire::TableResource", into = "wire::TableResource")]
pub struct TableSchema {
    /// Top-level columns, in order.
    pub fields: Vec<Field>,
    /// Partitioning, when the table has it.
    pub partitioning: Option<Partitioning>,
    /// Clustering columns (at most 4), in order.
    pub clustering: Vec<String>,
}

/// Whether intake checked a batch's rows against the table's schema, on the batch's
/// answer (`schema_check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "unchecked", "detail": "the schema of nba-props-platform.nba_raw.bdl_player_boxscores could not be read (cannot reach BigQuery); the rows were accepted unchecked and are checked at the first attempt"}))]
pub struct SchemaCheck {
    /// `checked`: every row fits the table's schema. `unchecked`: the schema could not be
    /// read (or the table has none yet); the batch was accepted and the first attempt
    /// checks it.
    pub status: SchemaCheckStatus,
    /// What was checked, or why not.
    pub detail: String,
}

/// See [`SchemaCheck::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaCheckStatus {
    /// Checked against the table's schema; nothing wrong.
    Checked,
    /// Not checked: the schema could not be read, or the table has none yet.
    Unchecked,
}

/// Finds a field by name, case-insensitively (BigQuery column names are).
pub fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

impl TableSchema {
    /// A schema of `fields`, unpartitioned and unclustered.
    pub fn new(fields: Vec<Field>) -> Self {
        Self {
            fields,
            ..Self::default()
        }
    }

    /// The top-level column `name`.
    pub fn column(&self, name: &str) -> Option<&Field> {
        find(&self.fields, name)
    }

    /// The partitioning column, when the table is partitioned by a column.
    pub fn partition_field(&self) -> Option<&str> {
        self.partitioning.as_ref()?.field.as_deref()
    }

    /// Whether queries must filter on the partitioning column.
    pub fn requires_partition_filter(&self) -> bool {
        self.partitioning
            .as_ref()
            .is_some_and(|p| p.require_partition_filter)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod value_tests;
