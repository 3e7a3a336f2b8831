//! The flags of `streamguard serve` and the tools, each with its environment variable
//! (`STREAMGUARD_*`; a flag wins over its variable). Defaults are the constants of the
//! part that owns the setting, so each is written once; the value parsers are the generic
//! ones of [`super::parse`], which name the variable when they refuse a value.
//!
//! Adding a setting: a field on the owning part's settings type with its default constant,
//! a flag here using that constant, and one line in [`super::Settings::from_args`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser};
use humantime::Duration as Span;

use super::parse::{Fraction, Integer, Parsed, Span as SpanParser, Switch};
use super::parse::{MAX_LONG_DURATION, MAX_SHORT_DURATION};
use super::Delays;
use crate::domain::batch::BatchLimits;
use crate::domain::breaker::{BreakerScope, BreakerSettings};
use crate::domain::retry::{DEFAULT_JITTER, DEFAULT_MAX_ATTEMPTS};
use crate::http::auth::{DEFAULT_ALLOW_ANONYMOUS, DEFAULT_DOCS_PUBLIC, DEFAULT_METRICS_PUBLIC};
use crate::notify::email::{SmtpTls, DEFAULT_FROM, DEFAULT_PORT};
use crate::notify::AlertSettings;
use crate::scheduler as sched;
use crate::store::jobs::GroupBounds;
use crate::store::DEFAULT_DATABASE_URL;
use crate::telemetry::LogFormat;
use crate::warehouse::bigquery as bq;
use crate::warehouse::emulator::{BufferTime, ConflictScope, EmulatorSettings};
use crate::warehouse::faults::Faults;

/// A `humantime` duration for a flag's default.
fn span(d: std::time::Duration) -> Span {
    d.into()
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres URL; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Where BigQuery is and how to reach it. Setting the project switches the service from
/// the emulator to BigQuery.
#[derive(Debug, Clone, Args)]
pub struct BigQueryArgs {
    /// The GCP project that runs (and pays for) the service's BigQuery jobs; setting it
    /// makes BigQuery the warehouse instead of the emulator.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_PROJECT")]
    pub bigquery_project: Option<String>,

    /// BigQuery location jobs run in, e.g. `US`, `EU`, `us-central1` (default: BigQuery
    /// picks it from the tables).
    #[arg(long, env = "STREAMGUARD_BIGQUERY_LOCATION")]
    pub bigquery_location: Option<String>,

    /// BigQuery REST endpoint (an emulator or test server serves `/projects/...` under it).
    #[arg(long, env = "STREAMGUARD_BIGQUERY_ENDPOINT", default_value = bq::DEFAULT_ENDPOINT)]
    pub bigquery_endpoint: String,

    /// A service-account (or `authorized_user`) key file; when unset, Application Default
    /// Credentials (gcloud's file, else the metadata server).
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,

    /// Timeout of each BigQuery HTTP request.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_TIMEOUT", default_value_t = span(bq::DEFAULT_REQUEST_TIMEOUT), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub bigquery_timeout: Span,

    /// Connect timeout of BigQuery HTTP requests.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT", default_value_t = span(bq::DEFAULT_CONNECT_TIMEOUT), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub bigquery_connect_timeout: Span,

    /// Longest wait for one BigQuery job; a job still running then is cancelled and retried.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_JOB_TIMEOUT", default_value_t = span(bq::DEFAULT_JOB_TIMEOUT), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub bigquery_job_timeout: Span,
}

/// Flags of `streamguard serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "STREAMGUARD_LISTEN", default_value_t = Listen(crate::http::DEFAULT_LISTEN), value_parser = Parsed::<Listen>::new())]
    pub listen: Listen,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub bigquery: BigQueryArgs,

    /// Waits before each retry, comma-separated (`5m,10m,20m`, `500ms`), each at most 7 days;
    /// the last repeats.
    /// Default `5m,10m,20m,40m` against BigQuery, `5s,10s,20s,40s` against the emulator.
    #[arg(long, env = "STREAMGUARD_RETRY_DELAYS", value_parser = Parsed::<Delays>::new())]
    pub retry_delays: Option<Delays>,

    /// Attempts in all (first try included) before a unit is given up.
    #[arg(long, env = "STREAMGUARD_RETRY_MAX_ATTEMPTS", default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = Integer::new(1u32, 1000))]
    pub retry_max_attempts: u32,

    /// Jitter fraction in [0, 1): each delay is multiplied by a factor in [1, 1+j] (spread upward, never early); 0 disables.
    #[arg(long, env = "STREAMGUARD_RETRY_JITTER", default_value_t = DEFAULT_JITTER, value_parser = Fraction)]
    pub retry_jitter: f64,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub emulator: EmulatorArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub scheduler: SchedulerArgs,

    /// Longest `?wait=` a caller may ask for on POST /v1/batches.
    #[arg(long, env = "STREAMGUARD_MAX_WAIT", default_value_t = span(crate::http::DEFAULT_MAX_WAIT), value_parser = SpanParser::any(MAX_SHORT_DURATION))]
    pub max_wait: Span,

    /// Request body limit in bytes, from 1 KiB to 1 GiB.
    #[arg(long, env = crate::http::MAX_BODY_BYTES_VAR, default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES, value_parser = Integer::new(1024usize, 1024 * 1024 * 1024))]
    pub max_body_bytes: usize,

    /// Log format: `text` or `json`.
    #[arg(long, env = "STREAMGUARD_LOG_FORMAT", default_value_t = LogFormat::default(), value_parser = Parsed::<LogFormat>::new())]
    pub log_format: LogFormat,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub access: AccessArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub breaker: BreakerArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub alerts: AlertArgs,
}

/// A listen address (`host:port`), parsed with a message that shows the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map(Self)
            .map_err(|_| "host:port, like 127.0.0.1:8080 or 0.0.0.0:8080".into())
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<SocketAddr> for Listen {
    fn from(a: SocketAddr) -> Self {
        Self(a)
    }
}

/// The emulator's flags (`STREAMGUARD_EMULATOR_*`), used when no BigQuery project is set.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// How long streamed rows stay in the emulator's buffer: a duration (`30s`) or a range (`20s..60s`).
    #[arg(long, env = "STREAMGUARD_EMULATOR_BUFFER", default_value_t = EmulatorSettings::DEFAULT.buffer, value_parser = Parsed::<BufferTime>::new())]
    pub emulator_buffer: BufferTime,

    /// What buffered rows block a replace in the emulator: `partition`, `row` or `table`.
    #[arg(long, env = "STREAMGUARD_EMULATOR_CONFLICT_SCOPE", default_value_t = EmulatorSettings::DEFAULT.conflict_scope, value_parser = Parsed::<ConflictScope>::new())]
    pub emulator_conflict_scope: ConflictScope,

    /// Latency added to each emulator replace (imitates BigQuery's seconds-long DML).
    #[arg(long, env = "STREAMGUARD_EMULATOR_LATENCY", default_value_t = span(EmulatorSettings::DEFAULT.latency), value_parser = SpanParser::any(MAX_SHORT_DURATION))]
    pub emulator_latency: Span,

    /// Faults the emulator injects per statement, e.g.
    /// `concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,latency=0.5s..2s,seed=42`
    /// (rates from 0 to 1, adding up to at most 1; `seed` makes the draws repeatable).
    #[arg(long, env = "STREAMGUARD_EMULATOR_FAULTS", default_value = "none", value_parser = Parsed::<Faults>::new())]
    pub emulator_faults: Faults,
}

/// The scheduler's flags.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// How long a claimed job's lease lasts without renewal.
    #[arg(long, env = "STREAMGUARD_LEASE", default_value_t = span(sched::DEFAULT_LEASE), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub lease: Span,

    /// Fallback poll interval of the scheduler.
    #[arg(long, env = "STREAMGUARD_POLL_INTERVAL", default_value_t = span(sched::DEFAULT_POLL_INTERVAL), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub poll_interval: Span,

    /// Attempts in flight per replica.
    #[arg(long, env = "STREAMGUARD_CONCURRENCY", default_value_t = sched::DEFAULT_CONCURRENCY, value_parser = Integer::new(1u32, 1024))]
    pub concurrency: u32,

    /// Statements in flight per BigQuery table, across all replicas.
    #[arg(long, env = "STREAMGUARD_MAX_PER_TABLE", default_value_t = sched::DEFAULT_MAX_PER_TABLE, value_parser = Integer::new(1u32, 100))]
    pub max_per_table: u32,

    /// Keys (write units) one statement may carry.
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_KEYS", default_value_t = GroupBounds::DEFAULT.max_keys, value_parser = Integer::new(1u32, 100_000))]
    pub group_max_keys: u32,

    /// Bytes of row JSON one statement may carry (BigQuery's 10 MB request limit includes
    /// the parameters).
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_BYTES", default_value_t = GroupBounds::DEFAULT.max_bytes, value_parser = Integer::new(1024u64, 10_000_000))]
    pub group_max_bytes: u64,

    /// Partitions one statement may touch (BigQuery's per-job limit is 4000).
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_PARTITIONS", default_value_t = GroupBounds::DEFAULT.max_partitions, value_parser = Integer::new(1u32, 4_000))]
    pub group_max_partitions: u32,

    /// How long the units of batches posted in quick succession wait to share a statement.
    #[arg(long, env = "STREAMGUARD_LINGER", default_value_t = span(sched::DEFAULT_LINGER), value_parser = SpanParser::any(std::time::Duration::from_secs(60)))]
    pub linger: Span,

    /// How long a round waits for one statement's answer before its fate is unknown.
    #[arg(long, env = "STREAMGUARD_STATEMENT_TIMEOUT", default_value_t = span(sched::DEFAULT_STATEMENT_TIMEOUT), value_parser = SpanParser::positive(MAX_SHORT_DURATION))]
    pub statement_timeout: Span,

    /// How long shutdown waits for in-flight attempts and requests.
    #[arg(long, env = "STREAMGUARD_SHUTDOWN_TIMEOUT", default_value_t = span(sched::DEFAULT_SHUTDOWN_TIMEOUT), value_parser = SpanParser::any(MAX_SHORT_DURATION))]
    pub shutdown_timeout: Span,

    /// Run the scheduler in this process (turn off for an API-only replica).
    #[arg(long, env = "STREAMGUARD_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set, value_parser = Switch)]
    pub scheduler: bool,
}

/// Access control flags (see [`crate::http::auth`]).
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// File of token lines `name scope[,scope] sha256-of-token` (scopes: write, read, admin).
    #[arg(long, env = "STREAMGUARD_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Token lines of the same form, separated by newlines or `;`.
    #[arg(long, env = "STREAMGUARD_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
    /// Serve without tokens on a non-loopback address (everyone may do everything).
    #[arg(long, env = "STREAMGUARD_ALLOW_ANONYMOUS", default_value_t = DEFAULT_ALLOW_ANONYMOUS, action = clap::ArgAction::Set, value_parser = Switch)]
    pub allow_anonymous: bool,
    /// `/docs` and `/openapi.json` need no token; `false` puts them behind the `read` scope.
    #[arg(long, env = "STREAMGUARD_DOCS_PUBLIC", default_value_t = DEFAULT_DOCS_PUBLIC, action = clap::ArgAction::Set, value_parser = Switch)]
    pub docs_public: bool,
    /// `/metrics` needs no token; by default it needs the `read` scope.
    #[arg(long, env = "STREAMGUARD_METRICS_PUBLIC", default_value_t = DEFAULT_METRICS_PUBLIC, action = clap::ArgAction::Set, value_parser = Switch)]
    pub metrics_public: bool,
}

/// Input limits (see [`BatchLimits`] for what each one measures).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Rows per batch.
    #[arg(long, env = BatchLimits::MAX_ROWS_VAR, default_value_t = BatchLimits::DEFAULT.max_rows, value_parser = Integer::new(1usize, 10_000_000))]
    pub max_rows: usize,
    /// Key columns per batch.
    #[arg(long, env = BatchLimits::MAX_KEY_COLUMNS_VAR, default_value_t = BatchLimits::DEFAULT.max_key_columns, value_parser = Integer::new(1usize, 64))]
    pub max_key_columns: usize,
    /// Bytes of one row's compact JSON.
    #[arg(long, env = BatchLimits::MAX_ROW_BYTES_VAR, default_value_t = BatchLimits::DEFAULT.max_row_bytes, value_parser = Integer::new(64usize, 100 * 1024 * 1024))]
    pub max_row_bytes: usize,
    /// Nesting levels of a row (the row is level 1); at most 100, as `serde_json` refuses
    /// documents nested deeper than 128 levels anyway.
    #[arg(long, env = BatchLimits::MAX_DEPTH_VAR, default_value_t = BatchLimits::DEFAULT.max_depth, value_parser = Integer::new(1usize, 100))]
    pub max_depth: usize,
    /// Characters of a column or nested field name; at most 300, BigQuery's own limit.
    #[arg(long, env = BatchLimits::MAX_NAME_CHARS_VAR, default_value_t = BatchLimits::DEFAULT.max_name_chars, value_parser = Integer::new(1usize, 300))]
    pub max_name_chars: usize,
    /// Characters of a string key or partition value.
    #[arg(long, env = BatchLimits::MAX_KEY_VALUE_CHARS_VAR, default_value_t = BatchLimits::DEFAULT.max_key_value_chars, value_parser = Integer::new(1usize, 1024 * 1024))]
    pub max_key_value_chars: usize,
}

/// Circuit-breaker flags (`STREAMGUARD_BREAKER_*`); defaults are the seed's
/// (`docs/architecture.md`, "Words").
#[derive(Debug, Clone, Args)]
pub struct BreakerArgs {
    /// What one breaker covers: `processor` (processor_name) or `table`.
    #[arg(long, env = "STREAMGUARD_BREAKER_SCOPE", default_value_t = BreakerScope::DEFAULT, value_parser = Parsed::<BreakerScope>::new())]
    pub breaker_scope: BreakerScope,
    /// Trips when the conflict share of the window is more than this fraction.
    #[arg(long, env = "STREAMGUARD_BREAKER_THRESHOLD", default_value_t = BreakerSettings::DEFAULT.threshold, value_parser = Fraction)]
    pub breaker_threshold: f64,
    /// ...over at least this many outcomes.
    #[arg(long, env = "STREAMGUARD_BREAKER_MIN_OUTCOMES", default_value_t = BreakerSettings::DEFAULT.min_outcomes, value_parser = Integer::new(1u32, 10_000))]
    pub breaker_min_outcomes: u32,
    /// The window: the last this many outcomes...
    #[arg(long, env = "STREAMGUARD_BREAKER_WINDOW_OUTCOMES", default_value_t = BreakerSettings::DEFAULT.window_outcomes, value_parser = Integer::new(1u32, 10_000))]
    pub breaker_window_outcomes: u32,
    /// ...no older than this.
    #[arg(long, env = "STREAMGUARD_BREAKER_WINDOW", default_value_t = span(BreakerSettings::DEFAULT.window), value_parser = SpanParser::positive(MAX_LONG_DURATION))]
    pub breaker_window: Span,
    /// How long a trip stays open before one probe is let through; doubles after each
    /// failed probe. Default `30m` (the seed's) against BigQuery, `30s` against the emulator.
    #[arg(long, env = "STREAMGUARD_BREAKER_OPEN_FOR", value_parser = SpanParser::positive(MAX_LONG_DURATION))]
    pub breaker_open_for: Option<Span>,
    /// Cap of the doubling open time. Default `4h` against BigQuery, `4m` against the emulator.
    #[arg(long, env = "STREAMGUARD_BREAKER_MAX_OPEN_FOR", value_parser = SpanParser::positive(MAX_LONG_DURATION))]
    pub breaker_max_open_for: Option<Span>,
}

/// Alert flags (`STREAMGUARD_ALERT_*`). With no channel set, alerts are only logged.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Slack incoming-webhook URL.
    #[arg(long, env = "STREAMGUARD_ALERT_SLACK_WEBHOOK")]
    pub alert_slack_webhook: Option<String>,
    /// Generic JSON webhook URL.
    #[arg(long, env = "STREAMGUARD_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
    /// SMTP server host; e-mail alerts are on when set.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_HOST")]
    pub alert_smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_PORT", default_value_t = DEFAULT_PORT, value_parser = Integer::new(1u16, u16::MAX))]
    pub alert_smtp_port: u16,
    /// SMTP security: `starttls`, `tls` or `none` (a local relay or test sink only).
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_TLS", default_value_t = SmtpTls::DEFAULT, value_parser = Parsed::<SmtpTls>::new())]
    pub alert_smtp_tls: SmtpTls,
    /// SMTP user name.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_USERNAME")]
    pub alert_smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_PASSWORD", hide_env_values = true)]
    pub alert_smtp_password: Option<String>,
    /// Sender address.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_FROM", default_value = DEFAULT_FROM)]
    pub alert_smtp_from: String,
    /// Recipients, comma-separated.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_TO", value_delimiter = ',')]
    pub alert_smtp_to: Vec<String>,
    /// At most one message per channel, scope and kind in this time.
    #[arg(long, env = "STREAMGUARD_ALERT_RATE_WINDOW", default_value_t = span(AlertSettings::DEFAULT.rate_window), value_parser = SpanParser::any(MAX_SHORT_DURATION))]
    pub alert_rate_window: Span,
    /// First retry delay of a failed send (doubles, capped at 10 minutes).
    #[arg(long, env = "STREAMGUARD_ALERT_RETRY", default_value_t = span(AlertSettings::DEFAULT.retry_base), value_parser = SpanParser::any(MAX_SHORT_DURATION))]
    pub alert_retry: Span,
    /// Queue the daily health-check digest.
    #[arg(long, env = "STREAMGUARD_ALERT_DAILY_DIGEST", default_value_t = AlertSettings::DEFAULT.daily_digest, action = clap::ArgAction::Set, value_parser = Switch)]
    pub alert_daily_digest: bool,
}

impl ServeArgs {
    /// The serve flags from the environment alone (for `streamguard` without a subcommand).
    pub fn from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(["streamguard"]).args
    }
}
