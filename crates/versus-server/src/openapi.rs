//! The OpenAPI document's frame: title, security scheme, tags. Paths and schemas are collected
//! from the `#[utoipa::path]` annotations of the handlers themselves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Versus",
        description = "Open-source game backend: accounts, matchmaking, sessions, ratings, leaderboards. \
                       Every error is an RFC 7807 `application/problem+json` document with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(versus_protocol::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "players", description = "Player profiles"),
        (name = "matchmaking", description = "Queues, tickets, preferences and statistics"),
        (name = "realtime", description = "The player's WebSocket event channel"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
