//! Outbound delivery across real `firehook` processes: a gateway killed with SIGKILL right
//! after its fires were answered, and two gateways on one PostgreSQL sharing the work.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::Gateway;
use crate::helpers::{Backend, API_KEY};
use crate::outbound::{accepted, Receiver};
use crate::processes::{call, published_trigger};

/// Short retries and private URLs; `timeout_s` also sets how soon a dead process's
/// leases end (2 x timeout + 1 s).
fn config_file(dir: &std::path::Path, timeout_s: u32) -> PathBuf {
    let path = dir.join("outbound.toml");
    let config = format!(
        "[outbound]\nallow_private_urls = true\nretry_schedule = [0.2, 0.5, 1]\n\
         timeout_s = {timeout_s}\n"
    );
    std::fs::write(&path, config).unwrap();
    path
}

async fn subscribe(receiver: &Receiver, base: &str, path: &str) {
    let client = reqwest::Client::new();
    let reply = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/webhook-subscriptions"),
        Some(&json!({"url": receiver.url(path), "events": ["trigger.fired"]})),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    receiver
        .set_secrets(&[reply.body["secret"].as_str().unwrap()])
        .await;
}

/// Fires `count` events over 8 concurrent senders, round robin over `bases`; answers the
/// trigger instance of each fire answered 2xx.
async fn fire_many(bases: &[&str], trigger: &str, count: usize) -> HashSet<String> {
    let client = reqwest::Client::new();
    let fires = (0..count).map(|i| {
        let url = format!(
            "{}/v1/automations/triggers/{trigger}/fire",
            bases[i % bases.len()]
        );
        let req = client
            .post(url)
            .bearer_auth(API_KEY)
            .json(&json!({"payload": {"email": format!("u{i}@outbound.test")}}));
        async move {
            let res = req.send().await.expect("fire");
            assert!(res.status().is_success(), "{}", res.status());
            let body: Value = res.json().await.unwrap();
            body["details"]["triggerInstanceId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    futures::stream::iter(fires)
        .buffer_unordered(8)
        .collect::<HashSet<_>>()
        .await
}

/// The trigger instances the receiver accepted, each with the webhook-ids it came under.
fn delivered(log: &[Value]) -> HashMap<String, HashSet<String>> {
    let mut by_instance: HashMap<String, HashSet<String>> = HashMap::new();
    for m in accepted(log, "/hook") {
        by_instance
            .entry(m["data"]["triggerInstanceId"].as_str().unwrap().to_owned())
            .or_default()
            .insert(m["webhookId"].as_str().unwrap().to_owned());
    }
    by_instance
}

/// Every fire answered 2xx before a SIGKILL is delivered after the restart, as one event.
async fn a_killed_gateway_delivers_every_answered_fire_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = backend.fresh_database().await;
    let database_url = database.url.clone();
    let config = config_file(dir.path(), 2);
    let args = ["--config", config.to_str().unwrap()];
    let receiver = Receiver::start();
    let mut gateway = Gateway::start_with_args(&database_url, &args);
    let trigger = published_trigger(&reqwest::Client::new(), &gateway.base).await;
    subscribe(&receiver, &gateway.base, "/hook").await;

    let answered = fire_many(&[&gateway.base], &trigger, 200).await;
    assert_eq!(answered.len(), 200);
    gateway.stop();

    let _restarted = Gateway::start_with_args(&database_url, &args);
    let log = receiver
        .wait_for(Duration::from_secs(90), |log| {
            let delivered = delivered(log);
            answered.iter().all(|i| delivered.contains_key(i))
        })
        .await;
    let delivered = delivered(&log);
    assert_eq!(delivered.len(), 200, "no event but the answered fires'");
    for (instance, ids) in &delivered {
        assert_eq!(
            ids.len(),
            1,
            "{instance} arrived as several events: {ids:?}"
        );
    }
}

/// Two gateways on one PostgreSQL dispatch together: every event arrives, and no message
/// is ever in flight twice at once (the receiver holds each request for 20 ms).
async fn two_gateways_share_the_dispatch_and_never_send_one_attempt_twice() {
    let backend = Backend::postgres();
    let dir = tempfile::tempdir().unwrap();
    let database = backend.fresh_database().await;
    let database_url = database.url.clone();
    // A long timeout: a send slowed by a busy machine must not be retried, which would
    // blur "sent once".
    let config = config_file(dir.path(), 30);
    let args = ["--config", config.to_str().unwrap()];
    let receiver = Receiver::start();
    let a = Gateway::start_with_args(&database_url, &args);
    let b = Gateway::start_with_args(&database_url, &args);
    let trigger = published_trigger(&reqwest::Client::new(), &a.base).await;
    subscribe(&receiver, &a.base, "/hook?delay_ms=20").await;

    let answered = fire_many(&[&a.base, &b.base], &trigger, 500).await;
    let log = receiver
        .wait_for(Duration::from_secs(120), |log| {
            accepted(log, "/hook").count() >= answered.len()
        })
        .await;
    let (_, max_concurrent) = receiver.log().await;
    assert_eq!(max_concurrent, 1, "a message was in flight twice at once");
    let delivered = delivered(&log);
    assert_eq!(
        delivered.keys().collect::<HashSet<_>>(),
        answered.iter().collect()
    );
    assert_eq!(log.len(), 500, "each message was sent once");
}

crate::each_backend!(a_killed_gateway_delivers_every_answered_fire_after_restart);

/// Several dispatching processes share one database only on PostgreSQL.
mod shared_dispatch {
    mod postgres {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_gateways_share_the_dispatch_and_never_send_one_attempt_twice() {
            super::super::two_gateways_share_the_dispatch_and_never_send_one_attempt_twice().await
        }
    }
}
