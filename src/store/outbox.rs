//! The outbox: outbound events written in the transaction of the change they report, with
//! one delivery per subscription that wants them, so a committed change is always told.
//! An org without subscriptions wanting a type writes nothing for it.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::fire::{FireRecord, FireWrite};
use super::{column, ContactRow};
use crate::clock::rfc3339;
use crate::domain::{EventType, FireOutcome};
use crate::ids;

/// An org's enabled subscriptions and the event types each wants, as writes consult them.
#[derive(Debug, Default)]
pub struct Subscribers(Vec<(String, Wanted)>);

#[derive(Debug)]
enum Wanted {
    All,
    Only(Vec<EventType>),
}

impl Subscribers {
    /// From `(subscription id, stored events filter)` rows; a filter that does not decode
    /// wants nothing rather than failing every write of the org.
    pub(super) fn from_rows(rows: Vec<(String, String)>) -> Subscribers {
        let subscribers = rows
            .into_iter()
            .filter_map(|(id, events)| {
                let events: Vec<String> = serde_json::from_str(&events).ok()?;
                let wanted = if events.iter().any(|e| e == "*") {
                    Wanted::All
                } else {
                    Wanted::Only(events.iter().filter_map(|e| e.parse().ok()).collect())
                };
                Some((id, wanted))
            })
            .collect();
        Subscribers(subscribers)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn wanting(&self, ty: EventType) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(move |(id, wanted)| match wanted {
            Wanted::All => Some(id.as_str()),
            Wanted::Only(types) => types.contains(&ty).then_some(id.as_str()),
        })
    }

    /// The event of type `ty` with one delivery per subscription wanting it, or `None`
    /// (and `data` never built) when none does.
    pub fn event<D: Serialize>(
        &self,
        org_id: &str,
        ty: EventType,
        now_ms: i64,
        data: impl FnOnce() -> D,
    ) -> Option<OutboundEvent> {
        let deliveries: Vec<(String, String)> = self
            .wanting(ty)
            .map(|sub| (ids::new_id(ids::OUTBOUND_DELIVERY), sub.to_owned()))
            .collect();
        if deliveries.is_empty() {
            return None;
        }
        let id = ids::new_id(ids::EVENT);
        let body = serde_json::to_string(&Message {
            id: &id,
            ty,
            created_at: rfc3339(now_ms),
            data: data(),
        })
        .expect("event data serialises");
        Some(OutboundEvent {
            id,
            org_id: org_id.to_owned(),
            event_type: ty,
            body,
            created_at: now_ms,
            deliveries,
        })
    }
}

/// The body of an outbound message. The event's data is serialised straight from the
/// fire's own values: building a `Value` tree first (and copying the payload into it) was
/// a tenth of the SQLite committer's time with a `"*"` subscription.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a, D> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: EventType,
    created_at: String,
    data: D,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TriggerFired<'a> {
    trigger_event_id: &'a str,
    trigger_instance_id: &'a str,
    provider: &'a str,
    event: Option<&'a str>,
    email: Option<&'a str>,
    payload: &'a Map<String, Value>,
    automation_run_ids: Vec<&'a str>,
    source: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunQueued<'a> {
    automation_run_id: &'a str,
    automation_id: &'a str,
    trigger_event_id: &'a str,
    email: Option<&'a str>,
}

/// An outbox row and its deliveries, to be written with the change it reports.
#[derive(Debug)]
pub struct OutboundEvent {
    pub id: String,
    pub org_id: String,
    pub event_type: EventType,
    /// The message body, sent byte for byte on every attempt.
    pub body: String,
    pub created_at: i64,
    /// `(delivery id, subscription id)`.
    pub deliveries: Vec<(String, String)>,
}

/// A contact as a fire left it.
#[derive(Debug)]
pub struct ContactChange {
    pub created: bool,
    pub row: ContactRow,
}

/// A receive-URL request that was refused, as `delivery.rejected` reports it.
#[derive(Debug)]
pub struct RejectedDelivery<'a> {
    pub org_id: &'a str,
    pub delivery_id: &'a str,
    pub connection_id: &'a str,
    pub provider: &'a str,
    pub reason: &'a str,
    pub now_ms: i64,
}

pub(super) const INSERT_EVENT: &str = "INSERT INTO outbound_events \
     (id, org_id, type, body, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(super) const INSERT_DELIVERY: &str = "INSERT INTO outbound_deliveries \
     (id, org_id, event_id, subscription_id, event_type, status, attempts, retry_step, \
     next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, 'pending', 0, 0, $6, $6, $6)";

/// Inserts many events and their deliveries on PostgreSQL in one round trip.
const INSERT_OUTBOX_PG: &str = "WITH events AS (INSERT INTO outbound_events \
     (id, org_id, type, body, created_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])) \
     INSERT INTO outbound_deliveries \
     (id, org_id, event_id, subscription_id, event_type, status, attempts, retry_step, \
     next_attempt_at, created_at, updated_at) \
     SELECT d.id, d.org_id, d.event_id, d.subscription_id, d.event_type, 'pending', 0, 0, \
     d.at, d.at, d.at FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
     $11::bigint[]) AS d(id, org_id, event_id, subscription_id, event_type, at)";

/// Writes `events` and their deliveries on an open PostgreSQL transaction.
pub(super) async fn insert_outbox_pg(
    conn: &mut sqlx::PgConnection,
    events: &[OutboundEvent],
) -> sqlx::Result<()> {
    let deliveries: Vec<(&OutboundEvent, &(String, String))> = events
        .iter()
        .flat_map(|e| e.deliveries.iter().map(move |d| (e, d)))
        .collect();
    sqlx::query(INSERT_OUTBOX_PG)
        .bind(column(events, |e| e.id.as_str()))
        .bind(column(events, |e| e.org_id.as_str()))
        .bind(column(events, |e| e.event_type.as_str()))
        .bind(column(events, |e| e.body.as_str()))
        .bind(column(events, |e| e.created_at))
        .bind(column(&deliveries, |(_, (id, _))| id.as_str()))
        .bind(column(&deliveries, |(e, _)| e.org_id.as_str()))
        .bind(column(&deliveries, |(e, _)| e.id.as_str()))
        .bind(column(&deliveries, |(_, (_, subscription))| {
            subscription.as_str()
        }))
        .bind(column(&deliveries, |(e, _)| e.event_type.as_str()))
        .bind(column(&deliveries, |(e, _)| e.created_at))
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts `$events` (a slice of [`OutboundEvent`]) with sqlx on the connection or
/// transaction `$conn`; the same text serves both backends.
macro_rules! insert_outbox {
    ($conn:expr, $events:expr) => {
        for event in $events {
            sqlx::query($crate::store::outbox::INSERT_EVENT)
                .bind(&event.id)
                .bind(&event.org_id)
                .bind(event.event_type.as_str())
                .bind(&event.body)
                .bind(event.created_at)
                .execute($conn)
                .await?;
            for (delivery_id, subscription_id) in &event.deliveries {
                sqlx::query($crate::store::outbox::INSERT_DELIVERY)
                    .bind(delivery_id)
                    .bind(&event.org_id)
                    .bind(&event.id)
                    .bind(subscription_id)
                    .bind(event.event_type.as_str())
                    .bind(event.created_at)
                    .execute($conn)
                    .await?;
            }
        }
    };
}
pub(super) use insert_outbox;

/// The events a committed fire reports: the contact change, the fire, one per run.
pub(super) fn fire_events(
    subscribers: &Subscribers,
    w: &FireWrite,
    record: &FireRecord,
    contact: Option<&ContactChange>,
) -> Vec<OutboundEvent> {
    if subscribers.is_empty() {
        return vec![];
    }
    let (org_id, now_ms) = (w.org_id.as_str(), w.now_ms);
    let mut events = vec![];
    if let Some(change) = contact {
        let ty = if change.created {
            EventType::ContactCreated
        } else {
            EventType::ContactUpdated
        };
        events.extend(subscribers.event(org_id, ty, now_ms, || change.row.as_json()));
    }
    let fired = matches!(
        record.outcome,
        FireOutcome::Triggered | FireOutcome::NoPublishedAutomation
    );
    if !fired {
        return events;
    }
    let email = w.contact_email.as_ref().map(|e| e.as_str());
    let integration = w.source != "api";
    events.extend(
        subscribers.event(org_id, EventType::TriggerFired, now_ms, || TriggerFired {
            trigger_event_id: &w.trigger_id,
            trigger_instance_id: &w.instance_id,
            provider: &w.source,
            // Integration trigger ids are `<provider>:<connection>:<event>`.
            event: integration
                .then(|| w.trigger_id.splitn(3, ':').nth(2))
                .flatten(),
            email,
            payload: &w.payload,
            automation_run_ids: record.runs.iter().map(|r| r.run_id.as_str()).collect(),
            source: if integration { "integration" } else { "api" },
        }),
    );
    for run in &record.runs {
        events.extend(
            subscribers.event(org_id, EventType::RunQueued, now_ms, || RunQueued {
                automation_run_id: &run.run_id,
                automation_id: &run.automation_id,
                trigger_event_id: &w.trigger_id,
                email,
            }),
        );
    }
    events
}

/// The `delivery.rejected` event of a refused receive-URL request.
pub(super) fn rejected_event(
    subscribers: &Subscribers,
    r: &RejectedDelivery<'_>,
) -> Option<OutboundEvent> {
    subscribers.event(r.org_id, EventType::DeliveryRejected, r.now_ms, || {
        json!({
            "deliveryId": r.delivery_id,
            "connectionId": r.connection_id,
            "provider": r.provider,
            "reason": r.reason,
        })
    })
}

/// Example `data` of each event type, for `GET /v1/webhook-subscriptions/event-types`.
pub fn example_data(ty: EventType) -> Value {
    match ty {
        EventType::TriggerFired => json!({
            "triggerEventId": "clerk:con_01JD3Q3W1V8K4ZQ9G7M2N5P6R8:user.created",
            "triggerInstanceId": "tin_01JD3Q4A9X2B7C5D6E8F0G1H2J",
            "provider": "clerk",
            "event": "user.created",
            "email": "jane@example.com",
            "payload": {"email": "jane@example.com", "firstName": "Jane", "clerk_user_id": "user_2x"},
            "automationRunIds": ["run_01JD3Q4A9Y3C8D6E7F9G0H1J2K"],
            "source": "integration",
        }),
        EventType::RunQueued => json!({
            "automationRunId": "run_01JD3Q4A9Y3C8D6E7F9G0H1J2K",
            "automationId": "aut_01JD3Q2Z5M6N7P8Q9R0S1T2V3W",
            "triggerEventId": "tri_01JD3Q1Y4K5L6M7N8P9Q0R1S2T",
            "email": "jane@example.com",
        }),
        EventType::ContactCreated | EventType::ContactUpdated => json!({
            "email": "jane@example.com",
            "firstName": "Jane",
            "lastName": null,
            "subscribed": null,
            "customFields": {"clerk_user_id": "user_2x"},
            "createdAt": "2026-11-22T06:21:45.123Z",
            "updatedAt": "2026-11-22T06:21:45.123Z",
        }),
        EventType::DeliveryRejected => json!({
            "deliveryId": "dlv_01JD3Q5B0Z4D9E7F8G0H1J2K3L",
            "connectionId": "con_01JD3Q3W1V8K4ZQ9G7M2N5P6R8",
            "provider": "stripe",
            "reason": "signature_mismatch",
        }),
    }
}

/// The message an event of type `ty` with `data` is sent as.
pub fn example_message(ty: EventType) -> Value {
    json!({
        "id": "evt_01JD3Q4B2C3D4E5F6G7H8J9K0M",
        "type": ty,
        "createdAt": "2026-11-22T06:21:45.123Z",
        "data": example_data(ty),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::domain::Email;
    use crate::store::{FireMode, StartedRun};

    fn integration_fire() -> FireWrite {
        FireWrite {
            org_id: "org_1".into(),
            trigger_id: "clerk:con_1:user.created".into(),
            instance_id: "tin_1".into(),
            source: "clerk".into(),
            claim: None,
            mode: FireMode::Run,
            contact_email: Email::parse("jane@example.com"),
            contact: Default::default(),
            identities: vec![],
            payload: json!({"email": "jane@example.com"})
                .as_object()
                .unwrap()
                .clone(),
            warnings: Value::Array(vec![]),
            release_key_without_runs: false,
            now_ms: 1_000,
            key_expired_before_ms: 0,
            delivery: None,
        }
    }

    fn triggered(runs: usize) -> FireRecord {
        FireRecord {
            outcome: FireOutcome::Triggered,
            runs: (0..runs)
                .map(|i| StartedRun {
                    run_id: format!("run_{i}"),
                    automation_id: format!("aut_{i}"),
                    automation_name: "a".into(),
                })
                .collect(),
        }
    }

    fn subscribers(rows: &[(&str, &str)]) -> Subscribers {
        Subscribers::from_rows(
            rows.iter()
                .map(|(id, events)| (id.to_string(), events.to_string()))
                .collect(),
        )
    }

    fn body(event: &OutboundEvent) -> Value {
        serde_json::from_str(&event.body).unwrap()
    }

    #[test]
    fn a_fire_reports_itself_and_each_run_to_the_subscriptions_that_want_them() {
        let subs = subscribers(&[
            ("whs_all", r#"["*"]"#),
            ("whs_runs", r#"["run.queued"]"#),
            ("whs_paused", "[]"),
        ]);
        let events = fire_events(&subs, &integration_fire(), &triggered(2), None);
        let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::TriggerFired,
                EventType::RunQueued,
                EventType::RunQueued
            ]
        );
        let fired = body(&events[0]);
        assert_eq!(fired["id"], events[0].id.as_str());
        assert_eq!(fired["type"], "trigger.fired");
        assert_eq!(fired["data"]["event"], "user.created");
        assert_eq!(fired["data"]["source"], "integration");
        assert_eq!(fired["data"]["provider"], "clerk");
        assert_eq!(fired["data"]["automationRunIds"], json!(["run_0", "run_1"]));
        let to = |e: &OutboundEvent| -> Vec<String> {
            e.deliveries.iter().map(|(_, sub)| sub.clone()).collect()
        };
        assert_eq!(to(&events[0]), ["whs_all"]);
        assert_eq!(to(&events[1]), ["whs_all", "whs_runs"]);
    }

    /// The keys of an object, sorted.
    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn each_message_has_the_fields_its_documented_example_shows() {
        let all = subscribers(&[("whs_all", r#"["*"]"#)]);
        let contact = |custom_fields: &str| ContactChange {
            created: true,
            row: ContactRow {
                email: "jane@example.com".into(),
                first_name: Some("Jane".into()),
                last_name: None,
                subscribed: Some(true),
                custom_fields: custom_fields.into(),
                created_at: 1_000,
                updated_at: 1_000,
            },
        };
        let change = contact(r#"{"plan":"pro","seats":3}"#);
        let events = fire_events(&all, &integration_fire(), &triggered(1), Some(&change));
        assert_eq!(events.len(), 3);
        for event in &events {
            let message = body(event);
            let example = example_message(event.event_type);
            assert_eq!(keys(&message), keys(&example));
            assert_eq!(
                keys(&message["data"]),
                keys(&example["data"]),
                "{}",
                event.body
            );
            assert_eq!(message["id"], event.id.as_str());
        }
        let contact_data = &body(&events[0])["data"];
        assert_eq!(
            contact_data["customFields"],
            json!({"plan": "pro", "seats": 3})
        );
        assert_eq!(contact_data["lastName"], Value::Null);
        let run = &body(&events[2])["data"];
        assert_eq!(run["automationRunId"], "run_0");
        assert_eq!(run["email"], "jane@example.com");

        // Fields that do not decode are sent as an empty object, not as broken JSON.
        let broken = contact("{not json");
        let events = fire_events(&all, &integration_fire(), &triggered(0), Some(&broken));
        assert_eq!(body(&events[0])["data"]["customFields"], json!({}));
    }

    #[test]
    fn nothing_is_written_that_no_subscription_wants() {
        let fire = integration_fire();
        assert!(fire_events(&Subscribers::default(), &fire, &triggered(1), None).is_empty());
        let contacts_only = subscribers(&[("whs_c", r#"["contact.created"]"#)]);
        assert!(fire_events(&contacts_only, &fire, &triggered(1), None).is_empty());
        let ignored = FireRecord {
            outcome: FireOutcome::Ignored,
            runs: vec![],
        };
        let all = subscribers(&[("whs_all", r#"["*"]"#)]);
        assert!(fire_events(&all, &fire, &ignored, None).is_empty());
    }
}
