//! Tests of the settings: flags parse into the parts' settings, defaults agree, and every
//! refusal names its variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::domain::breaker::{
    BIGQUERY_DEFAULT_MAX_OPEN_FOR, BIGQUERY_DEFAULT_OPEN_FOR, EMULATOR_DEFAULT_MAX_OPEN_FOR,
    EMULATOR_DEFAULT_OPEN_FOR,
};
use crate::domain::retry::{BIGQUERY_DEFAULT_DELAYS, EMULATOR_DEFAULT_DELAYS};
use crate::http::auth::{DEFAULT_ALLOW_ANONYMOUS, DEFAULT_DOCS_PUBLIC, DEFAULT_METRICS_PUBLIC};
use crate::warehouse::emulator::{BufferTime, ConflictScope};

/// The serve flags alone, as `streamguard serve` reads them.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

/// `streamguard serve FLAGS...`, or clap's rendered error.
fn serve(flags: &[&str]) -> Result<ServeArgs, String> {
    Serve::try_parse_from(std::iter::once("streamguard").chain(flags.iter().copied()))
        .map(|s| s.args)
        .map_err(|e| e.to_string())
}

/// The error for `FLAG VALUE`.
fn refusal(flag: &str, value: &str) -> String {
    serve(&[flag, value]).unwrap_err()
}

#[test]
fn delays_parse_with_units_and_refuse_garbage_naming_the_setting() {
    assert_eq!(
        "5m,10m,20m".parse::<Delays>().unwrap().0,
        vec![
            Duration::from_secs(300),
            Duration::from_secs(600),
            Duration::from_secs(1200)
        ]
    );
    assert_eq!(
        "500ms".parse::<Delays>().unwrap().0,
        vec![Duration::from_millis(500)]
    );
    let e = refusal("--retry-delays", "5m,soon");
    assert!(
        e.contains("STREAMGUARD_RETRY_DELAYS") && e.contains("5m,10m,20m"),
        "{e}"
    );
    assert!("0s".parse::<Delays>().is_err());
}

#[test]
fn buffer_accepts_a_duration_or_a_range() {
    assert_eq!(
        "30s".parse::<BufferTime>().unwrap(),
        BufferTime::fixed(Duration::from_secs(30))
    );
    assert_eq!(
        "20s..60s".parse::<BufferTime>().unwrap(),
        BufferTime {
            min: Duration::from_secs(20),
            max: Duration::from_secs(60)
        }
    );
    assert!(refusal("--emulator-buffer", "60s..20s").contains("STREAMGUARD_EMULATOR_BUFFER"));
    assert!("forever".parse::<BufferTime>().is_err());
}

#[test]
fn other_settings_name_themselves() {
    for (flag, value, variable) in [
        ("--retry-jitter", "1.5", "STREAMGUARD_RETRY_JITTER"),
        (
            "--retry-max-attempts",
            "0",
            "STREAMGUARD_RETRY_MAX_ATTEMPTS",
        ),
        (
            "--emulator-conflict-scope",
            "galaxy",
            "STREAMGUARD_EMULATOR_CONFLICT_SCOPE",
        ),
        ("--listen", "8080", "STREAMGUARD_LISTEN"),
        ("--lease", "0s", "STREAMGUARD_LEASE"),
        ("--max-depth", "200", "STREAMGUARD_MAX_DEPTH"),
        ("--max-name-chars", "301", "STREAMGUARD_MAX_NAME_CHARS"),
        ("--max-rows", "0", "STREAMGUARD_MAX_ROWS"),
        ("--breaker-scope", "galaxy", "STREAMGUARD_BREAKER_SCOPE"),
        ("--breaker-threshold", "1", "STREAMGUARD_BREAKER_THRESHOLD"),
        (
            "--bigquery-job-timeout",
            "0s",
            "STREAMGUARD_BIGQUERY_JOB_TIMEOUT",
        ),
    ] {
        let e = refusal(flag, value);
        assert!(e.contains(variable), "{flag} {value}: {e}");
    }
}

/// The defaults of the flags are the parts' defaults: `for_tests` (built from the parts'
/// `Default`s) and the parsed flags agree.
#[test]
fn flag_defaults_are_the_parts_defaults() {
    let mut parsed = Settings::from_args(&serve(&[]).unwrap()).unwrap();
    parsed.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    parsed.database_url = "x".into();
    let built = Settings::for_tests("x");
    assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
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
        allow_anonymous: DEFAULT_ALLOW_ANONYMOUS,
        docs_public: DEFAULT_DOCS_PUBLIC,
        metrics_public: DEFAULT_METRICS_PUBLIC,
    };
    let access = access_settings(&args).unwrap();
    assert_eq!(access.tokens.authenticate("t1").unwrap().name, "bdl");
    assert_eq!(access.tokens.authenticate("t2").unwrap().name, "ops");
    let missing = AccessArgs {
        tokens_file: Some(dir.join("absent")),
        ..args
    };
    assert!(access_settings(&missing)
        .unwrap_err()
        .contains("STREAMGUARD_TOKENS_FILE="));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bigquery_project_switches_the_warehouse_and_the_default_delays() {
    let args = serve(&[
        "--bigquery-project",
        "nba-props-platform",
        "--bigquery-location",
        "us-central1",
        "--bigquery-endpoint",
        "http://127.0.0.1:9050/",
    ])
    .unwrap();
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
        let mut argv = vec!["--bigquery-project"];
        argv.extend_from_slice(flags);
        Settings::from_args(&serve(&argv).unwrap()).unwrap_err()
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
}

#[test]
fn cli_parses_serve_flags_and_defaults() {
    let args = serve(&[
        "--retry-delays",
        "1s,2s",
        "--emulator-conflict-scope",
        "row",
    ])
    .unwrap();
    let settings = Settings::from_args(&args).unwrap();
    assert_eq!(
        settings.retry.delays(),
        &[Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(settings.emulator.conflict_scope, ConflictScope::Row);
    assert!(serve(&["--retry-jitter", "2"]).is_err());
}

#[test]
fn breaker_and_alert_flags() {
    let args = serve(&[
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
    let s = Settings::from_args(&args).unwrap();
    assert_eq!(s.breaker_scope, BreakerScope::Table);
    assert_eq!(s.breaker.open_for, Duration::from_secs(120));
    assert_eq!(s.breaker.max_open_for, EMULATOR_DEFAULT_MAX_OPEN_FOR);
    assert_eq!(s.breaker.threshold, 0.5);
    assert_eq!(s.alerts.channel_names(), vec!["email".to_owned()]);
    assert_eq!(s.alerts.smtp.unwrap().to.len(), 2);
    let bad = serve(&["--alert-webhook", "nope"]).unwrap();
    assert!(Settings::from_args(&bad)
        .unwrap_err()
        .contains("STREAMGUARD_ALERT_WEBHOOK"));
}

/// Every value a setting refuses names the variable and its form, whether the parser
/// is called directly or clap renders the error.
#[test]
fn refused_values_name_the_variable() {
    let refused = |flags: &[&str], variable: &str| {
        let e = serve(flags).unwrap_err();
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
    let args = serve(&[
        "--scheduler",
        "false",
        "--log-format",
        "json",
        "--max-body-bytes",
        "1024",
    ])
    .unwrap();
    assert!(!args.scheduler.scheduler);
    assert_eq!(
        (args.log_format, args.max_body_bytes),
        (LogFormat::Json, 1024)
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
    let parse = |flag: &str, value: &str| serve(&[flag, value]);
    for (flags, max, over) in [(&long[..], "7d", "8d"), (&short[..], "1d", "25h")] {
        for (flag, variable) in flags {
            assert!(parse(flag, max).is_ok(), "{flag} {max}");
            for bad in [over, "1000y", "500000000000y"] {
                let e = parse(flag, bad).unwrap_err();
                assert!(e.contains(variable), "{flag} {bad}: {e}");
            }
        }
    }
    let e = refusal("--retry-delays", "5m,1000y");
    assert!(
        e.contains("STREAMGUARD_RETRY_DELAYS") && e.contains("7 days"),
        "{e}"
    );
}
