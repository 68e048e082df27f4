//! What the delivery log keeps of a request, and the background writer of rejected and
//! duplicate deliveries.
//!
//! Accepted deliveries are logged by their fire's transaction. Rejected ones and repeats
//! answered from memory have no transaction of their own, add no data a 2xx promises, and
//! arrive fastest when a provider retries or someone floods a receive URL, so they are
//! queued and written in batches. Beyond [`SAMPLED_PER_CONNECTION_PER_SECOND`] a
//! connection's are sampled out, and when the queue is full they are dropped; both are
//! counted (`firehook_deliveries_dropped_total`) rather than slowing the receive path down.

use std::borrow::Cow;
use std::num::NonZeroU32;

use adapters::Headers;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serializer;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{LoggedDelivery, Store};

/// Deliveries waiting to be written; more are dropped.
const QUEUE: usize = 4096;
/// The most deliveries one transaction writes.
const BATCH: usize = 256;
/// Rejected and duplicate deliveries logged per connection per second (and as a burst);
/// the rest of a flood is counted, not written, so it cannot take the database's write
/// capacity from the deliveries that fire.
const SAMPLED_PER_CONNECTION_PER_SECOND: u32 = 100;

/// What is stored instead of a secret-bearing header value.
pub const REDACTED: &str = "[redacted]";

/// Headers that carry a signature, a token or a credential, by exact name.
const SECRET_HEADERS: &[&str] = &[
    "svix-signature",
    "webhook-signature",
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "shopify-hmac-sha256",
    "workos-signature",
    "x-webhook-signature",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// Name fragments that mark a header as secret-bearing whatever the sender calls it.
const SECRET_FRAGMENTS: &[&str] = &["signature", "token", "secret", "auth", "hmac", "cookie"];

/// Whether a header's value is secret-bearing; `name` is lower-case, as [`Headers`] keeps
/// names.
fn is_secret(name: &str) -> bool {
    SECRET_HEADERS.contains(&name) || SECRET_FRAGMENTS.iter().any(|f| name.contains(f))
}

/// The headers as a JSON object, secret-bearing values redacted; repeated headers are
/// joined with `, `. The query string is not kept: URL-token providers carry their secret
/// there.
///
/// Runs for every logged request, so it writes the JSON straight from the borrowed names
/// and values; only a repeated header's joined value is built.
pub fn redacted_headers(headers: &Headers) -> String {
    // A request has a few dozen headers at most: a linear search for a repeated name
    // costs less than hashing every name.
    let mut joined: Vec<(&str, Cow<'_, str>)> = Vec::new();
    for (name, value) in headers.iter() {
        let value = if is_secret(name) { REDACTED } else { value };
        match joined.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, all)) => {
                let all = all.to_mut();
                all.push_str(", ");
                all.push_str(value);
            }
            None => joined.push((name, Cow::Borrowed(value))),
        }
    }
    let mut json = Vec::with_capacity(headers.iter().map(|(n, v)| n.len() + v.len() + 6).sum());
    serde_json::Serializer::new(&mut json)
        .collect_map(joined.iter().map(|(name, value)| (name, value)))
        .expect("strings serialise");
    String::from_utf8(json).expect("serde_json writes UTF-8")
}

/// The queue in front of the background writer.
#[derive(Clone)]
pub struct BackgroundLog {
    queue: mpsc::Sender<LoggedDelivery>,
    metrics: Metrics,
    per_connection: std::sync::Arc<DefaultKeyedRateLimiter<String>>,
}

impl BackgroundLog {
    /// Starts the writer on the current Tokio runtime; it stops when every sender is gone.
    pub fn start(store: Store, metrics: Metrics) -> BackgroundLog {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, metrics.clone(), waiting));
        let rate = NonZeroU32::new(SAMPLED_PER_CONNECTION_PER_SECOND).expect("not zero");
        BackgroundLog {
            queue,
            metrics,
            per_connection: std::sync::Arc::new(RateLimiter::keyed(Quota::per_second(rate))),
        }
    }

    pub fn push(&self, delivery: LoggedDelivery) {
        let connection = &delivery.arrival.connection_id;
        if self.per_connection.check_key(connection).is_err() {
            self.metrics
                .deliveries_dropped
                .with_label_values(&["sampled"])
                .inc();
            return;
        }
        if self.queue.try_send(delivery).is_err() {
            self.metrics
                .deliveries_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }
}

async fn write_batches(
    store: Store,
    metrics: Metrics,
    mut waiting: mpsc::Receiver<LoggedDelivery>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len();
        if let Err(e) = store.log_deliveries(std::mem::take(&mut batch)).await {
            tracing::error!(error = %e, count, "logging rejected and duplicate deliveries failed");
            metrics
                .deliveries_dropped
                .with_label_values(&["write_failed"])
                .inc_by(count as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn secret_bearing_headers_are_redacted() {
        let headers: Headers = [
            ("Svix-Id", "msg_1"),
            ("Svix-Signature", "v1,abc"),
            ("Stripe-Signature", "t=1,v1=ff"),
            ("X-Shopify-Hmac-Sha256", "mac"),
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "session=1"),
            ("X-Custom-Token", "t0k"),
            ("Accept", "a"),
            ("Accept", "b"),
        ]
        .into_iter()
        .collect();
        let stored: Value = serde_json::from_str(&redacted_headers(&headers)).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "svix-id": "msg_1",
                "svix-signature": REDACTED,
                "stripe-signature": REDACTED,
                "x-shopify-hmac-sha256": REDACTED,
                "authorization": REDACTED,
                "cookie": REDACTED,
                "x-custom-token": REDACTED,
                "accept": "a, b",
            })
        );
    }

    #[test]
    fn stored_headers_keep_their_order_and_escape_their_values() {
        let headers: Headers = [
            ("X-Note", "say \"hi\"\u{1}\\"),
            ("Svix-Signature", "v1,a"),
            ("Accept", "a"),
            ("Svix-Signature", "v1,b"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            redacted_headers(&headers),
            r#"{"x-note":"say \"hi\"\u0001\\","svix-signature":"[redacted], [redacted]","accept":"a"}"#
        );
        assert_eq!(redacted_headers(&Headers::new()), "{}");
    }
}
