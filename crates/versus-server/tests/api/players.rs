use serde_json::json;
use versus_protocol::UpdatePlayerRequest;

use crate::on_both_backends;
use crate::support::{Backend, expect_problem, spawn_app, unique};

on_both_backends!(
    profile_updates,
    public_view_hides_private_fields,
    bad_profile_updates_name_the_field
);

async fn profile_updates(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.player(&unique("alice")).await;

    let update = UpdatePlayerRequest {
        display_name: Some("Zoë 🎮".into()),
        region: Some(Some("eu".into())),
    };
    let me = alice.client.update_me(&update).await.unwrap();
    assert_eq!(me.display_name, "Zoë 🎮");
    assert_eq!(me.region.as_deref(), Some("eu"));
    assert!(me.updated_at >= me.created_at);

    // Absent fields stay; an explicit null clears the region.
    let me = alice
        .client
        .update_me(&UpdatePlayerRequest::default())
        .await
        .unwrap();
    assert_eq!(
        (me.display_name.as_str(), me.region.as_deref()),
        ("Zoë 🎮", Some("eu"))
    );
    let response = app
        .http
        .patch(app.url("/api/v1/players/me"))
        .bearer_auth(alice.client.access_token().unwrap())
        .json(&json!({"region": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me = alice.client.me().await.unwrap();
    assert_eq!(me.region, None);
    assert_eq!(me.display_name, "Zoë 🎮");

    // SQL-looking text is stored verbatim, not executed.
    let sneaky = "Robert'); DROP TABLE--";
    let update = UpdatePlayerRequest {
        display_name: Some(sneaky.into()),
        region: None,
    };
    assert_eq!(
        alice.client.update_me(&update).await.unwrap().display_name,
        sneaky
    );
    let app = app.restart().await;
    let me = app
        .client
        .authenticated(alice.client.access_token().unwrap())
        .me()
        .await
        .unwrap();
    assert_eq!(me.display_name, sneaky);
    app.finish().await;
}

async fn public_view_hides_private_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.player(&unique("alice")).await;
    let bob = app.player(&unique("bob")).await;
    let response = app
        .http
        .get(app.url(&format!("/api/v1/players/{}", alice.id)))
        .bearer_auth(bob.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["created_at", "display_name", "id", "region", "username"]
    );
    assert_eq!(body["id"], alice.id.to_string());

    let missing = uuid::Uuid::now_v7();
    let response = app
        .http
        .get(app.url(&format!("/api/v1/players/{missing}")))
        .bearer_auth(bob.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    expect_problem(response, 404, "not_found").await;
    app.finish().await;
}

async fn bad_profile_updates_name_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.player(&unique("alice")).await;
    let token = alice.client.access_token().unwrap().to_owned();
    let cases = [
        (
            json!({"display_name": ""}),
            "validation_failed",
            "display_name",
        ),
        (
            json!({"display_name": "x".repeat(33)}),
            "validation_failed",
            "display_name",
        ),
        (
            json!({"display_name": "bell\u{7}"}),
            "validation_failed",
            "display_name",
        ),
        (
            json!({"display_name": 42}),
            "malformed_body",
            "display_name",
        ),
        (
            json!({"region": "Not A Region"}),
            "validation_failed",
            "region",
        ),
        (json!({"region": ["eu"]}), "malformed_body", "region"),
        (json!({"email": "a@b.c"}), "malformed_body", "email"),
    ];
    for (body, code, field) in cases {
        let response = app
            .http
            .patch(app.url("/api/v1/players/me"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 400, code).await;
        assert_eq!(problem["field"], field, "for {body}");
    }
    // Nothing above changed the profile.
    assert_eq!(
        alice.client.me().await.unwrap().display_name,
        alice.client.me().await.unwrap().username
    );
    app.finish().await;
}
