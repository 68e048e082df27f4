//! The one transaction behind every fire: claim the key, upsert the contact, record the
//! fire, create the runs, log the delivery that caused it, write the outbound events it
//! reports. A committed transaction is the only way a fire exists, so an error at any step
//! leaves nothing behind.

mod postgres;
mod postgres_batch;
mod postgres_statements;
mod sqlite;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::cache::LoadError;
use super::deliveries::{Arrival, Verdict};
use super::digest::index_key;
use super::outbound::AttemptRecord;
use super::outbox::{self, ContactChange, OutboundEvent, Subscribers};
use super::{Backend, Store};
use crate::domain::{DeliveryStatus, Email, FireOutcome, IgnoreReason};

pub(super) use postgres::log_deliveries as log_deliveries_pg;
pub(super) use postgres::record_attempt as record_attempt_pg;
pub(super) use postgres_batch::PgCommitter;
pub(super) use sqlite::Committer;

/// Everything one fire writes.
#[derive(Debug, Clone)]
pub struct FireWrite {
    pub org_id: String,
    pub trigger_id: String,
    /// Minted by the caller, so the key claim can point at it.
    pub instance_id: String,
    /// `api`, or the provider of an integration delivery.
    pub source: String,
    pub claim: Option<KeyClaim>,
    pub mode: FireMode,
    /// The contact key; `None` when the fire is recorded without a contact.
    pub contact_email: Option<Email>,
    pub contact: ContactUpdate,
    /// Provider ids through which later events without an email find this contact.
    pub identities: Vec<(String, String)>,
    /// The resolved payload, as the runs will see it.
    pub payload: Map<String, Value>,
    pub warnings: Value,
    /// API fires that start no runs give their key back, so a retry after publishing an
    /// automation fires; integration deliveries keep it (the provider must not retry).
    pub release_key_without_runs: bool,
    pub now_ms: i64,
    /// Keys claimed before this instant have expired and may be claimed again.
    pub key_expired_before_ms: i64,
    /// The receive-URL request behind this fire, logged with what it came to (a repeat
    /// of a claimed key is logged as a duplicate).
    pub delivery: Option<Arrival>,
}

/// How a fire is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireMode {
    /// Upsert the contact and start one run per published automation.
    Run,
    /// The trigger is disabled: record the fire only.
    Disabled,
    /// Record the fire with this reason, nothing else (no contact could be resolved...).
    Ignore(IgnoreReason),
}

#[derive(Debug, Clone)]
pub struct KeyClaim {
    /// `api` for Idempotency-Keys, the connection id for provider event ids.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the canonical request, to tell a replay from a conflicting reuse.
    pub request_hash: String,
    /// Also take the key over from an earlier fire that started no runs (a replay of a
    /// logged delivery after an automation was published or a mapping fixed).
    pub reclaim_unfired: bool,
}

/// Core contact columns and custom fields; `None` / absent never erases a stored value.
#[derive(Debug, Clone, Default)]
pub struct ContactUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub subscribed: Option<bool>,
    pub custom_fields: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub enum FireWritten {
    /// This request's fire was committed.
    Recorded(FireRecord),
    /// The key was already claimed: the earlier fire.
    Existing(Box<ReplayRecord>),
}

/// What a committed fire came to.
#[derive(Debug, Clone)]
pub struct FireRecord {
    pub outcome: FireOutcome,
    pub runs: Vec<StartedRun>,
}

/// A run a fire started, with the published automation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StartedRun {
    pub run_id: String,
    pub automation_id: String,
    pub automation_name: String,
}

/// The earlier fire that holds a key.
#[derive(Debug, Clone)]
pub struct ReplayRecord {
    pub request_hash: String,
    pub instance_id: String,
    pub received_at_ms: i64,
    pub record: FireRecord,
}

/// The columns of [`KEY_HOLDER`], as stored, to be decoded by [`KeyHolderRow::decode`].
struct KeyHolderRow {
    request_hash: String,
    instance_id: String,
    outcome: String,
    run_ids: String,
    automations: String,
    received_at_ms: i64,
}

/// A stored fire that does not decode: the database holds what firehook never writes.
#[derive(Debug, thiserror::Error)]
#[error("trigger instance {instance_id} does not decode: {cause}")]
pub struct CorruptFire {
    instance_id: String,
    cause: String,
}

impl KeyHolderRow {
    fn decode(self) -> Result<ReplayRecord, CorruptFire> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Automation {
            automation_id: String,
            name: String,
        }
        let corrupt = |cause: String| CorruptFire {
            instance_id: self.instance_id.clone(),
            cause,
        };
        let outcome = self.outcome.parse().map_err(|e| corrupt(format!("{e}")))?;
        let run_ids: Vec<String> =
            serde_json::from_str(&self.run_ids).map_err(|e| corrupt(format!("run_ids: {e}")))?;
        let automations: Vec<Automation> = serde_json::from_str(&self.automations)
            .map_err(|e| corrupt(format!("automations: {e}")))?;
        if run_ids.len() != automations.len() {
            return Err(corrupt("run_ids and automations differ in length".into()));
        }
        let runs = run_ids
            .into_iter()
            .zip(automations)
            .map(|(run_id, a)| StartedRun {
                run_id,
                automation_id: a.automation_id,
                automation_name: a.name,
            })
            .collect();
        Ok(ReplayRecord {
            request_hash: self.request_hash,
            instance_id: self.instance_id,
            received_at_ms: self.received_at_ms,
            record: FireRecord { outcome, runs },
        })
    }
}

/// Why a fire was not written. Nothing of it was committed.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The fire was written in a batch whose commit failed.
    #[error("the fire's batch failed to commit: {0}")]
    BatchFailed(String),
    /// The connection failed while the fire's batch committed: it may or may not be
    /// stored. A retry with the same key is answered from whichever it was.
    #[error("the commit of the fire's batch was not confirmed: {0}")]
    Unconfirmed(String),
    #[error("the SQLite writer has stopped")]
    WriterStopped,
    #[error("loading the org's webhook subscriptions failed")]
    Subscribers(#[source] Arc<LoadError>),
}

impl From<CorruptFire> for sqlx::Error {
    fn from(e: CorruptFire) -> sqlx::Error {
        sqlx::Error::Decode(Box::new(e))
    }
}

impl From<CorruptFire> for rusqlite::Error {
    fn from(e: CorruptFire) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    }
}

/// Claims keys from `$rows` unless an unexpired claim holds them and `$extra` is false; a
/// claim made before `$cutoff` has expired. Keys are unique by their digest (`$3`, see
/// `digest`); the key itself (`$7`) is kept beside it. SQLite numbers `$n` parameters by
/// first appearance, so they appear in order.
macro_rules! claim_key {
    ($rows:literal, $cutoff:literal, $extra:literal) => {
        concat!(
            "INSERT INTO fire_keys \
             (org_id, scope, key_index, request_hash, trigger_instance_id, created_at, key) ",
            $rows,
            " ON CONFLICT (org_id, scope, key_index) DO UPDATE SET \
             request_hash = excluded.request_hash, \
             trigger_instance_id = excluded.trigger_instance_id, created_at = excluded.created_at \
             WHERE fire_keys.created_at < ",
            $cutoff,
            $extra,
            " RETURNING trigger_instance_id"
        )
    };
}
use claim_key;

const CLAIM_KEY: &str = claim_key!("VALUES ($1, $2, $3, $4, $5, $6, $7)", "$8", "");

/// [`CLAIM_KEY`], also taking the key from a fire that started no runs.
const RECLAIM_UNFIRED_KEY: &str = claim_key!(
    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
    "$8",
    " OR NOT EXISTS (SELECT 1 FROM trigger_instances i \
     WHERE i.id = fire_keys.trigger_instance_id AND i.outcome = 'triggered')"
);

impl KeyClaim {
    fn sql(&self) -> &'static str {
        if self.reclaim_unfired {
            RECLAIM_UNFIRED_KEY
        } else {
            CLAIM_KEY
        }
    }
}

const KEY_HOLDER: &str = "SELECT k.request_hash, i.id, i.outcome, i.run_ids, i.automations, \
     i.received_at FROM fire_keys k \
     JOIN trigger_instances i ON i.id = k.trigger_instance_id \
     WHERE k.org_id = $1 AND k.scope = $2 AND k.key_index = $3";

/// Links a provider id (`$3`, unique by its digest `$5`) to a contact.
const LINK_IDENTITY: &str = "INSERT INTO contact_identities \
     (org_id, field, value, email, value_index) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (org_id, field, value_index) DO UPDATE SET email = excluded.email";

/// What inserting a contact does to a stored one: `None` never erases a value, and
/// `$fields` is the SQL of the merged custom fields.
macro_rules! contact_conflict {
    ($fields:literal) => {
        concat!(
            " ON CONFLICT (org_id, email) DO UPDATE SET \
             first_name = COALESCE(excluded.first_name, contacts.first_name), \
             last_name = COALESCE(excluded.last_name, contacts.last_name), \
             subscribed = COALESCE(excluded.subscribed, contacts.subscribed), \
             custom_fields = ",
            $fields,
            ", updated_at = excluded.updated_at"
        )
    };
}
use contact_conflict;

/// Inserts or updates a contact; `$fields` is the SQL of its merged custom fields (`$6`
/// holds this fire's).
macro_rules! upsert_contact {
    ($fields:literal) => {
        concat!(
            "INSERT INTO contacts (org_id, email, first_name, last_name, subscribed, \
             custom_fields, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            $crate::store::fire::contact_conflict!($fields)
        )
    };
}
use upsert_contact;

const PUBLISHED: &str = "SELECT id, name, version FROM automations \
     WHERE trigger_id = $1 AND published = $2 ORDER BY id";

/// The trigger instance table and its columns, in the order inserts bind them.
macro_rules! instance_columns {
    () => {
        "trigger_instances (id, org_id, trigger_id, source, outcome, reason, idempotency_key, \
         contact_email, payload, warnings, run_ids, automations, received_at)"
    };
}
use instance_columns;

/// The run table and its columns, in the order inserts bind them.
macro_rules! run_columns {
    () => {
        "runs (id, org_id, automation_id, automation_version, trigger_id, trigger_instance_id, \
         status, contact_email, payload, created_at)"
    };
}
use run_columns;

/// Inserts the trigger instance (`$1` to `$13`).
macro_rules! insert_instance {
    () => {
        concat!(
            "INSERT INTO ",
            $crate::store::fire::instance_columns!(),
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
    };
}
use insert_instance;

const RELEASE_KEY: &str =
    "DELETE FROM fire_keys WHERE org_id = $1 AND scope = $2 AND key_index = $3";

/// A published automation, as a fire starts it.
#[derive(Clone)]
struct Published {
    id: String,
    name: String,
    version: i64,
}

/// One run to insert.
struct NewRun {
    id: String,
    automation: Published,
}

/// What a fire records besides its key and contact: the runs it starts and its instance.
struct NewRecord<'a> {
    runs: &'a [NewRun],
    outcome: FireOutcome,
    reason: Option<IgnoreReason>,
    /// The resolved payload as JSON, stored once per run and on the instance.
    payload: &'a str,
}

impl<'a> NewRecord<'a> {
    /// The record of a fire carried out in `mode` that starts `runs`.
    fn new(mode: FireMode, runs: &'a [NewRun], payload: &'a str) -> NewRecord<'a> {
        let (outcome, reason) = match mode {
            FireMode::Ignore(why) => (FireOutcome::Ignored, Some(why)),
            FireMode::Disabled => (FireOutcome::TriggerDisabled, None),
            FireMode::Run if runs.is_empty() => (FireOutcome::NoPublishedAutomation, None),
            FireMode::Run => (FireOutcome::Triggered, None),
        };
        NewRecord {
            runs,
            outcome,
            reason,
            payload,
        }
    }

    fn outcome(&self) -> &'static str {
        self.outcome.as_str()
    }

    fn reason(&self) -> Option<&'static str> {
        self.reason.map(IgnoreReason::as_str)
    }

    fn run_ids_json(&self) -> String {
        Value::Array(
            self.runs
                .iter()
                .map(|r| Value::String(r.id.clone()))
                .collect(),
        )
        .to_string()
    }

    fn automations_json(&self) -> String {
        let list = self
            .runs
            .iter()
            .map(
                |r| serde_json::json!({"automationId": r.automation.id, "name": r.automation.name}),
            )
            .collect();
        Value::Array(list).to_string()
    }
}

/// One new run per published automation of the trigger.
fn start_runs(published: Vec<Published>) -> Vec<NewRun> {
    published
        .into_iter()
        .map(|automation| NewRun {
            id: crate::ids::new_id(crate::ids::RUN),
            automation,
        })
        .collect()
}

/// The resolved payload as stored, serialised once: every run and the instance hold it.
fn payload_json(w: &FireWrite) -> String {
    serde_json::to_string(&w.payload).expect("JSON values serialise")
}

impl FireRecord {
    fn started(outcome: FireOutcome, runs: Vec<NewRun>) -> FireRecord {
        FireRecord {
            outcome,
            runs: runs
                .into_iter()
                .map(|r| StartedRun {
                    run_id: r.id,
                    automation_id: r.automation.id,
                    automation_name: r.automation.name,
                })
                .collect(),
        }
    }
}

/// The statements of a fire on an open transaction of one backend. The fire itself
/// ([`write_fire`]) is written once, over this trait.
trait FireTx {
    type Error;

    /// Claims the key for this fire; `false` when an unexpired claim holds it.
    async fn claim_key(&mut self, w: &FireWrite, claim: &KeyClaim) -> Result<bool, Self::Error>;
    /// The fire that holds a claimed key.
    async fn key_holder(
        &mut self,
        org_id: &str,
        claim: &KeyClaim,
    ) -> Result<KeyHolderRow, Self::Error>;
    /// Inserts or updates the contact (its custom fields merge into the stored ones),
    /// defines custom fields not seen before and links the fire's provider ids to it.
    async fn upsert_contact(
        &mut self,
        w: &FireWrite,
        email: &Email,
    ) -> Result<ContactChange, Self::Error>;
    async fn published(&mut self, trigger_id: &str) -> Result<Vec<Published>, Self::Error>;
    /// Inserts the runs, the trigger instance and the log row of the delivery behind the
    /// fire, if any.
    async fn record(
        &mut self,
        w: &FireWrite,
        record: &NewRecord<'_>,
        delivery: Option<(&Arrival, &Verdict)>,
    ) -> Result<(), Self::Error>;
    async fn release_key(&mut self, org_id: &str, claim: &KeyClaim) -> Result<(), Self::Error>;
    async fn record_delivery(&mut self, a: &Arrival, v: &Verdict) -> Result<(), Self::Error>;
    /// Inserts outbound events and their deliveries.
    async fn outbox(&mut self, events: &[OutboundEvent]) -> Result<(), Self::Error>;
    /// Records an outbound attempt and moves its delivery on.
    async fn record_attempt(&mut self, a: &AttemptRecord) -> Result<(), Self::Error>;
}

/// The steps of one fire. Nothing is committed here: the caller commits. A fire whose key
/// is held writes nothing but its delivery's log row.
async fn write_fire<T>(
    tx: &mut T,
    w: &FireWrite,
    subscribers: &Subscribers,
) -> Result<FireWritten, T::Error>
where
    T: FireTx,
    T::Error: From<CorruptFire>,
{
    if let Some(claim) = &w.claim {
        if !tx.claim_key(w, claim).await? {
            let holder = tx.key_holder(&w.org_id, claim).await?.decode()?;
            if let Some(arrival) = &w.delivery {
                tx.record_delivery(arrival, &duplicate_of(&holder.instance_id))
                    .await?;
            }
            return Ok(FireWritten::Existing(Box::new(holder)));
        }
    }

    let mut contact = None;
    let mut published = vec![];
    if w.mode == FireMode::Run {
        if let Some(email) = &w.contact_email {
            contact = Some(tx.upsert_contact(w, email).await?);
        }
        published = tx.published(&w.trigger_id).await?;
    }
    let runs = start_runs(published);
    let payload = payload_json(w);
    let new = NewRecord::new(w.mode, &runs, &payload);
    let logged = w.delivery.as_ref().map(|a| (a, verdict(w, &new)));
    tx.record(w, &new, logged.as_ref().map(|(a, v)| (*a, v)))
        .await?;

    let record = FireRecord::started(new.outcome, runs);
    if w.release_key_without_runs && record.runs.is_empty() {
        if let Some(claim) = &w.claim {
            tx.release_key(&w.org_id, claim).await?;
        }
    }
    let events = outbox::fire_events(subscribers, w, &record, contact.as_ref());
    if !events.is_empty() {
        tx.outbox(&events).await?;
    }
    Ok(FireWritten::Recorded(record))
}

/// The log entry of a repeat: answered 200 `duplicate`, pointing at the earlier fire.
pub fn duplicate_of(instance_id: &str) -> Verdict {
    Verdict {
        status: DeliveryStatus::Duplicate,
        reason: None,
        http_status: 200,
        trigger_instance_id: Some(instance_id.to_owned()),
        run_ids: vec![],
    }
}

/// What a fire means for the delivery that caused it.
fn verdict(w: &FireWrite, record: &NewRecord<'_>) -> Verdict {
    let (status, reason) = match record.outcome {
        FireOutcome::Triggered => (DeliveryStatus::Triggered, None),
        FireOutcome::NoPublishedAutomation => (DeliveryStatus::NoPublishedAutomation, None),
        FireOutcome::TriggerDisabled => {
            (DeliveryStatus::Ignored, Some(IgnoreReason::TriggerDisabled))
        }
        FireOutcome::Ignored => (DeliveryStatus::Ignored, record.reason),
    };
    Verdict {
        status,
        reason: reason.map(|r| r.as_str().to_owned()),
        http_status: 200,
        trigger_instance_id: Some(w.instance_id.clone()),
        run_ids: record.runs.iter().map(|r| r.id.clone()).collect(),
    }
}

impl Store {
    /// Writes one fire, or reports the earlier fire that holds its key. On SQLite the fire
    /// joins the committer's next batch; on PostgreSQL it is its own transaction.
    pub async fn fire(&self, mut w: FireWrite) -> Result<FireWritten, FireError> {
        if let Some(arrival) = &mut w.delivery {
            arrival.pack_body();
        }
        let subscribers = self
            .subscribers(&w.org_id)
            .await
            .map_err(FireError::Subscribers)?;
        let written = match &self.backend {
            Backend::Sqlite { committer, .. } => committer.submit(w, subscribers.clone()).await?,
            Backend::Postgres { committer, .. } => committer.submit(w, subscribers.clone()).await?,
        };
        if !subscribers.is_empty() && matches!(written, FireWritten::Recorded(_)) {
            self.outbox_written();
        }
        Ok(written)
    }

    /// The contact that carries this provider id, if one does.
    pub async fn find_contact_by_identity(
        &self,
        org_id: &str,
        field: &str,
        value: &str,
    ) -> sqlx::Result<Option<Email>> {
        let email: Option<String> = super::with_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT email FROM contact_identities \
                 WHERE org_id = $1 AND field = $2 AND value_index = $3",
            )
            .bind(org_id)
            .bind(field)
            .bind(index_key(value))
            .fetch_optional(pool)
            .await?
        });
        // Stored keys were normalised when written; one that no longer parses names no one.
        Ok(email.as_deref().and_then(Email::parse))
    }
}

/// The type a custom field is defined with, from its first value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
