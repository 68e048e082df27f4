//! Stytch (Svix-signed): `{source, object_type, action, id, event_id, timestamp, <object>}`,
//! the event being `source.object_type.action` lower-cased. Consumer projects send `user`
//! objects, B2B projects `member` objects; deletions carry only the `id`.

use serde_json::Value;

use super::{event, parse_rfc3339, string_field, svix_id, text, ConnectionOptions, Input, Mapping, Record};
use crate::{Action, Delivery, EventSpec, FieldSpec, MapError, SkipReason};

pub(super) const EVENTS: &[EventSpec] = &[
    event("direct.user.create"),
    event("direct.user.update"),
    event("direct.user.delete"),
    event("direct.member.create"),
    event("direct.member.update"),
    event("direct.member.delete"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("stytch_user_id"),
    string_field("stytch_member_id"),
    string_field("stytch_organization_id"),
    string_field("stytch_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["stytch_user_id", "stytch_member_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    // Without a Svix message id, the id is the body's `event_id`.
    dedupe_before_parsing: |headers, _| svix_id(headers),
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let body = &input.body;
    let source = input.event_at("source")?.to_ascii_lowercase();
    let object_type = input.event_at("object_type")?.to_ascii_lowercase();
    let action = input.event_at("action")?.to_ascii_lowercase();
    let event = format!("{source}.{object_type}.{action}");
    let dedupe_id = input
        .svix_id()
        .or_else(|| input.body_id("event_id"))
        .unwrap_or_else(|| input.body_hash());
    let mut record = Record::default();
    // Dashboard and SCIM changes are made by admins, not by the end user.
    let supported = source == "direct";
    match object_type.as_str() {
        "user" if supported => user(&mut record, body),
        "member" if supported => member(&mut record, body),
        _ => {
            return Ok(Delivery {
                provider_event_key: event.clone(),
                event,
                dedupe_id,
                action: Action::Ignore(SkipReason::EventNotSupported),
            })
        }
    }
    if action == "delete" {
        let timestamp = text(body, "timestamp").and_then(parse_rfc3339);
        record.set("stytch_deleted_at", input.deleted_at(timestamp));
    }
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id,
        action: record.into_action(IDENTITY),
    })
}

fn user(record: &mut Record, body: &Value) {
    record.email(text(body, "user.emails.0.email"));
    record.names(
        text(body, "user.name.first_name"),
        text(body, "user.name.last_name"),
    );
    record.set("stytch_user_id", text(body, "user.user_id"));
    record.set("stytch_user_id", text(body, "id"));
}

fn member(record: &mut Record, body: &Value) {
    record.email(text(body, "member.email_address"));
    record.full_name(text(body, "member.name"));
    record.set("stytch_member_id", text(body, "member.member_id"));
    record.set("stytch_member_id", text(body, "id"));
    record.set(
        "stytch_organization_id",
        text(body, "member.organization_id"),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testing::{fired, ignored, map, record_json};
    use super::super::testing::provider;

    const DASHBOARD_USER_CREATE: &str =
        include_str!("../../tests/data/stytch/dashboard.user.create.json");
    const SVIX: &[(&str, &str)] = &[("svix-id", "msg_stytch")];

    /// The sample as if the user had been created through the API.
    fn direct(action: &str) -> Value {
        let mut body: Value = serde_json::from_str(DASHBOARD_USER_CREATE).unwrap();
        body["source"] = json!("DIRECT");
        body["action"] = json!(action);
        body
    }

    #[test]
    fn dashboard_sample_is_ignored_with_event_and_dedupe_id() {
        let delivery = map(provider("stytch"), SVIX, DASHBOARD_USER_CREATE);
        assert_eq!(delivery.event, "dashboard.user.create");
        assert_eq!(delivery.provider_event_key, "dashboard.user.create");
        assert_eq!(delivery.dedupe_id, "msg_stytch");
        assert_eq!(ignored(&delivery), "event_not_supported");
    }

    #[test]
    fn scim_events_are_ignored() {
        let mut body = direct("UPDATE");
        body["source"] = json!("SCIM");
        let delivery = map(provider("stytch"), SVIX, &body.to_string());
        assert_eq!(delivery.event, "scim.user.update");
        assert_eq!(ignored(&delivery), "event_not_supported");
    }

    #[test]
    fn direct_user_create() {
        let delivery = map(provider("stytch"), SVIX, &direct("CREATE").to_string());
        assert_eq!(delivery.event, "direct.user.create");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "adalovelace@stytch.example.com", "firstName": "Ada",
                   "lastName": "Lovelace",
                   "stytch_user_id": "user-test-00000000-0000-0000-0000-000000000000"})
        );
    }

    #[test]
    fn event_id_is_the_dedupe_fallback() {
        let delivery = map(provider("stytch"), &[], &direct("CREATE").to_string());
        assert_eq!(
            delivery.dedupe_id,
            "webhook-event-test-00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn direct_user_delete_resolves_by_id() {
        let body = json!({"action": "DELETE", "event_id": "ev_1", "id": "user-1",
            "object_type": "user", "project_id": "project-1", "source": "DIRECT",
            "timestamp": "2024-01-02T03:04:05.678901Z"});
        let delivery = map(provider("stytch"), SVIX, &body.to_string());
        let record = fired(&delivery);
        assert_eq!(
            record.lookup,
            Some(("stytch_user_id".to_owned(), "user-1".to_owned()))
        );
        assert_eq!(
            record.fields["stytch_deleted_at"],
            json!("2024-01-02T03:04:05Z")
        );
    }

    #[test]
    fn direct_member_update_uses_the_member() {
        let body = json!({"action": "UPDATE", "event_id": "ev_1", "id": "member-1",
            "object_type": "member", "source": "DIRECT", "vertical": "B2B",
            "timestamp": "2024-01-02T03:04:05.678901Z",
            "member": {"email_address": "ada@stytch.example.com", "member_id": "member-1",
                       "name": "Ada Lovelace", "organization_id": "organization-1"}});
        let delivery = map(provider("stytch"), SVIX, &body.to_string());
        assert_eq!(delivery.event, "direct.member.update");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "ada@stytch.example.com", "firstName": "Ada",
                   "lastName": "Lovelace", "stytch_member_id": "member-1",
                   "stytch_organization_id": "organization-1"})
        );
    }

    #[test]
    fn direct_organization_events_are_ignored() {
        let body = json!({"action": "CREATE", "id": "organization-1",
            "object_type": "organization", "source": "DIRECT", "organization": {}});
        let delivery = map(provider("stytch"), SVIX, &body.to_string());
        assert_eq!(ignored(&delivery), "event_not_supported");
    }

    #[test]
    fn missing_action_is_an_error() {
        let verified = crate::Verified::for_test(
            provider("stytch"),
            SVIX,
            r#"{"source": "DIRECT", "object_type": "user"}"#,
        );
        assert_eq!(
            crate::map(&verified, &json!({}), 0),
            Err(crate::MapError::MissingEvent("action"))
        );
    }
}
