//! The fire pipeline shared by the API and every receive URL: deduplicate by key, upsert
//! the contact, start one run per published automation, all in one transaction.

pub mod canonical;
pub mod contact;
pub mod graph;
pub mod schema;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::ids;
use crate::store::{
    FireError, FireMode, FireWrite, FireWritten, KeyClaim, Store, TriggerInstanceRow,
};

/// One fire, ready to be written.
#[derive(Debug, Clone)]
pub struct FireRequest {
    pub org_id: String,
    pub trigger_id: String,
    /// `api`, or the provider of an integration delivery.
    pub source: String,
    /// The dedupe key and its scope (`api`, or the connection id).
    pub key: Option<(String, String)>,
    /// Tells a replay from a conflicting reuse of the key.
    pub request_hash: String,
    pub mode: FireMode,
    pub contact_email: Option<String>,
    pub identities: Vec<(String, String)>,
    pub payload: Map<String, Value>,
    pub warnings: Vec<Value>,
    pub release_key_without_runs: bool,
}

/// What a fire came to.
#[derive(Debug, Clone)]
pub struct Fired {
    pub instance_id: String,
    pub received_at_ms: i64,
    pub outcome: String,
    pub run_ids: Vec<String>,
    /// `(automationId, name)` of the automations that got a run.
    pub automations: Vec<(String, String)>,
    pub replay: Option<Replay>,
}

/// Set when the key had been used before: the fields above describe that earlier fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    SameRequest,
    DifferentRequest,
}

/// A fire whose key is held, as the cache keeps it: lean, because the cache holds up to
/// `fire.cache_capacity` of them.
#[derive(Debug)]
struct Claimed {
    request_hash: Box<str>,
    instance_id: Box<str>,
    received_at_ms: i64,
    outcome: Box<str>,
    runs: Box<[ClaimedRun]>,
}

/// A run the held fire started.
#[derive(Debug)]
struct ClaimedRun {
    id: Box<str>,
    automation_id: Box<str>,
    automation_name: Box<str>,
}

impl Claimed {
    fn new(request_hash: &str, fired: &Fired) -> Claimed {
        Claimed {
            request_hash: request_hash.into(),
            instance_id: fired.instance_id.as_str().into(),
            received_at_ms: fired.received_at_ms,
            outcome: fired.outcome.as_str().into(),
            runs: fired
                .run_ids
                .iter()
                .zip(&fired.automations)
                .map(|(run, (id, name))| ClaimedRun {
                    id: run.as_str().into(),
                    automation_id: id.as_str().into(),
                    automation_name: name.as_str().into(),
                })
                .collect(),
        }
    }

    /// The earlier fire, as the answer to a request with this hash.
    fn replay_for(&self, request_hash: &str) -> Fired {
        Fired {
            instance_id: self.instance_id.to_string(),
            received_at_ms: self.received_at_ms,
            outcome: self.outcome.to_string(),
            run_ids: self.runs.iter().map(|run| run.id.to_string()).collect(),
            automations: self
                .runs
                .iter()
                .map(|run| {
                    (
                        run.automation_id.to_string(),
                        run.automation_name.to_string(),
                    )
                })
                .collect(),
            replay: Some(if *self.request_hash == *request_hash {
                Replay::SameRequest
            } else {
                Replay::DifferentRequest
            }),
        }
    }
}

/// The cache's key: a digest of (org, scope, key), 16 bytes whatever the key's length.
type ClaimKey = u128;

fn claim_key(org_id: &str, scope: &str, key: &str) -> ClaimKey {
    let digest = Sha256::new()
        .chain_update(org_id)
        .chain_update([0])
        .chain_update(scope)
        .chain_update([0])
        .chain_update(key)
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    clock: Clock,
    claims: Cache<ClaimKey, Arc<Claimed>>,
    window_ms: i64,
}

/// An entry lives until its key's window closes, counted from the original fire.
struct UntilWindowCloses {
    window_ms: i64,
    clock: Clock,
}

impl Expiry<ClaimKey, Arc<Claimed>> for UntilWindowCloses {
    fn expire_after_create(
        &self,
        _: &ClaimKey,
        value: &Arc<Claimed>,
        _: Instant,
    ) -> Option<Duration> {
        let left = value.received_at_ms + self.window_ms - self.clock.now_ms();
        Some(Duration::from_millis(left.max(0) as u64))
    }
}

enum ClaimError {
    Db(FireError),
    /// The fire was written but gave its key back; its answer is not cached.
    Released(Fired),
}

impl Pipeline {
    pub fn new(store: Store, clock: Clock, window: Duration, cache_capacity: u64) -> Pipeline {
        let window_ms = window.as_millis() as i64;
        let claims = Cache::builder()
            .max_capacity(cache_capacity)
            .expire_after(UntilWindowCloses {
                window_ms,
                clock: clock.clone(),
            })
            .build();
        Pipeline {
            store,
            clock,
            claims,
            window_ms,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Fires once per key: a repeat answers the first fire (marked as a replay), also when
    /// it races the first one in this process or in another process on the same database.
    pub async fn fire(&self, req: FireRequest) -> anyhow::Result<Fired> {
        let now_ms = self.clock.now_ms();
        let instance_id = ids::new_id(ids::TRIGGER_INSTANCE);
        let Some((scope, key)) = req.key.clone() else {
            return match self.write(req, &instance_id, now_ms, None).await? {
                FireWritten::Recorded(record) => Ok(fired(instance_id, now_ms, record)),
                FireWritten::Existing(_) => unreachable!("a fire without a key claims nothing"),
            };
        };
        let cache_key = claim_key(&req.org_id, &scope, &key);
        // The cache's timer runs on the system clock; the window is the server's clock's.
        if self
            .claims
            .get(&cache_key)
            .await
            .is_some_and(|c| self.window_closed(&c))
        {
            self.claims.invalidate(&cache_key).await;
        }
        let request_hash = req.request_hash.clone();
        let release_key_without_runs = req.release_key_without_runs;
        let claim = KeyClaim {
            scope,
            key,
            request_hash: request_hash.clone(),
        };
        // Concurrent requests for one key in this process wait for the first one's
        // transaction instead of queueing their own; the database decides across processes.
        let entry = self
            .claims
            .entry(cache_key)
            .or_try_insert_with(async {
                match self.write(req, &instance_id, now_ms, Some(claim)).await {
                    Err(e) => Err(ClaimError::Db(e)),
                    Ok(FireWritten::Recorded(record)) => {
                        let fired = fired(instance_id.clone(), now_ms, record);
                        if release_key_without_runs && fired.run_ids.is_empty() {
                            Err(ClaimError::Released(fired))
                        } else {
                            Ok(Arc::new(Claimed::new(&request_hash, &fired)))
                        }
                    }
                    Ok(FireWritten::Existing(existing)) => Ok(Arc::new(Claimed::new(
                        &existing.request_hash,
                        &from_instance(&existing.instance),
                    ))),
                }
            })
            .await;
        let claimed = match entry {
            Ok(entry) => entry.into_value(),
            Err(e) => match &*e {
                ClaimError::Released(fired) => return Ok(fired.clone()),
                ClaimError::Db(db) => anyhow::bail!("fire transaction failed: {db}"),
            },
        };
        let mut answer = claimed.replay_for(&request_hash);
        if *claimed.instance_id == *instance_id {
            answer.replay = None;
        }
        Ok(answer)
    }

    /// The earlier fire that holds this key, when this process remembers one: lets a
    /// duplicate be answered before any other work. `None` says nothing: the database may
    /// still know the key, and [`Pipeline::fire`] asks it.
    pub async fn remembered(
        &self,
        org_id: &str,
        (scope, key): (&str, &str),
        request_hash: &str,
    ) -> Option<Fired> {
        let claimed = self.claims.get(&claim_key(org_id, scope, key)).await?;
        (!self.window_closed(&claimed)).then(|| claimed.replay_for(request_hash))
    }

    /// Whether a remembered key's window has closed by the server's clock.
    fn window_closed(&self, claimed: &Claimed) -> bool {
        claimed.received_at_ms + self.window_ms <= self.clock.now_ms()
    }

    async fn write(
        &self,
        req: FireRequest,
        instance_id: &str,
        now_ms: i64,
        claim: Option<KeyClaim>,
    ) -> Result<FireWritten, FireError> {
        let write = FireWrite {
            contact: contact::contact_update(&req.payload),
            org_id: req.org_id,
            trigger_id: req.trigger_id,
            instance_id: instance_id.to_owned(),
            source: req.source,
            claim,
            mode: req.mode,
            contact_email: req.contact_email,
            identities: req.identities,
            payload: req.payload,
            warnings: Value::Array(req.warnings),
            release_key_without_runs: req.release_key_without_runs,
            now_ms,
            key_expired_before_ms: now_ms - self.window_ms,
        };
        self.store.fire(write).await
    }
}

fn fired(instance_id: String, now_ms: i64, record: crate::store::FireRecord) -> Fired {
    Fired {
        instance_id,
        received_at_ms: now_ms,
        outcome: record.outcome.to_owned(),
        run_ids: record.run_ids,
        automations: record.automations,
        replay: None,
    }
}

fn from_instance(row: &TriggerInstanceRow) -> Fired {
    let automations: Vec<Value> = serde_json::from_str(&row.automations).unwrap_or_default();
    Fired {
        instance_id: row.id.clone(),
        received_at_ms: row.received_at,
        outcome: row.outcome.clone(),
        run_ids: serde_json::from_str(&row.run_ids).unwrap_or_default(),
        automations: automations
            .iter()
            .map(|a| {
                let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                (field("automationId"), field("name"))
            })
            .collect(),
        replay: None,
    }
}
