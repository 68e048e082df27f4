//! Rate limits (GCRA, from the `governor` crate): requests per API key, API-key lookups
//! per client address, and failed verifications per connection; and the sampled log of
//! rejected deliveries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::error::{ApiError, ErrorType};
use crate::config::RateLimitSettings;

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// How often a limiter forgets keys whose bucket is full again, in checks.
const PRUNE_EVERY: u64 = 4096;
/// At most one log line per connection per interval for rejected deliveries.
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a `/v1` response reports in `X-RateLimit-*`, and `Retry-After` when refused.
#[derive(Debug, Clone, Copy)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
    pub retry_after_secs: Option<u64>,
}

impl RateState {
    /// Adds the headers to a response.
    pub fn apply(&self, res: &mut HttpResponse) {
        let headers = res.headers_mut();
        let mut set = |name: &'static str, value: u64| {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        };
        set("x-ratelimit-limit", self.limit.into());
        set("x-ratelimit-remaining", self.remaining.into());
        set("x-ratelimit-reset", self.reset_secs);
        if let Some(secs) = self.retry_after_secs {
            set("retry-after", secs);
        }
    }

    /// The 429 for a refused request.
    pub fn error(&self) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::RateLimit,
            "RATE_LIMITED",
            format!(
                "rate limit of {} requests per minute exceeded; retry after {} s",
                self.limit,
                self.retry_after_secs.unwrap_or(1)
            ),
        )
    }
}

struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: Limiter<K>,
    per_minute: u32,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(per_minute: u32) -> Keyed<K> {
        let n = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Keyed {
            limiter: RateLimiter::keyed(Quota::per_minute(n)).with_middleware(),
            per_minute: n.get(),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> RateState {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let cell = Duration::from_secs(60) / self.per_minute;
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateState {
                    limit: self.per_minute,
                    remaining,
                    reset_secs: (cell * (self.per_minute - remaining)).as_secs_f64().ceil() as u64,
                    retry_after_secs: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                RateState {
                    limit: self.per_minute,
                    remaining: 0,
                    reset_secs: (cell * self.per_minute).as_secs_f64().ceil() as u64,
                    retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
        }
    }
}

/// Rejections of one connection since its last log line.
struct Tally {
    since: Instant,
    suppressed: u64,
}

pub struct RateLimits {
    api: Keyed<String>,
    fire: Keyed<String>,
    lookups: Keyed<IpAddr>,
    failures: Keyed<String>,
    rejections: Mutex<HashMap<String, Tally>>,
}

/// Which allowance a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Api,
    Fire,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> RateLimits {
        RateLimits {
            api: Keyed::new(settings.per_key_per_minute),
            fire: Keyed::new(settings.fire_per_key_per_minute),
            lookups: Keyed::new(settings.key_lookups_per_address_per_minute),
            failures: Keyed::new(settings.failed_verifications_per_connection_per_minute),
            rejections: Mutex::new(HashMap::new()),
        }
    }

    /// A request made with the API key of this hash.
    pub fn request(&self, route: Route, key_hash: &str) -> RateState {
        let limiter = match route {
            Route::Api => &self.api,
            Route::Fire => &self.fire,
        };
        limiter.check(&key_hash.to_owned())
    }

    /// A key not known to this process is about to be looked up in the database; a flood
    /// of made-up keys from one address is refused before it reaches the database.
    pub fn key_lookup(&self, from: IpAddr) -> RateState {
        self.lookups.check(&from)
    }

    /// A delivery to `connection` failed verification: `Some` (a 429) once the
    /// connection's allowance of failures is spent. Verified deliveries never draw on it,
    /// so a flood of bad signatures leaves the provider's own deliveries passing.
    pub fn failed_verification(&self, connection: &str) -> Option<RateState> {
        let state = self.failures.check(&connection.to_owned());
        state.retry_after_secs.map(|_| state)
    }

    /// Logs a rejected delivery: the first of an interval at once, the rest as a count on
    /// the first line of a later interval, so a flood writes one line per connection per
    /// interval instead of one per request.
    pub fn log_rejection(&self, connection: &str, provider: &str, reason: &str) {
        let mut tally = self.rejections.lock().expect("not poisoned");
        if tally.len() > 10_000 {
            tally.retain(|_, t| t.since.elapsed() < REJECTION_LOG_INTERVAL);
        }
        match tally.get_mut(connection) {
            Some(t) if t.since.elapsed() < REJECTION_LOG_INTERVAL => t.suppressed += 1,
            entry => {
                let suppressed = entry.map_or(0, |t| t.suppressed);
                tracing::warn!(
                    provider,
                    connection,
                    reason,
                    suppressed_since_last_line = suppressed,
                    "delivery rejected"
                );
                tally.insert(
                    connection.to_owned(),
                    Tally {
                        since: Instant::now(),
                        suppressed: 0,
                    },
                );
            }
        }
    }
}
