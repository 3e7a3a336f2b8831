//! `GET /metrics`: the service's shared state in Prometheus's text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), counted from
//! Postgres at scrape time — what is due, running, stuck behind a lease, in conflict,
//! held by a breaker, waiting to alert — plus this process's request-latency histogram.
//! Needs `read` unless `STREAMGUARD_METRICS_PUBLIC`.
//!
//! Every state label is exported, with 0 when nothing is in it: an alert rule on a series
//! that does not exist never fires. The latency histogram is kept here by hand
//! ([`latency`]): the gauges are rendered from a database snapshot, and a client library
//! (`prometheus-client`) would encode its own registry as a separate OpenMetrics document
//! (ending in `# EOF`), so the two could not share one response without moving every gauge
//! into custom collectors — more code than the forty lines below.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{AppState, Result};
use crate::store::metrics::Snapshot;

pub mod latency;
pub mod statements;

/// The metrics route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus's text format. Gauges counted from Postgres, every state present (0 when empty): `streamguard_units{state}`, `streamguard_jobs{state}`, `streamguard_jobs_lease_expired`, `streamguard_oldest_due_seconds`, `streamguard_conflicts_unresolved`, `streamguard_breakers{state}`, `streamguard_alerts_pending`; and this process's `streamguard_listen_connected` (1 while its scheduler listens for new jobs, 0 while it polls only), `streamguard_listen_reconnects` and `streamguard_http_request_duration_seconds{method,route,status_class}` histogram.", body = String, content_type = "text/plain"),
    ),
    security(("bearer" = ["read"]))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let snapshot = state.store.snapshot().await?;
    let totals = state.store.statement_totals().await?;
    let mut text = render(&snapshot);
    statements::render(&totals, &mut text);
    latency::REQUESTS.render(&mut text);
    state.listen.render(&mut text);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Renders the snapshot's gauges; each family with its `HELP` and `TYPE` lines.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let by_state = |v: Vec<(&str, i64)>| -> Vec<(String, f64)> {
        v.into_iter()
            .map(|(state, n)| (format!("{{state=\"{state}\"}}"), n as f64))
            .collect()
    };
    family(
        "streamguard_units",
        "Write units by state.",
        by_state(s.units_by_state()),
    );
    family(
        "streamguard_jobs",
        "Jobs by state: due (waiting for a claim), scheduled (a later run_at), running.",
        vec![
            ("{state=\"due\"}".into(), s.jobs_due as f64),
            ("{state=\"scheduled\"}".into(), s.jobs_scheduled as f64),
            ("{state=\"running\"}".into(), s.jobs_running as f64),
        ],
    );
    family(
        "streamguard_jobs_lease_expired",
        "Running jobs whose lease expired (a dead replica's; the next claim takes them).",
        vec![(String::new(), s.jobs_lease_expired as f64)],
    );
    family(
        "streamguard_oldest_due_seconds",
        "Seconds since the oldest due job became due: how far behind the schedulers are.",
        vec![(String::new(), s.oldest_due_seconds)],
    );
    family(
        "streamguard_conflicts_unresolved",
        "Conflicts not resolved (still retrying, or given up with resolution timeout).",
        vec![(String::new(), s.conflicts_unresolved as f64)],
    );
    family(
        "streamguard_breakers",
        "Circuit breakers by state.",
        by_state(s.breakers_by_state()),
    );
    family(
        "streamguard_alerts_pending",
        "Alert deliveries not sent yet.",
        vec![(String::new(), s.alerts_pending as f64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_prometheus_text_with_help_type_and_every_state() {
        let text = render(&Snapshot {
            units: json!({"loaded": 89, "deferred": 3}),
            jobs_due: 2,
            jobs_scheduled: 3,
            jobs_running: 1,
            jobs_lease_expired: 0,
            oldest_due_seconds: 1.5,
            conflicts_unresolved: 3,
            breakers: json!({"open": 1}),
            alerts_pending: 0,
            next_scheduled_at: None,
        });
        assert!(text.contains("# TYPE streamguard_units gauge\n"));
        assert!(text.contains("streamguard_units{state=\"deferred\"} 3\n"));
        assert!(text.contains("streamguard_units{state=\"failed\"} 0\n"));
        assert!(text.contains("streamguard_units{state=\"cancelled\"} 0\n"));
        assert!(text.contains("streamguard_jobs{state=\"due\"} 2\n"));
        assert!(text.contains("streamguard_oldest_due_seconds 1.5\n"));
        assert!(text.contains("streamguard_breakers{state=\"open\"} 1\n"));
        assert!(text.contains("streamguard_breakers{state=\"closed\"} 0\n"));
        assert!(text.contains("streamguard_breakers{state=\"forced_open\"} 0\n"));
        assert_eq!(text.matches("streamguard_units{").count(), 7);
        assert_eq!(text.matches("streamguard_breakers{").count(), 5);
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("streamguard_")));
    }
}
