//! The dispatcher: a background task of `firehook serve` that claims due deliveries,
//! signs and sends them with bounded concurrency per endpoint, records each attempt and
//! schedules the next. It talks only to the store and its HTTP client.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::redirect::Policy;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use super::{guard, sign};
use crate::clock::{rfc3339, Clock};
use crate::config::OutboundSettings;
use crate::events::{Events, StreamEventType};
use crate::ids;
use crate::metrics::Metrics;
use crate::store::{AttemptRecord, Claim, Next, Room, Store};

/// Deliveries one process holds (claimed, queued for their endpoint or in flight) at once.
const MAX_HELD: usize = 2048;
/// Deliveries held for one endpoint, as a multiple of its concurrency: enough that each
/// claim, which waits for a commit, brings a batch worth the wait (4 per permit sent 1.5k
/// events/s to one endpoint under inbound load, 16 sent 5.5k/s), few enough that a slow
/// endpoint with a backlog leaves slots to the others.
const HELD_PER_PERMIT: usize = 16;
/// The part of a response body kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;
/// How often the queue depth and oldest pending age are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// The most a retry is delayed beyond its schedule, as a fraction of it, so endpoints
/// that failed together are not retried in lockstep.
const JITTER: f64 = 0.1;

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    metrics: Metrics,
    /// Told of every attempt once it is recorded (`outbound.attempt`).
    events: Events,
    client: reqwest::Client,
    settings: OutboundSettings,
    /// Names this process's claims.
    owner: String,
    held: Mutex<Held>,
    /// Told when enough held deliveries are done that a claim may take more.
    freed: Notify,
}

/// The deliveries this process holds, by subscription.
#[derive(Default)]
struct Held {
    ids: HashSet<String>,
    endpoints: HashMap<String, Endpoint>,
    /// Set when the last claim took every free slot: more may be due.
    refill: bool,
}

/// A subscription's held deliveries and the permits (`max_in_flight_per_endpoint`) they
/// take turns with; dropped when none is held.
struct Endpoint {
    held: usize,
    permits: Arc<Semaphore>,
    /// Set when a claim filled its room: more of it may be due.
    refill: bool,
}

impl Held {
    /// Takes `claim` unless it is held already; a taken claim comes with its endpoint's
    /// permits.
    fn take(&mut self, claim: &Claim, permits: usize) -> Option<Arc<Semaphore>> {
        if !self.ids.insert(claim.id.clone()) {
            return None;
        }
        let endpoint = self
            .endpoints
            .entry(claim.subscription_id.clone())
            .or_insert_with(|| Endpoint {
                held: 0,
                permits: Arc::new(Semaphore::new(permits)),
                refill: false,
            });
        endpoint.held += 1;
        Some(endpoint.permits.clone())
    }

    /// Notes the endpoints to which a claim under `room` gave all the room they had: more
    /// of theirs may be due.
    fn filled(&mut self, room: &Room, claims: &[Claim]) {
        let mut claimed: HashMap<&str, i64> = HashMap::new();
        for claim in claims {
            *claimed.entry(&claim.subscription_id).or_default() += 1;
        }
        for (id, n) in claimed {
            let held = room
                .held
                .iter()
                .find(|(h, _)| h == id)
                .map_or(0, |(_, n)| *n);
            if let Some(endpoint) = self.endpoints.get_mut(id) {
                endpoint.refill |= n >= room.per_endpoint - held;
            }
        }
    }

    /// Lets `claim` go; `true` when it is time to claim again: an endpoint (or the whole
    /// process) that a claim filled is down to half of what it may hold. Claiming at half,
    /// not at every free slot, keeps claims few and large while sends go on.
    fn release(&mut self, claim: &Claim, cap: usize) -> bool {
        self.ids.remove(&claim.id);
        let mut again = false;
        if let Some(endpoint) = self.endpoints.get_mut(&claim.subscription_id) {
            endpoint.held -= 1;
            if endpoint.refill && endpoint.held <= cap / 2 {
                endpoint.refill = false;
                again = true;
            }
            if endpoint.held == 0 {
                self.endpoints.remove(&claim.subscription_id);
            }
        }
        if self.refill && self.ids.len() <= MAX_HELD / 2 {
            self.refill = false;
            again = true;
        }
        again
    }

    /// What a claim may take now.
    fn room(&self, cap: usize) -> Room {
        Room {
            per_endpoint: cap as i64,
            held: self
                .endpoints
                .iter()
                .map(|(id, e)| (id.clone(), e.held as i64))
                .collect(),
        }
    }
}

/// What one attempt came to.
struct Attempt {
    http_status: Option<u16>,
    error: Option<String>,
    excerpt: Option<String>,
    /// The metrics label.
    outcome: &'static str,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        clock: Clock,
        metrics: Metrics,
        events: Events,
        settings: OutboundSettings,
    ) -> anyhow::Result<Dispatcher> {
        let timeout = settings.timeout();
        let mut client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect could lead anywhere, past the address checks.
            .redirect(Policy::none())
            .pool_max_idle_per_host(settings.max_in_flight_per_endpoint)
            .user_agent(concat!("firehook/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_urls {
            client = client.dns_resolver(guard::Resolver::shared());
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                clock,
                metrics,
                events,
                client: client.build()?,
                settings,
                owner: ids::new_id("dsp"),
                held: Mutex::new(Held::default()),
                freed: Notify::new(),
            }),
        })
    }

    /// Runs until aborted: wakes on every commit that wrote events, when a slot frees up
    /// after a full claim, and every `poll_interval_ms` for retries and other processes'
    /// events.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let interval = Duration::from_millis(self.inner.settings.poll_interval_ms.max(10));
            let mut poll = tokio::time::interval(interval);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut stats_at = Instant::now() - STATS_EVERY;
            loop {
                tokio::select! {
                    _ = self.inner.store.outbox_notified() => {}
                    _ = self.inner.freed.notified() => {}
                    _ = poll.tick() => {}
                }
                if stats_at.elapsed() >= STATS_EVERY {
                    stats_at = Instant::now();
                    self.refresh_stats().await;
                }
                if let Err(e) = self.claim().await {
                    tracing::warn!(error = %e, "claiming outbound deliveries failed");
                }
            }
        })
    }

    fn lease_ms(&self) -> i64 {
        // Covers a wait for the endpoint's permit plus the longest send; renewed if short.
        2 * self.timeout_ms() + 1000
    }

    fn timeout_ms(&self) -> i64 {
        self.inner.settings.timeout().as_millis() as i64
    }

    /// Concurrent requests per endpoint.
    fn permits(&self) -> usize {
        self.inner.settings.max_in_flight_per_endpoint.max(1)
    }

    /// What may be held per endpoint: its permits and a queue behind them, so each send
    /// finds the next one waiting.
    fn cap(&self) -> usize {
        self.permits() * HELD_PER_PERMIT
    }

    async fn claim(&self) -> sqlx::Result<()> {
        let permits = self.permits();
        let cap = self.cap();
        let (free, room) = {
            let held = self.inner.held.lock().expect("held");
            (MAX_HELD.saturating_sub(held.ids.len()), held.room(cap))
        };
        if free == 0 {
            return Ok(());
        }
        let now = self.inner.clock.now_ms();
        let claims = self
            .inner
            .store
            .claim_deliveries(
                &self.inner.owner,
                now,
                now + self.lease_ms(),
                free as i64,
                &room,
            )
            .await?;
        let mut held = self.inner.held.lock().expect("held");
        held.refill = claims.len() >= free;
        // Before the sends start, which may release what this claim took.
        for claim in &claims {
            // A delivery renewed in the same millisecond as a claim comes back with it.
            if let Some(permits) = held.take(claim, permits) {
                tokio::spawn(self.clone().deliver(claim.clone(), permits));
            }
        }
        held.filled(&room, &claims);
        Ok(())
    }

    async fn deliver(self, claim: Claim, permits: Arc<Semaphore>) {
        let permit = permits.acquire().await.expect("never closed");
        if let Err(e) = self.deliver_held(&claim, permit).await {
            // The lease runs out and the delivery is claimed again.
            tracing::warn!(delivery = %claim.id, error = %e, "recording an outbound attempt failed");
        }
        let again = self
            .inner
            .held
            .lock()
            .expect("held")
            .release(&claim, self.cap());
        if again {
            self.inner.freed.notify_one();
        }
    }

    /// Sends a held claim while holding one of its endpoint's permits, given back as soon
    /// as the endpoint has answered: recording the attempt waits for a commit, and the
    /// endpoint need not wait for that.
    async fn deliver_held(
        &self,
        claim: &Claim,
        permit: tokio::sync::SemaphorePermit<'_>,
    ) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let now = self.inner.clock.now_ms();
        // A claim that waited for its endpoint keeps its lease for the whole send.
        if claim.lease_until - now < self.timeout_ms() + 1000
            && !store
                .renew_lease(&claim.id, &self.inner.owner, now + self.lease_ms())
                .await?
        {
            return Ok(()); // another process took it over
        }
        let started = Instant::now();
        let attempted_at = self.inner.clock.now_ms();
        let attempt = if claim.deleted_at.is_some() || !claim.enabled {
            Attempt::skipped("the subscription is disabled or deleted")
        } else {
            self.send(claim, attempted_at).await
        };
        drop(permit);
        let latency_ms = started.elapsed().as_millis() as i64;
        let succeeded = attempt.http_status.is_some_and(|s| (200..300).contains(&s));
        let gone = attempt.http_status == Some(410);
        let next = if succeeded {
            let age = (self.inner.clock.now_ms() - claim.created_at).max(0);
            self.inner
                .metrics
                .outbound_delivery_latency
                .observe(age as f64 / 1000.0);
            Next::Succeeded
        } else if gone || attempt.outcome == "skipped" {
            Next::Failed
        } else {
            self.retry_after(claim.retry_step, attempted_at)
        };
        if gone {
            tracing::info!(subscription = %claim.subscription_id, "endpoint answered 410 Gone: subscription disabled");
            store
                .disable_subscription(&claim.org_id, &claim.subscription_id, attempted_at)
                .await?;
        }
        self.inner
            .metrics
            .outbound_attempts
            .with_label_values(&[attempt.outcome])
            .inc();
        let announced = json!({
            "deliveryId": claim.id,
            "subscriptionId": claim.subscription_id,
            "eventId": claim.event_id,
            "attempt": claim.attempts + 1,
            "attemptedAt": rfc3339(attempted_at),
            "httpStatus": attempt.http_status,
            "latencyMs": latency_ms,
            "error": attempt.error,
            "status": match next {
                Next::Succeeded => "succeeded",
                Next::Retry { .. } => "pending",
                Next::Failed => "failed",
            },
        });
        store
            .record_attempt(AttemptRecord {
                delivery_id: claim.id.clone(),
                owner: self.inner.owner.clone(),
                attempt: claim.attempts + 1,
                attempted_at,
                http_status: attempt.http_status.map(i64::from),
                latency_ms,
                error: attempt.error,
                response_excerpt: attempt.excerpt,
                next,
            })
            .await?;
        self.inner
            .events
            .publish(&claim.org_id, StreamEventType::OutboundAttempt, announced);
        Ok(())
    }

    /// The next step of the retry schedule, or `Failed` after its last.
    fn retry_after(&self, step: i64, now: i64) -> Next {
        let schedule = &self.inner.settings.retry_schedule;
        match schedule.get(step.max(0) as usize) {
            Some(secs) => {
                let jitter = 1.0 + rand::thread_rng().gen_range(0.0..=JITTER);
                let wait_ms = (secs.max(0.0) * 1000.0 * jitter) as i64;
                Next::Retry {
                    at: now + wait_ms,
                    step: step + 1,
                }
            }
            None => Next::Failed,
        }
    }

    /// One signed POST of the event's body.
    async fn send(&self, claim: &Claim, now_ms: i64) -> Attempt {
        let url = match guard::parse(&claim.url) {
            Ok(url) => url,
            Err(e) => return Attempt::refused(e),
        };
        if !self.inner.settings.allow_private_urls {
            // Names are vetted by the client's resolver; address literals never reach it.
            if let Err(e) = guard::check_literal(&url) {
                return Attempt::refused(e);
            }
        }
        let timestamp = now_ms.div_euclid(1000);
        // For a day after a rotation messages are signed with the old secret too.
        let previous = claim
            .previous_secret
            .as_deref()
            .filter(|_| claim.previous_expires_at.is_some_and(|at| at > now_ms));
        let signature = sign::signature(
            std::iter::once(claim.secret.as_str()).chain(previous),
            &claim.event_id,
            timestamp,
            claim.body.as_bytes(),
        );
        let sent = self
            .inner
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &claim.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claim.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Attempt::failed(&e),
        };
        let status = response.status().as_u16();
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(EXCERPT_BYTES);
        Attempt {
            http_status: Some(status),
            error: None,
            excerpt: Some(String::from_utf8_lossy(&excerpt).into_owned()),
            outcome: match status {
                200..=299 => "succeeded",
                410 => "gone",
                _ => "http_error",
            },
        }
    }

    async fn refresh_stats(&self) {
        match self.inner.store.outbound_queue().await {
            Ok(stats) => {
                let metrics = &self.inner.metrics;
                metrics.outbound_queue_depth.set(stats.pending);
                let age_ms = stats
                    .oldest_created_at
                    .map_or(0, |at| (self.inner.clock.now_ms() - at).max(0));
                metrics
                    .outbound_oldest_pending_seconds
                    .set(age_ms as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "reading the outbound queue failed"),
        }
    }
}

impl Attempt {
    fn failed(e: &reqwest::Error) -> Attempt {
        // reqwest's message names the URL only; the cause (refused, DNS, TLS) is below it.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Attempt {
            http_status: None,
            error: Some(message),
            excerpt: None,
            outcome: if e.is_timeout() {
                "timeout"
            } else {
                "network_error"
            },
        }
    }

    fn refused(e: guard::UrlError) -> Attempt {
        Attempt {
            http_status: None,
            error: Some(e.to_string()),
            excerpt: None,
            outcome: "refused",
        }
    }

    fn skipped(why: &str) -> Attempt {
        Attempt {
            http_status: None,
            error: Some(why.to_owned()),
            excerpt: None,
            outcome: "skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: usize, subscription: &str) -> Claim {
        Claim {
            id: format!("whd_{id}"),
            org_id: "org_1".into(),
            event_id: format!("evt_{id}"),
            subscription_id: subscription.into(),
            attempts: 0,
            retry_step: 0,
            created_at: 0,
            lease_until: 0,
            body: "{}".into(),
            url: "https://example.com".into(),
            enabled: true,
            deleted_at: None,
            secret: String::new(),
            previous_secret: None,
            previous_expires_at: None,
        }
    }

    #[test]
    fn a_filled_endpoint_claims_again_at_half() {
        let mut held = Held::default();
        let before = Room {
            per_endpoint: 32,
            held: vec![("whs_busy".into(), 2)],
        };
        let claims: Vec<Claim> = (2..32)
            .map(|i| claim(i, "whs_busy"))
            .chain([claim(99, "whs_quiet")])
            .collect();
        for c in (0..2).map(|i| claim(i, "whs_busy")).chain(claims.clone()) {
            assert!(held.take(&c, 8).is_some());
        }
        assert!(held.take(&claim(0, "whs_busy"), 8).is_none());
        held.filled(&before, &claims);
        let mut room = held.room(32).held;
        room.sort();
        assert_eq!(room, [("whs_busy".into(), 32), ("whs_quiet".into(), 1)]);

        // The quiet endpoint was never filled: its deliveries ask for nothing.
        assert!(!held.release(&claim(99, "whs_quiet"), 32));
        for i in 0..15 {
            assert!(!held.release(&claim(i, "whs_busy"), 32));
        }
        assert!(held.release(&claim(15, "whs_busy"), 32), "16 of 32 held");
        assert!(!held.release(&claim(16, "whs_busy"), 32), "asked once");
        assert_eq!(held.room(32).held, [("whs_busy".into(), 15)]);
    }
}
