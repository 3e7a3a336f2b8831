//! A generic JSON webhook: a POST of the [`Message`] itself (`message_id`, `kind`, `scope`,
//! `count`, `title`, `lines`, `events`, `alert_ids`, `first_at`). Any 2xx answer is a
//! delivery; anything else is retried.

use async_trait::async_trait;
use serde::Serialize;

use super::{Channel, Message, SendError};

/// The channel's name.
pub const NAME: &str = "webhook";

/// A generic JSON webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl Webhook {
    /// A channel posting to `url`.
    ///
    /// # Errors
    /// When `url` is not an http(s) URL (the message names `STREAMGUARD_ALERT_WEBHOOK`).
    pub fn new(http: reqwest::Client, url: &str) -> Result<Self, String> {
        Ok(Self {
            http,
            url: parse_url("STREAMGUARD_ALERT_WEBHOOK", url)?,
        })
    }
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        post(&self.http, &self.url, m).await
    }
}

/// Parses an http(s) URL, naming `setting` in the error.
pub(super) fn parse_url(setting: &str, url: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        _ => Err(format!("{setting} expects an http(s) URL; got {url:?}")),
    }
}

/// POSTs `body` as JSON; a non-2xx answer or a network failure is a [`SendError`] with
/// the status and the start of the answer.
pub(super) async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: &impl Serialize,
) -> Result<(), SendError> {
    let response = http
        .post(url.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| SendError(format!("POST {}: {e}", url.host_str().unwrap_or("?"))))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(SendError(format!(
        "POST {} answered {status}: {}",
        url.host_str().unwrap_or("?"),
        text.chars().take(200).collect::<String>()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("X", "https://hooks.example/T1").is_ok());
        assert!(parse_url("X", "ftp://x").unwrap_err().contains("X expects"));
        assert!(parse_url("X", "not a url").is_err());
    }
}
