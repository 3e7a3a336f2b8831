//! Which JSON values each BigQuery type accepts, as the BigQuery adapter sends them (every
//! scalar as the text of a query parameter, which GoogleSQL parses as `CAST(text AS type)`
//! does) — so a value refused here is one BigQuery would refuse.
//!
//! The refusal texts in [`Refusal::bigquery`] are GoogleSQL's own, observed by evaluating
//! the casts with ZetaSQL (the `@fivetrandevelopers/zetasql` 1.13.0 server, also used by
//! `.ci/zetasql`): `CAST('5.0' AS INT64)` → "Bad int64 value: 5.0";
//! `CAST('1700000000' AS TIMESTAMP)` → "Invalid timestamp: '1700000000'";
//! `CAST('2026-01-24T10:00:00Z' AS DATETIME)` → `Invalid datetime string "…"`;
//! `CAST('2026-02-30' AS DATE)` → "Invalid date: '2026-02-30'"; `CAST('25:00:00' AS TIME)`
//! → `Invalid time string "25:00:00"`; `CAST('yes' AS BOOL)` → "Bad bool value: yes";
//! `CAST('abc' AS FLOAT64)` → "Bad double value: abc"; `CAST('1e30' AS NUMERIC)` →
//! "Invalid NUMERIC value: 1e30"; `FROM_BASE64('a*b')` → "Failed to decode invalid base64
//! string". The formats are those of the data-types page
//! (<https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types>): TIMESTAMP
//! `YYYY-[M]M-[D]D[( |T)[H]H:[M]M:[S]S[.F]][time zone]`, DATETIME the same without a time
//! zone, DATE `YYYY-[M]M-[D]D`, TIME `[H]H:[M]M:[S]S[.F]`, "up to six fractional digits
//! (microsecond precision)"; NUMERIC 38 digits with 9 after the point, BIGNUMERIC 76.76
//! digits with 38 after it (maximum 5.7896044618658097711785492504343953926634992332820282019728792003956564819967E+38).
//!
//! Where GoogleSQL would silently round — more digits after the point than the column's
//! scale, more than six fractional seconds — the value is refused instead: a backfill
//! that lands rounded values is not exactly-once (the same stance as `raw_json`).

use base64::Engine;
use serde_json::Value;

use super::temporal::{check_datetime, check_timestamp, parse_date, parse_time};
use super::{Field, FieldType};

/// Why a value cannot be written: in plain words, and as BigQuery would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A sentence for the sender: what is wrong and what the column accepts.
    pub detail: String,
    /// BigQuery's (GoogleSQL's) message for the same value.
    pub bigquery: String,
}

impl Refusal {
    /// A refusal with both texts.
    pub fn new(detail: impl Into<String>, bigquery: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            bigquery: bigquery.into(),
        }
    }
}

fn refuse(detail: impl Into<String>, bigquery: impl Into<String>) -> Refusal {
    Refusal::new(detail, bigquery)
}

/// The JSON type of `v`, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks one non-null scalar value (not an array element's container, not a RECORD)
/// against `field`'s type.
///
/// # Errors
/// A [`Refusal`] saying what the column accepts.
pub fn check_scalar(field: &Field, value: &Value) -> Result<(), Refusal> {
    let t = &field.field_type;
    let wrong_kind = || {
        refuse(
            format!(
                "{} cannot be written to a column of type {}{}",
                json_type(value),
                field.type_text(),
                accepted(t)
            ),
            format!("Cannot convert {} to {}", json_type(value), t.sql_name()),
        )
    };
    match (t, value) {
        (FieldType::Json, _) => Ok(()),
        (FieldType::String, Value::String(s)) => max_length(field, s.chars().count() as u64, "characters"),
        (FieldType::Int64, Value::Number(n)) => {
            if n.is_i64() {
                Ok(())
            } else {
                Err(bad_int(&n.to_string(), n.is_u64()))
            }
        }
        (FieldType::Int64, Value::String(s)) => parse_int64(s.trim())
            .map(drop)
            .ok_or_else(|| bad_int(s, looks_integral(s.trim()))),
        (FieldType::Float64, Value::Number(_)) => Ok(()),
        (FieldType::Float64, Value::String(s)) => s.trim().parse::<f64>().map(drop).map_err(|_| {
            refuse(
                format!("{s:?} is not a number; FLOAT64 accepts a JSON number or a decimal string (also \"NaN\", \"Infinity\")"),
                format!("Bad double value: {s}"),
            )
        }),
        (FieldType::Numeric | FieldType::BigNumeric, Value::Number(n)) => check_decimal(field, &n.to_string()),
        (FieldType::Numeric | FieldType::BigNumeric, Value::String(s)) => check_decimal(field, s.trim()),
        (FieldType::Bool, Value::Bool(_)) => Ok(()),
        (FieldType::Bool, Value::String(s)) => {
            let s2 = s.trim();
            if s2.eq_ignore_ascii_case("true") || s2.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(refuse(
                    format!("{s:?} is not a boolean; BOOL accepts true, false or the strings \"true\"/\"false\""),
                    format!("Bad bool value: {s}"),
                ))
            }
        }
        (FieldType::Bytes, Value::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| {
                    refuse(
                        "BYTES are sent as standard base64 text (A–Z, a–z, 0–9, +, /, padded with =); this is not valid base64",
                        "Failed to decode invalid base64 string",
                    )
                })?;
            max_length(field, bytes.len() as u64, "bytes")
        }
        (FieldType::Timestamp, Value::Number(n)) => match n.as_f64() {
            // Seconds since the epoch as a JSON number: the adapter converts it
            // (insertAll's convention); it must land in years 0001–9999.
            Some(secs) if (-62_135_596_800.0..253_402_300_800.0).contains(&secs) => Ok(()),
            _ => Err(refuse(
                format!("{n} seconds since the epoch is outside years 0001–9999"),
                format!("Invalid timestamp: '{n}'"),
            )),
        },
        (FieldType::Timestamp, Value::String(s)) => check_timestamp(s),
        (FieldType::Datetime, Value::String(s)) => check_datetime(s),
        (FieldType::Date, Value::String(s)) => match parse_date(s.trim()) {
            Some("") => Ok(()),
            _ => Err(refuse(
                format!("{s:?} is not a date; DATE is written YYYY-[M]M-[D]D, e.g. \"2026-01-24\""),
                format!("Invalid date: '{s}'"),
            )),
        },
        (FieldType::Time, Value::String(s)) => match parse_time(s.trim()) {
            Some((rest, digits)) if rest.is_empty() && digits <= 6 => Ok(()),
            _ => Err(refuse(
                format!("{s:?} is not a time; TIME is written [H]H:[M]M:[S]S[.F] with up to 6 fractional digits, e.g. \"19:30:00\""),
                format!("Invalid time string \"{s}\""),
            )),
        },
        (FieldType::Geography, Value::String(s)) => check_geography(s),
        (FieldType::Interval, Value::String(s)) if check_interval(s.trim()) => Ok(()),
        (FieldType::Interval, Value::String(s)) => Err(refuse(
            format!("{s:?} is not an interval; INTERVAL is written Y-M D H:M:S[.F] (e.g. \"0-0 1 2:00:00\") or ISO 8601 (e.g. \"P1DT2H\")"),
            format!("Invalid INTERVAL value: '{s}'"),
        )),
        (FieldType::Range, _) => Err(refuse(
            "RANGE columns cannot be written by streamguard: BigQuery query parameters cannot carry a RANGE",
            "RANGE query parameters are not supported",
        )),
        (FieldType::Other(name), _) => Err(refuse(
            format!("the column's type {name} is unknown to streamguard"),
            format!("Unsupported type {name}"),
        )),
        (FieldType::Record, _) => Err(wrong_kind()),
        (_, Value::Array(_)) => Err(refuse(
            format!("an array cannot be written to a column of type {} (it is not REPEATED)", field.type_text()),
            format!("Array specified for non-repeated field: {}.", field.name),
        )),
        _ => Err(wrong_kind()),
    }
}

/// The JSON spellings a type accepts, as a clause for messages.
fn accepted(t: &FieldType) -> &'static str {
    match t {
        FieldType::String => "; send a JSON string",
        FieldType::Int64 => "; send an integer (a JSON number without a fraction, or a string of digits)",
        FieldType::Float64 | FieldType::Numeric | FieldType::BigNumeric => "; send a JSON number or a decimal string",
        FieldType::Bool => "; send true or false",
        FieldType::Bytes => "; send base64 text",
        FieldType::Timestamp => "; send a string such as \"2026-01-24 19:30:00+00\" or seconds since the epoch as a JSON number",
        FieldType::Datetime | FieldType::Date | FieldType::Time | FieldType::Interval => "; send a string",
        FieldType::Geography => "; send WKT or GeoJSON as a string",
        FieldType::Record => "; send a JSON object",
        _ => "",
    }
}

fn max_length(field: &Field, len: u64, unit: &str) -> Result<(), Refusal> {
    match field.max_length {
        Some(max) if len > max => Err(refuse(
            format!(
                "{len} {unit} exceed the column's maximum of {max} ({})",
                field.type_text()
            ),
            format!(
                "Value of length {len} exceeds the maximum length {max} of field {}",
                field.name
            ),
        )),
        _ => Ok(()),
    }
}

fn bad_int(text: &str, integral: bool) -> Refusal {
    let why = if integral {
        "is outside INT64's range (-9223372036854775808 to 9223372036854775807)"
    } else {
        "is not an integer (INT64 refuses a fraction, even .0)"
    };
    refuse(format!("{text} {why}"), format!("Bad int64 value: {text}"))
}

fn looks_integral(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses GoogleSQL's INT64 text: decimal digits or `0x` hex, with an optional sign.
pub fn parse_int64(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        body.parse::<i128>().ok()?
    };
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A decimal literal split into its digits before and after the point (no sign, leading
/// zeros of the integer part and trailing zeros of the fraction removed), exponent applied.
/// `None` when the text is not a decimal number.
pub fn decimal_digits(s: &str) -> Option<(bool, String, String)> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || exponent.abs() > 1000
    {
        return None;
    }
    // Shift the point by the exponent over the concatenated digits.
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exponent;
    let (int, frac) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_owned(),
            digits[point as usize..].to_owned(),
        )
    };
    Some((
        negative,
        int.trim_start_matches('0').to_owned(),
        frac.trim_end_matches('0').to_owned(),
    ))
}

/// BIGNUMERIC's largest magnitude, as 39 integer digits and 38 fraction digits
/// ((2^255 - 1) / 10^38; the most negative value ends in …68).
const BIGNUMERIC_MAX: &str =
    "578960446186580977117854925043439539266.34992332820282019728792003956564819967";

fn check_decimal(field: &Field, text: &str) -> Result<(), Refusal> {
    let name = field.field_type.sql_name();
    let invalid = |why: String| refuse(why, format!("Invalid {name} value: {text}"));
    let Some((negative, int, frac)) = decimal_digits(text) else {
        return Err(invalid(format!("{text:?} is not a decimal number")));
    };
    let big = field.field_type == FieldType::BigNumeric;
    let (scale, int_digits) = match (field.precision, field.scale) {
        (Some(p), s) => (s.unwrap_or(0), p.saturating_sub(s.unwrap_or(0))),
        (None, _) if big => (38, 39),
        (None, _) => (9, 29),
    };
    if frac.len() > scale as usize {
        return Err(invalid(format!(
            "{text} has {} digits after the point; {} keeps {scale} (BigQuery would round it, so it is refused rather than changed)",
            frac.len(),
            field.type_text()
        )));
    }
    let over = int.len() > int_digits as usize
        || (big && field.precision.is_none() && int.len() == 39 && {
            let (max_int, max_frac) = BIGNUMERIC_MAX.split_once('.').unwrap_or_default();
            let mut max_frac = max_frac.to_owned();
            if negative {
                max_frac.replace_range(37.., "8");
            }
            let frac = format!("{frac:0<38}");
            (int.as_str(), frac.as_str()) > (max_int, max_frac.as_str())
        });
    if over {
        return Err(invalid(format!(
            "{text} is out of range for {}: at most {int_digits} digits before the point",
            field.type_text()
        )));
    }
    Ok(())
}

/// WKT (a geometry keyword) or GeoJSON (a JSON object with a `type`), as
/// `ST_GEOGFROMTEXT` / `ST_GEOGFROMGEOJSON` read them; the geometry itself is BigQuery's
/// to judge.
fn check_geography(s: &str) -> Result<(), Refusal> {
    const WKT: [&str; 7] = [
        "POINT",
        "LINESTRING",
        "POLYGON",
        "MULTIPOINT",
        "MULTILINESTRING",
        "MULTIPOLYGON",
        "GEOMETRYCOLLECTION",
    ];
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let wkt = WKT.iter().any(|k| upper.starts_with(k));
    let geojson = t.starts_with('{')
        && serde_json::from_str::<Value>(t)
            .is_ok_and(|v| v.get("type").is_some_and(Value::is_string));
    if wkt || geojson {
        Ok(())
    } else {
        Err(refuse(
            format!("{s:?} is neither WKT (e.g. \"POINT(-122.35 47.62)\") nor a GeoJSON geometry"),
            format!("Invalid GEOGRAPHY value: {s}"),
        ))
    }
}

/// The canonical INTERVAL text `[-]Y-M [-]D [-]H:M:S[.F]` or ISO 8601 `P…`.
fn check_interval(s: &str) -> bool {
    if let Some(iso) = s.strip_prefix(['P', 'p']) {
        return !iso.is_empty()
            && iso
                .bytes()
                .all(|b| b.is_ascii_digit() || b"YMWDTHS.-".contains(&b.to_ascii_uppercase()));
    }
    let parts: Vec<&str> = s.split(' ').collect();
    let num = |x: &str| {
        let x = x.strip_prefix('-').unwrap_or(x);
        !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit())
    };
    match parts.as_slice() {
        [ym, d, hms] => {
            let ym_ok = ym
                .strip_prefix('-')
                .unwrap_or(ym)
                .split_once('-')
                .is_some_and(|(y, m)| num(y) && num(m));
            let hms = hms.strip_prefix('-').unwrap_or(hms);
            let hms_ok = hms.split(':').count() == 3
                && hms.split(':').enumerate().all(|(i, p)| {
                    if i == 2 {
                        let (s, f) = p.split_once('.').unwrap_or((p, "0"));
                        num(s) && num(f)
                    } else {
                        num(p)
                    }
                });
            ym_ok && num(d) && hms_ok
        }
        _ => false,
    }
}
