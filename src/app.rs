//! Start-up: connect and migrate Postgres, choose the warehouse, bind the listener, and run
//! the HTTP server and the scheduler until shutdown. Tests build the very same [`App`] on
//! port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::{self, AppState};
use crate::notify::Notifier;
use crate::ops::Ops;
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::{Store, StoreConfig};
use crate::warehouse::bigquery::BigQuery;
use crate::warehouse::emulator::Emulator;
use crate::warehouse::Warehouse;

/// A built service: listener bound, database migrated, not yet serving.
pub struct App {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    scheduler: Option<Arc<Scheduler>>,
    notifier: Arc<Notifier>,
    summary: Summary,
    /// How long shutdown waits for in-flight requests (the scheduler's shutdown timeout).
    drain: std::time::Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("address", &self.address)
            .field("state", &self.state)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// What the start-up log line reports.
#[derive(Debug)]
struct Summary {
    retry_delays: Vec<std::time::Duration>,
    max_attempts: u32,
    give_up_after: std::time::Duration,
    emulator_buffer: crate::warehouse::emulator::BufferTime,
    breaker_scope: crate::domain::breaker::BreakerScope,
    breaker_open_for: std::time::Duration,
    alert_channels: Vec<String>,
}

fn summary(s: &Settings) -> Summary {
    Summary {
        retry_delays: s.retry.delays().to_vec(),
        max_attempts: s.retry.max_attempts(),
        give_up_after: s.retry.horizon(),
        emulator_buffer: s.emulator.buffer,
        breaker_scope: s.breaker_scope,
        breaker_open_for: s.breaker.open_for,
        alert_channels: s.alerts.channel_names(),
    }
}

impl App {
    /// Connects to the configured database (creating it if missing), applies migrations,
    /// and binds the listener.
    ///
    /// # Errors
    /// When no token is configured on a non-loopback address (see
    /// [`http::auth::check_exposure`]), Postgres is unreachable, a migration fails, or the
    /// address cannot be bound; the message says which.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Refuse an open service before touching the database (checked again below for
        // callers of build_with_store).
        http::auth::check_exposure(&settings.http.access, settings.listen)
            .map_err(anyhow::Error::msg)?;
        let store = Store::connect(&settings.database_url, settings.scheduler.concurrency + 10)
            .await
            .with_context(|| {
                format!(
                    "connecting to Postgres at DATABASE_URL (database {:?})",
                    crate::store::database_name(&settings.database_url)
                )
            })?;
        Self::build_with_store(settings, store).await
    }

    /// Like [`App::build`], over an existing store (tests pass the pool `#[sqlx::test]` made).
    ///
    /// # Errors
    /// When no token is configured and the address is not loopback (unless
    /// `STREAMGUARD_ALLOW_ANONYMOUS=true`; see [`http::auth::check_exposure`]), when a
    /// migration fails, the address cannot be bound, or the BigQuery credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`) cannot be read; an unreachable BigQuery is only
    /// logged (and reported by `/readyz`).
    pub async fn build_with_store(settings: Settings, store: Store) -> anyhow::Result<Self> {
        http::auth::check_exposure(&settings.http.access, settings.listen)
            .map_err(anyhow::Error::msg)?;
        store.migrate().await.context("applying migrations")?;
        warn_if_clocks_differ(&store).await;
        let store = store.with_config(StoreConfig {
            breaker: settings.breaker,
            breaker_scope: settings.breaker_scope,
            alert_channels: settings.alerts.channel_names(),
            retry_horizon: settings.retry.horizon(),
        });
        let channels = settings.alerts.channels().map_err(anyhow::Error::msg)?;
        let notifier = Arc::new(Notifier::new(
            store.clone(),
            channels,
            settings.alerts.clone(),
        ));
        let (warehouse, emulator): (Arc<dyn Warehouse>, Option<Emulator>) = match &settings.bigquery
        {
            Some(bq) => {
                let bigquery = BigQuery::connect(bq.clone()).await.map_err(|e| {
                    anyhow::anyhow!(
                        "BigQuery (STREAMGUARD_BIGQUERY_PROJECT={}): {e}",
                        bq.project
                    )
                })?;
                // Reachability is reported, not fatal: batches are durable in Postgres and
                // land once BigQuery answers; /readyz says what is wrong meanwhile.
                match bigquery.readiness().await {
                    Ok(()) => {
                        tracing::info!(project = %bq.project, endpoint = %bq.endpoint, "BigQuery reachable")
                    }
                    Err(problem) => {
                        tracing::error!(project = %bq.project, %problem, "BigQuery is not usable yet; /readyz reports it until it is")
                    }
                }
                (Arc::new(bigquery), None)
            }
            None => {
                let emulator = Emulator::new(store.pool().clone(), settings.emulator);
                (Arc::new(emulator.clone()), Some(emulator))
            }
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding STREAMGUARD_LISTEN={}", settings.listen))?;
        let address = listener.local_addr()?;
        let scheduler = settings.run_scheduler.then(|| {
            Arc::new(Scheduler::new(
                store.clone(),
                warehouse.clone(),
                settings.retry.clone(),
                SchedulerSettings {
                    replica: replica_name(address),
                    ..settings.scheduler.clone()
                },
            ))
        });
        let summary = summary(&settings);
        let drain = settings.scheduler.shutdown_timeout;
        let state = AppState {
            store: store.clone(),
            warehouse: warehouse.clone(),
            emulator,
            ops: Arc::new(Ops::new(
                store.clone(),
                warehouse.clone(),
                settings.limits,
                settings.retry,
                &settings.scheduler,
            )),
            settings: Arc::new(settings.http),
            shutdown: CancellationToken::new(),
            listen: scheduler
                .as_ref()
                .map_or_else(crate::scheduler::ListenStatus::off, |s| s.listen_status()),
        };
        Ok(Self {
            listener,
            address,
            state,
            scheduler,
            notifier,
            summary,
            drain,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state, for tests that reach the store directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP and runs the scheduler until `shutdown` is cancelled, then stops
    /// accepting requests and drains in-flight requests and attempts, each bounded by the
    /// shutdown timeout (`STREAMGUARD_SHUTDOWN_TIMEOUT`): requests still running then are
    /// dropped. Cancelling `shutdown` also cancels [`AppState::shutdown`], so waiting
    /// handlers can answer early.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let s = &self.summary;
        tracing::info!(
            address = %self.address,
            warehouse = self.state.warehouse.kind(),
            retry_delays = ?s.retry_delays,
            max_attempts = s.max_attempts,
            give_up_after = ?s.give_up_after,
            emulator_buffer = ?s.emulator_buffer,
            breaker_scope = ?s.breaker_scope,
            breaker_open_for = ?s.breaker_open_for,
            alert_channels = ?s.alert_channels,
            "streamguard listening"
        );
        let scheduler = self
            .scheduler
            .map(|s| tokio::spawn(s.run(shutdown.clone())));
        let notifier = tokio::spawn(self.notifier.run(shutdown.clone()));
        // Handlers see shutdown through the state's own token.
        let handlers = self.state.shutdown.clone();
        let linked = shutdown.clone();
        tokio::spawn(async move {
            linked.cancelled().await;
            handlers.cancel();
        });
        let drain = self.drain;
        let router = http::router(self.state);
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        // Graceful shutdown waits for every in-flight request; bound it, so a long `?wait=`
        // cannot keep the process alive past the shutdown timeout.
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain).await;
        };
        let served = tokio::select! {
            served = server => served,
            () = deadline => {
                tracing::warn!(timeout = ?drain, "requests still in flight after the shutdown timeout; dropping them");
                Ok(())
            }
        };
        if let Some(handle) = scheduler {
            handle.await.context("scheduler task panicked")?;
        }
        notifier.await.context("alert worker panicked")?;
        served.context("HTTP server failed")
    }
}

/// A replica's name: host name (from `HOSTNAME`) and port, unique per process on one host.
fn replica_name(address: SocketAddr) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}:{}", address.port(), std::process::id())
}

/// Logs a warning when this machine's clock and Postgres's differ by more than a second.
/// Every time the job table compares (due jobs, leases, retry times, holds, breakers) is on
/// Postgres's clock; this one only stamps logs and attempt rows, so a skew shows there.
async fn warn_if_clocks_differ(store: &Store) {
    let before = chrono::Utc::now();
    if store.clock().manual().is_some() {
        return;
    }
    let Ok(postgres) = store.now().await else {
        return;
    };
    let after = chrono::Utc::now();
    // Postgres read the clock somewhere between `before` and `after`.
    let skew = (postgres - (before + (after - before) / 2)).num_milliseconds();
    if skew.abs() > 1_000 {
        tracing::warn!(
            skew_ms = skew,
            "this machine's clock and Postgres's differ by more than a second; the job table runs on Postgres's, logs and attempt times on this one's"
        );
    }
}
