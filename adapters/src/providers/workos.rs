//! WorkOS: `{id: "event_...", event, data, created_at}`. AuthKit events carry a `user`,
//! Directory Sync events a `directory_user` (group membership events under `data.user`),
//! other events at least the `user_id` they concern.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, at, boolean_field, event, parse_rfc3339, read_from_body, string_field, text};
use crate::{Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    event("user.created"),
    event("user.updated"),
    event("user.deleted"),
    event("dsync.user.created"),
    event("dsync.user.updated"),
    event("dsync.user.deleted"),
    event("dsync.group.user_added"),
    event("dsync.group.user_removed"),
    event("organization_membership.created"),
    event("organization_membership.updated"),
    event("organization_membership.deleted"),
    event("session.created"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("workos_user_id"),
    string_field("workos_directory_user_id"),
    string_field("workos_organization_id"),
    string_field("workos_directory_id"),
    string_field("workos_role"),
    boolean_field("workos_email_verified"),
    string_field("workos_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["workos_user_id", "workos_directory_user_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: read_from_body,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("event")?;
    let data = input.body.get("data").unwrap_or(&Value::Null);
    let mut record = Record::default();
    if event.starts_with("user.") {
        record.set("workos_user_id", text(data, "id"));
        record.set(
            "workos_email_verified",
            at(data, "email_verified").and_then(Value::as_bool),
        );
        person(&mut record, data);
    } else if event.starts_with("dsync.user.") {
        directory_user(&mut record, data);
    } else if event.starts_with("dsync.group.user_") {
        directory_user(&mut record, data.get("user").unwrap_or(&Value::Null));
        record.set("workos_directory_id", text(data, "directory_id"));
    } else {
        record.set("workos_user_id", text(data, "user_id"));
        person(&mut record, data);
    }
    if event == "user.deleted" || event == "dsync.user.deleted" {
        let created_at = text(&input.body, "created_at").and_then(parse_rfc3339);
        record.set("workos_deleted_at", input.deleted_at(created_at));
    }
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_id("id").unwrap_or_else(|| input.body_hash()),
        action: record.into_action(IDENTITY),
    })
}

fn directory_user(record: &mut Record, user: &Value) {
    record.set("workos_directory_user_id", text(user, "id"));
    record.set("workos_directory_id", text(user, "directory_id"));
    person(record, user);
    // Older directory users list their addresses in `emails[]` instead of `email`.
    let primary = user
        .get("emails")
        .and_then(Value::as_array)
        .and_then(|emails| {
            emails
                .iter()
                .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        })
        .and_then(|e| text(e, "value"));
    record.email(primary);
}

/// The fields every kind of WorkOS user object shares.
fn person(record: &mut Record, user: &Value) {
    record.email(text(user, "email"));
    record.names(text(user, "first_name"), text(user, "last_name"));
    record.set("workos_organization_id", text(user, "organization_id"));
    record.set("workos_role", text(user, "role.slug"));
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testing::{fired, ignored, map, record_json, NOW_RFC3339};
    use super::super::testing::provider;

    const DSYNC_USER_CREATED: &str =
        include_str!("../../tests/data/workos/dsync.user.created.json");

    #[test]
    fn dsync_user_created_sample() {
        let delivery = map(provider("workos"), &[], DSYNC_USER_CREATED);
        assert_eq!(delivery.event, "dsync.user.created");
        assert_eq!(delivery.dedupe_id, "event_01EHZNVPK3SFK441A1RGBFSHRT");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "marcelina.davis@example.com", "firstName": "Marcelina",
                   "lastName": "Davis",
                   "workos_directory_user_id": "directory_user_01E1JG7J09H96KYP8HM9B0G5SJ",
                   "workos_directory_id": "directory_01ECAZ4NV9QMV47GW873HDCX74",
                   "workos_organization_id": "org_01EZTR6WYX1A0DSE2CYMGXQ24Y",
                   "workos_role": "admin"})
        );
    }

    #[test]
    fn legacy_directory_user_uses_the_primary_email() {
        let mut body: Value = serde_json::from_str(DSYNC_USER_CREATED).unwrap();
        body["data"]["email"] = Value::Null;
        body["data"]["emails"] = json!([
            {"primary": false, "type": "home", "value": "home@example.com"},
            {"primary": true, "type": "work", "value": "work@example.com"}
        ]);
        let delivery = map(provider("workos"), &[], &body.to_string());
        assert_eq!(fired(&delivery).email.as_deref(), Some("work@example.com"));
    }

    #[test]
    fn dsync_user_deleted_stamps_the_event_time() {
        let mut body: Value = serde_json::from_str(DSYNC_USER_CREATED).unwrap();
        body["event"] = json!("dsync.user.deleted");
        let delivery = map(provider("workos"), &[], &body.to_string());
        assert_eq!(
            fired(&delivery).fields["workos_deleted_at"],
            json!("2026-01-15T12:00:00Z")
        );
    }

    #[test]
    fn authkit_user_deleted() {
        let body = json!({"id": "event_1", "event": "user.deleted", "data": {
            "object": "user", "id": "user_01", "email": "ada@example.com",
            "email_verified": true, "first_name": "Ada", "last_name": null}});
        let delivery = map(provider("workos"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "ada@example.com", "firstName": "Ada", "workos_user_id": "user_01",
                   "workos_email_verified": true, "workos_deleted_at": NOW_RFC3339})
        );
    }

    #[test]
    fn membership_resolves_by_user_id() {
        let body = json!({"id": "event_2", "event": "organization_membership.created",
            "data": {"object": "organization_membership", "id": "om_01", "user_id": "user_01",
                     "organization_id": "org_01", "status": "active", "role": {"slug": "member"}}});
        let delivery = map(provider("workos"), &[], &body.to_string());
        let record = fired(&delivery);
        assert_eq!(
            record.lookup,
            Some(("workos_user_id".to_owned(), "user_01".to_owned()))
        );
        assert_eq!(record.fields["workos_organization_id"], json!("org_01"));
        assert_eq!(record.fields["workos_role"], json!("member"));
    }

    #[test]
    fn group_membership_uses_the_directory_user() {
        let body = json!({"id": "event_3", "event": "dsync.group.user_added", "data": {
            "directory_id": "directory_01", "group": {"id": "directory_group_01"},
            "user": {"object": "directory_user", "id": "directory_user_01",
                     "email": "grace@example.com"}}});
        let delivery = map(provider("workos"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "grace@example.com", "workos_directory_user_id": "directory_user_01",
                   "workos_directory_id": "directory_01"})
        );
    }

    #[test]
    fn events_without_a_user_are_ignored() {
        let body = r#"{"id": "event_4", "event": "organization.created",
            "data": {"object": "organization", "id": "org_01", "name": "Acme"}}"#;
        assert_eq!(ignored(&map(provider("workos"), &[], body)), "no_email");
    }
}
