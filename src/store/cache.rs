//! Per-process caches of what every request reads: API keys, live connections with their
//! secrets, triggers with their parsed schema, and each org's webhook subscribers. They live behind the store so that each
//! write that changes a cached row empties its entry after it commits; no caller has to
//! remember to. Other processes on the same database see an edit within the time to live,
//! or, for keys and connections, within half a second (see `generation.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adapters::{Provider, Secret};
use moka::future::Cache;
use serde_json::Value;

use super::outbox::Subscribers;
use super::{with_read, ConnectionRow, Store};
use crate::domain::TriggerStatus;
use crate::pipeline::schema::PayloadSchema;

const CONNECTION_TTL: Duration = Duration::from_secs(5);
const TRIGGER_TTL: Duration = Duration::from_secs(5);
const KEY_TTL: Duration = Duration::from_secs(30);
const SUBSCRIBERS_TTL: Duration = Duration::from_secs(5);
const CAPACITY: u64 = 10_000;

/// A connection as deliveries need it: its row, provider and active secrets.
#[derive(Debug)]
pub struct LiveConnection {
    pub row: ConnectionRow,
    pub provider: Provider,
    pub secrets: Vec<Secret>,
    /// The id of each secret in `secrets`, in the same order.
    pub secret_ids: Vec<String>,
    pub options: Value,
}

/// A trigger as fires need it: its status and parsed payload schema.
#[derive(Debug)]
pub struct LiveTrigger {
    pub id: String,
    pub status: TriggerStatus,
    pub schema: PayloadSchema,
}

/// A cached row that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stored {what} of {id} does not decode: {cause}")]
    Corrupt {
        what: &'static str,
        id: String,
        cause: String,
    },
}

pub(super) struct Caches {
    /// API key hash -> org id.
    keys: Cache<String, String>,
    /// Connection id -> the live connection, or `None` for no such connection.
    connections: Cache<String, Option<Arc<LiveConnection>>>,
    /// `org \0 trigger id` -> the trigger, or `None`.
    triggers: Cache<String, Option<Arc<LiveTrigger>>>,
    /// Org id -> its enabled webhook subscriptions, which every fire consults.
    subscribers: Cache<String, Arc<Subscribers>>,
    /// Counts [`Caches::forget_shared`] calls, so that a load that read the database before
    /// one (and inserted after it) can drop what it inserted.
    epoch: AtomicU64,
}

fn cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(ttl)
        .build()
}

impl Caches {
    pub(super) fn new() -> Caches {
        Caches {
            keys: cache(KEY_TTL),
            connections: cache(CONNECTION_TTL),
            triggers: cache(TRIGGER_TTL),
            subscribers: cache(SUBSCRIBERS_TTL),
            epoch: AtomicU64::new(0),
        }
    }

    /// Empties the caches of keys and connections, after another process's write.
    pub(super) fn forget_shared(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.invalidate_all();
        self.connections.invalidate_all();
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

impl Store {
    /// The org of the active API key with this hash.
    pub async fn org_for_key(&self, hash: &str) -> sqlx::Result<Option<String>> {
        if let Some(org) = self.caches.keys.get(hash).await {
            return Ok(Some(org));
        }
        let epoch = self.caches.epoch();
        let Some(record) = self.find_api_key(hash).await? else {
            return Ok(None);
        };
        self.caches
            .keys
            .insert(hash.to_owned(), record.org_id.clone())
            .await;
        // The row may predate a revocation that emptied the cache while it was read.
        if self.caches.epoch() != epoch {
            self.caches.keys.invalidate(hash).await;
        }
        Ok(Some(record.org_id))
    }

    /// The org of an API key this process has seen active lately, without asking the
    /// database.
    pub async fn cached_org_for_key(&self, hash: &str) -> Option<String> {
        self.caches.keys.get(hash).await
    }

    /// The connection behind a receive URL, with its active secrets.
    pub async fn live_connection(
        &self,
        id: &str,
    ) -> Result<Option<Arc<LiveConnection>>, Arc<LoadError>> {
        let epoch = self.caches.epoch();
        let live = self
            .caches
            .connections
            .try_get_with(id.to_owned(), async {
                let Some(row) = self.find_connection(id).await? else {
                    return Ok(None);
                };
                let corrupt = |what, cause: String| LoadError::Corrupt {
                    what,
                    id: row.id.clone(),
                    cause,
                };
                let provider = Provider::from_slug(&row.provider)
                    .ok_or_else(|| corrupt("provider", format!("unknown `{}`", row.provider)))?;
                let options = serde_json::from_str(&row.options)
                    .map_err(|e| corrupt("options", e.to_string()))?;
                let (secret_ids, secrets) = self
                    .active_secrets(id)
                    .await?
                    .into_iter()
                    .map(|s| (s.id, Secret::new(s.secret)))
                    .unzip();
                Ok(Some(Arc::new(LiveConnection {
                    row,
                    provider,
                    secrets,
                    secret_ids,
                    options,
                })))
            })
            .await;
        // As for keys: what was read before the caches were emptied is not kept.
        if self.caches.epoch() != epoch {
            self.caches.connections.invalidate(id).await;
        }
        live
    }

    /// The trigger `id` of `org_id`.
    pub async fn live_trigger(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Arc<LiveTrigger>>, Arc<LoadError>> {
        self.caches
            .triggers
            .try_get_with(format!("{org_id}\u{0}{id}"), async {
                let Some(row) = self.get_trigger(org_id, id).await? else {
                    return Ok(None);
                };
                let schema =
                    serde_json::from_str(&row.payload_schema).map_err(|e| LoadError::Corrupt {
                        what: "payload schema",
                        id: row.id.clone(),
                        cause: e.to_string(),
                    })?;
                Ok(Some(Arc::new(LiveTrigger {
                    status: row.status,
                    id: row.id,
                    schema,
                })))
            })
            .await
    }

    /// The enabled webhook subscriptions of `org_id` and the event types they want.
    pub(super) async fn subscribers(
        &self,
        org_id: &str,
    ) -> Result<Arc<Subscribers>, Arc<LoadError>> {
        self.caches
            .subscribers
            .try_get_with(org_id.to_owned(), async {
                let rows: Vec<(String, String)> = with_read!(self, pool => {
                    sqlx::query_as(
                        "SELECT id, events FROM webhook_subscriptions \
                         WHERE org_id = $1 AND enabled = $2 AND deleted_at IS NULL ORDER BY id",
                    )
                    .bind(org_id)
                    .bind(true)
                    .fetch_all(pool)
                    .await?
                });
                Ok(Arc::new(Subscribers::from_rows(rows)))
            })
            .await
    }

    /// After a write to one of the org's subscriptions.
    pub(super) async fn forget_subscribers(&self, org_id: &str) {
        self.caches.subscribers.invalidate(org_id).await;
    }

    /// After a write to triggers: every cached trigger may be stale.
    pub(super) fn forget_triggers(&self) {
        self.caches.triggers.invalidate_all();
    }

    /// After a write to a connection or its secrets.
    pub(super) async fn forget_connection(&self, id: &str) {
        self.caches.connections.invalidate(id).await;
    }

    /// After a key is revoked (by id, so the hash is unknown here).
    pub(super) fn forget_keys(&self) {
        self.caches.keys.invalidate_all();
    }
}
