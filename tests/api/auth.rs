//! Access control over HTTP: 401 with a Bearer challenge, 403 naming the scope, open
//! health routes, docs following their setting, the actor reaching handlers, and the
//! refusal to serve anonymously on a non-loopback address.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use streamguard::http::auth::{self, token_digest, Tokens};
use streamguard::http::Actor;
use streamguard::store::Store;
use streamguard::App;
use tower::ServiceExt;

use crate::helpers::{fast_settings, game_batch, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";

fn tokens() -> Tokens {
    let text = format!(
        "bdl-processor write {}\ndashboard read {}\nops read,admin {}",
        token_digest("w-token"),
        token_digest("r-token"),
        token_digest("a-token")
    );
    Tokens::parse(&text, "test").unwrap()
}

async fn secured(pool: PgPool, docs_public: bool) -> TestApp {
    spawn_app_with(pool, |s| {
        s.http.access.tokens = tokens();
        s.http.access.docs_public = docs_public;
    })
    .await
}

fn body(batch: &Value) -> Vec<u8> {
    serde_json::to_vec(batch).unwrap()
}

#[sqlx::test]
async fn missing_or_unknown_tokens_get_401_with_a_bearer_challenge(pool: PgPool) {
    let app = secured(pool, true).await;
    let batch = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v1");

    let (status, headers, problem) = app
        .post_raw("/v1/batches", "application/json", body(&batch), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="streamguard""#);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["type"], "/problems/unauthorized");

    let (status, headers, _) = app
        .post_raw(
            "/v1/batches",
            "application/json",
            body(&batch),
            Some("guess"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));

    let (status, _, _) = app.get_as("/v1/conflicts/summary", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (n,): (i64,) = sqlx::query_as("select count(*) from batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing was accepted");
    app.stop().await;
}

#[sqlx::test]
async fn each_scope_opens_its_routes_and_403_names_the_missing_one(pool: PgPool) {
    let app = secured(pool, true).await;
    let batch = game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v1");

    let (status, _, problem) = app
        .post_raw(
            "/v1/batches",
            "application/json",
            body(&batch),
            Some("r-token"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["required_scope"], "write");
    assert!(problem["detail"].as_str().unwrap().contains("`write`"));
    assert!(problem["detail"].as_str().unwrap().contains("dashboard"));

    let (status, headers, view) = app
        .post_raw(
            "/v1/batches",
            "application/json",
            body(&batch),
            Some("w-token"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let location = headers["location"].to_str().unwrap().to_owned();

    let (status, _, problem) = app.get_as(&location, Some("w-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["required_scope"], "read");
    let (status, _, shown) = app.get_as(&location, Some("r-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["batch_id"], view["batch_id"]);

    // Operator actions (any non-GET outside intake) need `admin`.
    let action = format!("/v1/conflicts/{}/resolve", uuid::Uuid::new_v4());
    let (status, _, problem) = app
        .post_raw(&action, "application/json", b"{}".to_vec(), Some("r-token"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["required_scope"], "admin");
    let (status, _, _) = app
        .post_raw(&action, "application/json", b"{}".to_vec(), Some("a-token"))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "admin passes; the route does not exist yet"
    );

    // The emulator: insertAll writes, rows reads.
    let (status, _, _) = app
        .post_raw(
            &format!("/emulator/tables/{TABLE}/insertAll"),
            "application/json",
            br#"{"rows": [{"game_id": "g"}]}"#.to_vec(),
            Some("r-token"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .get_as(&format!("/emulator/tables/{TABLE}/rows"), Some("r-token"))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[sqlx::test]
async fn health_is_open_and_docs_follow_their_setting(pool: PgPool) {
    let app = secured(pool.clone(), true).await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (status, _, _) = app.get_as(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _, _) = app.get_as("/docs", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::OK, "an open route ignores a bad token");
    app.stop().await;

    let app = secured(pool, false).await;
    let (status, _, _) = app.get_as("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/docs", "/openapi.json"] {
        let (status, _, _) = app.get_as(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _, _) = app.get_as(path, Some("r-token")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    app.stop().await;
}

#[sqlx::test]
async fn handlers_read_the_actor_the_middleware_recorded(pool: PgPool) {
    let mut settings = fast_settings(&pool);
    settings.http.access.tokens = tokens();
    let app = App::build_with_store(settings, Store::new(pool))
        .await
        .unwrap();
    let state = app.state().clone();
    let whoami = Router::new()
        .route("/v1/whoami", get(|actor: Actor| async move { actor.name }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .with_state(state);
    let request = axum::http::Request::get("/v1/whoami")
        .header("authorization", "Bearer a-token")
        .body(Body::empty())
        .unwrap();
    let response = whoami.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let name = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&name[..], b"ops");
}

#[sqlx::test]
async fn no_tokens_on_a_public_address_is_refused(pool: PgPool) {
    let mut settings = fast_settings(&pool);
    settings.listen = "0.0.0.0:0".parse().unwrap();
    let error = App::build_with_store(settings, Store::new(pool))
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("STREAMGUARD_ALLOW_ANONYMOUS") && message.contains("STREAMGUARD_TOKENS"),
        "{message}"
    );
}

#[sqlx::test]
async fn the_demo_backfill_runs_against_a_secured_service_with_its_token(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.access.tokens = Tokens::parse(
            &format!("demo write,read {}", token_digest("demo-token")),
            "test",
        )
        .unwrap();
        // 2 conflicts in 3 outcomes would trip the breaker and hold the rest for its open
        // period; this test is about the token.
        s.breaker.min_outcomes = u32::MAX;
    })
    .await;
    let mut args = streamguard::cli::demo::BackfillArgs {
        url: app.base.clone(),
        games: 4,
        buffered: 2,
        conflict_share: None,
        buffer: "1s".into(),
        players: 2,
        table: TABLE.into(),
        start_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 24).unwrap(),
        timeout: std::time::Duration::from_secs(60),
        quiet: true,
        token: None,
        faults: None,
    };
    assert!(
        streamguard::cli::demo::run(&args, |_| {}).await.is_err(),
        "refused without a token"
    );

    args.token = Some("demo-token".into());
    let report = streamguard::cli::demo::run(&args, |_| {})
        .await
        .expect("demo runs");
    assert_eq!(report.files, 4);
    assert_eq!((report.unresolved, report.failed), (0, 0));
    assert_eq!((report.duplicate_rows, report.missing_rows), (0, 0));
    app.stop().await;
}
