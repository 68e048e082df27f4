//! Shopify: the topic and ids come in headers (`X-Shopify-*`, or the newer lower-case
//! `shopify-*`), the body is the resource itself (an order, a customer, a checkout).

use serde_json::Value;

use super::{body_hash, header, id, string_field, text, ConnectionOptions, Input, Mapping, Record};
use crate::{Delivery, EventSpec, FieldSpec, Headers, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    topic("orders.create", "orders/create"),
    topic("orders.paid", "orders/paid"),
    topic("orders.fulfilled", "orders/fulfilled"),
    topic("orders.cancelled", "orders/cancelled"),
    topic("customers.create", "customers/create"),
    topic("customers.update", "customers/update"),
    topic("customers.delete", "customers/delete"),
    topic("checkouts.create", "checkouts/create"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("shopify_topic"),
    string_field("shopify_shop_domain"),
    string_field("shopify_customer_id"),
    string_field("shopify_order_id"),
    string_field("shopify_order_name"),
    string_field("shopify_financial_status"),
    string_field("shopify_checkout_id"),
    string_field("shopify_abandoned_checkout_url"),
    string_field("shopify_total_price"),
    string_field("shopify_currency"),
    string_field("shopify_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["shopify_customer_id"];

const fn topic(name: &'static str, provider_key: &'static str) -> EventSpec {
    super::spelled(name, provider_key)
}

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: |headers, raw| Some(dedupe_id(headers, raw)),
    options: ConnectionOptions::NONE,
};

/// The event id header, else the webhook id header, else the body's hash.
fn dedupe_id(headers: &Headers, raw: &[u8]) -> String {
    header(headers, &["x-shopify-event-id", "shopify-event-id"])
        .or_else(|| header(headers, &["x-shopify-webhook-id", "shopify-webhook-id"]))
        .unwrap_or_else(|| body_hash(raw))
}

fn map(input: &Input) -> Result<Delivery, MapError> {
    let topic = header(input.headers, &["x-shopify-topic", "shopify-topic"])
        .ok_or(MapError::MissingEvent("X-Shopify-Topic"))?;
    let dedupe_id = dedupe_id(input.headers, input.raw);
    let body = &input.body;
    let mut record = Record::default();
    match topic.split('/').next() {
        Some("customers") => {
            record.email(text(body, "email"));
            record.names(text(body, "first_name"), text(body, "last_name"));
            record.set("shopify_customer_id", id(body, "id"));
            if topic == "customers/delete" {
                record.set("shopify_deleted_at", input.deleted_at(None));
            }
        }
        Some("orders") => {
            buyer(&mut record, body);
            record.set("shopify_order_id", id(body, "id"));
            record.set("shopify_order_name", text(body, "name"));
            record.set("shopify_financial_status", text(body, "financial_status"));
            totals(&mut record, body);
        }
        Some("checkouts") => {
            buyer(&mut record, body);
            record.set("shopify_checkout_id", id(body, "id"));
            record.set(
                "shopify_abandoned_checkout_url",
                text(body, "abandoned_checkout_url"),
            );
            totals(&mut record, body);
        }
        _ => buyer(&mut record, body),
    }
    record.set("shopify_topic", Some(topic.as_str()));
    record.set(
        "shopify_shop_domain",
        header(
            input.headers,
            &["x-shopify-shop-domain", "shopify-shop-domain"],
        ),
    );
    Ok(Delivery {
        event: topic.replace('/', "."),
        provider_event_key: topic,
        dedupe_id,
        action: record.into_action(IDENTITY),
    })
}

/// The customer behind an order-like resource.
fn buyer(record: &mut Record, resource: &Value) {
    for path in ["email", "contact_email", "customer.email"] {
        record.email(text(resource, path));
    }
    record.names(
        text(resource, "customer.first_name"),
        text(resource, "customer.last_name"),
    );
    record.names(
        text(resource, "billing_address.first_name"),
        text(resource, "billing_address.last_name"),
    );
    record.set("shopify_customer_id", id(resource, "customer.id"));
}

fn totals(record: &mut Record, resource: &Value) {
    record.set("shopify_total_price", text(resource, "total_price"));
    record.set("shopify_currency", text(resource, "currency"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{fired, ignored, map, record_json, NOW_RFC3339};
    use super::super::testing::provider;
    use crate::{MapError, Verified};

    const ORDER: &str = include_str!("../../tests/data/shopify/orders.paid.json");

    #[test]
    fn orders_paid_sample() {
        let headers = [
            ("X-Shopify-Topic", "orders/paid"),
            ("X-Shopify-Shop-Domain", "shop.myshopify.com"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ];
        let delivery = map(provider("shopify"), &headers, ORDER);
        assert_eq!(delivery.event, "orders.paid");
        assert_eq!(delivery.provider_event_key, "orders/paid");
        assert_eq!(delivery.dedupe_id, "98880550-7158-44d4-b7cd-2c97c8a091b5");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "bob.norman@mail.example.com", "firstName": "Bob",
                   "lastName": "Norman", "shopify_customer_id": "207119551",
                   "shopify_order_id": "450789469", "shopify_order_name": "#1001",
                   "shopify_financial_status": "partially_refunded",
                   "shopify_total_price": "598.94", "shopify_currency": "USD",
                   "shopify_topic": "orders/paid",
                   "shopify_shop_domain": "shop.myshopify.com"})
        );
    }

    #[test]
    fn newer_lower_case_headers_and_webhook_id_fallback() {
        let headers = [
            ("shopify-topic", "orders/create"),
            ("shopify-webhook-id", "wh-1"),
        ];
        let delivery = map(provider("shopify"), &headers, ORDER);
        assert_eq!(delivery.event, "orders.create");
        assert_eq!(delivery.dedupe_id, "wh-1");
    }

    #[test]
    fn order_email_falls_back_to_the_customer() {
        let body = json!({"id": 1, "email": "", "contact_email": null,
            "customer": {"id": 2, "email": "c@example.com"}});
        let delivery = map(
            provider("shopify"),
            &[("X-Shopify-Topic", "orders/create")],
            &body.to_string(),
        );
        assert_eq!(fired(&delivery).email.as_deref(), Some("c@example.com"));
    }

    #[test]
    fn customers_create_uses_the_customer() {
        let body = json!({"id": 706405506930370084_u64, "email": "bob@biller.com",
            "first_name": "Bob", "last_name": "Biller", "phone": null});
        let delivery = map(
            provider("shopify"),
            &[("X-Shopify-Topic", "customers/create")],
            &body.to_string(),
        );
        assert_eq!(
            record_json(&delivery),
            json!({"email": "bob@biller.com", "firstName": "Bob", "lastName": "Biller",
                   "shopify_customer_id": "706405506930370084",
                   "shopify_topic": "customers/create"})
        );
    }

    #[test]
    fn customers_delete_resolves_by_customer_id() {
        let body = r#"{"id": 706405506930370084, "phone": null, "addresses": []}"#;
        let delivery = map(
            provider("shopify"),
            &[("X-Shopify-Topic", "customers/delete")],
            body,
        );
        let record = fired(&delivery);
        assert_eq!(
            record.lookup,
            Some((
                "shopify_customer_id".to_owned(),
                "706405506930370084".to_owned()
            ))
        );
        assert_eq!(record.fields["shopify_deleted_at"], json!(NOW_RFC3339));
    }

    #[test]
    fn guest_order_without_email_is_ignored() {
        let delivery = map(
            provider("shopify"),
            &[("X-Shopify-Topic", "orders/paid")],
            r#"{"id": 1, "email": null, "customer": null}"#,
        );
        assert_eq!(ignored(&delivery), "no_email");
    }

    #[test]
    fn missing_topic_is_an_error() {
        let verified = Verified::for_test(provider("shopify"), &[], ORDER);
        assert_eq!(
            crate::map(&verified, &json!({}), 0),
            Err(MapError::MissingEvent("X-Shopify-Topic"))
        );
    }

    #[test]
    fn event_names_replace_slashes() {
        for event in provider("shopify").events() {
            assert_eq!(event.name, event.provider_key.replace('/', "."));
        }
    }
}
