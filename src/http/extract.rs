//! Extractors whose rejections are our [`Error`], so malformed JSON, a bad path or a bad
//! query string answer problem+json like every other error.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::Error;
use crate::domain::batch::MAX_REPORTED_ERRORS;
use crate::domain::{raw_json, FieldError};

/// A strict `axum::Json` with problem+json rejections. The body must be
/// `application/json` (413 past `STREAMGUARD_MAX_BODY_BYTES`), well-formed (400 naming the
/// JSON pointer the parser reached: syntax, invalid UTF-8, lone surrogate escapes such as
/// `"\ud800"`), a JSON object (422 otherwise: serde would take an array for a struct), of
/// the expected shape (422 with the pointer), and free of numbers that would be rounded,
/// NUL characters and repeated member names (422 with each one's pointer; see
/// [`crate::domain::raw_json`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(
                    "the request body exceeds the limit (STREAMGUARD_MAX_BODY_BYTES); split the batch"
                        .into(),
                ),
                _ => Error::BadRequest(rejection.body_text()),
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses a JSON body strictly (see [`Json`]).
///
/// # Errors
/// [`Error::Malformed`] (400) for text that is not JSON, [`Error::Unprocessable`] (422)
/// for the wrong shape or a number that would be rounded; each names its JSON pointer.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // serde accepts a JSON array for a struct (its fields in order); every body of this
    // API is an object, so anything else that is well-formed JSON is refused here.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        let got = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(Error::Unprocessable {
            detail: format!("the body must be a JSON object (`{{...}}`); got {got}"),
            errors: vec![FieldError::new(
                "",
                format!("expected a JSON object, got {got}"),
            )],
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let pointer = pointer(e.path());
        let inner = e.into_inner();
        let message = inner.to_string();
        if message.contains("recursion limit exceeded") {
            Error::Unprocessable {
                detail: "the body nests deeper than the JSON parser allows (128 levels)".into(),
                errors: vec![FieldError::limit(
                    pointer,
                    format!("nested too deeply ({message}); rows may nest at most STREAMGUARD_MAX_DEPTH levels"),
                    crate::domain::batch::BatchLimits::MAX_DEPTH_VAR,
                )],
            }
        } else if inner.classify() == serde_json::error::Category::Data {
            Error::Unprocessable {
                detail: format!("the body does not have the expected shape: {message}"),
                errors: vec![FieldError::new(pointer, message)],
            }
        } else {
            Error::Malformed {
                detail: format!("the body is not valid JSON: {message}"),
                errors: vec![FieldError::new(pointer, message)],
            }
        }
    })?;
    deserializer.end().map_err(|e| Error::Malformed {
        detail: format!("the body has more after its JSON value: {e}"),
        errors: vec![FieldError::new("", e.to_string())],
    })?;
    let found = raw_json::scan_body(bytes, MAX_REPORTED_ERRORS);
    if !found.is_empty() {
        return Err(Error::Unprocessable {
            detail: format!("{}; nothing was accepted", found.summary()),
            errors: found.errors,
        });
    }
    Ok(value)
}

/// A `serde_path_to_error` path as a JSON pointer (`rows[3].game_id` → `/rows/3/game_id`).
pub(crate) fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Enum { variant } => Some(format!("/{variant}")),
            Segment::Unknown => None,
        })
        .collect()
}

/// `axum::extract::Path` with problem+json rejections.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e: PathRejection| Error::NotFound(path_problem::<T>(e)))
    }
}

/// A path rejection in plain words: which parameter, what it must be, what it was.
fn path_problem<T>(rejection: PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        return rejection.body_text();
    };
    let form = if std::any::type_name::<T>().contains("Uuid") {
        "a UUID, like 0b6c2e0a-8f4d-4c3e-9a57-2d1f0e6b9c41"
    } else {
        "of the documented form"
    };
    match e.into_kind() {
        ErrorKind::ParseErrorAtKey { key, value, .. }
        | ErrorKind::DeserializeError { key, value, .. } => {
            format!("the path parameter `{key}` must be {form}; got {value:?}")
        }
        ErrorKind::ParseErrorAtIndex { value, .. } | ErrorKind::ParseError { value, .. } => {
            format!("a path parameter must be {form}; got {value:?}")
        }
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("the path parameter `{key}` is not valid UTF-8")
        }
        other => other.to_string(),
    }
}

/// `axum::extract::Query` with problem+json rejections.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| Error::BadRequest(e.body_text()))
    }
}
