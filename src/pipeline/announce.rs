//! What the pipeline tells the events bus once a fact is committed: each recorded fire,
//! and each receive-URL request with what it came to.

use serde_json::{json, Value};

use super::{Delivered, Fired, Outcome};
use crate::clock::rfc3339;
use crate::domain::FireOutcome;
use crate::store::{FireMode, FireWrite, LiveConnection};

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

/// The `delivery` event of a receive-URL request on `connection`.
pub fn delivery(connection: &LiveConnection, received_at_ms: i64, delivered: &Delivered) -> Value {
    let mut data = json!({
        "connectionId": connection.row.id,
        "provider": connection.provider.slug(),
        "receivedAt": rfc3339(received_at_ms),
    });
    match delivered {
        Delivered::Rejected(rejection) => {
            data["status"] = json!("rejected");
            data["reason"] = json!(rejection.reason());
            data["httpStatus"] = json!(rejection.http_status());
        }
        Delivered::Answered {
            event,
            trigger_id,
            outcome,
        } => {
            let (status, fired, reason) = match outcome {
                Outcome::Triggered(f) => ("triggered", Some(f), None),
                Outcome::NoPublishedAutomation(f) => ("no_published_automation", Some(f), None),
                Outcome::TriggerDisabled(_) => ("ignored", None, Some("trigger_disabled")),
                Outcome::Ignored(reason) => ("ignored", None, Some(reason.as_str())),
                Outcome::Replay(f) | Outcome::Conflict(f) => ("duplicate", Some(f), None),
            };
            data["status"] = json!(status);
            data["reason"] = json!(reason);
            data["httpStatus"] = json!(200);
            data["event"] = json!(event);
            data["triggerEventId"] = json!(trigger_id);
            data["triggerInstanceId"] = json!(fired.map(|f| &f.instance_id));
            data["automationRunIds"] = json!(fired
                .filter(|_| status != "duplicate")
                .map(|f| f.run_ids().collect::<Vec<_>>())
                .unwrap_or_default());
        }
    }
    data
}
