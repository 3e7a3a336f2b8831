//! The API contract: the OpenAPI 3.1 document generated from the handlers' `#[utoipa::path]`
//! attributes and the types' `ToSchema` derives, served at `GET /openapi.json`, checked in
//! at `openapi/openapi.json` (a test fails when the two differ; regenerate with
//! `streamguard openapi > openapi/openapi.json`), and rendered for people at `GET /docs`.
//!
//! `/docs` is a small self-contained page of our own (`docs.html`, compiled into the
//! binary) that fetches `/openapi.json` from the same origin and renders it. It loads
//! nothing from anywhere else: the utoipa UI crates were checked and each one fetches its
//! renderer at run time (`utoipa-redoc` 7.0.0 from cdn.redoc.ly, `utoipa-rapidoc` 7.0.0
//! from unpkg.com, `utoipa-scalar` 0.4.0 from cdn.jsdelivr.net — see their `res/*.html`),
//! and `utoipa-swagger-ui` downloads its assets in its build script; none of that works
//! offline.
//!
//! Errors common to every operation are added by [`CommonResponses`]: 401 and 403 on each
//! operation that needs a scope, 500 on all of them; all as problem+json.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The page served at `/docs`.
const DOCS_HTML: &str = include_str!("docs.html");

/// The OpenAPI document's source: every documented route and schema.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "streamguard",
        description = "Exactly-once BigQuery backfills. Processors POST row batches; each key's rows are replaced atomically, and units that BigQuery refuses because their rows are still in the streaming buffer are retried from a Postgres job table.\n\nAuthentication: `Authorization: Bearer <token>`; each operation lists the scope it needs (`write`, `read`, `admin`). Every error is `application/problem+json` (RFC 9457) with `errors[].pointer` naming the offending field.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::batches::create,
        super::batches::show,
        super::units::list,
        super::conflicts::list,
        super::overview::overview,
        super::overview::me,
        super::runs::show,
        super::runs::list,
        super::statements::show,
        super::conflicts::unresolved,
        super::conflicts::summary,
        super::conflicts::show,
        super::operator::report,
        super::operator::attempt,
        super::operator::resolve,
        super::operator::retry,
        super::operator::force,
        super::operator::cancel,
        super::breakers::list,
        super::breakers::show,
        super::breakers::reset,
        super::breakers::force_open,
        super::breakers::disable,
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        super::emulator::insert_all,
        super::emulator::rows,
        super::emulator_tables::declare,
        super::emulator_faults::set_faults,
        super::emulator_faults::clear_faults,
        super::emulator_faults::flush,
        super::emulator_tables::show,
        openapi_json,
        docs,
        super::console::page,
    ),
    components(schemas(super::Problem, crate::domain::FieldError)),
    modifiers(&CommonResponses),
    tags(
        (name = "batches", description = "Submit row batches and follow their write units."),
        (name = "conflicts", description = "The conflict log: the seed's dashboard queries and single conflicts."),
        (name = "breakers", description = "The circuit breakers shared by every replica: what a processor checks before writing, and the operators' reset, force-open and disable."),
        (name = "operator", description = "Operator actions on conflicts and units: retry, resolve, force (made safe), cancel. Each is recorded with the actor and the reason."),
        (name = "health", description = "Liveness and readiness; no token needed."),
        (name = "emulator", description = "The embedded BigQuery emulator (mounted only when it is the warehouse): declare a table with BigQuery's tables.insert body, stream rows in, read a table back, inject faults per table, flush a table's buffer."),
        (name = "meta", description = "This document and its rendering."),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The OpenAPI document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as pretty JSON with a trailing newline: what
/// `streamguard openapi` prints and `openapi/openapi.json` holds.
pub fn spec_json() -> String {
    let mut json = spec().to_pretty_json().expect("the spec serializes");
    json.push('\n');
    json
}

/// Adds the bearer security scheme, and the responses every operation shares: 401 and 403
/// where a scope is needed, 413 and 415 where it takes a body, 500 everywhere.
#[derive(Debug)]
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token configured in STREAMGUARD_TOKENS_FILE or STREAMGUARD_TOKENS (stored there as its SHA-256).",
                    ))
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| r != &Default::default()));
                let responses = &mut operation.responses.responses;
                if secured {
                    responses.insert(
                        "401".into(),
                        problem_response("No bearer token, or one that is not configured.", true),
                    );
                    responses.insert(
                        "403".into(),
                        problem_response(
                            "The token lacks the scope this operation needs; `required_scope` names it.",
                            false,
                        ),
                    );
                }
                if operation.request_body.is_some() {
                    responses.insert(
                        "413".into(),
                        problem_response("The body exceeds STREAMGUARD_MAX_BODY_BYTES.", false),
                    );
                    responses.insert(
                        "415".into(),
                        problem_response("The body is not `application/json`.", false),
                    );
                }
                responses.insert(
                    "500".into(),
                    problem_response(
                        "The service failed; the body is generic, the cause is logged.",
                        false,
                    ),
                );
            }
        }
    }
}

fn problem_response(description: &str, challenge: bool) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if challenge {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some("`Bearer realm=\"streamguard\"`, with `error=\"invalid_token\"` when a token was sent"))
                .build(),
        );
    }
    RefOr::T(response.build())
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document (as checked in at openapi/openapi.json).", content_type = "application/json", body = Object)),
    security((), ("bearer" = ["read"]))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], spec_json())
}

/// A browsable reference of this API, rendered in the browser from `/openapi.json`
/// without loading anything from elsewhere.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "meta",
    responses((status = 200, description = "An HTML page.", content_type = "text/html", body = String)),
    security((), ("bearer" = ["read"]))
)]
pub(crate) async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

use utoipa::PartialSchema;

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in spec is what the code generates. On failure, regenerate it with
    /// `cargo run -q -- openapi > openapi/openapi.json` and review the diff.
    #[test]
    fn checked_in_spec_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == spec_json(),
            "openapi/openapi.json is out of date: run `cargo run -q -- openapi > openapi/openapi.json` and commit it"
        );
    }

    #[test]
    fn every_operation_has_a_unique_id_and_documents_its_errors_as_problem_json() {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        let mut operation_ids = std::collections::BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(
                    !id.is_empty() && operation_ids.insert(id),
                    "{method} {path}: operationId missing or not unique"
                );
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("500"), "{method} {path}");
                let needs_token_sometimes = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r != &serde_json::json!({})));
                if needs_token_sometimes {
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403"),
                        "{method} {path}"
                    );
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"]
                                .get("application/problem+json")
                                .is_some(),
                            "{method} {path} {status} is not problem+json"
                        );
                    }
                }
            }
        }
    }
}
