//! Clerk (Svix-signed): `{type, data, timestamp}`. The contact is the user the event is
//! about: the user itself, an organization's creator, a member, an invitee or a payer.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, event, int, string_field, svix_id_or_body_hash, text};
use crate::{Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    event("user.created"),
    event("user.updated"),
    event("user.deleted"),
    event("session.created"),
    event("organization.created"),
    event("organizationMembership.created"),
    event("organizationMembership.deleted"),
    event("organizationInvitation.created"),
    event("subscription.created"),
    event("subscription.updated"),
    event("subscription.active"),
    event("subscription.pastDue"),
    event("subscriptionItem.active"),
    event("subscriptionItem.canceled"),
    event("subscriptionItem.ended"),
    event("subscriptionItem.freeTrialEnding"),
    event("paymentAttempt.created"),
    event("paymentAttempt.updated"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("clerk_user_id"),
    string_field("clerk_organization_id"),
    string_field("clerk_role"),
    string_field("clerk_billing_status"),
    string_field("clerk_plan"),
    string_field("clerk_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["clerk_user_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: |headers, raw| Some(svix_id_or_body_hash(headers, raw)),
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("type")?;
    let data = input.body.get("data").unwrap_or(&Value::Null);
    let mut record = Record::default();
    match text(data, "object") {
        Some("user") => user(&mut record, data),
        Some("organization") => {
            record.set("clerk_user_id", text(data, "created_by"));
            record.set("clerk_organization_id", text(data, "id"));
        }
        Some("organization_membership") => membership(&mut record, data),
        Some("organization_invitation") => {
            record.email(text(data, "email_address"));
            record.set("clerk_organization_id", text(data, "organization_id"));
            record.set("clerk_role", text(data, "role"));
        }
        _ if data.get("payer").is_some() => billing(&mut record, data),
        _ if event.starts_with("user.") => user(&mut record, data),
        // Sessions and most other objects name their user.
        _ => record.set("clerk_user_id", text(data, "user_id")),
    }
    if event == "user.deleted" {
        let millis = int(&input.body, "timestamp");
        let deleted_at = input.deleted_at(millis.map(|ms| ms.div_euclid(1000)));
        record.set("clerk_deleted_at", deleted_at);
    }
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: svix_id_or_body_hash(input.headers, input.raw),
        action: record.into_action(IDENTITY),
    })
}

/// `user.deleted` carries only `{id, object, deleted}`: the contact is then found by id.
fn user(record: &mut Record, user: &Value) {
    record.email(primary_email(user));
    record.names(text(user, "first_name"), text(user, "last_name"));
    record.set("clerk_user_id", text(user, "id"));
}

/// The address whose id is `primary_email_address_id`, else the first one.
fn primary_email(user: &Value) -> Option<&str> {
    let addresses = user.get("email_addresses")?.as_array()?;
    let primary_id = text(user, "primary_email_address_id");
    addresses
        .iter()
        .find(|a| primary_id.is_some() && text(a, "id") == primary_id)
        .or_else(|| addresses.first())
        .and_then(|a| text(a, "email_address"))
}

fn membership(record: &mut Record, membership: &Value) {
    // `identifier` is the member's email, or a phone number or username for users without one.
    record.email(text(membership, "public_user_data.identifier"));
    record.names(
        text(membership, "public_user_data.first_name"),
        text(membership, "public_user_data.last_name"),
    );
    record.set(
        "clerk_user_id",
        text(membership, "public_user_data.user_id"),
    );
    record.set("clerk_organization_id", text(membership, "organization.id"));
    record.set("clerk_role", text(membership, "role"));
}

/// Billing objects (subscriptions, subscription items, payment attempts) name their payer.
fn billing(record: &mut Record, object: &Value) {
    record.email(text(object, "payer.email"));
    record.names(
        text(object, "payer.first_name"),
        text(object, "payer.last_name"),
    );
    record.set("clerk_user_id", text(object, "payer.user_id"));
    record.set(
        "clerk_organization_id",
        text(object, "payer.organization_id"),
    );
    record.set("clerk_billing_status", text(object, "status"));
    for plan in [
        "plan.slug",
        "items.0.plan.slug",
        "subscription_items.0.plan.slug",
    ] {
        record.set("clerk_plan", text(object, plan));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{fired, ignored, map, record_json, NOW_RFC3339};
    use super::super::testing::provider;

    const USER_CREATED: &str = include_str!("../../tests/data/clerk/user.created.json");
    const SVIX: &[(&str, &str)] = &[("svix-id", "msg_2abc")];

    #[test]
    fn user_created_sample() {
        let delivery = map(provider("clerk"), SVIX, USER_CREATED);
        assert_eq!(delivery.event, "user.created");
        assert_eq!(delivery.provider_event_key, "user.created");
        assert_eq!(delivery.dedupe_id, "msg_2abc");
        let record = fired(&delivery);
        assert_eq!(record.email.as_deref(), Some("example@example.org"));
        assert_eq!(record.lookup, None);
        assert_eq!(
            record_json(&delivery),
            json!({"email": "example@example.org", "firstName": "Example",
                   "lastName": "Example", "clerk_user_id": "user_29w83sxmDNGwOuEthce5gg56FcC"})
        );
    }

    #[test]
    fn webhook_id_header_is_the_dedupe_id_too() {
        let delivery = map(provider("clerk"), &[("webhook-id", "msg_x")], USER_CREATED);
        assert_eq!(delivery.dedupe_id, "msg_x");
    }

    #[test]
    fn picks_the_primary_address_among_several() {
        let body = json!({"type": "user.updated", "data": {
        "object": "user", "id": "user_1", "first_name": null, "last_name": "Lovelace",
        "primary_email_address_id": "idn_2",
        "email_addresses": [
            {"id": "idn_1", "email_address": "old@example.com"},
            {"id": "idn_2", "email_address": " Ada@Example.com "}
        ]}});
        let delivery = map(provider("clerk"), SVIX, &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "Ada@Example.com", "lastName": "Lovelace", "clerk_user_id": "user_1"})
        );
    }

    #[test]
    fn falls_back_to_the_first_address() {
        let body = json!({"type": "user.updated", "data": {
            "object": "user", "id": "user_1", "primary_email_address_id": null,
            "email_addresses": [{"id": "idn_1", "email_address": "first@example.com"}]}});
        let delivery = map(provider("clerk"), SVIX, &body.to_string());
        assert_eq!(fired(&delivery).email.as_deref(), Some("first@example.com"));
    }

    #[test]
    fn user_deleted_resolves_by_user_id_and_stamps_the_event_time() {
        let body = r#"{"type": "user.deleted", "timestamp": 1654012591835,
            "data": {"deleted": true, "id": "user_29w83sxmDNGwOuEthce5gg56FcC", "object": "user"}}"#;
        let delivery = map(provider("clerk"), SVIX, body);
        let record = fired(&delivery);
        assert_eq!(record.email, None);
        assert_eq!(
            record.lookup,
            Some((
                "clerk_user_id".to_owned(),
                "user_29w83sxmDNGwOuEthce5gg56FcC".to_owned()
            ))
        );
        assert_eq!(
            record.fields["clerk_deleted_at"],
            json!("2022-05-31T15:56:31Z")
        );
    }

    #[test]
    fn user_deleted_without_timestamp_uses_now() {
        let body = r#"{"type": "user.deleted", "data": {"deleted": true, "id": "user_1", "object": "user"}}"#;
        let delivery = map(provider("clerk"), SVIX, body);
        assert_eq!(
            fired(&delivery).fields["clerk_deleted_at"],
            json!(NOW_RFC3339)
        );
    }

    #[test]
    fn organization_events_resolve_through_the_creator() {
        let body = r#"{"type": "organization.created", "data": {"object": "organization",
            "id": "org_1", "name": "Acme", "created_by": "user_1"}}"#;
        let delivery = map(provider("clerk"), SVIX, body);
        let record = fired(&delivery);
        assert_eq!(
            record.lookup,
            Some(("clerk_user_id".to_owned(), "user_1".to_owned()))
        );
        assert_eq!(record.fields["clerk_organization_id"], json!("org_1"));
    }

    #[test]
    fn organization_deleted_has_no_contact() {
        let body = r#"{"type": "organization.deleted", "data": {"object": "organization",
            "id": "org_1", "deleted": true}}"#;
        assert_eq!(ignored(&map(provider("clerk"), SVIX, body)), "no_email");
    }

    #[test]
    fn membership_uses_the_member() {
        let body = json!({"type": "organizationMembership.created", "data": {
            "object": "organization_membership", "id": "orgmem_1", "role": "org:admin",
            "organization": {"id": "org_1", "created_by": "user_9"},
            "public_user_data": {"user_id": "user_1", "identifier": "ada@example.com",
                                 "first_name": "Ada", "last_name": null}}});
        let delivery = map(provider("clerk"), SVIX, &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "ada@example.com", "firstName": "Ada", "clerk_user_id": "user_1",
                   "clerk_organization_id": "org_1", "clerk_role": "org:admin"})
        );
    }

    #[test]
    fn session_resolves_by_user_id() {
        let body = r#"{"type": "session.created", "data": {"object": "session",
            "id": "sess_1", "user_id": "user_1", "status": "active"}}"#;
        let delivery = map(provider("clerk"), SVIX, body);
        assert_eq!(
            fired(&delivery).lookup,
            Some(("clerk_user_id".to_owned(), "user_1".to_owned()))
        );
    }

    #[test]
    fn billing_events_use_the_payer() {
        let body = json!({"type": "subscriptionItem.active", "data": {
            "object": "commerce_subscription_item", "id": "csi_1", "status": "active",
            "plan": {"slug": "pro"},
            "payer": {"user_id": "user_1", "email": "payer@example.com",
                      "first_name": "Pay", "last_name": "Er"}}});
        let delivery = map(provider("clerk"), SVIX, &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "payer@example.com", "firstName": "Pay", "lastName": "Er",
                   "clerk_user_id": "user_1", "clerk_billing_status": "active",
                   "clerk_plan": "pro"})
        );
    }

    #[test]
    fn missing_type_is_an_error() {
        let verified = crate::Verified::for_test(provider("clerk"), SVIX, r#"{"data": {}}"#);
        assert_eq!(
            crate::map(&verified, &json!({}), 0),
            Err(crate::MapError::MissingEvent("type"))
        );
    }
}
