//! A fire whose COMMIT goes unanswered (the connection to PostgreSQL drops mid-commit):
//! the gateway cannot know whether it was stored, so it answers 503 rather than a 2xx or a
//! 500, and a retry (the same Idempotency-Key, or a provider's retry of the same event) is
//! answered from whichever it was: fired once if the commit was lost, replayed (or a
//! duplicate) if it took. Never two sets of runs, never none. The delivery log says what
//! the provider was answered.
//!
//! A TCP proxy between the gateway and the server cuts the connection of the first fire
//! transaction that commits after it is armed, either before the COMMIT reaches the server
//! or after the server has committed but before its answer reaches the gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use firehook::clock::Clock;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{spawn_app, spawn_app_on, Backend, Reply, TestApp};
use crate::long_ids::{clerk_connection, clerk_user, deliver_clerk};

/// Where the proxy cuts the armed commit.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The COMMIT never reaches the server, which rolls the transaction back.
    BeforeCommit,
    /// The server commits; its answer never reaches the gateway.
    AfterCommit,
}

/// A proxy to PostgreSQL that cuts one fire transaction's commit when asked.
struct CommitCutter {
    addr: SocketAddr,
    armed: Arc<Mutex<Option<Cut>>>,
}

impl CommitCutter {
    async fn start(upstream: SocketAddr) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cutter = CommitCutter {
            addr: listener.local_addr().unwrap(),
            armed: Arc::default(),
        };
        let armed = cutter.armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.unwrap();
                tokio::spawn(relay(client, server, armed.clone()));
            }
        });
        cutter
    }

    /// Sends `request` with the next fire transaction's commit cut as `cut`; checks that
    /// it was cut and that the request was answered 503.
    async fn cutting(&self, cut: Cut, request: impl Future<Output = Reply>) -> Reply {
        *self.armed.lock().unwrap() = Some(cut);
        let reply = request.await;
        assert!(
            self.armed.lock().unwrap().is_none(),
            "{cut:?}: the fire's commit was not cut"
        );
        assert_eq!(reply.status, 503, "{cut:?}: {:?}", reply.body);
        reply
    }

    /// `database_url` with the proxy in place of the server, in plain text so the proxy
    /// can read the statements.
    fn url_for(&self, database_url: &str) -> String {
        let (scheme_and_user, rest) = database_url.split_once('@').unwrap();
        let (_, database) = rest.split_once('/').unwrap();
        format!("{scheme_and_user}@{}/{database}?sslmode=disable", self.addr)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The names (with their closing NUL) of the statements in `chunk`'s Parse messages whose
/// text contains `sql`.
fn statement_names(chunk: &[u8], sql: &[u8]) -> Vec<Vec<u8>> {
    let prefix = b"sqlx_s_";
    (0..chunk.len())
        .filter(|&i| chunk[i..].starts_with(prefix))
        .filter_map(|i| {
            let end = i + chunk[i..].iter().position(|&b| b == 0)?;
            let text = chunk[end + 1..].split(|&b| b == 0).next()?;
            contains(text, sql).then(|| chunk[i..=end].to_vec())
        })
        .collect()
}

/// Relays one connection. A transaction is a fire's once it runs the key claim: sqlx sends
/// a statement's text once per connection (a Parse message naming it), then only its name,
/// so the relay remembers the names of the claim statements it has seen. PostgreSQL's
/// protocol sends each statement as one message, and sqlx writes a message in one piece,
/// so a message is never split across two reads here.
async fn relay(mut client: TcpStream, mut server: TcpStream, armed: Arc<Mutex<Option<Cut>>>) {
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut claims: Vec<Vec<u8>> = vec![];
    let mut in_fire = false;
    let mut swallowing = false;
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &from_client[..n];
                claims.extend(statement_names(chunk, b"INSERT INTO fire_keys"));
                in_fire |= claims.iter().any(|name| contains(chunk, name));
                if in_fire && contains(chunk, b"ROLLBACK") {
                    in_fire = false;
                }
                if in_fire && contains(chunk, b"COMMIT") {
                    in_fire = false;
                    match armed.lock().unwrap().take() {
                        // Dropping both ends: the server sees its client go mid-transaction.
                        Some(Cut::BeforeCommit) => return,
                        Some(Cut::AfterCommit) => swallowing = true,
                        None => {}
                    }
                }
                if server.write_all(chunk).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut from_server) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &from_server[..n];
                if swallowing {
                    // CommandComplete of the COMMIT: the transaction is stored.
                    if contains(chunk, b"COMMIT\0") {
                        return;
                    }
                    continue;
                }
                if client.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A gateway on a fresh database, and another on the same database whose connections
/// pass through a [`CommitCutter`].
async fn gateway_behind_cutter() -> (TestApp, TestApp, CommitCutter) {
    let Backend::Postgres(server) = Backend::postgres() else {
        unreachable!()
    };
    let direct = spawn_app(Backend::Postgres(server.clone())).await;
    let upstream = server
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .parse()
        .expect("the PostgreSQL test server is given as host:port");
    let cutter = CommitCutter::start(upstream).await;
    let behind = spawn_app_on(
        &cutter.url_for(&direct.database_url),
        Clock::system(),
        |_| {},
    )
    .await;
    (direct, behind, cutter)
}

/// A trigger with one published automation.
async fn published_trigger(app: &TestApp) -> String {
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    trigger
}

async fn a_fire_whose_commit_is_lost_fires_once_on_retry() {
    let (direct, behind, cutter) = gateway_behind_cutter().await;
    let trigger = published_trigger(&behind).await;
    let body = json!({"payload": {"email": "lost@b.co"}});

    let cut = cutter
        .cutting(
            Cut::BeforeCommit,
            behind.fire(&trigger, &body, Some("key-lost")),
        )
        .await;
    assert_eq!(cut.body["code"], "SERVICE_UNAVAILABLE", "{:?}", cut.body);
    assert!(cut.headers.contains_key("retry-after"));
    assert!(direct.runs_of(&trigger).await.is_empty());
    assert!(direct.contact("lost@b.co").await.is_none());

    let retry = behind.fire(&trigger, &body, Some("key-lost")).await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body["status"], "triggered", "{:?}", retry.body);
    let runs = direct.runs_of(&trigger).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        retry.body["details"]["automationRunIds"],
        json!([runs[0]["automationRunId"]])
    );
}

async fn a_fire_whose_commit_answer_is_lost_is_replayed_on_retry() {
    let (direct, behind, cutter) = gateway_behind_cutter().await;
    let trigger = published_trigger(&behind).await;
    let body = json!({"payload": {"email": "unanswered@b.co"}});

    let cut = cutter
        .cutting(
            Cut::AfterCommit,
            behind.fire(&trigger, &body, Some("key-unanswered")),
        )
        .await;
    assert_eq!(cut.body["code"], "SERVICE_UNAVAILABLE", "{:?}", cut.body);
    // Stored all the same.
    let runs = direct.runs_of(&trigger).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(direct.contact("unanswered@b.co").await.is_some());

    for app in [&behind, &direct] {
        let retry = app.fire(&trigger, &body, Some("key-unanswered")).await;
        assert_eq!(retry.status, 200, "{:?}", retry.body);
        assert_eq!(
            retry.body["status"], "idempotent_replay",
            "{:?}",
            retry.body
        );
        assert_eq!(
            retry.body["details"]["automationRunIds"],
            json!([runs[0]["automationRunId"]])
        );
    }
    assert_eq!(direct.runs_of(&trigger).await.len(), 1);
}

/// A provider retries a delivery it got a 503 for, with the same event id and signature:
/// the retry fires if the first commit was lost, and is a duplicate if it took.
async fn a_providers_retry_after_a_cut_commit_fires_once() {
    let (direct, behind, cutter) = gateway_behind_cutter().await;
    let connection = clerk_connection(&behind).await;
    let trigger = format!("clerk:{connection}:user.created");
    for (n, (cut, retried)) in [
        (Cut::BeforeCommit, "triggered"),
        (Cut::AfterCommit, "duplicate"),
    ]
    .into_iter()
    .enumerate()
    {
        let svix_id = format!("msg_cut_{n}");
        let body = clerk_user(&format!("user_cut_{n}"), &format!("cut{n}@b.co"));
        cutter
            .cutting(cut, deliver_clerk(&behind, &connection, &svix_id, &body))
            .await;
        let retry = deliver_clerk(&behind, &connection, &svix_id, &body).await;
        assert_eq!(
            (retry.status, &retry.body["status"]),
            (200, &json!(retried)),
            "{cut:?}: {:?}",
            retry.body
        );
        assert_eq!(direct.runs_of(&trigger).await.len(), n + 1, "{cut:?}");
    }
    // The log, oldest first: the delivery whose commit was lost left no row; the one whose
    // commit took says what the provider was answered (corrected in the background).
    let expected = json!([
        ["triggered", 200, null],
        ["triggered", 503, "commit_unconfirmed"],
        ["duplicate", 200, null],
    ]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let path = format!("/v1/integrations/deliveries?connectionId={connection}");
        let logged: Vec<Value> = direct
            .list_all(&path)
            .await
            .iter()
            .rev()
            .map(|d| json!([d["status"], d["httpStatus"], d["reason"]]))
            .collect();
        if json!(logged) == expected || tokio::time::Instant::now() > deadline {
            assert_eq!(json!(logged), expected);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fire_whose_commit_is_lost_fires_once_on_retry() {
        super::a_fire_whose_commit_is_lost_fires_once_on_retry().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fire_whose_commit_answer_is_lost_is_replayed_on_retry() {
        super::a_fire_whose_commit_answer_is_lost_is_replayed_on_retry().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_providers_retry_after_a_cut_commit_fires_once() {
        super::a_providers_retry_after_a_cut_commit_fires_once().await
    }
}
