//! Concurrent fires are committed together (group commit on both backends). What one
//! fire of a batch does must neither leak into nor fail another.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::{json, Map, Value};

use firehook::domain::IgnoreReason;
use firehook::store::{FireMode, FireWrite, FireWritten, KeyClaim, Store};

use crate::helpers::{spawn_app, test_settings, Backend};

/// A fire that records itself and claims `key`, touching no contact. It happens now: the
/// gateway's retention pass removes keys older than their window.
fn ignored_fire(instance_id: &str, key: &str) -> FireWrite {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    FireWrite {
        org_id: "org_batch".into(),
        trigger_id: "tri_batch".into(),
        instance_id: instance_id.into(),
        source: "api".into(),
        claim: Some(KeyClaim {
            scope: "api".into(),
            key: key.into(),
            request_hash: "hash".into(),
            reclaim_unfired: false,
        }),
        mode: FireMode::Ignore(IgnoreReason::EventNotMapped),
        contact_email: None,
        contact: Default::default(),
        identities: vec![],
        payload: Map::new(),
        warnings: json!([]),
        release_key_without_runs: false,
        now_ms,
        key_expired_before_ms: now_ms - 24 * 3600 * 1000,
        delivery: None,
    }
}

async fn open_store(database_url: &str) -> Store {
    Store::open(&test_settings(database_url)).await.unwrap()
}

async fn a_failing_fire_fails_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = open_store(&app.database_url).await;
    let mut writes: Vec<FireWrite> = (0..40)
        .map(|i| ignored_fire(&format!("tin_{i}"), &format!("key-{i}")))
        .collect();
    // Two fires with one instance id: whichever is written second fails.
    writes[30].instance_id = "tin_10".into();
    let results = join_all(writes.into_iter().map(|w| store.fire(w))).await;

    let failed: Vec<usize> = (0..40).filter(|&i| results[i].is_err()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert!(failed == [10] || failed == [30], "{failed:?}");
    for (i, result) in results.iter().enumerate() {
        if i != failed[0] {
            assert!(
                matches!(result, Ok(FireWritten::Recorded(_))),
                "fire {i}: {result:?}"
            );
        }
    }
    // The failed fire's key claim went with it: a retry fires.
    let retry = format!("key-{}", failed[0]);
    let retried = store.fire(ignored_fire("tin_retry", &retry)).await.unwrap();
    assert!(matches!(retried, FireWritten::Recorded(_)), "{retried:?}");
    // The rest of its batch holds its keys.
    let repeat = store
        .fire(ignored_fire("tin_repeat", "key-5"))
        .await
        .unwrap();
    match repeat {
        FireWritten::Existing(holder) => assert_eq!(holder.instance_id, "tin_5"),
        other => panic!("key-5 fired twice: {other:?}"),
    }
}

async fn concurrent_fires_of_one_key_record_one_fire(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = open_store(&app.database_url).await;
    let writes = (0..20).map(|i| ignored_fire(&format!("tin_{i}"), "one-key"));
    let results: Vec<FireWritten> = join_all(writes.map(|w| store.fire(w)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let recorded: Vec<usize> = (0..20)
        .filter(|&i| matches!(results[i], FireWritten::Recorded(_)))
        .collect();
    assert_eq!(recorded.len(), 1, "{results:?}");
    let holder = format!("tin_{}", recorded[0]);
    for result in &results {
        if let FireWritten::Existing(earlier) = result {
            assert_eq!(earlier.instance_id, holder);
        }
    }
}

async fn concurrent_fires_for_one_contact_keep_every_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    let bodies: Vec<Value> = (0..60)
        .map(|i| json!({"payload": {"email": format!("c{}@b.co", i % 3), format!("field_{i}"): i}}))
        .collect();
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let replies = join_all(
        bodies
            .iter()
            .zip(&keys)
            .map(|(body, key)| app.fire(&trigger, body, Some(key))),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.body["status"], "triggered", "{:?}", reply.body);
    }

    for c in 0..3 {
        let contact = app.get(&format!("/v1/contacts?email=c{c}@b.co")).await;
        assert_eq!(contact.status, 200, "{:?}", contact.body);
        let expected: Map<String, Value> = (0..60)
            .filter(|i| i % 3 == c)
            .map(|i| (format!("field_{i}"), json!(i)))
            .chain([("plan".to_owned(), json!("free"))])
            .collect();
        assert_eq!(contact.body["customFields"], Value::Object(expected));
    }
    let runs = app.runs_of(&trigger).await;
    let distinct: HashSet<&str> = runs
        .iter()
        .map(|r| r["automationRunId"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 60);
}

crate::each_backend!(
    a_failing_fire_fails_alone,
    concurrent_fires_of_one_key_record_one_fire,
    concurrent_fires_for_one_contact_keep_every_field,
);
