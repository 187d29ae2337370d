//! The OpenAPI document: its frame (title, security scheme, tags) here; paths and schemas from
//! the `#[utoipa::path]` annotations of the handlers themselves; then [`finish`] adds what no
//! annotation can say — the errors every operation can answer, the shapes of the strings the
//! domain accepts, and the values that come from the configuration (queue names, regions) — so
//! that the document describes exactly what the server enforces.

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use versus_protocol::patterns;

use crate::config::Config;
use crate::services::matchmaking::MAX_LATENCY_MS;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Versus",
        description = "Open-source game backend: accounts, matchmaking queues and a real-time event channel \
                       (`GET /ws`). Every error is an RFC 7807 `application/problem+json` document with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(versus_protocol::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "players", description = "Player profiles, ratings and match history"),
        (name = "matchmaking", description = "Queues, tickets, preferences and statistics"),
        (name = "parties", description = "Parties: invites, joins, leaders, ready checks; the leader queues the whole party"),
        (name = "sessions", description = "Game sessions: the game-server API (server key) and session reads"),
        (name = "realtime", description = "The player's WebSocket event channel"),
        (name = "leaderboards", description = "Ranked players per queue: pages, around a player, one player's place"),
        (name = "admin", description = "Admins only: bans, announcements, session moves, the record of admin actions"),
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
        // Game servers: `Authorization: Bearer <sessions.server_key>`.
        components.add_security_scheme(
            "server_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The game-server key (`sessions.server_key`)"))
                    .build(),
            ),
        );
    }
}

/// The served document: the routes' own description plus what [`CommonErrors`] and
/// [`constraints`] add. JSON from here on: utoipa's types cannot read back every keyword the
/// constraints use (`propertyNames` without a type).
pub fn finish(mut api: utoipa::openapi::OpenApi, config: &Config) -> Value {
    CommonErrors.modify(&mut api);
    let mut doc = serde_json::to_value(&api).expect("the document serialises");
    constraints(&mut doc, config);
    doc
}

/// Merges `fields` into the object at `pointer`; a pointer that names nothing is a bug in this
/// file (a schema or path renamed) and fails loudly.
fn merge(doc: &mut Value, pointer: &str, fields: Value) {
    let target = doc
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the OpenAPI document has no object at {pointer}"));
    for (key, value) in fields.as_object().expect("fields are an object") {
        target.insert(key.clone(), value.clone());
    }
}

/// What the server enforces beyond the types: the domain's string shapes, the configured queue
/// names and regions, latency bounds, the `Idempotency-Key` format and the WebSocket handshake.
fn constraints(doc: &mut Value, config: &Config) {
    let queues: Vec<&str> = config.queues.iter().map(|q| q.name.as_str()).collect();
    let mut regions: Vec<&str> = (config.queues.iter())
        .flat_map(|q| q.config.regions.iter().map(String::as_str))
        .collect();
    regions.sort_unstable();
    regions.dedup();
    let schemas = "/components/schemas";
    let username = json!({"pattern": patterns::USERNAME, "minLength": 3, "maxLength": 32});
    let password = json!({"minLength": 8, "maxLength": 128});
    let display_name = json!({"pattern": patterns::DISPLAY_NAME, "minLength": 1, "maxLength": 32});
    let region = json!({"pattern": patterns::REGION, "minLength": 2, "maxLength": 32});
    for (pointer, fields) in [
        ("RegisterRequest/properties/username", username.clone()),
        ("RegisterRequest/properties/password", password.clone()),
        ("LinkRequest/properties/username", username),
        ("LinkRequest/properties/password", password),
        (
            "DeviceLoginRequest/properties/device_id",
            json!({"pattern": patterns::DEVICE_ID, "minLength": 6, "maxLength": 128}),
        ),
        (
            "RegisterRequest/properties/display_name",
            display_name.clone(),
        ),
        ("UpdatePlayerRequest/properties/display_name", display_name),
        ("UpdatePlayerRequest/properties/region", region.clone()),
        (
            "MatchmakingPreferences/properties/regions",
            json!({"maxItems": 16}),
        ),
        ("MatchmakingPreferences/properties/regions/items", region),
        (
            "MatchmakingPreferences/properties/modes",
            json!({"maxItems": 16}),
        ),
        (
            "MatchmakingPreferences/properties/modes/items",
            json!({"enum": queues}),
        ),
        ("JoinQueueRequest/properties/queue", json!({"enum": queues})),
        ("CustomSession/properties/queue", json!({"enum": queues})),
        (
            "JoinQueueRequest/properties/latencies",
            json!({
                "propertyNames": {"enum": regions},
                "additionalProperties": {
                    "type": "integer", "format": "int32", "minimum": 0, "maximum": MAX_LATENCY_MS,
                },
            }),
        ),
    ] {
        merge(doc, &format!("{schemas}/{pointer}"), fields);
    }
    // A game server may set only these; the others are the server's to decide.
    if let Some(state) = doc.pointer_mut(&format!("{schemas}/StateChange/properties/state")) {
        *state = json!({"type": "string", "enum": ["active", "ended", "cancelled"]});
    }
    merge(
        doc,
        "/paths/~1api~1v1~1queue~1join/post/parameters/0/schema",
        json!({"type": "string", "pattern": patterns::IDEMPOTENCY_KEY}),
    );
    // The handshake headers, so that what the document calls a valid request is an upgrade.
    let handshake = [
        ("Connection", json!({"type": "string", "enum": ["Upgrade"]})),
        ("Upgrade", json!({"type": "string", "enum": ["websocket"]})),
        (
            "Sec-WebSocket-Version",
            json!({"type": "string", "enum": ["13"]}),
        ),
        (
            "Sec-WebSocket-Key",
            json!({"type": "string", "pattern": patterns::WEBSOCKET_KEY}),
        ),
    ];
    let parameters = doc
        .pointer_mut("/paths/~1ws/get/parameters")
        .and_then(Value::as_array_mut)
        .expect("GET /ws has parameters");
    for (name, schema) in handshake {
        parameters.push(json!({
            "name": name, "in": "header", "required": true, "schema": schema,
            "description": "WebSocket handshake (RFC 6455)",
        }));
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;
    use versus_core::account::{DeviceId, DisplayName, Region, Username};

    use super::*;

    /// Strings near the rules' edges: short and long, ASCII and not, whitespace and invisible
    /// characters at either end or inside.
    fn edgy() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "Z", "0", "_", "-", " ", "\t", "\n", "é", "ß", "名", "🙂", "\u{00A0}", "\u{200B}",
            "\u{202E}", "\u{FEFF}", "\u{0085}", "\u{0007}", "\u{007F}", "\u{009F}", "x", ".",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The document's patterns accept exactly what the domain's parsers accept.
        #[test]
        fn patterns_agree_with_the_domain_rules(
            raw in prop_oneof![edgy(), any::<String>(), "[a-z][a-z0-9-]{0,40}"]
        ) {
            let agree = |pattern: &str, parsed: bool| {
                let matched = Regex::new(pattern).unwrap().is_match(&raw);
                prop_assert_eq!(matched, parsed, "{:?} against {}", raw, pattern);
                Ok(())
            };
            agree(patterns::USERNAME, Username::parse(&raw).is_ok())?;
            agree(patterns::DISPLAY_NAME, DisplayName::parse(&raw).is_ok())?;
            agree(patterns::REGION, Region::parse(&raw).is_ok())?;
            agree(patterns::DEVICE_ID, DeviceId::parse(&raw).is_ok())?;
            let key = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
            agree(patterns::IDEMPOTENCY_KEY, key)?;
        }
    }

    #[test]
    fn the_document_carries_the_configured_queues_and_regions() {
        let config = Config::default();
        let (_, api) =
            utoipa_axum::router::OpenApiRouter::<crate::http::state::AppState>::with_openapi(
                ApiDoc::openapi(),
            )
            .merge(crate::http::routes::queue::router())
            .merge(crate::http::routes::parties::router())
            .merge(crate::http::routes::auth::router())
            .merge(crate::http::routes::players::router())
            .merge(crate::http::routes::ws::router())
            .merge(crate::http::routes::sessions::router())
            .merge(crate::http::routes::leaderboards::router())
            .split_for_parts();
        let doc = finish(api, &config);
        let schema = |pointer: &str| {
            doc.pointer(&format!("/components/schemas/{pointer}"))
                .cloned()
        };
        assert_eq!(
            schema("JoinQueueRequest/properties/queue/enum"),
            Some(json!(["ranked-1v1", "ranked-5v5", "casual-ffa-8"]))
        );
        assert_eq!(
            schema("JoinQueueRequest/properties/latencies/propertyNames/enum"),
            Some(json!(["asia", "eu", "na"]))
        );
        let login = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"];
        assert!(
            login.get("415").is_some(),
            "every body-taking operation documents 415"
        );
        let ws = doc["paths"]["/ws"]["get"]["parameters"].as_array().unwrap();
        assert!(
            ws.iter()
                .any(|p| p["name"] == "Upgrade" && p["required"] == true)
        );
    }
}
