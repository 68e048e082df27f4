//! Server timeouts: a body that trickles in is answered 408 and its connection closed.

use std::time::{Duration, Instant};

use firehook::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use serde_json::json;

use crate::helpers::{spawn_app_with, Backend, API_KEY};
use crate::long_ids::CLERK_SECRET;

async fn a_slow_body_is_answered_408_and_closed(backend: Backend) {
    let app = spawn_app_with(backend, Clock::system(), |s| {
        s.server.body_timeout_ms = 500;
    })
    .await;
    let addr = app.base.trim_start_matches("http://");
    let connection = app
        .create_connection(&json!({"provider": "clerk", "secrets": [CLERK_SECRET]}))
        .await;
    let receive = format!(
        "/api/integrations/clerk/webhook/{}",
        connection["connectionId"].as_str().unwrap()
    );
    for (path, auth) in [
        (receive.as_str(), String::new()),
        (
            "/v1/automations/triggers",
            format!("Authorization: Bearer {API_KEY}\r\n"),
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        // Reads to the end: the server must close the connection itself.
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes a slow connection")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"REQUEST_TIMEOUT\""), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

crate::each_backend!(a_slow_body_is_answered_408_and_closed);
