//! Signing secrets at rest: encrypted in the database (the SQLite file and a `pg_dump`
//! hold no secret in clear), sealed on upgrade, re-encrypted by `rotate-encryption-key`,
//! and a gateway without the right key refuses to start.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use firehook::clock::Clock;
use firehook::config::SecretString;
use serde_json::{json, Value};

use crate::helpers::{
    firehook_command, run_cli, spawn_app_on, spawn_app_with, Backend, Gateway, Reply, TestApp,
    POSTGRES_ENCRYPTION_KEY,
};
use crate::outbound::{accepted, outbound_settings, Receiver};

/// The SDK-signed Clerk fixture (fixtures/clerk/user.created.json).
fn clerk_fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/clerk/user.created.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Creates a Clerk connection with the fixture's secret; answers its id.
async fn connect(app: &TestApp, fixture: &Value) -> String {
    let body = app
        .create_connection(&json!({"provider": "clerk", "secrets": [fixture["secret"]]}))
        .await;
    body["connectionId"].as_str().unwrap().to_owned()
}

/// Delivers the fixture, signed by the provider's SDK, with the app's clock at its time.
async fn deliver(app: &TestApp, fixture: &Value, connection: &str) -> Reply {
    app.clock
        .set_ms(fixture["timestamp"].as_i64().unwrap() * 1000);
    let mut req = app
        .client
        .post(app.url(&format!("/api/integrations/clerk/webhook/{connection}")))
        .body(fixture["body"].as_str().unwrap().to_owned());
    for (name, value) in fixture["headers"].as_object().unwrap() {
        req = req.header(name, value.as_str().unwrap());
    }
    Reply::from(req.send().await.unwrap()).await
}

/// Subscribes `url` to fires; answers the subscription's secret.
async fn subscribe(app: &TestApp, url: &str) -> String {
    let reply = app
        .post(
            "/v1/webhook-subscriptions",
            &json!({"url": url, "events": ["trigger.fired"]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["secret"].as_str().unwrap().to_owned()
}

fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    database_url.strip_prefix("sqlite://").map(PathBuf::from)
}

/// Everything the database holds as an attacker with a copy would see it: the SQLite
/// file and its WAL, or a `pg_dump` of the PostgreSQL database.
fn stored_bytes(database_url: &str) -> Vec<u8> {
    match sqlite_path(database_url) {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            bytes
        }
        None => {
            let out = std::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(database_url)
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Runs one SQL statement on the test database, around the gateway.
async fn execute(database_url: &str, sql: &str) {
    use sqlx::Connection;
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

async fn stored_connection_secrets(database_url: &str) -> Vec<String> {
    use sqlx::Connection;
    let sql = "SELECT secret FROM connection_secrets";
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    }
}

/// Fires a published API trigger and waits until the receiver verified the message (the
/// fixture's own fire is sent with the fixture's old timestamp, which the receiver refuses).
async fn fire_and_verify(app: &TestApp, receiver: &Receiver) {
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    app.clock.set_ms(Clock::system().now_ms());
    let fired = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "sealed@b.co"}}),
            None,
        )
        .await;
    assert_eq!(fired.status, 200, "{:?}", fired.body);
    receiver
        .wait_for(Duration::from_secs(20), |log| {
            accepted(log, "/hook").any(|m| m["data"]["email"] == "sealed@b.co")
        })
        .await;
}

/// Neither secret is in the database in clear, and both still sign and verify.
async fn secrets_are_encrypted_at_rest_and_still_verify(backend: Backend) {
    let app = spawn_app_with(backend, Clock::pinned(0), outbound_settings).await;
    let receiver = Receiver::start();
    let fixture = clerk_fixture();
    let connection = connect(&app, &fixture).await;
    let subscription_secret = subscribe(&app, &receiver.url("/hook")).await;
    receiver.set_secrets(&[&subscription_secret]).await;

    let stored = stored_bytes(&app.database_url);
    assert!(contains(&stored, "enc:v1:"), "the dump holds the rows");
    for secret in [fixture["secret"].as_str().unwrap(), &subscription_secret] {
        let key = secret.strip_prefix("whsec_").unwrap();
        assert!(!contains(&stored, key), "a secret is stored in clear");
    }

    let reply = deliver(&app, &fixture, &connection).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    fire_and_verify(&app, &receiver).await;
}

/// A secret an earlier version stored in clear is encrypted at the next start.
async fn secrets_stored_in_clear_are_encrypted_at_start(backend: Backend) {
    let app = spawn_app_with(backend, Clock::pinned(0), |_| {}).await;
    let fixture = clerk_fixture();
    let connection = connect(&app, &fixture).await;
    let secret = fixture["secret"].as_str().unwrap();
    execute(
        &app.database_url,
        &format!("UPDATE connection_secrets SET secret = '{secret}'"),
    )
    .await;

    let restarted = spawn_app_on(&app.database_url, Clock::pinned(0), |_| {}).await;
    let stored = stored_connection_secrets(&app.database_url).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("enc:v1:"), "still in clear");
    let reply = deliver(&restarted, &fixture, &connection).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// A `serve` that must exit; answers its stderr.
fn refused_start(mut cmd: std::process::Command) -> String {
    let mut child = cmd
        .arg("serve")
        .env("FIREHOOK__SERVER__BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("firehook starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("firehook started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// After `rotate-encryption-key` a gateway on the new key verifies with the same secrets;
/// one on the old key refuses to start.
async fn secrets_survive_a_rotation_of_the_encryption_key(backend: Backend) {
    let database = backend.fresh_database().await;
    let receiver = Receiver::start();
    let fixture = clerk_fixture();
    // The secrets are written by a process that is stopped before the rotation, as the
    // command asks.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("firehook.toml");
    std::fs::write(&config, "[outbound]\nallow_private_urls = true\n").unwrap();
    let mut gateway =
        Gateway::start_with_args(&database.url, &["--config", config.to_str().unwrap()]);
    let app = TestApp {
        base: gateway.base.clone(),
        client: reqwest::Client::new(),
        clock: Clock::system(),
        database_url: database.url.clone(),
        database: None,
        metrics_base: None,
    };
    let connection = connect(&app, &fixture).await;
    let subscription_secret = subscribe(&app, &receiver.url("/hook")).await;
    receiver.set_secrets(&[&subscription_secret]).await;
    gateway.finish();
    let key_file = sqlite_path(&app.database_url).map(|db| {
        let mut name = db.into_os_string();
        name.push(".key");
        PathBuf::from(name)
    });
    let old_key = match &key_file {
        Some(path) => std::fs::read_to_string(path).unwrap().trim().to_owned(),
        None => POSTGRES_ENCRYPTION_KEY.to_owned(),
    };
    let new_key_file = dir.path().join("new.key");

    let (ok, out, err) = run_cli(
        &app.database_url,
        &[
            "rotate-encryption-key",
            "--new-key-file",
            new_key_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("re-encrypted 2 secrets"), "{out}");
    let new_key = std::fs::read_to_string(&new_key_file).unwrap();
    let mode = std::fs::metadata(&new_key_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    if let Some(path) = &key_file {
        assert_eq!(std::fs::read_to_string(path).unwrap(), new_key);
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    } else {
        assert!(out.contains("FIREHOOK__SECURITY__ENCRYPTION_KEY"), "{out}");
    }
    let stored = stored_bytes(&app.database_url);
    assert!(!contains(&stored, fixture["secret"].as_str().unwrap()));

    let on_new_key = |settings: &mut firehook::config::Settings| {
        outbound_settings(settings);
        if key_file.is_none() {
            settings.security.encryption_key = SecretString::from(new_key.trim());
        }
    };
    let restarted = spawn_app_on(&app.database_url, Clock::pinned(0), on_new_key).await;
    let reply = deliver(&restarted, &fixture, &connection).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    fire_and_verify(&restarted, &receiver).await;

    let mut cmd = firehook_command(&app.database_url);
    cmd.env("FIREHOOK__SECURITY__ENCRYPTION_KEY", &old_key);
    let stderr = refused_start(cmd);
    assert!(
        stderr.contains("does not decrypt the stored signing secrets"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&old_key),
        "the key is never printed: {stderr}"
    );
}

/// SQLite: a key file others may read, or that holds no key, stops the start.
/// PostgreSQL: no configured key stops the start.
async fn secrets_need_a_usable_key_to_start(backend: Backend) {
    let app = spawn_app_with(backend, Clock::system(), |_| {}).await;
    let Some(db) = sqlite_path(&app.database_url) else {
        let mut cmd = firehook_command(&app.database_url);
        cmd.env_remove("FIREHOOK__SECURITY__ENCRYPTION_KEY");
        let stderr = refused_start(cmd);
        assert!(
            stderr.contains("set security.encryption_key (FIREHOOK__SECURITY__ENCRYPTION_KEY)"),
            "{stderr}"
        );
        return;
    };
    let mut name = db.into_os_string();
    name.push(".key");
    let key_file = PathBuf::from(name);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = refused_start(firehook_command(&app.database_url));
    assert!(
        stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );

    std::fs::write(&key_file, "dG9vIHNob3J0\n").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stderr = refused_start(firehook_command(&app.database_url));
    assert!(stderr.contains("exactly 32 bytes"), "{stderr}");
}

/// Each scheme has a minimum secret length; a shorter secret is refused naming the field
/// and without echoing the value.
async fn secrets_shorter_than_their_scheme_allows_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, Clock::system(), |_| {}).await;
    let cases = [
        // 23 bytes of key.
        (
            "clerk",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o=",
            "24 bytes",
        ),
        ("stripe", "whsec_Zq8shortsecret", "16 characters"),
        ("shopify", "shpss_Zq8short", "16 characters"),
        ("generic", "Zq8tooshortsecr", "16 characters"),
        ("supabase", "Zq8shorttoken", "16 characters"),
    ];
    for (provider, secret, why) in cases {
        let reply = app
            .post(
                "/v1/integrations/connections",
                &json!({"provider": provider, "secrets": [secret]}),
            )
            .await;
        assert_eq!(reply.status, 400, "{provider}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["param"], "secrets[0]", "{provider}");
        let text = reply.body.to_string();
        assert!(text.contains(why), "{provider}: {text}");
        assert!(
            !text.contains("Zq8") && !text.contains("C2FV"),
            "echoed: {text}"
        );
    }

    let fixture = clerk_fixture();
    let connection = connect(&app, &fixture).await;
    let reply = app
        .patch(
            &format!("/v1/integrations/connections/{connection}"),
            &json!({"addSecret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o="}),
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["param"], "addSecret");
    assert!(!reply.body.to_string().contains("C2FV"), "{:?}", reply.body);
}

crate::each_backend!(
    secrets_are_encrypted_at_rest_and_still_verify,
    secrets_stored_in_clear_are_encrypted_at_start,
    secrets_survive_a_rotation_of_the_encryption_key,
    secrets_need_a_usable_key_to_start,
    secrets_shorter_than_their_scheme_allows_are_refused,
);
