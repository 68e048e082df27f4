//! RevenueCat: `{api_version, event: {id, type, app_user_id, subscriber_attributes, ...}}`.
//! The email is the `$email` subscriber attribute when the app set one.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, array_field, at, event, int, number_field, read_from_body, rfc3339, string_field, text};
use crate::{Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    event("INITIAL_PURCHASE"),
    event("RENEWAL"),
    event("CANCELLATION"),
    event("UNCANCELLATION"),
    event("NON_RENEWING_PURCHASE"),
    event("SUBSCRIPTION_PAUSED"),
    event("SUBSCRIPTION_EXTENDED"),
    event("EXPIRATION"),
    event("BILLING_ISSUE"),
    event("PRODUCT_CHANGE"),
    event("TRANSFER"),
    event("TEST"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("revenuecat_app_user_id"),
    string_field("revenuecat_product_id"),
    array_field("revenuecat_entitlement_ids"),
    string_field("revenuecat_store"),
    string_field("revenuecat_environment"),
    string_field("revenuecat_period_type"),
    number_field("revenuecat_price"),
    string_field("revenuecat_currency"),
    string_field("revenuecat_expires_at"),
    string_field("revenuecat_cancel_reason"),
    string_field("revenuecat_expiration_reason"),
];

pub(super) const IDENTITY: &[&str] = &["revenuecat_app_user_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: read_from_body,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("event.type")?;
    let e = input.body.get("event").unwrap_or(&Value::Null);
    let mut record = Record::default();
    record.email(text(e, "subscriber_attributes.$email.value"));
    record.full_name(text(e, "subscriber_attributes.$displayName.value"));
    record.set("revenuecat_app_user_id", text(e, "app_user_id"));
    // TRANSFER events name no app user: the contact is the one the purchases moved to.
    record.set("revenuecat_app_user_id", text(e, "transferred_to.0"));
    record.set("revenuecat_product_id", text(e, "product_id"));
    record.set("revenuecat_entitlement_ids", entitlement_ids(e));
    record.set("revenuecat_store", text(e, "store"));
    record.set("revenuecat_environment", text(e, "environment"));
    record.set("revenuecat_period_type", text(e, "period_type"));
    // `price` is in USD; the purchase's own currency goes with `price_in_purchased_currency`.
    record.set(
        "revenuecat_price",
        at(e, "price_in_purchased_currency").cloned(),
    );
    record.set("revenuecat_currency", text(e, "currency"));
    record.set(
        "revenuecat_expires_at",
        int(e, "expiration_at_ms").and_then(|ms| rfc3339(ms.div_euclid(1000))),
    );
    record.set("revenuecat_cancel_reason", text(e, "cancel_reason"));
    record.set("revenuecat_expiration_reason", text(e, "expiration_reason"));
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input
            .body_id("event.id")
            .unwrap_or_else(|| input.body_hash()),
        action: record.into_action(IDENTITY),
    })
}

/// `entitlement_ids`, or the deprecated single `entitlement_id` as a one-item list.
fn entitlement_ids(event: &Value) -> Option<Value> {
    match at(event, "entitlement_ids") {
        Some(ids @ Value::Array(_)) => Some(ids.clone()),
        _ => text(event, "entitlement_id").map(|id| Value::from(vec![id])),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testing::{fired, map, record_json};
    use super::super::testing::provider;

    const INITIAL_PURCHASE: &str =
        include_str!("../../tests/data/revenuecat/INITIAL_PURCHASE.json");

    fn sample() -> Value {
        serde_json::from_str(INITIAL_PURCHASE).unwrap()
    }

    #[test]
    fn initial_purchase_sample() {
        let delivery = map(provider("revenuecat"), &[], INITIAL_PURCHASE);
        assert_eq!(delivery.event, "INITIAL_PURCHASE");
        assert_eq!(delivery.provider_event_key, "INITIAL_PURCHASE");
        assert_eq!(delivery.dedupe_id, "12345678-1234-1234-1234-123456789012");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "firstlast@gmail.com", "revenuecat_app_user_id": "1234567890",
                   "revenuecat_product_id": "com.subscription.weekly",
                   "revenuecat_entitlement_ids": ["pro"], "revenuecat_store": "APP_STORE",
                   "revenuecat_environment": "PRODUCTION", "revenuecat_period_type": "NORMAL",
                   "revenuecat_price": 4.99, "revenuecat_currency": "USD",
                   "revenuecat_expires_at": "2022-08-01T05:19:34Z"})
        );
    }

    #[test]
    fn display_name_gives_names() {
        let mut body = sample();
        body["event"]["subscriber_attributes"]["$displayName"] = json!({"value": "Ada Lovelace"});
        let delivery = map(provider("revenuecat"), &[], &body.to_string());
        let fields = &fired(&delivery).fields;
        assert_eq!(fields["firstName"], json!("Ada"));
        assert_eq!(fields["lastName"], json!("Lovelace"));
    }

    #[test]
    fn without_email_resolves_by_app_user_id() {
        let mut body = sample();
        body["event"]["subscriber_attributes"] = json!({});
        body["event"]["type"] = json!("CANCELLATION");
        body["event"]["cancel_reason"] = json!("UNSUBSCRIBE");
        let delivery = map(provider("revenuecat"), &[], &body.to_string());
        let record = fired(&delivery);
        assert_eq!(record.email, None);
        assert_eq!(
            record.lookup,
            Some(("revenuecat_app_user_id".to_owned(), "1234567890".to_owned()))
        );
        assert_eq!(
            record.fields["revenuecat_cancel_reason"],
            json!("UNSUBSCRIBE")
        );
    }

    #[test]
    fn transfer_resolves_by_the_receiving_user() {
        let body = json!({"api_version": "1.0", "event": {"type": "TRANSFER", "id": "ev_t",
            "store": "PLAY_STORE", "transferred_from": ["old_user"],
            "transferred_to": ["new_user"], "entitlement_ids": null,
            "entitlement_id": "pro"}});
        let delivery = map(provider("revenuecat"), &[], &body.to_string());
        let record = fired(&delivery);
        assert_eq!(
            record.lookup,
            Some(("revenuecat_app_user_id".to_owned(), "new_user".to_owned()))
        );
        assert_eq!(record.fields["revenuecat_entitlement_ids"], json!(["pro"]));
    }

    #[test]
    fn missing_type_is_an_error() {
        let verified = crate::Verified::for_test(provider("revenuecat"), &[], r#"{"event": {}}"#);
        assert_eq!(
            crate::map(&verified, &json!({}), 0),
            Err(crate::MapError::MissingEvent("event.type"))
        );
    }
}
