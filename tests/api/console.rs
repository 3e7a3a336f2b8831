//! The routes the operator console reads — the conflict list with its filters and cursor,
//! the unit list without `state`, the overview — the page itself, and what `/metrics`
//! exports for it.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use streamguard::http::auth::{token_digest, Tokens};

use crate::helpers::{game_batch, spawn_app, spawn_app_with, TestApp};

const TABLE: &str = "nba-props-platform.nba_raw.bdl_player_boxscores";
const OTHER: &str = "nba-props-platform.nba_raw.nbac_gamebook";

async fn report(app: &TestApp, processor: &str, table: &str, game: &str, kind: &str) -> String {
    let (status, r) = app
        .post(
            "/v1/conflicts",
            &json!({
                "processor_name": processor,
                "table": table,
                "key": {"game_id": game},
                "conflict_type": kind,
                "error_message": "would affect rows in the streaming buffer",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    r["conflict_id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conflict_id"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test]
async fn the_conflict_list_filters_and_pages_without_repeats(pool: PgPool) {
    let app = spawn_app(pool).await;
    let a = report(
        &app,
        "bdl_boxscores_processor",
        TABLE,
        "20260124_LAL_BOS",
        "streaming_buffer",
    )
    .await;
    let b = report(
        &app,
        "bdl_boxscores_processor",
        TABLE,
        "20260124_NYK_MIA",
        "streaming_buffer",
    )
    .await;
    let c = report(
        &app,
        "nbac_gamebook_processor",
        OTHER,
        "20260125_LAL_DEN",
        "concurrent_dml",
    )
    .await;
    let (status, r) = app
        .post(
            &format!("/v1/conflicts/{b}/resolve"),
            &json!({"method": "manual", "note": "reloaded by hand"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    // Everything, newest first.
    let (status, all) = app.get("/v1/conflicts").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), vec![c.clone(), b.clone(), a.clone()]);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["conflicts"][1]["resolution_method"], "manual");
    assert_eq!(all["conflicts"][1]["resolved"], true);

    // Each filter narrows.
    for (query, expected) in [
        ("processor=bdl_boxscores_processor", vec![&b, &a]),
        (&format!("table={OTHER}") as &str, vec![&c]),
        ("key=lal", vec![&c, &a]),
        ("type=concurrent_dml", vec![&c]),
        ("resolution=open", vec![&c, &a]),
        ("resolution=closed", vec![&b]),
        ("resolution=manual", vec![&b]),
        ("resolution=timeout", vec![]),
        (
            "processor=bdl_boxscores_processor&resolution=open&key=LAL",
            vec![&a],
        ),
        ("until=2000-01-01T00:00:00Z", vec![]),
        ("since=2000-01-01T00:00:00Z&key=NYK", vec![&b]),
    ] {
        let (status, page) = app.get(&format!("/v1/conflicts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&page), expected, "{query}");
    }

    // Pages of one: every conflict exactly once, then no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/conflicts?limit=1&cursor={c}"),
            None => "/v1/conflicts?limit=1".into(),
        };
        let (status, page) = app.get(&q).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![c, b, a]);
    app.stop().await;
}

#[sqlx::test]
async fn the_conflict_list_refuses_bad_filters_with_problem_json(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (query, names) in [
        ("type=buffer", "`type`"),
        ("resolution=maybe", "`resolution`"),
        ("cursor=abc", "`cursor`"),
        ("limit=0", "`limit`"),
        ("limit=501", "`limit`"),
        ("since=yesterday", "since"),
        ("state=open", "state"),
        ("key=a%00b", "`key`"),
    ] {
        let (status, problem) = app.get(&format!("/v1/conflicts?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(names), "{query}: {problem}");
    }
    app.stop().await;
}

#[sqlx::test]
async fn units_list_without_state_and_the_overview_counts_every_state(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, r) = app
        .post_batch(
            &game_batch(TABLE, "20260124_LAL_BOS", "2026-01-24", 2, "v1"),
            Some(10.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = app
        .post_batch(
            &game_batch(TABLE, "20260124_NYK_MIA", "2026-01-24", 2, "v1"),
            Some(10.0),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    let (status, units) = app.get("/v1/units").await;
    assert_eq!(status, StatusCode::OK, "{units}");
    assert_eq!(units["state"], Value::Null);
    let listed = units["units"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|u| u["state"] == "loaded"), "{units}");
    let (_, loaded) = app.get("/v1/units?state=loaded&limit=1").await;
    assert_eq!(loaded["units"].as_array().unwrap().len(), 1);
    let (status, _) = app.get("/v1/units?state=landed").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, o) = app.get("/v1/overview").await;
    assert_eq!(status, StatusCode::OK, "{o}");
    let states: HashSet<&str> = o["units"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "pending",
        "deferred",
        "loaded",
        "failed",
        "unresolved",
        "superseded",
        "cancelled",
    ]
    .into();
    assert_eq!(states, expected);
    assert_eq!(o["units"]["loaded"], 2);
    assert_eq!(o["units"]["failed"], 0);
    assert_eq!(o["breakers"].as_object().unwrap().len(), 5, "{o}");
    assert_eq!(o["jobs"]["due"], 0);
    assert_eq!(o["conflicts_unresolved"], 0);
    app.stop().await;
}

#[sqlx::test]
async fn metrics_export_every_state_and_a_latency_histogram(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, _) = app.get("/v1/conflicts/summary").await;
    assert_eq!(status, StatusCode::OK);
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "streamguard_units{state=\"failed\"} 0\n",
        "streamguard_units{state=\"unresolved\"} 0\n",
        "streamguard_breakers{state=\"open\"} 0\n",
        "streamguard_breakers{state=\"half_open\"} 0\n",
        "# TYPE streamguard_http_request_duration_seconds histogram\n",
        "streamguard_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/conflicts/summary\",status_class=\"2xx\"}",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    app.stop().await;
}

#[sqlx::test]
async fn the_console_page_needs_no_token_and_its_data_does(pool: PgPool) {
    let lines = format!("ops read,admin {}", token_digest("ops-token"));
    let app = spawn_app_with(pool, |s| {
        s.http.access.tokens = Tokens::parse(&lines, "test").unwrap()
    })
    .await;
    for (path, content_type, needle) in [
        ("/", "text/html", "console.js"),
        ("/console/", "text/html", "console.js"),
        ("/console/conflicts", "text/html", "console.js"),
        ("/console/console.js", "text/javascript", "sessionStorage"),
        ("/console/conflicts.js", "text/javascript", "/v1/conflicts"),
        ("/console/views.js", "text/javascript", "/v1/overview"),
        ("/console/console.css", "text/css", "font-family"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let ct = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path}");
        // Nothing from elsewhere: no absolute URL is loaded.
        assert!(
            !body.contains("src=\"http") && !body.contains("href=\"http"),
            "{path}"
        );
    }
    let (status, _, _) = app.get_as("/v1/overview", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app.get_as("/v1/conflicts", Some("ops-token")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
