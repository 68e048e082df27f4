//! The 24 h idempotency window of `Idempotency-Key`s, answered from the in-process cache
//! and from the database (a second app on the same database has an empty cache).

use firehook::clock::Clock;
use serde_json::json;

use crate::helpers::{spawn_app_on, spawn_app_with, Backend};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;
const SECOND: i64 = 1_000;

async fn an_idempotency_key_is_remembered_for_24_hours_then_fires_again(backend: Backend) {
    let app = spawn_app_with(backend, Clock::pinned(T0), |_| {}).await;
    let trigger = app.create_trigger().await;
    app.create_automation(&trigger, true).await;
    let body = json!({"payload": {"email": "window@b.co"}});

    // Answered by the process that fired (its cache).
    let first = app.fire(&trigger, &body, Some("cached")).await;
    assert_eq!(first.body["status"], "triggered", "{:?}", first.body);
    app.clock.set_ms(T0 + DAY - SECOND);
    let replay = app.fire(&trigger, &body, Some("cached")).await;
    assert_eq!(
        replay.body["status"], "idempotent_replay",
        "{:?}",
        replay.body
    );
    assert_eq!(
        replay.body["details"]["automationRunIds"],
        first.body["details"]["automationRunIds"]
    );
    app.clock.set_ms(T0 + DAY + SECOND);
    let after = app.fire(&trigger, &body, Some("cached")).await;
    assert_eq!(
        after.body["status"], "triggered",
        "past 24 h the key is new: {:?}",
        after.body
    );
    assert_ne!(
        after.body["details"]["automationRunIds"],
        first.body["details"]["automationRunIds"]
    );
    assert_eq!(app.runs_of(&trigger).await.len(), 2);

    // Answered by the database: each check runs in an app that never saw the key.
    app.clock.set_ms(T0);
    let first = app.fire(&trigger, &body, Some("stored")).await;
    assert_eq!(first.body["status"], "triggered", "{:?}", first.body);
    app.clock.set_ms(T0 + DAY - SECOND);
    let within = spawn_app_on(&app.database_url, app.clock.clone(), |_| {}).await;
    let replay = within.fire(&trigger, &body, Some("stored")).await;
    assert_eq!(
        replay.body["status"], "idempotent_replay",
        "{:?}",
        replay.body
    );
    assert_eq!(
        replay.body["details"]["automationRunIds"],
        first.body["details"]["automationRunIds"]
    );
    let conflict = within
        .fire(
            &trigger,
            &json!({"payload": {"email": "other@b.co"}}),
            Some("stored"),
        )
        .await;
    assert_eq!(conflict.status, 409, "{:?}", conflict.body);
    app.clock.set_ms(T0 + DAY + SECOND);
    let after_window = spawn_app_on(&app.database_url, app.clock.clone(), |_| {}).await;
    let after = after_window
        .fire(
            &trigger,
            &json!({"payload": {"email": "other@b.co"}}),
            Some("stored"),
        )
        .await;
    assert_eq!(
        after.body["status"], "triggered",
        "past 24 h the database forgets the key: {:?}",
        after.body
    );
    assert_eq!(app.runs_of(&trigger).await.len(), 4);
}

crate::each_backend!(an_idempotency_key_is_remembered_for_24_hours_then_fires_again,);
