//! Stripe: `{id: "evt_...", type, created, data: {object}}`. Customers, invoices and
//! checkout sessions carry an email; subscriptions only their customer's id.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, at, boolean_field, event, int, number_field, read_from_body, rfc3339, string_field, text};
use crate::{Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    event("customer.created"),
    event("customer.updated"),
    event("customer.deleted"),
    event("customer.subscription.created"),
    event("customer.subscription.updated"),
    event("customer.subscription.deleted"),
    event("customer.subscription.paused"),
    event("customer.subscription.resumed"),
    event("customer.subscription.trial_will_end"),
    event("invoice.paid"),
    event("invoice.payment_failed"),
    event("checkout.session.completed"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("stripe_customer_id"),
    string_field("stripe_subscription_id"),
    string_field("stripe_subscription_status"),
    string_field("stripe_plan"),
    string_field("stripe_product_id"),
    boolean_field("stripe_cancel_at_period_end"),
    string_field("stripe_trial_end"),
    string_field("stripe_invoice_id"),
    string_field("stripe_invoice_status"),
    string_field("stripe_checkout_session_id"),
    string_field("stripe_payment_status"),
    number_field("stripe_amount"),
    string_field("stripe_currency"),
    string_field("stripe_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["stripe_customer_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: read_from_body,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("type")?;
    let object = at(&input.body, "data.object").unwrap_or(&Value::Null);
    let kind = text(object, "object");
    let mut record = Record::default();
    for path in [
        "customer_details.email",
        "customer_email",
        "email",
        "receipt_email",
        "billing_details.email",
    ] {
        record.email(text(object, path));
    }
    if kind == Some("customer") {
        record.full_name(text(object, "name"));
        record.set("stripe_customer_id", text(object, "id"));
    } else {
        record.full_name(text(object, "customer_details.name"));
        record.full_name(text(object, "customer_name"));
        record.set("stripe_customer_id", reference(object, "customer"));
    }
    match kind {
        Some("subscription") => subscription(&mut record, object),
        Some("invoice") => invoice(&mut record, object),
        Some("checkout.session") => checkout_session(&mut record, object),
        _ => {}
    }
    if event == "customer.deleted" {
        let deleted_at = input.deleted_at(int(&input.body, "created"));
        record.set("stripe_deleted_at", deleted_at);
    }
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_id("id").unwrap_or_else(|| input.body_hash()),
        action: record.into_action(IDENTITY),
    })
}

/// An id field that Stripe sends either as the id or, when expanded, as the object.
fn reference<'a>(object: &'a Value, path: &str) -> Option<&'a str> {
    text(object, path).or_else(|| text(object, &format!("{path}.id")))
}

fn subscription(record: &mut Record, subscription: &Value) {
    record.set("stripe_subscription_id", text(subscription, "id"));
    record.set("stripe_subscription_status", text(subscription, "status"));
    for plan in ["items.data.0.price.id", "items.data.0.plan.id", "plan.id"] {
        record.set("stripe_plan", text(subscription, plan));
    }
    record.set(
        "stripe_product_id",
        reference(subscription, "items.data.0.price.product"),
    );
    record.set(
        "stripe_cancel_at_period_end",
        at(subscription, "cancel_at_period_end").and_then(Value::as_bool),
    );
    record.set(
        "stripe_trial_end",
        int(subscription, "trial_end").and_then(rfc3339),
    );
}

fn invoice(record: &mut Record, invoice: &Value) {
    record.set("stripe_invoice_id", text(invoice, "id"));
    let status = text(invoice, "status");
    record.set("stripe_invoice_status", status);
    record.set("stripe_subscription_id", reference(invoice, "subscription"));
    record.set(
        "stripe_subscription_id",
        text(invoice, "parent.subscription_details.subscription"),
    );
    let amount = if status == Some("paid") {
        "amount_paid"
    } else {
        "amount_due"
    };
    record.set("stripe_amount", at(invoice, amount).cloned());
    record.set("stripe_currency", text(invoice, "currency"));
}

fn checkout_session(record: &mut Record, session: &Value) {
    record.set("stripe_checkout_session_id", text(session, "id"));
    record.set("stripe_subscription_id", reference(session, "subscription"));
    record.set("stripe_payment_status", text(session, "payment_status"));
    record.set("stripe_amount", at(session, "amount_total").cloned());
    record.set("stripe_currency", text(session, "currency"));
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testing::{fired, ignored, map, record_json};
    use super::super::testing::provider;

    const OBJECTS: &str = include_str!("../../tests/data/stripe/data.object.fixtures.json");
    const PLAN_CREATED: &str =
        include_str!("../../tests/data/stripe/event.plan.created.fixture.json");

    /// The fixture event envelope around one of the fixture objects.
    fn event(kind: &str, object: Value) -> String {
        let mut envelope: Value = serde_json::from_str(PLAN_CREATED).unwrap();
        envelope["type"] = json!(kind);
        envelope["data"]["object"] = object;
        envelope.to_string()
    }

    fn fixture(name: &str) -> Value {
        serde_json::from_str::<Value>(OBJECTS).unwrap()[name].clone()
    }

    #[test]
    fn plan_created_sample_has_no_contact() {
        let delivery = map(provider("stripe"), &[], PLAN_CREATED);
        assert_eq!(delivery.event, "plan.created");
        assert_eq!(delivery.dedupe_id, "evt_1Pgc76B7WZ01zgkWwyRHS12y");
        assert_eq!(ignored(&delivery), "no_email");
    }

    #[test]
    fn subscription_resolves_by_customer() {
        let body = event("customer.subscription.updated", fixture("subscription"));
        let delivery = map(provider("stripe"), &[], &body);
        let record = fired(&delivery);
        assert_eq!(record.email, None);
        assert_eq!(
            record.lookup,
            Some((
                "stripe_customer_id".to_owned(),
                "cus_QXg1o8vcGmoR32".to_owned()
            ))
        );
        assert_eq!(
            record_json(&delivery),
            json!({"stripe_customer_id": "cus_QXg1o8vcGmoR32",
                   "stripe_subscription_id": "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
                   "stripe_subscription_status": "active",
                   "stripe_plan": "price_1PgafmB7WZ01zgkW6dKueIc5",
                   "stripe_product_id": "prod_QXg1hqf4jFNsqG",
                   "stripe_cancel_at_period_end": true})
        );
    }

    #[test]
    fn customer_without_email_resolves_by_its_id() {
        let body = event("customer.updated", fixture("customer"));
        let delivery = map(provider("stripe"), &[], &body);
        assert_eq!(
            fired(&delivery).lookup,
            Some((
                "stripe_customer_id".to_owned(),
                "cus_QXg1o8vcGmoR32".to_owned()
            ))
        );
    }

    #[test]
    fn customer_deleted_carries_email_name_and_deletion_time() {
        let mut customer = fixture("customer");
        customer["email"] = json!("ada@example.com");
        customer["name"] = json!("Ada Lovelace");
        let delivery = map(provider("stripe"), &[], &event("customer.deleted", customer));
        assert_eq!(
            record_json(&delivery),
            json!({"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
                   "stripe_customer_id": "cus_QXg1o8vcGmoR32",
                   "stripe_deleted_at": "2009-02-13T23:31:30Z"})
        );
    }

    #[test]
    fn invoice_uses_customer_email_and_amount() {
        let mut invoice = fixture("invoice");
        invoice["customer_email"] = json!("payer@example.com");
        invoice["status"] = json!("paid");
        invoice["amount_paid"] = json!(1000);
        let delivery = map(provider("stripe"), &[], &event("invoice.paid", invoice));
        assert_eq!(
            record_json(&delivery),
            json!({"email": "payer@example.com", "stripe_customer_id": "cus_QXg1o8vcGmoR32",
                   "stripe_invoice_id": "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
                   "stripe_invoice_status": "paid", "stripe_subscription_id": "subscription",
                   "stripe_amount": 1000, "stripe_currency": "usd"})
        );
    }

    #[test]
    fn unpaid_invoice_without_email_reports_the_amount_due() {
        let delivery = map(
            provider("stripe"),
            &[],
            &event("invoice.payment_failed", fixture("invoice")),
        );
        let record = fired(&delivery);
        assert_eq!(record.email, None);
        assert_eq!(record.fields["stripe_amount"], json!(1000));
    }

    #[test]
    fn checkout_session_uses_customer_details() {
        let session = json!({"id": "cs_1", "object": "checkout.session", "customer": null,
            "customer_email": null, "amount_total": 2000, "currency": "usd",
            "payment_status": "paid", "subscription": {"id": "sub_1", "object": "subscription"},
            "customer_details": {"email": "buyer@example.com", "name": "Grace Hopper"}});
        let delivery = map(
            provider("stripe"),
            &[],
            &event("checkout.session.completed", session),
        );
        assert_eq!(
            record_json(&delivery),
            json!({"email": "buyer@example.com", "firstName": "Grace", "lastName": "Hopper",
                   "stripe_checkout_session_id": "cs_1", "stripe_subscription_id": "sub_1",
                   "stripe_payment_status": "paid", "stripe_amount": 2000,
                   "stripe_currency": "usd"})
        );
    }
}
