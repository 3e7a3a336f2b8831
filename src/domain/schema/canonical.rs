//! One spelling per key value. BigQuery compares typed values, so `31`, `"31"` and
//! `"0x1F"` are one INT64 key, `"2026-1-5"` and `"2026-01-05"` one DATE, and
//! `"2026-01-01T01:00:00+01:00"` and `"2026-01-01 00:00:00Z"` one TIMESTAMP. The service
//! identifies a unit by its key's JSON (supersession, ordering, the emulator's delete), so
//! intake rewrites the key and partition columns of every row, and the delete keys, to one
//! spelling per value once the rows fit the schema ([`TableSchema::canonicalize_keys`]).
//! Values of other types, and spellings this module does not know (a named time zone), are
//! left as sent.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::Value;

use super::values::parse_int64;
use super::{FieldType, TableSchema};
use crate::domain::BatchRequest;

impl TableSchema {
    /// Rewrites the key and partition columns of `request` (rows and delete keys) to one
    /// spelling per value. Call it on a request whose rows fit this schema.
    pub fn canonicalize_keys(&self, request: &mut BatchRequest) {
        let mut columns: Vec<(String, FieldType)> = Vec::new();
        for name in request
            .key_columns
            .iter()
            .chain(request.partition_column.iter())
        {
            if let Some(field) = self.column(name) {
                if !field.is_repeated() {
                    columns.push((name.clone(), field.field_type.clone()));
                }
            }
        }
        for object in request
            .rows
            .iter_mut()
            .chain(request.delete_keys.iter_mut())
            .filter_map(Value::as_object_mut)
        {
            for (name, field_type) in &columns {
                if let Some(value) = object.get_mut(name) {
                    if let Some(canonical) = canonical(field_type, value) {
                        *value = canonical;
                    }
                }
            }
        }
    }
}

/// The one spelling of `value` as a `field_type`, when it has another.
pub fn canonical(field_type: &FieldType, value: &Value) -> Option<Value> {
    match (field_type, value) {
        (FieldType::Int64, Value::String(s)) => parse_int64(s.trim()).map(Value::from),
        (FieldType::Bool, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (FieldType::Date, Value::String(s)) => {
            let (date, rest) = date(s)?;
            rest.is_empty()
                .then(|| Value::String(date.format("%Y-%m-%d").to_string()))
        }
        (FieldType::Datetime, Value::String(s)) => {
            let (at, zone) = date_time(s)?;
            zone.is_empty().then(|| Value::String(civil(&at)))
        }
        (FieldType::Timestamp, Value::String(s)) => {
            let (at, zone) = date_time(s)?;
            let offset = offset_seconds(zone)?;
            let utc = at - chrono::Duration::seconds(offset);
            Some(Value::String(format!("{}Z", civil(&utc))))
        }
        (FieldType::Timestamp, Value::Number(n)) => {
            // Seconds since the epoch (a JSON number), microsecond precision.
            let micros = (n.as_f64()? * 1e6).round();
            let at = Utc.timestamp_micros(micros as i64).single()?.naive_utc();
            Some(Value::String(format!("{}Z", civil(&at))))
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, then `.` and the fraction without trailing zeros (none when 0).
fn civil(at: &NaiveDateTime) -> String {
    let mut s = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = at.and_utc().timestamp_subsec_micros();
    if micros > 0 {
        let fraction = format!("{micros:06}");
        s.push('.');
        s.push_str(fraction.trim_end_matches('0'));
    }
    s
}

/// `YYYY-[M]M-[D]D` at the start of `s`, and the rest.
fn date(s: &str) -> Option<(NaiveDate, &str)> {
    let (y, rest) = number(s, 4, 4)?;
    let (m, rest) = number(rest.strip_prefix('-')?, 1, 2)?;
    let (d, rest) = number(rest.strip_prefix('-')?, 1, 2)?;
    Some((NaiveDate::from_ymd_opt(y as i32, m, d)?, rest))
}

/// A date, optionally `T`/space and `[H]H:[M]M:[S]S[.F]`; the rest is the zone.
fn date_time(s: &str) -> Option<(NaiveDateTime, &str)> {
    let (day, rest) = date(s)?;
    let Some(time) = rest.strip_prefix(['T', 't', ' ']) else {
        return Some((day.and_hms_opt(0, 0, 0)?, rest));
    };
    let (h, rest) = number(time, 1, 2)?;
    let (m, rest) = number(rest.strip_prefix(':')?, 1, 2)?;
    let (sec, mut rest) = number(rest.strip_prefix(':')?, 1, 2)?;
    let mut micros = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = f[..n].parse::<u32>().ok()? * 10u32.pow(6 - n as u32);
        rest = &f[n..];
    }
    let time = NaiveTime::from_hms_micro_opt(h, m, sec, micros)?;
    Some((day.and_time(time), rest.trim_start()))
}

/// Seconds east of UTC of a zone spelled `Z`, `UTC`, `+HH[:MM]` or `-HH[:MM]`, or none
/// (UTC, as BigQuery reads a TIMESTAMP without a zone); `None` for a named zone.
fn offset_seconds(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "z" | "UTC" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (h, rest) = number(rest, 1, 2)?;
    let m = match rest.strip_prefix(':').unwrap_or(rest) {
        "" => 0,
        minutes => number(minutes, 2, 2).filter(|(_, r)| r.is_empty())?.0,
    };
    Some(sign * i64::from(h * 3600 + m * 60))
}

/// `min..=max` ASCII digits at the start of `s`, as a number, and the rest.
fn number(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n < min {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(t: FieldType, spellings: &[Value]) {
        let canonical: Vec<Value> = spellings
            .iter()
            .map(|v| canonical(&t, v).unwrap_or_else(|| v.clone()))
            .collect();
        assert!(
            canonical.windows(2).all(|w| w[0] == w[1]),
            "{t:?}: {spellings:?} -> {canonical:?}"
        );
    }

    #[test]
    fn every_spelling_of_a_value_becomes_one() {
        one(
            FieldType::Int64,
            &[
                json!(31),
                json!("31"),
                json!("0x1F"),
                json!(" 31"),
                json!("+31"),
                json!("031"),
            ],
        );
        one(FieldType::Date, &[json!("2026-1-5"), json!("2026-01-05")]);
        one(
            FieldType::Timestamp,
            &[
                json!("2026-01-01T00:00:00Z"),
                json!("2026-01-01 00:00:00+00:00"),
                json!(1767225600),
                json!("2026-01-01T01:00:00+01:00"),
                json!("2026-1-1 0:0:0 UTC"),
                json!("2026-01-01T00:00:00.000000"),
            ],
        );
        one(
            FieldType::Datetime,
            &[json!("2026-01-01 07:30:00.500"), json!("2026-1-1T7:30:0.5")],
        );
        one(
            FieldType::Bool,
            &[json!(true), json!("TRUE"), json!("true")],
        );
        assert_eq!(
            canonical(
                &FieldType::Timestamp,
                &json!("2025-12-31T23:59:59.25-01:00")
            ),
            Some(json!("2026-01-01T00:59:59.25Z"))
        );
    }

    #[test]
    fn spellings_it_does_not_know_are_left_as_sent() {
        assert_eq!(canonical(&FieldType::String, &json!("031")), None);
        assert_eq!(
            canonical(
                &FieldType::Timestamp,
                &json!("2026-01-01 00:00:00 America/Los_Angeles")
            ),
            None
        );
        assert_eq!(canonical(&FieldType::Int64, &json!(31)), None);
    }
}
