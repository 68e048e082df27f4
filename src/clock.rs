//! The time the server goes by. Tests pin it to verify fixtures signed at a fixed time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Clone, Default)]
pub struct Clock {
    /// Unix milliseconds to report instead of the system time.
    pinned: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { pinned: None }
    }

    /// A clock that reports `unix_ms` until [`Clock::set_ms`] moves it.
    pub fn pinned(unix_ms: i64) -> Clock {
        Clock {
            pinned: Some(Arc::new(AtomicI64::new(unix_ms))),
        }
    }

    /// Moves a pinned clock; a system clock ignores it.
    pub fn set_ms(&self, unix_ms: i64) {
        if let Some(pinned) = &self.pinned {
            pinned.store(unix_ms, Ordering::Relaxed);
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.pinned {
            Some(pinned) => pinned.load(Ordering::Relaxed),
            None => (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        }
    }
}

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp (`2026-11-22T06:21:45.123Z`).
pub fn rfc3339(unix_ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339).unwrap_or_default()
}
