//! Settings: one typed struct, from command-line flags and `STREAMGUARD_*` environment
//! variables (flags win). An invalid value stops start-up with a message naming the
//! setting and the form it accepts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::batch::BatchLimits;
use crate::domain::breaker::{BreakerScope, BreakerSettings};
use crate::domain::retry::MAX_RETRY_DELAY;
use crate::domain::{ColumnName, RetryPolicy, TableRef};
use crate::http::auth::{AccessSettings, Tokens};
use crate::notify::email::{SmtpSettings, SmtpTls};
use crate::notify::AlertSettings;
use crate::store::jobs::GroupBounds;
use crate::warehouse::bigquery::{BigQuerySettings, Credentials, DEFAULT_ENDPOINT};
use crate::warehouse::emulator::{BufferTime, ConflictScope, EmulatorSettings};
use crate::warehouse::faults::Faults;

/// The default database: a local Postgres database named `streamguard` (created if missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/streamguard";

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
    /// something is.
    Check(CheckArgs),
}

/// Flags of `streamguard bigquery check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bigquery: BigQueryArgs,

    /// A table to check, `project.dataset.table`.
    #[arg(long, value_parser = parse_table)]
    pub table: Option<TableRef>,

    /// The table's key column(s) as processors send them (repeat for several); needed
    /// with `--table`.
    #[arg(long = "key-column", requires = "table", value_parser = parse_column)]
    pub key_columns: Vec<ColumnName>,

    /// The table's partition column, if processors send one.
    #[arg(long, requires = "table", value_parser = parse_column)]
    pub partition_column: Option<ColumnName>,
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
    #[arg(long, env = "STREAMGUARD_BIGQUERY_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub bigquery_endpoint: String,

    /// A service-account (or `authorized_user`) key file; when unset, Application Default
    /// Credentials (gcloud's file, else the metadata server).
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,

    /// Timeout of each BigQuery HTTP request.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_TIMEOUT", default_value = "30s", value_parser = parse_bq_timeout)]
    pub bigquery_timeout: Duration,

    /// Connect timeout of BigQuery HTTP requests.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_bq_connect_timeout)]
    pub bigquery_connect_timeout: Duration,

    /// Longest wait for one BigQuery job; a job still running then is cancelled and retried.
    #[arg(long, env = "STREAMGUARD_BIGQUERY_JOB_TIMEOUT", default_value = "10m", value_parser = parse_bq_job_timeout)]
    pub bigquery_job_timeout: Duration,
}

impl BigQueryArgs {
    /// The BigQuery settings, or `None` when no project is set (the emulator is used).
    ///
    /// # Errors
    /// A message naming the setting and the accepted form.
    pub fn settings(&self) -> Result<Option<BigQuerySettings>, String> {
        let Some(project) = &self.bigquery_project else {
            return Ok(None);
        };
        let project = project.trim();
        crate::domain::names::validate_project(project)
            .map_err(|e| format!("STREAMGUARD_BIGQUERY_PROJECT: {e}"))?;
        let location = match self.bigquery_location.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l) if l.len() <= 64 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => Some(l.to_owned()),
            Some(l) => return Err(format!("STREAMGUARD_BIGQUERY_LOCATION expects a BigQuery location like `US`, `EU` or `us-central1`; got {l:?}")),
        };
        let endpoint = self.bigquery_endpoint.trim().trim_end_matches('/');
        match reqwest::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => return Err(format!("STREAMGUARD_BIGQUERY_ENDPOINT expects an http(s) URL like {DEFAULT_ENDPOINT}; got {endpoint:?}")),
        }
        let credentials = match &self.google_application_credentials {
            Some(p) if !p.as_os_str().is_empty() => Credentials::KeyFile(p.clone()),
            _ => Credentials::ApplicationDefault,
        };
        Ok(Some(BigQuerySettings {
            project: project.to_owned(),
            location,
            endpoint: endpoint.to_owned(),
            credentials,
            request_timeout: self.bigquery_timeout,
            connect_timeout: self.bigquery_connect_timeout,
            job_timeout: self.bigquery_job_timeout,
        }))
    }
}

/// Demonstrations.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Replays the seed's backfill incident (89 games, 56 still in the streaming buffer)
    /// against a running service and follows it until every game has landed or given up.
    Backfill(crate::demo::BackfillArgs),
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres URL; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Flags of `streamguard serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "STREAMGUARD_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub bigquery: BigQueryArgs,

    /// Waits before each retry, comma-separated (`5m,10m,20m`, `500ms`), each at most 7 days;
    /// the last repeats.
    /// Default `5m,10m,20m,40m` against BigQuery, `5s,10s,20s,40s` against the emulator.
    #[arg(long, env = "STREAMGUARD_RETRY_DELAYS", value_parser = parse_delays)]
    pub retry_delays: Option<Delays>,

    /// Attempts in all (first try included) before a unit is given up, 1 to 1000.
    #[arg(long, env = "STREAMGUARD_RETRY_MAX_ATTEMPTS", default_value_t = 8, value_parser = parse_attempts)]
    pub retry_max_attempts: u32,

    /// Jitter fraction in [0, 1): each delay is multiplied by a factor in [1, 1+j] (spread upward, never early); 0 disables.
    #[arg(long, env = "STREAMGUARD_RETRY_JITTER", default_value_t = 0.1, value_parser = parse_jitter)]
    pub retry_jitter: f64,

    /// How long streamed rows stay in the emulator's buffer: a duration (`30s`) or a range (`20s..60s`).
    #[arg(long, env = "STREAMGUARD_EMULATOR_BUFFER", default_value = "10s..30s", value_parser = parse_buffer)]
    pub emulator_buffer: BufferTime,

    /// What buffered rows block a replace in the emulator: `partition`, `row` or `table`.
    #[arg(long, env = "STREAMGUARD_EMULATOR_CONFLICT_SCOPE", default_value = "partition", value_parser = parse_scope)]
    pub emulator_conflict_scope: ConflictScope,

    /// Latency added to each emulator replace (imitates BigQuery's seconds-long DML).
    #[arg(long, env = "STREAMGUARD_EMULATOR_LATENCY", default_value = "0s", value_parser = parse_latency)]
    pub emulator_latency: Duration,

    /// Faults the emulator injects per statement, e.g.
    /// `concurrent_dml=0.1,quota_exceeded=0.05,transient=0.05,lost_answer=0.02,latency=0.5s..2s,seed=42`
    /// (rates from 0 to 1, adding up to at most 1; `seed` makes the draws repeatable).
    #[arg(long, env = "STREAMGUARD_EMULATOR_FAULTS", default_value = "none", value_parser = parse_faults)]
    pub emulator_faults: Faults,

    /// How long a claimed job's lease lasts without renewal.
    #[arg(long, env = "STREAMGUARD_LEASE", default_value = "30s", value_parser = parse_lease)]
    pub lease: Duration,

    /// Fallback poll interval of the scheduler.
    #[arg(long, env = "STREAMGUARD_POLL_INTERVAL", default_value = "1s", value_parser = parse_poll)]
    pub poll_interval: Duration,

    /// Attempts in flight per replica.
    #[arg(long, env = "STREAMGUARD_CONCURRENCY", default_value_t = 8, value_parser = parse_concurrency)]
    pub concurrency: u32,

    /// Statements in flight per BigQuery table, across all replicas.
    #[arg(long, env = "STREAMGUARD_MAX_PER_TABLE", default_value_t = 1, value_parser = parse_per_table)]
    pub max_per_table: u32,

    /// Keys (write units) one statement may carry, from 1 to 100000.
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_KEYS", default_value_t = DEFAULT_GROUP.max_keys, value_parser = parse_group_keys)]
    pub group_max_keys: u32,

    /// Bytes of row JSON one statement may carry, from 1024 to 10000000 (BigQuery's 10 MB
    /// request limit includes the parameters).
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_BYTES", default_value_t = DEFAULT_GROUP.max_bytes, value_parser = parse_group_bytes)]
    pub group_max_bytes: u64,

    /// Partitions one statement may touch, from 1 to 4000 (BigQuery's per-job limit).
    #[arg(long, env = "STREAMGUARD_GROUP_MAX_PARTITIONS", default_value_t = DEFAULT_GROUP.max_partitions, value_parser = parse_group_partitions)]
    pub group_max_partitions: u32,

    /// How long the units of batches posted in quick succession wait to share a statement.
    #[arg(long, env = "STREAMGUARD_LINGER", default_value = "200ms", value_parser = parse_linger)]
    pub linger: Duration,

    /// How long a round waits for one statement's answer before its fate is unknown.
    #[arg(long, env = "STREAMGUARD_STATEMENT_TIMEOUT", default_value = "15m", value_parser = parse_statement_timeout)]
    pub statement_timeout: Duration,

    /// Longest `?wait=` a caller may ask for on POST /v1/batches.
    #[arg(long, env = "STREAMGUARD_MAX_WAIT", default_value = "60s", value_parser = parse_max_wait)]
    pub max_wait: Duration,

    /// Request body limit in bytes, from 1024 (1 KiB) to 1073741824 (1 GiB).
    #[arg(long, env = "STREAMGUARD_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024, value_parser = parse_max_body_bytes)]
    pub max_body_bytes: usize,

    /// How long shutdown waits for in-flight attempts and requests.
    #[arg(long, env = "STREAMGUARD_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_shutdown)]
    pub shutdown_timeout: Duration,

    /// Log format: `text` or `json`.
    #[arg(long, env = "STREAMGUARD_LOG_FORMAT", default_value = "text", value_parser = parse_log_format)]
    pub log_format: String,

    /// Run the scheduler in this process (turn off for an API-only replica).
    #[arg(long, env = "STREAMGUARD_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set, value_parser = parse_scheduler)]
    pub scheduler: bool,

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

/// Access control flags (see [`crate::http::auth`]).
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// File of token lines `name scope[,scope] sha256-of-token` (scopes: write, read, admin).
    #[arg(long, env = "STREAMGUARD_TOKENS_FILE")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// Token lines of the same form, separated by newlines or `;`.
    #[arg(long, env = "STREAMGUARD_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
    /// Serve without tokens on a non-loopback address (everyone may do everything).
    #[arg(long, env = "STREAMGUARD_ALLOW_ANONYMOUS", default_value_t = false, action = clap::ArgAction::Set, value_parser = parse_allow_anonymous)]
    pub allow_anonymous: bool,
    /// `/docs` and `/openapi.json` need no token; `false` puts them behind the `read` scope.
    #[arg(long, env = "STREAMGUARD_DOCS_PUBLIC", default_value_t = true, action = clap::ArgAction::Set, value_parser = parse_docs_public)]
    pub docs_public: bool,
    /// `/metrics` needs no token; by default it needs the `read` scope.
    #[arg(long, env = "STREAMGUARD_METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set, value_parser = parse_metrics_public)]
    pub metrics_public: bool,
}

/// Input limits (see [`BatchLimits`] for what each one measures).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Rows per batch.
    #[arg(long, env = "STREAMGUARD_MAX_ROWS", default_value_t = 50_000, value_parser = parse_max_rows)]
    pub max_rows: usize,
    /// Key columns per batch.
    #[arg(long, env = "STREAMGUARD_MAX_KEY_COLUMNS", default_value_t = 16, value_parser = parse_max_key_columns)]
    pub max_key_columns: usize,
    /// Bytes of one row's compact JSON.
    #[arg(long, env = "STREAMGUARD_MAX_ROW_BYTES", default_value_t = 1024 * 1024, value_parser = parse_max_row_bytes)]
    pub max_row_bytes: usize,
    /// Nesting levels of a row (the row is level 1).
    #[arg(long, env = "STREAMGUARD_MAX_DEPTH", default_value_t = 15, value_parser = parse_max_depth)]
    pub max_depth: usize,
    /// Characters of a column or nested field name.
    #[arg(long, env = "STREAMGUARD_MAX_NAME_CHARS", default_value_t = 300, value_parser = parse_max_name_chars)]
    pub max_name_chars: usize,
    /// Characters of a string key or partition value.
    #[arg(long, env = "STREAMGUARD_MAX_KEY_VALUE_CHARS", default_value_t = 1024, value_parser = parse_max_key_value_chars)]
    pub max_key_value_chars: usize,
}

impl LimitArgs {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_rows: self.max_rows,
            max_key_columns: self.max_key_columns,
            max_row_bytes: self.max_row_bytes,
            max_depth: self.max_depth,
            max_name_chars: self.max_name_chars,
            max_key_value_chars: self.max_key_value_chars,
        }
    }
}

impl AccessArgs {
    /// Reads the tokens file and the variable into [`AccessSettings`].
    fn access(&self) -> Result<AccessSettings, String> {
        let mut tokens = Tokens::default();
        if let Some(path) = &self.tokens_file {
            let source = format!("STREAMGUARD_TOKENS_FILE={}", path.display());
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{source}: cannot read the file: {e}"))?;
            tokens.add(&text, &source)?;
            if tokens.is_empty() {
                return Err(format!("{source}: the file lists no token"));
            }
        }
        if let Some(text) = &self.tokens {
            tokens.add(text, "STREAMGUARD_TOKENS")?;
        }
        Ok(AccessSettings {
            tokens,
            allow_anonymous: self.allow_anonymous,
            docs_public: self.docs_public,
            metrics_public: self.metrics_public,
        })
    }
}

/// Circuit-breaker flags (`STREAMGUARD_BREAKER_*`); defaults are the seed's Phase 3.
#[derive(Debug, Clone, Args)]
pub struct BreakerArgs {
    /// What one breaker covers: `processor` (processor_name) or `table`.
    #[arg(long, env = "STREAMGUARD_BREAKER_SCOPE", default_value = "processor", value_parser = parse_breaker_scope)]
    pub breaker_scope: BreakerScope,
    /// Trips when the conflict share of the window is more than this fraction.
    #[arg(long, env = "STREAMGUARD_BREAKER_THRESHOLD", default_value_t = 0.5, value_parser = parse_threshold)]
    pub breaker_threshold: f64,
    /// ...over at least this many outcomes.
    #[arg(long, env = "STREAMGUARD_BREAKER_MIN_OUTCOMES", default_value_t = 3, value_parser = parse_min_outcomes)]
    pub breaker_min_outcomes: u32,
    /// The window: the last this many outcomes...
    #[arg(long, env = "STREAMGUARD_BREAKER_WINDOW_OUTCOMES", default_value_t = 20, value_parser = parse_window_outcomes)]
    pub breaker_window_outcomes: u32,
    /// ...no older than this.
    #[arg(long, env = "STREAMGUARD_BREAKER_WINDOW", default_value = "10m", value_parser = parse_breaker_window)]
    pub breaker_window: Duration,
    /// How long a trip stays open before one probe is let through; doubles after each
    /// failed probe. Default `30m` (the seed's) against BigQuery, `30s` against the emulator.
    #[arg(long, env = "STREAMGUARD_BREAKER_OPEN_FOR", value_parser = parse_open_for)]
    pub breaker_open_for: Option<Duration>,
    /// Cap of the doubling open time. Default `4h` against BigQuery, `4m` against the emulator.
    #[arg(long, env = "STREAMGUARD_BREAKER_MAX_OPEN_FOR", value_parser = parse_max_open_for)]
    pub breaker_max_open_for: Option<Duration>,
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
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_PORT", default_value_t = 587, value_parser = parse_smtp_port)]
    pub alert_smtp_port: u16,
    /// SMTP security: `starttls`, `tls` or `none` (a local relay or test sink only).
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_TLS", default_value = "starttls", value_parser = parse_smtp_tls)]
    pub alert_smtp_tls: SmtpTls,
    /// SMTP user name.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_USERNAME")]
    pub alert_smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_PASSWORD", hide_env_values = true)]
    pub alert_smtp_password: Option<String>,
    /// Sender address.
    #[arg(
        long,
        env = "STREAMGUARD_ALERT_SMTP_FROM",
        default_value = "streamguard@localhost"
    )]
    pub alert_smtp_from: String,
    /// Recipients, comma-separated.
    #[arg(long, env = "STREAMGUARD_ALERT_SMTP_TO", value_delimiter = ',')]
    pub alert_smtp_to: Vec<String>,
    /// At most one message per channel, scope and kind in this time.
    #[arg(long, env = "STREAMGUARD_ALERT_RATE_WINDOW", default_value = "60s", value_parser = parse_alert_rate_window)]
    pub alert_rate_window: Duration,
    /// First retry delay of a failed send (doubles, capped at 10 minutes).
    #[arg(long, env = "STREAMGUARD_ALERT_RETRY", default_value = "5s", value_parser = parse_alert_retry)]
    pub alert_retry: Duration,
    /// Queue the daily health-check digest.
    #[arg(long, env = "STREAMGUARD_ALERT_DAILY_DIGEST", default_value_t = false, action = clap::ArgAction::Set, value_parser = parse_daily_digest)]
    pub alert_daily_digest: bool,
}

/// A parsed retry-delay list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delays(pub Vec<Duration>);

/// The service's settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Postgres URL.
    pub database_url: String,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// The emulator's settings (used when no BigQuery project is configured).
    pub emulator: EmulatorSettings,
    /// BigQuery, when a project is configured (`STREAMGUARD_BIGQUERY_PROJECT`); the
    /// emulator otherwise.
    pub bigquery: Option<BigQuerySettings>,
    /// Lease of a claimed job.
    pub lease: Duration,
    /// Scheduler poll interval.
    pub poll_interval: Duration,
    /// Attempts in flight per replica.
    pub concurrency: u32,
    /// Statements in flight per table.
    pub max_per_table: u32,
    /// What one statement may carry.
    pub group_bounds: GroupBounds,
    /// How long a table's units wait to share a statement.
    pub linger: Duration,
    /// How long a round waits for a statement's answer.
    pub statement_timeout: Duration,
    /// Longest `?wait=`.
    pub max_wait: Duration,
    /// Request body limit, bytes.
    pub max_body_bytes: usize,
    /// Drain timeout on shutdown.
    pub shutdown_timeout: Duration,
    /// `text` or `json`.
    pub log_format: String,
    /// Whether this process runs a scheduler.
    pub scheduler: bool,
    /// Tokens and which endpoints are public.
    pub access: AccessSettings,
    /// Input limits of a batch.
    pub limits: BatchLimits,
    /// The breaker's thresholds and times.
    pub breaker: BreakerSettings,
    /// What one breaker covers.
    pub breaker_scope: BreakerScope,
    /// Alert channels and their pacing.
    pub alerts: AlertSettings,
}

/// Open time of a first trip when unset, against BigQuery: the seed's
/// `CIRCUIT_BREAKER_COOLDOWN = 1800` seconds.
pub const BIGQUERY_DEFAULT_OPEN_FOR: Duration = Duration::from_secs(1800);
/// Cap of the doubling open time against BigQuery.
pub const BIGQUERY_DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(4 * 3600);
/// Open time when unset, against the emulator: the seed's 30 minutes as seconds, the same
/// scaling as [`EMULATOR_DEFAULT_DELAYS`].
pub const EMULATOR_DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// Cap of the doubling open time against the emulator.
pub const EMULATOR_DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(240);

/// Delays used when `STREAMGUARD_RETRY_DELAYS` is unset and the warehouse is BigQuery:
/// the seed's 5, 10, 20 minutes, doubled once more.
pub const BIGQUERY_DEFAULT_DELAYS: [Duration; 4] = [
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1200),
    Duration::from_secs(2400),
];

/// Delays used when unset and the warehouse is the emulator, whose buffer lasts seconds
/// (`STREAMGUARD_EMULATOR_BUFFER`, default `10s..30s`): the same shape, in seconds, so the
/// demo shows the whole cycle in about a minute.
pub const EMULATOR_DEFAULT_DELAYS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(40),
];

impl Settings {
    /// Validates the flags into settings.
    ///
    /// # Errors
    /// A message naming the setting and the accepted form.
    pub fn from_args(args: &ServeArgs) -> Result<Self, String> {
        let bigquery = args.bigquery.settings()?;
        let breaker = breaker_settings(&args.breaker, args.lease, bigquery.is_some())?;
        let default_delays = if bigquery.is_some() {
            BIGQUERY_DEFAULT_DELAYS.to_vec()
        } else {
            EMULATOR_DEFAULT_DELAYS.to_vec()
        };
        let delays = args.retry_delays.clone().map_or(default_delays, |d| d.0);
        let retry = RetryPolicy::new(delays, args.retry_max_attempts, args.retry_jitter)
            .map_err(|e| format!("retry policy (STREAMGUARD_RETRY_*): {e}"))?;
        Ok(Self {
            listen: args.listen,
            database_url: args.database.database_url.clone(),
            retry,
            emulator: EmulatorSettings {
                buffer: args.emulator_buffer,
                conflict_scope: args.emulator_conflict_scope,
                latency: args.emulator_latency,
                faults: args.emulator_faults,
            },
            bigquery,
            lease: args.lease,
            poll_interval: args.poll_interval,
            concurrency: args.concurrency,
            max_per_table: args.max_per_table,
            group_bounds: GroupBounds {
                max_keys: args.group_max_keys,
                max_bytes: args.group_max_bytes,
                max_partitions: args.group_max_partitions,
            },
            linger: args.linger,
            statement_timeout: args.statement_timeout,
            max_wait: args.max_wait,
            max_body_bytes: args.max_body_bytes,
            shutdown_timeout: args.shutdown_timeout,
            log_format: args.log_format.clone(),
            scheduler: args.scheduler,
            access: args.access.access()?,
            limits: args.limits.limits(),
            breaker,
            breaker_scope: args.breaker.breaker_scope,
            alerts: alert_settings(&args.alerts, args.poll_interval)?,
        })
    }

    /// Settings for tests and embedding: every default, listening on `127.0.0.1:0`.
    pub fn for_tests(database_url: &str) -> Self {
        let args = ServeArgs::parse_from_env_free(database_url);
        Self::from_args(&args).expect("defaults are valid")
    }
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

    /// The defaults, ignoring the environment, with `listen` on port 0.
    fn parse_from_env_free(database_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            database: DatabaseArgs {
                database_url: database_url.to_owned(),
            },
            bigquery: BigQueryArgs {
                bigquery_project: None,
                bigquery_location: None,
                bigquery_endpoint: DEFAULT_ENDPOINT.into(),
                google_application_credentials: None,
                bigquery_timeout: Duration::from_secs(30),
                bigquery_connect_timeout: Duration::from_secs(10),
                bigquery_job_timeout: Duration::from_secs(600),
            },
            retry_delays: None,
            retry_max_attempts: 8,
            retry_jitter: 0.1,
            emulator_buffer: parse_buffer("10s..30s").expect("valid"),
            emulator_conflict_scope: ConflictScope::Partition,
            emulator_latency: Duration::ZERO,
            emulator_faults: Faults::default(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            max_per_table: 1,
            group_max_keys: DEFAULT_GROUP.max_keys,
            group_max_bytes: DEFAULT_GROUP.max_bytes,
            group_max_partitions: DEFAULT_GROUP.max_partitions,
            linger: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(15 * 60),
            max_wait: Duration::from_secs(60),
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            log_format: "text".into(),
            scheduler: true,
            access: AccessArgs {
                tokens_file: None,
                tokens: None,
                allow_anonymous: false,
                docs_public: true,
                metrics_public: false,
            },
            limits: LimitArgs {
                max_rows: 50_000,
                max_key_columns: 16,
                max_row_bytes: 1024 * 1024,
                max_depth: 15,
                max_name_chars: 300,
                max_key_value_chars: 1024,
            },
            breaker: BreakerArgs {
                breaker_scope: BreakerScope::Processor,
                breaker_threshold: 0.5,
                breaker_min_outcomes: 3,
                breaker_window_outcomes: 20,
                breaker_window: Duration::from_secs(600),
                breaker_open_for: None,
                breaker_max_open_for: None,
            },
            alerts: AlertArgs {
                alert_slack_webhook: None,
                alert_webhook: None,
                alert_smtp_host: None,
                alert_smtp_port: 587,
                alert_smtp_tls: SmtpTls::StartTls,
                alert_smtp_username: None,
                alert_smtp_password: None,
                alert_smtp_from: "streamguard@localhost".into(),
                alert_smtp_to: Vec::new(),
                alert_rate_window: Duration::from_secs(60),
                alert_retry: Duration::from_secs(5),
                alert_daily_digest: false,
            },
        }
    }
}

fn breaker_settings(
    a: &BreakerArgs,
    lease: Duration,
    bigquery: bool,
) -> Result<BreakerSettings, String> {
    let (default_open, default_max) = if bigquery {
        (BIGQUERY_DEFAULT_OPEN_FOR, BIGQUERY_DEFAULT_MAX_OPEN_FOR)
    } else {
        (EMULATOR_DEFAULT_OPEN_FOR, EMULATOR_DEFAULT_MAX_OPEN_FOR)
    };
    let open_for = a.breaker_open_for.unwrap_or(default_open);
    let max_open_for = a.breaker_max_open_for.unwrap_or(default_max).max(open_for);
    Ok(BreakerSettings {
        threshold: a.breaker_threshold,
        min_outcomes: a.breaker_min_outcomes,
        window_outcomes: a.breaker_window_outcomes.max(a.breaker_min_outcomes),
        window: a.breaker_window,
        open_for,
        max_open_for,
        // A job that finds the probe in flight looks again after one lease: by then the
        // probe has ended, or its permit can be handed on.
        probe_wait: lease,
    })
}

fn alert_settings(a: &AlertArgs, poll: Duration) -> Result<AlertSettings, String> {
    let smtp = match &a.alert_smtp_host {
        None => None,
        Some(host) => {
            let credentials = match (&a.alert_smtp_username, &a.alert_smtp_password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                (None, None) => None,
                _ => {
                    return Err("STREAMGUARD_ALERT_SMTP_USERNAME and STREAMGUARD_ALERT_SMTP_PASSWORD go together".into())
                }
            };
            let to: Vec<String> = a
                .alert_smtp_to
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if to.is_empty() {
                return Err(
                    "STREAMGUARD_ALERT_SMTP_TO needs at least one address when STREAMGUARD_ALERT_SMTP_HOST is set".into(),
                );
            }
            Some(SmtpSettings {
                host: host.clone(),
                port: a.alert_smtp_port,
                tls: a.alert_smtp_tls,
                credentials,
                from: a.alert_smtp_from.clone(),
                to,
            })
        }
    };
    let settings = AlertSettings {
        slack_webhook: a.alert_slack_webhook.clone(),
        webhook: a.alert_webhook.clone(),
        smtp,
        rate_window: a.alert_rate_window,
        retry_base: a.alert_retry.max(Duration::from_millis(10)),
        poll_interval: poll,
        daily_digest: a.alert_daily_digest,
    };
    // Validate URLs and addresses now, so a typo stops start-up.
    settings.channels()?;
    Ok(settings)
}

fn parse_breaker_scope(s: &str) -> Result<BreakerScope, String> {
    match s.trim() {
        "processor" | "processor_name" => Ok(BreakerScope::Processor),
        "table" => Ok(BreakerScope::Table),
        _ => Err(format!(
            "STREAMGUARD_BREAKER_SCOPE expects `processor` or `table`; got {s:?}"
        )),
    }
}
fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if (0.0..1.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "STREAMGUARD_BREAKER_THRESHOLD expects a fraction in [0, 1), like 0.5; got {s:?}"
        )),
    }
}
fn parse_min_outcomes(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_BREAKER_MIN_OUTCOMES expects a whole number from 1 to 10000; got {s:?}"
        )),
    }
}
fn parse_window_outcomes(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_BREAKER_WINDOW_OUTCOMES expects a whole number from 1 to 10000; got {s:?}"
        )),
    }
}
fn parse_breaker_window(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_BREAKER_WINDOW", s, MAX_LONG_DURATION)
}
fn parse_open_for(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_BREAKER_OPEN_FOR", s, MAX_LONG_DURATION)
}
fn parse_max_open_for(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_BREAKER_MAX_OPEN_FOR", s, MAX_LONG_DURATION)
}
fn parse_alert_rate_window(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_ALERT_RATE_WINDOW", s, MAX_SHORT_DURATION)
}
fn parse_alert_retry(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_ALERT_RETRY", s, MAX_SHORT_DURATION)
}
fn parse_smtp_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_ALERT_SMTP_PORT expects a port number from 1 to 65535; got {s:?}"
        )),
    }
}
fn parse_smtp_tls(s: &str) -> Result<SmtpTls, String> {
    match s.trim() {
        "starttls" => Ok(SmtpTls::StartTls),
        "tls" => Ok(SmtpTls::Tls),
        "none" => Ok(SmtpTls::None),
        _ => Err(format!(
            "STREAMGUARD_ALERT_SMTP_TLS expects `starttls`, `tls` or `none`; got {s:?}"
        )),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration ({e})"))
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "STREAMGUARD_LISTEN expects host:port, like 127.0.0.1:8080 or 0.0.0.0:8080; got {s:?}"
        )
    })
}

fn parse_delays(s: &str) -> Result<Delays, String> {
    let form =
        "STREAMGUARD_RETRY_DELAYS expects comma-separated durations like `5m,10m,20m` or `500ms`, each at most 7d";
    let delays = s
        .split(',')
        .map(|part| {
            duration(part).and_then(|d| {
                if d.is_zero() {
                    Err("a delay must be more than 0".into())
                } else if d > MAX_RETRY_DELAY {
                    Err(format!("{part:?} is more than 7 days"))
                } else {
                    Ok(d)
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{form}: {e}"))?;
    Ok(Delays(delays))
}

fn parse_attempts(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_RETRY_MAX_ATTEMPTS expects a whole number from 1 to 1000; got {s:?}"
        )),
    }
}

fn parse_jitter(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(j) if (0.0..1.0).contains(&j) => Ok(j),
        _ => Err(format!("STREAMGUARD_RETRY_JITTER expects a fraction in [0, 1), like 0.1 (0 disables); got {s:?}")),
    }
}

fn parse_buffer(s: &str) -> Result<BufferTime, String> {
    s.parse().map_err(|e| {
        format!(
            "STREAMGUARD_EMULATOR_BUFFER expects a duration (`30s`) or a range (`20s..60s`): {e}"
        )
    })
}

fn parse_faults(s: &str) -> Result<Faults, String> {
    s.parse().map_err(|e| {
        format!("STREAMGUARD_EMULATOR_FAULTS expects `name=rate` pairs like `concurrent_dml=0.1,quota_exceeded=0.05,latency=0.5s..2s,seed=42` (or `none`): {e}")
    })
}

fn parse_scope(s: &str) -> Result<ConflictScope, String> {
    match s.trim() {
        "partition" => Ok(ConflictScope::Partition),
        "row" => Ok(ConflictScope::Row),
        "table" => Ok(ConflictScope::Table),
        _ => Err(format!(
            "STREAMGUARD_EMULATOR_CONFLICT_SCOPE expects `partition`, `row` or `table`; got {s:?}"
        )),
    }
}

/// The longest lease, poll interval, timeout, latency, `?wait=` cap and alert pacing
/// accepted: 1 day. Longer is a typo (`30d` for `30s`), and would overflow time arithmetic
/// long before it was useful.
pub const MAX_SHORT_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest breaker window and open time accepted: 7 days (retry delays and buffer
/// times share the bound: [`MAX_RETRY_DELAY`], [`crate::warehouse::emulator::MAX_BUFFER`]).
pub const MAX_LONG_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Words for a maximum: `1d`, `7d`.
fn max_words(max: Duration) -> String {
    humantime::format_duration(max).to_string()
}

/// A duration from more than 0 to `max`.
fn positive_duration(name: &str, s: &str, max: Duration) -> Result<Duration, String> {
    match duration(s) {
        Ok(d) if d.is_zero() => Err(format!(
            "{name} expects a duration of more than 0 and at most {}, like `30s`; got {s:?}",
            max_words(max)
        )),
        Ok(d) if d > max => Err(format!(
            "{name} expects a duration of at most {}, like `30s`; got {s:?}",
            max_words(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{name} expects a duration like `30s` or `500ms`: {e}"
        )),
    }
}

/// A duration from 0 to `max`.
fn any_duration(name: &str, s: &str, max: Duration) -> Result<Duration, String> {
    match duration(s) {
        Ok(d) if d > max => Err(format!(
            "{name} expects a duration of at most {}, like `30s`; got {s:?}",
            max_words(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{name} expects a duration like `30s` or `0s`: {e}")),
    }
}

fn parse_latency(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_EMULATOR_LATENCY", s, MAX_SHORT_DURATION)
}
fn parse_lease(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_LEASE", s, MAX_SHORT_DURATION)
}
fn parse_poll(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_POLL_INTERVAL", s, MAX_SHORT_DURATION)
}
fn parse_max_wait(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_MAX_WAIT", s, MAX_SHORT_DURATION)
}
fn parse_shutdown(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_SHUTDOWN_TIMEOUT", s, MAX_SHORT_DURATION)
}
fn parse_bq_timeout(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_BIGQUERY_TIMEOUT", s, MAX_SHORT_DURATION)
}
fn parse_bq_connect_timeout(s: &str) -> Result<Duration, String> {
    positive_duration(
        "STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT",
        s,
        MAX_SHORT_DURATION,
    )
}
fn parse_bq_job_timeout(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_BIGQUERY_JOB_TIMEOUT", s, MAX_SHORT_DURATION)
}
fn parse_max_body_bytes(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_BODY_BYTES", s, 1024, 1024 * 1024 * 1024)
}
fn parse_log_format(s: &str) -> Result<String, String> {
    match s.trim() {
        f @ ("text" | "json") => Ok(f.to_owned()),
        _ => Err(format!(
            "STREAMGUARD_LOG_FORMAT expects `text` or `json`; got {s:?}"
        )),
    }
}
/// `true` or `false`, naming the setting otherwise.
fn flag(name: &str, s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{name} expects `true` or `false`; got {s:?}")),
    }
}
fn parse_scheduler(s: &str) -> Result<bool, String> {
    flag("STREAMGUARD_SCHEDULER", s)
}
fn parse_allow_anonymous(s: &str) -> Result<bool, String> {
    flag("STREAMGUARD_ALLOW_ANONYMOUS", s)
}
fn parse_docs_public(s: &str) -> Result<bool, String> {
    flag("STREAMGUARD_DOCS_PUBLIC", s)
}
fn parse_metrics_public(s: &str) -> Result<bool, String> {
    flag("STREAMGUARD_METRICS_PUBLIC", s)
}
fn parse_daily_digest(s: &str) -> Result<bool, String> {
    flag("STREAMGUARD_ALERT_DAILY_DIGEST", s)
}
fn parse_table(s: &str) -> Result<TableRef, String> {
    TableRef::parse(s.trim()).map_err(|e| format!("--table: {e}"))
}
fn parse_column(s: &str) -> Result<ColumnName, String> {
    ColumnName::parse(s.trim()).map_err(|e| e.0)
}
fn parse_concurrency(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_CONCURRENCY expects a whole number from 1 to 1024; got {s:?}"
        )),
    }
}
fn parse_per_table(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "STREAMGUARD_MAX_PER_TABLE expects a whole number from 1 to 100; got {s:?}"
        )),
    }
}

const DEFAULT_GROUP: GroupBounds = GroupBounds::DEFAULT;

fn parse_group_keys(s: &str) -> Result<u32, String> {
    bounded("STREAMGUARD_GROUP_MAX_KEYS", s, 1, 100_000).map(|n| n as u32)
}
fn parse_group_bytes(s: &str) -> Result<u64, String> {
    bounded("STREAMGUARD_GROUP_MAX_BYTES", s, 1024, 10_000_000).map(|n| n as u64)
}
fn parse_group_partitions(s: &str) -> Result<u32, String> {
    bounded("STREAMGUARD_GROUP_MAX_PARTITIONS", s, 1, 4_000).map(|n| n as u32)
}
fn parse_linger(s: &str) -> Result<Duration, String> {
    any_duration("STREAMGUARD_LINGER", s, Duration::from_secs(60))
}
fn parse_statement_timeout(s: &str) -> Result<Duration, String> {
    positive_duration("STREAMGUARD_STATEMENT_TIMEOUT", s, MAX_SHORT_DURATION)
}

fn bounded(name: &str, s: &str, min: usize, max: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{name} expects a whole number from {min} to {max}; got {s:?}"
        )),
    }
}
fn parse_max_rows(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_ROWS", s, 1, 10_000_000)
}
fn parse_max_key_columns(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_KEY_COLUMNS", s, 1, 64)
}
fn parse_max_row_bytes(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_ROW_BYTES", s, 64, 100 * 1024 * 1024)
}
/// At most 100: `serde_json` refuses documents nested deeper than 128 levels anyway.
fn parse_max_depth(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_DEPTH", s, 1, 100)
}
/// At most 300, BigQuery's own column-name limit.
fn parse_max_name_chars(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_NAME_CHARS", s, 1, 300)
}
fn parse_max_key_value_chars(s: &str) -> Result<usize, String> {
    bounded("STREAMGUARD_MAX_KEY_VALUE_CHARS", s, 1, 1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_with_units_and_refuse_garbage_naming_the_setting() {
        assert_eq!(
            parse_delays("5m,10m,20m").unwrap().0,
            vec![
                Duration::from_secs(300),
                Duration::from_secs(600),
                Duration::from_secs(1200)
            ]
        );
        assert_eq!(
            parse_delays("500ms").unwrap().0,
            vec![Duration::from_millis(500)]
        );
        let e = parse_delays("5m,soon").unwrap_err();
        assert!(
            e.contains("STREAMGUARD_RETRY_DELAYS") && e.contains("5m,10m,20m"),
            "{e}"
        );
        assert!(parse_delays("0s").is_err());
    }

    #[test]
    fn buffer_accepts_a_duration_or_a_range() {
        assert_eq!(
            parse_buffer("30s").unwrap(),
            BufferTime::fixed(Duration::from_secs(30))
        );
        assert_eq!(
            parse_buffer("20s..60s").unwrap(),
            BufferTime {
                min: Duration::from_secs(20),
                max: Duration::from_secs(60)
            }
        );
        assert!(parse_buffer("60s..20s")
            .unwrap_err()
            .contains("STREAMGUARD_EMULATOR_BUFFER"));
        assert!(parse_buffer("forever").is_err());
    }

    #[test]
    fn emulator_faults_parse_and_errors_name_the_variable() {
        let f = parse_faults("quota_exceeded=1,seed=42").unwrap();
        assert_eq!((f.quota_exceeded, f.seed), (1.0, Some(42)));
        let e = parse_faults("quota=1").unwrap_err();
        assert!(
            e.contains("STREAMGUARD_EMULATOR_FAULTS") && e.contains("unknown fault"),
            "{e}"
        );
        let cli = Cli::try_parse_from([
            "streamguard",
            "serve",
            "--emulator-faults",
            "lost_answer=0.5,seed=1",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve");
        };
        let settings = Settings::from_args(&args).unwrap();
        assert_eq!(settings.emulator.faults.lost_answer, 0.5);
        assert!(Settings::for_tests("postgres://x/y")
            .emulator
            .faults
            .is_none());
    }

    #[test]
    fn other_settings_name_themselves() {
        assert!(parse_jitter("1.5")
            .unwrap_err()
            .contains("STREAMGUARD_RETRY_JITTER"));
        assert!(parse_attempts("0")
            .unwrap_err()
            .contains("STREAMGUARD_RETRY_MAX_ATTEMPTS"));
        assert!(parse_scope("galaxy")
            .unwrap_err()
            .contains("STREAMGUARD_EMULATOR_CONFLICT_SCOPE"));
        assert!(parse_listen("8080")
            .unwrap_err()
            .contains("STREAMGUARD_LISTEN"));
        assert!(parse_lease("0s").unwrap_err().contains("STREAMGUARD_LEASE"));
        assert!(parse_max_depth("200")
            .unwrap_err()
            .contains("STREAMGUARD_MAX_DEPTH"));
        assert!(parse_max_name_chars("301")
            .unwrap_err()
            .contains("STREAMGUARD_MAX_NAME_CHARS"));
        assert!(parse_max_rows("0")
            .unwrap_err()
            .contains("STREAMGUARD_MAX_ROWS"));
    }

    #[test]
    fn tokens_come_from_the_file_and_the_variable() {
        let dir = std::env::temp_dir().join(format!("streamguard-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        let digest = crate::http::auth::token_digest("t1");
        std::fs::write(&file, format!("# processors\nbdl write {digest}\n")).unwrap();
        let args = AccessArgs {
            tokens_file: Some(file.clone()),
            tokens: Some(format!(
                "ops read,admin {}",
                crate::http::auth::token_digest("t2")
            )),
            allow_anonymous: false,
            docs_public: true,
            metrics_public: false,
        };
        let access = args.access().unwrap();
        assert_eq!(access.tokens.authenticate("t1").unwrap().name, "bdl");
        assert_eq!(access.tokens.authenticate("t2").unwrap().name, "ops");
        let missing = AccessArgs {
            tokens_file: Some(dir.join("absent")),
            ..args
        };
        assert!(missing
            .access()
            .unwrap_err()
            .contains("STREAMGUARD_TOKENS_FILE="));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bigquery_project_switches_the_warehouse_and_the_default_delays() {
        let cli = Cli::try_parse_from([
            "streamguard",
            "serve",
            "--bigquery-project",
            "nba-props-platform",
            "--bigquery-location",
            "us-central1",
            "--bigquery-endpoint",
            "http://127.0.0.1:9050/",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let settings = Settings::from_args(&args).unwrap();
        let bq = settings.bigquery.unwrap();
        assert_eq!(bq.project, "nba-props-platform");
        assert_eq!(bq.location.as_deref(), Some("us-central1"));
        assert_eq!(bq.endpoint, "http://127.0.0.1:9050");
        assert_eq!(settings.retry.delays(), &BIGQUERY_DEFAULT_DELAYS);
        assert_eq!(
            (settings.breaker.open_for, settings.breaker.max_open_for),
            (BIGQUERY_DEFAULT_OPEN_FOR, BIGQUERY_DEFAULT_MAX_OPEN_FOR)
        );

        let emulator = Settings::for_tests("postgres://x/y");
        assert!(emulator.bigquery.is_none());
        assert_eq!(emulator.retry.delays(), &EMULATOR_DEFAULT_DELAYS);
        assert_eq!(emulator.breaker.open_for, EMULATOR_DEFAULT_OPEN_FOR);
    }

    #[test]
    fn bad_bigquery_settings_name_their_variable() {
        let settings = |flags: &[&str]| {
            let mut argv = vec!["streamguard", "serve", "--bigquery-project"];
            argv.extend_from_slice(flags);
            let Some(Command::Serve(args)) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("serve expected")
            };
            Settings::from_args(&args).unwrap_err()
        };
        assert!(settings(&["Bad_Project"]).contains("STREAMGUARD_BIGQUERY_PROJECT"));
        assert!(
            settings(&["nba-props", "--bigquery-location", "us central"])
                .contains("STREAMGUARD_BIGQUERY_LOCATION")
        );
        assert!(
            settings(&["nba-props", "--bigquery-endpoint", "localhost:9050"])
                .contains("STREAMGUARD_BIGQUERY_ENDPOINT")
        );
        assert!(parse_bq_job_timeout("0s")
            .unwrap_err()
            .contains("STREAMGUARD_BIGQUERY_JOB_TIMEOUT"));
        assert!(Cli::try_parse_from([
            "streamguard",
            "bigquery",
            "check",
            "--key-column",
            "game_id"
        ])
        .is_err());
    }

    #[test]
    fn cli_parses_serve_flags_and_defaults() {
        let cli = Cli::try_parse_from([
            "streamguard",
            "serve",
            "--retry-delays",
            "1s,2s",
            "--emulator-conflict-scope",
            "row",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let settings = Settings::from_args(&args).unwrap();
        assert_eq!(
            settings.retry.delays(),
            &[Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(settings.emulator.conflict_scope, ConflictScope::Row);
        assert!(Cli::try_parse_from(["streamguard", "serve", "--retry-jitter", "2"]).is_err());
    }

    #[test]
    fn breaker_and_alert_flags() {
        let cli = Cli::try_parse_from([
            "streamguard",
            "serve",
            "--breaker-scope",
            "table",
            "--breaker-open-for",
            "2m",
            "--alert-smtp-host",
            "127.0.0.1",
            "--alert-smtp-tls",
            "none",
            "--alert-smtp-to",
            "oncall@example.com,data@example.com",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let s = Settings::from_args(&args).unwrap();
        assert_eq!(s.breaker_scope, BreakerScope::Table);
        assert_eq!(s.breaker.open_for, Duration::from_secs(120));
        assert_eq!(s.breaker.max_open_for, EMULATOR_DEFAULT_MAX_OPEN_FOR);
        assert_eq!(s.breaker.threshold, 0.5);
        assert_eq!(s.alerts.channel_names(), vec!["email".to_owned()]);
        assert_eq!(s.alerts.smtp.unwrap().to.len(), 2);
        assert!(parse_breaker_scope("galaxy")
            .unwrap_err()
            .contains("STREAMGUARD_BREAKER_SCOPE"));
        assert!(parse_threshold("1").is_err());
        let bad = Cli::try_parse_from(["streamguard", "serve", "--alert-webhook", "nope"]).unwrap();
        let Some(Command::Serve(args)) = bad.command else {
            panic!("serve expected")
        };
        assert!(Settings::from_args(&args)
            .unwrap_err()
            .contains("STREAMGUARD_ALERT_WEBHOOK"));
    }

    /// Every value a setting refuses names the variable and its form, whether the parser
    /// is called directly or clap renders the error.
    #[test]
    fn refused_values_name_the_variable() {
        let refused = |flags: &[&str], variable: &str| {
            let mut argv = vec!["streamguard", "serve"];
            argv.extend_from_slice(flags);
            let e = Cli::try_parse_from(argv).unwrap_err().to_string();
            assert!(e.contains(variable), "{flags:?}: {e}");
        };
        refused(&["--max-body-bytes", "0"], "STREAMGUARD_MAX_BODY_BYTES");
        refused(&["--max-body-bytes", "1023"], "STREAMGUARD_MAX_BODY_BYTES");
        refused(&["--max-body-bytes=-1"], "STREAMGUARD_MAX_BODY_BYTES");
        refused(&["--log-format", "xml"], "STREAMGUARD_LOG_FORMAT");
        refused(&["--scheduler", "yes"], "STREAMGUARD_SCHEDULER");
        refused(&["--allow-anonymous", "1"], "STREAMGUARD_ALLOW_ANONYMOUS");
        refused(&["--docs-public", "no"], "STREAMGUARD_DOCS_PUBLIC");
        refused(&["--metrics-public", "on"], "STREAMGUARD_METRICS_PUBLIC");
        refused(
            &["--alert-daily-digest", "daily"],
            "STREAMGUARD_ALERT_DAILY_DIGEST",
        );
        refused(&["--alert-smtp-port", "0"], "STREAMGUARD_ALERT_SMTP_PORT");
        refused(
            &["--alert-smtp-port", "70000"],
            "STREAMGUARD_ALERT_SMTP_PORT",
        );
        refused(
            &["--retry-max-attempts", "1000000"],
            "STREAMGUARD_RETRY_MAX_ATTEMPTS",
        );
        refused(
            &["--breaker-max-open-for", "0s"],
            "STREAMGUARD_BREAKER_MAX_OPEN_FOR",
        );
        refused(&["--alert-retry", "soon"], "STREAMGUARD_ALERT_RETRY");
        let ok = Cli::try_parse_from([
            "streamguard",
            "serve",
            "--scheduler",
            "false",
            "--log-format",
            "json",
            "--max-body-bytes",
            "1024",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = ok.command else {
            panic!("serve expected")
        };
        assert!(!args.scheduler);
        assert_eq!(
            (args.log_format.as_str(), args.max_body_bytes),
            ("json", 1024)
        );
    }

    /// Durations past their maximum (7 days for retry delays, buffers and breaker times,
    /// 1 day for leases, polls, timeouts and alert pacing) are refused, naming the setting;
    /// the maximum itself is accepted.
    #[test]
    fn durations_are_bounded() {
        let long: [(&str, &str); 6] = [
            ("--retry-delays", "STREAMGUARD_RETRY_DELAYS"),
            ("--emulator-buffer", "STREAMGUARD_EMULATOR_BUFFER"),
            ("--breaker-window", "STREAMGUARD_BREAKER_WINDOW"),
            ("--breaker-open-for", "STREAMGUARD_BREAKER_OPEN_FOR"),
            ("--breaker-max-open-for", "STREAMGUARD_BREAKER_MAX_OPEN_FOR"),
            ("--retry-delays", "STREAMGUARD_RETRY_DELAYS"),
        ];
        let short: [(&str, &str); 11] = [
            ("--lease", "STREAMGUARD_LEASE"),
            ("--poll-interval", "STREAMGUARD_POLL_INTERVAL"),
            ("--max-wait", "STREAMGUARD_MAX_WAIT"),
            ("--shutdown-timeout", "STREAMGUARD_SHUTDOWN_TIMEOUT"),
            ("--emulator-latency", "STREAMGUARD_EMULATOR_LATENCY"),
            ("--bigquery-timeout", "STREAMGUARD_BIGQUERY_TIMEOUT"),
            (
                "--bigquery-connect-timeout",
                "STREAMGUARD_BIGQUERY_CONNECT_TIMEOUT",
            ),
            ("--bigquery-job-timeout", "STREAMGUARD_BIGQUERY_JOB_TIMEOUT"),
            ("--alert-rate-window", "STREAMGUARD_ALERT_RATE_WINDOW"),
            ("--alert-retry", "STREAMGUARD_ALERT_RETRY"),
            ("--lease", "STREAMGUARD_LEASE"),
        ];
        let parse = |flag: &str, value: &str| {
            Cli::try_parse_from(["streamguard", "serve", flag, value]).map_err(|e| e.to_string())
        };
        for (flags, max, over) in [(&long[..], "7d", "8d"), (&short[..], "1d", "25h")] {
            for (flag, variable) in flags {
                assert!(parse(flag, max).is_ok(), "{flag} {max}");
                for bad in [over, "1000y", "500000000000y"] {
                    let e = parse(flag, bad).unwrap_err();
                    assert!(e.contains(variable), "{flag} {bad}: {e}");
                }
            }
        }
        let e = parse_delays("5m,1000y").unwrap_err();
        assert!(
            e.contains("STREAMGUARD_RETRY_DELAYS") && e.contains("7 days"),
            "{e}"
        );
    }
}
