//! The OpenAPI document's frame: title, security scheme, tags. Paths and schemas are collected
//! from the `#[utoipa::path]` annotations of the handlers themselves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Versus",
        description = "Open-source game backend: accounts, matchmaking queues and a real-time event channel \
                       (`GET /ws`). Every error is an RFC 7807 `application/problem+json` document with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(versus_protocol::Problem)),
    modifiers(&BearerAuth, &CommonErrors),
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

/// Errors any operation can answer, produced by the middleware rather than by handlers:
/// documented once here instead of on every path. Handlers document their own 4xx.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        versus_protocol::problem::PROBLEM_CONTENT_TYPE,
                        Content::new(Some(Ref::from_schema_name("Problem"))),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description));
                };
                add("405", "Method not allowed on this path");
                add(
                    "408",
                    "The request took longer than `limits.request_timeout_secs`",
                );
                add("500", "Internal error (details are logged, never sent)");
                if operation.request_body.is_some() {
                    add(
                        "400",
                        "Malformed body: not JSON, wrong types, unknown fields (`field` names it)",
                    );
                    add("413", "Body larger than `limits.max_body_bytes`");
                    add("415", "Body is not `application/json`");
                }
            }
        }
    }
}
