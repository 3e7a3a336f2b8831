//! [`TableSchema::infer`]: a schema made up from rows, for an emulator table written
//! before anyone declared one. Like BigQuery's schema auto-detection
//! (<https://cloud.google.com/bigquery/docs/schema-detect>) it reads the JSON types —
//! string → STRING, integer → INTEGER, other number → FLOAT (integers and fractions
//! together → FLOAT), boolean → BOOLEAN, object → RECORD, array → REPEATED — but it does
//! not guess dates from strings, and a column whose values disagree, or are all null, or
//! is an array of arrays, becomes JSON, which holds anything: an inferred schema never
//! refuses the rows it was inferred from, except for NULL inside an array, which no
//! BigQuery table can hold. Every column is NULLABLE (or REPEATED).

use serde_json::Value;

use super::{Field, FieldType, Mode, TableSchema};

/// What the values of one column look like so far.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Nothing,
    Scalar(FieldType),
    Record(Vec<(String, Seen)>),
    Array(Box<Seen>),
    Mixed,
}

fn merge(a: Seen, b: Seen) -> Seen {
    match (a, b) {
        (Seen::Nothing, x) | (x, Seen::Nothing) => x,
        (Seen::Scalar(x), Seen::Scalar(y)) if x == y => Seen::Scalar(x),
        (Seen::Scalar(FieldType::Int64), Seen::Scalar(FieldType::Float64))
        | (Seen::Scalar(FieldType::Float64), Seen::Scalar(FieldType::Int64)) => {
            Seen::Scalar(FieldType::Float64)
        }
        (Seen::Record(mut x), Seen::Record(y)) => {
            for (name, seen) in y {
                match x.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    Some((_, s)) => *s = merge(std::mem::replace(s, Seen::Nothing), seen),
                    None => x.push((name, seen)),
                }
            }
            Seen::Record(x)
        }
        (Seen::Array(x), Seen::Array(y)) => Seen::Array(Box::new(merge(*x, *y))),
        _ => Seen::Mixed,
    }
}

fn seen(v: &Value) -> Seen {
    match v {
        Value::Null => Seen::Nothing,
        Value::Bool(_) => Seen::Scalar(FieldType::Bool),
        Value::Number(n) if n.is_i64() => Seen::Scalar(FieldType::Int64),
        Value::Number(_) => Seen::Scalar(FieldType::Float64),
        Value::String(_) => Seen::Scalar(FieldType::String),
        Value::Object(o) => Seen::Record(o.iter().map(|(k, v)| (k.clone(), seen(v))).collect()),
        Value::Array(items) => {
            Seen::Array(Box::new(items.iter().map(seen).fold(Seen::Nothing, merge)))
        }
    }
}

fn field(name: &str, s: Seen) -> Field {
    match s {
        Seen::Scalar(t) => Field::new(name, t),
        Seen::Record(members) if !members.is_empty() => Field {
            fields: members.into_iter().map(|(n, s)| field(&n, s)).collect(),
            ..Field::new(name, FieldType::Record)
        },
        Seen::Array(inner) => match *inner {
            Seen::Array(_) | Seen::Mixed | Seen::Nothing => Field::new(name, FieldType::Json),
            element => field(name, element).with_mode(Mode::Repeated),
        },
        Seen::Nothing | Seen::Mixed | Seen::Record(_) => Field::new(name, FieldType::Json),
    }
}

impl TableSchema {
    /// A schema for `rows` (JSON objects; anything else is ignored), columns in order of
    /// first appearance. Unpartitioned and unclustered.
    pub fn infer(rows: &[Value]) -> Self {
        let all = rows
            .iter()
            .filter(|r| r.is_object())
            .map(seen)
            .fold(Seen::Nothing, merge);
        let fields = match all {
            Seen::Record(members) => members.into_iter().map(|(n, s)| field(&n, s)).collect(),
            _ => Vec::new(),
        };
        Self::new(fields)
    }
}
