//! The icon browsers show in a tab for every page: `/favicon.svg`, which the
//! pages link, and `/favicon.ico`, which browsers ask for on their own (the
//! same SVG, rather than a 404 in every log).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const ICON: &[u8] = include_bytes!("../../static/favicon.svg");

/// The icon's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
}
