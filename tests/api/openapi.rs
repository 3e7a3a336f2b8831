//! The served contract: `/openapi.json` is the generated (and checked-in) document, and
//! `/docs` is a self-contained page that loads nothing from another origin.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test]
async fn openapi_json_is_the_checked_in_spec(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, served) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, checked_in);
    assert_eq!(
        served["paths"]["/v1/batches"]["post"]["security"][0]["bearer"][0],
        "write"
    );
    let example = &served["components"]["schemas"]["BatchRequest"]["example"];
    assert_eq!(example["rows"][0]["game_id"], "20260124_LAL_BOS");
    app.stop().await;
}

#[sqlx::test]
async fn docs_page_works_offline(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"fetch("openapi.json")"#));
    for remote in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(
            !html.contains(remote),
            "the page loads {remote}… from elsewhere"
        );
    }
    app.stop().await;
}
