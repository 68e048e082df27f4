//! Starting a firehook per test (fresh database, port 0) and talking to it over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, Once};
use std::time::Duration;

use firehook::clock::Clock;
use firehook::config::{SecretString, Settings};
use firehook::startup::Application;
use serde_json::{json, Value};

pub const API_KEY: &str = "fh_test_bootstrap_key_0123456789abcdef";

/// The encryption key of PostgreSQL test databases (SQLite ones use a key file beside the
/// database, as by default).
pub const POSTGRES_ENCRYPTION_KEY: &str = "dGVzdCBrZXkgdGVzdCBrZXkgdGVzdCBrZXkgdGVzdCE=";

/// The PostgreSQL server the suite uses when `FIREHOOK_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where a test's database lives.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The server URL (without database); each test creates its own database there.
    Postgres(String),
}

impl Backend {
    /// `FIREHOOK_TEST_POSTGRES_URL`, or the local server. A PostgreSQL test never passes
    /// without a server: when none is reachable it fails (`scripts/test` checks first and
    /// leaves the `postgres::` tests out, counting them as not run).
    pub fn postgres() -> Backend {
        match std::env::var("FIREHOOK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Backend::Postgres(url),
            _ => Backend::Postgres(DEFAULT_POSTGRES_URL.to_owned()),
        }
    }

    /// A fresh, empty database, removed again when the returned guard drops.
    pub async fn fresh_database(&self) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match self {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.path().join("firehook.db").display()),
                postgres: None,
                _dir: dir,
            },
            Backend::Postgres(server) => {
                use sqlx::Connection;
                let name = format!(
                    "firehook_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let mut conn = sqlx::PgConnection::connect(server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is not reachable at {} ({e}): start it, set \
                             FIREHOOK_TEST_POSTGRES_URL, or run scripts/test, which reports \
                             the postgres:: tests as not run",
                            without_credentials(server)
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let _ = conn.close().await;
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    postgres: Some((server.clone(), name)),
                    _dir: dir,
                }
            }
        }
    }
}

/// `postgres://user:password@host/db` without `user:password@`, for messages.
fn without_credentials(url: &str) -> &str {
    url.rsplit_once('@').map(|(_, rest)| rest).unwrap_or(url)
}

/// A test's own database: an SQLite file in a temporary directory, or a PostgreSQL
/// database that is dropped (connections and all) when the guard drops, on success and on
/// failure alike.
pub struct TestDatabase {
    pub url: String,
    /// The server URL and the database's name.
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    /// Drops the PostgreSQL database now, under whatever still uses it.
    pub fn drop_now(&self) {
        if let Some((server, name)) = &self.postgres {
            drop_postgres_database(server, name);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.drop_now();
    }
}

/// `DROP DATABASE ... WITH (FORCE)` from a thread with its own runtime, so that it works
/// from `Drop`, inside or outside a test's runtime, and while unwinding.
fn drop_postgres_database(server: &str, name: &str) {
    let (server, owned_name) = (server.to_owned(), name.to_owned());
    let dropped = std::thread::spawn(move || {
        let name = owned_name;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        })
    })
    .join();
    match dropped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("could not drop test database {name}: {e}"),
        Err(_) => eprintln!("could not drop test database {name}: the dropping thread panicked"),
    }
}

/// Runs each listed test once on SQLite (`sqlite::name`) and once on PostgreSQL
/// (`postgres::name`).
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::postgres()).await
                }
            )*
        }
    };
}

static TRACING: Once = Once::new();

/// Logs stay quiet unless TEST_LOG is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            firehook::telemetry::init(firehook::config::LogFormat::Pretty);
        }
    });
}

pub struct TestApp {
    pub base: String,
    /// The `/metrics` listener's base URL, when `metrics.bind` gave it one.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub database_url: String,
    /// The database this app created (None for a second app on another app's database).
    pub database: Option<TestDatabase>,
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 2;
    settings.database.url = SecretString::from(database_url);
    settings.database.max_connections = 5;
    settings.bootstrap.api_key = SecretString::from(API_KEY);
    if database_url.starts_with("postgres") {
        settings.security.encryption_key = SecretString::from(POSTGRES_ENCRYPTION_KEY);
    }
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Clock::system(), |_| {}).await
}

/// Starts an app with a pinned clock and adjusted settings.
pub async fn spawn_app_with(
    backend: Backend,
    clock: Clock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let database = backend.fresh_database().await;
    let mut app = spawn_app_on(&database.url, clock, adjust).await;
    app.database = Some(database);
    app
}

/// Starts another app (its own caches, as a second process would have) on an existing
/// database.
pub async fn spawn_app_on(
    database_url: &str,
    clock: Clock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    init_tracing();
    let mut settings = test_settings(database_url);
    adjust(&mut settings);
    let app = Application::build(settings, clock.clone())
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        metrics_base,
        client: reqwest::Client::new(),
        clock,
        database_url: database_url.to_owned(),
        database: None,
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub async fn from(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            body,
            headers,
        }
    }

    /// `error.code` of an error envelope.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with `key` as the bearer API key, and a JSON body if given.
    pub async fn send_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(body);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send_as(API_KEY, reqwest::Method::GET, path, None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_as(API_KEY, reqwest::Method::POST, path, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send_as(API_KEY, reqwest::Method::PATCH, path, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send_as(API_KEY, reqwest::Method::DELETE, path, None)
            .await
    }

    /// A request without an API key (health, readiness, receive URLs).
    pub async fn get_public(&self, path: &str) -> Reply {
        Reply::from(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Creates a second org directly in the database; answers its API key.
    pub async fn create_other_org(&self) -> String {
        let store = firehook::store::Store::open(&test_settings(&self.database_url))
            .await
            .expect("store");
        let (_, key) = firehook::auth::create_org(&store, "other", None, self.clock.now_ms())
            .await
            .expect("org created");
        store.close().await;
        key.secret
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> Reply {
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json");
        Reply::from(req.body(body).send().await.expect("request")).await
    }

    /// Creates an API trigger with `email` and an optional `plan`; answers its id.
    pub async fn create_trigger(&self) -> String {
        self.create_trigger_as(API_KEY).await
    }

    /// [`TestApp::create_trigger`] in the org of `key`.
    pub async fn create_trigger_as(&self, key: &str) -> String {
        let reply = self
            .send_as(
                key,
                reqwest::Method::POST,
                "/v1/automations/triggers",
                Some(&json!({"title": "Signed up", "payloadSchema": {"fields": [
                    {"key": "email", "type": "string", "required": true},
                    {"key": "firstName", "type": "string", "required": false},
                    {"key": "plan", "type": "string", "required": false, "fallbackValue": "free"}
                ]}})),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["triggerEventId"].as_str().unwrap().to_owned()
    }

    /// Creates an automation bound to `trigger`, published or not; answers its id.
    pub async fn create_automation(&self, trigger: &str, published: bool) -> String {
        self.create_automation_as(API_KEY, trigger, published).await
    }

    /// [`TestApp::create_automation`] in the org of `key`.
    pub async fn create_automation_as(&self, key: &str, trigger: &str, published: bool) -> String {
        let reply = self
            .send_as(
                key,
                reqwest::Method::POST,
                "/v1/automations",
                Some(&json!({"name": "Welcome", "triggerEventId": trigger,
                        "nodes": [{"id": "t", "type": "trigger"}, {"id": "e", "type": "sendEmail"}],
                        "connections": [{"from": "t", "to": "e"}]})),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        let id = reply.body["automationId"].as_str().unwrap().to_owned();
        if published {
            let reply = self
                .send_as(
                    key,
                    reqwest::Method::PATCH,
                    &format!("/v1/automations/{id}"),
                    Some(&json!({"published": true})),
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }
        id
    }

    /// Fires `trigger` with `body`, and an Idempotency-Key header if given.
    pub async fn fire(&self, trigger: &str, body: &Value, key: Option<&str>) -> Reply {
        self.fire_as(API_KEY, trigger, body, key).await
    }

    /// [`TestApp::fire`] with the API key `api_key`.
    pub async fn fire_as(
        &self,
        api_key: &str,
        trigger: &str,
        body: &Value,
        key: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/automations/triggers/{trigger}/fire")))
            .bearer_auth(api_key)
            .json(body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    /// The contact with `email`, or None when the API answers 404.
    pub async fn contact(&self, email: &str) -> Option<Value> {
        let reply = self.get(&format!("/v1/contacts?email={email}")).await;
        match reply.status {
            200 => Some(reply.body),
            404 => {
                assert_eq!(reply.error_code(), "CONTACT_NOT_FOUND", "{:?}", reply.body);
                None
            }
            other => panic!("GET contact {email}: {other} {:?}", reply.body),
        }
    }

    /// Every row of a list endpoint (`path` may carry filters), following the cursor for
    /// at most 50 pages.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        list_all(&self.client, &self.base, API_KEY, path).await
    }

    /// Creates a connection; answers the 201 body.
    pub async fn create_connection(&self, body: &Value) -> Value {
        let reply = self.post("/v1/integrations/connections", body).await;
        assert_eq!(reply.status, 201, "{body}: {:?}", reply.body);
        reply.body
    }

    /// Every run of a trigger.
    pub async fn runs_of(&self, trigger: &str) -> Vec<Value> {
        let reply = self
            .get(&format!(
                "/v1/automations/runs?triggerEventId={trigger}&limit=100"
            ))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["data"].as_array().unwrap().clone()
    }

    /// The fires (trigger instances) of a trigger, newest first.
    pub async fn fires_of(&self, trigger: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/v1/trigger-instances?triggerEventId={trigger}"))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["data"].as_array().unwrap().clone()
    }
}

/// Every row of a list endpoint on `base` (`path` may carry filters), following the cursor
/// for at most 50 pages of 100.
pub async fn list_all(client: &reqwest::Client, base: &str, key: &str, path: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut rows = vec![];
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut url = format!("{base}{path}{separator}limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = Reply::from(
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(page.status, 200, "{path}: {:?}", page.body);
        rows.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return rows,
        }
    }
    panic!("{path}: the cursor did not end within 50 pages");
}

/// The `firehook` binary with a clean environment: no inherited `FIREHOOK__*` settings,
/// quiet logs, and `database_url` as its database.
pub fn firehook_command(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firehook"));
    for (name, _) in std::env::vars() {
        if name.starts_with("FIREHOOK__") {
            cmd.env_remove(name);
        }
    }
    cmd.env("FIREHOOK__DATABASE__URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if database_url.starts_with("postgres") {
        cmd.env(
            "FIREHOOK__SECURITY__ENCRYPTION_KEY",
            POSTGRES_ENCRYPTION_KEY,
        );
    }
    cmd
}

/// Runs `firehook prune` with `retention.deliveries_days = 0`, so everything the pass may
/// remove goes; answers what it printed.
pub fn prune_everything(database_url: &str) -> String {
    let output = firehook_command(database_url)
        .arg("prune")
        .env("FIREHOOK__RETENTION__DELIVERIES_DAYS", "0")
        .output()
        .expect("firehook prune runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a `firehook` subcommand to completion; answers (success, stdout, stderr).
pub fn run_cli(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = firehook_command(database_url)
        .args(args)
        .output()
        .expect("firehook runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `firehook serve` child process. It binds port 0 and the test reads the address it
/// got from its `listening on ADDR` line.
pub struct Gateway {
    child: Child,
    pub base: String,
    stderr: Arc<(Mutex<String>, Condvar)>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// A gateway whose bootstrap key (used on an empty database) is [`API_KEY`].
    pub fn start(database_url: &str) -> Gateway {
        Gateway::start_with(database_url, Some(API_KEY))
    }

    /// `bootstrap_key: None` leaves the key to the server (it prints a random one).
    pub fn start_with(database_url: &str, bootstrap_key: Option<&str>) -> Gateway {
        Gateway::launch(database_url, bootstrap_key, &[])
    }

    /// A gateway with extra command-line arguments (e.g. `--config FILE`).
    pub fn start_with_args(database_url: &str, args: &[&str]) -> Gateway {
        Gateway::launch(database_url, Some(API_KEY), args)
    }

    fn launch(database_url: &str, bootstrap_key: Option<&str>, args: &[&str]) -> Gateway {
        let mut cmd = firehook_command(database_url);
        cmd.args(args)
            .arg("serve")
            .env("FIREHOOK__SERVER__BIND", "127.0.0.1:0")
            .env("FIREHOOK__SERVER__WORKERS", "2")
            .env("FIREHOOK__DATABASE__MAX_CONNECTIONS", "5")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = bootstrap_key {
            cmd.env("FIREHOOK__BOOTSTRAP__API_KEY", key);
        }
        let mut child = cmd.spawn().expect("firehook starts");

        let stderr = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.0.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                sink.1.notify_all();
            }
        });
        let (address_tx, address_rx) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Reads to the end so the child never blocks on a full pipe.
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = address_tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut gateway = Gateway {
            child,
            base: String::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => gateway.base = format!("http://{addr}"),
            Err(e) => {
                panic!(
                    "firehook did not report its address ({e}); stderr:\n{}",
                    gateway.finish()
                );
            }
        }
        gateway
    }

    /// Waits (at most 30 s) until stderr contains `needle`; answers stderr so far.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let (text, changed) = &*self.stderr;
        let (text, _) = changed
            .wait_timeout_while(text.lock().unwrap(), Duration::from_secs(30), |t| {
                !t.contains(needle)
            })
            .unwrap();
        assert!(text.contains(needle), "{needle:?} not on stderr:\n{text}");
        text.clone()
    }

    /// Stops the process and answers everything it wrote on stderr.
    pub fn finish(&mut self) -> String {
        self.stop();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr.0.lock().unwrap().clone()
    }

    /// SIGKILL, then reap.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
