//! The `firehook` binary's own commands: the key printed on first start, `orgs create`,
//! `keys create` and `keys revoke`, run against the database of a serving gateway.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{run_cli, spawn_app, spawn_app_on, Backend, Gateway, Reply};

/// The first `fh_...` word of `text`.
fn api_key_in(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with("fh_"))
        .map(str::to_owned)
}

/// The word after `label` in `text` (e.g. the id after "org").
fn word_after<'a>(text: &'a str, label: &str) -> &'a str {
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        if word == label {
            return words
                .next()
                .unwrap_or_default()
                .trim_end_matches([')', ';', ',']);
        }
    }
    panic!("no {label:?} in {text:?}")
}

async fn first_start_prints_a_working_key_once(backend: Backend) {
    let database = backend.fresh_database().await;
    let mut first = Gateway::start_with(&database.url, None);
    let stderr = first.wait_for_stderr("fh_");
    let key = api_key_in(&stderr).expect("a key on stderr");
    let client = reqwest::Client::new();
    let listed = Reply::from(
        client
            .get(format!("{}/v1/automations/triggers", first.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        listed.status, 200,
        "the printed key works: {:?}",
        listed.body
    );
    let stderr = first.finish();
    assert_eq!(stderr.matches(&key).count(), 1, "printed once: {stderr}");

    // A second start on the same database creates nothing and prints no key.
    let mut second = Gateway::start_with(&database.url, None);
    let reply = Reply::from(
        client
            .get(format!("{}/v1/automations/triggers", second.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let stderr = second.finish();
    assert!(!stderr.contains("fh_"), "no key printed again: {stderr}");
}

async fn orgs_and_keys_commands_work_while_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_trigger().await;

    let (ok, out, err) = run_cli(&app.database_url, &["orgs", "create", "Acme"]);
    assert!(ok, "{out}{err}");
    let org = word_after(&out, "org").to_owned();
    assert!(org.starts_with("org_"), "{out}");
    let acme_key = api_key_in(&out).expect("the org's first key");
    let listed = app
        .send_as(&acme_key, Method::GET, "/v1/automations/triggers", None)
        .await;
    assert_eq!(
        (listed.status, &listed.body["data"]),
        (200, &json!([])),
        "a new org starts empty"
    );
    let theirs = app.create_trigger_as(&acme_key).await;

    let (ok, out, err) = run_cli(
        &app.database_url,
        &["keys", "create", "--org", &org, "--name", "ci"],
    );
    assert!(ok, "{out}{err}");
    let second_key = api_key_in(&out).expect("a key");
    let second_id = word_after(&out, "(id").to_owned();
    assert!(second_id.starts_with("key_"), "{out}");
    let got = app
        .send_as(
            &second_key,
            Method::GET,
            &format!("/v1/automations/triggers/{theirs}"),
            None,
        )
        .await;
    assert_eq!(got.status, 200, "a second key acts for the same org");

    // Without --org: the first org (the default one).
    let (ok, out, err) = run_cli(&app.database_url, &["keys", "create"]);
    assert!(ok, "{out}{err}");
    let default_key = api_key_in(&out).expect("a key");
    let got = app
        .send_as(
            &default_key,
            Method::GET,
            &format!("/v1/automations/triggers/{mine}"),
            None,
        )
        .await;
    assert_eq!(got.status, 200, "{:?}", got.body);

    let (ok, _, err) = run_cli(&app.database_url, &["keys", "create", "--org", "org_nope"]);
    assert!(!ok && err.contains("no org"), "{err}");

    // A key revoked before it was ever used is refused at once.
    let (ok, out, err) = run_cli(&app.database_url, &["keys", "create", "--org", &org]);
    assert!(ok, "{out}{err}");
    let unused_key = api_key_in(&out).expect("a key");
    let unused_id = word_after(&out, "(id").to_owned();
    let (ok, out, err) = run_cli(&app.database_url, &["keys", "revoke", &unused_id]);
    assert!(ok && out.contains(&unused_id), "{out}{err}");
    let refused = app
        .send_as(&unused_key, Method::GET, "/v1/automations/triggers", None)
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (401, "INVALID_API_KEY")
    );

    // A key in use is refused once revoked by a process that starts after (running ones
    // refuse it within a second: see revocation.rs).
    let (ok, out, err) = run_cli(&app.database_url, &["keys", "revoke", &second_id]);
    assert!(ok, "{out}{err}");
    let fresh = spawn_app_on(&app.database_url, app.clock.clone(), |_| {}).await;
    let refused = fresh
        .send_as(&second_key, Method::GET, "/v1/automations/triggers", None)
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (401, "INVALID_API_KEY")
    );
    let fire = fresh
        .fire_as(
            &second_key,
            &theirs,
            &json!({"payload": {"email": "a@b.co"}}),
            None,
        )
        .await;
    assert_eq!(
        (fire.status, &fire.body["code"]),
        (401, &json!("INVALID_API_KEY"))
    );
    let (ok, _, err) = run_cli(&app.database_url, &["keys", "revoke", &second_id]);
    assert!(!ok, "revoking twice fails: {err}");
    // The org's first key is unaffected.
    let still = fresh
        .send_as(&acme_key, Method::GET, "/v1/automations/triggers", None)
        .await;
    assert_eq!(still.status, 200);
}

/// `send-test` on a database no gateway has set up yet names what is missing (the
/// connection), as the other commands do, rather than a table.
async fn send_test_on_a_new_database_names_the_missing_connection(backend: Backend) {
    let database = backend.fresh_database().await;
    let args = [
        "send-test",
        "clerk",
        "--connection",
        "con_01NOSUCHCONNECTION",
    ];
    let (ok, out, err) = run_cli(&database.url, &args);
    assert!(!ok, "{out}");
    assert!(
        err.contains("no connection con_01NOSUCHCONNECTION"),
        "{err}"
    );
}

crate::each_backend!(
    first_start_prints_a_working_key_once,
    orgs_and_keys_commands_work_while_serving,
    send_test_on_a_new_database_names_the_missing_connection,
);
