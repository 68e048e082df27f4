//! The inbound delivery log: rejections with their reasons, replay, org scoping, filters,
//! retention, and `firehook send-test`. Deliveries are the signed fixtures (made by the
//! providers' SDKs, see fixtures/README.md), sent with the server's clock pinned to them.

use std::time::{Duration, Instant};

use firehook::clock::Clock;
use serde_json::{json, Value};

use crate::helpers::{
    firehook_command, prune_everything, spawn_app_with, Backend, Reply, TestApp, API_KEY,
};

/// A signed fixture from `fixtures/<provider>/<event>.json`.
struct Fixture(Value);

impl Fixture {
    fn load(provider: &str, event: &str) -> Fixture {
        let path = format!(
            "{}/fixtures/{provider}/{event}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Fixture(serde_json::from_str(&text).unwrap())
    }
    fn provider(&self) -> &str {
        self.0["provider"].as_str().unwrap()
    }
    fn event(&self) -> &str {
        self.0["event"].as_str().unwrap()
    }
    fn secret(&self) -> &str {
        self.0["secret"].as_str().unwrap()
    }
    fn body(&self) -> String {
        self.0["body"].as_str().unwrap().to_owned()
    }
    fn at_ms(&self) -> i64 {
        self.0["timestamp"].as_i64().unwrap() * 1000
    }
}

/// A connection for `fixture`'s provider, with an automation on its event's trigger.
async fn connect(app: &TestApp, fixture: &Fixture, publish: bool) -> (String, String, String) {
    let reply = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": fixture.provider(), "secrets": [fixture.secret()]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let id = reply.body["connectionId"].as_str().unwrap().to_owned();
    let trigger = format!("{}:{id}:{}", fixture.provider(), fixture.event());
    let automation = app.create_automation(&trigger, publish).await;
    (id, trigger, automation)
}

/// Posts `body` with the fixture's headers (minus `drop`), the clock at `at_ms`.
async fn send(
    app: &TestApp,
    fixture: &Fixture,
    connection: &str,
    body: String,
    drop: Option<&str>,
    at_ms: i64,
) -> Reply {
    app.clock.set_ms(at_ms);
    let url = app.url(&format!(
        "/api/integrations/{}/webhook/{connection}",
        fixture.provider()
    ));
    let mut req = app.client.post(url).body(body);
    for (name, value) in fixture.0["headers"].as_object().unwrap() {
        if drop.is_none_or(|d| !d.eq_ignore_ascii_case(name)) {
            req = req.header(name.as_str(), value.as_str().unwrap());
        }
    }
    Reply::from(req.send().await.unwrap()).await
}

async fn deliver(app: &TestApp, fixture: &Fixture, connection: &str) -> Reply {
    send(
        app,
        fixture,
        connection,
        fixture.body(),
        None,
        fixture.at_ms(),
    )
    .await
}

/// Lists deliveries with `query` until `count` are listed (rejected ones are written in
/// the background), failing after a bounded wait.
async fn listed(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app
            .get(&format!("/v1/integrations/deliveries?limit=100&{query}"))
            .await;
        assert_eq!(reply.status, 200, "{query}: {:?}", reply.body);
        let data = reply.body["data"].as_array().unwrap().clone();
        if data.len() >= count || Instant::now() > deadline {
            assert_eq!(data.len(), count, "{query}: {data:?}");
            return data;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pinned() -> Clock {
    Clock::pinned(0)
}

async fn rejections_are_logged_with_reason_and_redacted_headers(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |s| s.server.max_body_bytes = 1700).await;
    let clerk = Fixture::load("clerk", "user.created");
    let supabase = Fixture::load("supabase", "INSERT");
    let (clerk_id, _, _) = connect(&app, &clerk, true).await;
    let (supabase_id, supabase_trigger, _) = connect(&app, &supabase, true).await;

    let mut tampered = clerk.body();
    tampered.insert(1, ' ');
    let at = clerk.at_ms();
    let bad_signature = send(&app, &clerk, &clerk_id, tampered, None, at).await;
    assert_eq!(bad_signature.status, 401);
    let stale = send(&app, &clerk, &clerk_id, clerk.body(), None, at + 400_000).await;
    assert_eq!(stale.status, 401);
    let token_at = supabase.at_ms();
    let bad_json = send(&app, &supabase, &supabase_id, "{no".into(), None, token_at).await;
    assert_eq!(bad_json.status, 400);
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2048));
    let too_large = send(&app, &supabase, &supabase_id, big, None, token_at).await;
    assert_eq!(too_large.status, 413);
    let path = format!("/v1/integrations/connections/{clerk_id}");
    assert_eq!(
        app.patch(&path, &json!({"enabled": false})).await.status,
        200
    );
    let disabled = send(&app, &clerk, &clerk_id, clerk.body(), None, at + 500_000).await;
    assert_eq!(disabled.status, 404);
    // An unknown connection belongs to no org: not logged.
    assert_eq!(deliver(&app, &clerk, "con_unknown").await.status, 404);

    let rejected = listed(&app, "status=rejected", 5).await;
    let mut seen: Vec<(String, i64)> = rejected
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap().to_owned(),
                d["httpStatus"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("body_too_large".to_owned(), 413),
            ("connection_disabled".to_owned(), 404),
            ("invalid_json".to_owned(), 400),
            ("invalid_signature".to_owned(), 401),
            ("timestamp_out_of_tolerance".to_owned(), 401),
        ]
    );
    for d in &rejected {
        let id = d["deliveryId"].as_str().unwrap();
        assert!(id.starts_with("dlv_"), "{d}");
        let detail = app.get(&format!("/v1/integrations/deliveries/{id}")).await;
        assert_eq!(detail.status, 200, "{:?}", detail.body);
        assert!(
            detail.body.get("body").is_none(),
            "no body kept: {:?}",
            detail.body
        );
        let headers = &detail.body["headers"];
        let secret_header = if d["provider"] == "clerk" {
            "svix-signature"
        } else {
            "authorization"
        };
        assert_eq!(headers[secret_header], "[redacted]", "{headers}");
        let text = detail.body.to_string();
        assert!(!text.contains(supabase.secret()), "{text}");
        assert!(!text.contains("RyIGhX2o37LAtkcGM0OGgo0zXG"), "{text}");
    }
    assert!(app.runs_of(&supabase_trigger).await.is_empty());

    let connection = app.get(&path).await;
    let health = &connection.body["health"];
    assert_eq!(health["last24h"]["rejected"], 3, "{health}");
    assert_eq!(
        health["lastRejectReason"], "connection_disabled",
        "{health}"
    );
    assert!(health["lastRejectedAt"].is_string(), "{health}");
    assert!(health["lastTriggeredAt"].is_null(), "{health}");
}

async fn replay_fires_after_publishing_and_then_is_a_duplicate(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let (connection, trigger, automation) = connect(&app, &fixture, false).await;
    let first = deliver(&app, &fixture, &connection).await;
    assert_eq!(first.body["status"], "no_published_automation");
    let original = first.body["deliveryId"].as_str().unwrap().to_owned();

    let detail = app
        .get(&format!("/v1/integrations/deliveries/{original}"))
        .await;
    assert_eq!(detail.body["status"], "no_published_automation");
    assert_eq!(detail.body["body"], fixture.body().as_str());
    assert_eq!(detail.body["bodyBytes"], fixture.body().len());
    assert_eq!(
        detail.body["headers"]["svix-id"],
        "msg_2pBq4A7sKd9LmNcVx2Rt5YwQeHj"
    );
    assert_eq!(detail.body["headers"]["svix-signature"], "[redacted]");

    let published = app
        .patch(
            &format!("/v1/automations/{automation}"),
            &json!({"published": true}),
        )
        .await;
    assert_eq!(published.status, 200);
    // Long after the signature's timestamp: a replay does not verify it again.
    app.clock.set_ms(fixture.at_ms() + 3_600_000);
    let replay = format!("/v1/integrations/deliveries/{original}/replay");
    let replayed = app.post(&replay, &json!({})).await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.body);
    assert_eq!(replayed.body["status"], "triggered", "{:?}", replayed.body);
    assert_eq!(app.runs_of(&trigger).await.len(), 1);
    let replay_id = replayed.body["deliveryId"].as_str().unwrap();
    assert_ne!(replay_id, original);
    let logged = app
        .get(&format!("/v1/integrations/deliveries/{replay_id}"))
        .await;
    assert_eq!(logged.body["replayOf"], original.as_str());
    assert_eq!(logged.body["status"], "triggered");

    let again = app.post(&replay, &json!({})).await;
    assert_eq!(again.body["status"], "duplicate", "{:?}", again.body);
    let provider_retry = deliver(&app, &fixture, &connection).await;
    assert_eq!(provider_retry.body["status"], "duplicate");
    assert_eq!(app.runs_of(&trigger).await.len(), 1);

    let forced = app.post(&replay, &json!({"force": true})).await;
    assert_eq!(forced.body["status"], "triggered", "{:?}", forced.body);
    assert_eq!(app.runs_of(&trigger).await.len(), 2);

    let mut tampered = fixture.body();
    tampered.insert(1, ' ');
    let at = fixture.at_ms();
    send(&app, &fixture, &connection, tampered, None, at).await;
    let rejected = listed(&app, "status=rejected", 1).await;
    let rejected_id = rejected[0]["deliveryId"].as_str().unwrap();
    let refused = app
        .post(
            &format!("/v1/integrations/deliveries/{rejected_id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (409, "DELIVERY_NOT_REPLAYABLE")
    );

    let listed_all = listed(&app, &format!("connectionId={connection}"), 6).await;
    let statuses: Vec<&str> = listed_all
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "rejected",
            "triggered",
            "duplicate",
            "duplicate",
            "triggered",
            "no_published_automation"
        ],
        "newest first"
    );
    let health = &app
        .get(&format!("/v1/integrations/connections/{connection}"))
        .await
        .body["health"];
    assert_eq!(health["last24h"]["triggered"], 2, "{health}");
    assert_eq!(health["last24h"]["duplicate"], 2, "{health}");
    assert!(health["lastTriggeredAt"].is_string(), "{health}");
}

async fn another_orgs_deliveries_are_not_found(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |_| {}).await;
    let fixture = Fixture::load("stripe", "customer.created");
    let (connection, _, _) = connect(&app, &fixture, true).await;
    let delivered = deliver(&app, &fixture, &connection).await;
    let id = delivered.body["deliveryId"].as_str().unwrap().to_owned();
    let store = firehook::store::Store::open(&crate::helpers::test_settings(&app.database_url))
        .await
        .unwrap();
    let (_, other) = firehook::auth::create_org(&store, "other", None, 0)
        .await
        .unwrap();
    let get = app
        .client
        .get(app.url(&format!("/v1/integrations/deliveries/{id}")))
        .bearer_auth(&other.secret);
    let get = Reply::from(get.send().await.unwrap()).await;
    assert_eq!((get.status, get.error_code()), (404, "NO_SUCH_DELIVERY"));
    let replay = app
        .client
        .post(app.url(&format!("/v1/integrations/deliveries/{id}/replay")))
        .bearer_auth(&other.secret)
        .json(&json!({"force": true}));
    let replay = Reply::from(replay.send().await.unwrap()).await;
    assert_eq!(replay.status, 404);
    let list = app
        .client
        .get(app.url("/v1/integrations/deliveries"))
        .bearer_auth(&other.secret);
    let list = Reply::from(list.send().await.unwrap()).await;
    assert_eq!(list.body["data"], json!([]));
}

async fn filters_and_pages_over_250_deliveries(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |_| {}).await;
    // A token provider: bodies can vary without a new signature.
    let fixture = Fixture::load("supabase", "INSERT");
    let (connection, _, _) = connect(&app, &fixture, true).await;
    let start = fixture.at_ms();
    for i in 0..240 {
        let body = fixture.body().replacen(
            "\"schema\":\"auth\"",
            &format!("\"schema\":\"auth\",\"n\":{i}"),
            1,
        );
        let reply = send(&app, &fixture, &connection, body, None, start + i * 1000).await;
        assert_eq!(reply.body["status"], "triggered", "{:?}", reply.body);
    }
    for i in 240..250 {
        let reply = send(
            &app,
            &fixture,
            &connection,
            fixture.body(),
            None,
            start + i * 1000,
        )
        .await;
        let expected = if i == 240 { "triggered" } else { "duplicate" };
        assert_eq!(reply.body["status"], expected, "{:?}", reply.body);
    }
    // Duplicates are logged in the background: wait until all nine are.
    assert_eq!(listed(&app, "status=duplicate", 9).await.len(), 9);

    let mut ids = vec![];
    let mut cursor: Option<String> = None;
    for page in 0..4 {
        let query = match &cursor {
            Some(c) => format!("/v1/integrations/deliveries?limit=100&cursor={c}"),
            None => "/v1/integrations/deliveries?limit=100".to_owned(),
        };
        let reply = app.get(&query).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        ids.extend(
            reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["deliveryId"].as_str().unwrap().to_owned()),
        );
        cursor = reply.body["pagination"]["cursor"]
            .as_str()
            .map(str::to_owned);
        if cursor.is_none() {
            assert_eq!(page, 2, "three pages of 100, 100 and 50");
            break;
        }
    }
    assert_eq!(ids.len(), 250);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, no repeats");

    let at = |ms: i64| firehook::clock::rfc3339(ms).replace('+', "%2B");
    let since = at(start + 200_000);
    let until = at(start + 209_000);
    listed(&app, &format!("since={since}&until={until}"), 10).await;
    listed(
        &app,
        &format!(
            "event=auth.user.created&connectionId={connection}&provider=supabase&since={since}"
        ),
        50,
    )
    .await;
    listed(&app, "provider=stripe", 0).await;
    listed(&app, "connectionId=con_other", 0).await;
    for bad in [
        "status=exploded",
        "limit=0",
        "limit=101",
        "since=yesterday",
        "provider=myspace",
    ] {
        let reply = app.get(&format!("/v1/integrations/deliveries?{bad}")).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "INVALID_REQUEST"),
            "{bad}"
        );
    }
}

async fn retention_prunes_the_log_but_keeps_fires_and_contacts(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |_| {}).await;
    let fixture = Fixture::load("clerk", "user.created");
    let (connection, trigger, _) = connect(&app, &fixture, true).await;
    let fired = deliver(&app, &fixture, &connection).await;
    assert_eq!(fired.body["status"], "triggered");
    let id = fired.body["deliveryId"].as_str().unwrap().to_owned();
    send(
        &app,
        &fixture,
        &connection,
        "{}".into(),
        None,
        fixture.at_ms(),
    )
    .await;
    listed(&app, "", 2).await;

    let printed = prune_everything(&app.database_url);
    assert!(printed.contains("pruned 2 deliveries"), "{printed}");

    listed(&app, "", 0).await;
    let gone = app.get(&format!("/v1/integrations/deliveries/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(app.runs_of(&trigger).await.len(), 1, "runs stay");
    assert_eq!(app.fires_of(&trigger).await.len(), 1, "fires stay");
    let contact = app.get("/v1/contacts?email=jane.doe@example.com").await;
    assert_eq!(contact.status, 200, "contacts stay");
}

async fn hostile_filters_and_ids_answer_400_or_404(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |_| {}).await;
    let long = "e".repeat(5000);
    for query in [
        "connectionId=con_%00".to_owned(),
        "event=user.%00created".to_owned(),
        format!("event={long}"),
        format!("connectionId={long}"),
        "cursor=ZGx2XwBh".to_owned(),
        "since=2026-01-01T00:00:00Z%00".to_owned(),
    ] {
        let reply = app
            .get(&format!("/v1/integrations/deliveries?{query}"))
            .await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "INVALID_REQUEST"),
            "{query}: {:?}",
            reply.body
        );
    }
    for id in ["dlv_%00", "dlv_01JD0000000000000000000000", &long, "%00"] {
        let reply = app.get(&format!("/v1/integrations/deliveries/{id}")).await;
        assert_eq!(reply.status, 404, "{id}: {:?}", reply.body);
        let reply = app
            .post(
                &format!("/v1/integrations/deliveries/{id}/replay"),
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 404, "{id}: {:?}", reply.body);
    }
    let reply = Reply::from(
        app.client
            .post(app.url("/v1/integrations/deliveries/dlv_x/replay"))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body("{\"force\": \"yes\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((reply.status, reply.error_code()), (400, "INVALID_REQUEST"));
}

/// `firehook send-test` for every provider, against a running gateway on the real clock:
/// each sample verifies and fires.
async fn send_test_fires_for_every_provider(backend: Backend) {
    let app = spawn_app_with(backend, Clock::system(), |_| {}).await;
    let cases = [
        ("clerk", "user.created"),
        ("stripe", "customer.created"),
        ("shopify", "orders.paid"),
        ("stytch", "direct.user.create"),
        ("supabase", "INSERT"),
        ("workos", "user.created"),
        ("revenuecat", "INITIAL_PURCHASE"),
        ("brevo", "delivered"),
        ("brimble", "subscription.created"),
        ("generic", "delivered"),
        ("standard", "user.created"),
    ];
    let covered: Vec<&str> = cases.iter().map(|(provider, _)| *provider).collect();
    let registry: Vec<&str> = adapters::Provider::all().map(|p| p.slug()).collect();
    assert_eq!(
        covered, registry,
        "one case per provider, in registry order"
    );
    for (provider, file) in cases {
        let fixture = Fixture::load(provider, file);
        let mut options = fixture.0.get("options").cloned().unwrap_or(json!({}));
        // Providers without a fixed event list are told which events to expect.
        if matches!(provider, "generic" | "standard") {
            options["events"] = json!([fixture.event()]);
        }
        let reply = app
            .post(
                "/v1/integrations/connections",
                &json!({"provider": provider, "secrets": [fixture.secret()], "options": options}),
            )
            .await;
        assert_eq!(reply.status, 201, "{provider}: {:?}", reply.body);
        let connection = reply.body["connectionId"].as_str().unwrap().to_owned();
        let trigger = format!("{provider}:{connection}:{}", fixture.event());
        app.create_automation(&trigger, true).await;

        let output = firehook_command(&app.database_url)
            .args(["send-test", provider, "--connection", &connection])
            .args([
                "--event",
                fixture.event(),
                "--email",
                "Sam.Test@Example.com",
            ])
            .args(["--url", &app.base])
            .output()
            .expect("firehook send-test runs");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{provider}: {printed} {output:?}");
        assert!(
            printed.contains("status triggered"),
            "{provider}: {printed}"
        );
        let delivery = printed
            .lines()
            .find_map(|l| l.strip_prefix("delivery "))
            .expect("the delivery id is printed");
        let logged = app
            .get(&format!("/v1/integrations/deliveries/{delivery}"))
            .await;
        assert_eq!(
            logged.body["status"], "triggered",
            "{provider}: {:?}",
            logged.body
        );
        assert_eq!(app.runs_of(&trigger).await.len(), 1, "{provider}");
    }
    let contact = app.get("/v1/contacts?email=sam.test@example.com").await;
    assert_eq!(contact.status, 200, "{:?}", contact.body);
}

/// A disabled connection is refused with a message that says so.
async fn send_test_refuses_a_disabled_connection(backend: Backend) {
    let app = spawn_app_with(backend, Clock::system(), |_| {}).await;
    let fixture = Fixture::load("stripe", "customer.created");
    let (connection, _, _) = connect(&app, &fixture, true).await;
    let path = format!("/v1/integrations/connections/{connection}");
    app.patch(&path, &json!({"enabled": false})).await;
    let output = firehook_command(&app.database_url)
        .args([
            "send-test",
            "stripe",
            "--connection",
            &connection,
            "--url",
            &app.base,
        ])
        .output()
        .expect("firehook send-test runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("is disabled"), "{said}");
}

/// `delivery_log.enabled = false`: deliveries fire and deduplicate as before, and nothing
/// of them (accepted, duplicate or rejected) is kept.
async fn with_the_log_off_deliveries_fire_and_nothing_is_logged(backend: Backend) {
    let app = spawn_app_with(backend, pinned(), |s| s.delivery_log.enabled = false).await;
    let fixture = Fixture::load("clerk", "user.created");
    let (connection, trigger, _) = connect(&app, &fixture, true).await;
    let first = deliver(&app, &fixture, &connection).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["status"], "triggered", "{:?}", first.body);
    let again = deliver(&app, &fixture, &connection).await;
    assert_eq!(again.body["status"], "duplicate", "{:?}", again.body);
    let mut tampered = fixture.body();
    tampered.insert(1, ' ');
    let at = fixture.at_ms();
    let refused = send(&app, &fixture, &connection, tampered, None, at).await;
    assert_eq!(refused.status, 401);
    assert_eq!(app.runs_of(&trigger).await.len(), 1);

    // Rejected and duplicate deliveries would be written in the background, at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    listed(&app, "", 0).await;
    let id = first.body["deliveryId"].as_str().unwrap();
    let detail = app.get(&format!("/v1/integrations/deliveries/{id}")).await;
    assert_eq!(detail.status, 404, "{:?}", detail.body);
}

crate::each_backend!(
    rejections_are_logged_with_reason_and_redacted_headers,
    replay_fires_after_publishing_and_then_is_a_duplicate,
    another_orgs_deliveries_are_not_found,
    filters_and_pages_over_250_deliveries,
    retention_prunes_the_log_but_keeps_fires_and_contacts,
    hostile_filters_and_ids_answer_400_or_404,
    send_test_fires_for_every_provider,
    send_test_refuses_a_disabled_connection,
    with_the_log_off_deliveries_fire_and_nothing_is_logged,
);
