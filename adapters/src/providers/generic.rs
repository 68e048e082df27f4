//! Generic HMAC senders (seed 003's shape `{id, type, created_at, data: {to, ...}}`): the
//! event is `type` (or `event`), the email is found at the connection's `emailPath` option
//! or at a few usual places.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, at, plausible_email, read_from_body, text};
use crate::{Delivery, MapError};

/// Where the email is looked for when the connection names no `emailPath`.
const EMAIL_PATHS: &[&str] = &[
    "email",
    "data.email",
    "data.to",
    "data.email_address",
    "data.user.email",
];

pub(super) const MAPPING: Mapping = Mapping {
    events: &[],
    fields: &[],
    identity: &[],
    map,
    dedupe_before_parsing: read_from_body,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = text(&input.body, "type")
        .or_else(|| text(&input.body, "event"))
        .map(str::to_owned)
        .ok_or(MapError::MissingEvent("type"))?;
    let mut record = Record::default();
    record.email(find_email(&input.body, input.options));
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_id("id").unwrap_or_else(|| input.body_hash()),
        action: record.into_action(&[]),
    })
}

/// The email at `options.emailPath` (a dotted path) when the connection sets one, else at
/// the first of [`EMAIL_PATHS`] holding one. A list (`"to": ["a@x.com"]`) gives its first item.
pub(super) fn find_email<'a>(body: &'a Value, options: &Value) -> Option<&'a str> {
    match text(options, "emailPath") {
        Some(path) => email_at(body, path),
        None => EMAIL_PATHS.iter().find_map(|path| email_at(body, path)),
    }
}

fn email_at<'a>(body: &'a Value, path: &str) -> Option<&'a str> {
    let value = at(body, path)?;
    let candidate = match value {
        Value::Array(items) => items.first()?.as_str(),
        other => other.as_str(),
    };
    candidate.and_then(plausible_email)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{fired, ignored, map, map_with, record_json};
    use super::super::testing::provider;
    use crate::{MapError, Verified};

    // Seed 003's example delivery.
    const DELIVERED: &str = r#"{
        "id": "evt_xyz789",
        "type": "delivered",
        "created_at": "2024-01-15T10:30:05Z",
        "data": {
            "email_id": "msg_abc123",
            "from": "sender@yourdomain.com",
            "to": "recipient@example.com",
            "subject": "Hello",
            "delivered_at": "2024-01-15T10:30:05Z"
        }
    }"#;

    #[test]
    fn seed_delivery_uses_data_to() {
        let delivery = map(provider("generic"), &[], DELIVERED);
        assert_eq!(delivery.event, "delivered");
        assert_eq!(delivery.provider_event_key, "delivered");
        assert_eq!(delivery.dedupe_id, "evt_xyz789");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "recipient@example.com"})
        );
    }

    #[test]
    fn email_path_option_wins_and_is_not_second_guessed() {
        let options = json!({"emailPath": "data.from"});
        let delivery = map_with(provider("generic"), &[], DELIVERED, &options);
        assert_eq!(
            fired(&delivery).email.as_deref(),
            Some("sender@yourdomain.com")
        );
        let options = json!({"emailPath": "data.reply_to"});
        let delivery = map_with(provider("generic"), &[], DELIVERED, &options);
        assert_eq!(ignored(&delivery), "no_email");
    }

    #[test]
    fn event_field_list_recipients_and_body_hash() {
        let body = r#"{"event": "bounced", "data": {"to": [" a@example.com ", "b@example.com"]}}"#;
        let delivery = map(provider("generic"), &[], body);
        assert_eq!(delivery.event, "bounced");
        assert_eq!(delivery.dedupe_id.len(), 64);
        assert_eq!(fired(&delivery).email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn skips_values_that_are_not_addresses() {
        let body = r#"{"type": "x", "email": "n/a", "data": {"user": {"email": "u@example.com"}}}"#;
        let delivery = map(provider("generic"), &[], body);
        assert_eq!(fired(&delivery).email.as_deref(), Some("u@example.com"));
    }

    #[test]
    fn missing_type_is_an_error() {
        let verified = Verified::for_test(provider("generic"), &[], r#"{"id": 1}"#);
        assert_eq!(
            crate::map(&verified, &json!({}), 0),
            Err(MapError::MissingEvent("type"))
        );
    }
}
