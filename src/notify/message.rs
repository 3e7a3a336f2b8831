//! What an alert message says: one message for every waiting event of one channel, scope
//! and kind, with a title that counts them and up to [`MAX_LINES`] of their summaries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::store::alerts::ClaimedDelivery;

/// Summaries listed in one message; the rest are counted.
pub const MAX_LINES: usize = 10;

/// One message about `count` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Unique per message; receivers may drop a repeat (delivery is at least once).
    pub message_id: Uuid,
    /// `breaker_opened`, `breaker_closed`, `conflict_timeout`, `unit_failed`, `daily_digest`.
    pub kind: String,
    /// The breaker scope (processor or table) the events are about.
    pub scope: String,
    /// Events in this message.
    pub count: usize,
    /// One line that counts them.
    pub title: String,
    /// Up to [`MAX_LINES`] event summaries, oldest first.
    pub lines: Vec<String>,
    /// Every event's facts.
    pub events: Vec<Value>,
    /// The outbox ids of the events.
    pub alert_ids: Vec<i64>,
    /// When the first event happened.
    pub first_at: DateTime<Utc>,
}

impl Message {
    /// The message for a group of deliveries of one channel, scope and kind (non-empty).
    pub fn from_group(group: &[ClaimedDelivery]) -> Self {
        let first = &group[0];
        let count = group.len();
        let what = match first.kind.as_str() {
            "breaker_opened" => "circuit breaker opened",
            "breaker_closed" => "circuit breaker closed",
            "conflict_timeout" => "conflict(s) given up (timeout)",
            "unit_failed" => "write unit(s) failed permanently",
            "daily_digest" => "daily health check",
            other => other,
        };
        let title = if count == 1 && first.kind != "conflict_timeout" && first.kind != "unit_failed"
        {
            format!("streamguard: {what} — {}", first.scope)
        } else {
            format!("streamguard: {count} {what} — {}", first.scope)
        };
        let mut lines: Vec<String> = group
            .iter()
            .take(MAX_LINES)
            .map(|d| d.summary.clone())
            .collect();
        if count > MAX_LINES {
            lines.push(format!("… and {} more", count - MAX_LINES));
        }
        Self {
            message_id: message_id(&first.kind, &first.scope, group.iter().map(|d| d.alert_id)),
            kind: first.kind.clone(),
            scope: first.scope.clone(),
            count,
            title,
            lines,
            events: group.iter().map(|d| d.payload.clone()).collect(),
            alert_ids: group.iter().map(|d| d.alert_id).collect(),
            first_at: group
                .iter()
                .map(|d| d.created_at)
                .min()
                .unwrap_or(first.created_at),
        }
    }

    /// Plain text: the title, then one line per event.
    pub fn text(&self) -> String {
        let mut s = self.title.clone();
        for line in &self.lines {
            s.push_str("\n• ");
            s.push_str(line);
        }
        s
    }
}

/// The message's id, derived from what it carries (kind, scope and alert ids), so a resend
/// of the same deliveries — after a failed attempt, or after a replica died between sending
/// and recording — carries the same id and a receiver can drop the repeat.
fn message_id(kind: &str, scope: &str, alert_ids: impl Iterator<Item = i64>) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<i64> = alert_ids.collect();
    ids.sort_unstable();
    let mut hash = Sha256::new();
    hash.update(kind.as_bytes());
    hash.update([0]);
    hash.update(scope.as_bytes());
    for id in ids {
        hash.update(id.to_be_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(id: i64, kind: &str) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: id,
            alert_id: id,
            channel: "slack".into(),
            scope: "bdl_boxscores_processor".into(),
            kind: kind.into(),
            summary: format!("event {id}"),
            payload: json!({"n": id}),
            created_at: Utc::now(),
            attempts: 1,
        }
    }

    #[test]
    fn one_message_counts_a_storm_of_events() {
        let group: Vec<_> = (1..=50).map(|i| delivery(i, "conflict_timeout")).collect();
        let m = Message::from_group(&group);
        assert_eq!(m.count, 50);
        assert_eq!(
            m.title,
            "streamguard: 50 conflict(s) given up (timeout) — bdl_boxscores_processor"
        );
        assert_eq!(m.lines.len(), MAX_LINES + 1);
        assert_eq!(m.lines.last().unwrap(), "… and 40 more");
        assert_eq!(m.alert_ids.len(), 50);
        assert!(m.text().starts_with(&m.title));
    }

    #[test]
    fn a_resend_of_the_same_deliveries_carries_the_same_message_id() {
        let first = Message::from_group(&[delivery(3, "unit_failed"), delivery(4, "unit_failed")]);
        let again = Message::from_group(&[delivery(4, "unit_failed"), delivery(3, "unit_failed")]);
        let other = Message::from_group(&[delivery(3, "unit_failed")]);
        assert_eq!(first.message_id, again.message_id);
        assert_ne!(first.message_id, other.message_id);
    }

    #[test]
    fn a_single_breaker_event_reads_naturally() {
        let m = Message::from_group(&[delivery(7, "breaker_opened")]);
        assert_eq!(
            m.title,
            "streamguard: circuit breaker opened — bdl_boxscores_processor"
        );
        assert_eq!(m.lines, vec!["event 7".to_owned()]);
    }
}
