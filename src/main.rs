//! The `streamguard` binary: parse the command line, start logging, run the command.

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use streamguard::config::{BigqueryCommand, Cli, Command, DemoCommand, ServeArgs, Settings};
use streamguard::store::Store;
use streamguard::{telemetry, App};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&ServeArgs::from_env()).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::Migrate(db)) => {
            telemetry::init("text");
            let store = Store::connect(&db.database_url, 2)
                .await
                .context("connecting to Postgres at DATABASE_URL")?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!(database = %streamguard::store::database_name(&db.database_url), "migrations applied");
            Ok(())
        }
        Some(Command::Demo(DemoCommand::Backfill(args))) => streamguard::demo::backfill(args).await,
        Some(Command::Bigquery(BigqueryCommand::Check(args))) => {
            let ok = streamguard::warehouse::bigquery::check::main(&args).await;
            std::process::exit(if ok { 0 } else { 1 })
        }
        Some(Command::Openapi) => {
            print!("{}", streamguard::http::openapi::spec_json());
            Ok(())
        }
        Some(Command::Healthcheck(args)) => healthcheck(&args.url).await,
    }
}

/// GETs `url` with a 5-second timeout; an error unless it answers 200. The container's
/// HEALTHCHECK runs this, so the runtime image needs no curl.
async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
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

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args).map_err(anyhow::Error::msg)?;
    telemetry::init(&settings.log_format);
    let app = App::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
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
