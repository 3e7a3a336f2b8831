//! Credentials: where the adapter's OAuth access tokens come from.
//!
//! - `GOOGLE_APPLICATION_CREDENTIALS` names a key file: a service-account key
//!   (`"type": "service_account"`) or a user's `gcloud auth application-default login`
//!   file (`"type": "authorized_user"`);
//! - unset: Application Default Credentials — gcloud's well-known file
//!   (`~/.config/gcloud/application_default_credentials.json`) when it exists, else the
//!   metadata server of the GCE/GKE/Cloud Run instance
//!   (<https://cloud.google.com/docs/authentication/application-default-credentials>);
//! - a fixed token, for tests and embedding.
//!
//! Tokens are fetched and refreshed by `yup-oauth2` (the crate gcp-bigquery-client uses
//! and re-exports); the result is the crate's own [`Authenticator`] trait. The crate's
//! constructors for these authenticators are private to it (it only hands out whole
//! `Client`s), so they are rebuilt here in a few lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2;
use gcp_bigquery_client::yup_oauth2::authenticator::{
    ApplicationDefaultCredentialsTypes, Authenticator as YupAuthenticator,
};

/// The OAuth scope BigQuery needs (read and write).
pub const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// Where tokens come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A key file (`GOOGLE_APPLICATION_CREDENTIALS`): service account or authorized user.
    KeyFile(PathBuf),
    /// Application Default Credentials: gcloud's well-known file, else the metadata server.
    ApplicationDefault,
    /// A fixed bearer token (tests, or a token minted elsewhere); never refreshed.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            Self::ApplicationDefault => f.write_str("ApplicationDefault"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Words for messages: where the credentials come from and which setting changes it.
    pub fn describe(&self) -> String {
        match self {
            Self::KeyFile(p) => format!("the key file {} (GOOGLE_APPLICATION_CREDENTIALS)", p.display()),
            Self::ApplicationDefault => match well_known_file() {
                Some(p) if p.exists() => format!(
                    "Application Default Credentials from {} (set GOOGLE_APPLICATION_CREDENTIALS to use a key file instead)",
                    p.display()
                ),
                _ => "Application Default Credentials from the metadata server (GOOGLE_APPLICATION_CREDENTIALS is unset and gcloud's application-default file does not exist)".into(),
            },
            Self::Token(_) => "a fixed access token".into(),
        }
    }

    /// Builds the authenticator; each token request is bounded by `timeout`. Reads and
    /// parses a key file, but fetches no token.
    ///
    /// # Errors
    /// A sentence naming the file and the setting when the key file is missing or not a
    /// key, or when the HTTPS client for the token endpoint cannot be built (e.g. no CA
    /// certificates on the machine, bigquery-facts A2).
    pub async fn authenticator(&self, timeout: Duration) -> Result<Arc<dyn Authenticator>, String> {
        match self {
            Self::Token(t) => Ok(Arc::new(FixedToken(t.clone()))),
            Self::KeyFile(path) => key_file(path, timeout).await,
            Self::ApplicationDefault => match well_known_file() {
                Some(path) if path.exists() => key_file(&path, timeout).await,
                _ => {
                    let opts = yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default();
                    let built =
                        match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::builder(opts)
                            .await
                        {
                            ApplicationDefaultCredentialsTypes::InstanceMetadata(b) => {
                                b.with_timeout(timeout).build().await
                            }
                            ApplicationDefaultCredentialsTypes::ServiceAccount(b) => {
                                b.with_timeout(timeout).build().await
                            }
                        };
                    built
                        .map(|a| Arc::new(Yup(a)) as Arc<dyn Authenticator>)
                        .map_err(|e| format!("cannot set up the metadata-server credentials: {e}"))
                }
            },
        }
    }
}

/// gcloud's Application Default Credentials file.
fn well_known_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/gcloud/application_default_credentials.json"))
}

async fn key_file(path: &Path, timeout: Duration) -> Result<Arc<dyn Authenticator>, String> {
    let named = || {
        format!(
            "the key file {} (GOOGLE_APPLICATION_CREDENTIALS)",
            path.display()
        )
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", named()))?;
    let kind = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("{} is not JSON: {e}", named()))?
        .get("type")
        .and_then(|t| t.as_str().map(str::to_owned));
    let built = match kind.as_deref() {
        Some("service_account") => {
            let key = yup_oauth2::parse_service_account_key(&text)
                .map_err(|e| format!("{} is not a service-account key: {e}", named()))?;
            yup_oauth2::ServiceAccountAuthenticator::builder(key)
                .with_timeout(timeout)
                .build()
                .await
        }
        Some("authorized_user") => {
            let secret: yup_oauth2::authorized_user::AuthorizedUserSecret =
                serde_json::from_str(&text)
                    .map_err(|e| format!("{} is not an authorized-user file: {e}", named()))?;
            yup_oauth2::AuthorizedUserAuthenticator::builder(secret)
                .with_timeout(timeout)
                .build()
                .await
        }
        other => {
            return Err(format!(
                "{} has type {other:?}; expected \"service_account\" or \"authorized_user\"",
                named()
            ))
        }
    };
    built
        .map(|a| Arc::new(Yup(a)) as Arc<dyn Authenticator>)
        .map_err(|e| format!("cannot set up the token client for {}: {e}", named()))
}

/// The connector yup-oauth2's default HTTPS client uses.
type Connector =
    <yup_oauth2::DefaultHyperClientBuilder as yup_oauth2::HyperClientBuilder>::Connector;

/// A yup-oauth2 authenticator behind the crate's trait; tokens are cached and refreshed
/// by yup-oauth2.
#[derive(Clone)]
struct Yup(YupAuthenticator<Connector>);

#[async_trait]
impl Authenticator for Yup {
    async fn access_token(&self) -> Result<String, BQError> {
        self.0
            .token(&[SCOPE])
            .await?
            .token()
            .map(str::to_owned)
            .ok_or(BQError::NoToken)
    }
}

/// A fixed bearer token.
#[derive(Clone)]
pub struct FixedToken(pub String);

impl std::fmt::Debug for FixedToken {
    /// The token itself is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedToken(..)")
    }
}

#[async_trait]
impl Authenticator for FixedToken {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self.0.clone())
    }
}
