//! Alerts to the people on call, delivered from the outbox (see [`crate::store::alerts`]).
//!
//! - [`message`]: what a message says — one message per channel, scope and kind counts
//!   every event that was waiting (no storm of 50 messages when 50 units give up at once);
//! - [`slack`], [`webhook`], [`email`]: the channels (Slack incoming webhook, a generic
//!   JSON webhook, SMTP e-mail through `lettre`); with none configured, alerts are logged;
//! - [`worker`]: claims due deliveries, applies the per-scope rate limit, sends, retries
//!   with backoff per channel (a failing channel never holds another back).
//!
//! Delivery is at least once: a replica that dies after a send and before marking it sent
//! leaves the delivery to be claimed again when its lease ends. Every message carries a
//! `message_id` (and the alert ids) so a receiver can drop such a repeat.

pub mod email;
pub mod message;
pub mod slack;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use message::Message;
pub use worker::Notifier;

/// Alert settings (`STREAMGUARD_ALERT_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Slack incoming-webhook URL (`STREAMGUARD_ALERT_SLACK_WEBHOOK`).
    pub slack_webhook: Option<String>,
    /// Generic JSON webhook URL (`STREAMGUARD_ALERT_WEBHOOK`).
    pub webhook: Option<String>,
    /// SMTP e-mail (`STREAMGUARD_ALERT_SMTP_*`), when a host is set.
    pub smtp: Option<email::SmtpSettings>,
    /// At most one message per channel, scope and kind in this time; later events wait
    /// and go out together, counted (`STREAMGUARD_ALERT_RATE_WINDOW`, default 60 s).
    pub rate_window: Duration,
    /// First retry delay of a failed send; doubles per failure, capped at 10 minutes
    /// (`STREAMGUARD_ALERT_RETRY`, default 5 s).
    pub retry_base: Duration,
    /// How often the worker looks for due deliveries (`STREAMGUARD_ALERT_POLL`, 1 s).
    pub poll_interval: Duration,
    /// Queue the daily health-check digest (`STREAMGUARD_ALERT_DAILY_DIGEST`, off).
    pub daily_digest: bool,
}

impl AlertSettings {
    /// The defaults: no channel (alerts are only logged), one message per minute per
    /// channel, scope and kind, first retry after 5 s, polled every second, no digest.
    pub const DEFAULT: Self = Self {
        slack_webhook: None,
        webhook: None,
        smtp: None,
        rate_window: Duration::from_secs(60),
        retry_base: Duration::from_secs(5),
        poll_interval: Duration::from_secs(1),
        daily_digest: false,
    };
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl AlertSettings {
    /// The names of the configured channels, the outbox's delivery targets.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.slack_webhook.is_some() {
            names.push(slack::NAME.to_owned());
        }
        if self.webhook.is_some() {
            names.push(webhook::NAME.to_owned());
        }
        if self.smtp.is_some() {
            names.push(email::NAME.to_owned());
        }
        names
    }

    /// Builds the configured channels, plus the `log` channel (always there, for alerts
    /// queued when nothing was configured).
    ///
    /// # Errors
    /// A message naming the setting when a URL or address is malformed.
    pub fn channels(&self) -> Result<Vec<Arc<dyn Channel>>, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("building the HTTP client for alerts: {e}"))?;
        let mut channels: Vec<Arc<dyn Channel>> = vec![Arc::new(LogChannel)];
        if let Some(url) = &self.slack_webhook {
            channels.push(Arc::new(slack::Slack::new(http.clone(), url)?));
        }
        if let Some(url) = &self.webhook {
            channels.push(Arc::new(webhook::Webhook::new(http.clone(), url)?));
        }
        if let Some(smtp) = &self.smtp {
            channels.push(Arc::new(email::Email::new(smtp)?));
        }
        Ok(channels)
    }
}

/// Why a send failed (kept as the delivery's `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// A place alerts go.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The channel's name in `alert_deliveries.channel`.
    fn name(&self) -> &'static str;

    /// Sends one message.
    ///
    /// # Errors
    /// [`SendError`] when the receiver refused or could not be reached; the delivery is
    /// retried with backoff.
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// Alerts with nowhere else to go: written to the log at `warn`.
#[derive(Debug, Clone, Copy)]
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        crate::store::alerts::LOG_CHANNEL
    }

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        tracing::warn!(
            kind = %message.kind, scope = %message.scope, events = message.count,
            message_id = %message.message_id, "ALERT {}: {}", message.title, message.lines.join(" | ")
        );
        Ok(())
    }
}
