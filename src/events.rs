//! The events bus: what happened (fires, receive-URL deliveries, outbound attempts), told
//! in-process after it was committed, for the `/v1/events/stream` SSE feed and the
//! console's live views.
//!
//! A tokio broadcast channel carries events to live subscribers; a bounded ring keeps the
//! last few minutes so a client that reconnects with `Last-Event-ID` misses nothing.
//! Events live in this process only: they are a view, never the record (the database is).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::{to_raw_value, RawValue};
use tokio::sync::broadcast;

use crate::clock::Clock;

/// How long the ring keeps events for resuming.
pub const RESUME_WINDOW_MS: i64 = 5 * 60 * 1000;
/// The most events the ring keeps, whatever their age. Each holds its JSON (about 1 KB
/// for a delivery), and under load the ring is full long before the resume window ends,
/// so it is sized by memory: at thousands of events a second a console that was away
/// longer than the ring reaches reloads its lists instead.
const RING_CAPACITY: usize = 2_000;
/// Events a slow subscriber may fall behind before its stream ends (it resumes from the
/// ring when it reconnects).
const CHANNEL_CAPACITY: usize = 1024;

pub use crate::domain::StreamEventType;

/// One event as streamed: `id` orders events within this process.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(skip)]
    pub id: u64,
    #[serde(skip)]
    pub org_id: String,
    #[serde(skip)]
    pub kind: StreamEventType,
    /// The event's JSON, serialised once when it is published, however many watch.
    pub data: Box<RawValue>,
}

#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    sender: broadcast::Sender<Arc<Event>>,
    /// The recent events (with when they were published) and the next id. Publishing
    /// holds this lock while it sends, so a subscriber that reads the ring and subscribes
    /// under it sees every event once: either in the ring or on its receiver.
    ring: Mutex<Ring>,
}

struct Ring {
    next_id: u64,
    events: VecDeque<(i64, Arc<Event>)>,
}

/// A subscription: the events after `Last-Event-ID` still in the ring, then the live ones.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Events {
    pub fn new(clock: Clock) -> Events {
        // Ids start at the start time in microseconds, so the ids of a restarted process
        // are above those a client may hold from the previous one.
        let next_id = u64::try_from(clock.now_ms()).unwrap_or(0) * 1000 + 1;
        Events {
            inner: Arc::new(Inner {
                clock,
                sender: broadcast::channel(CHANNEL_CAPACITY).0,
                ring: Mutex::new(Ring {
                    next_id,
                    events: VecDeque::new(),
                }),
            }),
        }
    }

    /// Tells subscribers of `org_id` about `data`. Call it after the fact is committed.
    pub fn publish(&self, org_id: &str, kind: StreamEventType, data: impl Serialize) {
        let data = match to_raw_value(&data) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, %kind, "an event did not serialise; not published");
                return;
            }
        };
        let now_ms = self.inner.clock.now_ms();
        let mut ring = self.inner.ring.lock().expect("events ring poisoned");
        let event = Arc::new(Event {
            id: ring.next_id,
            org_id: org_id.to_owned(),
            kind,
            data,
        });
        ring.next_id += 1;
        while ring.events.len() >= RING_CAPACITY
            || ring
                .events
                .front()
                .is_some_and(|(at, _)| *at < now_ms - RESUME_WINDOW_MS)
        {
            ring.events.pop_front();
        }
        ring.events.push_back((now_ms, event.clone()));
        // No receiver is not an error: nobody is watching.
        let _ = self.inner.sender.send(event);
    }

    /// Subscribes; with `after`, first the ring's events with a greater id.
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.inner.ring.lock().expect("events ring poisoned");
        let backlog = match after {
            Some(after) => ring
                .events
                .iter()
                .filter(|(_, e)| e.id > after)
                .map(|(_, e)| e.clone())
                .collect(),
            None => Vec::new(),
        };
        Subscription {
            backlog,
            live: self.inner.sender.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resuming_returns_the_events_after_the_id_then_the_live_ones() {
        let clock = Clock::pinned(1_000_000);
        let events = Events::new(clock.clone());
        for i in 0..3 {
            events.publish("org_a", StreamEventType::Fire, json!({ "n": i }));
        }
        let first = events.subscribe(Some(0)).backlog;
        assert_eq!(first.len(), 3);
        let mut sub = events.subscribe(Some(first[0].id));
        assert_eq!(
            sub.backlog.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![first[1].id, first[2].id]
        );
        events.publish("org_a", StreamEventType::Delivery, json!({}));
        let live = sub.live.try_recv().unwrap();
        assert_eq!(live.id, first[2].id + 1);
        assert_eq!(live.kind, StreamEventType::Delivery);
    }

    #[test]
    fn the_ring_forgets_events_older_than_the_window() {
        let clock = Clock::pinned(1_000_000);
        let events = Events::new(clock.clone());
        events.publish("org_a", StreamEventType::Fire, json!({ "old": true }));
        clock.set_ms(1_000_000 + RESUME_WINDOW_MS + 1);
        events.publish("org_a", StreamEventType::Fire, json!({ "old": false }));
        let backlog = events.subscribe(Some(0)).backlog;
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].data.get(), r#"{"old":false}"#);
    }
}
