//! Brimble: `{event, data}`. Subscription and payment events carry `data.user.email`; the
//! others only `data.user_id`, through which the contact is resolved.

use serde_json::Value;

use super::{ConnectionOptions, Mapping, at, event, id, number_field, string_field, text, Input, Record};
use crate::{Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    event("subscription.created"),
    event("subscription.upgraded"),
    event("subscription.downgraded"),
    event("subscription.renewed"),
    event("subscription.renewal_failed"),
    event("subscription.past_due"),
    event("subscription.reactivated"),
    event("subscription.canceled"),
    event("payment.successful"),
    event("payment.failed"),
    event("deployment.success"),
    event("deployment.failed"),
    event("project.created"),
    event("project.deleted"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("brimble_user_id"),
    string_field("brimble_team_id"),
    string_field("brimble_project_id"),
    string_field("brimble_project_name"),
    string_field("brimble_deployment_status"),
    string_field("brimble_subscription_id"),
    string_field("brimble_subscription_status"),
    string_field("brimble_plan"),
    number_field("brimble_amount"),
    string_field("brimble_currency"),
    string_field("brimble_failure_reason"),
];

pub(super) const IDENTITY: &[&str] = &["brimble_user_id"];

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("event")?;
    let data = input.body.get("data").unwrap_or(&Value::Null);
    let mut record = Record::default();
    record.email(text(data, "user.email"));
    record.set("brimble_user_id", id(data, "user_id"));
    record.set("brimble_user_id", id(data, "user.id"));
    record.set("brimble_team_id", id(data, "team_id"));
    record.set("brimble_team_id", id(data, "team.id"));
    record.set("brimble_project_id", id(data, "project_id"));
    if event.starts_with("project.") {
        record.set("brimble_project_name", text(data, "name"));
    }
    if event.starts_with("deployment.") {
        record.set("brimble_deployment_status", text(data, "status"));
    }
    record.set("brimble_subscription_id", id(data, "subscription.id"));
    record.set(
        "brimble_subscription_status",
        text(data, "subscription.stripe_status"),
    );
    record.set("brimble_plan", text(data, "subscription.plan_type"));
    record.set("brimble_amount", at(data, "invoice.amount_paid").cloned());
    record.set("brimble_amount", at(data, "invoice.amount_due").cloned());
    record.set("brimble_currency", text(data, "invoice.currency"));
    record.set("brimble_failure_reason", text(data, "failure_reason"));
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_hash(),
        action: record.into_action(IDENTITY),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{fired, ignored, map, record_json};
    use super::super::testing::provider;

    const DEPLOYMENT_SUCCESS: &str =
        include_str!("../../tests/data/brimble/deployment.success.json");

    #[test]
    fn deployment_sample_resolves_by_user_id() {
        let delivery = map(provider("brimble"), &[], DEPLOYMENT_SUCCESS);
        assert_eq!(delivery.event, "deployment.success");
        assert_eq!(delivery.dedupe_id.len(), 64);
        let record = fired(&delivery);
        assert_eq!(record.email, None);
        assert_eq!(
            record.lookup,
            Some(("brimble_user_id".to_owned(), "65a1...".to_owned()))
        );
        assert_eq!(
            record_json(&delivery),
            json!({"brimble_user_id": "65a1...", "brimble_project_id": "65a2...",
                   "brimble_deployment_status": "ACTIVE"})
        );
    }

    #[test]
    fn payment_failed_uses_the_user_email() {
        let body = json!({"event": "payment.failed", "data": {
            "invoice": {"stripe_invoice_id": "in_1", "amount_due": 2000, "currency": "usd",
                        "status": "open", "attempt_count": 2},
            "user": {"id": "u1", "email": "dev@example.com"},
            "subscription": {"id": "s1", "stripe_id": "sub_1", "plan_type": "hacker-plan",
                             "stripe_status": "past_due"},
            "team": null, "failure_reason": "card_declined"}});
        let delivery = map(provider("brimble"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"email": "dev@example.com", "brimble_user_id": "u1",
                   "brimble_subscription_id": "s1", "brimble_subscription_status": "past_due",
                   "brimble_plan": "hacker-plan", "brimble_amount": 2000,
                   "brimble_currency": "usd", "brimble_failure_reason": "card_declined"})
        );
    }

    #[test]
    fn project_created_names_the_project() {
        let body = json!({"event": "project.created", "data": {"name": "acme-api",
            "user_id": "u1", "project_id": "p1", "team_id": "t1", "type": "web-service"}});
        let delivery = map(provider("brimble"), &[], &body.to_string());
        assert_eq!(
            record_json(&delivery),
            json!({"brimble_user_id": "u1", "brimble_team_id": "t1",
                   "brimble_project_id": "p1", "brimble_project_name": "acme-api"})
        );
    }

    #[test]
    fn event_without_user_is_ignored() {
        let body = r#"{"event": "autoscaling.group.created", "data": {"name": "g"}}"#;
        assert_eq!(ignored(&map(provider("brimble"), &[], body)), "no_email");
    }
}
