//! The operator surface served by the binary: the OpenAPI document, the console's files,
//! and 405 for a method a known path does not serve.

use crate::each_backend;
use crate::helpers::{spawn_app, Backend};

async fn the_openapi_document_is_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get_public("/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.body["openapi"], "3.1.0");
    let paths = reply.body["paths"].as_object().unwrap();
    for path in [
        "/v1/automations/triggers/{id}/fire",
        "/v1/integrations/deliveries/{id}/replay",
        "/v1/webhook-subscriptions/deliveries",
        "/v1/events/stream",
    ] {
        assert!(paths.contains_key(path), "{path} is described");
    }
    let error = &reply.body["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(error["required"][0], "error");
}

async fn the_console_is_served_with_a_strict_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    for (path, kind) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], kind);
        let policy = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    let html = app.get_public("/console").await.body;
    let html = html.as_str().unwrap();
    assert!(html.contains(r#"<script src="/console/app.js" defer></script>"#));
    assert!(!html.contains("<script>"), "no inline script");
    assert_eq!(app.get_public("/console/secrets.txt").await.status, 404);
}

async fn a_method_a_path_does_not_serve_answers_405(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .send_as(
            crate::helpers::API_KEY,
            reqwest::Method::PUT,
            "/v1/automations/triggers",
            None,
        )
        .await;
    assert_eq!(reply.status, 405, "{:?}", reply.body);
    assert_eq!(reply.error_code(), "METHOD_NOT_ALLOWED");
    assert_eq!(reply.headers["allow"], "POST, GET");
    assert_eq!(app.get("/v1/no-such-route").await.status, 404);
}

async fn a_fire_path_with_a_hostile_id_answers_in_the_fire_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .fire("bad%00id", &serde_json::json!({"payload": {}}), None)
        .await;
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    assert_eq!(reply.body["code"], "TRIGGER_EVENT_NOT_FOUND");
    assert_eq!(reply.body["status"], "trigger_event_not_found");
}

each_backend!(
    the_openapi_document_is_served,
    the_console_is_served_with_a_strict_policy,
    a_method_a_path_does_not_serve_answers_405,
    a_fire_path_with_a_hostile_id_answers_in_the_fire_envelope,
);
