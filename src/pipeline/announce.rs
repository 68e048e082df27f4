//! What the pipeline tells the events bus once a fact is committed: each recorded fire,
//! and each receive-URL request with what it came to.

use serde_json::{json, Value};

use super::{Fired, Outcome};
use crate::clock::rfc3339;
use crate::domain::FireOutcome;
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
    pub fn data(&self, outcome: FireOutcome, fired: &Fired) -> Value {
        let reason = match self.mode {
            FireMode::Ignore(reason) => Some(reason.as_str()),
            _ => None,
        };
        json!({
            "triggerInstanceId": fired.instance_id,
            "triggerEventId": self.trigger_id,
            "source": self.source,
            "outcome": outcome,
            "reason": reason,
            "contactEmail": self.contact_email,
            "automationRunIds": fired.run_ids().collect::<Vec<_>>(),
            "receivedAt": rfc3339(fired.received_at_ms),
        })
    }
}

/// The `delivery` event of a receive-URL request that was answered 200, shaped like its
/// row in the delivery log.
pub fn answered(
    connection: &LiveConnection,
    received_at_ms: i64,
    delivery_id: &str,
    event: &str,
    outcome: &Outcome,
) -> Value {
    let (status, fired, reason) = match outcome {
        Outcome::Triggered(f) => ("triggered", Some(f), None),
        Outcome::NoPublishedAutomation(f) => ("no_published_automation", Some(f), None),
        Outcome::TriggerDisabled(_) => ("ignored", None, Some("trigger_disabled")),
        Outcome::Ignored(reason) => ("ignored", None, Some(reason.as_str())),
        Outcome::Replay(f) | Outcome::Conflict(f) => ("duplicate", Some(f), None),
    };
    let run_ids: Vec<&str> = match outcome {
        Outcome::Triggered(f) | Outcome::NoPublishedAutomation(f) => f.run_ids().collect(),
        _ => vec![],
    };
    json!({
        "deliveryId": delivery_id,
        "connectionId": connection.row.id,
        "provider": connection.provider.slug(),
        "event": event,
        "status": status,
        "reason": reason,
        "httpStatus": 200,
        "receivedAt": rfc3339(received_at_ms),
        "triggerInstanceId": fired.map(|f| &f.instance_id),
        "automationRunIds": run_ids,
    })
}

/// The `delivery` event of a rejected receive-URL request.
pub fn rejected(logged: &LoggedDelivery) -> Value {
    let (arrival, verdict) = (&logged.arrival, &logged.verdict);
    json!({
        "deliveryId": arrival.id,
        "connectionId": arrival.connection_id,
        "provider": arrival.provider,
        "event": arrival.event,
        "status": verdict.status,
        "reason": verdict.reason,
        "httpStatus": verdict.http_status,
        "receivedAt": rfc3339(arrival.received_at_ms),
        "triggerInstanceId": verdict.trigger_instance_id,
        "automationRunIds": verdict.run_ids,
    })
}
