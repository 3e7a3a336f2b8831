//! Tests of the schema module's JSON form, declared-schema rules, row and batch checks and
//! inference (the per-type rules are in `value_tests.rs`). Sources: the data-types page
//! (<https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types>), the
//! `tables` REST reference, `docs/bigquery-facts.md`, and GoogleSQL's messages as
//! ZetaSQL evaluates the casts (see `values.rs`).

use serde_json::{json, Value};

use super::*;
use crate::domain::BatchRequest;

/// The table the issue's incident used, in `tables.get` form.
fn boxscores() -> TableSchema {
    serde_json::from_value(json!({
        "kind": "bigquery#table",
        "schema": {"fields": [
            {"name": "game_id", "type": "STRING", "mode": "REQUIRED"},
            {"name": "game_date", "type": "DATE", "mode": "REQUIRED"},
            {"name": "player_lookup", "type": "STRING"},
            {"name": "points", "type": "INTEGER"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "stats", "type": "RECORD", "fields": [
                {"name": "minutes", "type": "FLOAT"},
                {"name": "plus_minus", "type": "INT64", "mode": "REQUIRED"}
            ]},
            {"name": "extra", "type": "JSON"},
            {"name": "arena", "type": "GEOGRAPHY"}
        ]},
        "timePartitioning": {"type": "DAY", "field": "game_date"},
        "requirePartitionFilter": true,
        "clustering": {"fields": ["game_id"]}
    }))
    .unwrap()
}

fn batch(body: Value) -> BatchRequest {
    serde_json::from_value(body).unwrap()
}

fn pointers(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.pointer.as_str()).collect()
}

#[test]
fn the_tables_get_form_round_trips_with_partitioning_and_clustering() {
    let s = boxscores();
    assert_eq!(s.fields.len(), 8);
    assert_eq!(s.column("GAME_ID").unwrap().mode, Mode::Required);
    assert_eq!(
        s.column("stats").unwrap().fields[1].field_type,
        FieldType::Int64
    );
    assert_eq!(s.partition_field(), Some("game_date"));
    assert!(s.requires_partition_filter());
    assert_eq!(s.clustering, ["game_id"]);
    let back: TableSchema = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let out = serde_json::to_value(&s).unwrap();
    assert_eq!(
        out["schema"]["fields"][3],
        json!({"name": "points", "type": "INTEGER", "mode": "NULLABLE"})
    );
    assert_eq!(out["requirePartitionFilter"], true);
    // The deprecated place of requirePartitionFilter counts too; integer ranges read
    // their int64-as-string bounds; precision and maxLength come as strings.
    let r: TableSchema = serde_json::from_value(json!({
        "schema": {"fields": [{"name": "n", "type": "INT64"}, {"name": "price", "type": "NUMERIC", "precision": "10", "scale": "2"}, {"name": "code", "type": "STRING", "maxLength": "3"}]},
        "rangePartitioning": {"field": "n", "range": {"start": "0", "end": "100", "interval": "10"}},
        "timePartitioning": null
    })).unwrap();
    assert_eq!(
        r.partitioning.as_ref().unwrap().kind,
        PartitionKind::IntegerRange {
            start: 0,
            end: 100,
            interval: 10
        }
    );
    assert_eq!(r.column("price").unwrap().type_text(), "NUMERIC(10, 2)");
    assert_eq!(r.column("code").unwrap().max_length, Some(3));
    let t: TableSchema = serde_json::from_value(json!({"schema": {"fields": [{"name": "d", "type": "DATE"}]}, "timePartitioning": {"type": "DAY", "field": "d", "requirePartitionFilter": true}})).unwrap();
    assert!(t.requires_partition_filter());
    assert!(serde_json::from_value::<TableSchema>(
        json!({"schema": {"fields": [{"name": "d", "type": "DATE", "mode": "SOMETIMES"}]}})
    )
    .is_err());
}

#[test]
fn declared_schemas_are_validated_with_pointers_into_the_tables_insert_body() {
    let s: TableSchema = serde_json::from_value(json!({
        "schema": {"fields": [
            {"name": "a", "type": "STRING"}, {"name": "A", "type": "INT64"},
            {"name": "bad name", "type": "STRING"}, {"name": "r", "type": "RECORD"},
            {"name": "x", "type": "WHATEVER"}, {"name": "p", "type": "NUMERIC", "precision": "40", "scale": "2"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"}, {"name": "j", "type": "JSON"}
        ]},
        "timePartitioning": {"type": "WEEK", "field": "a"},
        "clustering": {"fields": ["j", "nope"]}
    })).unwrap();
    let errors = s.validate();
    let at: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    for p in [
        "/schema/fields/1/name",
        "/schema/fields/2/name",
        "/schema/fields/3/fields",
        "/schema/fields/4/type",
        "/schema/fields/5/precision",
        "/timePartitioning/type",
        "/timePartitioning/field",
        "/clustering/fields/0",
        "/clustering/fields/1",
    ] {
        assert!(at.contains(&p), "{p} missing from {at:?}");
    }
    assert!(
        boxscores().validate().is_empty(),
        "{:?}",
        boxscores().validate()
    );
}

#[test]
fn rows_report_every_problem_with_its_pointer_and_bigquerys_message() {
    let rows = vec![
        json!({"game_id": "g", "game_date": "2026-01-24", "points": 5.0, "assists": 3}),
        json!({"game_date": "2026-01-24", "tags": ["a", null], "stats": {"minutes": 30.5}}),
        json!({"game_id": null, "game_date": "2026-01-24", "tags": "a", "stats": {"plus_minus": 1, "x/y": 1}}),
        json!({"game_id": "g", "game_date": "2026-01-24", "stats": [1], "arena": "Seattle", "extra": {"any": [null]}}),
        json!("not a row"),
        json!({"game_id": "g", "game_date": "2026-01-24", "tags": null, "stats": null, "points": "31"}),
    ];
    let problems = boxscores().check_rows(&rows, "/rows", 100);
    assert_eq!(
        pointers(&problems),
        [
            // Members in name order (serde_json's map), then the missing REQUIRED ones.
            "/rows/0/assists",
            "/rows/0/points",
            "/rows/1/stats/plus_minus",
            "/rows/1/tags/1",
            "/rows/1/game_id",
            "/rows/2/game_id",
            "/rows/2/stats/x~1y",
            "/rows/2/tags",
            "/rows/3/arena",
            "/rows/3/stats",
            "/rows/4",
        ]
    );
    let by = |p: &str| problems.iter().find(|x| x.pointer == p).unwrap();
    assert_eq!(by("/rows/0/assists").bigquery, "no such field: assists.");
    assert_eq!(
        by("/rows/1/tags/1").bigquery,
        "Array cannot have a null element; error in writing field tags"
    );
    assert_eq!(
        by("/rows/1/stats/plus_minus").bigquery,
        "Missing required field: stats.plus_minus."
    );
    assert_eq!(
        by("/rows/1/game_id").bigquery,
        "Missing required field: game_id."
    );
    assert!(by("/rows/2/game_id").detail.contains("REQUIRED"));
    assert!(by("/rows/2/tags").detail.contains("REPEATED"));
    assert_eq!(
        by("/rows/2/stats/x~1y").bigquery,
        "no such field: stats.x/y."
    );
    assert_eq!(by("/rows/0/points").bigquery, "Bad int64 value: 5.0");
    assert_eq!(
        boxscores().check_rows(&rows, "", 3).len(),
        3,
        "capped at max"
    );
}

#[test]
fn batches_need_comparable_key_columns_and_the_required_partition_column() {
    let mut schema = boxscores();
    schema
        .fields
        .push(Field::new("tags_key", FieldType::String).with_mode(Mode::Repeated));
    let body = json!({
        "processor_name": "p", "table": "proj-123.d.t",
        "key_columns": ["extra", "arena", "stats", "tags_key", "nope", "game_id"],
        "rows": [{"game_id": "g", "game_date": "2026-01-24"}],
        "delete_keys": [{"game_id": 5}]
    });
    let problems = schema.check_batch(&batch(body));
    assert_eq!(
        pointers(&problems),
        [
            "/key_columns/0",
            "/key_columns/1",
            "/key_columns/2",
            "/key_columns/3",
            "/key_columns/4",
            "/partition_column",
            "/delete_keys/0/game_id"
        ]
    );
    assert!(
        problems[0].detail.contains("JSON") && problems[0].detail.contains("equality"),
        "{}",
        problems[0].detail
    );
    assert_eq!(
        problems[1].bigquery,
        "First argument to IN UNNEST of type GEOGRAPHY does not support equality comparison"
    );
    // A STRUCT compares field by field, but never equals a single key value (ZetaSQL's
    // words for it).
    assert_eq!(
        problems[2].bigquery,
        "No matching signature for operator IN UNNEST for argument types: STRUCT<minutes FLOAT64, plus_minus INT64>, ARRAY<STRING>"
    );
    assert!(
        problems[3].detail.contains("ARRAY<STRING>"),
        "{}",
        problems[3].detail
    );
    assert!(
        problems[5]
            .detail
            .contains("requires a partition filter on `game_date`"),
        "{}",
        problems[5].detail
    );
    // Naming the partitioning column satisfies it; naming another column does not.
    let ok = json!({"processor_name": "p", "table": "proj-123.d.t", "key_columns": ["game_id"], "partition_column": "game_date", "rows": [{"game_id": "g", "game_date": "2026-01-24"}]});
    assert!(boxscores().check_batch(&batch(ok)).is_empty());
    let other = json!({"processor_name": "p", "table": "proj-123.d.t", "key_columns": ["game_id"], "partition_column": "player_lookup", "rows": [{"game_id": "g", "game_date": "2026-01-24"}]});
    assert!(boxscores().check_batch(&batch(other))[0]
        .detail
        .contains("partitioned by `game_date`"));
    // Without requirePartitionFilter the partition column is optional.
    let mut lax = boxscores();
    lax.partitioning.as_mut().unwrap().require_partition_filter = false;
    let none = json!({"processor_name": "p", "table": "proj-123.d.t", "key_columns": ["game_id"], "rows": [{"game_id": "g", "game_date": "2026-01-24"}]});
    assert!(lax.check_batch(&batch(none)).is_empty());
}

#[test]
fn inference_types_columns_from_json_and_never_refuses_its_own_rows() {
    let rows = vec![
        json!({"game_id": "g", "points": 3, "minutes": 30, "tags": ["a"], "stats": {"x": true}, "nothing": null}),
        json!({"game_id": "h", "points": "many", "minutes": 31.5, "tags": [], "stats": {"y": "z"}, "mixed": [[1]]}),
    ];
    let s = TableSchema::infer(&rows);
    let t = |n: &str| s.column(n).unwrap().type_text();
    assert_eq!(t("game_id"), "STRING");
    assert_eq!(t("points"), "JSON");
    assert_eq!(t("minutes"), "FLOAT64");
    assert_eq!(t("tags"), "ARRAY<STRING>");
    assert_eq!(s.column("stats").unwrap().fields.len(), 2);
    assert_eq!(t("nothing"), "JSON");
    assert_eq!(t("mixed"), "JSON");
    assert!(s.check_rows(&rows, "/rows", 100).is_empty());
    assert!(s.validate().is_empty(), "{:?}", s.validate());
}
