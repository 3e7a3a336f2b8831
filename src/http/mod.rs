//! The HTTP API: per-resource routers merged here, with the middleware stack (request id,
//! tracing, timeout, body limit) and a problem+json fallback for unknown routes.
//!
//! | route | module |
//! | --- | --- |
//! | `POST /v1/batches`, `GET /v1/batches/{batch_id}` | [`batches`] |
//! | `GET /v1/conflicts/unresolved`, `/summary`, `/{conflict_id}` | [`conflicts`] |
//! | `GET /v1/breakers`, `/{scope}`, `POST /v1/breakers/{scope}/reset\|force-open\|disable` | [`breakers`] |
//! | `POST /v1/conflicts`, `/{id}/attempts\|resolve\|retry\|force`, `POST /v1/units/{id}/cancel` | [`operator`] |
//! | `GET /healthz`, `GET /readyz` | [`health`] |
//! | `GET /metrics` | [`metrics`] |
//! | `GET /v1/units[?state=]` | [`units`] |
//! | `GET /v1/conflicts` (filtered, cursor-paged list) | [`conflicts`] |
//! | `GET /v1/overview` | [`overview`] |
//! | `GET /`, `GET /console/...` (the operator console page) | [`console`] |
//! | `GET /v1/runs`, `GET /v1/runs/{run}` | [`runs`] |
//! | `GET /v1/statements/{job_id}` | [`statements`] |
//! | `POST /emulator/tables/{table}/insertAll`, `GET /emulator/tables/{table}/rows` | [`emulator`] (emulator only) |
//! | `POST /emulator/tables`, `GET /emulator/tables/{table}` | [`emulator_tables`] (emulator only) |
//! | `GET /openapi.json`, `GET /docs` | [`openapi`] |
//!
//! Every route sits behind [`auth::authorize`] (bearer tokens with scopes; the table of
//! what each route needs is in [`auth`]).

pub mod auth;
pub mod batches;
pub mod breakers;
pub mod conflicts;
pub mod console;
pub mod emulator;
pub mod emulator_faults;
pub mod emulator_tables;
mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod overview;
pub mod runs;
pub mod statements;
pub mod units;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::Actor;
pub use error::{Error, Problem, Result};

use crate::store::Store;
use crate::warehouse::emulator::Emulator;
use crate::warehouse::Warehouse;

/// The address to listen on unless set (`STREAMGUARD_LISTEN`).
pub const DEFAULT_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The longest `?wait=` on `POST /v1/batches` unless set (`STREAMGUARD_MAX_WAIT`).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// The variable that sets the request body limit, named by a 413.
pub const MAX_BODY_BYTES_VAR: &str = "STREAMGUARD_MAX_BODY_BYTES";
/// The request body limit in bytes unless set (`STREAMGUARD_MAX_BODY_BYTES`): 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How the HTTP layer itself behaves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The longest `?wait=` a caller may ask for on `POST /v1/batches`.
    pub max_wait: Duration,
    /// Request body limit, bytes.
    pub max_body_bytes: usize,
    /// Tokens and which endpoints are public.
    pub access: auth::AccessSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_wait: DEFAULT_MAX_WAIT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            access: auth::AccessSettings::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Postgres.
    pub store: Store,
    /// The warehouse the scheduler writes to (for `/readyz`).
    pub warehouse: Arc<dyn Warehouse>,
    /// The emulator, when it is the warehouse (its routes are mounted only then).
    pub emulator: Option<Emulator>,
    /// The HTTP layer's settings.
    pub settings: Arc<HttpSettings>,
    /// The operations (intake, processor reports, force) with the configured limits and
    /// retry policy.
    pub ops: Arc<crate::ops::Ops>,
    /// Cancelled when shutdown starts (SIGTERM, Ctrl-C, or the token given to
    /// [`crate::App::run_until_stopped`]): a handler that waits (`?wait=`) should stop
    /// waiting and answer with what it has. The server gives in-flight requests at most
    /// `STREAMGUARD_SHUTDOWN_TIMEOUT` after it is cancelled.
    pub shutdown: CancellationToken,
    /// The scheduler's LISTEN connection (for `/readyz` and `/metrics`).
    pub listen: crate::scheduler::ListenStatus,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("warehouse", &self.warehouse.kind())
            .field("settings", &self.settings)
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API with its middleware.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .merge(batches::router())
        .merge(conflicts::router())
        .merge(breakers::router())
        .merge(operator::router())
        .merge(units::router())
        .merge(runs::router())
        .merge(statements::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(overview::router())
        .merge(console::router());
    if state.emulator.is_some() {
        api = api.merge(emulator::router());
    }
    // Requests may wait up to max_wait for a first attempt; the timeout leaves room for that.
    let timeout = state.settings.max_wait + Duration::from_secs(30);
    api.fallback(|| async { Error::NotFound("no such route; see README for the API".into()) })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            Error::MethodNotAllowed(format!(
                "{} does not answer {method}; the `Allow` header lists the methods it does",
                uri.path()
            ))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(axum::middleware::from_fn(metrics::latency::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, actor = tracing::field::Empty)
        // The request log line is metrics::latency::track's: reads at debug, decisions at info.
        }).on_response(()))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
