//! The real `firehook` binary as separate processes: two gateways on one database, and a
//! gateway killed with SIGKILL in the middle of a stream of fires.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, API_KEY};

pub struct Gateway {
    child: Child,
    pub base: String,
}

impl Gateway {
    pub async fn start(database_url: &str) -> Gateway {
        Gateway::start_with(database_url, &[]).await
    }

    /// A gateway with extra command-line arguments (e.g. `--config FILE`).
    pub async fn start_with(database_url: &str, args: &[&str]) -> Gateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_firehook"))
            .args(args)
            .arg("serve")
            .env("FIREHOOK__DATABASE__URL", database_url)
            .env("FIREHOOK__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("FIREHOOK__SERVER__WORKERS", "2")
            .env("FIREHOOK__BOOTSTRAP__API_KEY", API_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("firehook starts");
        let gateway = Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/readyz", gateway.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("firehook did not become ready on {}", gateway.base);
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Every row of a list endpoint, following the cursor.
async fn list_all(client: &reqwest::Client, base: &str, path: &str) -> Vec<Value> {
    let mut rows = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}{path}?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = call(client, reqwest::Method::GET, url, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        rows.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return rows,
        }
    }
}

async fn two_gateways_on_one_database_fire_once_per_key(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = backend.fresh_database(dir.path()).await;
    let a = Gateway::start(&database_url).await;
    let b = Gateway::start(&database_url).await;
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
    let dir = tempfile::tempdir().unwrap();
    let database_url = backend.fresh_database(dir.path()).await;
    let mut gateway = Gateway::start(&database_url).await;
    let client = reqwest::Client::new();
    let trigger = published_trigger(&client, &gateway.base).await;

    let url = format!("{}/v1/automations/triggers/{trigger}/fire", gateway.base);
    let senders: Vec<_> = (0..8)
        .map(|worker| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut acknowledged = vec![];
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
                                acknowledged.push(run.to_owned());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return acknowledged, // the gateway is gone
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.kill();
    let mut acknowledged = HashSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "the load ran before the kill ({} fires)",
        acknowledged.len()
    );

    let gateway = Gateway::start(&database_url).await;
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

crate::each_backend!(
    two_gateways_on_one_database_fire_once_per_key,
    a_killed_gateway_loses_no_answered_fire_and_leaves_no_partial_rows,
);
