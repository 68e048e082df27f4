//! The real `firehook` binary as separate processes: two gateways on one database, and a
//! gateway killed with SIGKILL in the middle of a stream of fires.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Backend, Gateway, Reply, API_KEY};

pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<&Value>,
) -> Reply {
    let mut req = client.request(method, url).bearer_auth(API_KEY);
    if let Some(body) = body {
        req = req.json(body);
    }
    Reply::from(req.send().await.expect("request")).await
}

/// A trigger with one published automation; answers the trigger id.
pub async fn published_trigger(client: &reqwest::Client, base: &str) -> String {
    let schema = json!({"title": "t", "payloadSchema": {"fields": [{"key": "email", "type": "string", "required": true}]}});
    let trigger = call(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/automations/triggers"),
        Some(&schema),
    )
    .await;
    let trigger = trigger.body["triggerEventId"].as_str().unwrap().to_owned();
    let automation = json!({"name": "a", "triggerEventId": trigger, "nodes": [{"id": "t", "type": "trigger"}], "connections": []});
    let created = call(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/automations"),
        Some(&automation),
    )
    .await;
    let id = created.body["automationId"].as_str().unwrap();
    let published = call(
        client,
        reqwest::Method::PATCH,
        format!("{base}/v1/automations/{id}"),
        Some(&json!({"published": true})),
    )
    .await;
    assert_eq!(published.status, 200);
    trigger
}

async fn list_all(client: &reqwest::Client, base: &str, path: &str) -> Vec<Value> {
    crate::helpers::list_all(client, base, API_KEY, path).await
}

async fn two_gateways_on_one_database_fire_once_per_key(backend: Backend) {
    let database = backend.fresh_database().await;
    let a = Gateway::start(&database.url);
    let b = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let trigger = published_trigger(&client, &a.base).await;
    let body = json!({"payload": {"email": "both@b.co"}});
    let replies = futures::future::join_all((0..50).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let req = client
            .post(format!("{base}/v1/automations/triggers/{trigger}/fire"))
            .bearer_auth(API_KEY)
            .header("idempotency-key", "shared-key")
            .json(&body);
        async move { Reply::from(req.send().await.expect("request")).await }
    }))
    .await;
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
        statuses
            .iter()
            .filter(|s| **s == "idempotent_replay")
            .count(),
        49,
        "{statuses:?}"
    );
    let runs = list_all(&client, &b.base, "/v1/automations/runs").await;
    assert_eq!(runs.len(), 1);
}

/// Fires answered 2xx before a SIGKILL are all there after a restart, and no fire is half
/// written: every run has its trigger instance and contact, every instance its runs.
async fn a_killed_gateway_loses_no_answered_fire_and_leaves_no_partial_rows(backend: Backend) {
    let database = backend.fresh_database().await;
    let mut gateway = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let trigger = published_trigger(&client, &gateway.base).await;

    let url = format!("{}/v1/automations/triggers/{trigger}/fire", gateway.base);
    // Each acknowledged fire's run id comes through this channel as soon as it is answered.
    let (acks, mut acknowledged_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let senders: Vec<_> = (0..8)
        .map(|worker| {
            let (client, url, acks) = (client.clone(), url.clone(), acks.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({"payload": {"email": format!("u{worker}-{i}@kill.test")}});
                    let req = client
                        .post(&url)
                        .bearer_auth(API_KEY)
                        .header("idempotency-key", format!("{worker}-{i}"));
                    match req.json(&body).send().await {
                        Ok(res) if res.status().is_success() => {
                            let reply: Value = res.json().await.unwrap_or(Value::Null);
                            if let Some(run) = reply["details"]["automationRunIds"][0].as_str() {
                                let _ = acks.send(run.to_owned());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return, // the gateway is gone
                    }
                }
            })
        })
        .collect();
    drop(acks);
    // Kill once the load is demonstrably running: 20 fires answered (bounded wait).
    let mut acknowledged = HashSet::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while acknowledged.len() < 20 {
            let run = acknowledged_rx.recv().await.expect("senders run");
            acknowledged.insert(run);
        }
    })
    .await
    .expect("20 fires answered within 60 s");
    gateway.stop();
    for sender in senders {
        sender.await.unwrap();
    }
    while let Some(run) = acknowledged_rx.recv().await {
        acknowledged.insert(run);
    }

    let gateway = Gateway::start(&database.url);
    let runs = list_all(&client, &gateway.base, "/v1/automations/runs").await;
    let instances = list_all(&client, &gateway.base, "/v1/trigger-instances").await;
    let run_ids: HashSet<&str> = runs
        .iter()
        .map(|r| r["automationRunId"].as_str().unwrap())
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|r| !run_ids.contains(r.as_str()))
        .collect();
    assert!(missing.is_empty(), "answered 2xx but lost: {missing:?}");

    let by_instance: HashMap<&str, &Value> = instances
        .iter()
        .map(|i| (i["triggerInstanceId"].as_str().unwrap(), i))
        .collect();
    for run in &runs {
        let instance = by_instance
            .get(run["triggerInstanceId"].as_str().unwrap())
            .expect("run without its fire");
        assert!(instance["automationRunIds"]
            .as_array()
            .unwrap()
            .contains(&run["automationRunId"]));
        let email = run["contactEmail"].as_str().unwrap();
        let contact = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/contacts?email={email}", gateway.base),
            None,
        )
        .await;
        assert_eq!(contact.status, 200, "run without its contact: {email}");
    }
    for instance in &instances {
        for run in instance["automationRunIds"].as_array().unwrap() {
            assert!(
                run_ids.contains(run.as_str().unwrap()),
                "fire without its run"
            );
        }
    }
}

/// One signed delivery posted 40 times at once to two gateways on one database starts one
/// fire; every other answer is `duplicate`. (Shopify signs without a timestamp, so the
/// gateways' real clocks accept the fixture.)
async fn two_gateways_dedupe_one_receive_url(backend: Backend) {
    let database = backend.fresh_database().await;
    let a = Gateway::start(&database.url);
    let b = Gateway::start(&database.url);
    let client = reqwest::Client::new();
    let path = format!(
        "{}/fixtures/shopify/orders.paid.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let connection = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/integrations/connections", a.base),
        Some(&json!({"provider": "shopify", "secrets": [fixture["secret"]]})),
    )
    .await;
    assert_eq!(connection.status, 201, "{:?}", connection.body);
    let id = connection.body["connectionId"].as_str().unwrap();
    let trigger = format!("shopify:{id}:orders.paid");
    let automation = json!({"name": "a", "triggerEventId": trigger, "nodes": [{"id": "t", "type": "trigger"}], "connections": []});
    let created = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/automations", a.base),
        Some(&automation),
    )
    .await;
    let automation_id = created.body["automationId"].as_str().unwrap();
    let published = call(
        &client,
        reqwest::Method::PATCH,
        format!("{}/v1/automations/{automation_id}", a.base),
        Some(&json!({"published": true})),
    )
    .await;
    assert_eq!(published.status, 200);

    let body = fixture["body"].as_str().unwrap().to_owned();
    let replies = futures::future::join_all((0..40).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let mut req = client
            .post(format!("{base}/api/integrations/shopify/webhook/{id}"))
            .body(body.clone());
        for (name, value) in fixture["headers"].as_object().unwrap() {
            req = req.header(name, value.as_str().unwrap());
        }
        async move { Reply::from(req.send().await.expect("request")).await }
    }))
    .await;
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
    let runs = list_all(
        &client,
        &b.base,
        &format!("/v1/automations/runs?triggerEventId={trigger}"),
    )
    .await;
    assert_eq!(runs.len(), 1);
}

crate::each_backend!(
    two_gateways_on_one_database_fire_once_per_key,
    two_gateways_dedupe_one_receive_url,
    a_killed_gateway_loses_no_answered_fire_and_leaves_no_partial_rows,
);
