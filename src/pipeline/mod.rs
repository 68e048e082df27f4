//! The fire pipeline. Two entry points, one per source, share everything after the
//! source-specific part:
//! - [`Pipeline::deliver`]: a request on a connection's receive URL (verify, map, resolve
//!   the contact through the record or a stored provider id);
//! - [`Pipeline::fire_api`]: `POST /v1/automations/triggers/{id}/fire` (validate the payload
//!   against the trigger's schema).
//!
//! Both then deduplicate by key (an in-process cache in front of the database, which
//! decides), write the fire, the contact and one run per published automation in one
//! transaction, count it, and answer with a typed [`Outcome`].

pub mod canonical;
pub mod contact;
mod dedupe;
pub mod graph;
pub mod schema;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use adapters::{Action, ContactRecord, Delivery, Inbound, MapError, SkipReason, VerifyError};
use serde_json::{json, Map, Value};

use crate::clock::Clock;
use crate::domain::{Email, FireOutcome, IdempotencyKey, IgnoreReason, TriggerStatus};
use crate::ids;
use crate::metrics::Metrics;
use crate::store::{
    FireError, FireMode, FireRecord, FireWrite, FireWritten, KeyClaim, LiveConnection, LoadError,
    StartedRun, Store,
};
use dedupe::{Claimed, Claims};
use schema::Resolved;

const NO_EMAIL: IgnoreReason = IgnoreReason::Delivery(SkipReason::NoEmail);

/// Where a fire came from, as metrics and trigger instances name it.
const API_SOURCE: &str = "api";

/// A fire that was recorded: its trigger instance and the runs it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub instance_id: String,
    pub received_at_ms: i64,
    pub runs: Vec<StartedRun>,
}

impl Fired {
    pub fn run_ids(&self) -> impl Iterator<Item = &str> {
        self.runs.iter().map(|r| r.run_id.as_str())
    }
}

/// What a fire came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One run per published automation was started.
    Triggered(Fired),
    /// The contact was upserted and the fire recorded; no automation bound to the trigger
    /// is published.
    NoPublishedAutomation(Fired),
    /// The trigger is disabled: the fire was recorded and started nothing.
    TriggerDisabled(Fired),
    /// The fire was recorded with this reason; nothing was upserted.
    Ignored(IgnoreReason),
    /// The key was used before for the same request: the earlier fire.
    Replay(Fired),
    /// The key was used before for a different request: the earlier fire.
    Conflict(Fired),
}

/// A receive-URL request that was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// The signature or token did not verify (401).
    Signature(VerifyError),
    /// Verified, but the body cannot be read as the provider's payload (400).
    Unreadable(MapError),
}

/// What a receive-URL request came to.
#[derive(Debug)]
pub enum Delivered {
    Rejected(Rejection),
    Answered {
        /// The event name of the mapped delivery.
        event: String,
        /// The trigger this event fires on the connection.
        trigger_id: String,
        outcome: Outcome,
    },
}

/// An API fire as the request states it.
#[derive(Debug)]
pub struct ApiFire {
    pub payload: Map<String, Value>,
    pub key: Option<IdempotencyKey>,
    pub dry_run: bool,
}

/// What an API fire came to.
#[derive(Debug)]
pub enum ApiFired {
    TriggerNotFound,
    /// The payload does not fit the trigger's schema; nothing was written. `resolved` is
    /// set when the schema resolved it but its email is not an address.
    PayloadMismatch {
        problems: Vec<Value>,
        resolved: Option<Resolved>,
    },
    /// A dry run: validated and resolved, nothing written, the key not consumed.
    Ready(Resolved),
    Fired {
        resolved: Resolved,
        outcome: Outcome,
    },
}

/// A fire that could not be carried out; nothing of it was committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("loading the trigger or the contact failed")]
    Load(#[source] Arc<LoadError>),
    #[error("looking up a contact by provider id failed")]
    Lookup(#[source] Arc<sqlx::Error>),
    #[error("writing the fire failed")]
    Write(#[source] Arc<FireError>),
}

impl From<Arc<LoadError>> for PipelineError {
    fn from(e: Arc<LoadError>) -> PipelineError {
        PipelineError::Load(e)
    }
}

#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    clock: Clock,
    metrics: Metrics,
    claims: Claims,
    window_ms: i64,
}

impl Pipeline {
    pub fn new(
        store: Store,
        clock: Clock,
        metrics: Metrics,
        window: Duration,
        cache_capacity: u64,
    ) -> Pipeline {
        let window_ms = window.as_millis() as i64;
        Pipeline {
            claims: dedupe::claims(clock.clone(), window_ms, cache_capacity),
            store,
            clock,
            metrics,
            window_ms,
        }
    }

    /// Verifies and maps a receive-URL request on `connection`, then fires the event's
    /// trigger once per provider event id.
    pub async fn deliver(
        &self,
        connection: &LiveConnection,
        inbound: &Inbound<'_>,
    ) -> Result<Delivered, PipelineError> {
        let provider = connection.provider;
        let now_ms = self.clock.now_ms();
        let now_unix = now_ms.div_euclid(1000);
        let verified = match adapters::verify(provider, inbound, &connection.secrets, now_unix) {
            Ok(verified) => verified,
            Err(e) => {
                // Logged by the caller, sampled: a flood must not write a line per request.
                self.metrics
                    .verification_failures
                    .with_label_values(&[provider.slug(), e.reason()])
                    .inc();
                return Ok(Delivered::Rejected(Rejection::Signature(e)));
            }
        };
        let delivery = match adapters::map(&verified, &connection.options, now_unix) {
            Ok(delivery) => delivery,
            Err(e) => return Ok(Delivered::Rejected(Rejection::Unreadable(e))),
        };

        let row = &connection.row;
        let trigger_id = format!("{}:{}:{}", provider.slug(), row.id, delivery.event);
        let claim = KeyClaim {
            scope: row.id.clone(),
            key: delivery.dedupe_id.clone(),
            // A repeat of an event id is a duplicate whatever its body.
            request_hash: String::new(),
        };
        let write = self.delivery_write(connection, &delivery, &trigger_id, now_ms);
        let outcome = self.once(&row.org_id, Some(claim), false, write).await?;
        self.count(provider.slug(), &outcome);
        Ok(Delivered::Answered {
            event: delivery.event,
            trigger_id,
            outcome,
        })
    }

    /// What a mapped delivery writes: a run of its trigger for the resolved contact, or an
    /// ignored fire with the reason.
    async fn delivery_write(
        &self,
        connection: &LiveConnection,
        delivery: &Delivery,
        trigger_id: &str,
        now_ms: i64,
    ) -> Result<FireWrite, PipelineError> {
        let org_id = &connection.row.org_id;
        let ignore = |reason| (FireMode::Ignore(reason), None, Map::new());
        let trigger = self.store.live_trigger(org_id, trigger_id).await?;
        let (mode, email, payload) = match (&delivery.action, &trigger) {
            (Action::Ignore(skip), _) => ignore(IgnoreReason::Delivery(*skip)),
            (Action::Fire(_), None) => ignore(IgnoreReason::EventNotMapped),
            (Action::Fire(_), Some(t)) if t.status == TriggerStatus::Disabled => {
                ignore(IgnoreReason::TriggerDisabled)
            }
            (Action::Fire(record), Some(t)) => match self.resolve(org_id, record).await? {
                Err(reason) => ignore(reason),
                Ok(email) => {
                    let mut fields = record.fields.clone();
                    fields.insert("email".into(), json!(email.as_str()));
                    match t.schema.resolve(&fields) {
                        Ok(resolved) => (FireMode::Run, Some(email), resolved.values),
                        Err(_) => ignore(IgnoreReason::PayloadMismatch),
                    }
                }
            },
        };
        let identities = match mode {
            FireMode::Run => connection
                .provider
                .identity_fields()
                .iter()
                .filter_map(|field| {
                    let value = payload.get(*field)?.as_str()?;
                    Some(((*field).to_owned(), value.to_owned()))
                })
                .collect(),
            _ => vec![],
        };
        Ok(FireWrite {
            contact: contact::contact_update(&payload),
            org_id: org_id.clone(),
            trigger_id: trigger_id.to_owned(),
            instance_id: ids::new_id(ids::TRIGGER_INSTANCE),
            source: connection.provider.slug().to_owned(),
            claim: None,
            mode,
            contact_email: email,
            identities,
            payload,
            warnings: Value::Array(vec![]),
            release_key_without_runs: false,
            now_ms,
            key_expired_before_ms: now_ms - self.window_ms,
        })
    }

    /// The contact a record is about: its email, or the contact a stored provider id
    /// belongs to.
    async fn resolve(
        &self,
        org_id: &str,
        record: &ContactRecord,
    ) -> Result<Result<Email, IgnoreReason>, PipelineError> {
        Ok(match (&record.email, &record.lookup) {
            (Some(raw), _) => Email::parse(raw).ok_or(NO_EMAIL),
            (None, Some((field, value))) => self
                .store
                .find_contact_by_identity(org_id, field, value)
                .await
                .map_err(|e| PipelineError::Lookup(Arc::new(e)))?
                .ok_or(IgnoreReason::ContactNotFound),
            (None, None) => Err(NO_EMAIL),
        })
    }

    /// Validates an API fire against its trigger's schema, then fires it once per
    /// idempotency key (a fire without a key always fires).
    pub async fn fire_api(
        &self,
        org_id: &str,
        trigger_id: &str,
        fire: ApiFire,
    ) -> Result<ApiFired, PipelineError> {
        let Some(trigger) = self.store.live_trigger(org_id, trigger_id).await? else {
            return Ok(ApiFired::TriggerNotFound);
        };
        let resolved = match trigger.schema.resolve(&fire.payload) {
            Ok(resolved) => resolved,
            Err(problems) => {
                return Ok(ApiFired::PayloadMismatch {
                    problems,
                    resolved: None,
                })
            }
        };
        let email = resolved
            .values
            .get("email")
            .and_then(Value::as_str)
            .and_then(Email::parse);
        let Some(email) = email else {
            return Ok(ApiFired::PayloadMismatch {
                problems: vec![json!({"field": "email", "problem": "invalid_email"})],
                resolved: Some(resolved),
            });
        };
        if fire.dry_run {
            return Ok(ApiFired::Ready(resolved));
        }

        let now_ms = self.clock.now_ms();
        let claim = fire.key.map(|key| KeyClaim {
            scope: API_SOURCE.to_owned(),
            key: key.as_str().to_owned(),
            request_hash: canonical::hash(&Value::Object(fire.payload)),
        });
        let write = FireWrite {
            contact: contact::contact_update(&resolved.values),
            org_id: org_id.to_owned(),
            trigger_id: trigger.id.clone(),
            instance_id: ids::new_id(ids::TRIGGER_INSTANCE),
            source: API_SOURCE.to_owned(),
            claim: None,
            mode: match trigger.status {
                TriggerStatus::Enabled => FireMode::Run,
                TriggerStatus::Disabled => FireMode::Disabled,
            },
            contact_email: Some(email),
            identities: vec![],
            payload: resolved.values.clone(),
            warnings: Value::Array(resolved.warnings.clone()),
            // A retry after publishing an automation must fire.
            release_key_without_runs: true,
            now_ms,
            key_expired_before_ms: now_ms - self.window_ms,
        };
        let outcome = self.once(org_id, claim, true, async { Ok(write) }).await?;
        self.count(API_SOURCE, &outcome);
        Ok(ApiFired::Fired { resolved, outcome })
    }

    /// Writes the fire `write` builds, once per key: a repeat answers the first fire, also
    /// when it races the first one in this process or in another process on the same
    /// database. `write` runs only when this process holds no answer for the key.
    async fn once(
        &self,
        org_id: &str,
        claim: Option<KeyClaim>,
        release_key_without_runs: bool,
        write: impl Future<Output = Result<FireWrite, PipelineError>>,
    ) -> Result<Outcome, PipelineError> {
        let Some(claim) = claim else {
            let write = write.await?;
            return match self.commit(write).await? {
                Committed::Fresh(outcome, _) => Ok(outcome),
                Committed::Earlier(_) => unreachable!("a fire without a key claims nothing"),
            };
        };
        let request_hash = claim.request_hash.clone();
        let cache_key = dedupe::claim_key(org_id, &claim.scope, &claim.key);
        // The cache's timer runs on the system clock, the window on the server's: an entry
        // whose window has closed by the latter is dropped, and the database decides.
        let now_ms = self.clock.now_ms();
        if let Some(claimed) = self.claims.get(&cache_key).await {
            if claimed.window_closed(now_ms, self.window_ms) {
                self.claims.invalidate(&cache_key).await;
            }
        }
        let mut fresh = None;
        // Concurrent requests for one key in this process wait for the first one's
        // transaction instead of queueing their own; the database decides across processes.
        let entry = self
            .claims
            .entry(cache_key)
            .or_try_insert_with(async {
                let mut write = write.await.map_err(ClaimError::Failed)?;
                write.claim = Some(claim);
                match self.commit(write).await.map_err(ClaimError::Failed)? {
                    Committed::Fresh(outcome, fired) => {
                        let claimed = Claimed::new(&request_hash, &fired);
                        if release_key_without_runs && fired.runs.is_empty() {
                            return Err(ClaimError::Released(outcome));
                        }
                        fresh = Some(outcome);
                        Ok(Arc::new(claimed))
                    }
                    Committed::Earlier(earlier) => Ok(Arc::new(Claimed::new(
                        &earlier.request_hash,
                        &earlier.fired,
                    ))),
                }
            })
            .await;
        match entry {
            Ok(entry) => Ok(match fresh {
                Some(outcome) => outcome,
                None => entry.into_value().answer(&request_hash),
            }),
            Err(e) => match &*e {
                // Requests that waited for this one get its answer too.
                ClaimError::Released(outcome) => Ok(outcome.clone()),
                ClaimError::Failed(e) => Err(e.clone()),
            },
        }
    }

    /// Writes one fire: this request's outcome, or the earlier fire holding its key.
    async fn commit(&self, write: FireWrite) -> Result<Committed, PipelineError> {
        let (mode, instance_id, received_at_ms) =
            (write.mode, write.instance_id.clone(), write.now_ms);
        let fired = |runs| Fired {
            instance_id,
            received_at_ms,
            runs,
        };
        let written = self.store.fire(write).await;
        match written.map_err(|e| PipelineError::Write(Arc::new(e)))? {
            FireWritten::Recorded(FireRecord { outcome, runs }) => {
                let fired = fired(runs);
                let answer = match (outcome, mode) {
                    (FireOutcome::Triggered, _) => Outcome::Triggered(fired.clone()),
                    (FireOutcome::NoPublishedAutomation, _) => {
                        Outcome::NoPublishedAutomation(fired.clone())
                    }
                    (FireOutcome::TriggerDisabled, _) => Outcome::TriggerDisabled(fired.clone()),
                    (FireOutcome::Ignored, FireMode::Ignore(reason)) => Outcome::Ignored(reason),
                    (FireOutcome::Ignored, _) => {
                        unreachable!("only an ignoring fire is recorded as ignored")
                    }
                };
                Ok(Committed::Fresh(answer, fired))
            }
            FireWritten::Existing(earlier) => Ok(Committed::Earlier(Earlier {
                request_hash: earlier.request_hash,
                fired: Fired {
                    instance_id: earlier.instance_id,
                    received_at_ms: earlier.received_at_ms,
                    runs: earlier.record.runs,
                },
            })),
        }
    }

    fn count(&self, source: &str, outcome: &Outcome) {
        let stored = match outcome {
            Outcome::Replay(_) | Outcome::Conflict(_) => {
                self.metrics.duplicates.with_label_values(&[source]).inc();
                return;
            }
            Outcome::Triggered(_) => FireOutcome::Triggered,
            Outcome::NoPublishedAutomation(_) => FireOutcome::NoPublishedAutomation,
            Outcome::TriggerDisabled(_) => FireOutcome::TriggerDisabled,
            Outcome::Ignored(_) => FireOutcome::Ignored,
        };
        self.metrics
            .fires
            .with_label_values(&[source, stored.as_str()])
            .inc();
    }
}

/// A fire written by [`Pipeline::commit`].
enum Committed {
    /// This request's fire: its outcome, and the fire as a repeat would be answered.
    Fresh(Outcome, Fired),
    /// The key was held by an earlier fire.
    Earlier(Earlier),
}

struct Earlier {
    request_hash: String,
    fired: Fired,
}

enum ClaimError {
    Failed(PipelineError),
    /// The fire was written but gave its key back; its answer is not remembered.
    Released(Outcome),
}
