//! Orgs: every id belongs to one org; another org's id answers 404 (never 403) and
//! idempotency keys are namespaced per org.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, API_KEY};

async fn another_orgs_ids_answer_404_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    let automation = app.create_automation(&trigger, true).await;
    let fired = app
        .fire(&trigger, &json!({"payload": {"email": "owner@a.co"}}), None)
        .await;
    assert_eq!(fired.status, 200, "{:?}", fired.body);
    let run = fired.body["details"]["automationRunIds"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let connection = app
        .create_connection(&json!({"provider": "supabase", "name": "mine"}))
        .await["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.create_other_org().await;

    let cases: [(Method, String, Option<Value>, &str); 9] = [
        (
            Method::GET,
            format!("/v1/automations/{automation}"),
            None,
            "NO_SUCH_AUTOMATION",
        ),
        (
            Method::PATCH,
            format!("/v1/automations/{automation}"),
            Some(json!({"published": false})),
            "NO_SUCH_AUTOMATION",
        ),
        (
            Method::GET,
            format!("/v1/automations/triggers/{trigger}"),
            None,
            "NO_SUCH_TRIGGER",
        ),
        (
            Method::PATCH,
            format!("/v1/automations/triggers/{trigger}"),
            Some(json!({"status": "disabled", "title": "taken over"})),
            "NO_SUCH_TRIGGER",
        ),
        (
            Method::GET,
            format!("/v1/integrations/connections/{connection}"),
            None,
            "NO_SUCH_CONNECTION",
        ),
        (
            Method::PATCH,
            format!("/v1/integrations/connections/{connection}"),
            Some(json!({"enabled": false, "name": "taken over"})),
            "NO_SUCH_CONNECTION",
        ),
        (
            Method::DELETE,
            format!("/v1/integrations/connections/{connection}"),
            None,
            "NO_SUCH_CONNECTION",
        ),
        (
            Method::GET,
            "/v1/contacts?email=owner@a.co".to_owned(),
            None,
            "CONTACT_NOT_FOUND",
        ),
        (
            Method::POST,
            format!("/v1/automations/triggers/{trigger}/fire"),
            Some(json!({"payload": {"email": "intruder@b.co"}})),
            "",
        ),
    ];
    for (method, path, body, code) in cases {
        let reply = app
            .send_as(&other, method.clone(), &path, body.as_ref())
            .await;
        assert_eq!(reply.status, 404, "{method} {path}: {:?}", reply.body);
        if code.is_empty() {
            // The fire route answers with the fire envelope.
            assert_eq!(reply.body["code"], "TRIGGER_EVENT_NOT_FOUND", "{path}");
        } else {
            assert_eq!(
                reply.error_code(),
                code,
                "{method} {path}: {:?}",
                reply.body
            );
            assert_eq!(reply.body["error"]["type"], "not_found", "{path}");
        }
    }

    // Lists and filters of the other org show none of the owner's rows.
    for path in [
        "/v1/automations".to_owned(),
        "/v1/automations/triggers".to_owned(),
        "/v1/contacts".to_owned(),
        "/v1/integrations/connections".to_owned(),
        "/v1/trigger-instances".to_owned(),
        format!("/v1/automations/runs?automationRunId={run}"),
        format!("/v1/automations/runs?automationId={automation}"),
        format!("/v1/automations/runs?triggerEventId={trigger}"),
        format!("/v1/trigger-instances?triggerEventId={trigger}"),
    ] {
        let reply = app.send_as(&other, Method::GET, &path, None).await;
        assert_eq!(
            (reply.status, &reply.body["data"]),
            (200, &json!([])),
            "{path}"
        );
    }
    // Binding an automation to another org's trigger is refused like an unknown trigger.
    let bound = app
        .send_as(
            &other,
            Method::POST,
            "/v1/automations",
            Some(&json!({"name": "x", "triggerEventId": trigger,
                         "nodes": [{"id": "t", "type": "trigger"}], "connections": []})),
        )
        .await;
    assert_eq!(bound.status, 400, "{:?}", bound.body);
    assert_eq!(bound.body["error"]["param"], "triggerEventId");

    // The owner's rows are untouched.
    let got = app.get(&format!("/v1/automations/{automation}")).await;
    assert_eq!(got.body["published"], true);
    let got = app
        .get(&format!("/v1/automations/triggers/{trigger}"))
        .await;
    assert_eq!(
        (&got.body["status"], &got.body["title"]),
        (&json!("enabled"), &json!("Signed up"))
    );
    let got = app
        .get(&format!("/v1/integrations/connections/{connection}"))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        (&got.body["enabled"], &got.body["name"]),
        (&json!(true), &json!("mine"))
    );
    assert!(app.contact("intruder@b.co").await.is_none());
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
}

async fn idempotency_keys_are_namespaced_per_org(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.create_other_org().await;
    let mine = app.create_trigger().await;
    app.create_automation(&mine, true).await;
    let theirs = app.create_trigger_as(&other).await;
    app.create_automation_as(&other, &theirs, true).await;
    let body = json!({"payload": {"email": "same@b.co"}});

    let first = app.fire_as(API_KEY, &mine, &body, Some("shared-key")).await;
    assert_eq!(first.body["status"], "triggered", "{:?}", first.body);
    let second = app
        .fire_as(&other, &theirs, &body, Some("shared-key"))
        .await;
    assert_eq!(
        second.body["status"], "triggered",
        "another org's key of the same name is its own: {:?}",
        second.body
    );
    assert_ne!(
        first.body["details"]["automationRunIds"],
        second.body["details"]["automationRunIds"]
    );
    // Each org's replay answers its own runs.
    let replay = app.fire_as(API_KEY, &mine, &body, Some("shared-key")).await;
    assert_eq!(replay.body["status"], "idempotent_replay");
    assert_eq!(
        replay.body["details"]["automationRunIds"],
        first.body["details"]["automationRunIds"]
    );
    let replay = app
        .fire_as(&other, &theirs, &body, Some("shared-key"))
        .await;
    assert_eq!(replay.body["status"], "idempotent_replay");
    assert_eq!(
        replay.body["details"]["automationRunIds"],
        second.body["details"]["automationRunIds"]
    );
}

crate::each_backend!(
    another_orgs_ids_answer_404_and_change_nothing,
    idempotency_keys_are_namespaced_per_org,
);
