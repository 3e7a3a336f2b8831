//! The service's one clock seam.
//!
//! Every time the service compares or schedules — due jobs, leases, linger, breaker windows,
//! alert pacing, retry times, holds, the emulator's streaming buffer — is read from one
//! [`Clock`]:
//!
//! - [`Clock::Postgres`], in production: Postgres's clock. SQL reads it with
//!   `streamguard_now()` (the transaction's `now()`) and `streamguard_clock()`
//!   (`clock_timestamp()`), defined in `migrations/0011_clock.sql`; Rust reads it with
//!   [`crate::store::Store::now`]. All replicas share one database, so they share one
//!   clock, and a replica whose own clock is off never retries early or late. The
//!   application's clock is used only for log lines and durations; at start-up a skew over
//!   a second between the two is warned about (`app::warn_if_clocks_differ`).
//! - [`Clock::Manual`], in tests and the simulation (`tests/sim/`): a time that moves only
//!   when told to. Each pooled connection is handed out with the Postgres setting
//!   `streamguard.now` set to it ([`Clock::pool_options`]), so the same two SQL functions
//!   return it, and nothing else changes between production and test.
//!
//! Same design as underway's explicit `now` and River's injected time generator, placed
//! where our times are compared: in Postgres.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;

/// Where the service reads the time. Cheap to clone; clones of a manual clock move
/// together.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// Postgres's clock (production).
    #[default]
    Postgres,
    /// A clock moved by hand.
    Manual(ManualClock),
}

impl Clock {
    /// The time for stamps that are only shown (attempt logs, `as_of`): the manual time,
    /// or the application's clock.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::Postgres => Utc::now(),
            Self::Manual(m) => m.now(),
        }
    }

    /// Waits `d`: on Postgres's clock, really; on a manual clock, by moving it forward `d`
    /// (the simulated wait ends at once, and every reader sees the time it ended at).
    pub async fn sleep(&self, d: Duration) {
        match self {
            Self::Postgres => tokio::time::sleep(d).await,
            Self::Manual(m) => {
                m.advance(d);
                tokio::task::yield_now().await;
            }
        }
    }

    /// The manual clock, if this is one.
    pub fn manual(&self) -> Option<&ManualClock> {
        match self {
            Self::Postgres => None,
            Self::Manual(m) => Some(m),
        }
    }

    /// `options` with this clock installed: for a manual clock, every connection is handed
    /// out with `streamguard.now` set to the clock's time (a new one as it connects, an idle
    /// one as it is acquired: one extra round trip per acquire); Postgres's clock needs
    /// nothing.
    pub fn pool_options(&self, options: PgPoolOptions) -> PgPoolOptions {
        let Self::Manual(clock) = self else {
            return options;
        };
        let (on_connect, on_acquire) = (clock.clone(), clock.clone());
        options
            .after_connect(move |conn, _meta| Box::pin(set_session_clock(conn, on_connect.now())))
            .before_acquire(move |conn, _meta| {
                let now = on_acquire.now();
                Box::pin(async move {
                    set_session_clock(conn, now).await?;
                    Ok(true)
                })
            })
    }
}

/// Sets `streamguard.now` for the session: `streamguard_now()` and `streamguard_clock()`
/// return `now` on this connection from here on.
async fn set_session_clock(
    conn: &mut sqlx::PgConnection,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('streamguard.now', $1, false)")
        .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .execute(conn)
        .await?;
    Ok(())
}

/// A clock that moves only when told to, forward only. Microsecond resolution, like
/// Postgres's `timestamptz`.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start` (truncated to microseconds).
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(start.timestamp_micros())))
    }

    /// The time it shows.
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst))
            .expect("a manual clock stays within chrono's range")
    }

    /// Moves the clock forward by `by`; returns the new time.
    ///
    /// # Panics
    /// When `by` is over 100 years (no test needs it; it would overflow chrono's range).
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let micros = i64::try_from(by.as_micros())
            .ok()
            .filter(|m| *m < 100 * 365 * 86_400 * 1_000_000)
            .expect("a manual clock moves at most 100 years at once");
        let now = self.0.fetch_add(micros, Ordering::SeqCst) + micros;
        DateTime::from_timestamp_micros(now).expect("within chrono's range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_move_together() {
        let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.123456Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::starting_at(start);
        let seen_by_store = Clock::Manual(clock.clone());
        assert_eq!(seen_by_store.now(), start);
        let later = clock.advance(Duration::from_secs(90));
        assert_eq!(later, start + chrono::Duration::seconds(90));
        assert_eq!(seen_by_store.now(), later);
    }
}
