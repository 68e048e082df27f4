//! Revocations reach every process within a second: a revoked API key, a removed secret, a
//! disabled or deleted connection, across real `firehook` processes on one database (the
//! cache generation, `src/store/generation.rs`). And a connection edit that fails half
//! way changes nothing.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{run_cli, spawn_app, Backend, Gateway, Reply, API_KEY};
use crate::processes::call;

/// How long another process may take: the generation is read every 500 ms.
const WITHIN: Duration = Duration::from_millis(1500);

/// A Shopify delivery signed by the SDK (Shopify signs no timestamp, so real clocks accept
/// it), see fixtures/README.md.
struct Delivery {
    secret: String,
    body: String,
    headers: Vec<(String, String)>,
}

impl Delivery {
    fn load() -> Delivery {
        let path = format!(
            "{}/fixtures/shopify/orders.paid.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        Delivery {
            secret: doc["secret"].as_str().unwrap().to_owned(),
            body: doc["body"].as_str().unwrap().to_owned(),
            headers: doc["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
        }
    }

    /// The same delivery signed with `secret` instead (base64 HMAC-SHA256 of the body).
    fn signed_with(&self, secret: &str) -> Delivery {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.body.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let mut headers = self.headers.clone();
        for (name, value) in &mut headers {
            if name.eq_ignore_ascii_case("x-shopify-hmac-sha256") {
                *value = signature.clone();
            }
        }
        Delivery {
            secret: secret.to_owned(),
            body: self.body.clone(),
            headers,
        }
    }

    /// Posts it to `connection`'s receive URL on `base`; answers the status.
    async fn post(&self, client: &reqwest::Client, base: &str, connection: &str) -> u16 {
        let mut req = client
            .post(format!(
                "{base}/api/integrations/shopify/webhook/{connection}"
            ))
            .body(self.body.clone());
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        req.send().await.expect("request").status().as_u16()
    }
}

/// Asks `probe` every 50 ms until it answers `wanted`, for at most [`WITHIN`].
async fn answers_within<F, Fut>(wanted: u16, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    while started.elapsed() < WITHIN {
        if probe().await == wanted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn status_as(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    client
        .get(format!("{base}/v1/automations/triggers"))
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// `keys revoke` (a process of its own) revokes a key that two serving gateways have
/// cached; both refuse it within a second.
async fn a_revoked_key_is_refused_by_every_gateway_within_a_second(backend: Backend) {
    let database = backend.fresh_database().await;
    let a = Gateway::start(&database.url);
    let b = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let (ok, out, err) = run_cli(&database.url, &["keys", "create"]);
    assert!(ok, "{out}{err}");
    // `api key fh_... (id key_...) for org ...`
    let words: Vec<&str> = out.split_whitespace().collect();
    let key = words[2].to_owned();
    let id = words[4].trim_end_matches(')').to_owned();
    for gateway in [&a, &b] {
        assert_eq!(status_as(&client, &gateway.base, &key).await, 200);
    }

    let (ok, out, err) = run_cli(&database.url, &["keys", "revoke", &id]);
    assert!(ok, "{out}{err}");
    for gateway in [&a, &b] {
        let refused = answers_within(401, || status_as(&client, &gateway.base, &key)).await;
        assert!(refused, "{}: still accepted the key", gateway.base);
    }
    assert_eq!(status_as(&client, &b.base, API_KEY).await, 200);
}

/// Creates a Shopify connection through `base` with `secrets`; answers its id and the id of
/// its first secret.
async fn shopify_connection(
    client: &reqwest::Client,
    base: &str,
    secret: &str,
) -> (String, String) {
    let created = call(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/integrations/connections"),
        Some(&json!({"provider": "shopify", "secrets": [secret]})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["connectionId"].as_str().unwrap().to_owned();
    let secret_id = created.body["secrets"][0]["secretId"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, secret_id)
}

async fn patch(client: &reqwest::Client, base: &str, connection: &str, body: Value) -> Reply {
    call(
        client,
        reqwest::Method::PATCH,
        format!("{base}/v1/integrations/connections/{connection}"),
        Some(&body),
    )
    .await
}

/// A secret removed through gateway A: A refuses deliveries signed with it at once, B
/// within a second, while the secret that replaced it verifies on both.
async fn a_removed_secret_is_refused_by_every_gateway_within_a_second(backend: Backend) {
    let database = backend.fresh_database().await;
    let a = Gateway::start(&database.url);
    let b = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let delivery = Delivery::load();
    let (id, secret_id) = shopify_connection(&client, &a.base, &delivery.secret).await;
    for gateway in [&a, &b] {
        assert_eq!(delivery.post(&client, &gateway.base, &id).await, 200);
    }

    let rotated = delivery.signed_with("shpss_rotated_0123456789abcdef");
    let edit = json!({"addSecret": rotated.secret, "removeSecretId": secret_id});
    let reply = patch(&client, &a.base, &id, edit).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        delivery.post(&client, &a.base, &id).await,
        401,
        "at once in A"
    );
    let refused = answers_within(401, || delivery.post(&client, &b.base, &id)).await;
    assert!(refused, "B still accepts the removed secret");
    for gateway in [&a, &b] {
        assert_eq!(rotated.post(&client, &gateway.base, &id).await, 200);
    }
}

/// A connection disabled and another deleted through gateway A: both receive URLs answer
/// 404 on gateway B within a second.
async fn a_disabled_or_deleted_connection_is_refused_by_every_gateway_within_a_second(
    backend: Backend,
) {
    let database = backend.fresh_database().await;
    let a = Gateway::start(&database.url);
    let b = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let delivery = Delivery::load();
    let (disabled, _) = shopify_connection(&client, &a.base, &delivery.secret).await;
    let (deleted, _) = shopify_connection(&client, &a.base, &delivery.secret).await;
    for id in [&disabled, &deleted] {
        assert_eq!(delivery.post(&client, &b.base, id).await, 200);
    }

    let reply = patch(&client, &a.base, &disabled, json!({"enabled": false})).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = call(
        &client,
        reqwest::Method::DELETE,
        format!("{}/v1/integrations/connections/{deleted}", a.base),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    for id in [&disabled, &deleted] {
        let gone = answers_within(404, || delivery.post(&client, &b.base, id)).await;
        assert!(gone, "B still receives for {id}");
    }
}

/// A PATCH that adds and removes a secret but fails on another field answers 4xx and
/// leaves the connection as it was: the same secrets, name and state, and the old secret
/// still verifies while the one it would have added does not.
async fn a_connection_edit_that_fails_half_way_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivery = Delivery::load();
    let created = app
        .create_connection(
            &json!({"provider": "shopify", "name": "Shop", "secrets": [delivery.secret]}),
        )
        .await;
    let id = created["connectionId"].as_str().unwrap();
    let secret_id = created["secrets"][0]["secretId"].as_str().unwrap();
    let path = format!("/v1/integrations/connections/{id}");
    let base = app.base.clone();
    assert_eq!(delivery.post(&app.client, &base, id).await, 200);
    let added = delivery.signed_with("shpss_would_be_added_0123456789");
    let state = |c: &Value| {
        let secrets: Vec<Value> = c["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!([s["secretId"], s["hint"]]))
            .collect();
        json!({"secrets": secrets, "name": c["name"], "enabled": c["enabled"], "options": c["options"]})
    };
    let before = state(&app.get(&path).await.body);

    let rotate = json!({"addSecret": added.secret, "removeSecretId": secret_id});
    let with = |extra: Value| {
        let mut body = rotate.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (edit, status) in [
        (with(json!({"name": ""})), 400),
        (with(json!({"name": "x".repeat(121)})), 400),
        (
            with(json!({"enabled": false, "options": {"emailPath": 5}})),
            400,
        ),
        (
            with(json!({"name": "Renamed", "removeSecretId": "sec_nope"})),
            404,
        ),
        (with(json!({"addSecret": ""})), 400),
    ] {
        let reply = app.patch(&path, &edit).await;
        assert_eq!(reply.status, status, "{edit}: {:?}", reply.body);
        assert_eq!(state(&app.get(&path).await.body), before, "{edit}");
        assert_eq!(delivery.post(&app.client, &base, id).await, 200, "{edit}");
        assert_eq!(added.post(&app.client, &base, id).await, 401, "{edit}");
    }
}

crate::each_backend!(
    a_revoked_key_is_refused_by_every_gateway_within_a_second,
    a_removed_secret_is_refused_by_every_gateway_within_a_second,
    a_disabled_or_deleted_connection_is_refused_by_every_gateway_within_a_second,
    a_connection_edit_that_fails_half_way_changes_nothing,
);
