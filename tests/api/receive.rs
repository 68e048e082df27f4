//! Receive URLs: signed fixtures (made by the providers' SDKs, see fixtures/README.md)
//! delivered over HTTP with the server's clock pinned to the fixture's time.

use firehook::clock::Clock;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Backend, Reply, TestApp};

/// A fixture file from `fixtures/<provider>/`.
#[derive(Clone)]
struct Fixture {
    name: String,
    doc: Value,
}

impl Fixture {
    fn load(provider: &str, event_file: &str) -> Fixture {
        let path = format!(
            "{}/fixtures/{provider}/{event_file}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Fixture {
            name: format!("{provider}/{event_file}"),
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    fn all(provider: &str) -> Vec<Fixture> {
        let dir = format!("{}/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names.iter().map(|n| Fixture::load(provider, n)).collect()
    }

    fn provider(&self) -> &str {
        self.doc["provider"].as_str().unwrap()
    }
    fn event(&self) -> &str {
        self.doc["event"].as_str().unwrap()
    }
    fn secret(&self) -> &str {
        self.doc["secret"].as_str().unwrap()
    }
    fn timestamp_ms(&self) -> i64 {
        self.doc["timestamp"].as_i64().unwrap() * 1000
    }
    fn body(&self) -> String {
        self.doc["body"].as_str().unwrap().to_owned()
    }
    fn expect(&self) -> &Value {
        &self.doc["expect"]
    }
    fn headers(&self) -> Vec<(String, String)> {
        let map = self.doc["headers"].as_object().unwrap();
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect()
    }

    /// Options for the connection: the fixture's own, plus the event for receivers that
    /// take their event list from options.
    fn options(&self) -> Value {
        let mut options = self
            .doc
            .get("options")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        if matches!(self.provider(), "generic" | "standard") {
            options["events"] = json!([self.event()]);
        }
        options
    }
}

/// A connection made for a fixture, with its event's automation published (or not).
struct Connection {
    id: String,
    trigger: String,
}

async fn connect(
    app: &TestApp,
    fixture: &Fixture,
    secrets: Vec<&str>,
    publish: bool,
) -> Connection {
    let reply = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": fixture.provider(), "secrets": secrets, "options": fixture.options()}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}: {:?}", fixture.name, reply.body);
    let id = reply.body["connectionId"].as_str().unwrap().to_owned();
    let trigger = format!("{}:{id}:{}", fixture.provider(), fixture.event());
    let provisioned: Vec<&str> = reply.body["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["triggerEventId"].as_str())
        .collect();
    if fixture.expect()["action"] == "fire" {
        assert!(
            provisioned.contains(&trigger.as_str()),
            "{}: {trigger} not in {provisioned:?}",
            fixture.name
        );
        app.create_automation(&trigger, publish).await;
    }
    Connection { id, trigger }
}

/// Delivers `body` with the fixture's headers (minus `drop_header`), clock at `at_ms`.
async fn deliver_as(
    app: &TestApp,
    fixture: &Fixture,
    provider: &str,
    connection: &str,
    body: String,
    drop_header: Option<&str>,
    at_ms: i64,
) -> Reply {
    app.clock.set_ms(at_ms);
    let mut url = app.url(&format!(
        "/api/integrations/{provider}/webhook/{connection}"
    ));
    if let Some(query) = fixture.doc["query"].as_str() {
        url = format!("{url}?{query}");
    }
    let mut req = app.client.post(url).body(body);
    for (name, value) in fixture.headers() {
        if drop_header.is_none_or(|d| !d.eq_ignore_ascii_case(&name)) {
            req = req.header(name, value);
        }
    }
    Reply::from(req.send().await.expect("request")).await
}

async fn deliver(app: &TestApp, fixture: &Fixture, connection: &str) -> Reply {
    deliver_as(
        app,
        fixture,
        fixture.provider(),
        connection,
        fixture.body(),
        None,
        fixture.timestamp_ms(),
    )
    .await
}

fn pinned_app_clock() -> Clock {
    Clock::pinned(0)
}

/// Every fixture of a provider: a first delivery fires (or is ignored as the fixture says),
/// a repeat is a duplicate and starts nothing more.
async fn provider_fixtures_fire_once(backend: Backend, provider: &str) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let mut fixtures = Fixture::all(provider);
    // Events that carry an email first: they store the provider ids later events resolve by.
    fixtures.sort_by_key(|f| f.expect()["lookup"].is_array());
    // (field, value) of provider ids already stored -> the contact's email.
    let mut known_ids: Vec<((String, String), String)> = vec![];
    for fixture in fixtures {
        let name = &fixture.name;
        let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
        let contacts_before = app.list_all("/v1/contacts").await.len();
        let runs_before_all = app.list_all("/v1/automations/runs").await.len();
        let first = deliver(&app, &fixture, &connection.id).await;
        assert_eq!(first.status, 200, "{name}: {:?}", first.body);
        assert_eq!(first.body["received"], true, "{name}");
        assert_eq!(first.body["event"], fixture.event(), "{name}");
        let expect = fixture.expect();
        let lookup = expect["lookup"]
            .as_array()
            .filter(|_| expect["email"].is_null())
            .map(|l| {
                (
                    l[0].as_str().unwrap().to_owned(),
                    l[1].as_str().unwrap().to_owned(),
                )
            });
        let resolved_email = match &lookup {
            Some(wanted) => known_ids
                .iter()
                .find(|(id, _)| id == wanted)
                .map(|(_, email)| email.clone()),
            None => expect["email"].as_str().map(|e| e.trim().to_lowercase()),
        };
        let email = match (expect["action"].as_str(), resolved_email) {
            (Some("fire"), Some(email)) => email,
            (action, _) => {
                // Ignored: an unmapped event, or a provider id no contact holds yet.
                let reason = match action {
                    Some("ignore") => expect["reason"].clone(),
                    _ => json!("contact_not_found"),
                };
                assert_eq!(first.body["status"], "ignored", "{name}: {:?}", first.body);
                assert_eq!(first.body["reason"], reason, "{name}");
                assert_eq!(
                    app.list_all("/v1/contacts").await.len(),
                    contacts_before,
                    "{name}: an ignored delivery writes no contact"
                );
                assert_eq!(
                    app.list_all("/v1/automations/runs").await.len(),
                    runs_before_all,
                    "{name}: an ignored delivery starts no run"
                );
                for instance in app.list_all("/v1/trigger-instances").await {
                    if instance["outcome"] != "triggered" {
                        assert_eq!(
                            instance["automationRunIds"],
                            json!([]),
                            "{name}: {instance}"
                        );
                    }
                }
                String::new()
            }
        };
        if !email.is_empty() {
            assert_eq!(
                first.body["status"], "triggered",
                "{name}: {:?}",
                first.body
            );
            assert_eq!(
                first.body["triggerEventId"],
                connection.trigger.as_str(),
                "{name}"
            );
            let run_ids = first.body["automationRunIds"].as_array().unwrap();
            assert_eq!(run_ids.len(), 1, "{name}");
            let runs = app.runs_of(&connection.trigger).await;
            assert_eq!(runs.len(), 1, "{name}");
            assert_eq!(runs[0]["automationRunId"], run_ids[0], "{name}");
            assert_eq!(runs[0]["contactEmail"], email.as_str(), "{name}");
            let contact = app
                .contact(&email)
                .await
                .unwrap_or_else(|| panic!("{name}: contact {email}"));
            assert_eq!(contact["email"], email.as_str(), "{name}");
            for (key, value) in expect["fields"].as_object().unwrap() {
                match key.as_str() {
                    "email" => {}
                    "firstName" | "lastName" => {
                        assert_eq!(&contact[key], value, "{name}: {key}")
                    }
                    _ => {
                        assert_eq!(&contact["customFields"][key], value, "{name}: {key}");
                        if let Some(v) = value.as_str() {
                            known_ids.push(((key.clone(), v.to_owned()), email.clone()));
                        }
                    }
                }
            }
            // Deletions mark the contact (`<provider>_deleted_at`) and keep it.
            for field in expect["present"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap();
                assert!(
                    contact["customFields"][field]
                        .as_str()
                        .is_some_and(|v| !v.is_empty()),
                    "{name}: {field} set: {contact}"
                );
            }
        }
        let runs_before = app.runs_of(&connection.trigger).await.len();
        let again = deliver(&app, &fixture, &connection.id).await;
        assert_eq!(again.status, 200, "{name}: {:?}", again.body);
        assert_eq!(
            again.body["status"], "duplicate",
            "{name}: {:?}",
            again.body
        );
        // A repeat answered from memory, whose body may not even be parsed, still names
        // the event and the fire it repeats.
        assert_eq!(again.body["event"], first.body["event"], "{name}");
        if first.body["triggerInstanceId"].is_string() {
            assert_eq!(
                again.body["triggerInstanceId"], first.body["triggerInstanceId"],
                "{name}"
            );
        }
        assert_eq!(
            app.runs_of(&connection.trigger).await.len(),
            runs_before,
            "{name}: a duplicate starts nothing"
        );
    }
}

/// Every provider's fixtures, each provider on an app of its own: a new `fixtures/<slug>/`
/// folder is picked up without any edit here.
async fn every_providers_fixtures_fire_once(backend: Backend) {
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut providers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_dir().then_some(())?;
            e.file_name().into_string().ok()
        })
        .filter(|name| !name.starts_with('.') && name != "node_modules")
        .collect();
    providers.sort();
    assert!(providers.len() >= 11, "{providers:?}");
    for provider in providers {
        provider_fixtures_fire_once(backend.clone(), &provider).await;
    }
}

/// The header that carries the signature or token of each scheme's representative fixture.
fn signature_header(fixture: &Fixture) -> Option<&'static str> {
    match fixture.provider() {
        "clerk" => Some("svix-signature"),
        "stripe" => Some("stripe-signature"),
        "shopify" => Some("x-shopify-hmac-sha256"),
        "workos" => Some("workos-signature"),
        "generic" => Some("x-webhook-signature"),
        "supabase" => Some("authorization"),
        _ => None,
    }
}

/// Per scheme: tampering, a wrong secret, a missing signature and a clock outside the
/// tolerance answer 401 and store nothing; a second active secret verifies.
async fn each_scheme_rejects_what_it_must(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let cases = [
        ("clerk", "user.created", Some(300_000)),
        ("stripe", "customer.created", Some(300_000)),
        ("shopify", "orders.paid", None),
        ("workos", "user.created", Some(180_000)),
        ("generic", "delivered", None),
        ("supabase", "INSERT", None),
        ("brimble", "subscription.created", None),
    ];
    for (provider, event, tolerance_ms) in cases {
        let fixture = Fixture::load(provider, event);
        let name = &fixture.name;
        let wrong = match provider {
            "clerk" => "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGw=".to_owned(),
            "stripe" => "whsec_not_the_right_secret".to_owned(),
            _ => format!("{}-but-wrong", fixture.secret()),
        };
        let wrong_only = connect(&app, &fixture, vec![&wrong], true).await;
        let reply = deliver(&app, &fixture, &wrong_only.id).await;
        assert_eq!(reply.status, 401, "{name}: wrong secret: {:?}", reply.body);

        let rotated = connect(&app, &fixture, vec![&wrong, fixture.secret()], true).await;
        let at = fixture.timestamp_ms();
        if provider != "brimble" && provider != "supabase" {
            let mut tampered = fixture.body();
            tampered.insert(1, ' ');
            let reply = deliver_as(&app, &fixture, provider, &rotated.id, tampered, None, at).await;
            assert_eq!(reply.status, 401, "{name}: tampered body: {:?}", reply.body);
        }
        if let Some(header) = signature_header(&fixture) {
            let reply = deliver_as(
                &app,
                &fixture,
                provider,
                &rotated.id,
                fixture.body(),
                Some(header),
                at,
            )
            .await;
            assert_eq!(
                reply.status, 401,
                "{name}: missing {header}: {:?}",
                reply.body
            );
        }
        if let Some(tolerance) = tolerance_ms {
            let stale = deliver_as(
                &app,
                &fixture,
                provider,
                &rotated.id,
                fixture.body(),
                None,
                at + tolerance + 1500,
            )
            .await;
            assert_eq!(stale.status, 401, "{name}: stale: {:?}", stale.body);
            if provider != "stripe" {
                let future = deliver_as(
                    &app,
                    &fixture,
                    provider,
                    &rotated.id,
                    fixture.body(),
                    None,
                    at - tolerance - 1500,
                )
                .await;
                assert_eq!(
                    future.status, 401,
                    "{name}: from the future: {:?}",
                    future.body
                );
            }
        }
        assert!(
            app.runs_of(&rotated.trigger).await.is_empty(),
            "{name}: a rejected delivery stores nothing"
        );
        let ok = deliver(&app, &fixture, &rotated.id).await;
        assert_eq!(
            ok.body["status"], "triggered",
            "{name}: the second active secret verifies: {:?}",
            ok.body
        );
    }
    let metrics = Reply::from(app.client.get(app.url("/metrics")).send().await.unwrap()).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("firehook_verification_failures_total{provider=\"stripe\",reason=\"invalid_signature\"}"), "{text}");
}

/// Rotation through the API: add the new secret, retire the old one.
async fn secrets_rotate_and_are_never_shown_again(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let connection = connect(
        &app,
        &fixture,
        vec!["whsec_b2xkIHNlY3JldCBvbGQgc2VjcmV0IG9sZCBzZWNyZXQ="],
        true,
    )
    .await;
    assert_eq!(deliver(&app, &fixture, &connection.id).await.status, 401);
    let path = format!("/v1/integrations/connections/{}", connection.id);
    let added = app
        .patch(&path, &json!({"addSecret": fixture.secret()}))
        .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    let secrets = added.body["secrets"].as_array().unwrap().clone();
    assert_eq!(secrets.len(), 2);
    assert!(
        !added.body.to_string().contains(fixture.secret()),
        "secrets are write-only"
    );
    let old = secrets
        .iter()
        .find(|s| s["hint"] == "ZXQ=")
        .expect("old secret's hint")["secretId"]
        .clone();
    // While both are active, each secret says when it last verified a delivery.
    assert!(secrets.iter().all(|s| s["lastVerifiedAt"].is_null()));
    let fired = deliver(&app, &fixture, &connection.id).await;
    assert_eq!(fired.body["status"], "triggered", "{:?}", fired.body);
    let both = app.get(&path).await.body["secrets"].clone();
    let verified_at = |id: &Value| {
        both.as_array()
            .unwrap()
            .iter()
            .find(|s| s["secretId"] == *id)
            .unwrap()["lastVerifiedAt"]
            .clone()
    };
    assert_eq!(
        verified_at(&old),
        Value::Null,
        "the old secret verified nothing"
    );
    let new = secrets.iter().find(|s| s["secretId"] != old).unwrap()["secretId"].clone();
    assert_eq!(
        verified_at(&new),
        json!(firehook::clock::rfc3339(fixture.timestamp_ms())),
        "{both}"
    );
    let removed = app.patch(&path, &json!({"removeSecretId": old})).await;
    assert_eq!(
        removed.body["secrets"].as_array().unwrap().len(),
        1,
        "{:?}",
        removed.body
    );
    let last = removed.body["secrets"][0]["secretId"].clone();
    let refused = app.patch(&path, &json!({"removeSecretId": last})).await;
    assert_eq!((refused.status, refused.error_code()), (409, "LAST_SECRET"));
    assert_eq!(
        deliver(&app, &fixture, &connection.id).await.body["status"],
        "duplicate"
    );
    let shown = app.get(&path).await;
    assert!(
        !shown.body.to_string().contains(fixture.secret()),
        "{:?}",
        shown.body
    );
}

async fn token_providers_mint_a_secret_shown_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "supabase"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let secret = reply.body["secret"]
        .as_str()
        .expect("minted secret")
        .to_owned();
    assert_eq!(
        reply.body["secrets"][0]["hint"],
        &secret[secret.len() - 4..]
    );
    let id = reply.body["connectionId"].as_str().unwrap();
    let shown = app.get(&format!("/v1/integrations/connections/{id}")).await;
    assert!(shown.body.get("secret").is_none() && !shown.body.to_string().contains(&secret));
    let listed = app.get("/v1/integrations/connections").await;
    assert!(!listed.body.to_string().contains(&secret));
}

async fn connection_requests_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"provider": "myspace", "secrets": ["x"]}), "provider"),
        (json!({"provider": "clerk"}), "secrets"),
        (
            json!({"provider": "clerk", "secrets": ["not-a-svix-secret"]}),
            "secrets[0]",
        ),
        (
            json!({"provider": "clerk", "secrets": ["whsec_abc"], "colour": "red"}),
            "colour",
        ),
        (
            json!({"provider": "clerk", "secrets": "whsec_abc"}),
            "secrets",
        ),
        (
            json!({"provider": "generic", "secrets": ["generic_secret_0123"], "options": {"events": [3]}}),
            "options.events",
        ),
        (
            json!({"provider": "supabase", "options": {"tables": [{"schema": "public"}]}}),
            "options",
        ),
    ];
    for (body, param) in cases {
        let reply = app.post("/v1/integrations/connections", &body).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "INVALID_REQUEST"),
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["param"], param,
            "{body}: {:?}",
            reply.body
        );
    }
    let listed = app.get("/v1/integrations/connections").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was written");
}

async fn unknown_mismatched_disabled_and_deleted_connections_are_not_found(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let at = fixture.timestamp_ms();
    let unknown = deliver_as(
        &app,
        &fixture,
        "clerk",
        "con_nope",
        fixture.body(),
        None,
        at,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "CONNECTION_NOT_FOUND")
    );
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let mismatch = deliver_as(
        &app,
        &fixture,
        "stripe",
        &connection.id,
        fixture.body(),
        None,
        at,
    )
    .await;
    assert_eq!(mismatch.status, 404);
    let path = format!("/v1/integrations/connections/{}", connection.id);
    assert_eq!(
        app.patch(&path, &json!({"enabled": false})).await.status,
        200
    );
    assert_eq!(
        deliver(&app, &fixture, &connection.id).await.status,
        404,
        "disabled"
    );
    assert_eq!(
        app.patch(&path, &json!({"enabled": true})).await.status,
        200
    );
    assert_eq!(
        deliver(&app, &fixture, &connection.id).await.body["status"],
        "triggered"
    );
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status, 200);
    let gone = deliver_as(
        &app,
        &fixture,
        "clerk",
        &connection.id,
        fixture.body(),
        None,
        at,
    )
    .await;
    assert_eq!(gone.status, 404, "deleted");
    assert_eq!(app.get(&path).await.status, 404);
    assert_eq!(
        app.runs_of(&connection.trigger).await.len(),
        1,
        "past fires stay"
    );
}

async fn bad_bodies_are_rejected(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |s| {
        s.server.max_body_bytes = 1024
    })
    .await;
    // Supabase authenticates with a token, so a non-JSON body can carry a valid credential.
    let fixture = Fixture::load("supabase", "INSERT");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let at = fixture.timestamp_ms();
    let reply = deliver_as(
        &app,
        &fixture,
        "supabase",
        &connection.id,
        "{not json".into(),
        None,
        at,
    )
    .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (400, "INVALID_JSON"),
        "{:?}",
        reply.body
    );
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2048));
    let reply = deliver_as(&app, &fixture, "supabase", &connection.id, big, None, at).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (413, "PAYLOAD_TOO_LARGE"),
        "{:?}",
        reply.body
    );
    assert!(app.runs_of(&connection.trigger).await.is_empty());
}

async fn nothing_published_still_upserts_the_contact(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let connection = connect(&app, &fixture, vec![fixture.secret()], false).await;
    let reply = deliver(&app, &fixture, &connection.id).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["status"], "no_published_automation",
        "{:?}",
        reply.body
    );
    let contact = app.get("/v1/contacts?email=jane.doe@example.com").await;
    assert_eq!(
        contact.body["customFields"]["clerk_user_id"],
        fixture.expect()["fields"]["clerk_user_id"]
    );
    assert!(app.runs_of(&connection.trigger).await.is_empty());
}

async fn concurrent_identical_deliveries_fire_once(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("stripe", "customer.created");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    app.clock.set_ms(fixture.timestamp_ms());
    let replies =
        futures::future::join_all((0..40).map(|_| deliver(&app, &fixture, &connection.id))).await;
    let statuses: Vec<&str> = replies
        .iter()
        .map(|r| r.body["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "triggered").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "duplicate").count(),
        39,
        "{statuses:?}"
    );
    assert_eq!(app.runs_of(&connection.trigger).await.len(), 1);
}

/// PATCH `options` provisions the triggers the new options add, keeps the old ones, and
/// the connection maps with the new options from the next delivery on.
async fn patched_options_provision_new_triggers(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let insert = Fixture::load("supabase", "public.customers.INSERT");
    let update = Fixture::load("supabase", "public.customers.UPDATE");
    let reply = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "supabase", "secrets": [insert.secret()]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let id = reply.body["connectionId"].as_str().unwrap().to_owned();
    let before = reply.body["triggers"].as_array().unwrap().len();
    let path = format!("/v1/integrations/connections/{id}");

    let ignored = deliver(&app, &insert, &id).await;
    assert_eq!(ignored.body["status"], "ignored", "{:?}", ignored.body);
    assert_eq!(ignored.body["reason"], "table_not_supported");

    let bad = app
        .patch(
            &path,
            &json!({"options": {"tables": [{"schema": "public", "table": "a b"}]}}),
        )
        .await;
    assert_eq!((bad.status, bad.error_code()), (400, "INVALID_REQUEST"));
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("options.tables[0].table"),
        "{:?}",
        bad.body
    );

    let patched = app
        .patch(&path, &json!({"options": insert.doc["options"]}))
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["options"], insert.doc["options"]);
    let triggers: Vec<&str> = patched.body["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["triggerEventId"].as_str())
        .collect();
    assert_eq!(triggers.len(), before + 3, "{triggers:?}");
    let trigger = format!("supabase:{id}:public.customers.updated");
    assert!(triggers.contains(&trigger.as_str()), "{triggers:?}");
    app.create_automation(&trigger, true).await;
    let fired = deliver(&app, &update, &id).await;
    assert_eq!(fired.body["status"], "triggered", "{:?}", fired.body);
    assert_eq!(fired.body["triggerEventId"], trigger.as_str());

    // Dropping the table keeps its triggers; they simply stop being fired.
    let reverted = app.patch(&path, &json!({"options": {}})).await;
    assert_eq!(reverted.status, 200, "{:?}", reverted.body);
    assert_eq!(
        reverted.body["triggers"].as_array().unwrap().len(),
        before + 3
    );
}

/// A disabled integration trigger: its deliveries answer `ignored` and write nothing; the
/// API answers TRIGGER_DISABLED.
async fn a_disabled_trigger_ignores_deliveries(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let patched = app
        .patch(
            &format!("/v1/automations/triggers/{}", connection.trigger),
            &json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let reply = deliver(&app, &fixture, &connection.id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        (&reply.body["status"], &reply.body["reason"]),
        (&json!("ignored"), &json!("trigger_disabled")),
        "{:?}",
        reply.body
    );
    assert!(
        app.contact("jane.doe@example.com").await.is_none(),
        "nothing upserted"
    );
    assert!(app.runs_of(&connection.trigger).await.is_empty());
    let fired = app
        .fire(
            &connection.trigger,
            &json!({"payload": {"email": "api@b.co"}}),
            None,
        )
        .await;
    assert_eq!(
        (fired.status, &fired.body["code"]),
        (422, &json!("TRIGGER_DISABLED")),
        "{:?}",
        fired.body
    );
    assert!(app.runs_of(&connection.trigger).await.is_empty());
}

/// Provider event ids are deduplicated per connection: one delivery sent to two
/// connections fires on each.
async fn dedupe_is_scoped_per_connection(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("stripe", "customer.created");
    let one = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let two = connect(&app, &fixture, vec![fixture.secret()], true).await;
    for connection in [&one, &two] {
        let reply = deliver(&app, &fixture, &connection.id).await;
        assert_eq!(reply.body["status"], "triggered", "{:?}", reply.body);
        assert_eq!(app.runs_of(&connection.trigger).await.len(), 1);
    }
    for connection in [&one, &two] {
        let reply = deliver(&app, &fixture, &connection.id).await;
        assert_eq!(reply.body["status"], "duplicate", "{:?}", reply.body);
        assert_eq!(app.runs_of(&connection.trigger).await.len(), 1);
    }
}

/// A provider's event id is remembered for the 24 h window (cache and database), then a
/// redelivery fires again. Shopify signs without a timestamp, so the clock can move.
/// A provider's event id is remembered for the longer of the 24 h idempotency window and
/// the delivery log's retention (7 days by default), so any delivery that can still be
/// replayed also still dedupes; past that the id is new.
async fn provider_event_ids_are_remembered_for_the_retention_window(backend: Backend) {
    const DAY: i64 = 86_400_000;
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    let fixture = Fixture::load("shopify", "orders.paid");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let at = fixture.timestamp_ms();
    let first = deliver_at(&app, &fixture, &connection.id, at).await;
    assert_eq!(first.body["status"], "triggered", "{:?}", first.body);
    // A second app on the database (empty cache) knows the event id from the database.
    let fresh = crate::helpers::spawn_app_on(&app.database_url, app.clock.clone(), |_| {}).await;
    let from_db = deliver_at(&fresh, &fixture, &connection.id, at + 7 * DAY - 1000).await;
    assert_eq!(from_db.body["status"], "duplicate", "{:?}", from_db.body);
    let from_cache = deliver_at(&app, &fixture, &connection.id, at + DAY + 1000).await;
    assert_eq!(
        from_cache.body["status"], "duplicate",
        "{:?}",
        from_cache.body
    );
    assert_eq!(app.runs_of(&connection.trigger).await.len(), 1);
    let after = deliver_at(&app, &fixture, &connection.id, at + 7 * DAY + 1000).await;
    assert_eq!(
        after.body["status"], "triggered",
        "past the retention window the event id is new: {:?}",
        after.body
    );
    assert_eq!(app.runs_of(&connection.trigger).await.len(), 2);
}

async fn deliver_at(app: &TestApp, fixture: &Fixture, connection: &str, at_ms: i64) -> Reply {
    deliver_as(
        app,
        fixture,
        fixture.provider(),
        connection,
        fixture.body(),
        None,
        at_ms,
    )
    .await
}

/// The default body limit is 2 MiB: a body of exactly 2 MiB is accepted, one byte more
/// answers 413 and stores nothing.
async fn the_default_body_limit_is_2_mib(backend: Backend) {
    const LIMIT: usize = 2 * 1024 * 1024;
    let app = spawn_app_with(backend, pinned_app_clock(), |_| {}).await;
    // Supabase authenticates with a token, so the body can be padded freely.
    let fixture = Fixture::load("supabase", "INSERT");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let padded = |size: usize| {
        let mut doc: Value = serde_json::from_str(&fixture.body()).unwrap();
        doc["pad"] = json!("");
        let bare = serde_json::to_string(&doc).unwrap().len();
        doc["pad"] = json!("x".repeat(size - bare));
        let body = serde_json::to_string(&doc).unwrap();
        assert_eq!(body.len(), size);
        body
    };
    let at = fixture.timestamp_ms();
    let over = deliver_as(
        &app,
        &fixture,
        "supabase",
        &connection.id,
        padded(LIMIT + 1),
        None,
        at,
    )
    .await;
    assert_eq!(
        (over.status, over.error_code()),
        (413, "PAYLOAD_TOO_LARGE"),
        "{:?}",
        over.body
    );
    assert!(app.runs_of(&connection.trigger).await.is_empty());
    let at_limit = deliver_as(
        &app,
        &fixture,
        "supabase",
        &connection.id,
        padded(LIMIT),
        None,
        at,
    )
    .await;
    assert_eq!(at_limit.status, 200, "{:?}", at_limit.body);
    assert_eq!(at_limit.body["status"], "triggered", "{:?}", at_limit.body);
    assert_eq!(app.runs_of(&connection.trigger).await.len(), 1);
}

/// Receive answers (fired, refused, too large) and fire answers carry `x-request-id`.
async fn receive_and_fire_answers_carry_a_request_id(backend: Backend) {
    let app = spawn_app_with(backend, pinned_app_clock(), |s| {
        s.server.max_body_bytes = 4096
    })
    .await;
    let fixture = Fixture::load("clerk", "user.created");
    let connection = connect(&app, &fixture, vec![fixture.secret()], true).await;
    let at = fixture.timestamp_ms();
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(8192));
    let mut replies = vec![
        (
            "receive triggered",
            deliver(&app, &fixture, &connection.id).await,
        ),
        (
            "receive duplicate",
            deliver(&app, &fixture, &connection.id).await,
        ),
        (
            "receive 401",
            deliver_as(
                &app,
                &fixture,
                "clerk",
                &connection.id,
                fixture.body(),
                Some("svix-signature"),
                at,
            )
            .await,
        ),
        (
            "receive 404",
            deliver_as(
                &app,
                &fixture,
                "clerk",
                "con_nope",
                fixture.body(),
                None,
                at,
            )
            .await,
        ),
        (
            "receive 413",
            deliver_as(
                &app,
                &fixture,
                "clerk",
                &connection.id,
                big.clone(),
                None,
                at,
            )
            .await,
        ),
    ];
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    replies.push((
        "fire 200",
        app.fire(&trigger, &json!({"payload": {"email": "rid@b.co"}}), None)
            .await,
    ));
    replies.push((
        "fire 400",
        app.fire(&trigger, &json!({"payload": {}}), None).await,
    ));
    replies.push((
        "fire 413",
        app.fire(
            &trigger,
            &json!({"payload": {"email": "rid@b.co", "pad": big}}),
            None,
        )
        .await,
    ));
    let unauthenticated = app
        .client
        .post(app.url(&format!("/v1/automations/triggers/{trigger}/fire")))
        .json(&json!({"payload": {"email": "rid@b.co"}}))
        .send()
        .await
        .unwrap();
    replies.push(("fire 401", Reply::from(unauthenticated).await));
    let expected = [200, 200, 401, 404, 413, 200, 400, 413, 401];
    for ((what, reply), status) in replies.iter().zip(expected) {
        assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
        assert!(
            reply
                .headers
                .get("x-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{what}: no x-request-id"
        );
    }
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|(_, r)| r.headers["x-request-id"].clone())
        .collect();
    assert_eq!(ids.len(), replies.len(), "one id per request");
    // A caller's own id is echoed on the receive URL.
    let mut req = app
        .client
        .post(app.url(&format!(
            "/api/integrations/clerk/webhook/{}",
            connection.id
        )))
        .header("x-request-id", "provider-trace-1")
        .body(fixture.body());
    for (name, value) in fixture.headers() {
        req = req.header(name, value);
    }
    let echoed = req.send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "provider-trace-1");
}

/// A Brevo body that names no event is answered 200 `ignored` (a 4xx would make Brevo
/// retry it), and nothing is written.
async fn a_brevo_body_without_an_event_is_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_connection(&json!({"provider": "brevo"})).await;
    let token = created["secret"]
        .as_str()
        .expect("a minted token, shown once");
    let id = created["connectionId"].as_str().unwrap();
    let reply = Reply::from(
        app.client
            .post(app.url(&format!("/api/integrations/brevo/webhook/{id}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(r#"{"email": "no-event@example.com", "message-id": "<m1@smtp>"}"#)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        (&reply.body["status"], &reply.body["reason"]),
        (&json!("ignored"), &json!("no_event")),
        "{:?}",
        reply.body
    );
    assert!(app.contact("no-event@example.com").await.is_none());
    assert!(app.list_all("/v1/automations/runs").await.is_empty());
}

crate::each_backend!(
    every_providers_fixtures_fire_once,
    a_brevo_body_without_an_event_is_ignored,
    each_scheme_rejects_what_it_must,
    secrets_rotate_and_are_never_shown_again,
    token_providers_mint_a_secret_shown_once,
    connection_requests_are_validated,
    unknown_mismatched_disabled_and_deleted_connections_are_not_found,
    bad_bodies_are_rejected,
    nothing_published_still_upserts_the_contact,
    concurrent_identical_deliveries_fire_once,
    patched_options_provision_new_triggers,
    a_disabled_trigger_ignores_deliveries,
    dedupe_is_scoped_per_connection,
    provider_event_ids_are_remembered_for_the_retention_window,
    the_default_body_limit_is_2_mib,
    receive_and_fire_answers_carry_a_request_id,
);
