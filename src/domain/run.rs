//! Backfill runs: the name a processor gives many batches (`bdl_boxscores backfill
//! 2026-01-24`), and the estimate of when a run will be done. Pure: the estimate takes the
//! run's counts and `now` as plain values.

use chrono::{DateTime, Duration, Utc};

/// Longest run name, in characters.
pub const MAX_RUN_CHARS: usize = 200;

/// A run's name: 1 to [`MAX_RUN_CHARS`] characters (any Unicode, spaces allowed), no
/// control characters (Unicode category Cc: tabs, newlines, NUL, DEL, C1 controls).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunName(String);

impl RunName {
    /// Parses a run name.
    ///
    /// # Errors
    /// A sentence saying what is wrong (empty, too long, a control character and where).
    pub fn parse(s: &str) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars == 0 {
            return Err("run must not be empty; give a name such as \"bdl_boxscores backfill 2026-01-24\" or leave it out".into());
        }
        if chars > MAX_RUN_CHARS {
            return Err(format!(
                "run has {chars} characters, over the limit of {MAX_RUN_CHARS}"
            ));
        }
        if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(format!(
                "run must not contain control characters; character {} is U+{:04X}",
                i + 1,
                u32::from(c)
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the estimate of a run's end needs: counts of its units and times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Units not attempted yet.
    pub pending: i64,
    /// Units waiting for a retry.
    pub deferred: i64,
    /// Units that reached a final state (loaded, failed, unresolved, superseded, cancelled).
    pub settled: i64,
    /// The latest `next_attempt_at` of the deferred units.
    pub last_retry_at: Option<DateTime<Utc>>,
    /// When the run's first batch was accepted.
    pub started_at: DateTime<Utc>,
}

impl Progress {
    /// Whether no unit is pending or deferred.
    pub fn done(&self) -> bool {
        self.pending == 0 && self.deferred == 0
    }

    /// When the run should be done, or `None` when it is done or there is no basis for a
    /// guess. The later of: the last deferred unit's next attempt (it may land then, and
    /// nothing is tried earlier), and for pending units `now + pending / rate`, where the rate
    /// is the units settled per second since the run started. A run with pending units and
    /// nothing settled yet has no rate, so no estimate.
    pub fn estimated_done_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.done() {
            return None;
        }
        let retries = if self.deferred > 0 {
            Some(self.last_retry_at?.max(now))
        } else {
            None
        };
        let pending = if self.pending > 0 {
            let elapsed = (now - self.started_at).num_milliseconds();
            if self.settled == 0 || elapsed <= 0 {
                return None;
            }
            let per_unit_ms = elapsed as f64 / self.settled as f64;
            let ms = (per_unit_ms * self.pending as f64).min(365.0 * 24.0 * 3600.0 * 1000.0);
            Some(now + Duration::milliseconds(ms.ceil() as i64))
        } else {
            None
        };
        retries.into_iter().chain(pending).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_769_300_000 + s, 0).unwrap()
    }

    #[test]
    fn run_names_allow_spaces_and_refuse_control_characters() {
        assert!(RunName::parse("bdl_boxscores backfill 2026-01-24").is_ok());
        assert!(RunName::parse("rückfüllung ⚽").is_ok());
        assert!(RunName::parse("").is_err());
        assert!(RunName::parse(&"r".repeat(200)).is_ok());
        assert!(RunName::parse(&"r".repeat(201)).is_err());
        let e = RunName::parse("a\nb").unwrap_err();
        assert!(e.contains("U+000A"), "{e}");
        assert!(RunName::parse("a\u{85}").is_err());
    }

    #[test]
    fn a_done_run_has_no_estimate() {
        let p = Progress {
            pending: 0,
            deferred: 0,
            settled: 10,
            last_retry_at: None,
            started_at: at(0),
        };
        assert!(p.done());
        assert_eq!(p.estimated_done_at(at(100)), None);
    }

    #[test]
    fn deferred_units_finish_no_earlier_than_their_last_retry() {
        let p = Progress {
            pending: 0,
            deferred: 3,
            settled: 10,
            last_retry_at: Some(at(400)),
            started_at: at(0),
        };
        assert_eq!(p.estimated_done_at(at(100)), Some(at(400)));
        // A retry overdue is due now.
        assert_eq!(p.estimated_done_at(at(500)), Some(at(500)));
    }

    #[test]
    fn pending_units_land_at_the_rate_so_far() {
        // 10 settled in 100 s: 10 s a unit; 5 pending → 50 s more.
        let p = Progress {
            pending: 5,
            deferred: 0,
            settled: 10,
            last_retry_at: None,
            started_at: at(0),
        };
        assert_eq!(p.estimated_done_at(at(100)), Some(at(150)));
        let both = Progress {
            deferred: 1,
            last_retry_at: Some(at(120)),
            ..p
        };
        assert_eq!(both.estimated_done_at(at(100)), Some(at(150)));
        let later = Progress {
            deferred: 1,
            last_retry_at: Some(at(900)),
            ..p
        };
        assert_eq!(later.estimated_done_at(at(100)), Some(at(900)));
    }

    #[test]
    fn no_rate_no_estimate() {
        let p = Progress {
            pending: 5,
            deferred: 0,
            settled: 0,
            last_retry_at: None,
            started_at: at(0),
        };
        assert_eq!(p.estimated_done_at(at(100)), None);
    }
}
