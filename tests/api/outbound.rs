//! Outbound webhooks end to end: a real receiver (tests/outbound/receiver.py) verifies
//! every message with the Standard Webhooks reference library.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firehook::config::Settings;
use serde_json::{json, Value};

use crate::helpers::{prune_everything, spawn_app_with, Backend, Reply, TestApp};

/// The Python receiver, killed when dropped.
pub struct Receiver {
    child: Child,
    pub base: String,
    client: reqwest::Client,
}

impl Receiver {
    pub fn start() -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outbound/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (pip install -r tests/requirements.txt)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the receiver reports its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("receiver did not start: {line:?}"));
        Receiver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The secrets messages are verified with, in order (`verified` follows it).
    pub async fn set_secrets(&self, secrets: &[&str]) {
        let res = self
            .client
            .put(self.url("/secrets"))
            .json(&json!({ "secrets": secrets }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    /// Every request received so far, and the most that overlapped for one webhook-id.
    pub async fn log(&self) -> (Vec<Value>, u64) {
        let log = self.raw_log().await;
        let concurrent = log["maxConcurrentPerId"].as_u64().unwrap();
        (log["messages"].as_array().unwrap().clone(), concurrent)
    }

    /// The most requests that overlapped at any time.
    pub async fn max_concurrent(&self) -> u64 {
        self.raw_log().await["maxConcurrent"].as_u64().unwrap()
    }

    async fn raw_log(&self) -> Value {
        let log: Value = self
            .client
            .get(self.url("/log"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log
    }

    /// The log once `done` holds for it; panics after `within`.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let (log, _) = self.log().await;
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver's log did not get there in {within:?}: {} requests",
                log.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages the receiver accepted (2xx), verified by at least one secret.
pub fn accepted<'a>(log: &'a [Value], path: &'a str) -> impl Iterator<Item = &'a Value> {
    log.iter()
        .filter(move |m| m["path"] == path && m["status"].as_u64().is_some_and(|s| s < 300))
}

/// Short retries and private URLs (the receiver is on 127.0.0.1).
pub fn outbound_settings(settings: &mut Settings) {
    settings.outbound.allow_private_urls = true;
    settings.outbound.retry_schedule = vec![0.2, 0.2, 0.2];
}

async fn subscribe(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let reply = app
        .post(
            "/v1/webhook-subscriptions",
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let secret = reply.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (
        reply.body["subscriptionId"].as_str().unwrap().to_owned(),
        secret,
    )
}

async fn published_trigger(app: &TestApp) -> String {
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    trigger
}

async fn fire(app: &TestApp, trigger: &str, email: &str) -> Reply {
    let reply = app
        .fire(trigger, &json!({"payload": {"email": email}}), None)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply
}

/// Every delivery of the log matching `query`, following the cursor.
async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let mut rows = vec![];
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!(
                "/v1/webhook-subscriptions/deliveries?limit=100&{query}{cursor}"
            ))
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        rows.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return rows,
        }
    }
}

/// 50 fires, an endpoint that fails the first two attempts of each message: every fire
/// arrives exactly once as one logical event (one webhook-id, kept across retries),
/// verified, on its third attempt, and the log shows the three attempts.
async fn each_fire_is_one_event_delivered_after_retries(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), outbound_settings).await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, secret) = subscribe(
        &app,
        &receiver.url("/hook?fail=2"),
        json!(["trigger.fired"]),
    )
    .await;
    receiver.set_secrets(&[&secret]).await;

    let mut instances = HashSet::new();
    for i in 0..50 {
        let reply = fire(&app, &trigger, &format!("u{i}@retry.test")).await;
        instances.insert(
            reply.body["details"]["triggerInstanceId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let log = receiver
        .wait_for(Duration::from_secs(60), |log| {
            accepted(log, "/hook").count() >= 50
        })
        .await;

    let accepted: Vec<&Value> = accepted(&log, "/hook").collect();
    let ids: HashSet<&str> = accepted
        .iter()
        .map(|m| m["webhookId"].as_str().unwrap())
        .collect();
    assert_eq!((accepted.len(), ids.len()), (50, 50), "one 2xx per event");
    let delivered: HashSet<&str> = accepted
        .iter()
        .map(|m| m["data"]["triggerInstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(delivered, instances.iter().map(String::as_str).collect());
    for m in &accepted {
        assert_eq!(m["attempt"], 3, "{m}");
        assert_eq!(m["id"], m["webhookId"], "the body's id is the webhook-id");
        assert_eq!(m["type"], "trigger.fired");
    }
    let attempts_per_id = log.iter().fold(HashMap::<&str, u64>::new(), |mut n, m| {
        *n.entry(m["webhookId"].as_str().unwrap()).or_default() += 1;
        n
    });
    assert!(
        attempts_per_id.values().all(|&n| n == 3),
        "{attempts_per_id:?}"
    );
    assert!(log.iter().all(|m| m["verified"] == json!([true])));

    // The log records each attempt once the dispatcher has written it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = deliveries(&app, "status=succeeded&eventType=trigger.fired").await;
        if rows.len() == 50 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 50);
    for row in &rows {
        let statuses: Vec<&Value> = row["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["httpStatus"])
            .collect();
        assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)], "{row}");
        assert!(row["attempts"][2]["responseExcerpt"]
            .as_str()
            .unwrap()
            .contains("attempt"));
    }
    let pending = deliveries(&app, "status=pending").await;
    assert!(pending.is_empty(), "{pending:?}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"firehook_outbound_attempts_total{outcome="succeeded"} 50"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"firehook_outbound_attempts_total{outcome="http_error"} 100"#));
    assert!(metrics.contains("firehook_outbound_delivery_latency_seconds_count 50"));
}

/// The delivery log's entry once `done` holds for it; panics after ten seconds.
async fn delivery_when(app: &TestApp, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = deliveries(app, query).await;
        if let Some(row) = rows.into_iter().find(&done) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery of {query} got there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An endpoint answering 410 Gone has its subscription disabled and the delivery failed;
/// once fixed, a retry from the log sends the same event again.
async fn gone_disables_the_subscription_and_a_retry_sends_again(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), outbound_settings).await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (id, secret) = subscribe(
        &app,
        &receiver.url("/gone?status=410"),
        json!(["trigger.fired"]),
    )
    .await;
    receiver.set_secrets(&[&secret]).await;
    fire(&app, &trigger, "gone@b.co").await;

    let query = format!("subscriptionId={id}");
    let failed = delivery_when(&app, &query, |d| d["status"] == "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed["attempts"][0]["httpStatus"], 410);
    let path = format!("/v1/webhook-subscriptions/{id}");
    assert_eq!(app.get(&path).await.body["enabled"], false);

    let fixed = app
        .patch(
            &path,
            &json!({"url": receiver.url("/hook"), "enabled": true}),
        )
        .await;
    assert_eq!(fixed.status, 200, "{:?}", fixed.body);
    let delivery = failed["deliveryId"].as_str().unwrap();
    let retried = app
        .post(
            &format!("/v1/webhook-subscriptions/deliveries/{delivery}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    let log = receiver
        .wait_for(Duration::from_secs(10), |log| {
            accepted(log, "/hook").count() == 1
        })
        .await;
    let resent = accepted(&log, "/hook").next().unwrap();
    assert_eq!(
        resent["webhookId"], log[0]["webhookId"],
        "the same event, the same id"
    );
    let succeeded = delivery_when(&app, &query, |d| d["status"] == "succeeded").await;
    assert_eq!(succeeded["attempts"].as_array().unwrap().len(), 2);
}

/// A URL saved when it was public but resolving inward at send time (DNS rebinding) is
/// refused by the dispatcher, after resolution, and never called.
async fn a_private_address_is_refused_at_send_time(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), |s| {
        s.outbound.retry_schedule = vec![];
    })
    .await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    // Written behind the API's back, as if `localhost` had resolved outward when saved.
    let store = firehook::store::Store::open(&crate::helpers::test_settings(&app.database_url))
        .await
        .unwrap();
    let port = receiver.base.rsplit(':').next().unwrap();
    let subscription = firehook::store::SubscriptionRow {
        id: "whs_rebound".into(),
        org_id: store.first_org().await.unwrap().unwrap(),
        url: format!("http://localhost:{port}/hook"),
        events: r#"["*"]"#.into(),
        description: None,
        enabled: true,
        secret: firehook::outbound::sign::new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        created_at: 0,
        updated_at: 0,
    };
    store.insert_subscription(&subscription).await.unwrap();
    fire(&app, &trigger, "rebind@b.co").await;

    let failed = delivery_when(&app, "eventType=trigger.fired", |d| d["status"] == "failed").await;
    let error = failed["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("private, loopback"), "{error}");
    assert!(receiver.log().await.0.is_empty(), "the receiver was called");
}

/// `["*"]` gets every type, a filtered subscription only its types, `[]` nothing.
async fn subscriptions_get_the_event_types_they_ask_for(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), outbound_settings).await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, all) = subscribe(&app, &receiver.url("/all"), json!(["*"])).await;
    let (_, created) = subscribe(&app, &receiver.url("/created"), json!(["contact.created"])).await;
    let (paused, paused_secret) = subscribe(&app, &receiver.url("/paused"), json!([])).await;
    receiver
        .set_secrets(&[&all, &created, &paused_secret])
        .await;

    fire(&app, &trigger, "jane@filter.test").await;
    fire(&app, &trigger, "jane@filter.test").await;
    let connection = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "clerk", "secrets": ["whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGw="]}),
        )
        .await;
    assert_eq!(connection.status, 201, "{:?}", connection.body);
    let connection_id = connection.body["connectionId"].as_str().unwrap();
    let unsigned = app
        .post_raw(
            &format!("/api/integrations/clerk/webhook/{connection_id}"),
            "{}",
        )
        .await;
    assert_eq!(unsigned.status, 401);

    let types = |log: &[Value], path: &str| {
        let mut types: Vec<String> = accepted(log, path)
            .map(|m| m["type"].as_str().unwrap().to_owned())
            .collect();
        types.sort();
        types
    };
    let log = receiver
        .wait_for(Duration::from_secs(30), |log| {
            types(log, "/all").len() >= 7 && !types(log, "/created").is_empty()
        })
        .await;
    assert_eq!(
        types(&log, "/all"),
        [
            "contact.created",
            "contact.updated",
            "delivery.rejected",
            "run.queued",
            "run.queued",
            "trigger.fired",
            "trigger.fired"
        ]
    );
    assert_eq!(types(&log, "/created"), ["contact.created"]);
    let contact = accepted(&log, "/created").next().unwrap();
    assert_eq!(contact["data"]["email"], "jane@filter.test");
    let rejected = accepted(&log, "/all")
        .find(|m| m["type"] == "delivery.rejected")
        .unwrap();
    assert_eq!(rejected["data"]["connectionId"], connection_id);
    assert_eq!(rejected["data"]["provider"], "clerk");
    assert!(rejected["data"]["deliveryId"]
        .as_str()
        .unwrap()
        .starts_with("dlv_"));
    // A paused subscription has no deliveries at all, not merely unsent ones.
    assert!(deliveries(&app, &format!("subscriptionId={paused}"))
        .await
        .is_empty());
    assert!(types(&log, "/paused").is_empty());

    let listed = app.get("/v1/webhook-subscriptions/event-types").await;
    assert_eq!(listed.status, 200);
    let listed: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["example"]["type"], t["type"]);
            t["type"].as_str().unwrap()
        })
        .collect();
    assert_eq!(listed.len(), 5);
    let anonymous = app
        .client
        .get(app.url("/v1/webhook-subscriptions/event-types"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A slow endpoint gets no more concurrent requests than `max_in_flight_per_endpoint`.
async fn an_endpoint_gets_at_most_its_share_of_concurrent_requests(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), |s| {
        outbound_settings(s);
        s.outbound.max_in_flight_per_endpoint = 2;
    })
    .await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, secret) = subscribe(
        &app,
        &receiver.url("/slow?delay_ms=50"),
        json!(["trigger.fired"]),
    )
    .await;
    receiver.set_secrets(&[&secret]).await;
    let emails: Vec<String> = (0..20).map(|i| format!("s{i}@slow.test")).collect();
    futures::future::join_all(emails.iter().map(|email| fire(&app, &trigger, email))).await;
    receiver
        .wait_for(Duration::from_secs(20), |log| {
            accepted(log, "/slow").count() == 20
        })
        .await;
    let most = receiver.max_concurrent().await;
    assert!(most <= 2, "{most} requests at once");
}

/// A slow endpoint with a backlog does not hold up another: each claim takes only what an
/// endpoint may hold, so the fast endpoint's events go out while the slow one's wait.
async fn a_backlogged_endpoint_does_not_hold_up_another(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), |s| {
        outbound_settings(s);
        s.outbound.max_in_flight_per_endpoint = 1;
    })
    .await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, slow) = subscribe(&app, &receiver.url("/slow?delay_ms=200"), json!(["*"])).await;
    let (_, fast) = subscribe(&app, &receiver.url("/fast"), json!(["trigger.fired"])).await;
    receiver.set_secrets(&[&slow, &fast]).await;
    for i in 0..8 {
        fire(&app, &trigger, &format!("b{i}@backlog.test")).await;
    }
    let log = receiver
        .wait_for(Duration::from_secs(30), |log| {
            accepted(log, "/fast").count() == 8
        })
        .await;
    // Three events per fire reach the slow endpoint, one at a time, 200 ms each.
    let slow_done = accepted(&log, "/slow").count();
    assert!(
        slow_done < 24,
        "the fast endpoint waited for all {slow_done} slow events"
    );
    let log = receiver
        .wait_for(Duration::from_secs(30), |log| {
            accepted(log, "/slow").count() == 24
        })
        .await;
    assert_eq!(accepted(&log, "/fast").count(), 8);
}

/// After a rotation messages verify with the old and the new secret; neither secret is
/// shown again.
async fn a_rotated_secret_and_the_old_one_both_verify(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), outbound_settings).await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (id, old) = subscribe(&app, &receiver.url("/hook"), json!(["trigger.fired"])).await;
    let rotated = app
        .post(
            &format!("/v1/webhook-subscriptions/{id}/rotate-secret"),
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap();
    assert_ne!(new, old);
    receiver.set_secrets(&[&old, new]).await;

    fire(&app, &trigger, "rotate@b.co").await;
    let log = receiver
        .wait_for(Duration::from_secs(20), |log| {
            accepted(log, "/hook").count() == 1
        })
        .await;
    assert_eq!(log[0]["verified"], json!([true, true]));

    let shown = app.get(&format!("/v1/webhook-subscriptions/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none(), "{:?}", shown.body);
    let listed = app.get("/v1/webhook-subscriptions").await;
    assert!(!listed.body.to_string().contains("whsec_"));
}

/// Bad input answers 400 naming the field, private addresses `URL_NOT_ALLOWED`, another
/// org's ids 404; nothing is a 500.
async fn bad_subscriptions_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), |_| {}).await;
    let ok = "https://93.184.216.34/hook";
    let cases = [
        (
            json!({"url": "not a url", "events": ["*"]}),
            "INVALID_REQUEST",
            "url",
        ),
        (
            json!({"url": "ftp://example.com/x", "events": ["*"]}),
            "INVALID_REQUEST",
            "url",
        ),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(2048))}),
            "INVALID_REQUEST",
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/hook"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": "http://localhost/hook"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": "http://10.0.0.8/hook"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": "http://[::ffff:192.168.0.1]/hook"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": "http://[fd00:ec2::254]/"}),
            "URL_NOT_ALLOWED",
            "url",
        ),
        (
            json!({"url": ok, "events": ["trigger.fired", "user.exploded"]}),
            "INVALID_REQUEST",
            "events[1]",
        ),
        (
            json!({"url": ok, "events": "*"}),
            "INVALID_REQUEST",
            "events",
        ),
        (
            json!({"url": ok, "description": "nul\u{0}here"}),
            "INVALID_REQUEST",
            "description",
        ),
        (
            json!({"url": ok, "description": "d".repeat(2001)}),
            "INVALID_REQUEST",
            "description",
        ),
        (
            json!({"url": ok, "colour": "red"}),
            "INVALID_REQUEST",
            "colour",
        ),
        (json!({"events": ["*"]}), "INVALID_REQUEST", "body"),
    ];
    for (body, code, param) in cases {
        let reply = app.post("/v1/webhook-subscriptions", &body).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(reply.error_code(), code, "{body}: {:?}", reply.body);
        assert_eq!(
            reply.body["error"]["param"], param,
            "{body}: {:?}",
            reply.body
        );
    }
    let listed = app.get("/v1/webhook-subscriptions").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was written");

    let created = app
        .post(
            "/v1/webhook-subscriptions",
            &json!({"url": ok, "description": "d".repeat(2000)}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["events"], json!(["*"]));
    let id = created.body["subscriptionId"].as_str().unwrap();
    let path = format!("/v1/webhook-subscriptions/{id}");
    let private = app
        .patch(&path, &json!({"url": "http://192.168.1.1/x"}))
        .await;
    assert_eq!(
        (private.status, private.error_code()),
        (400, "URL_NOT_ALLOWED")
    );
    let unknown = app.patch(&path, &json!({"events": ["nope"]})).await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (400, "INVALID_REQUEST")
    );
    let paused = app.patch(&path, &json!({"events": []})).await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["events"], json!([]));

    for (query, param) in [("status=done", "status"), ("eventType=nope", "eventType")] {
        let reply = app
            .get(&format!("/v1/webhook-subscriptions/deliveries?{query}"))
            .await;
        assert_eq!(reply.status, 400, "{query}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["param"], param);
    }
    let missing = app
        .post(
            "/v1/webhook-subscriptions/deliveries/whd_nope/retry",
            &json!({}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "DELIVERY_NOT_FOUND")
    );

    // Another org sees none of it.
    let store = firehook::store::Store::open(&crate::helpers::test_settings(&app.database_url))
        .await
        .unwrap();
    let (_, other) = firehook::auth::create_org(&store, "other", None, 0)
        .await
        .unwrap();
    let as_other = |method: reqwest::Method, path: String| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(&other.secret)
            .json(&json!({"enabled": false}))
    };
    for (method, path) in [
        (reqwest::Method::GET, path.clone()),
        (reqwest::Method::PATCH, path.clone()),
        (reqwest::Method::DELETE, path.clone()),
        (reqwest::Method::POST, format!("{path}/rotate-secret")),
    ] {
        let reply = Reply::from(as_other(method.clone(), path.clone()).send().await.unwrap()).await;
        assert_eq!(reply.status, 404, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.error_code(), "SUBSCRIPTION_NOT_FOUND");
    }
    let deleted = Reply::from(
        app.client
            .delete(app.url(&path))
            .bearer_auth(crate::helpers::API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(app.get(&path).await.status, 404);
}

/// `firehook prune` with `retention.deliveries_days = 0` removes finished outbound
/// deliveries with their attempts and events; the fires stay.
async fn retention_prunes_finished_outbound_deliveries(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), outbound_settings).await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, secret) = subscribe(&app, &receiver.url("/hook"), json!(["trigger.fired"])).await;
    receiver.set_secrets(&[&secret]).await;
    for i in 0..3 {
        fire(&app, &trigger, &format!("p{i}@prune.test")).await;
    }
    // The attempt is recorded once the receiver has answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries(&app, "status=succeeded").await.len() < 3 {
        assert!(Instant::now() < deadline, "the 3 events were not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let printed = prune_everything(&app.database_url);
    assert!(
        printed.contains("3 outbound deliveries and 3 outbound events"),
        "{printed}"
    );
    assert!(deliveries(&app, "").await.is_empty());
    assert_eq!(app.fires_of(&trigger).await.len(), 3, "fires stay");
}

/// Retention never takes a delivery that is still retrying, nor the event it will send:
/// with `retention.deliveries_days = 0`, the finished deliveries go and the retrying ones
/// stay, with their events.
async fn retention_keeps_deliveries_still_retrying(backend: Backend) {
    let app = spawn_app_with(backend, firehook::clock::Clock::system(), |s| {
        outbound_settings(s);
        s.outbound.retry_schedule = vec![600.0];
    })
    .await;
    let receiver = Receiver::start();
    let trigger = published_trigger(&app).await;
    let (_, up) = subscribe(&app, &receiver.url("/up"), json!(["trigger.fired"])).await;
    let (down, down_secret) = subscribe(
        &app,
        &receiver.url("/down?status=500"),
        json!(["trigger.fired"]),
    )
    .await;
    receiver.set_secrets(&[&up, &down_secret]).await;
    for i in 0..2 {
        fire(&app, &trigger, &format!("r{i}@retrying.test")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = deliveries(&app, "").await;
        let succeeded = all.iter().filter(|d| d["status"] == "succeeded").count();
        let tried = all
            .iter()
            .filter(|d| d["status"] == "pending" && d["attemptCount"] == 1)
            .count();
        if (succeeded, tried) == (2, 2) {
            break;
        }
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let printed = prune_everything(&app.database_url);
    assert!(
        printed.contains("2 outbound deliveries and 0 outbound events"),
        "{printed}"
    );
    let kept = deliveries(&app, "").await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    for delivery in &kept {
        assert_eq!(delivery["subscriptionId"], down.as_str());
        assert_eq!(delivery["status"], "pending");
        assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    }
}

crate::each_backend!(
    retention_prunes_finished_outbound_deliveries,
    retention_keeps_deliveries_still_retrying,
    each_fire_is_one_event_delivered_after_retries,
    gone_disables_the_subscription_and_a_retry_sends_again,
    an_endpoint_gets_at_most_its_share_of_concurrent_requests,
    a_backlogged_endpoint_does_not_hold_up_another,
    a_private_address_is_refused_at_send_time,
    subscriptions_get_the_event_types_they_ask_for,
    a_rotated_secret_and_the_old_one_both_verify,
    bad_subscriptions_are_refused,
);
