//! Standard Webhooks senders: `{type, timestamp, data}`, the message id in the
//! `webhook-id` header. The email is found as for generic senders.

use super::{ConnectionOptions, Input, Mapping, Record, generic, svix_id_or_body_hash};
use crate::{Delivery, MapError};

pub(super) const MAPPING: Mapping = Mapping {
    events: &[],
    fields: &[],
    identity: &[],
    map,
    dedupe_before_parsing: |headers, raw| Some(svix_id_or_body_hash(headers, raw)),
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("type")?;
    let mut record = Record::default();
    record.email(generic::find_email(&input.body, input.options));
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: svix_id_or_body_hash(input.headers, input.raw),
        action: record.into_action(&[]),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{ignored, map, map_with, record_json};
    use super::super::testing::provider;

    const INVOICE_PAID: &str = r#"{"type": "invoice.paid", "timestamp": "2024-01-15T10:30:05Z",
        "data": {"invoice_id": "inv_1", "customer": {"email": "c@example.com"}}}"#;

    #[test]
    fn webhook_id_and_email_path() {
        let options = json!({"emailPath": "data.customer.email"});
        let delivery = map_with(
            provider("standard"),
            &[("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")],
            INVOICE_PAID,
            &options,
        );
        assert_eq!(delivery.event, "invoice.paid");
        assert_eq!(delivery.dedupe_id, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(record_json(&delivery), json!({"email": "c@example.com"}));
    }

    #[test]
    fn default_paths_and_no_email() {
        let body = r#"{"type": "user.signup", "data": {"email": "u@example.com"}}"#;
        let delivery = map(provider("standard"), &[("svix-id", "msg_1")], body);
        assert_eq!(record_json(&delivery), json!({"email": "u@example.com"}));
        let delivery = map(provider("standard"), &[], INVOICE_PAID);
        assert_eq!(delivery.dedupe_id.len(), 64);
        assert_eq!(ignored(&delivery), "no_email");
    }
}
