//! Logging: one `tracing` subscriber, text for people or JSON for log pipelines, filtered
//! by `RUST_LOG` (default `info` for streamguard, `warn` for the libraries). At `info` the
//! log holds decisions (units deferred, loaded, failed; breaker transitions; batches taken;
//! operator actions) and one line per changing request; reads (`GET`, `HEAD`) are logged at
//! `debug` (see `http::metrics::latency`). Text has ANSI colours only when standard output
//! is a terminal, so files and log collectors get plain lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn,streamguard=info,tower_http=info";

/// How log lines are written (`STREAMGUARD_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Lines for people (the default).
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl std::str::FromStr for LogFormat {
    /// The accepted words.
    type Err = String;

    /// `text` or `json`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("`text` or `json`".into()),
        }
    }
}

/// Installs the global subscriber. Calling it twice is harmless (the second call keeps
/// the first subscriber).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if format == LogFormat::Json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}
