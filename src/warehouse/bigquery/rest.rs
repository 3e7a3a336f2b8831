//! The HTTP calls the adapter makes, with its own `reqwest` client.
//!
//! Why not the crate's API methods: gcp-bigquery-client turns every non-2xx answer into
//! `BQError::ResponseError` by decoding the body into a struct whose `errors` field is
//! required, and drops the HTTP status; a body without `errors`, a non-string value in it,
//! or an HTML page from a proxy becomes a bare decode error with the status and message
//! lost (bigquery-facts A3, verified). The write path must classify exactly those answers
//! (streaming buffer vs. server error vs. access denied), so it keeps the status and the
//! raw body of every answer and hands them to [`super::classify`]. Everything else comes
//! from the crate: the `Authenticator` trait and the request models (`Job`,
//! `QueryRequest`, `QueryParameter…`). The client has request and connect timeouts (the
//! crate's default client has none, A2).
//!
//! Paths, relative to the endpoint (`https://bigquery.googleapis.com/bigquery/v2` by
//! default): `POST /projects/{p}/jobs` (jobs.insert), `GET /projects/{p}/jobs/{id}`
//! (jobs.get), `GET /projects/{p}/queries/{id}` (jobs.getQueryResults, to wait), `POST
//! /projects/{p}/jobs/{id}/cancel` (jobs.cancel), `POST /projects/{p}/queries`
//! (jobs.query, for dry runs), `GET /projects/{p}/datasets/{d}/tables/{t}` (tables.get).
//! Each call is sent once; what to do after a failure is the caller's decision.

use std::sync::Arc;
use std::time::Duration;

use gcp_bigquery_client::auth::Authenticator;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::classify::Failure;

/// An authenticated BigQuery REST client.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    auth: Arc<dyn Authenticator>,
    base: String,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// A client for `base` (no trailing slash) with the given timeouts.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend).
    pub fn new(
        base: &str,
        auth: Arc<dyn Authenticator>,
        request_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("streamguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            auth,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The endpoint this client talks to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A fresh access token.
    ///
    /// # Errors
    /// The token source's error, in words.
    pub async fn token(&self) -> Result<String, String> {
        self.auth
            .access_token()
            .await
            .map_err(|e| format!("could not get an access token: {e}"))
    }

    /// GETs `path` and decodes a 2xx body as `T`. Path segments are validated names
    /// (`TableRef` parts, our own job ids), all in `[A-Za-z0-9_-]`, so need no encoding.
    ///
    /// # Errors
    /// A [`Failure`]: the status and raw body of a non-2xx answer, or a transport failure.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Failure> {
        self.send::<(), T>(Method::GET, path, query, None).await
    }

    /// POSTs `body` as JSON to `path` and decodes a 2xx body as `T`.
    ///
    /// # Errors
    /// As [`Rest::get`].
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, Failure> {
        let token = self
            .token()
            .await
            .map_err(|message| Failure::Transport { message })?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(Failure::Http {
                status: status.as_u16(),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| Failure::Transport {
            message: format!(
                "BigQuery answered HTTP {status} with a body that does not decode ({e})"
            ),
        })
    }
}

fn transport(e: reqwest::Error) -> Failure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    Failure::Transport {
        message: format!("the request {what}: {e}"),
    }
}
