//! The date and time formats of GoogleSQL's casts from text, as BigQuery's data-types
//! page gives them (<https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types>):
//! DATE `YYYY-[M]M-[D]D` (years 0001–9999, a real calendar day), TIME
//! `[H]H:[M]M:[S]S[.F]`, DATETIME `date[( |T)time]`, TIMESTAMP the same plus an optional
//! time zone (`Z`, an offset such as `+05:30`, or a name such as `UTC` or
//! `America/Los_Angeles`); at most six fractional digits (microseconds).

use super::values::Refusal;

/// Parses `YYYY-[M]M-[D]D` at the start of `s` (a real calendar date, years 0001–9999);
/// returns the rest.
pub(crate) fn parse_date(s: &str) -> Option<&str> {
    let (y, rest) = digits(s, 4, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (m, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (d, rest) = digits(rest, 1, 2)?;
    (y >= 1 && chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()).then_some(rest)
}

/// Parses `[H]H:[M]M:[S]S[.F]` at the start of `s`; returns the rest and the number of
/// fractional digits.
pub(crate) fn parse_time(s: &str) -> Option<(&str, usize)> {
    let (h, rest) = digits(s, 1, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (m, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (sec, rest) = digits(rest, 1, 2)?;
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    match rest.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            (n > 0).then(|| (&f[n..], n))
        }
        None => Some((rest, 0)),
    }
}

/// `min..=max` ASCII digits at the start of `s`, as a number, and the rest.
fn digits(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    (n >= min)
        .then(|| (s[..n].parse().ok(), &s[n..]))
        .and_then(|(v, r)| Some((v?, r)))
}

/// The date, then optionally `T` or a space and a time; the rest and the fraction digits.
fn parse_date_time(s: &str) -> Option<(&str, usize)> {
    let rest = parse_date(s)?;
    match rest.strip_prefix(['T', 't', ' ']) {
        Some(time) => parse_time(time),
        None => Some((rest, 0)),
    }
}

pub(super) fn check_timestamp(s: &str) -> Result<(), Refusal> {
    let bad = |why: &str| {
        Refusal::new(
            format!("{s:?} is not a timestamp: {why}; TIMESTAMP is written YYYY-[M]M-[D]D[( |T)[H]H:[M]M:[S]S[.F]][time zone], e.g. \"2026-01-24 19:30:00+00\" (seconds since the epoch go as a JSON number, not a string)"),
            format!("Invalid timestamp: '{s}'"),
        )
    };
    let Some((rest, fraction)) = parse_date_time(s.trim()) else {
        return Err(bad("no date in YYYY-MM-DD form"));
    };
    if fraction > 6 {
        return Err(bad(
            "more than 6 fractional digits (BigQuery keeps microseconds)",
        ));
    }
    let zone = rest.strip_prefix(' ').unwrap_or(rest);
    if zone.is_empty() || time_zone(zone) {
        Ok(())
    } else {
        Err(bad(
            "the time zone is not Z, an offset like +05:30 or a name like UTC",
        ))
    }
}

/// `Z`, `±H[H][:MM]`, or a time zone name (`UTC`, `America/Los_Angeles`).
fn time_zone(z: &str) -> bool {
    if z.eq_ignore_ascii_case("z") {
        return true;
    }
    if let Some(offset) = z.strip_prefix(['+', '-']) {
        let (h, rest) = match digits(offset, 1, 2) {
            Some(x) => x,
            None => return false,
        };
        let ok_rest = match rest.strip_prefix(':') {
            Some(m) => m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) && m < "60",
            None => {
                rest.is_empty() || (rest.len() == 2 && rest.bytes().all(|b| b.is_ascii_digit()))
            }
        };
        return h <= 14 && ok_rest;
    }
    z.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && z.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
}

pub(super) fn check_datetime(s: &str) -> Result<(), Refusal> {
    match parse_date_time(s.trim()) {
        Some((rest, fraction)) if rest.is_empty() && fraction <= 6 => Ok(()),
        found => {
            let why = match found {
                Some((rest, _)) if !rest.is_empty() => format!("a DATETIME has no time zone, and this one ends in {rest:?}; send a TIMESTAMP column's value or drop the zone"),
                Some(_) => "more than 6 fractional digits (BigQuery keeps microseconds)".to_owned(),
                None => "DATETIME is written YYYY-[M]M-[D]D[( |T)[H]H:[M]M:[S]S[.F]]".to_owned(),
            };
            Err(Refusal::new(
                format!("{s:?} is not a datetime: {why}"),
                format!("Invalid datetime string \"{s}\""),
            ))
        }
    }
}
