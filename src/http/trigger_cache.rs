//! Triggers as fires need them: cached per process, with their schema parsed once.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::error::ApiError;
use super::State;
use crate::pipeline::schema::PayloadSchema;

/// A trigger's id, status and parsed payload schema.
pub struct LiveTrigger {
    pub id: String,
    pub enabled: bool,
    pub schema: PayloadSchema,
}

/// `org \0 trigger id` -> the trigger (or `None`: no such trigger). Writes to triggers in
/// this process empty the cache; other processes see them within the time to live.
pub type TriggerCache = Cache<String, Option<Arc<LiveTrigger>>>;

pub fn trigger_cache() -> TriggerCache {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(5))
        .build()
}

/// The trigger `id` of `org_id`, from the cache or the database.
pub async fn live_trigger(
    state: &State,
    org_id: &str,
    id: &str,
) -> Result<Option<Arc<LiveTrigger>>, ApiError> {
    let store = &state.store;
    let loaded = state
        .triggers
        .try_get_with(format!("{org_id}\u{0}{id}"), async {
            let Some(row) = store.get_trigger(org_id, id).await? else {
                return Ok(None);
            };
            let schema = serde_json::from_str(&row.payload_schema)?;
            Ok::<_, anyhow::Error>(Some(Arc::new(LiveTrigger {
                enabled: row.status == "enabled",
                id: row.id,
                schema,
            })))
        })
        .await;
    loaded.map_err(ApiError::internal)
}
