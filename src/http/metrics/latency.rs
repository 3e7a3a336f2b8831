//! Request latency as a Prometheus histogram, and the request log line, both written by
//! one middleware ([`track`]) around every route.
//!
//! The histogram `streamguard_http_request_duration_seconds` is per process (each replica
//! reports its own; Prometheus sums them) with labels `method` (`other` for a method outside
//! the usual seven), `route` (the matched route
//! template, e.g. `/v1/batches/{batch_id}`, so ids do not multiply series; `unmatched` for
//! unknown paths) and `status_class` (`2xx` … `5xx`). Buckets are Prometheus's defaults
//! (5 ms to 10 s) plus 30 s and 60 s for `?wait=` requests.
//!
//! The log line: one per request, at `debug` for reads (`GET`, `HEAD` — a console or a
//! poller makes thousands) and at `info` for everything else (a batch taken, an operator's
//! decision), so `info` shows decisions and not polling.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the buckets, seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One series: cumulative-on-render bucket counts, the sum and the count.
#[derive(Debug, Default, Clone)]
struct Series {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The histogram: one series per (method, route, status class).
#[derive(Debug, Default)]
pub struct Histogram {
    series: Mutex<BTreeMap<(String, String, &'static str), Series>>,
}

/// This process's request-latency histogram.
pub static REQUESTS: LazyLock<Histogram> = LazyLock::new(Histogram::default);

impl Histogram {
    /// Records one request that took `seconds`.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series
            .entry((method.to_owned(), route.to_owned(), class))
            .or_default();
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            s.buckets[i] += 1;
        }
        s.sum += seconds;
        s.count += 1;
    }

    /// Appends the family in Prometheus's text format (`_bucket` cumulative with `le`,
    /// `_sum`, `_count`) to `out`.
    pub fn render(&self, out: &mut String) {
        let name = "streamguard_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a request, seconds, by method, route template and status class (this process).\n# TYPE {name} histogram"
        );
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, class), s) in series.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status_class=\"{class}\"",
                escape(route)
            );
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
        }
    }
}

/// A label value escaped as the text format requires (backslash, quote, newline).
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The middleware: times the request, records it in [`REQUESTS`] and writes the request
/// log line (`debug` for reads, `info` otherwise) inside the request's span.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // A client may send any method name: others share one label, so series stay bounded.
    let method_label = match method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => method.as_str(),
        _ => "other",
    };
    REQUESTS.observe(method_label, &route, status, elapsed.as_secs_f64());
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    if matches!(method, Method::GET | Method::HEAD) {
        tracing::debug!(status, latency_ms, "answered");
    } else {
        tracing::info!(status, latency_ms, "answered");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_inf_sum_and_count() {
        let h = Histogram::default();
        h.observe("GET", "/v1/batches/{batch_id}", 200, 0.003);
        h.observe("GET", "/v1/batches/{batch_id}", 200, 0.2);
        h.observe("GET", "/v1/batches/{batch_id}", 200, 120.0);
        let mut text = String::new();
        h.render(&mut text);
        let l = "method=\"GET\",route=\"/v1/batches/{batch_id}\",status_class=\"2xx\"";
        assert!(text.contains("# TYPE streamguard_http_request_duration_seconds histogram\n"));
        for (le, n) in [
            ("0.005", 1),
            ("0.1", 1),
            ("0.25", 2),
            ("60", 2),
            ("+Inf", 3),
        ] {
            let line = format!(
                "streamguard_http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "streamguard_http_request_duration_seconds_count{{{l}}} 3\n"
        )));
        assert!(text.contains(&format!(
            "streamguard_http_request_duration_seconds_sum{{{l}}} 120.203\n"
        )));
    }
}
