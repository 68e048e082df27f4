//! Starting a firehook per test (fresh database, port 0) and talking to it over HTTP.

use std::sync::Once;

use firehook::clock::Clock;
use firehook::config::{SecretString, Settings};
use firehook::startup::Application;
use serde_json::{json, Value};

pub const API_KEY: &str = "fh_test_bootstrap_key_0123456789abcdef";

/// Where a test's database lives.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The server URL (without database); each test creates its own database there.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `FIREHOOK_TEST_POSTGRES_URL` is set (as .ci/run does).
    pub fn postgres() -> Option<Backend> {
        match std::env::var("FIREHOOK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("FIREHOOK_TEST_POSTGRES_URL is not set: skipping the PostgreSQL variant");
                None
            }
        }
    }

    /// A fresh, empty database URL. SQLite files live in `dir`.
    pub async fn fresh_database(&self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join("firehook.db").display()),
            Backend::Postgres(server) => {
                use sqlx::Connection;
                let name = format!(
                    "firehook_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let mut conn = sqlx::PgConnection::connect(server)
                    .await
                    .expect("PostgreSQL reachable");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
                format!("{base}/{name}")
            }
        }
    }
}

/// Runs each listed test once on SQLite and once on PostgreSQL (when configured).
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
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$name(backend).await
                    }
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
    pub client: reqwest::Client,
    pub clock: Clock,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 2;
    settings.database.url = SecretString::from(database_url);
    settings.database.max_connections = 5;
    settings.bootstrap.api_key = SecretString::from(API_KEY);
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
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = backend.fresh_database(dir.path()).await;
    let mut settings = test_settings(&database_url);
    adjust(&mut settings);
    let app = Application::build(settings, clock.clone())
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: reqwest::Client::new(),
        clock,
        database_url,
        _dir: dir,
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

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(
            self.client
                .get(self.url(path))
                .bearer_auth(API_KEY)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        Reply::from(
            self.client
                .post(self.url(path))
                .bearer_auth(API_KEY)
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        Reply::from(
            self.client
                .patch(self.url(path))
                .bearer_auth(API_KEY)
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
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
        let reply = self
            .post(
                "/v1/automations/triggers",
                &json!({"title": "Signed up", "payloadSchema": {"fields": [
                    {"key": "email", "type": "string", "required": true},
                    {"key": "firstName", "type": "string", "required": false},
                    {"key": "plan", "type": "string", "required": false, "fallbackValue": "free"}
                ]}}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["triggerEventId"].as_str().unwrap().to_owned()
    }

    /// Creates an automation bound to `trigger`, published or not; answers its id.
    pub async fn create_automation(&self, trigger: &str, published: bool) -> String {
        let reply = self
            .post(
                "/v1/automations",
                &json!({"name": "Welcome", "triggerEventId": trigger,
                        "nodes": [{"id": "t", "type": "trigger"}, {"id": "e", "type": "sendEmail"}],
                        "connections": [{"from": "t", "to": "e"}]}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        let id = reply.body["automationId"].as_str().unwrap().to_owned();
        if published {
            let reply = self
                .patch(
                    &format!("/v1/automations/{id}"),
                    &json!({"published": true}),
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }
        id
    }

    /// Fires `trigger` with `body`, and an Idempotency-Key header if given.
    pub async fn fire(&self, trigger: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/automations/triggers/{trigger}/fire")))
            .bearer_auth(API_KEY)
            .json(body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        Reply::from(req.send().await.expect("request")).await
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
}
