//! Slack incoming webhook: a POST of Slack's message JSON — `text` (the fallback shown in
//! notifications) plus `blocks` (a header and a section), per Slack's "Sending messages
//! using incoming webhooks" documentation. Slack answers `200 ok` on success.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Channel, Message, SendError};

/// The channel's name.
pub const NAME: &str = "slack";

/// A Slack incoming webhook.
#[derive(Debug, Clone)]
pub struct Slack {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl Slack {
    /// A channel posting to `url`.
    ///
    /// # Errors
    /// When `url` is not an http(s) URL (the message names `STREAMGUARD_ALERT_SLACK_WEBHOOK`).
    pub fn new(http: reqwest::Client, url: &str) -> Result<Self, String> {
        Ok(Self {
            http,
            url: super::webhook::parse_url("STREAMGUARD_ALERT_SLACK_WEBHOOK", url)?,
        })
    }
}

/// Slack's message JSON for `m`.
pub fn payload(m: &Message) -> Value {
    let body = m
        .lines
        .iter()
        .map(|l| format!("• {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "text": m.text(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&m.title, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&body, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn",
                "text": format!("{} event(s) · scope `{}` · message {}", m.count, m.scope, m.message_id)}]}
        ]
    })
}

/// Slack caps header text at 150 characters and section text at 3,000.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        super::webhook::post(&self.http, &self.url, &payload(m)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_slacks_limits() {
        assert_eq!(truncate("abc", 150), "abc");
        let long = "x".repeat(200);
        assert_eq!(truncate(&long, 150).chars().count(), 150);
    }
}
