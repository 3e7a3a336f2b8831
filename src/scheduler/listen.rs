//! The state of the scheduler's `LISTEN streamguard_jobs` connection, shared between the
//! worker loop (which writes it) and `/readyz` and `/metrics` (which show it).
//!
//! The scheduler polls the job table every poll interval whether or not it listens, so a
//! lost connection slows wake-ups down to the poll interval and never stops work: the state
//! is shown, never used to fail readiness. Notifications are transient (Postgres drops
//! those sent while nobody listens), so after a reconnect the next poll catches anything
//! missed.

use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where the LISTEN connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListenState {
    /// The scheduler has started and not connected yet.
    Connecting,
    /// Listening: new jobs wake the scheduler at once.
    Connected,
    /// The connection could not be made or was lost; the scheduler polls only (every
    /// `STREAMGUARD_POLL_INTERVAL`) and tries again at each wake-up.
    Reconnecting,
    /// This replica runs no scheduler (`STREAMGUARD_SCHEDULER=false`): it neither listens
    /// nor polls.
    Off,
}

/// What `/readyz` shows under `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListenReport {
    /// The connection's state.
    pub state: ListenState,
    /// When it entered that state (RFC 3339, UTC); `null` for `off`.
    pub since: Option<DateTime<Utc>>,
    /// When the last notification arrived; `null` before the first.
    pub last_notification_at: Option<DateTime<Utc>>,
    /// How often a lost connection was re-established since the process started.
    pub reconnects: u64,
}

/// A cheap-to-clone handle on the LISTEN connection's state.
#[derive(Debug, Clone)]
pub struct ListenStatus(Arc<Mutex<ListenReport>>);

impl ListenStatus {
    /// The handle of a scheduler that is about to connect.
    pub fn connecting() -> Self {
        Self::with(ListenState::Connecting, Some(Utc::now()))
    }

    /// The handle of a replica without a scheduler.
    pub fn off() -> Self {
        Self::with(ListenState::Off, None)
    }

    fn with(state: ListenState, since: Option<DateTime<Utc>>) -> Self {
        Self(Arc::new(Mutex::new(ListenReport {
            state,
            since,
            last_notification_at: None,
            reconnects: 0,
        })))
    }

    /// The current report.
    pub fn report(&self) -> ListenReport {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut ListenReport)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The connection is (again) listening; a reconnect when it was lost before.
    pub(crate) fn connected(&self) {
        self.update(|r| {
            if r.state != ListenState::Connected {
                if r.state == ListenState::Reconnecting {
                    r.reconnects += 1;
                }
                r.state = ListenState::Connected;
                r.since = Some(Utc::now());
            }
        });
    }

    /// The connection was lost and re-established in one step (sqlx's listener reconnects
    /// eagerly): counted as a reconnect, connected since now.
    pub(crate) fn reconnected(&self) {
        self.update(|r| {
            r.state = ListenState::Connected;
            r.since = Some(Utc::now());
            r.reconnects += 1;
        });
    }

    /// The connection failed or could not be made.
    pub(crate) fn reconnecting(&self) {
        self.update(|r| {
            if r.state != ListenState::Reconnecting {
                r.state = ListenState::Reconnecting;
                r.since = Some(Utc::now());
            }
        });
    }

    /// A notification arrived.
    pub(crate) fn notified(&self) {
        self.update(|r| r.last_notification_at = Some(Utc::now()));
    }

    /// Appends the `streamguard_listen_connected` gauge (1 when listening, else 0) and
    /// `streamguard_listen_reconnects` to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let r = self.report();
        let connected = u8::from(r.state == ListenState::Connected);
        let _ = writeln!(
            out,
            "# HELP streamguard_listen_connected Whether this replica's scheduler is listening for new jobs (1) or polling only (0).\n\
             # TYPE streamguard_listen_connected gauge\nstreamguard_listen_connected {connected}\n\
             # HELP streamguard_listen_reconnects Lost LISTEN connections re-established since the process started.\n\
             # TYPE streamguard_listen_reconnects counter\nstreamguard_listen_reconnects {}",
            r.reconnects
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_move_and_reconnects_are_counted() {
        let s = ListenStatus::connecting();
        assert_eq!(s.report().state, ListenState::Connecting);
        s.connected();
        assert_eq!(
            (s.report().state, s.report().reconnects),
            (ListenState::Connected, 0)
        );
        s.notified();
        assert!(s.report().last_notification_at.is_some());
        s.reconnecting();
        s.reconnecting();
        assert_eq!(s.report().state, ListenState::Reconnecting);
        s.connected();
        s.reconnected();
        assert_eq!(
            (s.report().state, s.report().reconnects),
            (ListenState::Connected, 2)
        );
    }

    #[test]
    fn the_gauge_is_one_only_when_listening() {
        let mut text = String::new();
        ListenStatus::off().render(&mut text);
        assert!(
            text.contains("\nstreamguard_listen_connected 0\n"),
            "{text}"
        );
        let s = ListenStatus::connecting();
        s.connected();
        let mut text = String::new();
        s.render(&mut text);
        assert!(
            text.contains("\nstreamguard_listen_connected 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE streamguard_listen_reconnects counter"));
    }
}
