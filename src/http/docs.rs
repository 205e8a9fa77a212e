//! The API's own description: the OpenAPI document generated from the
//! handlers' annotations, `GET /openapi.json`, and Swagger UI at `/docs`,
//! served from assets compiled into the binary (no CDN, no validator calls).

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::AppState;

/// Document-level information; paths come from each transport's router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "longlat",
        description = "A real-time location push server. Publish a position with `POST /longlat`; \
                       every subscriber of `GET /ws` receives it live, in order.",
        license(name = "MIT"),
    ),
    tags(
        (name = "positions", description = "Publish and read back positions"),
        (name = "streams", description = "Live streams of positions"),
        (name = "pages", description = "Pages for people"),
        (name = "graphql", description = "The same positions as a GraphQL API; schema in schema/schema.graphql"),
        (name = "operations", description = "Health for operators and load balancers"),
    ),
)]
pub struct ApiDoc;

/// `/openapi.json` and Swagger UI at `/docs`, describing `api`.
pub fn router(api: utoipa::openapi::OpenApi) -> Router<AppState> {
    let config = Config::from("/openapi.json").validator_url("none");
    SwaggerUi::new("/docs")
        .url("/openapi.json", api)
        .config(config)
        .into()
}
