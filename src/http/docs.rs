//! The API's own description: the OpenAPI document generated from the
//! handlers' annotations, `GET /openapi.json`, and Swagger UI at `/docs`,
//! served from assets compiled into the binary (no CDN, no validator calls).
//!
//! The checked-in document (`schema/openapi.json`) declares the `bearer`
//! scheme, since a server may be started with credentials. A server started
//! without any serves its document without it, so Swagger UI shows no
//! locks and no "Authorize" button for a token nothing would check.

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
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
        (name = "apps", description = "Tracker apps (OwnTracks, OsmAnd, Traccar Client) publishing in their own protocols; see docs/apps.md"),
        (name = "zones", description = "Geofences: zones trackers enter and leave, as `enter` and `leave` events on every stream (`zone=`); who is inside one now"),
        (name = "pages", description = "Pages for people"),
        (name = "graphql", description = "The same positions as a GraphQL API; schema in schema/schema.graphql"),
        (name = "operations", description = "Health for operators and load balancers"),
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// The `bearer` security scheme: a static token or a JWT, needed when the
/// server is started with credentials (`--tokens`, `--tokens-file`,
/// `--jwt-secret`, `--jwt-public-key`) for what `--protect` names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A static token or a JWT (HS256, RS256, ES256), when the server requires one: \
                 for publishing by default (`--protect publish`), for reading too with \
                 `--protect publish,subscribe`. Browsers' WebSocket and EventSource may pass it \
                 as `access_token` in the URL instead.",
            ))
            .build();
        let basic = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "For tracker apps that can only send a user and password (OwnTracks): \
                 any user, and the token as the password.",
            ))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "For tracker apps that can only be given a URL (OsmAnd, Traccar Client): \
                 the token as a query parameter. It ends up in logs along the way: use TLS, \
                 and a token that may only publish for its tracker.",
            ))),
        );
    }
}

/// The security schemes an ingest endpoint may use besides `bearer`.
const APP_SCHEMES: [&str; 2] = ["basic", "token"];

/// `api` as this server serves it: with the `bearer` scheme only when it
/// has `credentials` to check a token against.
pub fn served(mut api: utoipa::openapi::OpenApi, credentials: bool) -> utoipa::openapi::OpenApi {
    if !credentials {
        without_bearer(&mut api);
    }
    api
}

/// Removes every security requirement and the `bearer` scheme.
fn without_bearer(api: &mut utoipa::openapi::OpenApi) {
    api.security = None;
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = None;
        }
    }
    if let Some(components) = api.components.as_mut() {
        components.security_schemes.remove("bearer");
        for scheme in APP_SCHEMES {
            components.security_schemes.remove(scheme);
        }
    }
}

/// `/openapi.json` and Swagger UI at `/docs`, describing `api`.
pub fn router(api: utoipa::openapi::OpenApi) -> Router<AppState> {
    let config = Config::from("/openapi.json").validator_url("none");
    SwaggerUi::new("/docs")
        .url("/openapi.json", api)
        .config(config)
        .into()
}
