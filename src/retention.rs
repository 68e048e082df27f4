//! Retention: the delivery log, finished outbound deliveries and expired idempotency keys
//! are pruned in the background of `firehook serve` and by `firehook prune`. Fires, runs
//! and contacts stay.

use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::pipeline::KeyWindows;
use crate::store::{Cutoffs, Pruned, Store};

/// Where a pass at `now_ms` cuts, per the settings.
pub fn cutoffs(settings: &Settings, now_ms: i64) -> Cutoffs {
    let windows = key_windows(settings);
    Cutoffs {
        deliveries_before_ms: now_ms - settings.retention.deliveries().as_millis() as i64,
        api_keys_before_ms: now_ms - windows.api.as_millis() as i64,
        connection_keys_before_ms: now_ms - windows.deliveries.as_millis() as i64,
    }
}

/// How long the pipeline holds keys, per the settings.
pub fn key_windows(settings: &Settings) -> KeyWindows {
    KeyWindows::new(
        Duration::from_secs(settings.fire.idempotency_window_secs),
        settings.retention.deliveries(),
    )
}

/// One retention pass.
pub async fn prune(store: &Store, settings: &Settings, clock: &Clock) -> sqlx::Result<Pruned> {
    store.prune(cutoffs(settings, clock.now_ms())).await
}

/// Runs a pass now and then every `retention.interval_secs`, until aborted.
pub fn spawn(store: Store, settings: Settings, clock: Clock) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(settings.retention.interval_secs.max(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match prune(&store, &settings, &clock).await {
                Ok(pruned) => tracing::info!(
                    deliveries = pruned.deliveries,
                    fire_keys = pruned.fire_keys,
                    outbound_deliveries = pruned.outbound_deliveries,
                    outbound_events = pruned.outbound_events,
                    "retention pass done"
                ),
                Err(e) => tracing::error!(error = %e, "retention pass failed"),
            }
        }
    })
}
