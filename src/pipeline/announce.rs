//! What the pipeline tells the events bus once a fact is committed: each recorded fire,
//! and each receive-URL request with what it came to. Each event borrows what it names;
//! the bus serialises it once.

use serde::Serialize;

use super::{Fired, Outcome};
use crate::clock::rfc3339;
use crate::domain::{DeliveryStatus, FireOutcome};
use crate::store::{FireMode, FireWrite, LiveConnection, LoggedDelivery};

/// The part of a fire's write its event names, kept before the write is consumed.
pub struct FireNote {
    pub org_id: String,
    trigger_id: String,
    source: String,
    mode: FireMode,
    contact_email: Option<String>,
}

impl FireNote {
    pub fn of(write: &FireWrite) -> FireNote {
        FireNote {
            org_id: write.org_id.clone(),
            trigger_id: write.trigger_id.clone(),
            source: write.source.clone(),
            mode: write.mode,
            contact_email: write.contact_email.as_ref().map(|e| e.as_str().to_owned()),
        }
    }

    /// The `fire` event of the recorded fire.
    pub fn data<'a>(&'a self, outcome: FireOutcome, fired: &'a Fired) -> FireEvent<'a> {
        let reason = match self.mode {
            FireMode::Ignore(reason) => Some(reason.as_str()),
            _ => None,
        };
        FireEvent {
            trigger_instance_id: &fired.instance_id,
            trigger_event_id: &self.trigger_id,
            source: &self.source,
            outcome,
            reason,
            contact_email: self.contact_email.as_deref(),
            automation_run_ids: fired.run_ids().collect(),
            received_at: rfc3339(fired.received_at_ms),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FireEvent<'a> {
    trigger_instance_id: &'a str,
    trigger_event_id: &'a str,
    source: &'a str,
    outcome: FireOutcome,
    reason: Option<&'static str>,
    contact_email: Option<&'a str>,
    automation_run_ids: Vec<&'a str>,
    received_at: String,
}

/// A `delivery` event, shaped like the delivery's row in the log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEvent<'a> {
    delivery_id: &'a str,
    connection_id: &'a str,
    provider: &'a str,
    event: Option<&'a str>,
    status: DeliveryStatus,
    reason: Option<&'a str>,
    http_status: u16,
    received_at: String,
    trigger_instance_id: Option<&'a str>,
    automation_run_ids: Vec<&'a str>,
}

/// The `delivery` event of a receive-URL request that was answered 200.
pub fn answered<'a>(
    connection: &'a LiveConnection,
    received_at_ms: i64,
    delivery_id: &'a str,
    event: &'a str,
    outcome: &'a Outcome,
) -> DeliveryEvent<'a> {
    let (status, fired, reason) = match outcome {
        Outcome::Triggered(f) => (DeliveryStatus::Triggered, Some(f), None),
        Outcome::NoPublishedAutomation(f) => (DeliveryStatus::NoPublishedAutomation, Some(f), None),
        Outcome::TriggerDisabled(_) => (DeliveryStatus::Ignored, None, Some("trigger_disabled")),
        Outcome::Ignored(reason) => (DeliveryStatus::Ignored, None, Some(reason.as_str())),
        Outcome::Replay(f) | Outcome::Conflict(f) => (DeliveryStatus::Duplicate, Some(f), None),
    };
    let automation_run_ids = match outcome {
        Outcome::Triggered(f) | Outcome::NoPublishedAutomation(f) => f.run_ids().collect(),
        _ => vec![],
    };
    DeliveryEvent {
        delivery_id,
        connection_id: &connection.row.id,
        provider: connection.provider.slug(),
        event: Some(event),
        status,
        reason,
        http_status: 200,
        received_at: rfc3339(received_at_ms),
        trigger_instance_id: fired.map(|f| f.instance_id.as_str()),
        automation_run_ids,
    }
}

/// The `delivery` event of a rejected receive-URL request.
pub fn rejected(logged: &LoggedDelivery) -> DeliveryEvent<'_> {
    let (arrival, verdict) = (&logged.arrival, &logged.verdict);
    DeliveryEvent {
        delivery_id: &arrival.id,
        connection_id: &arrival.connection_id,
        provider: &arrival.provider,
        event: arrival.event.as_deref(),
        status: verdict.status,
        reason: verdict.reason.as_deref(),
        http_status: verdict.http_status,
        received_at: rfc3339(arrival.received_at_ms),
        trigger_instance_id: verdict.trigger_instance_id.as_deref(),
        automation_run_ids: verdict.run_ids.iter().map(String::as_str).collect(),
    }
}

#[cfg(test)]
mod tests {
    use adapters::Provider;
    use serde_json::Value;

    use super::*;
    use crate::domain::IgnoreReason;
    use crate::store::{Arrival, ConnectionRow, StartedRun, Verdict};

    /// 2026-01-01T00:00:00.401Z.
    const AT: i64 = 1_767_225_600_401;

    fn json(event: impl Serialize) -> String {
        serde_json::to_string(&event).unwrap()
    }

    fn fired() -> Fired {
        Fired {
            instance_id: "tin_1".into(),
            received_at_ms: AT,
            runs: vec![StartedRun {
                run_id: "run_1".into(),
                automation_id: "aut_1".into(),
                automation_name: "Welcome".into(),
            }],
        }
    }

    #[test]
    fn an_answered_delivery_is_told_as_its_log_row() {
        let connection = LiveConnection {
            row: ConnectionRow {
                id: "con_1".into(),
                org_id: "org_1".into(),
                provider: "clerk".into(),
                name: "Clerk".into(),
                enabled: true,
                options: "{}".into(),
                created_at: 0,
                updated_at: 0,
            },
            provider: Provider::from_slug("clerk").unwrap(),
            secrets: vec![],
            secret_ids: vec![],
            options: Value::Null,
        };
        let triggered = Outcome::Triggered(fired());
        assert_eq!(
            json(answered(
                &connection,
                AT,
                "dlv_1",
                "user.created",
                &triggered
            )),
            r#"{"deliveryId":"dlv_1","connectionId":"con_1","provider":"clerk","event":"user.created","status":"triggered","reason":null,"httpStatus":200,"receivedAt":"2026-01-01T00:00:00.401Z","triggerInstanceId":"tin_1","automationRunIds":["run_1"]}"#
        );
        // A repeat names the earlier fire, not its runs.
        let repeat = Outcome::Replay(fired());
        assert_eq!(
            json(answered(&connection, AT, "dlv_2", "user.created", &repeat)),
            r#"{"deliveryId":"dlv_2","connectionId":"con_1","provider":"clerk","event":"user.created","status":"duplicate","reason":null,"httpStatus":200,"receivedAt":"2026-01-01T00:00:00.401Z","triggerInstanceId":"tin_1","automationRunIds":[]}"#
        );
        let ignored = Outcome::Ignored(IgnoreReason::EventNotMapped);
        assert_eq!(
            json(answered(&connection, AT, "dlv_3", "user.deleted", &ignored)),
            r#"{"deliveryId":"dlv_3","connectionId":"con_1","provider":"clerk","event":"user.deleted","status":"ignored","reason":"event_not_mapped","httpStatus":200,"receivedAt":"2026-01-01T00:00:00.401Z","triggerInstanceId":null,"automationRunIds":[]}"#
        );
    }

    #[test]
    fn a_rejected_delivery_is_told_without_its_headers_or_body() {
        let logged = LoggedDelivery {
            arrival: Arrival {
                id: "dlv_1".into(),
                org_id: "org_1".into(),
                connection_id: "con_1".into(),
                provider: "stripe".into(),
                event: None,
                received_at_ms: AT,
                trigger_id: None,
                headers: r#"{"stripe-signature":"[redacted]"}"#.into(),
                body_bytes: 12,
                body: None,
                replay_of: None,
            },
            verdict: Verdict {
                status: DeliveryStatus::Rejected,
                reason: Some("signature_mismatch".into()),
                http_status: 401,
                trigger_instance_id: None,
                run_ids: vec![],
            },
        };
        assert_eq!(
            json(rejected(&logged)),
            r#"{"deliveryId":"dlv_1","connectionId":"con_1","provider":"stripe","event":null,"status":"rejected","reason":"signature_mismatch","httpStatus":401,"receivedAt":"2026-01-01T00:00:00.401Z","triggerInstanceId":null,"automationRunIds":[]}"#
        );
    }

    #[test]
    fn a_fire_is_told_with_its_runs() {
        let note = FireNote {
            org_id: "org_1".into(),
            trigger_id: "tri_1".into(),
            source: "api".into(),
            mode: FireMode::Run,
            contact_email: Some("ada@example.com".into()),
        };
        assert_eq!(
            json(note.data(FireOutcome::Triggered, &fired())),
            r#"{"triggerInstanceId":"tin_1","triggerEventId":"tri_1","source":"api","outcome":"triggered","reason":null,"contactEmail":"ada@example.com","automationRunIds":["run_1"],"receivedAt":"2026-01-01T00:00:00.401Z"}"#
        );
    }
}
