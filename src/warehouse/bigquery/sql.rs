//! The replace statement: one `MERGE … ON FALSE`, atomic on its own
//! (`docs/architecture.md`, "Why the replace is one `MERGE … ON FALSE`"; the form
//! dbt-bigquery uses for `insert_overwrite`, bigquery-facts "Design implications"):
//!
//! ```sql
//! MERGE `p.d.t` AS sg_target
//! USING (SELECT * FROM UNNEST(@rows)) AS sg_source
//! ON FALSE
//! WHEN NOT MATCHED BY SOURCE
//!   AND sg_target.`game_date` IN UNNEST(@partitions)
//!   AND STRUCT(sg_target.`game_id`, sg_target.`game_date`) IN UNNEST(@keys)
//!   THEN DELETE
//! WHEN NOT MATCHED THEN INSERT (`game_id`, …) VALUES (sg_source.`game_id`, …)
//! ```
//!
//! With `ON FALSE` no target row matches, so every target row whose key is in `@keys` is
//! deleted and every source row is inserted, in one statement. The text holds only
//! validated, back-quoted identifiers and parameter names; every value (rows, keys,
//! partition values) is a query parameter. `@partitions` repeats the partition values as
//! a plain array so that BigQuery can prune partitions; `@keys` holds each unit's whole
//! identity (key columns and partition), compared as a STRUCT, so two units never widen
//! each other's delete (STRUCTs compare for equality field by field, in order; see
//! "Comparable data types" in
//! <https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types>). Key
//! values are never NULL (intake refuses them), so every comparison is true or false.
//! A pure delete (no rows in any unit) has no insert branch.

use std::collections::BTreeSet;

use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;
use serde_json::Value;

use super::params::{array_of, array_value, find, struct_of, Field};
use crate::domain::{ColumnName, TableRef};
use crate::warehouse::WriteUnit;

/// A statement and its parameters, ready for a query job (`parameterMode: NAMED`).
#[derive(Debug, Clone)]
pub struct Statement {
    /// GoogleSQL text: identifiers and `@names` only.
    pub sql: String,
    /// `@rows` (when there are rows), `@keys`, and `@partitions` (partitioned tables).
    pub params: Vec<QueryParameter>,
    /// Rows the statement inserts.
    pub rows: u64,
}

fn parameter(name: &str, t: QueryParameterType, v: QueryParameterValue) -> QueryParameter {
    QueryParameter {
        name: Some(name.into()),
        parameter_type: Some(t),
        parameter_value: Some(v),
    }
}

/// Builds the replace statement for `units` (all of `table`) from the table's `schema`.
///
/// # Errors
/// A sentence for the unit's error when the units do not fit the schema: no units, units
/// with different key columns, a key or row column the table does not have, a value of
/// the wrong type.
pub fn replace(
    table: &TableRef,
    schema: &[Field],
    units: &[WriteUnit],
) -> Result<Statement, String> {
    let first = units.first().ok_or("a replace needs at least one unit")?;
    // The identity: the key columns, then the partition column.
    let partition = first.partition.as_ref().map(|(c, _)| c.clone());
    let identity: Vec<String> = first
        .key
        .keys()
        .cloned()
        .chain(partition.iter().map(|p| p.as_str().to_owned()))
        .collect();
    for u in units {
        let same = u.key.keys().eq(first.key.keys())
            && u.partition.as_ref().map(|(c, _)| c) == partition.as_ref();
        if !same {
            return Err(
                "units replaced together must share their key and partition columns".into(),
            );
        }
    }
    let identity_fields = identity
        .iter()
        .map(|c| column(schema, table, c))
        .collect::<Result<Vec<_>, _>>()?;

    let mut params = Vec::new();
    let mut conditions = Vec::new();
    if let Some(p) = &partition {
        let field = column(schema, table, p.as_str())?;
        let mut seen = BTreeSet::new();
        let values = units
            .iter()
            .filter_map(|u| u.partition.as_ref().map(|(_, v)| v))
            .filter(|v| seen.insert(v.to_string()))
            .map(|v| field.encode(v, &format!("partition value of `{p}`")))
            .collect::<Result<Vec<_>, _>>()?;
        params.push(parameter(
            "partitions",
            array_of(field.parameter_type()?),
            array_value(values),
        ));
        conditions.push(format!(
            "sg_target.{} IN UNNEST(@partitions)",
            quoted(field)?
        ));
    }
    let (key_type, key_expr) = if let [single] = identity_fields.as_slice() {
        (
            single.parameter_type()?,
            format!("sg_target.{}", quoted(single)?),
        )
    } else {
        let types = identity_fields
            .iter()
            .map(|f| Ok((f.name.clone(), f.parameter_type()?)))
            .collect::<Result<Vec<_>, String>>()?;
        let columns = identity_fields
            .iter()
            .map(|f| Ok(format!("sg_target.{}", quoted(f)?)))
            .collect::<Result<Vec<_>, String>>()?;
        (struct_of(types), format!("STRUCT({})", columns.join(", ")))
    };
    let keys = units
        .iter()
        .map(|u| key_value(&identity_fields, &u.identity()))
        .collect::<Result<Vec<_>, _>>()?;
    params.push(parameter("keys", array_of(key_type), array_value(keys)));
    conditions.push(format!("{key_expr} IN UNNEST(@keys)"));

    let rows: Vec<&Value> = units.iter().flat_map(|u| &u.rows).collect();
    let mut sql = format!("MERGE {} AS sg_target\n", table.quoted());
    if rows.is_empty() {
        sql.push_str("USING (SELECT 1 AS sg_nothing) AS sg_source\nON FALSE\n");
    } else {
        sql.push_str("USING (SELECT * FROM UNNEST(@rows)) AS sg_source\nON FALSE\n");
    }
    sql.push_str(&format!(
        "WHEN NOT MATCHED BY SOURCE AND {} THEN DELETE",
        conditions.join(" AND ")
    ));
    if !rows.is_empty() {
        let columns = insert_columns(schema, table, &rows)?;
        let (row_type, row_values) = row_parameter(&columns, &rows)?;
        params.insert(
            0,
            parameter("rows", array_of(row_type), array_value(row_values)),
        );
        let names = columns
            .iter()
            .map(|f| quoted(f))
            .collect::<Result<Vec<_>, _>>()?;
        let sources: Vec<String> = names.iter().map(|n| format!("sg_source.{n}")).collect();
        sql.push_str(&format!(
            "\nWHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            names.join(", "),
            sources.join(", ")
        ));
    }
    Ok(Statement {
        sql,
        params,
        rows: rows.len() as u64,
    })
}

/// The schema's column for `name`, or an error naming the table.
fn column<'a>(schema: &'a [Field], table: &TableRef, name: &str) -> Result<&'a Field, String> {
    find(schema, name).ok_or_else(|| format!("table {table} has no column `{name}`"))
}

/// The column's back-quoted name, validated again because it comes from BigQuery.
fn quoted(field: &Field) -> Result<String, String> {
    ColumnName::parse(&field.name)
        .map(|c| c.quoted())
        .map_err(|e| format!("the table's column name cannot be used: {e}"))
}

/// The columns the rows set, in schema order; a member the schema lacks is an error.
fn insert_columns<'a>(
    schema: &'a [Field],
    table: &TableRef,
    rows: &[&Value],
) -> Result<Vec<&'a Field>, String> {
    let mut used = BTreeSet::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(object) = row else {
            return Err(format!("row {i} is not an object"));
        };
        for name in object.keys() {
            let field = find(schema, name).ok_or_else(|| {
                format!("row {i} has a column `{name}` that table {table} does not have")
            })?;
            used.insert(field.name.clone());
        }
    }
    Ok(schema.iter().filter(|f| used.contains(&f.name)).collect())
}

/// `ARRAY<STRUCT<columns>>` and one struct value per row (absent members are NULL).
fn row_parameter(
    columns: &[&Field],
    rows: &[&Value],
) -> Result<(QueryParameterType, Vec<QueryParameterValue>), String> {
    let row_type = struct_of(
        columns
            .iter()
            .map(|f| Ok((f.name.clone(), f.parameter_type()?)))
            .collect::<Result<_, String>>()?,
    );
    let values = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let struct_values = columns
                .iter()
                .map(|f| {
                    let v = row
                        .as_object()
                        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(&f.name)))
                        .map_or(&Value::Null, |(_, v)| v);
                    f.encode(v, &format!("row {i}, column {}", f.name))
                        .map(|e| (f.name.clone(), e))
                })
                .collect::<Result<_, String>>()?;
            Ok(QueryParameterValue {
                struct_values: Some(struct_values),
                ..Default::default()
            })
        })
        .collect::<Result<_, String>>()?;
    Ok((row_type, values))
}

/// One unit's identity as a key value: the scalar itself for a one-column identity, a
/// struct (in identity order) otherwise.
fn key_value(
    fields: &[&Field],
    identity: &serde_json::Map<String, Value>,
) -> Result<QueryParameterValue, String> {
    let value_of = |f: &Field| {
        let v = identity
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&f.name))
            .map_or(&Value::Null, |(_, v)| v);
        f.encode(v, &format!("key column `{}`", f.name))
    };
    if let [single] = fields {
        return value_of(single);
    }
    Ok(QueryParameterValue {
        struct_values: Some(
            fields
                .iter()
                .map(|f| value_of(f).map(|v| (f.name.clone(), v)))
                .collect::<Result<_, String>>()?,
        ),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn field(name: &str, kind: &str) -> Field {
        Field {
            name: name.into(),
            kind: kind.into(),
            mode: None,
            fields: vec![],
        }
    }

    fn schema() -> Vec<Field> {
        vec![
            field("game_id", "STRING"),
            field("game_date", "DATE"),
            field("player_lookup", "STRING"),
            field("points", "INTEGER"),
            field("source", "STRING"),
        ]
    }

    fn table() -> TableRef {
        TableRef::parse("nba-props-platform.nba_raw.bdl_player_boxscores").unwrap()
    }

    fn unit(game: &str, date: &str, rows: Vec<Value>) -> WriteUnit {
        WriteUnit {
            unit_id: Uuid::nil(),
            attempt: 1,
            key: serde_json::Map::from_iter([("game_id".to_owned(), json!(game))]),
            partition: Some((ColumnName::parse("game_date").unwrap(), json!(date))),
            rows,
        }
    }

    fn to_json<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn replace_is_one_merge_on_false_with_values_only_in_parameters() {
        let rows = vec![
            json!({"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "lebron'; DROP TABLE x; --", "points": 31}),
            json!({"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24", "player_lookup": "tatum", "points": 28}),
        ];
        let s = replace(
            &table(),
            &schema(),
            &[unit("20260124_LAL_BOS", "2026-01-24", rows)],
        )
        .unwrap();
        assert_eq!(
            s.sql,
            "MERGE `nba-props-platform.nba_raw.bdl_player_boxscores` AS sg_target\n\
             USING (SELECT * FROM UNNEST(@rows)) AS sg_source\nON FALSE\n\
             WHEN NOT MATCHED BY SOURCE AND sg_target.`game_date` IN UNNEST(@partitions) \
             AND STRUCT(sg_target.`game_id`, sg_target.`game_date`) IN UNNEST(@keys) THEN DELETE\n\
             WHEN NOT MATCHED THEN INSERT (`game_id`, `game_date`, `player_lookup`, `points`) \
             VALUES (sg_source.`game_id`, sg_source.`game_date`, sg_source.`player_lookup`, sg_source.`points`)"
        );
        for value in [
            "20260124_LAL_BOS",
            "2026-01-24",
            "lebron",
            "tatum",
            "31",
            "28",
        ] {
            assert!(!s.sql.contains(value), "{value} leaked into the SQL text");
        }
        assert_eq!(s.rows, 2);
        let p = to_json(&s.params);
        assert_eq!(p[0]["name"], "rows");
        assert_eq!(p[0]["parameterType"]["type"], "ARRAY");
        assert_eq!(p[0]["parameterType"]["arrayType"]["type"], "STRUCT");
        assert_eq!(
            p[0]["parameterType"]["arrayType"]["structTypes"][3],
            json!({"name": "points", "type": {"type": "INT64"}})
        );
        assert_eq!(
            p[0]["parameterValue"]["arrayValues"][0]["structValues"]["player_lookup"]["value"],
            "lebron'; DROP TABLE x; --"
        );
        assert_eq!(p[1]["name"], "partitions");
        assert_eq!(
            p[1]["parameterType"],
            json!({"type": "ARRAY", "arrayType": {"type": "DATE"}})
        );
        assert_eq!(
            p[1]["parameterValue"],
            json!({"arrayValues": [{"value": "2026-01-24"}]})
        );
        assert_eq!(p[2]["name"], "keys");
        assert_eq!(
            p[2]["parameterValue"]["arrayValues"][0]["structValues"],
            json!({"game_id": {"value": "20260124_LAL_BOS"}, "game_date": {"value": "2026-01-24"}})
        );
    }

    #[test]
    fn a_pure_delete_has_no_insert_branch_and_no_rows_parameter() {
        let s = replace(&table(), &schema(), &[unit("g1", "2026-01-24", vec![])]).unwrap();
        assert!(
            s.sql.contains("ON FALSE") && s.sql.ends_with("THEN DELETE"),
            "{}",
            s.sql
        );
        assert!(!s.sql.contains("INSERT") && !s.sql.contains("@rows"));
        let names: Vec<_> = s.params.iter().map(|p| p.name.clone().unwrap()).collect();
        assert_eq!(names, ["partitions", "keys"]);
        assert_eq!(s.rows, 0);
    }

    #[test]
    fn several_units_list_each_identity_and_each_partition_once() {
        let row = |g: &str, d: &str| json!({"game_id": g, "game_date": d, "points": 1});
        let units = [
            unit("g1", "2026-01-24", vec![row("g1", "2026-01-24")]),
            unit("g2", "2026-01-24", vec![]),
            unit("g3", "2026-01-25", vec![row("g3", "2026-01-25")]),
        ];
        let p = to_json(&replace(&table(), &schema(), &units).unwrap().params);
        assert_eq!(
            p[1]["parameterValue"]["arrayValues"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            p[2]["parameterValue"]["arrayValues"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            p[0]["parameterValue"]["arrayValues"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_single_key_column_is_compared_as_a_scalar() {
        let mut u = unit("g1", "x", vec![json!({"game_id": "g1", "points": 3})]);
        u.partition = None;
        let s = replace(&table(), &schema(), &[u]).unwrap();
        assert!(
            s.sql
                .contains("AND sg_target.`game_id` IN UNNEST(@keys) THEN DELETE"),
            "{}",
            s.sql
        );
        let p = to_json(&s.params);
        assert_eq!(
            p[1]["parameterType"],
            json!({"type": "ARRAY", "arrayType": {"type": "STRING"}})
        );
        assert_eq!(
            p[1]["parameterValue"],
            json!({"arrayValues": [{"value": "g1"}]})
        );
    }

    #[test]
    fn rows_that_do_not_fit_the_schema_are_refused_with_their_position() {
        let bad = unit(
            "g1",
            "2026-01-24",
            vec![json!({"game_id": "g1", "game_date": "2026-01-24", "assists": 3})],
        );
        let e = replace(&table(), &schema(), &[bad]).unwrap_err();
        assert!(e.contains("row 0") && e.contains("`assists`"), "{e}");
        let bad = unit(
            "g1",
            "2026-01-24",
            vec![json!({"game_id": "g1", "game_date": "2026-01-24", "points": "many"})],
        );
        let s = replace(&table(), &schema(), &[bad]);
        // A string for an INT64 is passed on: BigQuery parses it and refuses it if it must.
        assert!(s.is_ok());
        let bad = unit(
            "g1",
            "2026-01-24",
            vec![json!({"game_id": "g1", "game_date": "2026-01-24", "points": [1]})],
        );
        let e = replace(&table(), &schema(), &[bad]).unwrap_err();
        assert!(e.contains("row 0, column points"), "{e}");
        let mut other = unit("g1", "2026-01-24", vec![]);
        other.key = serde_json::Map::from_iter([("player_lookup".to_owned(), json!("x"))]);
        let e = replace(
            &table(),
            &schema(),
            &[unit("g2", "2026-01-24", vec![]), other],
        )
        .unwrap_err();
        assert!(e.contains("share their key"), "{e}");
    }
}
