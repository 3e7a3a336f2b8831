//! One value parser per kind of setting — a bounded whole number, a fraction, a bounded
//! duration, a switch, a word from a list, anything with [`FromStr`] — for clap flags.
//! Each refusal names the flag's environment variable (read from the flag itself, so a
//! name is written once, in its `env = ...` attribute) and the form it accepts.

use std::ffi::OsStr;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Command};

/// The name a refusal gives: the flag's variable, else `--flag`.
fn name(arg: Option<&Arg>) -> String {
    match arg {
        Some(a) => match a.get_env() {
            Some(env) => env.to_string_lossy().into_owned(),
            None => format!("--{}", a.get_long().unwrap_or_else(|| a.get_id().as_str())),
        },
        None => "the value".to_owned(),
    }
}

/// Runs `parse` on the value as text; its error `form` becomes
/// "`VARIABLE` expects `form`; got `value`".
fn run<T>(
    cmd: &Command,
    arg: Option<&Arg>,
    value: &OsStr,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, clap::Error> {
    let text = value.to_string_lossy();
    parse(&text).map_err(|form| {
        clap::Error::raw(
            ErrorKind::ValueValidation,
            format!("{} expects {form}; got {text:?}\n", name(arg)),
        )
        .with_cmd(cmd)
    })
}

/// A whole number from `min` to `max` inclusive.
#[derive(Debug, Clone, Copy)]
pub struct Integer<T> {
    min: T,
    max: T,
}

impl<T> Integer<T> {
    /// Accepts `min..=max`.
    pub const fn new(min: T, max: T) -> Self {
        Self { min, max }
    }

    /// Parses `s`, or says the accepted form.
    ///
    /// # Errors
    /// "a whole number from `min` to `max`".
    pub fn parse(&self, s: &str) -> Result<T, String>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        match s.trim().parse::<T>() {
            Ok(n) if n >= self.min && n <= self.max => Ok(n),
            _ => Err(format!("a whole number from {} to {}", self.min, self.max)),
        }
    }
}

impl<T> TypedValueParser for Integer<T>
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    type Value = T;
    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, v: &OsStr) -> Result<T, clap::Error> {
        run(cmd, arg, v, |s| self.parse(s))
    }
}

/// A fraction in `[0, 1)`.
#[derive(Debug, Clone, Copy)]
pub struct Fraction;

impl Fraction {
    /// Parses `s`, or says the accepted form.
    ///
    /// # Errors
    /// "a fraction in [0, 1)".
    pub fn parse(s: &str) -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
            _ => Err("a fraction in [0, 1), like 0.5 (0 is allowed)".into()),
        }
    }
}

impl TypedValueParser for Fraction {
    type Value = f64;
    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, v: &OsStr) -> Result<f64, clap::Error> {
        run(cmd, arg, v, Self::parse)
    }
}

/// The longest lease, poll interval, timeout, latency, `?wait=` cap and alert pacing
/// accepted: 1 day. Longer is a typo (`30d` for `30s`), and would overflow time arithmetic
/// long before it was useful.
pub const MAX_SHORT_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest breaker window and open time accepted: 7 days (retry delays and buffer
/// times share the bound: [`crate::domain::retry::MAX_RETRY_DELAY`],
/// [`crate::warehouse::emulator::MAX_BUFFER`]).
pub const MAX_LONG_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration in `humantime` units (`30s`, `500ms`, `10m`), at most `max`, and more than 0
/// unless zero is allowed. The flag's type is [`humantime::Duration`], which prints its
/// default the way it is written.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    zero: bool,
    max: Duration,
}

impl Span {
    /// More than 0, at most `max`.
    pub const fn positive(max: Duration) -> Self {
        Self { zero: false, max }
    }

    /// From 0 to `max`.
    pub const fn any(max: Duration) -> Self {
        Self { zero: true, max }
    }

    /// Parses `s`, or says the accepted form.
    ///
    /// # Errors
    /// "a duration of (more than 0 and) at most `max`, like `30s`".
    pub fn parse(&self, s: &str) -> Result<humantime::Duration, String> {
        let max = humantime::format_duration(self.max);
        let form = if self.zero {
            format!("a duration of at most {max}, like `30s` or `0s`")
        } else {
            format!("a duration of more than 0 and at most {max}, like `30s` or `500ms`")
        };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d > self.max || (d.is_zero() && !self.zero) => Err(form),
            Ok(d) => Ok(d.into()),
            Err(e) => Err(format!("{form} ({e})")),
        }
    }
}

impl TypedValueParser for Span {
    type Value = humantime::Duration;
    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        v: &OsStr,
    ) -> Result<humantime::Duration, clap::Error> {
        run(cmd, arg, v, |s| self.parse(s))
    }
}

/// `true` or `false` (any case).
#[derive(Debug, Clone, Copy)]
pub struct Switch;

impl Switch {
    /// Parses `s`, or says the accepted form.
    ///
    /// # Errors
    /// "`true` or `false`".
    pub fn parse(s: &str) -> Result<bool, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("`true` or `false`".into()),
        }
    }
}

impl TypedValueParser for Switch {
    type Value = bool;
    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, v: &OsStr) -> Result<bool, clap::Error> {
        run(cmd, arg, v, Self::parse)
    }
}

/// A value of a type that parses itself ([`FromStr`] whose error is the accepted form,
/// e.g. "`partition`, `row` or `table`").
#[derive(Debug)]
pub struct Parsed<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Parsed<T> {
    /// The parser of `T`.
    pub const fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Parsed<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> TypedValueParser for Parsed<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;
    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, v: &OsStr) -> Result<T, clap::Error> {
        run(cmd, arg, v, |s| s.trim().parse())
    }
}

/// Words for a list of choices: "`a`, `b` or `c`".
pub fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => format!(
            "{} or `{last}`",
            init.iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_say_what_is_accepted() {
        assert_eq!(
            Integer::new(1u32, 100).parse("0").unwrap_err(),
            "a whole number from 1 to 100"
        );
        assert_eq!(Integer::new(1u32, 100).parse(" 7 ").unwrap(), 7);
        assert!(Fraction::parse("1").is_err());
        assert_eq!(Fraction::parse("0").unwrap(), 0.0);
        assert!(Span::positive(MAX_SHORT_DURATION).parse("0s").is_err());
        assert!(Span::positive(MAX_SHORT_DURATION)
            .parse("25h")
            .unwrap_err()
            .contains("1day"));
        assert_eq!(
            *Span::any(MAX_SHORT_DURATION).parse("0s").unwrap(),
            Duration::ZERO
        );
        assert!(Switch::parse("TRUE").unwrap());
        assert!(Switch::parse("yes").is_err());
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
