//! Hostile input: control characters in paths and queries, over-long strings, unknown
//! enum words and methods. Each is a 4xx in the error envelope on both backends, never a
//! 500.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, Reply, API_KEY};

async fn control_characters_in_paths_and_queries_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let receive = Reply::from(
        app.client
            .post(app.url("/api/integrations/clerk/webhook/%00"))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((receive.status, receive.error_code()), (404, "NOT_FOUND"));
    for path in [
        "/v1/automations/%00",
        "/v1/automations/triggers/a%01b",
        "/v1/integrations/connections/%1b",
    ] {
        let reply = app.get(path).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (404, "NOT_FOUND"),
            "{path}"
        );
    }
    let long_id = app
        .get(&format!("/v1/automations/{}", "a".repeat(3000)))
        .await;
    assert_eq!(long_id.status, 404);

    // "AA" is the cursor of the one-byte position NUL.
    for (path, param) in [
        ("/v1/automations?cursor=AA", "cursor"),
        ("/v1/automations?triggerEventId=%00", "triggerEventId"),
        ("/v1/automations/runs?triggerEventId=x%00", "triggerEventId"),
        ("/v1/contacts?email=a%00@b.co", "email"),
        ("/v1/automations/runs?status=bogus", "status"),
        ("/v1/automations/runs?unknown=1", "unknown"),
    ] {
        let reply = app.get(path).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "INVALID_REQUEST"),
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["param"], param, "{path}");
    }
    let queued = app.get("/v1/automations/runs?status=queued").await;
    assert_eq!(queued.status, 200);
}

async fn over_long_strings_are_refused_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    let big = "x".repeat(1 << 20);
    let graph = |nodes: Value| json!({"name": "a", "triggerEventId": trigger, "nodes": nodes, "connections": []});
    for (body, param) in [
        (
            graph(json!([{"id": big, "type": "trigger"}])),
            "nodes[0].id",
        ),
        (
            graph(json!([{"id": "t", "type": "trigger", "label": big}])),
            "nodes[0].label",
        ),
        (
            graph(json!([{"id": "t", "type": "trigger", "config": {"k": "x".repeat(17 * 1024)}}])),
            "nodes[0].config",
        ),
        (
            json!({"name": "a", "triggerEventId": big, "nodes": [], "connections": []}),
            "triggerEventId",
        ),
    ] {
        let reply = app.post("/v1/automations", &body).await;
        assert_eq!((reply.status, reply.error_code()), (400, "INVALID_REQUEST"));
        assert_eq!(reply.body["error"]["param"], param);
    }
    let fallback = app
        .post(
            "/v1/automations/triggers",
            &json!({"title": "t", "payloadSchema": {"fields": [
                {"key": "email", "type": "string", "required": true},
                {"key": "plan", "type": "string", "fallbackValue": "x".repeat(17 * 1024)}
            ]}}),
        )
        .await;
    assert_eq!(fallback.status, 400);
    assert_eq!(
        fallback.body["error"]["param"],
        "payloadSchema.fields[1].fallbackValue"
    );
    let options = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "generic", "secrets": ["0123456789abcdef0123"],
                    "options": {"events": ["a"], "note": "x".repeat(17 * 1024)}}),
        )
        .await;
    assert_eq!(
        (options.status, &options.body["error"]["param"]),
        (400, &json!("options"))
    );
    assert!(app.list_all("/v1/automations").await.is_empty());
}

/// Every known path asked with a method it does not serve: 405 in the error envelope, with
/// `Allow` naming the methods it does serve.
async fn an_unsupported_method_is_405_in_the_envelope(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    for (method, path, allow) in [
        (Method::DELETE, "/v1/automations/triggers", "POST, GET"),
        (Method::PUT, "/v1/automations/aut_1", "GET, PATCH"),
        (
            Method::DELETE,
            "/v1/automations/triggers/tri_1/fire",
            "POST",
        ),
        (
            Method::PUT,
            "/v1/integrations/connections/con_1",
            "GET, PATCH, DELETE",
        ),
        (Method::GET, "/api/integrations/clerk/webhook/con_1", "POST"),
        (
            Method::PUT,
            "/api/integrations/stripe/webhook/con_1",
            "POST",
        ),
        (Method::POST, "/healthz", "GET"),
        (Method::POST, "/readyz", "GET"),
        (Method::POST, "/metrics", "GET"),
        (Method::DELETE, "/openapi.json", "GET"),
        (Method::POST, "/console/app.js", "GET"),
    ] {
        let reply = app.send_as(API_KEY, method.clone(), path, None).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (405, "METHOD_NOT_ALLOWED"),
            "{method} {path}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["type"], "invalid_request", "{path}");
        assert_eq!(reply.headers["allow"], allow, "{method} {path}");
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    let unknown = app.get("/v1/nothing-here").await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "NOT_FOUND"));
}

async fn secrets_are_not_echoed_and_short_ones_show_no_hint(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = "whsec_MfKQ4r7qjRDSPCgpOAd3VU9XBxq2sZ0k";
    let reply = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "clerk", "secrets": secret}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["error"]["param"], "secrets");
    assert!(!reply.body.to_string().contains("MfKQ"), "{:?}", reply.body);

    let long = app
        .create_connection(&json!({"provider": "clerk", "secrets": [secret]}))
        .await;
    assert_eq!(long["secrets"][0]["hint"], "sZ0k");
}

crate::each_backend!(
    control_characters_in_paths_and_queries_are_refused,
    over_long_strings_are_refused_naming_the_field,
    an_unsupported_method_is_405_in_the_envelope,
    secrets_are_not_echoed_and_short_ones_show_no_hint,
);
