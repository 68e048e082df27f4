//! Ids and keys chosen by others, far longer than a database index row: validly signed
//! deliveries carrying them answer 200 (or a 4xx), never 500, on both backends. Deliveries
//! are signed by the PyPI `svix` package (tests/sign_svix.py), not by firehook's own code.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend, Reply, TestApp};

pub const CLERK_SECRET: &str = "whsec_MfKQ4r7qjRDSPCgpOAd3VU9XBxq2sZ0k";

/// `svix-signature` for this delivery, from the svix package.
pub fn svix_sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sign_svix.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (and `pip install svix` was done)");
    let request = json!({"secret": secret, "id": id, "timestamp": timestamp, "body": body});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "sign_svix.py failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A Clerk `user.created` for `email` with this user id.
pub fn clerk_user(user_id: &str, email: &str) -> String {
    json!({"type": "user.created", "object": "event", "data": {
        "id": user_id, "object": "user", "first_name": "Long", "last_name": "Id",
        "primary_email_address_id": "idn_1",
        "email_addresses": [{"id": "idn_1", "email_address": email}]
    }})
    .to_string()
}

pub async fn deliver_clerk(app: &TestApp, connection: &str, svix_id: &str, body: &str) -> Reply {
    let now = app.clock.now_ms() / 1000;
    let signature = svix_sign(CLERK_SECRET, svix_id, now, body);
    let req = app
        .client
        .post(app.url(&format!("/api/integrations/clerk/webhook/{connection}")))
        .header("svix-id", svix_id)
        .header("svix-timestamp", now.to_string())
        .header("svix-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned());
    Reply::from(req.send().await.expect("request")).await
}

pub async fn clerk_connection(app: &TestApp) -> String {
    let created = app
        .create_connection(&json!({"provider": "clerk", "secrets": [CLERK_SECRET]}))
        .await;
    let id = created["connectionId"].as_str().unwrap().to_owned();
    app.create_automation(&format!("clerk:{id}:user.created"), true)
        .await;
    id
}

async fn a_3_kb_svix_id_fires_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let connection = clerk_connection(&app).await;
    let svix_id = format!("msg_{}", "a".repeat(3 * 1024));
    let body = clerk_user("user_short", "long.svix@b.co");
    let first = deliver_clerk(&app, &connection, &svix_id, &body).await;
    assert_eq!(
        (first.status, &first.body["status"]),
        (200, &json!("triggered")),
        "{:?}",
        first.body
    );
    let again = deliver_clerk(&app, &connection, &svix_id, &body).await;
    assert_eq!(
        (again.status, &again.body["status"]),
        (200, &json!("duplicate"))
    );
    // Another id sharing the first 3 KB is another event.
    let other = deliver_clerk(&app, &connection, &format!("{svix_id}b"), &body).await;
    assert_eq!(other.body["status"], "triggered");
}

async fn a_100_kb_provider_id_is_stored_and_finds_its_contact(backend: Backend) {
    let app = spawn_app(backend).await;
    let connection = clerk_connection(&app).await;
    let user_id = format!("user_{}", "z".repeat(100 * 1024));
    let created = clerk_user(&user_id, "long.id@b.co");
    let first = deliver_clerk(&app, &connection, "msg_long_user", &created).await;
    assert_eq!(
        (first.status, &first.body["status"]),
        (200, &json!("triggered")),
        "{:?}",
        first.body
    );
    let contact = app.contact("long.id@b.co").await.expect("contact stored");
    assert_eq!(contact["customFields"]["clerk_user_id"], json!(user_id));
    // A deletion carries only the id: the contact is found through it.
    let deleted = json!({"type": "user.deleted", "object": "event",
                         "data": {"id": user_id, "deleted": true, "object": "user"}})
    .to_string();
    let reply = deliver_clerk(&app, &connection, "msg_long_delete", &deleted).await;
    assert_eq!(
        (reply.status, &reply.body["status"]),
        (200, &json!("no_published_automation")),
        "{:?}",
        reply.body
    );
}

async fn a_3_kb_custom_key_is_answered_not_stored_as_a_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_key = "k".repeat(3 * 1024);
    // Through a provider: a Supabase table column becomes `supabase_<column>`.
    let created = app
        .create_connection(&json!({"provider": "supabase", "options": {"tables": [
            {"schema": "public", "table": "customers", "emailColumn": "email"}]}}))
        .await;
    let (connection, token) = (
        created["connectionId"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let body = json!({"type": "INSERT", "table": "customers", "schema": "public",
                      "record": {"email": "wide@b.co", "plan": "pro", long_key.clone(): 1},
                      "old_record": null});
    let reply = Reply::from(
        app.client
            .post(app.url(&format!("/api/integrations/supabase/webhook/{connection}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let contact = app.contact("wide@b.co").await.expect("contact stored");
    assert_eq!(contact["customFields"]["supabase_plan"], "pro");
    assert!(contact["customFields"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k.len() <= 100));

    // Through the API: the key is kept in the payload and reported, not made a field.
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    let fired = app
        .fire(
            &trigger,
            &json!({"payload": {"email": "api.wide@b.co", long_key.clone(): true}}),
            None,
        )
        .await;
    assert_eq!(fired.status, 200, "{:?}", fired.body);
    assert_eq!(
        fired.body["details"]["resolvedPayload"][&long_key],
        Value::Bool(true)
    );
    let contact = app.contact("api.wide@b.co").await.expect("contact stored");
    assert!(contact["customFields"].get(&long_key).is_none());
}

crate::each_backend!(
    a_3_kb_svix_id_fires_once,
    a_100_kb_provider_id_is_stored_and_finds_its_contact,
    a_3_kb_custom_key_is_answered_not_stored_as_a_field,
);
