//! The one HTTP error type: every failure answers `application/problem+json` (RFC 9457)
//! with `type`, `title`, `status`, `detail`, and `errors` naming each offending field by
//! JSON pointer. 5xx bodies stay generic; their cause is logged once, in the request span.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;

/// An HTTP error answer.
#[derive(Debug)]
pub enum Error {
    /// 400: the body is not JSON, or not the expected shape.
    BadRequest(String),
    /// 400 with the position of the problem: the body is not valid JSON (syntax, invalid
    /// UTF-8, a lone surrogate escape such as `"\ud800"`), each problem with its pointer.
    Malformed {
        /// Summary.
        detail: String,
        /// Where, as JSON pointers (as deep as the parser got).
        errors: Vec<FieldError>,
    },
    /// 401: no bearer token, or one that is not configured. Answers with
    /// `WWW-Authenticate: Bearer`.
    Unauthorized {
        /// What was wrong.
        detail: String,
        /// A token was sent but is unknown (`error="invalid_token"` in the challenge).
        invalid_token: bool,
    },
    /// 403: the token lacks the scope the route needs.
    Forbidden {
        /// What was wrong.
        detail: String,
        /// The missing scope.
        scope: crate::http::auth::Scope,
    },
    /// 404: no such resource.
    NotFound(String),
    /// 405: the route exists, the method does not (answers with `Allow`).
    MethodNotAllowed(String),
    /// 409: the action is refused in the resource's current state.
    Conflict(String),
    /// 413: the body exceeds the limit.
    PayloadTooLarge(String),
    /// 415: the body is not `application/json`.
    UnsupportedMediaType(String),
    /// 422: the body is well-formed but breaks a rule; each problem with its pointer.
    Unprocessable {
        /// Summary.
        detail: String,
        /// Each problem.
        errors: Vec<FieldError>,
    },
    /// 503: a dependency is not ready.
    Unavailable(String),
    /// 500: a bug or an unreachable dependency; logged, not shown.
    Internal(anyhow::Error),
}

/// The problem+json body (RFC 9457), the answer of every 4xx and 5xx.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "/problems/validation",
    "title": "The request breaks a rule",
    "status": 422,
    "detail": "the batch has 1 problem(s); nothing of it was accepted",
    "errors": [{"pointer": "/rows/3/game_id", "detail": "key column \"game_id\" is null; keys must have a value"}]
}))]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/validation`,
    /// `/problems/bad-request`, `/problems/unauthorized`, `/problems/forbidden`,
    /// `/problems/not-found`, `/problems/method-not-allowed`, `/problems/payload-too-large`,
    /// `/problems/unsupported-media-type`, `/problems/unavailable`, `/problems/internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, constant summary of the type.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for this request.
    pub detail: String,
    /// Each offending field (422, 413, and 400 where the position is known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On 403: the scope the request needs (`write`, `read` or `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
}

impl Error {
    fn parts(
        self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Vec<FieldError>,
    ) {
        match self {
            Self::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Malformed request",
                d,
                vec![],
            ),
            Self::Malformed { detail, errors } => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Malformed request",
                detail,
                errors,
            ),
            Self::Unauthorized { detail, .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                detail,
                vec![],
            ),
            Self::Forbidden { detail, .. } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Missing scope",
                detail,
                vec![],
            ),
            Self::NotFound(d) => (StatusCode::NOT_FOUND, "not-found", "Not found", d, vec![]),
            Self::MethodNotAllowed(d) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                d,
                vec![],
            ),
            Self::Conflict(d) => (
                StatusCode::CONFLICT,
                "conflict",
                "Refused in the current state",
                d,
                vec![],
            ),
            Self::PayloadTooLarge(d) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                d.clone(),
                vec![FieldError::limit("", d, super::MAX_BODY_BYTES_VAR)],
            ),
            Self::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                d,
                vec![],
            ),
            Self::Unprocessable { detail, errors } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request breaks a rule",
                detail,
                errors,
            ),
            Self::Unavailable(d) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Not ready",
                d,
                vec![],
            ),
            Self::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the service failed to handle the request; nothing was accepted unless a later GET shows it".into(),
                    vec![],
                )
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let challenge = match &self {
            Self::Unauthorized { invalid_token, .. } => Some(if *invalid_token {
                r#"Bearer realm="streamguard", error="invalid_token""#
            } else {
                r#"Bearer realm="streamguard""#
            }),
            _ => None,
        };
        let required_scope = match &self {
            Self::Forbidden { scope, .. } => Some(scope.as_str().to_owned()),
            _ => None,
        };
        let (status, kind, title, detail, errors) = self.parts();
        let body = Problem {
            kind: format!("/problems/{kind}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
            required_scope,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<crate::ops::Error> for Error {
    fn from(e: crate::ops::Error) -> Self {
        use crate::ops::Error as Ops;
        match e {
            Ops::Invalid { detail, errors } => Self::Unprocessable { detail, errors },
            Ops::NotFound(d) => Self::NotFound(d),
            Ops::Refused(d) => Self::Conflict(d),
            Ops::Unavailable(d) => Self::Unavailable(d),
            Ops::Store(e) => e.into(),
            Ops::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::IdempotencyMismatch { key, batch_id } => Self::Unprocessable {
                detail: format!(
                    "idempotency key {key:?} was already used for batch {batch_id} with a different payload; use a new key for new data"
                ),
                errors: vec![FieldError::new("/idempotency_key", "already used with a different payload")],
            },
            crate::store::Error::NotFound(d) => Self::NotFound(d),
            crate::store::Error::Refused(d) | crate::store::Error::Contention(d) => Self::Conflict(d),
            crate::store::Error::Invalid(pointer, detail) => Self::Unprocessable {
                detail: detail.clone(),
                errors: vec![FieldError::new(pointer, detail)],
            },
            other => Self::Internal(other.into()),
        }
    }
}

/// The result type of handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;
