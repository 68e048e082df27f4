//! The in-process memory of answered keys, in front of the database's `fire_keys` (the
//! truth): a repeat this process remembers is answered without touching the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};

use super::{Fired, Outcome};
use crate::clock::Clock;
use crate::store::StartedRun;

/// The cache's key: a digest of (org, scope, key), 16 bytes whatever the key's length.
pub(super) type ClaimKey = u128;

/// Answered keys, each until its window closes.
pub(super) type Claims = Cache<ClaimKey, Arc<Claimed>>;

pub(super) fn claims(clock: Clock, window_ms: i64, capacity: u64) -> Claims {
    Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilWindowCloses { window_ms, clock })
        .build()
}

pub(super) fn claim_key(org_id: &str, scope: &str, key: &str) -> ClaimKey {
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

/// A fire whose key is held, as the cache keeps it: lean, because the cache holds up to
/// `fire.cache_capacity` of them.
#[derive(Debug)]
pub(super) struct Claimed {
    request_hash: Box<str>,
    /// The event name of a receive-URL delivery; empty for an API fire.
    event: Box<str>,
    instance_id: Box<str>,
    received_at_ms: i64,
    runs: Box<[ClaimedRun]>,
}

#[derive(Debug)]
struct ClaimedRun {
    id: Box<str>,
    automation_id: Box<str>,
    automation_name: Box<str>,
}

impl Claimed {
    pub(super) fn new(request_hash: &str, event: &str, fired: &Fired) -> Claimed {
        Claimed {
            request_hash: request_hash.into(),
            event: event.into(),
            instance_id: fired.instance_id.as_str().into(),
            received_at_ms: fired.received_at_ms,
            runs: fired
                .runs
                .iter()
                .map(|run| ClaimedRun {
                    id: run.run_id.as_str().into(),
                    automation_id: run.automation_id.as_str().into(),
                    automation_name: run.automation_name.as_str().into(),
                })
                .collect(),
        }
    }

    pub(super) fn event(&self) -> &str {
        &self.event
    }

    /// Whether the key's window has closed at `now_ms`.
    pub(super) fn window_closed(&self, now_ms: i64, window_ms: i64) -> bool {
        self.received_at_ms + window_ms <= now_ms
    }

    /// The answer to a repeat of the key with this request hash.
    pub(super) fn answer(&self, request_hash: &str) -> Outcome {
        let fired = Fired {
            instance_id: self.instance_id.to_string(),
            received_at_ms: self.received_at_ms,
            runs: self
                .runs
                .iter()
                .map(|run| StartedRun {
                    run_id: run.id.to_string(),
                    automation_id: run.automation_id.to_string(),
                    automation_name: run.automation_name.to_string(),
                })
                .collect(),
        };
        if *self.request_hash == *request_hash {
            Outcome::Replay(fired)
        } else {
            Outcome::Conflict(fired)
        }
    }
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
