//! Provider webhook adapters: pure code, no database, no HTTP server, no clock of its own.
//!
//! A delivery goes through two steps:
//! 1. [`verify`] checks the provider's signature scheme on the raw bytes and headers, against
//!    every active secret of the connection, with the clock passed in. It is the only way to
//!    obtain a [`Verified`] value.
//! 2. [`map`] turns a [`Verified`] delivery into a [`Delivery`]: the event name, the dedupe id
//!    and the flat contact record `{email, firstName?, lastName?, ..., <provider>_* ids}`.

mod headers;
mod provider;
mod providers;
mod scheme;
mod secret;
mod sign;

pub use headers::Headers;
pub use provider::{EventSpec, FieldKind, FieldSpec, Provider, Scheme, SecretKind};
pub use secret::Secret;
pub use sign::{sign, Signed};

use serde_json::{Map, Value};

/// What arrived on a receive URL, before anything was checked.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub headers: &'a Headers,
    pub body: &'a [u8],
    /// The raw query string of the receive URL (URL-token providers carry the secret there).
    pub query: Option<&'a str>,
}

/// Why a delivery was not accepted as authentic. Every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header `{0}` is missing")]
    MissingHeader(&'static str),
    #[error("the signature header `{0}` is malformed")]
    MalformedHeader(&'static str),
    #[error("no active secret matches the signature")]
    InvalidSignature,
    #[error("the timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    #[error("the connection has no active secret")]
    NoActiveSecret,
}

impl VerifyError {
    /// A short machine-readable reason for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader(_) => "malformed_header",
            VerifyError::InvalidSignature => "invalid_signature",
            VerifyError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            VerifyError::NoActiveSecret => "no_active_secret",
        }
    }
}

/// A delivery whose signature (or token) checked out. Only [`verify`] constructs it, so
/// unverified bytes can never reach [`map`] or the fire pipeline.
#[derive(Debug, Clone)]
pub struct Verified {
    provider: Provider,
    headers: Headers,
    body: Vec<u8>,
    /// Which of the connection's secrets verified it (an index into the slice [`verify`]
    /// was given); `None` for a delivery read back from the log.
    secret: Option<usize>,
}

impl Verified {
    pub fn provider(&self) -> Provider {
        self.provider
    }
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// The index of the secret that verified the delivery, in the slice [`verify`] took.
    pub fn secret_index(&self) -> Option<usize> {
        self.secret
    }

    /// A delivery that [`verify`] accepted on arrival, read back from the server's delivery
    /// log to be mapped again (a replay). Only for bytes and headers that were verified
    /// when they arrived: the signature is not checked again, since its timestamp is stale
    /// by the time of a replay and the log keeps no signature (it is redacted).
    pub fn read_back(provider: Provider, headers: Headers, body: Vec<u8>) -> Verified {
        Verified {
            provider,
            headers,
            body,
            secret: None,
        }
    }

    /// A delivery taken as verified, so mapping tests do not depend on the schemes.
    #[cfg(test)]
    pub(crate) fn for_test(provider: Provider, headers: &[(&str, &str)], body: &str) -> Verified {
        Verified {
            provider,
            headers: headers.iter().copied().collect(),
            body: body.as_bytes().to_vec(),
            secret: None,
        }
    }
}

/// Checks `inbound` against the provider's scheme with each secret in turn; any one
/// verifying is enough. `now_unix` is the current time in seconds since the Unix epoch.
pub fn verify(
    provider: Provider,
    inbound: &Inbound<'_>,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoActiveSecret);
    }
    let scheme = provider.scheme();
    scheme::check(scheme, inbound, secrets, now_unix)?;
    // Which secret verified matters only while several are active (a rotation), so only
    // then is each one tried on its own, which costs a MAC or a comparison per secret.
    let secret = match secrets.len() {
        1 => 0,
        _ => (0..secrets.len())
            .find(|&i| scheme::check(scheme, inbound, &secrets[i..=i], now_unix).is_ok())
            .unwrap_or(0),
    };
    Ok(Verified {
        provider,
        headers: inbound.headers.clone(),
        body: inbound.body.to_vec(),
        secret: Some(secret),
    })
}

/// A verified delivery, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event name used in trigger ids (`user.created`, `orders.paid`, `INITIAL_PURCHASE`).
    pub event: String,
    /// The provider's own spelling of the event (`orders/paid` for Shopify).
    pub provider_event_key: String,
    /// The provider's event id, or a hash of the verified body where it has none.
    pub dedupe_id: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fire the event's trigger for this contact.
    Fire(ContactRecord),
    /// Answer 200 `ignored` with this reason (e.g. Stytch `dashboard.*` events).
    Ignore(SkipReason),
}

/// Why a verified delivery fires nothing. Answered 200 `ignored`, so the provider does not
/// retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Neither the payload nor a provider id names a contact.
    NoEmail,
    /// The payload does not name its event.
    NoEvent,
    /// The payload carries no data object to read.
    NoData,
    /// The provider sends this kind of event, but it is not one that fires.
    EventNotSupported,
    /// A database webhook for a table the connection is not configured for.
    TableNotSupported,
}

impl SkipReason {
    /// The reason as the API and the stored fire name it.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoEmail => "no_email",
            SkipReason::NoEvent => "no_event",
            SkipReason::NoData => "no_data",
            SkipReason::EventNotSupported => "event_not_supported",
            SkipReason::TableNotSupported => "table_not_supported",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The flat record a delivery produces.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    /// The contact's email, when the payload carries one.
    pub email: Option<String>,
    /// When there is no email: a provider id stored earlier on the contact
    /// (e.g. `("clerk_user_id", "user_...")`) through which the contact is resolved.
    pub lookup: Option<(String, String)>,
    /// `{email?, firstName?, lastName?, <event fields>, <provider>_* ids}`. Absent values are
    /// left out, never set to null.
    pub fields: Map<String, Value>,
}

/// Why a verified delivery could not be read. Answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the delivery does not name its event: {0}")]
    MissingEvent(&'static str),
}

/// Maps a verified delivery. `options` is the connection's `options` object (generic and
/// standard receivers read their email path from it); `now_unix` stamps `<provider>_deleted_at`
/// when the payload carries no time of its own.
pub fn map(verified: &Verified, options: &Value, now_unix: i64) -> Result<Delivery, MapError> {
    providers::map(verified, options, now_unix)
}

/// The dedupe id [`map`] would answer, where the provider's id is in a header or is a hash
/// of the body, so that a repeat can be recognised without parsing its body; `None` for
/// providers whose id is inside the body.
pub fn dedupe_id_before_parsing(verified: &Verified) -> Option<String> {
    let mapping = verified.provider().def().mapping;
    (mapping.dedupe_before_parsing)(verified.headers(), verified.body())
}
