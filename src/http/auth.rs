//! Access control: bearer tokens with scopes, checked by one middleware in front of every
//! route.
//!
//! Tokens come from configuration as lines `name scope[,scope] sha256-of-token` (a file,
//! `STREAMGUARD_TOKENS_FILE`, and/or the variable `STREAMGUARD_TOKENS`, whose lines may
//! also be separated by `;`). Only the SHA-256 digests are kept; a presented token is
//! hashed and compared with every configured digest in constant time (`subtle`), so
//! neither the token nor the position of a mismatch leaks through timing.
//!
//! Each request's caller becomes an [`Actor`] in the request's extensions (handlers take
//! it as an extractor) and its *name* — never the token — is recorded on the request's
//! log span as `actor`. With no tokens configured every caller is
//! [`Actor::anonymous`] with every scope; [`check_exposure`] refuses that on a
//! non-loopback address unless `STREAMGUARD_ALLOW_ANONYMOUS=true`.
//!
//! What each route needs ([`required_access`]):
//!
//! | request | needs |
//! | --- | --- |
//! | `GET /healthz`, `GET /readyz` | nothing |
//! | `GET /`, `GET /console/...` (the console page; it holds no data and asks for a token) | nothing |
//! | `GET /docs`, `GET /openapi.json` | nothing, or `read` with `STREAMGUARD_DOCS_PUBLIC=false` |
//! | `GET /metrics` | `read`, or nothing with `STREAMGUARD_METRICS_PUBLIC=true` |
//! | `POST /v1/batches`, `POST /v1/conflicts` (register a conflict), `POST /v1/conflicts/{id}/attempts` (log a processor's retry) | `write` |
//! | `POST /emulator/tables/{table}/insertAll` (stream rows in, like a processor), `POST /emulator/tables` (declare a table, like `tables.insert`) | `write` |
//! | any other `GET` or `HEAD` (batches, conflicts, summaries, breakers, emulator rows) | `read` |
//! | any other method (operator actions: retry, resolve, force, cancel, breaker changes; emulator faults) | `admin` |
//!
//! Scopes do not imply each other: an operator's token usually lists `read,admin`.
//! Unknown routes need `read` or `admin` like any other, so an unauthenticated caller
//! learns nothing about which routes exist.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, Error};

/// A permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Submit batches and register conflicts.
    Write,
    /// Read batches, conflicts, summaries and breakers.
    Read,
    /// Operator actions: retry, resolve, force, cancel, breaker changes.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Write, Scope::Read, Scope::Admin];

    /// The scope's name in token lines and error messages: `write`, `read`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a request: the configured token's name and its scopes, or
/// [`Actor::anonymous`] when no tokens are configured. Put in the request's extensions by
/// the auth middleware; handlers take it as an extractor to record "who" (e.g. on an
/// operator action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name from configuration (e.g. `bdl-processor`), or `anonymous`.
    pub name: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}

impl Actor {
    /// The caller when no tokens are configured: named `anonymous`, with every scope.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            scopes: Scope::ALL.into_iter().collect(),
        }
    }

    /// Whether the actor holds `scope`.
    pub fn can(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Error;

    /// The request's actor. Every route runs behind the auth middleware, so a missing
    /// actor is a wiring bug and answers 500.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Actor>().cloned().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "no Actor in the request: the auth middleware is not in front of this route"
            ))
        })
    }
}

/// One configured token: its name, scopes and SHA-256 digest.
#[derive(Clone)]
struct TokenEntry {
    name: String,
    scopes: BTreeSet<Scope>,
    digest: [u8; 32],
}

/// The configured tokens. Holds digests only; `Debug` shows names and scopes.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.name, &e.scopes)))
            .finish()
    }
}

impl Tokens {
    /// Parses token lines `name scope[,scope] sha256hex` from `text`, one per line or
    /// separated by `;`; blank lines and lines starting with `#` are skipped. `source`
    /// names where the text came from, for messages (e.g. `STREAMGUARD_TOKENS_FILE=/etc/…`).
    ///
    /// # Errors
    /// A message naming the source and the line: a line without three fields, a name that
    /// is not 1–64 of `[A-Za-z0-9._-]`, an unknown scope, a digest that is not 64 hex
    /// digits, or a name used twice.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let mut tokens = Self::default();
        tokens.add(text, source)?;
        Ok(tokens)
    }

    /// Adds the lines of `text` (same form as [`Tokens::parse`]).
    ///
    /// # Errors
    /// As [`Tokens::parse`]; a name already configured is an error too.
    pub fn add(&mut self, text: &str, source: &str) -> Result<(), String> {
        let form = "expected `name scope[,scope] sha256-of-token`, scopes from write, read, admin, the digest as 64 hex digits (`printf %s \"$TOKEN\" | sha256sum`)";
        for (n, line) in text.split(['\n', ';']).enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{source}, entry {}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scopes, digest] = fields.as_slice() else {
                return Err(format!("{at}: {} field(s); {form}", fields.len()));
            };
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !name_ok {
                return Err(format!(
                    "{at}: token name {name:?} must be 1 to 64 letters, digits, dots, underscores or hyphens"
                ));
            }
            let scopes = scopes
                .split(',')
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        format!("{at}: unknown scope {s:?}; scopes are write, read, admin")
                    })
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            let digest = parse_digest(digest).ok_or_else(|| {
                format!(
                    "{at}: the third field must be the token's SHA-256 as 64 hex digits; {form}"
                )
            })?;
            if self.entries.iter().any(|e| e.name == *name) {
                return Err(format!("{at}: token name {name:?} is configured twice"));
            }
            self.entries.push(TokenEntry {
                name: (*name).to_owned(),
                scopes,
                digest,
            });
        }
        Ok(())
    }

    /// Whether no token is configured (anonymous mode).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The actor a presented token belongs to, or `None`. Hashes the token and compares the
    /// digest with every configured one in constant time, without stopping at a match.
    pub fn authenticate(&self, token: &str) -> Option<Actor> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found.map(|e| Actor {
            name: e.name.clone(),
            scopes: e.scopes.clone(),
        })
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as token lines carry it.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Access settings: the tokens and which read-only endpoints are public.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// The configured tokens; empty means anonymous mode.
    pub tokens: Tokens,
    /// Serve without tokens on a non-loopback address (`STREAMGUARD_ALLOW_ANONYMOUS`).
    pub allow_anonymous: bool,
    /// `/docs` and `/openapi.json` need no token (`STREAMGUARD_DOCS_PUBLIC`, default true).
    pub docs_public: bool,
    /// `/metrics` needs no token (`STREAMGUARD_METRICS_PUBLIC`, default false).
    pub metrics_public: bool,
}

/// Whether to serve without tokens on a non-loopback address unless set
/// (`STREAMGUARD_ALLOW_ANONYMOUS`).
pub const DEFAULT_ALLOW_ANONYMOUS: bool = false;
/// Whether `/docs` and `/openapi.json` are public unless set (`STREAMGUARD_DOCS_PUBLIC`).
pub const DEFAULT_DOCS_PUBLIC: bool = true;
/// Whether `/metrics` is public unless set (`STREAMGUARD_METRICS_PUBLIC`).
pub const DEFAULT_METRICS_PUBLIC: bool = false;

impl Default for AccessSettings {
    /// Anonymous (no tokens), docs public, metrics behind `read`.
    fn default() -> Self {
        Self {
            tokens: Tokens::default(),
            allow_anonymous: DEFAULT_ALLOW_ANONYMOUS,
            docs_public: DEFAULT_DOCS_PUBLIC,
            metrics_public: DEFAULT_METRICS_PUBLIC,
        }
    }
}

/// Refuses anonymous mode on an address other hosts can reach.
///
/// # Errors
/// A message naming the settings when no token is configured, `listen` is not a loopback
/// address and `STREAMGUARD_ALLOW_ANONYMOUS` is not `true`.
pub fn check_exposure(access: &AccessSettings, listen: SocketAddr) -> Result<(), String> {
    if access.tokens.is_empty() && !listen.ip().is_loopback() && !access.allow_anonymous {
        return Err(format!(
            "refusing to listen on {listen} without access control: configure tokens (STREAMGUARD_TOKENS_FILE or STREAMGUARD_TOKENS), listen on a loopback address (STREAMGUARD_LISTEN=127.0.0.1:8080), or set STREAMGUARD_ALLOW_ANONYMOUS=true to serve everyone"
        ));
    }
    Ok(())
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Open,
    /// A token with this scope.
    Scope(Scope),
}

/// What `method` on `path` needs (the table in the module docs).
pub fn required_access(access: &AccessSettings, method: &Method, path: &str) -> Access {
    let read_only = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/healthz" | "/readyz" if read_only => Access::Open,
        "/" | "/console" if read_only => Access::Open,
        p if read_only && p.starts_with("/console/") => Access::Open,
        "/docs" | "/openapi.json" if read_only && access.docs_public => Access::Open,
        "/metrics" if read_only && access.metrics_public => Access::Open,
        "/v1/batches" | "/v1/conflicts" | "/emulator/tables" if *method == Method::POST => {
            Access::Scope(Scope::Write)
        }
        p if *method == Method::POST
            && p.starts_with("/v1/conflicts/")
            && p.ends_with("/attempts") =>
        {
            Access::Scope(Scope::Write)
        }
        p if *method == Method::POST
            && p.starts_with("/emulator/tables/")
            && p.ends_with("/insertAll") =>
        {
            Access::Scope(Scope::Write)
        }
        _ if read_only => Access::Scope(Scope::Read),
        _ => Access::Scope(Scope::Admin),
    }
}

/// The middleware: authenticates the bearer token, checks the route's scope, records the
/// actor's name on the request span and puts the [`Actor`] in the request's extensions.
/// 401 (with `WWW-Authenticate: Bearer`) for a missing or unknown token, 403 naming the
/// missing scope.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = &state.settings.access;
    let needed = required_access(access, request.method(), request.uri().path());
    let actor = if access.tokens.is_empty() {
        Actor::anonymous()
    } else {
        match bearer(request.headers()) {
            Some(token) => match access.tokens.authenticate(token) {
                Some(actor) => actor,
                None if needed == Access::Open => Actor::anonymous_open(),
                None => {
                    return Error::Unauthorized {
                        detail: "the bearer token is not valid".into(),
                        invalid_token: true,
                    }
                    .into_response()
                }
            },
            None if needed == Access::Open => Actor::anonymous_open(),
            None => {
                return Error::Unauthorized {
                    detail: "this route needs a bearer token: send `Authorization: Bearer <token>`"
                        .into(),
                    invalid_token: false,
                }
                .into_response()
            }
        }
    };
    tracing::Span::current().record("actor", actor.name.as_str());
    if let Access::Scope(scope) = needed {
        if !actor.can(scope) {
            return Error::Forbidden {
                detail: format!(
                    "token {:?} lacks the `{scope}` scope this request needs",
                    actor.name
                ),
                scope,
            }
            .into_response();
        }
    }
    request.extensions_mut().insert(actor);
    next.run(request).await
}

impl Actor {
    /// The caller of an open route who sent no valid token: named `anonymous`, no scopes.
    fn anonymous_open() -> Self {
        Self {
            name: "anonymous".into(),
            scopes: BTreeSet::new(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, scopes: &str, token: &str) -> String {
        format!("{name} {scopes} {}", token_digest(token))
    }

    #[test]
    fn tokens_parse_and_authenticate_by_digest() {
        let text = format!(
            "# comment\n{}\n\n{};{}",
            line("bdl-processor", "write", "s3cret"),
            line("ops", "read,admin", "opstoken"),
            line("dash", "read", "dash")
        );
        let tokens = Tokens::parse(&text, "test").unwrap();
        let actor = tokens.authenticate("opstoken").unwrap();
        assert_eq!(actor.name, "ops");
        assert!(actor.can(Scope::Admin) && actor.can(Scope::Read) && !actor.can(Scope::Write));
        assert_eq!(tokens.authenticate("s3cret").unwrap().name, "bdl-processor");
        assert!(tokens.authenticate("S3cret").is_none());
        assert!(!format!("{tokens:?}").contains(&token_digest("s3cret")));
    }

    #[test]
    fn bad_token_lines_name_the_source_and_entry() {
        let e = Tokens::parse("a write", "STREAMGUARD_TOKENS").unwrap_err();
        assert!(e.contains("STREAMGUARD_TOKENS, entry 1"), "{e}");
        let e = Tokens::parse(&line("a", "write,root", "x"), "f").unwrap_err();
        assert!(e.contains("unknown scope \"root\""), "{e}");
        assert!(Tokens::parse("a write nothex", "f").is_err());
        let twice = format!("{}\n{}", line("a", "read", "x"), line("a", "write", "y"));
        assert!(Tokens::parse(&twice, "f").unwrap_err().contains("twice"));
    }

    #[test]
    fn routes_map_to_scopes() {
        let access = AccessSettings::default();
        let need = |m: Method, p: &str| required_access(&access, &m, p);
        assert_eq!(need(Method::GET, "/healthz"), Access::Open);
        assert_eq!(need(Method::GET, "/docs"), Access::Open);
        assert_eq!(need(Method::GET, "/metrics"), Access::Scope(Scope::Read));
        assert_eq!(
            need(Method::POST, "/v1/batches"),
            Access::Scope(Scope::Write)
        );
        assert_eq!(
            need(Method::GET, "/v1/batches/x"),
            Access::Scope(Scope::Read)
        );
        assert_eq!(
            need(Method::POST, "/v1/conflicts/x/resolve"),
            Access::Scope(Scope::Admin)
        );
        assert_eq!(
            need(Method::POST, "/v1/conflicts/x/attempts"),
            Access::Scope(Scope::Write)
        );
        assert_eq!(
            need(Method::POST, "/emulator/tables/p/insertAll"),
            Access::Scope(Scope::Write)
        );
        assert_eq!(
            need(Method::POST, "/emulator/tables"),
            Access::Scope(Scope::Write)
        );
        assert_eq!(
            need(Method::GET, "/emulator/tables/p/rows"),
            Access::Scope(Scope::Read)
        );
        assert_eq!(
            need(Method::DELETE, "/healthz"),
            Access::Scope(Scope::Admin)
        );
        let closed = AccessSettings {
            docs_public: false,
            ..AccessSettings::default()
        };
        assert_eq!(
            required_access(&closed, &Method::GET, "/openapi.json"),
            Access::Scope(Scope::Read)
        );
    }

    #[test]
    fn anonymous_mode_only_on_loopback_unless_allowed() {
        let mut access = AccessSettings::default();
        assert!(check_exposure(&access, "127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(check_exposure(&access, "[::1]:8080".parse().unwrap()).is_ok());
        let e = check_exposure(&access, "0.0.0.0:8080".parse().unwrap()).unwrap_err();
        assert!(e.contains("STREAMGUARD_ALLOW_ANONYMOUS"), "{e}");
        access.allow_anonymous = true;
        assert!(check_exposure(&access, "0.0.0.0:8080".parse().unwrap()).is_ok());
        access.allow_anonymous = false;
        access.tokens = Tokens::parse(&line("a", "read", "x"), "t").unwrap();
        assert!(check_exposure(&access, "0.0.0.0:8080".parse().unwrap()).is_ok());
    }
}
