//! The operator console: one page served at `/` and `/console/...`, compiled into the
//! binary (`console/index.html`, `console.css`, and the scripts `console.js` — helpers,
//! token, polling —, `conflicts.js` and `views.js`; plain files, no build step), loading
//! nothing from anywhere else. It reads and acts only through the
//! JSON API a user could call themselves, with the token the person types in (kept in the
//! browser's `sessionStorage`); the page itself holds no data, so it needs no token.
//!
//! `/console/<anything else>` answers the page too, so a bookmarked view
//! (`/console/#/conflicts/…`) or a mistyped one still opens the console.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_CSS: &str = include_str!("console/console.css");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONFLICTS_JS: &str = include_str!("console/conflicts.js");
const VIEWS_JS: &str = include_str!("console/views.js");

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/{*path}", get(asset))
}

/// The console page.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "console",
    tag = "meta",
    responses((status = 200, description = "The operator console, an HTML page that reads the JSON API (also at `/console/`).", content_type = "text/html", body = String)),
    security(())
)]
pub(crate) async fn page() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML)
}

/// `/console/console.css`, `/console/<script>.js`, or the page for any other path.
async fn asset(Path(path): Path<String>) -> Response {
    match path.as_str() {
        "console.css" => file("text/css; charset=utf-8", CONSOLE_CSS),
        "console.js" => file("text/javascript; charset=utf-8", CONSOLE_JS),
        "conflicts.js" => file("text/javascript; charset=utf-8", CONFLICTS_JS),
        "views.js" => file("text/javascript; charset=utf-8", VIEWS_JS),
        _ => file("text/html; charset=utf-8", INDEX_HTML),
    }
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new binary may bring a new page: let the browser revalidate each load.
            (header::CACHE_CONTROL, "no-cache"),
            // Nothing but this origin: no inline script, no third-party anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}
