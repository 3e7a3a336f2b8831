//! The retry policy: how long to wait before attempt n+1, and when to give up.
//!
//! Delays come from a list; the last entry repeats (`5m,10m,20m` is the seed's schedule,
//! `RETRY_DELAYS_SECONDS = [300, 600, 1200]`). Each delay is spread **upward** by a jitter
//! fraction so that units deferred together do not all come back in the same second: the
//! delay the schedule chose is the minimum, never shortened (a retry never comes early). It
//! is never placed before a floor the caller knows of either (the streaming buffer's
//! earliest drain). Pure: the random sample and `now` are arguments.
//!
//! Why upward: the AWS Architecture Blog's "Exponential Backoff And Jitter" (Marc Brooker,
//! 2015, <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>) shows
//! that jitter is what spreads retrying clients apart. Its "full" (`random(0, backoff)`) and
//! "equal" (`backoff/2 + random(0, backoff/2)`) variants wait *less* than the backoff, which
//! here would retry before the streaming buffer can have drained; its "decorrelated"
//! variant (`random(base, prev × 3)`) keeps `base` as a lower bound but throws away the
//! configured schedule. Drawing from `[delay, delay × (1 + jitter)]` keeps both the
//! schedule as a floor and the spread.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ErrorClass;

/// How quota errors stretch the delay: BigQuery's error-messages page advises backing off
/// "seconds to minutes" for `rateLimitExceeded` and hours for `quotaExceeded`, so a quota
/// conflict waits four times the scheduled delay.
pub const QUOTA_DELAY_FACTOR: u32 = 4;

/// The longest delay a policy accepts (`STREAMGUARD_RETRY_DELAYS`): 7 days. BigQuery's
/// buffer drains in about 90 minutes at worst; a longer wait is a typo, and far longer
/// ones would not fit the clock.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Attempts in all (first try included) before a unit is given up, when
/// `STREAMGUARD_RETRY_MAX_ATTEMPTS` is unset.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// Jitter fraction when `STREAMGUARD_RETRY_JITTER` is unset.
pub const DEFAULT_JITTER: f64 = 0.1;

/// Delays used when `STREAMGUARD_RETRY_DELAYS` is unset and the warehouse is BigQuery:
/// the seed's 5, 10, 20 minutes, doubled once more.
pub const BIGQUERY_DEFAULT_DELAYS: [Duration; 4] = [
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1200),
    Duration::from_secs(2400),
];

/// Delays used when unset and the warehouse is the emulator, whose buffer lasts seconds
/// (`STREAMGUARD_EMULATOR_BUFFER`, default `10s..30s`): the same shape, in seconds, so the
/// demo shows the whole cycle in about a minute.
pub const EMULATOR_DEFAULT_DELAYS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(40),
];

/// The default delays for a warehouse: BigQuery's when `bigquery`, else the emulator's.
pub fn default_delays(bigquery: bool) -> &'static [Duration] {
    if bigquery {
        &BIGQUERY_DEFAULT_DELAYS
    } else {
        &EMULATOR_DEFAULT_DELAYS
    }
}

/// `at + d`, saturating at 9999-12-31T23:59:59Z (which Postgres and every RFC 3339 client
/// hold) instead of panicking when the sum overflows.
pub fn add_saturating(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    let latest =
        DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .map_or(latest, |t| t.min(latest))
}

/// When to try again, and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    max_attempts: u32,
    jitter: f64,
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The next attempt the policy chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// When the next attempt may run.
    pub at: DateTime<Utc>,
    /// The wait from `now` to `at`, as recorded in the conflict log (`delay_seconds`).
    pub delay: Duration,
}

impl RetryPolicy {
    /// Builds a policy.
    ///
    /// - `delays`: at least one, each at most [`MAX_RETRY_DELAY`]; the wait after attempt n
    ///   is `delays[n-1]`, the last repeating.
    /// - `max_attempts`: attempts in all (first try included), at least 1.
    /// - `jitter`: a fraction in `[0, 1)`; each delay is multiplied by a factor drawn from
    ///   `[1, 1 + jitter]`, so it is only ever lengthened. `0` disables it.
    ///
    /// # Errors
    /// [`PolicyError`] naming the argument that is out of range.
    pub fn new(delays: Vec<Duration>, max_attempts: u32, jitter: f64) -> Result<Self, PolicyError> {
        if delays.is_empty() {
            return Err(PolicyError("at least one retry delay is needed".into()));
        }
        if let Some(d) = delays.iter().find(|d| **d > MAX_RETRY_DELAY) {
            return Err(PolicyError(format!(
                "a retry delay may be at most 7 days ({}s); got {}s",
                MAX_RETRY_DELAY.as_secs(),
                d.as_secs()
            )));
        }
        if max_attempts == 0 {
            return Err(PolicyError("max attempts must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&jitter) {
            return Err(PolicyError(format!(
                "jitter must be a fraction in [0, 1), got {jitter}"
            )));
        }
        Ok(Self {
            delays,
            max_attempts,
            jitter,
        })
    }

    /// Attempts in all, first try included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured delays (the last one repeats).
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay before attempt `attempt + 1` without jitter or floor.
    pub fn base_delay(&self, attempt: u32, class: ErrorClass) -> Duration {
        let index = (attempt.max(1) as usize - 1).min(self.delays.len() - 1);
        let base = self.delays[index];
        match class {
            ErrorClass::QuotaExceeded => base.saturating_mul(QUOTA_DELAY_FACTOR),
            _ => base,
        }
    }

    /// Plans the attempt after attempt number `attempt` (1-based) failed with `class`.
    ///
    /// `sample` is a uniform draw from `[0, 1)` (the jitter: the delay becomes
    /// `base × (1 + jitter × sample)`, never less than [`Self::base_delay`]), `floor` a time
    /// before which the attempt cannot succeed (e.g. when the streaming buffer can first
    /// have drained).
    /// Returns `None` when the attempts are used up or the class is permanent: give up.
    pub fn next_attempt(
        &self,
        attempt: u32,
        class: ErrorClass,
        now: DateTime<Utc>,
        sample: f64,
        floor: Option<DateTime<Utc>>,
    ) -> Option<Retry> {
        if !class.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        let base = self.base_delay(attempt, class).as_secs_f64();
        // Upward only: the factor is in [1, 1 + jitter], so the base delay is the minimum.
        let factor = self.jitter.mul_add(sample.clamp(0.0, 1.0), 1.0);
        let jittered = Duration::try_from_secs_f64(base * factor)
            .unwrap_or(Duration::MAX)
            .max(self.base_delay(attempt, class));
        let mut at = add_saturating(now, jittered);
        if let Some(floor) = floor {
            at = at.max(floor);
        }
        let delay = (at - now).to_std().unwrap_or_default();
        Some(Retry { at, delay })
    }

    /// The longest the policy keeps a unit waiting in all, without jitter: the give-up
    /// horizon. With the defaults (`5m,10m,20m,40m`, 8 attempts) that is 195 minutes, more
    /// than BigQuery's documented worst case of about 90 minutes in the buffer.
    pub fn horizon(&self) -> Duration {
        // Waits after attempts 1..max_attempts: the listed delays, then the last repeating.
        let waits = self.max_attempts.saturating_sub(1);
        let (last, repeated) = self.delays.split_last().expect("at least one delay");
        let listed = repeated.len().min(waits as usize);
        let from_list = repeated[..listed]
            .iter()
            .fold(Duration::ZERO, |sum, d| sum.saturating_add(*d));
        let repeats = waits - u32::try_from(listed).unwrap_or(waits);
        from_list.saturating_add(last.saturating_mul(repeats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 25, 12, 0, 0).unwrap()
    }
    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }
    fn seed() -> RetryPolicy {
        RetryPolicy::new(vec![mins(5), mins(10), mins(20)], 4, 0.0).unwrap()
    }

    #[test]
    fn seed_schedule_is_expressible_and_last_delay_repeats() {
        let p = RetryPolicy::new(vec![mins(5), mins(10), mins(20)], 6, 0.0).unwrap();
        let delays: Vec<_> = (1..6)
            .map(|a| {
                p.next_attempt(a, ErrorClass::StreamingBuffer, now(), 0.5, None)
                    .unwrap()
                    .delay
            })
            .collect();
        assert_eq!(
            delays,
            vec![mins(5), mins(10), mins(20), mins(20), mins(20)]
        );
    }

    #[test]
    fn gives_up_when_attempts_are_used() {
        let p = seed();
        assert!(p
            .next_attempt(3, ErrorClass::StreamingBuffer, now(), 0.5, None)
            .is_some());
        assert_eq!(
            p.next_attempt(4, ErrorClass::StreamingBuffer, now(), 0.5, None),
            None
        );
        assert_eq!(
            p.next_attempt(9, ErrorClass::StreamingBuffer, now(), 0.5, None),
            None
        );
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        assert_eq!(
            seed().next_attempt(1, ErrorClass::Permanent, now(), 0.5, None),
            None
        );
    }

    #[test]
    fn jitter_only_lengthens_the_delay() {
        let p = RetryPolicy::new(vec![mins(10)], 5, 0.2).unwrap();
        let delay = |sample| {
            p.next_attempt(1, ErrorClass::StreamingBuffer, now(), sample, None)
                .unwrap()
                .delay
        };
        assert_eq!(delay(0.0), mins(10));
        assert_eq!(delay(0.5), mins(11));
        let high = delay(0.999_999);
        assert!(
            high <= mins(12) && high > Duration::from_secs(719),
            "{high:?}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// No retry before its base delay, whatever the draw, schedule, attempt or class.
        #[test]
        fn no_retry_comes_before_its_base_delay(
            delays in proptest::collection::vec(0u64..=7 * 24 * 3600 * 1000, 1..5),
            attempt in 1u32..10,
            jitter in 0.0f64..1.0,
            sample in proptest::num::f64::ANY,
            quota in proptest::bool::ANY,
        ) {
            let delays = delays.into_iter().map(Duration::from_millis).collect();
            let p = RetryPolicy::new(delays, 10, jitter).unwrap();
            let class = if quota { ErrorClass::QuotaExceeded } else { ErrorClass::ConcurrentDml };
            let base = p.base_delay(attempt, class);
            let r = p.next_attempt(attempt, class, now(), sample, None).unwrap();
            proptest::prop_assert!(r.delay >= base, "{:?} < {:?}", r.delay, base);
            proptest::prop_assert!(r.at >= add_saturating(now(), base));
        }
    }

    #[test]
    fn over_many_draws_no_retry_is_early_and_retries_still_spread() {
        use rand::{Rng, SeedableRng};
        let p = RetryPolicy::new(vec![mins(1)], 5, 0.1).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let delays: Vec<Duration> = (0..10_000)
            .map(|_| {
                p.next_attempt(1, ErrorClass::StreamingBuffer, now(), rng.random(), None)
                    .unwrap()
                    .delay
            })
            .collect();
        assert!(delays
            .iter()
            .all(|d| *d >= mins(1) && *d <= Duration::from_secs(66)));
        let distinct: std::collections::HashSet<_> = delays.iter().map(|d| d.as_millis()).collect();
        assert!(
            distinct.len() > 1000,
            "jitter still spreads: {}",
            distinct.len()
        );
    }

    #[test]
    fn floor_pushes_the_attempt_later_never_earlier() {
        let p = seed();
        let later = now() + chrono::Duration::minutes(30);
        let r = p
            .next_attempt(1, ErrorClass::StreamingBuffer, now(), 0.5, Some(later))
            .unwrap();
        assert_eq!(r.at, later);
        assert_eq!(r.delay, mins(30));
        let earlier = now() + chrono::Duration::minutes(1);
        let r = p
            .next_attempt(1, ErrorClass::StreamingBuffer, now(), 0.5, Some(earlier))
            .unwrap();
        assert_eq!(r.delay, mins(5));
    }

    #[test]
    fn quota_waits_longer() {
        let r = seed()
            .next_attempt(1, ErrorClass::QuotaExceeded, now(), 0.5, None)
            .unwrap();
        assert_eq!(r.delay, mins(20));
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(RetryPolicy::new(vec![], 3, 0.0).is_err());
        assert!(RetryPolicy::new(vec![mins(1)], 0, 0.0).is_err());
        assert!(RetryPolicy::new(vec![mins(1)], 3, 1.0).is_err());
        assert!(RetryPolicy::new(vec![mins(1)], 3, -0.1).is_err());
    }

    #[test]
    fn default_horizon_outlasts_the_documented_worst_case_buffer() {
        let p = RetryPolicy::new(vec![mins(5), mins(10), mins(20), mins(40)], 8, 0.1).unwrap();
        assert_eq!(p.horizon(), mins(195));
        assert!(p.horizon() > mins(90));
    }

    #[test]
    fn overlong_delays_are_refused_and_arithmetic_never_panics() {
        let day = Duration::from_secs(24 * 3600);
        assert!(RetryPolicy::new(vec![MAX_RETRY_DELAY], 3, 0.0).is_ok());
        let e = RetryPolicy::new(vec![mins(5), MAX_RETRY_DELAY + day], 3, 0.0).unwrap_err();
        assert!(e.0.contains("7 days"), "{e}");
        // Even a policy with the longest delay and every attempt saturates, not panics.
        let p = RetryPolicy::new(vec![MAX_RETRY_DELAY], u32::MAX, 0.5).unwrap();
        assert!(p.horizon() >= MAX_RETRY_DELAY);
        let far = add_saturating(now(), Duration::MAX);
        assert_eq!(far.to_rfc3339(), "9999-12-31T23:59:59+00:00");
        let r = p
            .next_attempt(1, ErrorClass::QuotaExceeded, far, 0.999, None)
            .unwrap();
        assert_eq!(r.at, far);
        let r = p
            .next_attempt(1, ErrorClass::QuotaExceeded, now(), 0.5, None)
            .unwrap();
        // Jitter 0.5 with the draw 0.5 lengthens it by a quarter.
        assert_eq!(r.delay, MAX_RETRY_DELAY * QUOTA_DELAY_FACTOR * 5 / 4);
    }
}
