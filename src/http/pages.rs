//! The browser pages and their assets, compiled into the binary from
//! `static/` so the server runs from any directory and needs no internet;
//! and the one file the map may read from disk, the operator's basemap
//! archive, too large to compile in and chosen at start.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, Response};
use axum::routing::get;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::assets::{Asset, LICENCE, asset};
use crate::error::{Error, Problem};

const TUTORIAL_PAGE: &str = include_str!("../../static/index.html");
const MAP_PAGE: &str = include_str!("../../static/map.html");

/// Files under `/assets/`, compiled in from `static/`.
pub(super) const ASSETS: &[Asset] = &[
    asset!("map.js", "text/javascript"),
    asset!("map/labels.js", "text/javascript"),
    asset!("map/trails.js", "text/javascript"),
    asset!("map/list.js", "text/javascript"),
    asset!("map/replay.js", "text/javascript"),
    asset!("map/basemap.js", "text/javascript"),
    asset!("map/stream.js", "text/javascript"),
    asset!("map/zones.js", "text/javascript"),
    asset!("map.css", "text/css"),
    asset!(
        "vendor/world-atlas/countries-10m.json",
        "application/json",
        gzip
    ),
    asset!("vendor/world-atlas/LICENSE", LICENCE),
    asset!(
        "vendor/topojson-client/topojson-client.min.js",
        "text/javascript"
    ),
    asset!("vendor/topojson-client/LICENSE", LICENCE),
    asset!("vendor/leaflet/leaflet.js", "text/javascript", gzip),
    asset!("vendor/leaflet/leaflet.css", "text/css", gzip),
    asset!("vendor/leaflet/LICENSE", LICENCE),
    asset!("vendor/leaflet/images/layers.png", "image/png"),
    asset!("vendor/leaflet/images/layers-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-shadow.png", "image/png"),
    asset!(
        "vendor/leaflet.markercluster/leaflet.markercluster.js",
        "text/javascript",
        gzip
    ),
    asset!("vendor/leaflet.markercluster/MarkerCluster.css", "text/css"),
    asset!(
        "vendor/leaflet.markercluster/MarkerCluster.Default.css",
        "text/css"
    ),
    asset!("vendor/leaflet.markercluster/LICENSE", LICENCE),
    asset!("vendor/pmtiles/pmtiles.js", "text/javascript"),
    asset!("vendor/pmtiles/LICENSE", LICENCE),
    asset!(
        "vendor/protomaps-leaflet/protomaps-leaflet.js",
        "text/javascript",
        gzip
    ),
    asset!("vendor/protomaps-leaflet/LICENSE", LICENCE),
];

/// The page routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tutorial_page))
        .routes(routes!(map_page))
        .routes(routes!(map_settings))
        .routes(routes!(map_basemap))
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
/// Every tracker's latest position on a map that zooms and pans, with its
/// trail from history; a list of trackers to filter, follow and replay; the
/// connection state and the latest event; the zones, with trackers
/// entering and leaving them as it happens. Reconnects by itself, resuming
/// from its last event id. Works offline on a built-in 1:10m world outline,
/// and the operator's basemap archive (`--map-basemap`) for city detail.
#[utoipa::path(
    get,
    path = "/map",
    tag = "pages",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")),
)]
async fn map_page() -> Html<&'static str> {
    Html(MAP_PAGE)
}

/// What the map page needs to know of the server's settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MapSettings {
    /// Raster tiles to offer under the markers (`--map-tiles`); absent: the
    /// built-in outline only.
    pub tiles: Option<MapTiles>,
    /// Where the operator's PMTiles basemap (`--map-basemap`) is served;
    /// absent: none is configured.
    #[schema(example = "/map/basemap.pmtiles")]
    pub basemap: Option<String>,
}

/// A raster tile layer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MapTiles {
    /// URL template with `{z}`, `{x}`, `{y}`, as Leaflet takes it.
    pub url: String,
    /// Credit to show with the tiles, plain text.
    pub attribution: Option<String>,
}

/// The map page's settings.
///
/// Read by the map page at start: whether the operator configured a raster
/// tile layer (`--map-tiles`), and its attribution, and a basemap archive
/// (`--map-basemap`).
#[utoipa::path(
    get,
    path = "/map/settings",
    tag = "pages",
    responses((status = 200, description = "The settings", body = MapSettings)),
)]
async fn map_settings(State(state): State<AppState>) -> Json<MapSettings> {
    let tiles = state.config.map_tiles.clone().map(|url| MapTiles {
        url,
        attribution: state.config.map_tiles_attribution.clone(),
    });
    let basemap = state
        .config
        .map_basemap
        .as_ref()
        .map(|_| BASEMAP_PATH.to_owned());
    Json(MapSettings { tiles, basemap })
}

/// Where `--map-basemap` is served.
const BASEMAP_PATH: &str = "/map/basemap.pmtiles";

/// The map's basemap archive.
///
/// The PMTiles archive the operator gave with `--map-basemap`, read by the
/// map page in pieces with `Range` requests (one for the header and
/// directory, one per tile). 404 when none is configured.
#[utoipa::path(
    get,
    path = "/map/basemap.pmtiles",
    tag = "pages",
    params(("Range" = Option<String>, Header, description = "The bytes wanted, e.g. `bytes=0-16383`")),
    responses(
        (status = 200, description = "The whole archive", body = Vec<u8>, content_type = "application/vnd.pmtiles"),
        (status = 206, description = "The bytes asked for", body = Vec<u8>, content_type = "application/vnd.pmtiles"),
        (status = 404, description = "No basemap is configured (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the archive"),
    ),
)]
async fn map_basemap(State(state): State<AppState>, request: Request) -> Result<Response, Error> {
    let path = state
        .config
        .map_basemap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no basemap is configured (--map-basemap)".into()))?;
    let Ok(mut response) = ServeFile::new(path).oneshot(request).await;
    if response.status() == axum::http::StatusCode::NOT_FOUND {
        tracing::warn!(path = %path.display(), "the --map-basemap file is gone");
        return Err(Error::NotFound("the basemap file cannot be read".into()));
    }
    // Named by the file's extension otherwise, whatever the operator called it.
    if response.status().is_success() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.pmtiles"),
        );
    }
    Ok(response.map(Body::new))
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, Error> {
    super::assets::send(ASSETS, &path, &headers, "public, max-age=3600")
}
