//! The browser pages, compiled into the binary from `static/` so the server
//! runs from any directory.

use axum::response::Html;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

const TUTORIAL_PAGE: &str = include_str!("../../static/index.html");

/// The page routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tutorial_page))
}

/// The live page.
///
/// The tutorial's page: a header and two fields, latitude and longitude,
/// updated live from `/ws`.
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")),
)]
async fn tutorial_page() -> Html<&'static str> {
    Html(TUTORIAL_PAGE)
}
