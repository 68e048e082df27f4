//! The receiver of firehook's outbound webhooks in the outbound scenario: a bare
//! actix-web route in this process that answers 204 and notes how long after the event's
//! `createdAt` each one arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpResponse};
use hdrhistogram::Histogram;

use crate::served::Served;

/// What the sink saw.
pub struct Received {
    pub events: u64,
    /// Event `createdAt` to arrival, in microseconds.
    pub latency: Histogram<u64>,
    pub last_at: Option<Instant>,
}

pub struct Sink {
    served: Served,
    received: Arc<Mutex<Received>>,
}

impl Sink {
    /// Starts the sink with one worker (firehook's dispatcher is the thing measured).
    pub fn start() -> anyhow::Result<Sink> {
        let received = Arc::new(Mutex::new(Received {
            events: 0,
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            last_at: None,
        }));
        let shared = web::Data::from(received.clone());
        let served = Served::start(Some(1), move |cfg| {
            cfg.app_data(shared.clone())
                .route("/hook", web::post().to(receive));
        })?;
        Ok(Sink { served, received })
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    pub fn events(&self) -> u64 {
        self.received.lock().expect("sink lock").events
    }

    /// Waits until no event has arrived for `quiet` (or `limit` has passed).
    pub async fn drained(&self, quiet: Duration, limit: Duration) {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let last = self.received.lock().expect("sink lock").last_at;
            let idle = last.map_or(started.elapsed(), |at| at.elapsed());
            if idle >= quiet || started.elapsed() >= limit {
                return;
            }
        }
    }

    pub async fn stop(self) -> anyhow::Result<Received> {
        self.served.stop().await?;
        // The server's threads may still hold their handle on the counts for a moment.
        let received = self.received.lock().expect("sink lock");
        Ok(Received {
            events: received.events,
            latency: received.latency.clone(),
            last_at: received.last_at,
        })
    }
}

async fn receive(body: web::Bytes, received: web::Data<Mutex<Received>>) -> HttpResponse {
    let created_ms = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|event| event["createdAt"].as_str().and_then(unix_ms));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut r = received.lock().expect("sink lock");
    r.events += 1;
    r.last_at = Some(Instant::now());
    if let Some(created) = created_ms {
        let _ = r.latency.record(((now_ms - created).max(0) * 1000) as u64);
    }
    HttpResponse::NoContent().finish()
}

/// Milliseconds since the epoch of an RFC 3339 UTC time such as
/// `2026-12-02T14:35:01.123Z` (what firehook writes; no offsets).
fn unix_ms(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (hms.next()??, hms.next()??, hms.next()??);
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::unix_ms;

    #[test]
    fn reads_rfc3339_utc() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        // date -u -d 2026-12-02T14:35:01Z +%s -> 1796222101
        assert_eq!(unix_ms("2026-12-02T14:35:01.123Z"), Some(1_796_222_101_123));
        assert_eq!(unix_ms("2026-12-02"), None);
    }
}
