//! `POST /v1/automations/triggers/{id}/fire`: one test per row of the contract's table.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, TestApp};

fn assert_envelope(reply: &crate::helpers::Reply, http: u16, status: &str, code: &str) {
    assert_eq!(reply.status, http, "{:#?}", reply.body);
    assert_eq!(reply.body["status"], status, "{:#?}", reply.body);
    assert_eq!(reply.body["code"], code, "{:#?}", reply.body);
    assert_eq!(reply.body["success"], http == 200, "{:#?}", reply.body);
}

async fn published_trigger(app: &TestApp) -> (String, String) {
    let trigger = app.create_trigger().await;
    let automation = app.create_automation(&trigger, true).await;
    (trigger, automation)
}

async fn fired_starts_one_run_per_published_automation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, automation) = published_trigger(&app).await;
    app.create_automation(&trigger, false).await; // a draft gets no run
    let reply = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "  Jane@Example.com ", "firstName": "Jane"}}),
            None,
        )
        .await;
    assert_envelope(&reply, 200, "triggered", "TRIGGERED");
    let details = &reply.body["details"];
    assert_eq!(details["counts"]["automations"], 1);
    assert_eq!(
        details["publishedAutomations"][0]["automationId"],
        automation.as_str()
    );
    assert_eq!(
        details["resolvedPayload"]["plan"], "free",
        "fallbackValue fills the absent field"
    );
    let run_ids = details["automationRunIds"].as_array().unwrap();
    assert_eq!(run_ids.len(), 1);

    let runs = app.runs_of(&trigger).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["automationRunId"], run_ids[0]);
    assert_eq!(runs[0]["status"], "queued");
    assert_eq!(runs[0]["payload"]["firstName"], "Jane");
    let contact = app.get("/v1/contacts?email=JANE@example.com").await;
    assert_eq!(contact.status, 200, "{:?}", contact.body);
    assert_eq!(contact.body["email"], "jane@example.com");
    assert_eq!(contact.body["firstName"], "Jane");
    assert_eq!(contact.body["customFields"]["plan"], "free");
}

async fn same_key_same_body_replays_the_original_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let first = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "a@b.co", "plan": "pro"}}),
            Some("k-1"),
        )
        .await;
    assert_envelope(&first, 200, "triggered", "TRIGGERED");
    // Same payload with other key order and whitespace, key in the body this time.
    let again = app
        .post_raw(
            &format!("/v1/automations/triggers/{trigger}/fire"),
            r#"{ "idempotencyKey": "k-1", "payload": { "plan": "pro",   "email": "a@b.co" } }"#,
        )
        .await;
    assert_envelope(&again, 200, "idempotent_replay", "IDEMPOTENT_REPLAY");
    assert_eq!(
        again.body["details"]["automationRunIds"],
        first.body["details"]["automationRunIds"]
    );
    assert_eq!(
        again.body["details"]["triggerInstanceId"],
        first.body["details"]["triggerInstanceId"]
    );
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
}

async fn same_key_different_body_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let first = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "a@b.co"}}),
            Some("k-2"),
        )
        .await;
    assert_envelope(&first, 200, "triggered", "TRIGGERED");
    let other = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "other@b.co"}}),
            Some("k-2"),
        )
        .await;
    assert_envelope(&other, 409, "failed", "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
    assert_eq!(
        app.get("/v1/contacts?email=other@b.co").await.status,
        404,
        "a conflict writes nothing"
    );
}

async fn header_key_wins_over_body_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let body = json!({"payload": {"email": "a@b.co"}, "idempotencyKey": "body-key"});
    assert_envelope(
        &app.fire(&trigger, &body, Some("header-key")).await,
        200,
        "triggered",
        "TRIGGERED",
    );
    // The body key was not the one used, so it is still fresh.
    assert_envelope(
        &app.fire(&trigger, &body, None).await,
        200,
        "triggered",
        "TRIGGERED",
    );
    let replay = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "a@b.co"}}),
            Some("header-key"),
        )
        .await;
    assert_envelope(&replay, 200, "idempotent_replay", "IDEMPOTENT_REPLAY");
}

async fn no_published_automation_still_upserts_and_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    let automation = app.create_automation(&trigger, false).await;
    let reply = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "draft@b.co", "firstName": "D"}}),
            Some("k-3"),
        )
        .await;
    assert_envelope(&reply, 422, "failed", "NO_PUBLISHED_AUTOMATION");
    assert_eq!(
        app.get("/v1/contacts?email=draft@b.co").await.body["firstName"],
        "D"
    );
    let fires = app.fires_of(&trigger).await;
    assert_eq!(fires[0]["outcome"], "no_published_automation");
    // Publishing and retrying with the same key fires: a 422 does not consume the key.
    app.patch(
        &format!("/v1/automations/{automation}"),
        &json!({"published": true}),
    )
    .await;
    let retry = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "draft@b.co", "firstName": "D"}}),
            Some("k-3"),
        )
        .await;
    assert_envelope(&retry, 200, "triggered", "TRIGGERED");
}

async fn payload_mismatch_lists_every_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let reply = app
        .fire(
            &trigger,
            &json!({"payload": {"firstName": 7, "plan": true, "extra": 1}}),
            None,
        )
        .await;
    assert_envelope(&reply, 400, "payload_mismatch", "PAYLOAD_MISMATCH");
    let problems = reply.body["details"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.contains(&json!({"field": "email", "problem": "missing_required"})));
    assert!(problems
        .contains(&json!({"field": "firstName", "problem": "wrong_type", "expected": "string"})));
    assert!(
        problems.contains(&json!({"field": "plan", "problem": "wrong_type", "expected": "string"}))
    );
    assert!(app.runs_of(&trigger).await.is_empty());
}

async fn unexpected_keys_are_kept_and_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let reply = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "a@b.co", "utm_source": "ads"}}),
            None,
        )
        .await;
    assert_envelope(&reply, 200, "triggered", "TRIGGERED");
    assert_eq!(
        reply.body["details"]["warnings"],
        json!([{"code": "unexpected_key", "field": "utm_source"}])
    );
    assert_eq!(
        reply.body["details"]["resolvedPayload"]["utm_source"],
        "ads"
    );
    assert_eq!(
        app.get("/v1/contacts?email=a@b.co").await.body["customFields"]["utm_source"],
        "ads"
    );
}

async fn unknown_trigger_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .fire(
            "tri_doesnotexist",
            &json!({"payload": {"email": "a@b.co"}}),
            None,
        )
        .await;
    assert_envelope(
        &reply,
        404,
        "trigger_event_not_found",
        "TRIGGER_EVENT_NOT_FOUND",
    );
}

async fn disabled_trigger_records_the_fire_without_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let patched = app
        .patch(
            &format!("/v1/automations/triggers/{trigger}"),
            &json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let reply = app
        .fire(&trigger, &json!({"payload": {"email": "a@b.co"}}), None)
        .await;
    assert_envelope(&reply, 422, "failed", "TRIGGER_DISABLED");
    assert!(app.runs_of(&trigger).await.is_empty());
    let fires = app.fires_of(&trigger).await;
    assert_eq!(fires[0]["outcome"], "trigger_disabled");
}

/// Triggers are cached per process: an edit must still apply to the very next fire.
async fn trigger_edits_apply_to_the_next_fire(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let fire = |email: &'static str| {
        let app = &app;
        let trigger = &trigger;
        async move {
            app.fire(trigger, &json!({"payload": {"email": email}}), None)
                .await
        }
    };
    assert_envelope(&fire("a@b.co").await, 200, "triggered", "TRIGGERED");

    let path = format!("/v1/automations/triggers/{trigger}");
    let disabled = app.patch(&path, &json!({"status": "disabled"})).await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_envelope(&fire("b@b.co").await, 422, "failed", "TRIGGER_DISABLED");

    let schema = json!({"fields": [
        {"key": "email", "type": "string", "required": true},
        {"key": "plan", "type": "string", "required": true},
    ]});
    let edited = app
        .patch(
            &path,
            &json!({"status": "enabled", "payloadSchema": schema}),
        )
        .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert_envelope(
        &fire("c@b.co").await,
        400,
        "payload_mismatch",
        "PAYLOAD_MISMATCH",
    );
}

async fn body_that_is_not_json_is_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let reply = app
        .post_raw(
            &format!("/v1/automations/triggers/{trigger}/fire"),
            "{not json",
        )
        .await;
    assert_envelope(&reply, 400, "invalid_json", "INVALID_JSON");
    let reply = app
        .post_raw(
            &format!("/v1/automations/triggers/{trigger}/fire"),
            "[1, 2]",
        )
        .await;
    assert_envelope(&reply, 400, "invalid_json", "INVALID_JSON");
}

async fn idempotency_key_must_be_1_to_100_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let body = json!({"payload": {"email": "a@b.co"}});
    let empty = app.fire(&trigger, &body, Some("")).await;
    assert_envelope(&empty, 400, "failed", "INVALID_IDEMPOTENCY_KEY");
    let long = "k".repeat(101);
    assert_envelope(
        &app.fire(&trigger, &body, Some(&long)).await,
        400,
        "failed",
        "INVALID_IDEMPOTENCY_KEY",
    );
    let hundred = "k".repeat(100);
    assert_envelope(
        &app.fire(&trigger, &body, Some(&hundred)).await,
        200,
        "triggered",
        "TRIGGERED",
    );
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
}

async fn missing_or_bad_api_key_is_unauthorized(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let url = app.url(&format!("/v1/automations/triggers/{trigger}/fire"));
    let body = json!({"payload": {"email": "a@b.co"}});
    let none =
        crate::helpers::Reply::from(app.client.post(&url).json(&body).send().await.unwrap()).await;
    assert_envelope(&none, 401, "invalid_api_key", "AUTHENTICATION_REQUIRED");
    let bad = app
        .client
        .post(&url)
        .header("x-api-key", "fh_nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_envelope(
        &crate::helpers::Reply::from(bad).await,
        401,
        "invalid_api_key",
        "INVALID_API_KEY",
    );
    assert!(app.runs_of(&trigger).await.is_empty());
}

async fn dry_run_validates_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let body = json!({"payload": {"email": "dry@b.co"}, "dryRun": true});
    let reply = app.fire(&trigger, &body, Some("k-dry")).await;
    assert_envelope(&reply, 200, "ready", "READY");
    assert_eq!(reply.body["details"]["resolvedPayload"]["plan"], "free");
    assert!(app.runs_of(&trigger).await.is_empty());
    assert!(app.fires_of(&trigger).await.is_empty(), "no fire recorded");
    assert!(app.contact("dry@b.co").await.is_none());
    assert_eq!(app.list_all("/v1/contacts").await.len(), 0);
    // The key was not consumed.
    let real = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "dry@b.co"}}),
            Some("k-dry"),
        )
        .await;
    assert_envelope(&real, 200, "triggered", "TRIGGERED");
}

async fn concurrent_fires_with_one_key_fire_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let body = json!({"payload": {"email": "race@b.co"}});
    let replies =
        futures::future::join_all((0..50).map(|_| app.fire(&trigger, &body, Some("race-key"))))
            .await;
    let triggered = replies
        .iter()
        .filter(|r| r.body["status"] == "triggered")
        .count();
    let replays = replies
        .iter()
        .filter(|r| r.body["status"] == "idempotent_replay")
        .count();
    assert_eq!(
        (triggered, replays),
        (1, 49),
        "{:?}",
        replies
            .iter()
            .map(|r| &r.body["status"])
            .collect::<Vec<_>>()
    );
    let run_sets: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.body["details"]["automationRunIds"].to_string())
        .collect();
    assert_eq!(run_sets.len(), 1, "every answer names the same runs");
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
}

async fn contacts_merge_and_absent_values_never_erase(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    app.fire(
        &trigger,
        &json!({"payload": {"email": "m@b.co", "firstName": "Mia", "plan": "pro", "seats": 3}}),
        None,
    )
    .await;
    app.fire(
        &trigger,
        &json!({"payload": {"email": "M@B.co", "plan": "team", "firstName": null}}),
        None,
    )
    .await;
    let contact = app.get("/v1/contacts?email=m@b.co").await.body;
    assert_eq!(contact["firstName"], "Mia");
    assert_eq!(contact["customFields"], json!({"plan": "team", "seats": 3}));
}

async fn other_orgs_triggers_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let (trigger, _) = published_trigger(&app).await;
    let store = firehook::store::Store::open(&crate::helpers::test_settings(&app.database_url))
        .await
        .unwrap();
    let (_, other_key) = firehook::auth::create_org(&store, "other", None, 0)
        .await
        .unwrap();
    let url = app.url(&format!("/v1/automations/triggers/{trigger}/fire"));
    let res = app
        .client
        .post(&url)
        .bearer_auth(&other_key.secret)
        .json(&json!({"payload": {"email": "a@b.co"}}));
    let reply = crate::helpers::Reply::from(res.send().await.unwrap()).await;
    assert_envelope(
        &reply,
        404,
        "trigger_event_not_found",
        "TRIGGER_EVENT_NOT_FOUND",
    );
    let res = app
        .client
        .get(app.url(&format!("/v1/automations/triggers/{trigger}")))
        .bearer_auth(&other_key.secret);
    let reply = crate::helpers::Reply::from(res.send().await.unwrap()).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "NO_SUCH_TRIGGER");
    let _: Value = reply.body;
}

crate::each_backend!(
    fired_starts_one_run_per_published_automation,
    same_key_same_body_replays_the_original_runs,
    same_key_different_body_conflicts,
    header_key_wins_over_body_key,
    no_published_automation_still_upserts_and_records,
    payload_mismatch_lists_every_problem,
    unexpected_keys_are_kept_and_reported,
    unknown_trigger_is_not_found,
    disabled_trigger_records_the_fire_without_runs,
    trigger_edits_apply_to_the_next_fire,
    body_that_is_not_json_is_rejected,
    idempotency_key_must_be_1_to_100_characters,
    missing_or_bad_api_key_is_unauthorized,
    dry_run_validates_and_writes_nothing,
    concurrent_fires_with_one_key_fire_once,
    contacts_merge_and_absent_values_never_erase,
    other_orgs_triggers_are_not_found,
);
