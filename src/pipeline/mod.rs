//! The fire pipeline. Its entry points share everything after the source-specific part:
//! - [`Pipeline::deliver`]: a request on a connection's receive URL (verify, map, resolve
//!   the contact through the record or a stored provider id), and [`Pipeline::refuse`] for
//!   one refused before its body was read;
//! - [`Pipeline::replay`]: a logged delivery, verified on arrival, run again;
//! - [`Pipeline::fire_api`]: `POST /v1/automations/triggers/{id}/fire` (validate the payload
//!   against the trigger's schema).
//!
//! Both then deduplicate by key (an in-process cache in front of the database, which
//! decides), write the fire, the contact and one run per published automation in one
//! transaction, count it, and answer with a typed [`Outcome`]. Every receive-URL request
//! of a known connection is logged ([`log`]): with its fire, or as a duplicate or a
//! rejection.

mod announce;
pub mod canonical;
pub mod contact;
mod dedupe;
pub mod graph;
pub mod log;
mod outcome;
pub mod schema;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use adapters::{Action, ContactRecord, Delivery, Headers, Inbound, SkipReason};
use serde_json::{json, Map, Value};

use crate::clock::Clock;
use crate::domain::{
    integration_trigger_id, DeliveryStatus, Email, FireOutcome, IgnoreReason, TriggerStatus,
};
use crate::events::{Events, StreamEventType};
use crate::ids;
use crate::metrics::Metrics;
use crate::store::{
    duplicate_of, Arrival, DeliveryDetail, FireMode, FireRecord, FireWrite, FireWritten, KeyClaim,
    LiveConnection, LoggedDelivery, PackedBody, RejectedDelivery, Store, Verdict,
};
use dedupe::{Claimed, Claims};
use log::BackgroundLog;
pub use outcome::{ApiFire, ApiFired, Delivered, Fired, Outcome, PipelineError, Rejection};

const NO_EMAIL: IgnoreReason = IgnoreReason::Delivery(SkipReason::NoEmail);

/// Where a fire came from, as metrics and trigger instances name it.
const API_SOURCE: &str = "api";

/// How long keys are held: API Idempotency-Keys for the idempotency window; provider
/// event ids for that window or the delivery log's retention, whichever is longer, so a
/// logged delivery is answered `duplicate` for as long as it can be replayed.
#[derive(Debug, Clone, Copy)]
pub struct KeyWindows {
    pub api: Duration,
    pub deliveries: Duration,
}

impl KeyWindows {
    pub fn new(idempotency: Duration, delivery_retention: Duration) -> KeyWindows {
        KeyWindows {
            api: idempotency,
            deliveries: idempotency.max(delivery_retention),
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    clock: Clock,
    metrics: Metrics,
    claims: Claims,
    background_log: BackgroundLog,
    /// `delivery_log.enabled`: off, receive-URL requests are answered and fired but not
    /// logged.
    log_deliveries: bool,
    /// Secrets whose `lastVerifiedAt` was written in the last minute.
    noted_secrets: moka::future::Cache<String, ()>,
    window_ms: i64,
    delivery_window_ms: i64,
    events: Events,
}

/// How stale a secret's `lastVerifiedAt` may be: it is written at most once a minute per
/// secret and process, so it costs nothing on the fire path.
const SECRET_NOTE_INTERVAL: Duration = Duration::from_secs(60);

impl Pipeline {
    /// Builds the pipeline and starts the writer of rejected deliveries on the current
    /// Tokio runtime.
    pub fn new(
        store: Store,
        clock: Clock,
        metrics: Metrics,
        windows: KeyWindows,
        cache_capacity: u64,
        log_deliveries: bool,
    ) -> Pipeline {
        let window_ms = windows.api.as_millis() as i64;
        Pipeline {
            claims: dedupe::claims(clock.clone(), window_ms, cache_capacity),
            background_log: BackgroundLog::start(store.clone(), metrics.clone()),
            log_deliveries,
            events: Events::new(clock.clone()),
            noted_secrets: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SECRET_NOTE_INTERVAL)
                .build(),
            store,
            clock,
            metrics,
            window_ms,
            delivery_window_ms: windows.deliveries.as_millis() as i64,
        }
    }

    /// The bus this pipeline tells what it committed.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Verifies and maps a receive-URL request on `connection`, then fires the event's
    /// trigger once per provider event id. The request is logged whatever it comes to.
    pub async fn deliver(
        &self,
        connection: &LiveConnection,
        inbound: &Inbound<'_>,
    ) -> Result<Delivered, PipelineError> {
        let provider = connection.provider;
        let now_ms = self.clock.now_ms();
        let now_unix = now_ms.div_euclid(1000);
        let headers = self.logged_headers(inbound.headers);
        let body_bytes = inbound.body.len();
        let verified = match adapters::verify(provider, inbound, &connection.secrets, now_unix) {
            Ok(verified) => {
                self.note_verified(connection, &verified, now_ms).await;
                verified
            }
            Err(e) => {
                // Logged by the caller, sampled: a flood must not write a line per request.
                self.metrics
                    .verification_failures
                    .with_label_values(&[provider.slug(), e.reason()])
                    .inc();
                let rejection = Rejection::Signature(e);
                return Ok(self
                    .reject(connection, headers, body_bytes, rejection)
                    .await);
            }
        };
        let arrival = arrival(connection, now_ms, headers, body_bytes);
        self.fire_verified(connection, &verified, arrival, None)
            .await
    }

    /// Logs a request refused before the pipeline read it (a disabled connection, a body
    /// over the limit or cut short).
    pub async fn refuse(
        &self,
        connection: &LiveConnection,
        headers: &Headers,
        body_bytes: usize,
        rejection: Rejection,
    ) -> Delivered {
        let headers = self.logged_headers(headers);
        self.reject(connection, headers, body_bytes, rejection)
            .await
    }

    /// Runs a logged verified delivery through the pipeline again, as it would run now,
    /// without checking its signature again (it was checked on arrival, and its timestamp
    /// is stale by now). A delivery whose event id fired answers `duplicate` unless
    /// `force`, which fires it once more under a key of its own. The replay is logged.
    pub async fn replay(
        &self,
        connection: &LiveConnection,
        stored: &DeliveryDetail,
        body: &[u8],
        force: bool,
    ) -> Result<Delivered, PipelineError> {
        let headers: Headers = stored
            .headers
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
            .collect();
        let verified = adapters::Verified::read_back(connection.provider, headers, body.to_vec());
        let arrival = Arrival {
            replay_of: Some(stored.row.id.clone()),
            ..arrival(
                connection,
                self.clock.now_ms(),
                stored.headers.to_string(),
                body.len(),
            )
        };
        let replay = Replay { force };
        self.fire_verified(connection, &verified, arrival, Some(replay))
            .await
    }

    /// Maps a verified delivery and fires its trigger; `arrival` is logged with the outcome.
    async fn fire_verified(
        &self,
        connection: &LiveConnection,
        verified: &adapters::Verified,
        mut arrival: Arrival,
        replay: Option<Replay>,
    ) -> Result<Delivered, PipelineError> {
        let provider = connection.provider;
        let now_ms = arrival.received_at_ms;
        if replay.is_none() {
            if let Some(claimed) = self.remembered(connection, verified).await {
                return Ok(self.remembered_repeat(connection, verified, arrival, &claimed));
            }
        }
        let delivery = match adapters::map(verified, &connection.options, now_ms.div_euclid(1000)) {
            Ok(delivery) => delivery,
            Err(e) => {
                let rejection = Rejection::Unreadable(e);
                return Ok(self.log_rejection(connection, arrival, rejection).await);
            }
        };

        let row = &connection.row;
        let trigger_id = integration_trigger_id(provider, &row.id, &delivery.event);
        let delivery_id = arrival.id.clone();
        self.label(&mut arrival, verified, &delivery.event, &trigger_id);
        let mut claim = KeyClaim {
            scope: row.id.clone(),
            key: delivery.dedupe_id.clone(),
            // A repeat of an event id is a duplicate whatever its body.
            request_hash: String::new(),
            reclaim_unfired: false,
        };
        let write = self.delivery_write(connection, &delivery, &trigger_id, now_ms);
        let outcome = match replay {
            None => {
                let mut arrival = self.log_deliveries.then_some(arrival);
                let outcome = self
                    .once(
                        &row.org_id,
                        &delivery.event,
                        Some(claim),
                        false,
                        &mut arrival,
                        write,
                    )
                    .await?;
                if let Some(arrival) = arrival {
                    self.log_repeat(arrival, &outcome);
                }
                outcome
            }
            Some(Replay { force }) => {
                if force {
                    claim.key = delivery_id.clone();
                } else {
                    claim.reclaim_unfired = true;
                }
                let cache_key = dedupe::claim_key(&row.org_id, &claim.scope, &claim.key);
                let mut write = write.await?;
                write.claim = Some(claim);
                write.delivery = Some(arrival);
                let outcome = match self.commit(write).await? {
                    Committed::Fresh(outcome, _) => outcome,
                    Committed::Earlier(earlier) => Outcome::Replay(earlier.fired),
                };
                // The key may have a new holder: let the database answer its next repeat.
                self.claims.invalidate(&cache_key).await;
                outcome
            }
        };
        Ok(self.answered(
            connection,
            now_ms,
            delivery_id,
            delivery.event,
            trigger_id,
            outcome,
        ))
    }

    /// Sets what the log keeps of a mapped delivery: its event, trigger and (with the log
    /// on) its body.
    fn label(
        &self,
        arrival: &mut Arrival,
        verified: &adapters::Verified,
        event: &str,
        trigger_id: &str,
    ) {
        arrival.event = Some(event.to_owned());
        arrival.trigger_id = Some(trigger_id.to_owned());
        if self.log_deliveries {
            arrival.body = Some(PackedBody::as_received(verified.body().to_vec()));
        }
    }

    /// Logs a delivery answered without a write of its own (a repeat the cache knew, or
    /// one that waited for the first) as a duplicate, in the background like a rejection,
    /// since it adds no data a 2xx promises. Any other outcome was logged by its fire.
    fn log_repeat(&self, arrival: Arrival, outcome: &Outcome) {
        if let Outcome::Replay(earlier) | Outcome::Conflict(earlier) = outcome {
            self.background_log.push(LoggedDelivery {
                arrival,
                verdict: duplicate_of(&earlier.instance_id),
            });
        }
    }

    /// Counts an answered delivery, tells the events stream, and answers it.
    fn answered(
        &self,
        connection: &LiveConnection,
        now_ms: i64,
        delivery_id: String,
        event: String,
        trigger_id: String,
        outcome: Outcome,
    ) -> Delivered {
        self.count(connection.provider.slug(), &outcome);
        let data = announce::answered(connection, now_ms, &delivery_id, &event, &outcome);
        self.events
            .publish(&connection.row.org_id, StreamEventType::Delivery, data);
        Delivered::Answered {
            delivery_id,
            event,
            trigger_id,
            outcome,
        }
    }

    /// The earlier fire of a delivery's provider event id, when this process remembers it
    /// and the id is known without parsing the body (see
    /// `adapters::dedupe_id_before_parsing`): a provider's retries, and a flood of one
    /// captured request, are answered without the cost of mapping them.
    async fn remembered(
        &self,
        connection: &LiveConnection,
        verified: &adapters::Verified,
    ) -> Option<Arc<Claimed>> {
        let key = adapters::dedupe_id_before_parsing(verified)?;
        let row = &connection.row;
        let claimed = self
            .claims
            .get(&dedupe::claim_key(&row.org_id, &row.id, &key))
            .await?;
        // A closed window is left to the full path, which forgets the entry.
        (!claimed.window_closed(self.clock.now_ms(), self.window_ms)).then_some(claimed)
    }

    /// Answers a repeat found by [`remembered`](Self::remembered) as the full path answers
    /// a repeat the cache knew: `duplicate`, logged in the background.
    fn remembered_repeat(
        &self,
        connection: &LiveConnection,
        verified: &adapters::Verified,
        mut arrival: Arrival,
        claimed: &Claimed,
    ) -> Delivered {
        let event = claimed.event().to_owned();
        let trigger_id = integration_trigger_id(connection.provider, &connection.row.id, &event);
        // Receive-URL keys are claimed without a request hash.
        let outcome = claimed.answer("");
        let (delivery_id, now_ms) = (arrival.id.clone(), arrival.received_at_ms);
        if self.log_deliveries {
            self.label(&mut arrival, verified, &event, &trigger_id);
            self.log_repeat(arrival, &outcome);
        }
        self.answered(connection, now_ms, delivery_id, event, trigger_id, outcome)
    }

    /// Records which secret verified a delivery, once a minute per secret. A failure is
    /// logged: the delivery itself is not at stake.
    async fn note_verified(
        &self,
        connection: &LiveConnection,
        verified: &adapters::Verified,
        now_ms: i64,
    ) {
        let Some(secret_id) = verified
            .secret_index()
            .and_then(|i| connection.secret_ids.get(i))
        else {
            return;
        };
        if self.noted_secrets.contains_key(secret_id) {
            return;
        }
        self.noted_secrets.insert(secret_id.clone(), ()).await;
        if let Err(e) = self.store.mark_secret_verified(secret_id, now_ms).await {
            tracing::warn!(error = %e, secret = %secret_id, "noting a secret's last use failed");
        }
    }

    /// The request's headers as the log keeps them; nothing when the log is off.
    fn logged_headers(&self, headers: &Headers) -> String {
        if self.log_deliveries {
            log::redacted_headers(headers)
        } else {
            String::new()
        }
    }

    /// Logs a rejected request and answers it.
    async fn reject(
        &self,
        connection: &LiveConnection,
        headers: String,
        body_bytes: usize,
        rejection: Rejection,
    ) -> Delivered {
        let arrival = arrival(connection, self.clock.now_ms(), headers, body_bytes);
        self.log_rejection(connection, arrival, rejection).await
    }

    /// Writes a rejected request to the delivery log (in the background, see [`log`]) and
    /// tells the org's webhook subscribers (`delivery.rejected`, under the log row's id).
    /// The request is refused either way, so a failure to record it is logged, not answered.
    async fn log_rejection(
        &self,
        connection: &LiveConnection,
        arrival: Arrival,
        rejection: Rejection,
    ) -> Delivered {
        let reported = RejectedDelivery {
            org_id: &connection.row.org_id,
            delivery_id: &arrival.id,
            connection_id: &connection.row.id,
            provider: connection.provider.slug(),
            reason: rejection.reason(),
            now_ms: arrival.received_at_ms,
        };
        if let Err(e) = self.store.record_rejected_delivery(&reported).await {
            tracing::error!(
                error = format!("{e:#}"),
                "recording delivery.rejected failed"
            );
        }
        let logged = rejected(arrival, &rejection);
        let data = announce::rejected(&logged);
        self.events
            .publish(&connection.row.org_id, StreamEventType::Delivery, data);
        if self.log_deliveries {
            self.background_log.push(logged);
        }
        Delivered::Rejected(rejection)
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
            key_expired_before_ms: now_ms - self.delivery_window_ms,
            delivery: None,
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
            reclaim_unfired: false,
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
            delivery: None,
        };
        let outcome = self
            .once(org_id, "", claim, true, &mut None, async { Ok(write) })
            .await?;
        self.count(API_SOURCE, &outcome);
        Ok(ApiFired::Fired { resolved, outcome })
    }

    /// Writes the fire `write` builds, once per key: a repeat answers the first fire, also
    /// when it races the first one in this process or in another process on the same
    /// database. `write` runs only when this process holds no answer for the key; then it
    /// takes `delivery` along, so a `delivery` left in place was not logged.
    async fn once(
        &self,
        org_id: &str,
        event: &str,
        claim: Option<KeyClaim>,
        release_key_without_runs: bool,
        delivery: &mut Option<Arrival>,
        write: impl Future<Output = Result<FireWrite, PipelineError>>,
    ) -> Result<Outcome, PipelineError> {
        let Some(claim) = claim else {
            let mut write = write.await?;
            write.delivery = delivery.take();
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
                write.delivery = delivery.take();
                match self.commit(write).await.map_err(ClaimError::Failed)? {
                    Committed::Fresh(outcome, fired) => {
                        let claimed = Claimed::new(&request_hash, event, &fired);
                        if release_key_without_runs && fired.runs.is_empty() {
                            return Err(ClaimError::Released(outcome));
                        }
                        fresh = Some(outcome);
                        Ok(Arc::new(claimed))
                    }
                    Committed::Earlier(earlier) => Ok(Arc::new(Claimed::new(
                        &earlier.request_hash,
                        event,
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
        let note = announce::FireNote::of(&write);
        let written = self.store.fire(write).await;
        match written.map_err(|e| PipelineError::Write(Arc::new(e)))? {
            FireWritten::Recorded(FireRecord { outcome, runs }) => {
                let fired = fired(runs);
                let data = note.data(outcome, &fired);
                self.events
                    .publish(&note.org_id, StreamEventType::Fire, data);
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

/// A replay of a logged delivery.
#[derive(Debug, Clone, Copy)]
struct Replay {
    force: bool,
}

/// The log entry of a rejected request.
fn rejected(arrival: Arrival, rejection: &Rejection) -> LoggedDelivery {
    LoggedDelivery {
        arrival,
        verdict: Verdict {
            status: DeliveryStatus::Rejected,
            reason: Some(rejection.reason().to_owned()),
            http_status: rejection.http_status(),
            trigger_instance_id: None,
            run_ids: vec![],
        },
    }
}

/// The log record of a request on `connection`, before it is known what it came to.
fn arrival(
    connection: &LiveConnection,
    received_at_ms: i64,
    headers: String,
    body_bytes: usize,
) -> Arrival {
    Arrival {
        id: ids::new_ordered_id(ids::DELIVERY),
        org_id: connection.row.org_id.clone(),
        connection_id: connection.row.id.clone(),
        provider: connection.provider.slug().to_owned(),
        event: None,
        received_at_ms,
        trigger_id: None,
        headers,
        body_bytes: body_bytes as i64,
        body: None,
        replay_of: None,
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
