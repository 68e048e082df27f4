//! `GET /v1/events/stream`: fires arrive in order, only on their org's stream, and a
//! dropped stream resumed with `Last-Event-ID` misses none.

use std::time::Duration;

use serde_json::{json, Value};

use crate::each_backend;
use crate::helpers::{spawn_app, Backend, TestApp, API_KEY};

/// How long a test waits for an event before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// One SSE event as received.
#[derive(Debug)]
struct Received {
    id: u64,
    kind: String,
    data: Value,
}

/// An open event stream, parsed frame by frame.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, key: &str, query: &str, last_event_id: Option<u64>) -> Stream {
        // A client of its own: the suite's client may time requests out.
        let mut req = reqwest::Client::new()
            .get(app.url(&format!("/v1/events/stream{query}")))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.expect("stream request");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        // Headers arrive once the handler subscribed: events fired from now on are ours.
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or None when none arrives within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&frame) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) => panic!("the stream ended"),
                Ok(Err(e)) => panic!("reading the stream: {e}"),
                Err(_) => return None,
            }
        }
    }

    async fn next(&mut self) -> Received {
        self.next_within(DEADLINE)
            .await
            .expect("an event within the deadline")
    }
}

/// An SSE frame with `id:`, `event:` and `data:` lines; None for comments and `retry:`.
fn parse(frame: &str) -> Option<Received> {
    let (mut id, mut kind, mut data) = (None, None, None);
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).expect("JSON data"));
        }
    }
    Some(Received {
        id: id?,
        kind: kind?,
        data: data?,
    })
}

/// Fires `trigger` `n` times; answers the trigger instance ids in firing order.
async fn fire_n(app: &TestApp, trigger: &str, n: usize) -> Vec<String> {
    let mut instances = Vec::new();
    for i in 0..n {
        let body = json!({"payload": {"email": format!("user{i}@example.com")}});
        let reply = app.fire(trigger, &body, None).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        instances.push(
            reply.body["details"]["triggerInstanceId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    instances
}

async fn twenty_fires_arrive_in_order_on_their_orgs_stream_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    let other_key = app.create_other_org().await;
    let mut ours = Stream::open(&app, API_KEY, "?types=fire", None).await;
    let mut theirs = Stream::open(&app, &other_key, "", None).await;

    let fired = fire_n(&app, &trigger, 20).await;
    let mut last_id = 0;
    for instance in &fired {
        let event = ours.next().await;
        assert_eq!(event.kind, "fire");
        assert_eq!(
            event.data["triggerInstanceId"],
            json!(instance),
            "{event:?}"
        );
        assert_eq!(event.data["triggerEventId"], json!(trigger));
        assert_eq!(event.data["outcome"], "triggered");
        assert_eq!(event.data["source"], "api");
        assert_eq!(event.data["automationRunIds"].as_array().unwrap().len(), 1);
        assert!(event.id > last_id, "ids increase");
        last_id = event.id;
    }

    // The other org's stream has seen none of them; its own fire shows it was listening.
    let their_trigger = app.create_trigger_as(&other_key).await;
    let reply = app
        .fire_as(
            &other_key,
            &their_trigger,
            &json!({"payload": {"email": "x@example.com"}}),
            None,
        )
        .await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let first = theirs.next().await;
    assert_eq!(
        first.data["triggerEventId"],
        json!(their_trigger),
        "{first:?}"
    );
    assert_eq!(first.data["outcome"], "no_published_automation");
}

async fn a_resumed_stream_misses_no_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;

    let mut stream = Stream::open(&app, API_KEY, "?types=fire", None).await;
    let first = fire_n(&app, &trigger, 5).await;
    let mut last_seen = 0;
    for instance in &first[..3] {
        let event = stream.next().await;
        assert_eq!(event.data["triggerInstanceId"], json!(instance));
        last_seen = event.id;
    }
    drop(stream);
    let second = fire_n(&app, &trigger, 5).await;

    let mut resumed = Stream::open(&app, API_KEY, "?types=fire", Some(last_seen)).await;
    for instance in first[3..].iter().chain(&second) {
        let event = resumed.next().await;
        assert_eq!(
            event.data["triggerInstanceId"],
            json!(instance),
            "{event:?}"
        );
    }
    // And then the live ones.
    let third = fire_n(&app, &trigger, 1).await;
    assert_eq!(
        resumed.next().await.data["triggerInstanceId"],
        json!(third[0])
    );
}

async fn receive_url_requests_are_streamed_as_deliveries(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post(
            "/v1/integrations/connections",
            &json!({"provider": "supabase"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let connection = created.body["connectionId"].as_str().unwrap().to_owned();
    let mut stream = Stream::open(&app, API_KEY, "?types=delivery", None).await;

    // A request with a wrong token is rejected, and streamed all the same.
    let url = format!("/api/integrations/supabase/webhook/{connection}");
    let res = app
        .client
        .post(app.url(&url))
        .bearer_auth("wrong-token")
        .json(&json!({"type": "INSERT", "table": "users", "record": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let event = stream.next().await;
    assert_eq!(event.kind, "delivery");
    assert_eq!(event.data["status"], "rejected");
    assert_eq!(event.data["httpStatus"], 401);
    assert_eq!(event.data["connectionId"], json!(connection));
    assert!(event.data["deliveryId"]
        .as_str()
        .unwrap()
        .starts_with("dlv_"));
    let shown = event.data.to_string();
    assert!(
        !shown.contains("wrong-token"),
        "no credentials in events: {shown}"
    );
}

async fn unknown_types_and_bad_resume_ids_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/v1/events/stream?types=fire,nope").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["error"]["param"], "types");
    let res = app
        .client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(API_KEY)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let reply = app.get_public("/v1/events/stream").await;
    assert_eq!(reply.status, 401);
}

each_backend!(
    twenty_fires_arrive_in_order_on_their_orgs_stream_only,
    a_resumed_stream_misses_no_event,
    receive_url_requests_are_streamed_as_deliveries,
    unknown_types_and_bad_resume_ids_are_refused,
);
