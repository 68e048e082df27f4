//! Rate limits: per API key (the fire route has its own allowance), per client address
//! for lookups of unknown keys, and per connection for failed verifications.

use firehook::clock::Clock;
use serde_json::json;

use crate::helpers::{spawn_app_with, Backend, Reply, TestApp, API_KEY};
use crate::long_ids::{clerk_connection, clerk_user, deliver_clerk};

fn header(reply: &Reply, name: &str) -> Option<u64> {
    reply.headers.get(name)?.to_str().ok()?.parse().ok()
}

async fn tiny_limits(backend: Backend, api: u32, lookups: u32) -> TestApp {
    spawn_app_with(backend, Clock::system(), |s| {
        s.rate_limit.per_key_per_minute = api;
        s.rate_limit.fire_per_key_per_minute = 2;
        s.rate_limit.key_lookups_per_address_per_minute = lookups;
        s.rate_limit.failed_verifications_per_connection_per_minute = 2;
    })
    .await
}

async fn api_keys_are_limited_with_headers_and_retry_after(backend: Backend) {
    let app = tiny_limits(backend, 3, 100).await;
    for remaining in [2, 1, 0] {
        let reply = app.get("/v1/automations/triggers").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(header(&reply, "x-ratelimit-limit"), Some(3));
        assert_eq!(header(&reply, "x-ratelimit-remaining"), Some(remaining));
        assert!(header(&reply, "x-ratelimit-reset").is_some_and(|s| s <= 60));
    }
    let refused = app.get("/v1/automations/triggers").await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, "RATE_LIMITED")
    );
    assert_eq!(refused.body["error"]["type"], "rate_limit");
    assert!(header(&refused, "retry-after").is_some_and(|s| (1..=60).contains(&s)));
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));

    // The fire route draws on its own allowance, and answers in the fire envelope.
    let body = json!({"payload": {"email": "r@b.co"}});
    for _ in 0..2 {
        let fired = app.fire("tri_none", &body, None).await;
        assert_eq!(fired.status, 404, "{:?}", fired.body);
        assert_eq!(header(&fired, "x-ratelimit-limit"), Some(2));
    }
    let fired = app.fire("tri_none", &body, None).await;
    assert_eq!(
        (fired.status, &fired.body["code"]),
        (429, &json!("RATE_LIMITED"))
    );
    assert!(header(&fired, "retry-after").is_some());
}

async fn unknown_keys_are_limited_per_address_before_the_database(backend: Backend) {
    let app = tiny_limits(backend, 100, 3).await;
    // A known key is served from the cache and never counts as a lookup.
    assert_eq!(app.get("/v1/automations").await.status, 200);
    for i in 0..2 {
        let bad = app
            .send_as(
                &format!("fh_bad_{i}"),
                reqwest::Method::GET,
                "/v1/automations",
                None,
            )
            .await;
        assert_eq!((bad.status, bad.error_code()), (401, "INVALID_API_KEY"));
    }
    let flooded = app
        .send_as("fh_bad_x", reqwest::Method::GET, "/v1/automations", None)
        .await;
    assert_eq!(
        (flooded.status, flooded.error_code()),
        (429, "RATE_LIMITED")
    );
    assert!(header(&flooded, "retry-after").is_some());
    let good = app
        .send_as(API_KEY, reqwest::Method::GET, "/v1/automations", None)
        .await;
    assert_eq!(good.status, 200);
}

async fn failed_verifications_are_limited_per_connection(backend: Backend) {
    let app = tiny_limits(backend, 100, 100).await;
    let connection = clerk_connection(&app).await;
    let body = clerk_user("user_limits", "limits@b.co");
    let forged = |n: u32| {
        app.client
            .post(app.url(&format!("/api/integrations/clerk/webhook/{connection}")))
            .header("svix-id", format!("msg_forged_{n}"))
            .header("svix-timestamp", (app.clock.now_ms() / 1000).to_string())
            .header(
                "svix-signature",
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
            .body(body.clone())
            .send()
    };
    for n in 0..2 {
        let reply = Reply::from(forged(n).await.unwrap()).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
    }
    let reply = Reply::from(forged(2).await.unwrap()).await;
    assert_eq!((reply.status, reply.error_code()), (429, "RATE_LIMITED"));
    assert!(header(&reply, "retry-after").is_some());
    // The provider's own, verified delivery still passes.
    let good = deliver_clerk(&app, &connection, "msg_good", &body).await;
    assert_eq!(
        (good.status, &good.body["status"]),
        (200, &json!("triggered"))
    );
}

crate::each_backend!(
    api_keys_are_limited_with_headers_and_retry_after,
    unknown_keys_are_limited_per_address_before_the_database,
    failed_verifications_are_limited_per_connection,
);
