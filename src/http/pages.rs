//! The browser pages, compiled into the binary from `static/` so the server
//! runs from any directory.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::AppState;

const TUTORIAL_PAGE: &str = include_str!("../../static/index.html");

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(tutorial_page))
        .route("/index.html", get(tutorial_page))
}

/// The tutorial's page: a header and two fields updated live from `/ws`.
async fn tutorial_page() -> Html<&'static str> {
    Html(TUTORIAL_PAGE)
}
