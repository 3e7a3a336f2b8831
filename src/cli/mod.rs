//! The command line: `streamguard [serve|migrate|openapi|healthcheck|demo backfill|bigquery
//! check]`, a thin layer over the library. Each command parses its flags, starts logging
//! when it needs it, and calls one entry point: [`crate::App`] for `serve`,
//! [`crate::store::Store::migrate`] for `migrate`, [`crate::http::openapi::spec_json`] for
//! `openapi`, the [`demo`] client program and the [`bigquery`] checks.

pub mod bigquery;
pub mod demo;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseArgs, ServeArgs, Settings};
use crate::store::Store;
use crate::telemetry::{self, LogFormat};
use crate::App;

/// `streamguard` — exactly-once BigQuery backfills.
#[derive(Debug, Parser)]
#[command(name = "streamguard", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service and the scheduler (the default).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Demonstrations against a running service.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// BigQuery tools.
    #[command(subcommand)]
    Bigquery(BigqueryCommand),
    /// Print the OpenAPI document of the HTTP API (JSON) and exit:
    /// `streamguard openapi > openapi/openapi.json`.
    Openapi,
    /// GET a running service's `/healthz`; exit 0 when it answers 200, 1 otherwise
    /// (the container's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

/// Flags of `streamguard healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The URL to probe.
    #[arg(
        long,
        env = "STREAMGUARD_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8080/healthz"
    )]
    pub url: String,
}

/// BigQuery tools.
#[derive(Debug, Subcommand)]
pub enum BigqueryCommand {
    /// Checks the credentials, the project and (with `--table`) that the table exists and
    /// is writable, with dry runs only; prints what is wrong in plain words. Exits 1 when
    /// something is wrong.
    Check(bigquery::CheckArgs),
}

/// Demonstrations.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Replays the seed's backfill incident (89 games, 56 still in the streaming buffer)
    /// against a running service and follows it until every game has landed or given up.
    Backfill(demo::BackfillArgs),
}

/// Parses the command line and runs the command.
///
/// # Errors
/// What the command failed at, for `main` to print.
pub async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        None => serve(&ServeArgs::from_env()).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Migrate(db)) => migrate(&db).await,
        Some(Command::Demo(DemoCommand::Backfill(args))) => demo::backfill(args).await,
        Some(Command::Bigquery(BigqueryCommand::Check(args))) => {
            let ok = bigquery::check(&args).await;
            std::process::exit(if ok { 0 } else { 1 })
        }
        Some(Command::Openapi) => {
            use std::io::Write;
            // A reader that stops early (`streamguard openapi | head`) is not an error.
            match std::io::stdout().write_all(crate::http::openapi::spec_json().as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Some(Command::Healthcheck(args)) => healthcheck(&args.url).await,
    }
}

/// `streamguard serve`: the service until Ctrl-C or SIGTERM.
async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args).map_err(anyhow::Error::msg)?;
    telemetry::init(settings.log_format);
    let app = App::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

/// `streamguard migrate`.
async fn migrate(db: &DatabaseArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    let store = Store::connect(&db.database_url, 2)
        .await
        .context("connecting to Postgres at DATABASE_URL")?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!(database = %crate::store::database_name(&db.database_url), "migrations applied");
    Ok(())
}

/// GETs `url` with a 5-second timeout; an error unless it answers 200. The container's
/// HEALTHCHECK runs this, so the runtime image needs no curl.
async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::OK,
        "GET {url} answered {}",
        response.status()
    );
    Ok(())
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
    shutdown.cancel();
}
