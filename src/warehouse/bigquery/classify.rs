//! The one place BigQuery failures are classified. Every way a call can fail — a non-2xx
//! answer (with whatever body came with it), a job that finished with
//! `status.errorResult` after HTTP 200, or no answer at all — is a [`Failure`], and
//! [`classify`] turns it into a [`Classified`]: a `duplicate` job (look it up) or a
//! classified [`Error`]. Nothing else in the adapter looks at error text.
//!
//! Order matters (`docs/bigquery-facts.md`, "Design implications" 3, and B1, B6, B7): the
//! message first (BigQuery files the streaming-buffer and concurrency refusals under the
//! generic reason `invalidQuery`), then the reason, then the HTTP code. A body that cannot
//! be decoded (an HTML 502 from a proxy, a JSON body of another shape) is transient: the
//! outcome is unknown, and retrying an atomic replace is safe.

use serde::Deserialize;
use serde_json::Value;

use crate::warehouse::Error;

/// One failed call, as it came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A non-2xx HTTP answer: the status and the raw body (kept raw so that a body of any
    /// shape, or none, is classified with its status).
    Http {
        /// HTTP status code.
        status: u16,
        /// The body as received.
        body: String,
    },
    /// A job that BigQuery accepted and that finished with `status.errorResult`
    /// (jobs.insert or jobs.get answered HTTP 200; bigquery-facts A3).
    Job {
        /// `errorResult.reason`, e.g. `invalidQuery`.
        reason: Option<String>,
        /// `errorResult.message`.
        message: Option<String>,
    },
    /// No usable answer: connection refused, timeout, reset, or a 2xx body that did not
    /// decode. The request may or may not have reached BigQuery.
    Transport {
        /// What happened, e.g. `timed out after 30s`.
        message: String,
    },
}

/// What to do about a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// HTTP 409 `duplicate`: a job with this id exists already (an earlier send of the same
    /// attempt reached BigQuery). Look it up; do not submit again.
    Duplicate,
    /// A classified error.
    Error(Error),
}

/// BigQuery's error envelope (bigquery-facts B7). Every field is optional and
/// `errors[]` values are kept as JSON, so a body without `errors` (which the crate cannot
/// decode, A3) still yields its code and message.
#[derive(Debug, Deserialize)]
struct Envelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    status: Option<String>,
}

/// The facts classification looks at, whatever the failure's shape.
struct Facts {
    code: Option<i64>,
    status: Option<String>,
    reasons: Vec<String>,
    messages: Vec<String>,
}

impl Facts {
    fn message_has(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.messages
            .iter()
            .any(|m| m.to_ascii_lowercase().contains(&needle))
    }
    fn reason_is(&self, any_of: &[&str]) -> bool {
        self.reasons.iter().any(|r| any_of.contains(&r.as_str()))
    }
    /// The text kept for the unit's error and the conflict log: the top-level message,
    /// else the first per-error message, else the reasons.
    fn text(&self, fallback: &str) -> String {
        self.messages
            .first()
            .cloned()
            .or_else(|| (!self.reasons.is_empty()).then(|| self.reasons.join(", ")))
            .unwrap_or_else(|| fallback.to_owned())
    }
}

/// Reasons BigQuery uses for rate limits and quotas (error-messages page; bigquery-facts B6).
const QUOTA_REASONS: [&str; 3] = ["rateLimitExceeded", "quotaExceeded", "jobRateLimitExceeded"];
/// Reasons for server-side failures, retried with a new job id (bigquery-facts B6).
const SERVER_REASONS: [&str; 4] = [
    "backendError",
    "internalError",
    "jobBackendError",
    "jobInternalError",
];

/// Classifies one failure. Total: every input maps to exactly one outcome.
///
/// | failure | outcome |
/// | --- | --- |
/// | message `… not supported over tables that had UPSERT streams` | permanent (waiting cannot cure it) |
/// | message contains `streaming buffer` (UPDATE/DELETE/MERGE and TRUNCATE wordings, B1) | conflict `streaming_buffer` |
/// | `Could not serialize access`, `due to concurrent update`, `Transaction is aborted`, `Too many DML statements outstanding`, `queued for too long` | conflict `concurrent_dml` |
/// | reason `rateLimitExceeded`, `quotaExceeded`, `jobRateLimitExceeded`, or HTTP 429 | conflict `quota_exceeded` |
/// | HTTP 409 / reason `duplicate` / status `ALREADY_EXISTS` | [`Classified::Duplicate`] |
/// | HTTP 413 with a body that is not BigQuery's JSON (Google's front end: "Request Entity Too Large") | permanent: the same request can never pass |
/// | HTTP ≥ 500, reason `backendError`/`internalError`/`jobBackendError`/`jobInternalError`, HTTP 401 (token expired or revoked mid-flight), no answer, an undecodable body | transient |
/// | anything else (`notFound`, `accessDenied`, `invalidQuery`, `invalid`, other 4xx) | permanent |
pub fn classify(failure: &Failure) -> Classified {
    let facts = match failure {
        Failure::Transport { message } => {
            return Classified::Error(Error::Transient {
                message: format!("no answer from BigQuery: {message}"),
            })
        }
        Failure::Job { reason, message } => Facts {
            code: None,
            status: None,
            reasons: reason.iter().cloned().collect(),
            messages: message.iter().cloned().collect(),
        },
        Failure::Http { status: 413, .. } => {
            return Classified::Error(Error::Permanent {
                message: "BigQuery's front end refused the request as too large (HTTP 413 Request Entity Too Large): BigQuery accepts at most 10 MB per request, query parameters included; send fewer keys or rows per statement".into(),
            })
        }
        Failure::Http { status, body } => match serde_json::from_str::<Envelope>(body) {
            Ok(Envelope { error }) => http_facts(*status, error),
            // Google's front end refuses an oversized request with an HTML 413 before
            // BigQuery sees it: resending the same statement can never pass.
            Err(_) if *status == 413 => {
                return Classified::Error(Error::Permanent {
                    message: format!(
                        "Google's front end refused the request as too large (HTTP 413 Request Entity Too Large; BigQuery accepts at most 10 MB per request, parameters included): the statement must carry fewer or smaller rows — resending it cannot pass. Body: {}",
                        excerpt(body)
                    ),
                })
            }
            Err(_) => {
                return Classified::Error(Error::Transient {
                    message: format!(
                        "BigQuery answered HTTP {status} with a body that is not its error JSON (a proxy or load balancer?): {}",
                        excerpt(body)
                    ),
                })
            }
        },
    };
    let text = facts.text("BigQuery refused the request without a message");
    let error = if facts.message_has("UPSERT streams") {
        Error::Permanent { message: text }
    } else if facts.message_has("streaming buffer") {
        Error::StreamingBuffer { message: text }
    } else if [
        "Could not serialize access",
        "due to concurrent update",
        "Transaction is aborted",
        "Too many DML statements outstanding",
        "queued for too long",
    ]
    .iter()
    .any(|n| facts.message_has(n))
    {
        Error::ConcurrentUpdate { message: text }
    } else if facts.reason_is(&QUOTA_REASONS) || facts.code == Some(429) {
        Error::QuotaExceeded {
            message: text,
            retry_after: None,
        }
    } else if facts.code == Some(409)
        || facts.reason_is(&["duplicate"])
        || facts.status.as_deref() == Some("ALREADY_EXISTS")
    {
        return Classified::Duplicate;
    } else if facts.code.is_some_and(|c| c >= 500)
        || facts.reason_is(&SERVER_REASONS)
        || facts.code == Some(401)
    {
        Error::Transient { message: text }
    } else {
        Error::Permanent { message: text }
    };
    Classified::Error(error)
}

fn http_facts(status: u16, error: ErrorBody) -> Facts {
    let mut reasons = Vec::new();
    let mut messages: Vec<String> = error.message.into_iter().collect();
    for e in &error.errors {
        if let Some(r) = e.get("reason").and_then(Value::as_str) {
            reasons.push(r.to_owned());
        }
        if let Some(m) = e.get("message").and_then(Value::as_str) {
            if !messages.iter().any(|x| x == m) {
                messages.push(m.to_owned());
            }
        }
    }
    Facts {
        // The body's code is BigQuery's own; the HTTP status is what a proxy may have set.
        code: error.code.or(Some(i64::from(status))),
        status: error.status,
        reasons,
        messages,
    }
}

/// The first 200 characters of a body, on one line, for an error message.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if one_line.trim().is_empty() {
        "(empty body)".into()
    } else {
        one_line.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorClass;

    fn http(status: u16, body: &str) -> Classified {
        classify(&Failure::Http {
            status,
            body: body.into(),
        })
    }

    fn class_of(c: &Classified) -> ErrorClass {
        match c {
            Classified::Error(e) => e.class(),
            Classified::Duplicate => panic!("duplicate, not an error"),
        }
    }

    fn message_of(c: &Classified) -> String {
        match c {
            Classified::Error(e) => e.to_string(),
            Classified::Duplicate => panic!("duplicate, not an error"),
        }
    }

    #[test]
    fn an_html_413_from_googles_front_end_is_permanent_and_says_why() {
        let c = http(
            413,
            "<!DOCTYPE html><html><title>Error 413 (Request Entity Too Large)!!1</title></html>",
        );
        assert_eq!(class_of(&c), ErrorClass::Permanent);
        let m = message_of(&c);
        assert!(
            m.contains("HTTP 413") && m.contains("10 MB") && m.contains("Request Entity Too Large"),
            "{m}"
        );
        // Other undecodable answers stay transient: their outcome is unknown.
        assert_eq!(
            class_of(&http(502, "<html>Bad Gateway</html>")),
            ErrorClass::Transient
        );
    }

    /// A BigQuery error body in the shape of bigquery-facts B7.
    fn body(code: u16, reason: &str, message: &str, status: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "location": "q", "locationType": "parameter",
                        "message": message, "reason": reason}],
            "status": status}})
        .to_string()
    }

    pub(crate) const STREAMING_BUFFER: &str = "UPDATE or DELETE statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported";
    pub(crate) const TRUNCATE_BUFFER: &str = "TRUNCATE DML statement over table nba-props-platform.nba_raw.bdl_player_boxscores would affect rows in the streaming buffer, which is not supported";
    pub(crate) const UPSERT: &str =
        "DELETE/UPDATE/MERGE DMLs are currently not supported over tables that had UPSERT streams";

    #[test]
    fn streaming_buffer_wordings_are_conflicts_whatever_the_reason() {
        for (reason, message) in [
            ("invalidQuery", STREAMING_BUFFER),
            ("badRequest", STREAMING_BUFFER),
            ("invalidQuery", TRUNCATE_BUFFER),
        ] {
            let c = http(400, &body(400, reason, message, "INVALID_ARGUMENT"));
            assert_eq!(class_of(&c), ErrorClass::StreamingBuffer, "{message}");
            assert_eq!(message_of(&c), message);
        }
    }

    #[test]
    fn concurrency_wordings_are_concurrent_dml() {
        for message in [
            "Could not serialize access to table x.y due to concurrent update",
            "Transaction is aborted due to concurrent update against table p.d.t",
            "Resources exceeded during query execution: Too many DML statements outstanding against table p.d.t, limit is 20.",
            "DML statement has been queued for too long",
        ] {
            let c = http(400, &body(400, "invalidQuery", message, "INVALID_ARGUMENT"));
            assert_eq!(class_of(&c), ErrorClass::ConcurrentDml, "{message}");
        }
    }

    #[test]
    fn rate_limits_and_quotas_are_quota_conflicts() {
        for (code, reason, message) in [
            (
                403,
                "rateLimitExceeded",
                "Exceeded rate limits: too many table update operations for this table",
            ),
            (
                403,
                "quotaExceeded",
                "Quota exceeded: Your table exceeded quota for imports or query appends per table",
            ),
            (
                400,
                "jobRateLimitExceeded",
                "Exceeded rate limits: too many concurrent queries for this project_and_region",
            ),
        ] {
            let c = http(code, &body(code, reason, message, "PERMISSION_DENIED"));
            assert_eq!(class_of(&c), ErrorClass::QuotaExceeded, "{reason}");
        }
        let c = http(
            429,
            "{\"error\":{\"code\":429,\"message\":\"Too many requests\"}}",
        );
        assert_eq!(class_of(&c), ErrorClass::QuotaExceeded);
    }

    #[test]
    fn server_errors_timeouts_and_undecodable_bodies_are_transient() {
        for (code, reason) in [
            (500, "backendError"),
            (503, "backendError"),
            (500, "internalError"),
            (400, "jobBackendError"),
            (400, "jobInternalError"),
        ] {
            let c = http(
                code,
                &body(
                    code,
                    reason,
                    "Error encountered during execution. Retrying may solve the problem.",
                    "INTERNAL",
                ),
            );
            assert_eq!(class_of(&c), ErrorClass::Transient, "{reason}");
        }
        let html = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>";
        let c = http(502, html);
        assert_eq!(class_of(&c), ErrorClass::Transient);
        assert!(message_of(&c).contains("HTTP 502") && message_of(&c).contains("502 Bad Gateway"));
        assert_eq!(class_of(&http(503, "")), ErrorClass::Transient);
        let c = classify(&Failure::Transport {
            message: "operation timed out".into(),
        });
        assert_eq!(class_of(&c), ErrorClass::Transient);
        let c = http(
            401,
            &body(
                401,
                "authError",
                "Request had invalid authentication credentials.",
                "UNAUTHENTICATED",
            ),
        );
        assert_eq!(class_of(&c), ErrorClass::Transient);
    }

    #[test]
    fn a_body_without_errors_is_classified_by_its_message_and_code() {
        // The crate cannot decode these (bigquery-facts A3); we keep code and message.
        let c = http(400, &format!("{{\"error\":{{\"code\":400,\"message\":\"{STREAMING_BUFFER}\",\"status\":\"INVALID_ARGUMENT\"}}}}"));
        assert_eq!(class_of(&c), ErrorClass::StreamingBuffer);
        let c = http(500, "{\"error\":{\"code\":500,\"message\":\"Internal error encountered.\",\"status\":\"INTERNAL\"}}");
        assert_eq!(class_of(&c), ErrorClass::Transient);
        let c = http(404, "{\"error\":{\"code\":404,\"message\":\"Not found: Table p:d.t\",\"status\":\"NOT_FOUND\"}}");
        assert_eq!(class_of(&c), ErrorClass::Permanent);
        assert_eq!(message_of(&c), "Not found: Table p:d.t");
    }

    #[test]
    fn a_request_too_large_for_googles_front_end_is_permanent() {
        let html = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 413 (Request Entity Too Large)!!1</title>\n  <p><b>413.</b> <ins>That\u{2019}s an error.</ins>\n  <p>Your client issued a request that was too large.\n  <ins>That\u{2019}s all we know.</ins>";
        let c = http(413, html);
        assert_eq!(class_of(&c), ErrorClass::Permanent);
        assert!(message_of(&c).contains("413") && message_of(&c).contains("10 MB"));
    }

    #[test]
    fn upsert_streams_is_permanent_never_a_conflict() {
        let c = http(400, &body(400, "invalidQuery", UPSERT, "INVALID_ARGUMENT"));
        assert_eq!(class_of(&c), ErrorClass::Permanent);
        assert_eq!(message_of(&c), UPSERT);
        assert_eq!(ErrorClass::Permanent.conflict_type(), None);
    }

    #[test]
    fn not_found_access_denied_and_invalid_queries_are_permanent() {
        for (code, reason, message) in [
            (404, "notFound", "Not found: Table nba-props-platform:nba_raw.missing was not found in location US"),
            (403, "accessDenied", "Access Denied: Project p: User does not have bigquery.jobs.create permission in project p."),
            (400, "invalidQuery", "Syntax error: Unexpected keyword MERGE at [1:1]"),
            (400, "invalid", "The query is too large. The maximum standard SQL query length is 1024.00K characters, including comments and white space characters."),
        ] {
            let c = http(code, &body(code, reason, message, "INVALID_ARGUMENT"));
            assert_eq!(class_of(&c), ErrorClass::Permanent, "{reason}");
        }
    }

    #[test]
    fn duplicate_jobs_are_looked_up_not_failed() {
        let c = http(
            409,
            &body(
                409,
                "duplicate",
                "Already Exists: Job p:US.streamguard-x-1",
                "ALREADY_EXISTS",
            ),
        );
        assert_eq!(c, Classified::Duplicate);
        assert_eq!(
            http(
                409,
                "{\"error\":{\"code\":409,\"message\":\"Already Exists\"}}"
            ),
            Classified::Duplicate
        );
    }

    #[test]
    fn job_error_results_follow_the_same_table() {
        let job = |reason: &str, message: &str| {
            classify(&Failure::Job {
                reason: Some(reason.into()),
                message: Some(message.into()),
            })
        };
        assert_eq!(
            class_of(&job("invalidQuery", STREAMING_BUFFER)),
            ErrorClass::StreamingBuffer
        );
        assert_eq!(
            class_of(&job("invalidQuery", UPSERT)),
            ErrorClass::Permanent
        );
        assert_eq!(
            class_of(&job(
                "invalidQuery",
                "Could not serialize access to table p.d.t due to concurrent update"
            )),
            ErrorClass::ConcurrentDml
        );
        assert_eq!(
            class_of(&job("quotaExceeded", "Quota exceeded")),
            ErrorClass::QuotaExceeded
        );
        assert_eq!(
            class_of(&job("backendError", "Backend error")),
            ErrorClass::Transient
        );
        assert_eq!(
            class_of(&job("invalidQuery", "Unrecognized name: pointz at [3:7]")),
            ErrorClass::Permanent
        );
        let bare = classify(&Failure::Job {
            reason: None,
            message: None,
        });
        assert_eq!(class_of(&bare), ErrorClass::Permanent);
    }
}
