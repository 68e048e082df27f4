//! `GET /v1/events/stream`: Server-Sent Events of what the org's gateway committed.
//!
//! Authenticated like every `/v1` route, by header only: the console reads the stream
//! with `fetch` (which sends headers) rather than `EventSource` (which cannot), so API
//! keys never travel in URLs, where proxies and access logs would keep them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval_at, Instant, Interval};
use utoipa::IntoParams;

use super::auth::Org;
use super::body;
use super::error::{ApiError, ErrorEnvelope};
use super::State;
use crate::events::{Event, StreamEventType, RESUME_WINDOW_MS};

/// How often an idle stream sends a comment, so proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event types to receive (`fire`, `delivery`, `outbound.attempt`);
    /// all when absent.
    #[param(example = "fire,delivery")]
    types: Option<String>,
}

/// Which events a stream carries.
struct Filter {
    org_id: String,
    types: HashSet<StreamEventType>,
}

impl Filter {
    fn wants(&self, event: &Event) -> bool {
        event.org_id == self.org_id && self.types.contains(&event.kind)
    }
}

fn parse_types(raw: Option<&str>) -> Result<HashSet<StreamEventType>, ApiError> {
    let Some(raw) = raw else {
        return Ok([
            StreamEventType::Fire,
            StreamEventType::Delivery,
            StreamEventType::OutboundAttempt,
        ]
        .into());
    };
    raw.split(',')
        .map(|word| {
            word.trim().parse::<StreamEventType>().map_err(|e| {
                ApiError::invalid(
                    "types",
                    format!("{e}; one of: fire, delivery, outbound.attempt"),
                )
            })
        })
        .collect()
}

/// One event in the SSE wire format: `id:`, `event:` and one `data:` line of JSON.
fn frame(event: &Event) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id,
        event.kind,
        event.data.get()
    ))
}

/// Streams the org's events as they are committed. With `Last-Event-ID` (the id of the
/// last event a client got), the events after it that are still held (the last
/// few minutes) come first.
#[utoipa::path(
    get, operation_id = "streamEvents",
    path = "/v1/events/stream",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header,
            description = "Resume after this event id (within the last five minutes)"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`: `id:`, `event:` \
            (the type) and `data:` (JSON) per event, a `: keep-alive` comment every 15 s",
            content_type = "text/event-stream", body = String,
            example = "id: 1764650000000001\nevent: fire\ndata: {\"triggerInstanceId\":\"tin_01J...\",\"outcome\":\"triggered\"}\n\n"),
        (status = 400, description = "Unknown event type or a malformed Last-Event-ID", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn stream(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: StreamQuery = body::query(&req)?;
    let filter = Filter {
        org_id: org.0,
        types: parse_types(q.types.as_deref())?,
    };
    let after = match req.headers().get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "Last-Event-ID must be an event id")
                })?,
        ),
    };
    let subscription = state.pipeline.events().subscribe(after);
    let backlog: Vec<Bytes> = subscription
        .backlog
        .iter()
        .filter(|e| filter.wants(e))
        .map(|e| frame(e))
        .collect();
    // `retry:` tells EventSource clients how soon to reconnect; the comment opens the
    // stream at once, so a client knows it is subscribed.
    let hello = Bytes::from(format!(
        "retry: 3000\n: subscribed; events are kept {} minutes for Last-Event-ID\n\n",
        RESUME_WINDOW_MS / 60_000
    ));
    let head = stream::iter(
        std::iter::once(hello)
            .chain(backlog)
            .map(Ok::<_, actix_web::Error>),
    );
    let live = Live {
        filter,
        receiver: subscription.live,
        keep_alive: interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
    };
    let tail = stream::unfold(live, |mut live| async move {
        let bytes = live.next().await?;
        Some((Ok::<_, actix_web::Error>(bytes), live))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::StreamExt::chain(head, tail)))
}

/// The live part of a stream.
struct Live {
    filter: Filter,
    receiver: tokio::sync::broadcast::Receiver<Arc<Event>>,
    keep_alive: Interval,
}

impl Live {
    /// The next frame: a wanted event or a keep-alive comment. `None` ends the stream:
    /// when the process shuts down, or when this client fell so far behind that events
    /// were dropped for it (it reconnects with `Last-Event-ID` and resumes from the ring).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(event) if self.filter.wants(&event) => return Some(frame(&event)),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }
}
