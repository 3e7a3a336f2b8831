//! The delivery worker, in every replica: claims due deliveries from the outbox, groups
//! them by channel, scope and kind, holds a group back while the scope's rate window is
//! still running, sends each group as one message, and records the result fenced on its
//! claim. Groups are sent concurrently, so a slow or failing channel never holds another
//! back; a failed send is retried after a doubling delay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{AlertSettings, Channel, Message};
use crate::store::alerts::ClaimedDelivery;
use crate::store::Store;

/// Deliveries claimed per round.
const CLAIM_LIMIT: u32 = 200;
/// How long a claim lasts: longer than any send (each has a 10-second timeout).
const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// Longest delay between two sends of a failing delivery.
const MAX_RETRY: Duration = Duration::from_secs(600);

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Messages sent.
    pub sent: usize,
    /// Messages whose send failed (retried later).
    pub failed: usize,
    /// Groups held back by the rate limit.
    pub held: usize,
}

/// Sends alerts from the outbox.
pub struct Notifier {
    store: Store,
    channels: HashMap<&'static str, Arc<dyn Channel>>,
    settings: AlertSettings,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A worker over `store` with `channels` (the log channel among them).
    pub fn new(store: Store, channels: Vec<Arc<dyn Channel>>, settings: AlertSettings) -> Self {
        Self {
            store,
            channels: channels.into_iter().map(|c| (c.name(), c)).collect(),
            settings,
        }
    }

    /// Claims due deliveries and sends them, one message per channel, scope and kind.
    ///
    /// # Errors
    /// When the claim fails; a failed send is recorded on its delivery, not returned.
    pub async fn run_once(&self) -> Result<Round, crate::store::Error> {
        let token = Uuid::new_v4();
        let claimed = self
            .store
            .claim_deliveries(token, CLAIM_LIMIT, CLAIM_LEASE)
            .await?;
        let mut groups: Vec<Vec<ClaimedDelivery>> = Vec::new();
        let mut index: HashMap<(String, String, String), usize> = HashMap::new();
        for d in claimed {
            let key = (d.channel.clone(), d.scope.clone(), d.kind.clone());
            match index.get(&key) {
                Some(&i) => groups[i].push(d),
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![d]);
                }
            }
        }
        let results =
            futures::future::join_all(groups.iter().map(|g| self.deliver(token, g))).await;
        let mut round = Round::default();
        for r in results {
            match r {
                Ok(Delivered::Sent) => round.sent += 1,
                Ok(Delivered::Failed) => round.failed += 1,
                Ok(Delivered::Held) => round.held += 1,
                Err(e) => {
                    round.failed += 1;
                    tracing::error!(error = %e, "recording an alert delivery failed; it is claimed again when its lease ends");
                }
            }
        }
        Ok(round)
    }

    async fn deliver(
        &self,
        token: Uuid,
        group: &[ClaimedDelivery],
    ) -> Result<Delivered, crate::store::Error> {
        let first = &group[0];
        let ids: Vec<i64> = group.iter().map(|d| d.delivery_id).collect();
        let window = chrono::Duration::from_std(self.settings.rate_window).unwrap_or_default();
        // `last` was stamped by the shared clock; compare and schedule on it too.
        let now = self.store.now().await?;
        if let Some(last) = self
            .store
            .last_sent(&first.channel, &first.scope, &first.kind)
            .await?
        {
            if now < last + window {
                self.store
                    .postpone(&ids, token, last + window, None)
                    .await?;
                return Ok(Delivered::Held);
            }
        }
        let Some(channel) = self.channels.get(first.channel.as_str()) else {
            let error = format!(
                "channel {:?} is not configured on this replica",
                first.channel
            );
            let at = now + chrono::Duration::from_std(MAX_RETRY).unwrap_or_default();
            self.store.postpone(&ids, token, at, Some(&error)).await?;
            tracing::warn!(channel = %first.channel, "{error}; delivery postponed");
            return Ok(Delivered::Failed);
        };
        let message = Message::from_group(group);
        match channel.send(&message).await {
            Ok(()) => {
                self.store
                    .mark_sent(&ids, token, message.message_id)
                    .await?;
                tracing::info!(channel = channel.name(), kind = %message.kind, scope = %message.scope,
                    events = message.count, message_id = %message.message_id, "alert sent");
                Ok(Delivered::Sent)
            }
            Err(e) => {
                let attempts = group.iter().map(|d| d.attempts).max().unwrap_or(1);
                let delay = retry_delay(self.settings.retry_base, attempts);
                let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                self.store.postpone(&ids, token, at, Some(&e.0)).await?;
                tracing::warn!(channel = channel.name(), error = %e, attempts, retry_in = ?delay, "alert send failed");
                Ok(Delivered::Failed)
            }
        }
    }

    /// The worker loop: a round every poll interval (and the daily digest, when enabled,
    /// checked hourly) until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_digest_check: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if self.settings.daily_digest
                && last_digest_check.is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
            {
                last_digest_check = Some(tokio::time::Instant::now());
                if let Err(e) = self.store.queue_daily_digest().await {
                    tracing::warn!(error = %e, "queueing the daily digest failed");
                }
            }
            let busy = match self.run_once().await {
                Ok(round) => round.sent + round.failed > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming alert deliveries failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }
}

enum Delivered {
    Sent,
    Failed,
    Held,
}

/// `base × 2^(attempts-1)`, capped at ten minutes.
pub fn retry_delay(base: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    base.checked_mul(2u32.pow(exp))
        .unwrap_or(MAX_RETRY)
        .min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_caps() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 2), Duration::from_secs(10));
        assert_eq!(retry_delay(base, 4), Duration::from_secs(40));
        assert_eq!(retry_delay(base, 30), MAX_RETRY);
        assert_eq!(retry_delay(base, 0), Duration::from_secs(5));
    }
}
