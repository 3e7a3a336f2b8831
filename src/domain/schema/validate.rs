//! [`TableSchema::validate`]: the rules a declared schema (the body of
//! `POST /emulator/tables`, BigQuery's `tables.insert`) must follow, each problem with a
//! JSON pointer into that body.

use std::collections::HashSet;

use super::{Field, FieldType, PartitionKind, TableSchema};
use crate::domain::{ColumnName, FieldError};

impl TableSchema {
    /// Checks a declared schema against BigQuery's rules for `tables.insert`: every name a
    /// valid column name and unique (case-insensitively) among its siblings, a RECORD with
    /// sub-fields and no other type with them, no unknown type, precision/scale only on
    /// NUMERIC/BIGNUMERIC and maxLength only on STRING/BYTES, the partitioning column a
    /// top-level non-repeated DATE/TIMESTAMP/DATETIME (time) or INTEGER (range) column, a
    /// time unit of HOUR/DAY/MONTH/YEAR, a range with `start < end` and `interval > 0`,
    /// at most 4 clustering columns that exist and are top-level scalars BigQuery can
    /// cluster by (<https://cloud.google.com/bigquery/docs/creating-clustered-tables#limitations>).
    ///
    /// Returns each problem with a JSON pointer into the `tables.insert` body.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.fields.is_empty() {
            errors.push(FieldError::new(
                "/schema/fields",
                "a table needs at least one column",
            ));
        }
        validate_fields(&self.fields, "/schema/fields", &mut errors);
        if let Some(p) = &self.partitioning {
            let (pointer, allowed): (&str, &[FieldType]) = match &p.kind {
                PartitionKind::Time(unit) => {
                    if !matches!(unit.as_str(), "HOUR" | "DAY" | "MONTH" | "YEAR") {
                        errors.push(FieldError::new(
                            "/timePartitioning/type",
                            format!(
                                "partitioning type {unit} is not one of HOUR, DAY, MONTH, YEAR"
                            ),
                        ));
                    }
                    (
                        "/timePartitioning/field",
                        &[FieldType::Date, FieldType::Timestamp, FieldType::Datetime],
                    )
                }
                PartitionKind::IntegerRange {
                    start,
                    end,
                    interval,
                } => {
                    if start >= end || *interval <= 0 {
                        errors.push(FieldError::new(
                            "/rangePartitioning/range",
                            format!("a range needs start < end and interval > 0; got start {start}, end {end}, interval {interval}"),
                        ));
                    }
                    if p.field.is_none() {
                        errors.push(FieldError::new(
                            "/rangePartitioning/field",
                            "integer-range partitioning needs a column",
                        ));
                    }
                    ("/rangePartitioning/field", &[FieldType::Int64])
                }
            };
            if let Some(name) = &p.field {
                match self.column(name) {
                    None => errors.push(FieldError::new(
                        pointer,
                        format!("the partitioning column `{name}` is not in the schema"),
                    )),
                    Some(f) if f.is_repeated() || !allowed.contains(&f.field_type) => {
                        let names: Vec<&str> = allowed.iter().map(FieldType::sql_name).collect();
                        errors.push(FieldError::new(
                            pointer,
                            format!(
                                "the partitioning column `{name}` is {}; it must be {}",
                                f.type_text(),
                                names.join(", ")
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.clustering.len() > 4 {
            errors.push(FieldError::new(
                "/clustering/fields",
                format!(
                    "at most 4 clustering columns; got {}",
                    self.clustering.len()
                ),
            ));
        }
        for (i, name) in self.clustering.iter().enumerate() {
            let pointer = format!("/clustering/fields/{i}");
            match self.column(name) {
                None => errors.push(FieldError::new(
                    pointer,
                    format!("the clustering column `{name}` is not in the schema"),
                )),
                Some(f)
                    if f.is_repeated()
                        || matches!(
                            f.field_type,
                            FieldType::Json
                                | FieldType::Record
                                | FieldType::Float64
                                | FieldType::Interval
                                | FieldType::Range
                        ) =>
                {
                    errors.push(FieldError::new(
                        pointer,
                        format!(
                            "BigQuery cannot cluster by `{name}` of type {}",
                            f.type_text()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        errors
    }
}

fn validate_fields(fields: &[Field], pointer: &str, errors: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        let at = format!("{pointer}/{i}");
        if let Err(e) = ColumnName::parse(&f.name) {
            errors.push(FieldError::new(format!("{at}/name"), e.0));
        } else if !seen.insert(f.name.to_ascii_lowercase()) {
            errors.push(FieldError::new(
                format!("{at}/name"),
                format!(
                    "`{}` appears twice (column names are case-insensitive)",
                    f.name
                ),
            ));
        }
        match &f.field_type {
            FieldType::Other(t) => errors.push(FieldError::new(
                format!("{at}/type"),
                format!("unknown type {t}"),
            )),
            FieldType::Record if f.fields.is_empty() => errors.push(FieldError::new(
                format!("{at}/fields"),
                "a RECORD needs at least one field",
            )),
            FieldType::Record => validate_fields(&f.fields, &format!("{at}/fields"), errors),
            _ if !f.fields.is_empty() => errors.push(FieldError::new(
                format!("{at}/fields"),
                format!(
                    "only a RECORD has fields; this column is {}",
                    f.field_type.sql_name()
                ),
            )),
            _ => {}
        }
        let decimal = matches!(f.field_type, FieldType::Numeric | FieldType::BigNumeric);
        if (f.precision.is_some() || f.scale.is_some()) && !decimal {
            errors.push(FieldError::new(
                format!("{at}/precision"),
                "precision and scale belong to NUMERIC and BIGNUMERIC columns",
            ));
        }
        if f.scale.is_some() && f.precision.is_none() {
            errors.push(FieldError::new(
                format!("{at}/scale"),
                "a scale needs a precision",
            ));
        }
        if let (true, Some(p)) = (decimal, f.precision) {
            let (max_scale, max_int) = if f.field_type == FieldType::Numeric {
                (9, 29)
            } else {
                (38, 38)
            };
            let s = f.scale.unwrap_or(0);
            if s > max_scale || p < s.max(1) || p - s > max_int {
                errors.push(FieldError::new(
                    format!("{at}/precision"),
                    format!(
                        "{} allows a scale of 0 to {max_scale} and a precision of max(1, scale) to scale + {max_int}; got precision {p}, scale {s}",
                        f.field_type.sql_name()
                    ),
                ));
            }
        }
        if f.max_length.is_some() && !matches!(f.field_type, FieldType::String | FieldType::Bytes) {
            errors.push(FieldError::new(
                format!("{at}/maxLength"),
                "maxLength belongs to STRING and BYTES columns",
            ));
        }
    }
}
