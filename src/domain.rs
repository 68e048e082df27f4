//! Values parsed once at the edge and the closed vocabularies the pipeline, the store and
//! the API share. A stored value that is not one of a vocabulary's words fails to decode
//! instead of turning into a default.

use std::fmt;
use std::str::FromStr;

use adapters::SkipReason;
use serde::{Deserialize, Serialize};

/// A word that is not in a vocabulary: names the vocabulary and the word.
#[derive(Debug, thiserror::Error)]
#[error("`{word}` is not a {vocabulary}")]
pub struct UnknownWord {
    vocabulary: &'static str,
    word: String,
}

/// A closed vocabulary stored as text: its words, parsed back strictly.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { vocabulary: $what, word: word.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;
            fn try_from(word: String) -> Result<Self, UnknownWord> {
                word.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Written out: the derive does not see renames passed through this macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($word),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

vocabulary!(
    /// Whether a trigger's fires start runs.
    TriggerStatus, "trigger status" {
        Enabled => "enabled",
        /// Fires are recorded and start no runs.
        Disabled => "disabled",
    }
);

vocabulary!(
    /// Where a run is. firehook queues runs; executing them is the automations' business.
    RunStatus, "run status" {
        Queued => "queued",
    }
);

vocabulary!(
    /// What a recorded fire came to, as stored on its trigger instance.
    FireOutcome, "fire outcome" {
        /// Runs were started.
        Triggered => "triggered",
        /// The contact was upserted; no published automation is bound to the trigger.
        NoPublishedAutomation => "no_published_automation",
        /// The trigger is disabled: recorded, nothing else.
        TriggerDisabled => "trigger_disabled",
        /// Recorded with a reason; nothing upserted.
        Ignored => "ignored",
    }
);

vocabulary!(
    /// What an event on the events stream is about (`?types=`, the SSE `event:` field).
    StreamEventType, "stream event type" {
        /// A recorded fire (a trigger instance), from the API or a receive URL.
        Fire => "fire",
        /// A request on a receive URL, rejected ones included.
        Delivery => "delivery",
        /// One attempt to send an outbound webhook message.
        OutboundAttempt => "outbound.attempt",
    }
);

/// Why a verified delivery starts nothing (answered 200 `ignored`, so the provider does
/// not retry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// The adapter found nothing to fire in the payload.
    Delivery(SkipReason),
    /// The connection provisions no trigger for this event.
    EventNotMapped,
    TriggerDisabled,
    /// The provider id the payload carries belongs to no known contact.
    ContactNotFound,
    /// The mapped record does not fit the trigger's payload schema.
    PayloadMismatch,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Delivery(skip) => skip.as_str(),
            IgnoreReason::EventNotMapped => "event_not_mapped",
            IgnoreReason::TriggerDisabled => "trigger_disabled",
            IgnoreReason::ContactNotFound => "contact_not_found",
            IgnoreReason::PayloadMismatch => "payload_mismatch",
        }
    }
}

impl Serialize for IgnoreReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

vocabulary!(
    /// What a receive-URL request came to, as the delivery log shows it.
    DeliveryStatus, "delivery status" {
        Triggered => "triggered",
        NoPublishedAutomation => "no_published_automation",
        /// Verified, and started nothing (the reason says why).
        Ignored => "ignored",
        /// A repeat of a provider event id that was processed before.
        Duplicate => "duplicate",
        /// Answered 4xx: not verified, unreadable, too large, or the connection is disabled.
        Rejected => "rejected",
    }
);

vocabulary!(
    /// What an outbound webhook reports.
    EventType, "event type" {
        TriggerFired => "trigger.fired",
        RunQueued => "run.queued",
        ContactCreated => "contact.created",
        ContactUpdated => "contact.updated",
        DeliveryRejected => "delivery.rejected",
    }
);

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::TriggerFired,
        EventType::RunQueued,
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::DeliveryRejected,
    ];
}

vocabulary!(
    /// Where an outbound delivery (one event to one subscription) is.
    OutboundStatus, "outbound delivery status" {
        /// Not yet answered 2xx; an attempt is due now or later.
        Pending => "pending",
        Succeeded => "succeeded",
        /// Every retry failed, or the subscription is gone.
        Failed => "failed",
    }
);

/// The id of the trigger a connection provisions for one of its provider's events:
/// `<provider>:<connection id>:<event>`.
pub fn integration_trigger_id(
    provider: adapters::Provider,
    connection_id: &str,
    event: &str,
) -> String {
    format!("{}:{connection_id}:{event}", provider.slug())
}

/// A contact's key: trimmed and lower-cased, shaped like an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    /// `None` when `raw` does not look like an address.
    pub fn parse(raw: &str) -> Option<Email> {
        let email = raw.trim().to_lowercase();
        let (local, domain) = email.split_once('@')?;
        let plausible = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && email.len() <= Email::MAX_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        plausible.then_some(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's `Idempotency-Key`: 1 to 100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Option<IdempotencyKey> {
        let fits = !raw.trim().is_empty() && raw.chars().count() <= IdempotencyKey::MAX_LEN;
        fits.then(|| IdempotencyKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        let email = Email::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "jane.doe@example.com");
        for bad in [
            "no-at-sign",
            "a@b@c",
            "@example.com",
            "a@",
            "a b@c.d",
            "a\u{0}@b.co",
            "a\u{7}@b.co",
        ] {
            assert_eq!(Email::parse(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(Email::MAX_LEN));
        assert_eq!(Email::parse(&long), None);
    }

    #[test]
    fn idempotency_keys_are_one_to_a_hundred_characters() {
        assert!(IdempotencyKey::parse("k").is_some());
        assert!(IdempotencyKey::parse(&"é".repeat(100)).is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(101)).is_none());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("   ").is_none());
    }

    #[test]
    fn stored_words_parse_back_and_strangers_fail() {
        for outcome in [
            FireOutcome::Triggered,
            FireOutcome::NoPublishedAutomation,
            FireOutcome::TriggerDisabled,
            FireOutcome::Ignored,
        ] {
            assert_eq!(outcome.as_str().parse::<FireOutcome>().unwrap(), outcome);
        }
        let err = "exploded".parse::<FireOutcome>().unwrap_err();
        assert_eq!(err.to_string(), "`exploded` is not a fire outcome");
        assert!("Enabled".parse::<TriggerStatus>().is_err());
        assert_eq!(
            serde_json::to_value(IgnoreReason::Delivery(SkipReason::NoEmail)).unwrap(),
            "no_email"
        );
        assert_eq!(IgnoreReason::EventNotMapped.to_string(), "event_not_mapped");
    }
}
