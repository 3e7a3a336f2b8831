//! Property tests of batch parsing and key grouping (`proptest`): for generated box-score
//! batches, grouping loses, duplicates and reorders nothing; arbitrary JSON never panics
//! the validator; a batch with one bad row is refused whole; exact numbers pass the
//! precision scan and out-of-range integers do not; NUL characters are always found.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};
use streamguard::domain::batch::BatchLimits;
use streamguard::domain::raw_json::{check_number, scan};
use streamguard::domain::BatchRequest;

fn request(rows: Vec<Value>) -> BatchRequest {
    serde_json::from_value(json!({
        "processor_name": "bdl_boxscores_processor",
        "table": "nba-props-platform.nba_raw.bdl_player_boxscores",
        "key_columns": ["game_id"],
        "partition_column": "game_date",
        "rows": rows,
    }))
    .unwrap()
}

/// Box-score rows over a few games and dates, so keys repeat.
fn rows() -> impl Strategy<Value = Vec<Value>> {
    let game = prop::sample::select(vec![
        "20260124_LAL_BOS",
        "20260124_MIA_NYK",
        "20260125_GSW_DEN",
    ]);
    let date = prop::sample::select(vec!["2026-01-24", "2026-01-25"]);
    let row = (game, date, 0u32..60, 0u32..25, 0u32..20, "[a-z]{1,12}").prop_map(
        |(g, d, points, rebounds, assists, player)| {
            json!({"game_id": g, "game_date": d, "player_lookup": player, "points": points, "rebounds": rebounds, "assists": assists})
        },
    );
    prop::collection::vec(row, 1..60)
}

/// Any JSON value without NUL characters (which the body scan refuses), a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[^\\x00]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_é ]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn grouping_keeps_every_row_once_under_its_own_key(rows in rows()) {
        let batch = request(rows.clone()).validate(&BatchLimits::default()).unwrap();
        // One unit per distinct (game_id, game_date), in order of first appearance.
        let mut expected: Vec<(Value, Value)> = Vec::new();
        for r in &rows {
            let id = (r["game_id"].clone(), r["game_date"].clone());
            if !expected.contains(&id) {
                expected.push(id);
            }
        }
        let got: Vec<(Value, Value)> = batch
            .units
            .iter()
            .map(|u| (u.key["game_id"].clone(), u.partition.clone().unwrap()))
            .collect();
        prop_assert_eq!(got, expected);
        // Every row lands in the unit of its key, in its original relative order.
        for unit in &batch.units {
            let mine: Vec<&Value> = rows
                .iter()
                .filter(|r| r["game_id"] == unit.key["game_id"] && Some(&r["game_date"]) == unit.partition.as_ref())
                .collect();
            prop_assert_eq!(unit.rows.iter().collect::<Vec<_>>(), mine);
        }
        prop_assert_eq!(batch.units.iter().map(|u| u.rows.len()).sum::<usize>(), rows.len());
    }

    #[test]
    fn grouping_does_not_depend_on_row_order(rows in rows(), seed in any::<u64>()) {
        let mut shuffled = rows.clone();
        // A deterministic permutation from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let units = |rows: Vec<Value>| -> BTreeMap<String, BTreeSet<String>> {
            request(rows)
                .validate(&BatchLimits::default())
                .unwrap()
                .units
                .into_iter()
                .map(|u| (
                    format!("{:?}/{:?}", u.key, u.partition),
                    u.rows.iter().map(|r| r.to_string()).collect(),
                ))
                .collect()
        };
        prop_assert_eq!(units(rows), units(shuffled));
    }

    #[test]
    fn one_bad_row_refuses_the_whole_batch(rows in rows(), at in any::<prop::sample::Index>(), bad in prop_oneof![
        Just(json!(null)), Just(json!({"nested": 1})), Just(json!([]))
    ]) {
        let mut rows = rows;
        let i = at.index(rows.len());
        rows[i]["game_id"] = bad;
        let errors = request(rows).validate(&BatchLimits::default()).unwrap_err();
        let pointer = format!("/rows/{i}/game_id");
        prop_assert!(errors.iter().any(|e| e.pointer == pointer), "{:?}", errors);
    }

    #[test]
    fn arbitrary_json_never_panics_the_parser_or_validator(body in any_json(), rows in prop::collection::vec(any_json(), 0..8)) {
        // Any body either fails to deserialize or validates to Ok/Err — never panics.
        if let Ok(req) = serde_json::from_value::<BatchRequest>(body) {
            let _ = req.validate(&BatchLimits::default());
        }
        let result = request(rows.clone()).validate(&BatchLimits::default());
        if let Ok(batch) = result {
            prop_assert_eq!(batch.units.iter().map(|u| u.rows.len()).sum::<usize>(), rows.len());
        }
    }

    #[test]
    fn numbers_serde_json_writes_are_exact(v in any_json(), i in any::<i64>(), f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = serde_json::to_vec(&json!({"v": v, "i": i, "f": f})).unwrap();
        prop_assert_eq!(scan(&text, 10), vec![]);
    }

    #[test]
    fn nul_characters_are_always_found(prefix in "[a-z]{0,5}", suffix in "[a-z]{0,5}") {
        let text = serde_json::to_vec(&json!({"rows": [{"player_lookup": format!("{prefix}\0{suffix}")}]})).unwrap();
        let errors = scan(&text, 10);
        prop_assert_eq!(errors.len(), 1);
        prop_assert_eq!(errors[0].pointer.as_str(), "/rows/0/player_lookup");
    }

    #[test]
    fn integers_beyond_i64_are_refused(extra in 1u64..u64::MAX / 2) {
        let big = (i64::MAX as u128 + extra as u128).to_string();
        prop_assert!(check_number(&big).is_err());
        // -(i64::MAX + 1) is i64::MIN, the one negative that still fits.
        let negative = format!("-{big}");
        prop_assert!(check_number(&negative).is_err() || extra == 1);
    }
}
