//! The v1 resources: triggers, automations, runs, contacts, and how they answer bad input.

use serde_json::json;

use crate::helpers::{spawn_app, Backend, Reply};

async fn triggers_are_created_listed_and_patched(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_trigger().await;
    assert!(id.starts_with("tri_"));
    let got = app.get(&format!("/v1/automations/triggers/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["provider"], "api");
    assert_eq!(got.body["status"], "enabled");
    let patched = app
        .patch(
            &format!("/v1/automations/triggers/{id}"),
            &json!({"title": "Renamed", "status": "disabled"}),
        )
        .await;
    assert_eq!(
        (
            patched.status,
            &patched.body["title"],
            &patched.body["status"]
        ),
        (200, &json!("Renamed"), &json!("disabled"))
    );
    let bad = app
        .patch(
            &format!("/v1/automations/triggers/{id}"),
            &json!({"status": "paused"}),
        )
        .await;
    assert_eq!((bad.status, bad.error_code()), (400, "INVALID_REQUEST"));
    assert_eq!(bad.body["error"]["param"], "status");
    let missing = app.get("/v1/automations/triggers/tri_unknown").await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "NO_SUCH_TRIGGER")
    );
}

async fn trigger_bodies_are_validated_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = json!({"key": "email", "type": "string", "required": true});
    let cases = [
        (
            json!({"title": "", "payloadSchema": {"fields": [email]}}),
            "title",
        ),
        (
            json!({"title": "x".repeat(121), "payloadSchema": {"fields": [email]}}),
            "title",
        ),
        (
            json!({"title": "t", "description": "d".repeat(2001), "payloadSchema": {"fields": [email]}}),
            "description",
        ),
        (
            json!({"title": "t", "payloadSchema": {"fields": []}}),
            "payloadSchema.fields",
        ),
        (
            json!({"title": "t", "payloadSchema": {"fields": [{"key": "email", "type": "string", "required": false}]}}),
            "payloadSchema.fields",
        ),
        (
            json!({"title": "t", "payloadSchema": {"fields": [email, {"key": "n", "type": "integer"}]}}),
            "payloadSchema.fields[1].type",
        ),
        (
            json!({"title": "t", "payloadSchema": {"fields": [email, {"key": "n", "type": "number", "fallbackValue": "x"}]}}),
            "payloadSchema.fields[1].fallbackValue",
        ),
        (
            json!({"title": 5, "payloadSchema": {"fields": [email]}}),
            "title",
        ),
        (
            json!({"title": "t", "payloadSchema": {"fields": [email]}, "color": "red"}),
            "color",
        ),
    ];
    for (body, param) in cases {
        let reply = app.post("/v1/automations/triggers", &body).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "INVALID_REQUEST"),
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"]["type"], "invalid_request");
        assert_eq!(
            reply.body["error"]["param"], param,
            "{body}: {:?}",
            reply.body
        );
    }
    let not_json = app
        .post_raw("/v1/automations/triggers", "{\"title\": ")
        .await;
    assert_eq!(
        (not_json.status, not_json.error_code()),
        (400, "INVALID_REQUEST")
    );
    let form = app
        .client
        .post(app.url("/v1/automations/triggers"))
        .bearer_auth(crate::helpers::API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("title=t");
    let form = Reply::from(form.send().await.unwrap()).await;
    assert_eq!(
        (form.status, form.error_code()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );
    let listed = app.get("/v1/automations/triggers").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was written");
}

async fn oversize_bodies_are_refused(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, firehook::clock::Clock::system(), |s| {
        s.server.max_body_bytes = 4096
    })
    .await;
    let big =
        json!({"title": "t", "description": "x".repeat(5000), "payloadSchema": {"fields": []}});
    let reply = app.post("/v1/automations/triggers", &big).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (413, "PAYLOAD_TOO_LARGE")
    );
    assert_eq!(reply.body["error"]["type"], "payload_too_large");
}

async fn automation_graphs_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    let body = json!({"name": "g", "triggerEventId": trigger,
        "nodes": [{"id": "a", "type": "wait"}, {"id": "a", "type": "sendEmail"}, {"id": "t", "type": "trigger"}],
        "connections": [{"from": "x", "to": "a"}, {"from": "a", "to": "y"}, {"from": "a", "to": "a"}, {"from": "a", "to": "t"}]});
    let reply = app.post("/v1/automations", &body).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (400, "AUTOMATION_GRAPH_INVALID"),
        "{:?}",
        reply.body
    );
    let codes: Vec<&str> = reply.body["error"]["details"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for code in [
        "duplicate_node_id",
        "connection_unknown_from",
        "connection_unknown_to",
        "connection_self_loop",
        "connection_targets_trigger",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let no_trigger = json!({"name": "g", "triggerEventId": trigger, "nodes": [{"id": "w", "type": "wait"}], "connections": []});
    let reply = app.post("/v1/automations", &no_trigger).await;
    assert_eq!(
        reply.body["error"]["details"]["issues"][0]["code"],
        "missing_trigger_node"
    );
    let unknown_type = json!({"name": "g", "triggerEventId": trigger, "nodes": [{"id": "w", "type": "sms"}], "connections": []});
    let reply = app.post("/v1/automations", &unknown_type).await;
    assert_eq!((reply.status, reply.error_code()), (400, "INVALID_REQUEST"));
    assert_eq!(reply.body["error"]["param"], "nodes[0].type");
    let unknown_trigger = json!({"name": "g", "triggerEventId": "tri_nope", "nodes": [{"id": "t", "type": "trigger"}], "connections": []});
    let reply = app.post("/v1/automations", &unknown_trigger).await;
    assert_eq!(
        (reply.status, reply.body["error"]["param"].as_str()),
        (400, Some("triggerEventId"))
    );
    assert_eq!(app.get("/v1/automations").await.body["data"], json!([]));
}

async fn automations_version_their_graph_edits(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    let id = app.create_automation(&trigger, false).await;
    let path = format!("/v1/automations/{id}");
    let edited = app
        .patch(&path, &json!({"nodes": [{"id": "t", "type": "trigger"}, {"id": "w", "type": "wait", "config": {"hours": 1}}],
                               "connections": [{"from": "t", "to": "w"}]}))
        .await;
    assert_eq!(
        (edited.status, &edited.body["version"]),
        (200, &json!(2)),
        "{:?}",
        edited.body
    );
    assert_eq!(edited.body["published"], false);
    let both = app
        .patch(&path, &json!({"name": "x", "published": true}))
        .await;
    assert_eq!(both.status, 400);
    let published = app.patch(&path, &json!({"published": true})).await;
    assert_eq!(
        (&published.body["published"], &published.body["version"]),
        (&json!(true), &json!(2))
    );
    let fired = app
        .fire(&trigger, &json!({"payload": {"email": "v@b.co"}}), None)
        .await;
    let runs = app.runs_of(&trigger).await;
    assert_eq!(runs[0]["automationVersion"], 2);
    assert_eq!(
        runs[0]["automationRunId"],
        fired.body["details"]["automationRunIds"][0]
    );
    let by_id = app
        .get(&format!(
            "/v1/automations/runs?automationRunId={}",
            runs[0]["automationRunId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.body["data"].as_array().unwrap().len(), 1);
    // `completed` is no run status: an unknown enum word is a 400, not an empty list.
    let by_status = app.get("/v1/automations/runs?status=completed").await;
    assert_eq!(
        (by_status.status, &by_status.body["error"]["param"]),
        (400, &json!("status"))
    );
    assert_eq!(
        app.get("/v1/automations/aut_nope").await.error_code(),
        "NO_SUCH_AUTOMATION"
    );
}

async fn lists_paginate_with_a_cursor(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    for i in 0..5 {
        app.fire(
            &trigger,
            &json!({"payload": {"email": format!("p{i}@b.co")}}),
            None,
        )
        .await;
    }
    let mut seen = vec![];
    let mut path = "/v1/contacts?limit=2".to_owned();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(
            pages <= 3,
            "5 contacts in pages of 2 take 3 pages: {seen:?}"
        );
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        assert!(page.body["data"].as_array().unwrap().len() <= 2);
        seen.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["email"].as_str().unwrap().to_owned()),
        );
        match page.body["pagination"]["cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page.body["pagination"]["hasMore"], true);
                path = format!("/v1/contacts?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["p0@b.co", "p1@b.co", "p2@b.co", "p3@b.co", "p4@b.co"]
    );
    for bad in [
        "/v1/contacts?limit=0",
        "/v1/contacts?limit=101",
        "/v1/contacts?limit=x",
        "/v1/contacts?cursor=%%%",
    ] {
        assert_eq!(app.get(bad).await.status, 400, "{bad}");
    }
    let fires = app
        .get(&format!(
            "/v1/trigger-instances?triggerEventId={trigger}&limit=100"
        ))
        .await;
    assert_eq!(fires.body["data"].as_array().unwrap().len(), 5);
    assert_eq!(fires.body["data"][0]["outcome"], "triggered");
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    for reply in [
        app.get("/v1/automations/triggers").await,
        app.get("/v1/nowhere").await,
        Reply::from(
            app.client
                .get(app.url("/v1/contacts"))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ] {
        assert!(
            reply
                .headers
                .get("x-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{:?}",
            reply.body
        );
    }
    let unauth = Reply::from(
        app.client
            .get(app.url("/v1/contacts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (unauth.status, unauth.error_code()),
        (401, "AUTHENTICATION_REQUIRED")
    );
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-123");
}

async fn health_readiness_and_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        Reply::from(app.client.get(app.url("/healthz")).send().await.unwrap())
            .await
            .status,
        200
    );
    let ready = app.get_public("/readyz").await;
    assert_eq!(
        (ready.status, &ready.body),
        (200, &json!({"status": "ready"}))
    );
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    app.fire(&trigger, &json!({"payload": {"email": "m@b.co"}}), None)
        .await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("firehook_fires_total{outcome=\"triggered\",source=\"api\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("firehook_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/v1/automations/triggers/{id}/fire\""),
        "{metrics}"
    );
}

async fn trigger_lists_filter_by_provider_and_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let api_trigger = app.create_trigger().await;
    let secret = "whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIG1pbmU=";
    let mut clerk = vec![];
    for _ in 0..2 {
        clerk.push(
            app.create_connection(&json!({"provider": "clerk", "secrets": [secret]}))
                .await,
        );
    }
    let supabase = app
        .create_connection(&json!({"provider": "supabase"}))
        .await;
    let ids_of = |rows: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        rows.iter()
            .map(|t| t["triggerEventId"].as_str().unwrap().to_owned())
            .collect()
    };
    let provisioned = |connection: &serde_json::Value| {
        let rows = connection["triggers"].as_array().unwrap().clone();
        assert!(!rows.is_empty());
        ids_of(&rows)
    };
    let c1 = clerk[0]["connectionId"].as_str().unwrap();
    let c2 = clerk[1]["connectionId"].as_str().unwrap();

    let by_provider = app
        .list_all("/v1/automations/triggers?provider=clerk")
        .await;
    let expected: std::collections::BTreeSet<String> = provisioned(&clerk[0])
        .union(&provisioned(&clerk[1]))
        .cloned()
        .collect();
    assert_eq!(ids_of(&by_provider), expected);
    assert!(by_provider.iter().all(|t| t["provider"] == "clerk"));
    let only_api = app.list_all("/v1/automations/triggers?provider=api").await;
    assert_eq!(ids_of(&only_api), [api_trigger].into_iter().collect());
    let by_connection = app
        .list_all(&format!("/v1/automations/triggers?connectionId={c1}"))
        .await;
    assert_eq!(ids_of(&by_connection), provisioned(&clerk[0]));
    assert!(by_connection.iter().all(|t| t["connectionId"] == c1));
    let both = app
        .list_all(&format!(
            "/v1/automations/triggers?provider=clerk&connectionId={c2}"
        ))
        .await;
    assert_eq!(ids_of(&both), provisioned(&clerk[1]));
    let none = app
        .list_all(&format!(
            "/v1/automations/triggers?provider=supabase&connectionId={c2}"
        ))
        .await;
    assert!(none.is_empty());
    let all = app.list_all("/v1/automations/triggers").await;
    assert_eq!(all.len(), 1 + expected.len() + provisioned(&supabase).len());
}

async fn an_integration_trigger_fires_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let connection = app
        .create_connection(&json!({"provider": "clerk",
            "secrets": ["whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIG1pbmU="]}))
        .await;
    let id = connection["connectionId"].as_str().unwrap();
    let trigger = format!("clerk:{id}:user.created");
    let automation = app.create_automation(&trigger, true).await;
    let reply = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "Via.Api@B.co", "firstName": "Via", "clerk_user_id": "user_123"}}),
            Some("integration-1"),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "triggered");
    assert_eq!(reply.body["triggerEventId"], trigger.as_str());
    assert_eq!(
        reply.body["details"]["publishedAutomations"][0]["automationId"],
        automation.as_str()
    );
    let runs = app.runs_of(&trigger).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["automationRunId"],
        reply.body["details"]["automationRunIds"][0]
    );
    let contact = app.contact("via.api@b.co").await.expect("contact");
    assert_eq!(contact["firstName"], "Via");
    assert_eq!(contact["customFields"]["clerk_user_id"], "user_123");
}

async fn the_x_api_key_header_authenticates(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    let listed = app
        .client
        .get(app.url("/v1/automations/triggers"))
        .header("x-api-key", crate::helpers::API_KEY)
        .send()
        .await
        .unwrap();
    let listed = Reply::from(listed).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["data"][0]["triggerEventId"], trigger.as_str());
    let fired = app
        .client
        .post(app.url(&format!("/v1/automations/triggers/{trigger}/fire")))
        .header("x-api-key", crate::helpers::API_KEY)
        .json(&json!({"payload": {"email": "xkey@b.co"}}))
        .send()
        .await
        .unwrap();
    let fired = Reply::from(fired).await;
    assert_eq!(
        (fired.status, &fired.body["status"]),
        (200, &json!("triggered"))
    );
    let wrong = app
        .client
        .get(app.url("/v1/automations/triggers"))
        .header("x-api-key", "fh_not_a_key")
        .send()
        .await
        .unwrap();
    let wrong = Reply::from(wrong).await;
    assert_eq!((wrong.status, wrong.error_code()), (401, "INVALID_API_KEY"));
}

/// Run filters with several automations, triggers and fires in the database.
async fn run_filters_select_exactly_their_rows(backend: Backend) {
    let app = spawn_app(backend).await;
    let t1 = app.create_trigger().await;
    let t2 = app.create_trigger().await;
    let a1 = app.create_automation(&t1, true).await;
    let a2 = app.create_automation(&t1, true).await;
    let a3 = app.create_automation(&t2, true).await;
    let mut fired_runs = vec![];
    for i in 0..3 {
        for trigger in [&t1, &t2] {
            let reply = app
                .fire(
                    trigger,
                    &json!({"payload": {"email": format!("r{i}@b.co")}}),
                    None,
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            for run in reply.body["details"]["automationRunIds"]
                .as_array()
                .unwrap()
            {
                fired_runs.push(run.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(fired_runs.len(), 9, "3 fires x (2 + 1) automations");
    let all = app.list_all("/v1/automations/runs").await;
    assert_eq!(all.len(), 9);
    for (automation, trigger) in [(&a1, &t1), (&a2, &t1), (&a3, &t2)] {
        let rows = app
            .list_all(&format!("/v1/automations/runs?automationId={automation}"))
            .await;
        assert_eq!(rows.len(), 3, "{automation}");
        assert!(rows
            .iter()
            .all(|r| r["automationId"] == automation.as_str()
                && r["triggerEventId"] == trigger.as_str()));
    }
    assert_eq!(app.runs_of(&t1).await.len(), 6);
    assert_eq!(app.runs_of(&t2).await.len(), 3);
    for run in &fired_runs {
        let rows = app
            .list_all(&format!("/v1/automations/runs?automationRunId={run}"))
            .await;
        assert_eq!(rows.len(), 1, "{run}");
        assert_eq!(rows[0]["automationRunId"], run.as_str());
    }
    let both = app
        .list_all(&format!(
            "/v1/automations/runs?automationId={a3}&triggerEventId={t1}"
        ))
        .await;
    assert!(both.is_empty(), "filters combine");
    let queued = app.list_all("/v1/automations/runs?status=queued").await;
    assert_eq!(queued.len(), 9);
}

crate::each_backend!(
    triggers_are_created_listed_and_patched,
    trigger_bodies_are_validated_and_nothing_is_written,
    oversize_bodies_are_refused,
    automation_graphs_are_validated,
    automations_version_their_graph_edits,
    lists_paginate_with_a_cursor,
    every_response_carries_a_request_id,
    health_readiness_and_metrics,
    trigger_lists_filter_by_provider_and_connection,
    an_integration_trigger_fires_through_the_api,
    the_x_api_key_header_authenticates,
    run_filters_select_exactly_their_rows,
);
