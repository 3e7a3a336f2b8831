//! Query parameters built from a table's schema: the BigQuery type of each column
//! (`QueryParameterType`) and the value of each row (`QueryParameterValue`), so that row
//! data only ever travels as parameters, never inside SQL text.
//!
//! The schema comes from `tables.get` (<https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TableFieldSchema>).
//! It is decoded with the small [`Field`] type below rather than the crate's
//! `TableFieldSchema`, whose `FieldType` enum has no `RANGE` and would refuse the whole
//! table. Values follow BigQuery's parameter encoding (every scalar as a string, arrays as
//! `arrayValues`, records as `structValues`; an absent `value` is NULL —
//! <https://cloud.google.com/bigquery/docs/reference/rest/v2/QueryParameter>).
//!
//! Also here: [`estimate_request_bytes`], the schema-free size estimate intake uses to
//! refuse a unit that cannot fit BigQuery's 10 MB request limit.

use std::collections::HashMap;

use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_type_struct_types::QueryParameterTypeStructTypes;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;
use serde::Deserialize;
use serde_json::Value;

/// One column of a table schema, as `tables.get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Legacy or GoogleSQL type name: `STRING`, `INTEGER`/`INT64`, `RECORD`/`STRUCT`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `NULLABLE` (the default), `REQUIRED` or `REPEATED`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Sub-columns of a `RECORD`.
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl Field {
    /// Whether the column is an array (`mode: REPEATED`).
    pub fn is_repeated(&self) -> bool {
        self.mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"))
    }

    fn is_record(&self) -> bool {
        matches!(self.kind.to_ascii_uppercase().as_str(), "RECORD" | "STRUCT")
    }

    /// The GoogleSQL parameter type of one element (the column's type without `REPEATED`).
    fn element_type(&self) -> Result<QueryParameterType, String> {
        let scalar = |t: &str| QueryParameterType {
            r#type: t.into(),
            ..Default::default()
        };
        Ok(match self.kind.to_ascii_uppercase().as_str() {
            "STRING" => scalar("STRING"),
            "BYTES" => scalar("BYTES"),
            "INTEGER" | "INT64" => scalar("INT64"),
            "FLOAT" | "FLOAT64" => scalar("FLOAT64"),
            "NUMERIC" => scalar("NUMERIC"),
            "BIGNUMERIC" => scalar("BIGNUMERIC"),
            "BOOLEAN" | "BOOL" => scalar("BOOL"),
            "TIMESTAMP" => scalar("TIMESTAMP"),
            "DATE" => scalar("DATE"),
            "TIME" => scalar("TIME"),
            "DATETIME" => scalar("DATETIME"),
            "GEOGRAPHY" => scalar("GEOGRAPHY"),
            "JSON" => scalar("JSON"),
            "INTERVAL" => scalar("INTERVAL"),
            "RECORD" | "STRUCT" => QueryParameterType {
                r#type: "STRUCT".into(),
                struct_types: Some(
                    self.fields
                        .iter()
                        .map(|f| {
                            Ok(QueryParameterTypeStructTypes {
                                name: Some(f.name.clone()),
                                r#type: Some(f.parameter_type()?),
                                description: None,
                            })
                        })
                        .collect::<Result<_, String>>()?,
                ),
                array_type: None,
            },
            other => {
                return Err(format!(
                    "column `{}` has type {other}, which BigQuery query parameters cannot carry",
                    self.name
                ))
            }
        })
    }

    /// The parameter type of a whole value of this column (`ARRAY<…>` when repeated).
    ///
    /// # Errors
    /// When the type cannot be a query parameter (e.g. `RANGE`).
    pub fn parameter_type(&self) -> Result<QueryParameterType, String> {
        let element = self.element_type()?;
        Ok(if self.is_repeated() {
            array_of(element)
        } else {
            element
        })
    }

    /// Encodes one JSON value of this column. `at` names the value in messages
    /// (`row 3, column points`).
    ///
    /// # Errors
    /// A sentence naming the value and what BigQuery expects there.
    pub fn encode(&self, value: &Value, at: &str) -> Result<QueryParameterValue, String> {
        if self.is_repeated() {
            return match value {
                // BigQuery stores a NULL array as an empty one.
                Value::Null => Ok(array_value(Vec::new())),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Null => Err(format!(
                            "{at}[{i}] is null; BigQuery arrays cannot hold NULL"
                        )),
                        v => self.encode_element(v, &format!("{at}[{i}]")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(array_value),
                _ => Err(format!("{at} must be an array (the column is REPEATED)")),
            };
        }
        self.encode_element(value, at)
    }

    fn encode_element(&self, value: &Value, at: &str) -> Result<QueryParameterValue, String> {
        if value.is_null() {
            return Ok(QueryParameterValue::default());
        }
        if self.is_record() {
            let Value::Object(object) = value else {
                return Err(format!("{at} must be an object (the column is a RECORD)"));
            };
            return encode_record(&self.fields, object, at).map(|values| QueryParameterValue {
                struct_values: Some(values),
                ..Default::default()
            });
        }
        let kind = self.kind.to_ascii_uppercase();
        let text = match (kind.as_str(), value) {
            ("JSON", v) => v.to_string(),
            ("BOOLEAN" | "BOOL", Value::Bool(b)) => b.to_string(),
            ("INTEGER" | "INT64", Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            ("FLOAT" | "FLOAT64" | "NUMERIC" | "BIGNUMERIC", Value::Number(n)) => n.to_string(),
            (
                "INTEGER" | "INT64" | "FLOAT" | "FLOAT64" | "NUMERIC" | "BIGNUMERIC" | "BOOLEAN"
                | "BOOL",
                Value::String(s),
            ) => s.clone(),
            (
                "STRING" | "BYTES" | "TIMESTAMP" | "DATE" | "TIME" | "DATETIME" | "GEOGRAPHY"
                | "INTERVAL",
                Value::String(s),
            ) => s.clone(),
            // insertAll accepts a TIMESTAMP as seconds since the epoch; so do we.
            ("TIMESTAMP", Value::Number(n)) => n
                .as_f64()
                .and_then(|secs| {
                    chrono::DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
                })
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .ok_or_else(|| format!("{at} is not a time in seconds since the epoch"))?,
            (_, v) => {
                return Err(format!(
                    "{at} is {}, which cannot be written to a column of type {kind}",
                    describe(v)
                ))
            }
        };
        Ok(QueryParameterValue {
            value: Some(text),
            ..Default::default()
        })
    }
}

/// `ARRAY<element>`.
pub fn array_of(element: QueryParameterType) -> QueryParameterType {
    QueryParameterType {
        r#type: "ARRAY".into(),
        array_type: Some(Box::new(element)),
        struct_types: None,
    }
}

/// An array value.
pub fn array_value(items: Vec<QueryParameterValue>) -> QueryParameterValue {
    QueryParameterValue {
        array_values: Some(items),
        ..Default::default()
    }
}

/// A `STRUCT<…>` of the given (name, type) fields.
pub fn struct_of(fields: Vec<(String, QueryParameterType)>) -> QueryParameterType {
    QueryParameterType {
        r#type: "STRUCT".into(),
        struct_types: Some(
            fields
                .into_iter()
                .map(|(name, t)| QueryParameterTypeStructTypes {
                    name: Some(name),
                    r#type: Some(t),
                    description: None,
                })
                .collect(),
        ),
        array_type: None,
    }
}

/// Finds a column by name, case-insensitively (BigQuery column names are).
pub fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// Encodes a JSON object against `fields`: every member must name a field; fields the
/// object lacks are NULL.
fn encode_record(
    fields: &[Field],
    object: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<HashMap<String, QueryParameterValue>, String> {
    for name in object.keys() {
        if find(fields, name).is_none() {
            return Err(format!(
                "{at} has a field `{name}` that the schema does not have"
            ));
        }
    }
    fields
        .iter()
        .map(|f| {
            let value = object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&f.name))
                .map_or(&Value::Null, |(_, v)| v);
            f.encode(value, &format!("{at}.{}", f.name))
                .map(|v| (f.name.clone(), v))
        })
        .collect()
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// BigQuery's limit on one API request, parameters included: 10 MB
/// (<https://cloud.google.com/bigquery/quotas>, "Maximum request size"; bigquery-facts B6).
/// Read as 10,000,000 bytes so that either reading of "MB" is respected.
pub const MAX_REQUEST_BYTES: usize = 10_000_000;

/// Room kept in every request for what is not row data: the SQL text, the parameter
/// types, the key and partition arrays, the job envelope (bytes).
pub const REQUEST_OVERHEAD_BYTES: usize = 256 * 1024;

/// An upper estimate, in bytes, of the request that replaces `rows`, computed without the
/// schema: each value is sized as the larger of its encodings (a record's `structValues`
/// or a JSON column's string), each row also pays `"column":{}` for every column other
/// rows have and it lacks (sent as NULL), plus [`REQUEST_OVERHEAD_BYTES`]. Not counted:
/// sub-fields of a RECORD that a value omits (sent as NULL); the exact size is checked
/// again before sending, and a request over the limit is then refused, never cut.
pub fn estimate_request_bytes(rows: &[Value]) -> usize {
    let mut columns: Vec<&String> = rows
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys())
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let absent = |row: &Value| -> usize {
        columns
            .iter()
            .filter(|c| row.get(c.as_str()).is_none())
            .map(|c| json_string_len(c) + 6)
            .sum()
    };
    REQUEST_OVERHEAD_BYTES
        + rows
            .iter()
            .map(|r| encoded_len(r) + absent(r) + 1)
            .sum::<usize>()
}

/// Bytes of one value in parameter form: `{"value":"…"}`, `{"arrayValues":[…]}`,
/// `{"structValues":{…}}`, or `{}` for NULL.
fn encoded_len(v: &Value) -> usize {
    // `{"value":""}` plus the text, escaped as a JSON string.
    let as_text = |text: &str| 12 + json_string_len(text);
    match v {
        Value::Null => 2,
        Value::Bool(b) => as_text(&b.to_string()),
        Value::Number(n) => as_text(&n.to_string()),
        Value::String(s) => as_text(s),
        Value::Array(items) => {
            let structured = 18 + items.iter().map(|i| encoded_len(i) + 1).sum::<usize>();
            structured.max(as_text(&v.to_string()))
        }
        Value::Object(members) => {
            let structured = 19
                + members
                    .iter()
                    .map(|(k, x)| json_string_len(k) + 1 + encoded_len(x) + 1)
                    .sum::<usize>();
            structured.max(as_text(&v.to_string()))
        }
    }
}

/// Length of `s` escaped inside a JSON string, without the quotes.
fn json_string_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len() * 6, |q| q.len() - 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(v: &QueryParameterValue) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn field(name: &str, kind: &str, mode: Option<&str>) -> Field {
        Field {
            name: name.into(),
            kind: kind.into(),
            mode: mode.map(Into::into),
            fields: vec![],
        }
    }

    #[test]
    fn scalar_types_map_to_googlesql_parameter_types() {
        for (legacy, sql) in [
            ("INTEGER", "INT64"),
            ("FLOAT", "FLOAT64"),
            ("BOOLEAN", "BOOL"),
            ("STRING", "STRING"),
            ("DATE", "DATE"),
            ("JSON", "JSON"),
        ] {
            assert_eq!(
                field("c", legacy, None).parameter_type().unwrap().r#type,
                sql
            );
        }
        let repeated = field("tags", "STRING", Some("REPEATED"))
            .parameter_type()
            .unwrap();
        assert_eq!(repeated.r#type, "ARRAY");
        assert_eq!(repeated.array_type.unwrap().r#type, "STRING");
        let e = field("span", "RANGE", None).parameter_type().unwrap_err();
        assert!(e.contains("span") && e.contains("RANGE"), "{e}");
    }

    #[test]
    fn values_become_strings_nulls_absent_and_records_struct_values() {
        let int = field("points", "INTEGER", None);
        assert_eq!(
            int.encode(&json!(31), "x").unwrap().value.as_deref(),
            Some("31")
        );
        assert_eq!(
            int.encode(&json!("31"), "x").unwrap().value.as_deref(),
            Some("31")
        );
        assert_eq!(j(&int.encode(&Value::Null, "x").unwrap()), json!({}));
        let e = int.encode(&json!(1.5), "row 0, column points").unwrap_err();
        assert!(
            e.contains("row 0, column points") && e.contains("INTEGER"),
            "{e}"
        );
        let e = field("name", "STRING", None)
            .encode(&json!(5), "r")
            .unwrap_err();
        assert!(e.contains("a number"), "{e}");
        let js = field("extra", "JSON", None)
            .encode(&json!({"a": [1]}), "r")
            .unwrap();
        assert_eq!(js.value.as_deref(), Some("{\"a\":[1]}"));

        let record = Field {
            name: "shot".into(),
            kind: "RECORD".into(),
            mode: Some("REPEATED".into()),
            fields: vec![field("x", "FLOAT", None), field("made", "BOOLEAN", None)],
        };
        let v = record
            .encode(&json!([{"x": 1.5, "MADE": true}, {"x": 2}]), "r")
            .unwrap();
        let items = v.array_values.unwrap();
        let first = items[0].struct_values.as_ref().unwrap();
        assert_eq!(first["x"].value.as_deref(), Some("1.5"));
        assert_eq!(first["made"].value.as_deref(), Some("true"));
        assert_eq!(
            j(&items[1].struct_values.as_ref().unwrap()["made"]),
            json!({})
        );
        assert!(record
            .encode(&json!([{"y": 1}]), "r")
            .unwrap_err()
            .contains("`y`"));
        assert!(record.encode(&json!([null]), "r").is_err());
        assert_eq!(
            j(&record.encode(&Value::Null, "r").unwrap()),
            json!({"arrayValues": []})
        );
    }

    #[test]
    fn the_estimate_is_never_below_the_real_encoding() {
        let fields = vec![
            field("game_id", "STRING", None),
            field("points", "INTEGER", None),
            field("extra", "JSON", None),
            field("tags", "STRING", Some("REPEATED")),
        ];
        let rows = vec![
            json!({"game_id": "20260124_LAL_BOS", "points": 31, "extra": {"q\"uote": [1, 2, {"x": "y"}]}, "tags": ["a", "b"]}),
            json!({"game_id": "é\n", "points": null, "extra": "plain", "tags": []}),
        ];
        let encoded: Vec<QueryParameterValue> = rows
            .iter()
            .map(|r| QueryParameterValue {
                struct_values: Some(encode_record(&fields, r.as_object().unwrap(), "r").unwrap()),
                ..Default::default()
            })
            .collect();
        let real = serde_json::to_vec(&array_value(encoded)).unwrap().len();
        let estimate = estimate_request_bytes(&rows) - REQUEST_OVERHEAD_BYTES;
        assert!(estimate >= real, "estimate {estimate} < real {real}");
    }
}
