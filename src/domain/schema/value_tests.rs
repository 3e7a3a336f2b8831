//! Table tests of which JSON spellings each type accepts ([`super::values`]), with
//! GoogleSQL's messages as ZetaSQL evaluates the casts. Sources: the data-types page
//! (<https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types>) for the
//! formats, ranges, precision and scale.

use serde_json::{json, Value};

use super::values::{check_scalar, decimal_digits, parse_int64};
use super::{Field, FieldType};

fn f(name: &str, t: &str) -> Field {
    Field::new(name, FieldType::parse(t))
}

fn accepts(t: &str, v: Value) -> bool {
    check_scalar(&f("c", t), &v).is_ok()
}

#[test]
fn int64_takes_integers_and_integer_strings_but_never_a_fraction() {
    for ok in [
        json!(5),
        json!(-9_223_372_036_854_775_808_i64),
        json!("42"),
        json!(" 7 "),
        json!("+3"),
        json!("0x1F"),
        json!("-0x10"),
    ] {
        assert!(accepts("INTEGER", ok.clone()), "{ok}");
    }
    for bad in [
        json!(5.0),
        json!(5.5),
        json!("5.0"),
        json!("1e3"),
        json!(9_223_372_036_854_775_808_u64),
        json!("9223372036854775808"),
        json!(true),
        json!(""),
    ] {
        assert!(!accepts("INT64", bad.clone()), "{bad}");
    }
    let r = check_scalar(&f("points", "INT64"), &json!(5.0)).unwrap_err();
    assert_eq!(r.bigquery, "Bad int64 value: 5.0");
    assert!(r.detail.contains("not an integer"), "{}", r.detail);
    let r = check_scalar(&f("points", "INT64"), &json!("99999999999999999999")).unwrap_err();
    assert!(r.detail.contains("range"), "{}", r.detail);
    assert_eq!(parse_int64("-9223372036854775808"), Some(i64::MIN));
}

#[test]
fn floats_bools_strings_and_json_take_their_spellings() {
    for (t, v, ok) in [
        ("FLOAT", json!(1.5), true),
        ("FLOAT64", json!("2.5e3"), true),
        ("FLOAT", json!("NaN"), true),
        ("FLOAT", json!("-Infinity"), true),
        ("FLOAT", json!("abc"), false),
        ("FLOAT", json!(true), false),
        ("BOOLEAN", json!(true), true),
        ("BOOL", json!("FALSE"), true),
        ("BOOL", json!("yes"), false),
        ("BOOL", json!(1), false),
        ("STRING", json!("x"), true),
        ("STRING", json!(5), false),
        ("STRING", json!({"a": 1}), false),
        ("JSON", json!({"a": [1, null]}), true),
        ("JSON", json!(3), true),
    ] {
        assert_eq!(accepts(t, v.clone()), ok, "{t} {v}");
    }
    assert_eq!(
        check_scalar(&f("c", "BOOL"), &json!("yes"))
            .unwrap_err()
            .bigquery,
        "Bad bool value: yes"
    );
    assert_eq!(
        check_scalar(&f("c", "FLOAT"), &json!("abc"))
            .unwrap_err()
            .bigquery,
        "Bad double value: abc"
    );
    let code = Field {
        max_length: Some(3),
        ..f("code", "STRING")
    };
    assert!(check_scalar(&code, &json!("LAL")).is_ok());
    assert!(check_scalar(&code, &json!("LALA"))
        .unwrap_err()
        .detail
        .contains("maximum of 3"));
}

#[test]
fn numeric_and_bignumeric_keep_their_precision_and_scale() {
    for ok in [
        json!("99999999999999999999999999999.999999999"),
        json!(0.1),
        json!("-1e3"),
        json!("1.000000000"),
        json!(".5"),
    ] {
        assert!(accepts("NUMERIC", ok.clone()), "{ok}");
    }
    for bad in [
        json!("100000000000000000000000000000"),
        json!("1.0000000001"),
        json!("1e30"),
        json!("abc"),
        json!(true),
        json!("1e"),
    ] {
        assert!(!accepts("NUMERIC", bad.clone()), "{bad}");
    }
    assert_eq!(
        check_scalar(&f("c", "NUMERIC"), &json!("1e30"))
            .unwrap_err()
            .bigquery,
        "Invalid NUMERIC value: 1e30"
    );
    let max = "578960446186580977117854925043439539266.34992332820282019728792003956564819967";
    assert!(accepts("BIGNUMERIC", json!(max)));
    assert!(accepts(
        "BIGNUMERIC",
        json!(format!("-{}8", &max[..max.len() - 1]))
    ));
    assert!(!accepts(
        "BIGNUMERIC",
        json!(format!("{}8", &max[..max.len() - 1]))
    ));
    assert!(!accepts("BIGNUMERIC", json!("1e39")));
    assert!(!accepts(
        "BIGNUMERIC",
        json!("0.000000000000000000000000000000000000001")
    ));
    let price = Field {
        precision: Some(5),
        scale: Some(2),
        ..f("price", "NUMERIC")
    };
    assert!(check_scalar(&price, &json!("999.99")).is_ok());
    assert!(check_scalar(&price, &json!("1000")).is_err());
    assert!(
        check_scalar(&price, &json!("1.234"))
            .unwrap_err()
            .detail
            .contains("2 digits")
            || check_scalar(&price, &json!("1.234"))
                .unwrap_err()
                .detail
                .contains("keeps 2")
    );
    assert_eq!(
        decimal_digits("012.3400e1"),
        Some((false, "123".into(), "4".into()))
    );
    assert_eq!(
        decimal_digits("-5e-2"),
        Some((true, String::new(), "05".into()))
    );
}

#[test]
fn timestamps_datetimes_dates_and_times_follow_the_canonical_formats() {
    for (t, v, ok) in [
        ("TIMESTAMP", "2026-01-24 19:30:00", true),
        ("TIMESTAMP", "2026-01-24T19:30:00.123456Z", true),
        ("TIMESTAMP", "2026-1-4 1:2:3 America/Los_Angeles", true),
        ("TIMESTAMP", "2026-01-24 19:30:00+05:30", true),
        ("TIMESTAMP", "2026-01-24", true),
        ("TIMESTAMP", "2026-01-24 19:30:00 UTC", true),
        ("TIMESTAMP", "1700000000", false),
        ("TIMESTAMP", "2026-01-24 19:30:00.1234567", false),
        ("TIMESTAMP", "2026-02-30 00:00:00", false),
        ("TIMESTAMP", "yesterday", false),
        ("DATETIME", "2026-01-24T19:30:00", true),
        ("DATETIME", "2026-01-24 19:30:00.5", true),
        ("DATETIME", "2026-01-24", true),
        ("DATETIME", "2026-01-24T19:30:00Z", false),
        ("DATETIME", "2026-01-24T19:30:00+01:00", false),
        ("DATE", "2026-01-24", true),
        ("DATE", "2026-1-4", true),
        ("DATE", "2026-02-30", false),
        ("DATE", "24/01/2026", false),
        ("DATE", "0000-01-01", false),
        ("TIME", "19:30:00", true),
        ("TIME", "7:05:09.999999", true),
        ("TIME", "25:00:00", false),
        ("TIME", "19:30", false),
    ] {
        assert_eq!(accepts(t, json!(v)), ok, "{t} {v}");
    }
    assert!(accepts("TIMESTAMP", json!(1_700_000_000)));
    assert!(accepts("TIMESTAMP", json!(1_700_000_000.5)));
    assert!(!accepts("TIMESTAMP", json!(1e15)));
    assert!(!accepts("DATE", json!(20260124)));
    let r = check_scalar(&f("at", "TIMESTAMP"), &json!("1700000000")).unwrap_err();
    assert_eq!(r.bigquery, "Invalid timestamp: '1700000000'");
    assert!(r.detail.contains("JSON number"), "{}", r.detail);
    let r = check_scalar(&f("at", "DATETIME"), &json!("2026-01-24T10:00:00Z")).unwrap_err();
    assert_eq!(
        r.bigquery,
        "Invalid datetime string \"2026-01-24T10:00:00Z\""
    );
    assert!(r.detail.contains("no time zone"), "{}", r.detail);
    assert_eq!(
        check_scalar(&f("d", "DATE"), &json!("2026-02-30"))
            .unwrap_err()
            .bigquery,
        "Invalid date: '2026-02-30'"
    );
}

#[test]
fn bytes_geography_interval_and_range() {
    for (t, v, ok) in [
        ("BYTES", "aGVsbG8=", true),
        ("BYTES", "", true),
        ("BYTES", "a*b", false),
        ("BYTES", "aGVsbG8", false),
        ("GEOGRAPHY", "POINT(-122.35 47.62)", true),
        (
            "GEOGRAPHY",
            r#"{"type": "Point", "coordinates": [1, 2]}"#,
            true,
        ),
        ("GEOGRAPHY", "Seattle", false),
        ("INTERVAL", "0-0 1 2:00:00", true),
        ("INTERVAL", "P1DT2H", true),
        ("INTERVAL", "soon", false),
    ] {
        assert_eq!(accepts(t, json!(v)), ok, "{t} {v}");
    }
    assert!(!accepts(
        "GEOGRAPHY",
        json!({"type": "Point", "coordinates": [1, 2]})
    ));
    assert!(!accepts("RANGE", json!("[2026-01-01, 2026-02-01)")));
    assert_eq!(
        check_scalar(&f("b", "BYTES"), &json!("a*b"))
            .unwrap_err()
            .bigquery,
        "Failed to decode invalid base64 string"
    );
    let short = Field {
        max_length: Some(2),
        ..f("b", "BYTES")
    };
    assert!(check_scalar(&short, &json!("aGVsbG8=")).is_err());
}
