//! The browser pages and their assets, compiled into the binary from
//! `static/` so the server runs from any directory and needs no internet.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::error::Error;

const TUTORIAL_PAGE: &str = include_str!("../../static/index.html");
const MAP_PAGE: &str = include_str!("../../static/map.html");

/// Files under `/assets/`: path, media type, contents.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "map.js",
        "text/javascript",
        include_bytes!("../../static/map.js"),
    ),
    (
        "map.css",
        "text/css",
        include_bytes!("../../static/map.css"),
    ),
    (
        "vendor/world-atlas/countries-110m.json",
        "application/json",
        include_bytes!("../../static/vendor/world-atlas/countries-110m.json"),
    ),
    (
        "vendor/world-atlas/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/world-atlas/LICENSE"),
    ),
    (
        "vendor/topojson-client/topojson-client.min.js",
        "text/javascript",
        include_bytes!("../../static/vendor/topojson-client/topojson-client.min.js"),
    ),
    (
        "vendor/topojson-client/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/topojson-client/LICENSE"),
    ),
];

/// The page routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tutorial_page))
        .routes(routes!(map_page))
        .route("/assets/{*path}", get(asset))
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

/// The live map.
///
/// Every tracker's latest position on a world map with a short trail, the
/// trackers and when each was last seen, the connection state and the latest
/// event. Reconnects by itself, resuming from its last event id.
#[utoipa::path(
    get,
    path = "/map",
    tag = "pages",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")),
)]
async fn map_page() -> Html<&'static str> {
    Html(MAP_PAGE)
}

async fn asset(Path(path): Path<String>) -> Result<Response, Error> {
    let (_, media_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .ok_or_else(|| Error::NotFound(format!("no asset {path}")))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
