//! Settings: the command line's flags and `STREAMGUARD_*` environment variables (flags
//! win), validated and composed into one [`Settings`] made of the parts' own settings
//! types. Each part owns its type and its defaults ([`crate::scheduler::SchedulerSettings`],
//! [`crate::store::jobs::GroupBounds`], [`crate::domain::breaker::BreakerSettings`],
//! [`crate::domain::batch::BatchLimits`], [`crate::warehouse::emulator::EmulatorSettings`],
//! [`crate::warehouse::bigquery::BigQuerySettings`], [`crate::notify::AlertSettings`],
//! [`crate::http::HttpSettings`] with [`crate::http::auth::AccessSettings`]); no part reads
//! this module — only the application (`app`) and the command line do.
//!
//! An invalid value stops start-up with a message naming the variable and the form it
//! accepts ([`parse`]).

mod args;
pub mod parse;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

pub use args::{
    AccessArgs, AlertArgs, BigQueryArgs, BreakerArgs, DatabaseArgs, EmulatorArgs, LimitArgs,
    Listen, SchedulerArgs, ServeArgs,
};

use crate::domain::batch::BatchLimits;
use crate::domain::breaker::{BreakerScope, BreakerSettings};
use crate::domain::retry::{default_delays, MAX_RETRY_DELAY};
use crate::domain::RetryPolicy;
use crate::http::auth::{AccessSettings, Tokens};
use crate::http::HttpSettings;
use crate::notify::email::SmtpSettings;
use crate::notify::AlertSettings;
use crate::scheduler::SchedulerSettings;
use crate::store::jobs::GroupBounds;
use crate::telemetry::LogFormat;
use crate::warehouse::bigquery::{BigQuerySettings, Credentials, DEFAULT_ENDPOINT};
use crate::warehouse::emulator::EmulatorSettings;

/// A parsed retry-delay list (`5m,10m,20m`), each more than 0 and at most 7 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delays(pub Vec<Duration>);

impl std::str::FromStr for Delays {
    /// The accepted form and what was wrong.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let form = "comma-separated durations like `5m,10m,20m` or `500ms`, each at most 7d";
        s.split(',')
            .map(|part| match humantime::parse_duration(part.trim()) {
                Ok(d) if d.is_zero() => Err("a delay must be more than 0".to_owned()),
                Ok(d) if d > MAX_RETRY_DELAY => Err(format!("{part:?} is more than 7 days")),
                Ok(d) => Ok(d),
                Err(e) => Err(format!("{part:?} is not a duration ({e})")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
            .map_err(|e| format!("{form}: {e}"))
    }
}

/// The service's settings, validated, composed of the parts' settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen (`STREAMGUARD_LISTEN`).
    pub listen: SocketAddr,
    /// Postgres URL (`DATABASE_URL`).
    pub database_url: String,
    /// How log lines look (`STREAMGUARD_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Whether this process runs a scheduler (`STREAMGUARD_SCHEDULER`).
    pub run_scheduler: bool,
    /// The scheduler's knobs; its shutdown timeout also bounds the HTTP drain.
    pub scheduler: SchedulerSettings,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// The HTTP layer's settings: `?wait=` cap, body limit, tokens.
    pub http: HttpSettings,
    /// Input limits of a batch (and of a processor report's rows).
    pub limits: BatchLimits,
    /// The emulator's settings (used when no BigQuery project is configured).
    pub emulator: EmulatorSettings,
    /// BigQuery, when a project is configured (`STREAMGUARD_BIGQUERY_PROJECT`); the
    /// emulator otherwise.
    pub bigquery: Option<BigQuerySettings>,
    /// The breaker's thresholds and times.
    pub breaker: BreakerSettings,
    /// What one breaker covers.
    pub breaker_scope: BreakerScope,
    /// Alert channels and their pacing.
    pub alerts: AlertSettings,
}

impl Settings {
    /// Validates the flags into settings.
    ///
    /// # Errors
    /// A message naming the setting and the accepted form.
    pub fn from_args(args: &ServeArgs) -> Result<Self, String> {
        let bigquery = bigquery_settings(&args.bigquery)?;
        let on_bigquery = bigquery.is_some();
        let s = &args.scheduler;
        let scheduler = SchedulerSettings {
            replica: String::new(),
            poll_interval: *s.poll_interval,
            lease: *s.lease,
            concurrency: s.concurrency,
            max_per_table: s.max_per_table,
            bounds: GroupBounds {
                max_keys: s.group_max_keys,
                max_bytes: s.group_max_bytes,
                max_partitions: s.group_max_partitions,
            },
            linger: *s.linger,
            statement_timeout: *s.statement_timeout,
            shutdown_timeout: *s.shutdown_timeout,
        };
        let delays = args
            .retry_delays
            .clone()
            .map_or_else(|| default_delays(on_bigquery).to_vec(), |d| d.0);
        let retry = RetryPolicy::new(delays, args.retry_max_attempts, args.retry_jitter)
            .map_err(|e| format!("retry policy (STREAMGUARD_RETRY_*): {e}"))?;
        let l = &args.limits;
        Ok(Self {
            listen: args.listen.0,
            database_url: args.database.database_url.clone(),
            log_format: args.log_format,
            run_scheduler: s.scheduler,
            retry,
            http: HttpSettings {
                max_wait: *args.max_wait,
                max_body_bytes: args.max_body_bytes,
                access: access_settings(&args.access)?,
            },
            limits: BatchLimits {
                max_rows: l.max_rows,
                max_key_columns: l.max_key_columns,
                max_row_bytes: l.max_row_bytes,
                max_depth: l.max_depth,
                max_name_chars: l.max_name_chars,
                max_key_value_chars: l.max_key_value_chars,
            },
            emulator: EmulatorSettings {
                buffer: args.emulator.emulator_buffer,
                conflict_scope: args.emulator.emulator_conflict_scope,
                latency: *args.emulator.emulator_latency,
                faults: args.emulator.emulator_faults,
            },
            bigquery,
            breaker: breaker_settings(&args.breaker, scheduler.lease, on_bigquery),
            breaker_scope: args.breaker.breaker_scope,
            alerts: alert_settings(&args.alerts, scheduler.poll_interval)?,
            scheduler,
        })
    }

    /// Settings for tests and embedding: every part's defaults (the emulator as
    /// warehouse), listening on `127.0.0.1:0`.
    pub fn for_tests(database_url: &str) -> Self {
        let scheduler = SchedulerSettings::default();
        let (open_for, max_open_for) = BreakerSettings::default_open_for(false);
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            log_format: LogFormat::default(),
            run_scheduler: true,
            retry: RetryPolicy::new(
                default_delays(false).to_vec(),
                crate::domain::retry::DEFAULT_MAX_ATTEMPTS,
                crate::domain::retry::DEFAULT_JITTER,
            )
            .expect("the default policy is valid"),
            http: HttpSettings::default(),
            limits: BatchLimits::DEFAULT,
            emulator: EmulatorSettings::DEFAULT,
            bigquery: None,
            breaker: BreakerSettings {
                open_for,
                max_open_for,
                probe_wait: scheduler.lease,
                ..BreakerSettings::DEFAULT
            },
            breaker_scope: BreakerScope::DEFAULT,
            alerts: AlertSettings {
                poll_interval: scheduler.poll_interval,
                ..AlertSettings::DEFAULT
            },
            scheduler,
        }
    }
}

/// The BigQuery settings, or `None` when no project is set (the emulator is used).
///
/// # Errors
/// A message naming the setting and the accepted form.
pub fn bigquery_settings(a: &BigQueryArgs) -> Result<Option<BigQuerySettings>, String> {
    let Some(project) = &a.bigquery_project else {
        return Ok(None);
    };
    let project = project.trim();
    crate::domain::names::validate_project(project)
        .map_err(|e| format!("STREAMGUARD_BIGQUERY_PROJECT: {e}"))?;
    let location = match a.bigquery_location.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(l) if l.len() <= 64 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => Some(l.to_owned()),
        Some(l) => return Err(format!("STREAMGUARD_BIGQUERY_LOCATION expects a BigQuery location like `US`, `EU` or `us-central1`; got {l:?}")),
    };
    let endpoint = a.bigquery_endpoint.trim().trim_end_matches('/');
    match reqwest::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(format!("STREAMGUARD_BIGQUERY_ENDPOINT expects an http(s) URL like {DEFAULT_ENDPOINT}; got {endpoint:?}")),
    }
    let credentials = match &a.google_application_credentials {
        Some(p) if !p.as_os_str().is_empty() => Credentials::KeyFile(p.clone()),
        _ => Credentials::ApplicationDefault,
    };
    Ok(Some(BigQuerySettings {
        project: project.to_owned(),
        location,
        endpoint: endpoint.to_owned(),
        credentials,
        request_timeout: *a.bigquery_timeout,
        connect_timeout: *a.bigquery_connect_timeout,
        job_timeout: *a.bigquery_job_timeout,
    }))
}

/// Reads the tokens file and the variable into [`AccessSettings`].
fn access_settings(a: &AccessArgs) -> Result<AccessSettings, String> {
    let mut tokens = Tokens::default();
    if let Some(path) = &a.tokens_file {
        let source = format!("STREAMGUARD_TOKENS_FILE={}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{source}: cannot read the file: {e}"))?;
        tokens.add(&text, &source)?;
        if tokens.is_empty() {
            return Err(format!("{source}: the file lists no token"));
        }
    }
    if let Some(text) = &a.tokens {
        tokens.add(text, "STREAMGUARD_TOKENS")?;
    }
    Ok(AccessSettings {
        tokens,
        allow_anonymous: a.allow_anonymous,
        docs_public: a.docs_public,
        metrics_public: a.metrics_public,
    })
}

fn breaker_settings(a: &BreakerArgs, lease: Duration, bigquery: bool) -> BreakerSettings {
    let (default_open, default_max) = BreakerSettings::default_open_for(bigquery);
    let open_for = a.breaker_open_for.map_or(default_open, Into::into);
    let max_open_for = a
        .breaker_max_open_for
        .map_or(default_max, Into::into)
        .max(open_for);
    BreakerSettings {
        threshold: a.breaker_threshold,
        min_outcomes: a.breaker_min_outcomes,
        window_outcomes: a.breaker_window_outcomes.max(a.breaker_min_outcomes),
        window: *a.breaker_window,
        open_for,
        max_open_for,
        // A job that finds the probe in flight looks again after one lease: by then the
        // probe has ended, or its permit can be handed on.
        probe_wait: lease,
    }
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
        rate_window: *a.alert_rate_window,
        retry_base: (*a.alert_retry).max(Duration::from_millis(10)),
        poll_interval: poll,
        daily_digest: a.alert_daily_digest,
    };
    // Validate URLs and addresses now, so a typo stops start-up.
    settings.channels()?;
    Ok(settings)
}
