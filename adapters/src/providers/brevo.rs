//! Brevo: one flat body per event, `{event, email, ...}`. Brevo's guide (and its
//! deliveries) spell events and ids in snake_case (`hard_bounce`, `message-id`), its AsyncAPI
//! description in camelCase (`hardBounce`, `messageId`): both reach one trigger, named in
//! snake_case where the guide has a name. Its `id` is the webhook's, not the event's, so
//! deliveries dedupe on the body hash. SMS and conversation events carry no email.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, aliased, body_hash_only, event, id, string_field, text};
use crate::{Action, Delivery, EventSpec, FieldSpec, MapError, SkipReason};

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: &[],
    map,
    dedupe_before_parsing: body_hash_only,
    options: ConnectionOptions::NONE,
};

const EVENTS: &[EventSpec] = &[
    event("sent"),
    event("request"),
    event("delivered"),
    event("opened"),
    aliased("unique_opened", &["uniqueOpened"]),
    event("proxyOpen"),
    // Transactional `click`, marketing `clicked`.
    aliased("click", &["clicked"]),
    aliased("soft_bounce", &["softBounce"]),
    aliased("hard_bounce", &["hardBounce"]),
    aliased("invalid_email", &["invalid"]),
    event("deferred"),
    event("blocked"),
    event("spam"),
    event("error"),
    event("unsubscribed"),
    aliased("list_addition", &["listAddition"]),
    aliased("contact_updated", &["contactUpdated"]),
    aliased("contact_deleted", &["contactDeleted"]),
    event("inboundEmailProcessed"),
];

const FIELDS: &[FieldSpec] = &[
    string_field("brevo_message_id"),
    string_field("brevo_tag"),
    string_field("brevo_template_id"),
    string_field("brevo_campaign_id"),
    string_field("brevo_list_id"),
    string_field("brevo_link"),
    string_field("brevo_reason"),
];

fn map(input: &Input) -> Result<Delivery, MapError> {
    let body = &input.body;
    let Some(event) = text(body, "event").map(str::to_owned) else {
        return Ok(Delivery {
            event: String::new(),
            provider_event_key: String::new(),
            dedupe_id: input.body_hash(),
            action: Action::Ignore(SkipReason::NoEvent),
        });
    };
    let mut record = Record::default();
    record.email(text(body, "email"));
    if event == "inboundEmailProcessed" {
        // The contact of an inbound email is whoever wrote it.
        record.email(text(body, "sender"));
    }
    record.set("brevo_message_id", text(body, "message-id"));
    record.set("brevo_message_id", text(body, "messageId"));
    record.set("brevo_tag", tag(body));
    record.set("brevo_tag", text(body, "tags.0"));
    record.set("brevo_template_id", id(body, "template_id"));
    record.set("brevo_template_id", id(body, "templateId"));
    record.set("brevo_campaign_id", id(body, "camp_id"));
    record.set("brevo_campaign_id", id(body, "campaignId"));
    record.set("brevo_list_id", id(body, "list_id"));
    record.set("brevo_list_id", id(body, "list_id.0"));
    record.set("brevo_list_id", id(body, "listId"));
    record.set("brevo_link", text(body, "link"));
    record.set("brevo_link", text(body, "URL"));
    record.set("brevo_reason", text(body, "reason"));
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_hash(),
        action: record.into_action(&[]),
    })
}

/// `tag`, which some events send as a JSON-encoded list (`"[\"welcome\"]"`): its first item.
fn tag(body: &Value) -> Option<String> {
    let tag = text(body, "tag")?;
    if tag.starts_with('[') {
        let tags: Vec<String> = serde_json::from_str(tag).ok()?;
        return tags
            .into_iter()
            .map(|t| t.trim().to_owned())
            .find(|t| !t.is_empty());
    }
    Some(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{ignored, map, record_json};
    use super::super::testing::provider;

    const REQUEST: &str = include_str!("../../tests/data/brevo/transactional.request.json");

    #[test]
    fn transactional_request_sample() {
        let delivery = map(provider("brevo"), &[], REQUEST);
        assert_eq!(delivery.event, "request");
        assert_eq!(delivery.provider_event_key, "request");
        assert_eq!(delivery.dedupe_id.len(), 64);
        assert_eq!(
            record_json(&delivery),
            json!({"email": "example@example.com",
                   "brevo_message_id": "<201798300811.5787683@relay.domain.com>",
                   "brevo_tag": "transac_messages", "brevo_template_id": "22"})
        );
    }

    #[test]
    fn tag_encoded_as_a_json_list() {
        let body = json!({"event": "delivered", "email": "a@example.com", "id": 26224,
            "message-id": "<m@domain.com>", "tag": "[\"transactionalTag\"]",
            "tags": ["myFirstTransactional"]});
        let delivery = map(provider("brevo"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery)["brevo_tag"],
            json!("transactionalTag")
        );
    }

    #[test]
    fn marketing_click_with_campaign_and_empty_tag() {
        let body = json!({"id": 1, "camp_id": 7, "email": "a@example.com",
            "campaign name": "Spring", "event": "click", "tag": "",
            "URL": "https://example.com/offer", "ts_event": 1604933737});
        let delivery = map(provider("brevo"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "a@example.com", "brevo_campaign_id": "7",
                   "brevo_link": "https://example.com/offer"})
        );
    }

    #[test]
    fn sms_events_have_no_email() {
        let body = r#"{"event": "delivered", "to": "+33600000000", "messageId": 1}"#;
        assert_eq!(ignored(&map(provider("brevo"), &[], body)), "no_email");
    }

    #[test]
    fn camel_case_spellings_fire_the_snake_case_trigger() {
        let body = json!({"event": "hardBounce", "email": "a@example.com",
            "messageId": "<m@domain.com>", "templateId": 9, "reason": "user unknown"});
        let delivery = map(provider("brevo"), &[], &body.to_string());
        assert_eq!(delivery.event, "hard_bounce");
        assert_eq!(delivery.provider_event_key, "hardBounce");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "a@example.com", "brevo_message_id": "<m@domain.com>",
                   "brevo_template_id": "9", "brevo_reason": "user unknown"})
        );
    }

    #[test]
    fn list_ids_in_either_spelling() {
        for list in [json!({"listId": 4}), json!({"list_id": [4, 5]}), json!({"list_id": 4})] {
            let mut body = json!({"event": "listAddition", "email": "a@example.com"});
            body.as_object_mut()
                .unwrap()
                .extend(list.as_object().unwrap().clone());
            let delivery = map(provider("brevo"), &[], &body.to_string());
            assert_eq!(delivery.event, "list_addition");
            assert_eq!(record_json(&delivery)["brevo_list_id"], json!("4"), "{list}");
        }
    }

    #[test]
    fn a_body_without_event_is_ignored() {
        let delivery = map(provider("brevo"), &[], r#"{"email": "a@example.com"}"#);
        assert_eq!(ignored(&delivery), "no_event");
        assert_eq!(delivery.dedupe_id.len(), 64);
    }
}
