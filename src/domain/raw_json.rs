//! Checks on a JSON body's text that parsing cannot make: numbers that would not survive
//! parsing exactly, member names repeated in one object (`{"gid":1,"gid":2}`, of which
//! serde_json silently keeps the last), and NUL characters (`\u0000`), which Postgres cannot store in `jsonb`
//! (it refuses them with "unsupported Unicode escape sequence") and which no BigQuery
//! identifier or sensible value contains.
//!
//! `serde_json` (without its `arbitrary_precision` feature, which this service does not
//! enable because it changes how every crate in the build sees numbers) parses an integer
//! beyond the 64-bit range into an `f64` and rounds a decimal with more digits than an
//! `f64` holds — silently. (Its `float_roundtrip` feature *is* enabled, so that every
//! shortest-form float parses back to itself; without it the fast parser may be one unit
//! in the last place off, which the property tests caught.) A backfill that lands rounded numbers is not exactly-once, so
//! the request body's text is scanned for such numbers before anything is accepted.
//!
//! The rules: an integer literal (no `.`, `e` or `E`) must fit BigQuery's INT64 (`i64`,
//! ±9,223,372,036,854,775,807); any other number must be the shortest decimal form of the
//! `f64` it parses to (no more significant digits than that float's shortest form; when
//! two forms are equally short, either), up to trailing zeros and exponent notation (`0.1`, `2.50`, `1e3`
//! pass; `0.30000000000000000001`, `1e-400` do not). Send such values as strings.

use std::collections::HashSet;

use super::batch::FieldError;

/// What [`scan_body`] found: each problem with its pointer, and how many of each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Each problem (at most the `max` asked for), in text order.
    pub errors: Vec<FieldError>,
    /// Numbers that would not be kept exactly.
    pub numbers: usize,
    /// Strings (values or member names) holding a NUL character.
    pub nuls: usize,
    /// Member names repeated within one object.
    pub duplicates: usize,
}

impl Findings {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// A one-line summary naming what was found, e.g. `1 number(s) would lose precision;
    /// 1 duplicate member name(s)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.numbers > 0 {
            parts.push(format!("{} number(s) would lose precision", self.numbers));
        }
        if self.nuls > 0 {
            parts.push(format!(
                "{} string(s) hold a NUL character (\\u0000)",
                self.nuls
            ));
        }
        if self.duplicates > 0 {
            parts.push(format!(
                "{} member name(s) appear more than once in one object",
                self.duplicates
            ));
        }
        parts.join("; ")
    }
}

/// Scans a JSON text that `serde_json` has already parsed (so it is well-formed) and
/// returns, for each number that would not be kept exactly, each string (value or member
/// name) holding a NUL character, and each member name repeated in its object (serde_json
/// would silently keep the last), a [`FieldError`] with its JSON pointer (e.g.
/// `/rows/3/points`); at most `max` of them.
pub fn scan(text: &[u8], max: usize) -> Vec<FieldError> {
    scan_body(text, max).errors
}

/// [`scan`], with the count of each kind of problem.
pub fn scan_body(text: &[u8], max: usize) -> Findings {
    let mut found = Findings::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() && found.errors.len() < max {
        let errors = &mut found.errors;
        match text[i] {
            b'{' => {
                stack.push(Frame::Object {
                    key: None,
                    expecting_key: true,
                    seen: HashSet::new(),
                });
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(text, i);
                let raw = &text[i..end];
                let mut duplicate = None;
                if let Some(Frame::Object {
                    key,
                    expecting_key,
                    seen,
                }) = stack.last_mut()
                {
                    if *expecting_key {
                        *key = serde_json::from_slice::<String>(raw).ok();
                        *expecting_key = false;
                        if let Some(name) = key {
                            if !seen.insert(name.clone()) {
                                duplicate = Some(name.clone());
                            }
                        }
                    }
                }
                if let Some(name) = duplicate {
                    found.duplicates += 1;
                    errors.push(FieldError::new(
                        pointer(&stack),
                        format!("the member name {name:?} appears more than once in this object; send it once"),
                    ));
                }
                if has_nul(raw) && errors.len() < max {
                    found.nuls += 1;
                    errors.push(FieldError::new(
                        pointer(&stack),
                        "a NUL character (\\u0000) cannot be stored; remove it",
                    ));
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = text[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(text.len(), |n| i + n);
                let literal = std::str::from_utf8(&text[i..end]).unwrap_or_default();
                if let Err(detail) = check_number(literal) {
                    found.numbers += 1;
                    errors.push(FieldError::new(pointer(&stack), detail));
                }
                i = end;
            }
            _ => i += 1, // whitespace, `:`, and the letters of true/false/null
        }
    }
    found
}

enum Frame {
    Object {
        key: Option<String>,
        expecting_key: bool,
        /// Member names met so far (to find repeats).
        seen: HashSet<String>,
    },
    Array {
        index: usize,
    },
}

fn pointer(stack: &[Frame]) -> String {
    stack
        .iter()
        .map(|f| match f {
            Frame::Object { key, .. } => format!(
                "/{}",
                key.as_deref()
                    .unwrap_or_default()
                    .replace('~', "~0")
                    .replace('/', "~1")
            ),
            Frame::Array { index } => format!("/{index}"),
        })
        .collect()
}

/// Whether a raw JSON string (quotes included) decodes to text holding U+0000.
fn has_nul(raw: &[u8]) -> bool {
    raw.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        && serde_json::from_slice::<String>(raw).is_ok_and(|s| s.contains('\0'))
}

/// The index just past the string starting at `start` (a `"`).
fn string_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// `Ok` when `literal` is kept exactly; otherwise why not.
pub fn check_number(literal: &str) -> Result<(), String> {
    if !literal.contains(['.', 'e', 'E']) {
        return literal.parse::<i64>().map(|_| ()).map_err(|_| {
            format!("the integer {literal} is beyond the 64-bit range (BigQuery INT64, ±9223372036854775807) and would be rounded; send it as a string")
        });
    }
    // A float usually has one shortest decimal form, but sometimes two of the same length
    // (`-15169926836494.312` and `…313` are the same `f64`): Rust's `{:e}` and serde_json's
    // writer (ryu) may pick different ones. So the test is not "equals one formatter's
    // digits" but "parses to a finite float and has no more significant digits than its
    // shortest form": any such literal *is* a shortest form of that float.
    let parsed: Option<f64> = serde_json::from_str(literal).ok();
    let exact = parsed.filter(|f| f.is_finite()).is_some_and(|f| {
        match (decimal(literal), decimal(&format!("{f:e}"))) {
            (Some((_, digits, _)), Some((_, shortest, _))) => digits.len() <= shortest.len(),
            _ => false,
        }
    });
    if exact {
        Ok(())
    } else {
        Err(format!(
            "the number {literal} has more precision or range than a 64-bit float (BigQuery FLOAT64) keeps and would be changed; send it as a string"
        ))
    }
}

/// A decimal literal as (negative, significant digits, power of ten), trailing zeros
/// folded into the power; zero is `(false, "", 0)`. `None` when the exponent overflows.
fn decimal(literal: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let power = exponent
        .checked_sub(i64::try_from(fraction.len()).ok()?)?
        .checked_add(i64::try_from(digits.len() - trimmed.len()).ok()?)?;
    Some((negative, trimmed.to_owned(), power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_numbers_pass() {
        for ok in [
            "0",
            "-0",
            "28",
            "-9223372036854775808",
            "9223372036854775807",
            "0.1",
            "2.50",
            "1e3",
            "1.5E-7",
            "-0.0",
            "123456.789",
            "1.7976931348623157e308",
            // serde_json (ryu) writes these; Rust's `{:e}` picks the other shortest form
            // (`…313`, `…3`) of the same float.
            "-15169926836494.312",
            "-651694367365766.2",
            "-15169926836494.313",
            "-651694367365766.3",
        ] {
            assert_eq!(check_number(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rounded_numbers_are_named() {
        for bad in [
            "9223372036854775808",
            "18446744073709551616",
            "-9223372036854775809",
            "0.30000000000000000001",
            "3.14159265358979323846",
            "1e-400",
            "12345678901234567890.5",
        ] {
            assert!(check_number(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn pointers_name_row_and_column() {
        let body = br#"{"rows": [{"game_id": "g1", "points": 1}, {"a\/b": [1, 2, 99999999999999999999], "points": 0.1}], "x": 1e-999}"#;
        let errors = scan(body, 10);
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/rows/1/a~1b/2", "/x"]);
    }

    #[test]
    fn nul_characters_are_found_in_values_and_names_but_not_escaped_backslashes() {
        let body = br#"{"rows": [{"player": "a\u0000b", "ok": "\\u0000", "k\u0000": 1}]}"#;
        let pointers: Vec<String> = scan(body, 10).into_iter().map(|e| e.pointer).collect();
        assert_eq!(pointers, vec!["/rows/0/player", "/rows/0/k\0"]);
    }

    #[test]
    fn repeated_member_names_are_named_per_object() {
        let body = br#"{"rows": [{"gid": 1, "gid": 2}, {"gid": 1, "x": {"gid": 3}}], "rows": []}"#;
        let found = scan_body(body, 10);
        let pointers: Vec<&str> = found.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/rows/0/gid", "/rows"]);
        assert_eq!(found.duplicates, 2);
        assert!(
            found
                .summary()
                .contains("2 member name(s) appear more than once"),
            "{}",
            found.summary()
        );
    }

    #[test]
    fn the_summary_names_what_was_found() {
        let nul = scan_body(br#"{"a": "x\u0000"}"#, 10);
        assert_eq!((nul.nuls, nul.numbers), (1, 0));
        assert!(nul.summary().contains("NUL"), "{}", nul.summary());
        assert!(!nul.summary().contains("precision"), "{}", nul.summary());
        let both = scan_body(br#"{"a": "\u0000", "b": 1e-999}"#, 10);
        assert_eq!(
            both.summary(),
            "1 number(s) would lose precision; 1 string(s) hold a NUL character (\\u0000)"
        );
    }
}
