//! Layered configuration: `config/default.toml` (compiled in), an optional file, then
//! `FIREHOOK__SECTION__KEY` environment variables.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub fire: FireSettings,
    pub retention: RetentionSettings,
    pub delivery_log: DeliveryLogSettings,
    pub bootstrap: BootstrapSettings,
    pub log: LogSettings,
    pub outbound: OutboundSettings,
    pub rate_limit: RateLimitSettings,
    pub metrics: MetricsSettings,
    pub security: SecuritySettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Base64 of 32 bytes; empty: a key file beside a SQLite database.
    pub encryption_key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Empty: `/metrics` is open.
    pub token: SecretString,
    /// Empty: `/metrics` is served on `server.bind`; else only on this address.
    pub bind: String,
}

/// Allowances per minute (a token bucket: the whole allowance may come as one burst).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub per_key_per_minute: u32,
    pub fire_per_key_per_minute: u32,
    pub key_lookups_per_address_per_minute: u32,
    pub failed_verifications_per_connection_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub public_url: String,
    pub client_request_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub keep_alive_secs: u64,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub sqlite_synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

impl SqliteSynchronous {
    /// The value of SQLite's `PRAGMA synchronous`.
    pub fn pragma_value(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct FireSettings {
    pub idempotency_window_secs: u64,
    pub cache_capacity: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub deliveries_days: u64,
    pub interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryLogSettings {
    pub enabled: bool,
}

impl RetentionSettings {
    pub fn deliveries(&self) -> Duration {
        Duration::from_secs(self.deliveries_days * 24 * 3600)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboundSettings {
    pub timeout_s: f64,
    /// Seconds to wait before each retry; the delivery fails after the last one.
    pub retry_schedule: Vec<f64>,
    pub max_in_flight_per_endpoint: usize,
    pub allow_private_urls: bool,
    pub poll_interval_ms: u64,
}

impl OutboundSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s.max(0.001))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    pub api_key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Configuration values that may hold credentials (a database URL with a password, an API
/// key) never print: `Debug` shows `[REDACTED]`.
pub use secrecy::{ExposeSecret, SecretString};

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let settings = builder
            .add_source(
                config::Environment::with_prefix("FIREHOOK")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }
}
