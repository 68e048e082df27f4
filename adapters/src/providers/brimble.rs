//! Brimble: `{event, data}`, every event of its webhook reference. Subscription and payment
//! events carry `data.user.email`; the others only `data.user_id`, through which the contact
//! is resolved.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, at, body_hash_only, event, id, number_field, string_field, text};
use crate::{Action, Delivery, EventSpec, FieldSpec, MapError, SkipReason};

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    dedupe_before_parsing: body_hash_only,
    options: ConnectionOptions::NONE,
};

const EVENTS: &[EventSpec] = &[
    event("deployment.success"),
    event("deployment.failed"),
    event("project.created"),
    event("project.updated"),
    event("project.deleted"),
    event("project.domain.updated"),
    event("domain.created"),
    event("domain.purchased"),
    event("domain.renewed"),
    event("dns.record.created"),
    event("dns.record.updated"),
    event("dns.record.deleted"),
    event("environment.variables.added"),
    event("environment.variables.updated"),
    event("environment.variables.deleted"),
    event("autoscaling.group.created"),
    event("autoscaling.group.updated"),
    event("autoscaling.group.deleted"),
    event("subscription.created"),
    event("subscription.upgraded"),
    event("subscription.downgraded"),
    event("subscription.renewed"),
    event("subscription.renewal_failed"),
    event("subscription.past_due"),
    event("subscription.unpaid"),
    event("subscription.paused"),
    event("subscription.reactivated"),
    event("subscription.canceled"),
    event("subscription.incomplete_expired"),
    event("payment.successful"),
    event("payment.failed"),
];

const FIELDS: &[FieldSpec] = &[
    string_field("brimble_user_id"),
    string_field("brimble_team_id"),
    string_field("brimble_project_id"),
    string_field("brimble_project_name"),
    string_field("brimble_deployment_status"),
    string_field("brimble_domain"),
    string_field("brimble_domain_id"),
    string_field("brimble_dns_record_id"),
    string_field("brimble_environment"),
    string_field("brimble_variable"),
    string_field("brimble_autoscaling_group_id"),
    string_field("brimble_autoscaling_group_name"),
    string_field("brimble_subscription_id"),
    string_field("brimble_subscription_status"),
    string_field("brimble_plan"),
    string_field("brimble_previous_plan"),
    string_field("brimble_invoice_id"),
    number_field("brimble_amount"),
    string_field("brimble_currency"),
    string_field("brimble_failure_reason"),
    string_field("brimble_cancellation_reason"),
];

const IDENTITY: &[&str] = &["brimble_user_id"];

fn map(input: &Input) -> Result<Delivery, MapError> {
    let event = input.event_at("event")?;
    let Some(data) = at(&input.body, "data").filter(|d| d.is_object()) else {
        return Ok(Delivery {
            provider_event_key: event.clone(),
            event,
            dedupe_id: input.body_hash(),
            action: Action::Ignore(SkipReason::NoData),
        });
    };
    let mut record = Record::default();
    record.email(text(data, "user.email"));
    record.set("brimble_user_id", id(data, "user_id"));
    record.set("brimble_user_id", id(data, "user.id"));
    record.set("brimble_team_id", id(data, "team_id"));
    record.set("brimble_team_id", id(data, "team.id"));
    record.set("brimble_project_id", id(data, "project_id"));
    match event.split('.').next() {
        // `name` is the project's for project events, the branch's for deployments.
        Some("project") => record.set("brimble_project_name", text(data, "name")),
        Some("deployment") => record.set("brimble_deployment_status", text(data, "status")),
        Some("autoscaling") => record.set("brimble_autoscaling_group_name", text(data, "name")),
        _ => {}
    }
    domain(&mut record, data);
    record.set("brimble_dns_record_id", id(data, "record.id"));
    record.set("brimble_environment", text(data, "environment"));
    record.set("brimble_variable", text(data, "variable"));
    record.set(
        "brimble_autoscaling_group_id",
        id(data, "autoscaling_group_id"),
    );
    billing(&mut record, data);
    Ok(Delivery {
        provider_event_key: event.clone(),
        event,
        dedupe_id: input.body_hash(),
        action: record.into_action(IDENTITY),
    })
}

/// `domain` is a name on domain and DNS events, `{new}` on `project.domain.updated`.
fn domain(record: &mut Record, data: &Value) {
    record.set("brimble_domain", text(data, "domain"));
    record.set("brimble_domain", text(data, "domain.new"));
    record.set("brimble_domain_id", id(data, "domain_id"));
}

fn billing(record: &mut Record, data: &Value) {
    record.set("brimble_subscription_id", id(data, "subscription.id"));
    record.set(
        "brimble_subscription_status",
        text(data, "subscription.stripe_status"),
    );
    record.set("brimble_plan", text(data, "subscription.current_plan"));
    record.set("brimble_plan", text(data, "subscription.plan_type"));
    record.set("brimble_previous_plan", text(data, "subscription.previous_plan"));
    record.set("brimble_invoice_id", id(data, "invoice.stripe_invoice_id"));
    record.set("brimble_amount", at(data, "invoice.amount_paid").filter(|v| v.is_number()).cloned());
    record.set("brimble_amount", at(data, "invoice.amount_due").filter(|v| v.is_number()).cloned());
    record.set("brimble_currency", text(data, "invoice.currency"));
    record.set("brimble_failure_reason", text(data, "failure_reason"));
    record.set("brimble_cancellation_reason", text(data, "cancellation_reason"));
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
                   "brimble_plan": "hacker-plan", "brimble_invoice_id": "in_1", "brimble_amount": 2000,
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

    #[test]
    fn null_or_missing_data_is_ignored() {
        for body in [
            r#"{"event": "project.updated", "data": null}"#,
            r#"{"event": "project.updated"}"#,
            r#"{"event": "project.updated", "data": [1]}"#,
        ] {
            let delivery = map(provider("brimble"), &[], body);
            assert_eq!(delivery.event, "project.updated");
            assert_eq!(ignored(&delivery), "no_data", "{body}");
        }
    }

    #[test]
    fn upgrade_names_the_current_plan() {
        let body = json!({"event": "subscription.upgraded", "data": {
            "subscription": {"id": "s1", "stripe_id": "sub_1", "stripe_status": "active",
                             "plan_type": "hacker-plan", "type": "default",
                             "previous_plan": "free-plan", "current_plan": "pro-plan"},
            "user": {"id": "u1", "email": "dev@example.com"}, "team": {"id": "t1"}}});
        let delivery = map(provider("brimble"), &[], &body.to_string());
        assert_eq!(record_json(&delivery)["brimble_plan"], json!("pro-plan"));
        assert_eq!(
            record_json(&delivery)["brimble_previous_plan"],
            json!("free-plan")
        );
    }
}
