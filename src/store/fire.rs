//! The one transaction behind every fire: claim the key, upsert the contact, record the
//! fire, create the runs. A committed transaction is the only way a fire exists, so an
//! error at any step leaves nothing behind.

use serde_json::{Map, Value};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::runs::INSTANCE_COLUMNS;
use super::{Backend, Store, TriggerInstanceRow};

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
    /// The normalised contact key; `None` when the fire is recorded without a contact.
    pub contact_email: Option<String>,
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
}

/// How a fire is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireMode {
    /// Upsert the contact and start one run per published automation.
    Run,
    /// The trigger is disabled: record the fire only.
    Disabled,
    /// Record the fire with this reason, nothing else (no contact could be resolved...).
    Ignore(String),
}

#[derive(Debug, Clone)]
pub struct KeyClaim {
    /// `api` for Idempotency-Keys, the connection id for provider event ids.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the canonical request, to tell a replay from a conflicting reuse.
    pub request_hash: String,
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

#[derive(Debug, Clone)]
pub struct FireRecord {
    pub outcome: &'static str,
    pub run_ids: Vec<String>,
    /// `(automationId, name)` of the published automations that got a run.
    pub automations: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ReplayRecord {
    pub request_hash: String,
    pub instance: TriggerInstanceRow,
}

pub const OUTCOME_TRIGGERED: &str = "triggered";
pub const OUTCOME_NO_PUBLISHED: &str = "no_published_automation";
pub const OUTCOME_DISABLED: &str = "trigger_disabled";
pub const OUTCOME_IGNORED: &str = "ignored";

const CLAIM_KEY: &str = "INSERT INTO fire_keys \
     (org_id, scope, key, request_hash, trigger_instance_id, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (org_id, scope, key) DO UPDATE SET request_hash = excluded.request_hash, \
     trigger_instance_id = excluded.trigger_instance_id, created_at = excluded.created_at \
     WHERE fire_keys.created_at < $7 RETURNING trigger_instance_id";

const UPSERT_CONTACT: &str = "INSERT INTO contacts (org_id, email, first_name, last_name, \
     subscribed, custom_fields, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
     ON CONFLICT (org_id, email) DO UPDATE SET \
     first_name = COALESCE(excluded.first_name, contacts.first_name), \
     last_name = COALESCE(excluded.last_name, contacts.last_name), \
     subscribed = COALESCE(excluded.subscribed, contacts.subscribed), \
     custom_fields = excluded.custom_fields, updated_at = excluded.updated_at";

/// The steps of one fire on an open transaction (`$conn`), for either backend. Nothing is
/// committed here: the caller commits a `Recorded` fire and rolls back an `Existing` one.
macro_rules! fire_steps {
    ($conn:ident, $w:expr, $select_fields:expr) => {
        async {
            if let Some(claim) = &$w.claim {
                let claimed: Option<String> = sqlx::query_scalar(CLAIM_KEY)
                    .bind(&$w.org_id)
                    .bind(&claim.scope)
                    .bind(&claim.key)
                    .bind(&claim.request_hash)
                    .bind(&$w.instance_id)
                    .bind($w.now_ms)
                    .bind($w.key_expired_before_ms)
                    .fetch_optional(&mut *$conn)
                    .await?;
                if claimed.is_none() {
                    let (request_hash, instance_id): (String, String) = sqlx::query_as(
                        "SELECT request_hash, trigger_instance_id FROM fire_keys \
                         WHERE org_id = $1 AND scope = $2 AND key = $3",
                    )
                    .bind(&$w.org_id)
                    .bind(&claim.scope)
                    .bind(&claim.key)
                    .fetch_one(&mut *$conn)
                    .await?;
                    let instance: TriggerInstanceRow = sqlx::query_as(&format!(
                        "SELECT {INSTANCE_COLUMNS} FROM trigger_instances WHERE id = $1"
                    ))
                    .bind(&instance_id)
                    .fetch_one(&mut *$conn)
                    .await?;
                    return Ok(FireWritten::Existing(Box::new(ReplayRecord { request_hash, instance })));
                }
            }

            let mut record = FireRecord { outcome: OUTCOME_IGNORED, run_ids: vec![], automations: vec![] };
            let mut reason = None;
            match &$w.mode {
                FireMode::Ignore(why) => reason = Some(why.as_str()),
                FireMode::Disabled => record.outcome = OUTCOME_DISABLED,
                FireMode::Run => {
                    if let Some(email) = &$w.contact_email {
                        let stored: Option<String> = sqlx::query_scalar($select_fields)
                            .bind(&$w.org_id)
                            .bind(email)
                            .fetch_optional(&mut *$conn)
                            .await?;
                        let mut fields: Map<String, Value> = stored
                            .and_then(|s| serde_json::from_str(&s).ok())
                            .unwrap_or_default();
                        fields.extend($w.contact.custom_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                        sqlx::query(UPSERT_CONTACT)
                            .bind(&$w.org_id)
                            .bind(email)
                            .bind(&$w.contact.first_name)
                            .bind(&$w.contact.last_name)
                            .bind($w.contact.subscribed)
                            .bind(Value::Object(fields).to_string())
                            .bind($w.now_ms)
                            .execute(&mut *$conn)
                            .await?;
                        for (key, value) in &$w.contact.custom_fields {
                            sqlx::query(
                                "INSERT INTO contact_fields (org_id, key, type, created_at) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, key) DO NOTHING",
                            )
                            .bind(&$w.org_id)
                            .bind(key)
                            .bind(json_type(value))
                            .bind($w.now_ms)
                            .execute(&mut *$conn)
                            .await?;
                        }
                        for (field, value) in &$w.identities {
                            sqlx::query(
                                "INSERT INTO contact_identities (org_id, field, value, email) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, field, value) \
                                 DO UPDATE SET email = excluded.email",
                            )
                            .bind(&$w.org_id)
                            .bind(field)
                            .bind(value)
                            .bind(email)
                            .execute(&mut *$conn)
                            .await?;
                        }
                    }
                    let published: Vec<(String, String, i64)> = sqlx::query_as(
                        "SELECT id, name, version FROM automations \
                         WHERE trigger_id = $1 AND published = $2 ORDER BY id",
                    )
                    .bind(&$w.trigger_id)
                    .bind(true)
                    .fetch_all(&mut *$conn)
                    .await?;
                    record.outcome = if published.is_empty() { OUTCOME_NO_PUBLISHED } else { OUTCOME_TRIGGERED };
                    for (automation_id, name, version) in published {
                        let run_id = crate::ids::new_id(crate::ids::RUN);
                        sqlx::query(
                            "INSERT INTO runs (id, org_id, automation_id, automation_version, \
                             trigger_id, trigger_instance_id, status, contact_email, payload, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&run_id)
                        .bind(&$w.org_id)
                        .bind(&automation_id)
                        .bind(version)
                        .bind(&$w.trigger_id)
                        .bind(&$w.instance_id)
                        .bind("queued")
                        .bind($w.contact_email.as_deref().unwrap_or_default())
                        .bind(Value::Object($w.payload.clone()).to_string())
                        .bind($w.now_ms)
                        .execute(&mut *$conn)
                        .await?;
                        record.run_ids.push(run_id);
                        record.automations.push((automation_id, name));
                    }
                }
            }

            sqlx::query(
                "INSERT INTO trigger_instances (id, org_id, trigger_id, source, outcome, reason, \
                 idempotency_key, contact_email, payload, warnings, run_ids, automations, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&$w.instance_id)
            .bind(&$w.org_id)
            .bind(&$w.trigger_id)
            .bind(&$w.source)
            .bind(record.outcome)
            .bind(reason)
            .bind($w.claim.as_ref().map(|c| c.key.as_str()))
            .bind(&$w.contact_email)
            .bind(Value::Object($w.payload.clone()).to_string())
            .bind($w.warnings.to_string())
            .bind(serde_json::to_string(&record.run_ids).unwrap_or_default())
            .bind(automations_json(&record.automations))
            .bind($w.now_ms)
            .execute(&mut *$conn)
            .await?;

            if $w.release_key_without_runs && record.run_ids.is_empty() {
                if let Some(claim) = &$w.claim {
                    sqlx::query("DELETE FROM fire_keys WHERE org_id = $1 AND scope = $2 AND key = $3")
                        .bind(&$w.org_id)
                        .bind(&claim.scope)
                        .bind(&claim.key)
                        .execute(&mut *$conn)
                        .await?;
                }
            }
            Ok::<_, sqlx::Error>(FireWritten::Recorded(record))
        }
    };
}

/// SQLite has a single writer, so reading the stored fields is already serialised.
const SELECT_FIELDS_SQLITE: &str =
    "SELECT custom_fields FROM contacts WHERE org_id = $1 AND email = $2";
/// PostgreSQL locks the row so concurrent fires for one contact merge their fields.
const SELECT_FIELDS_POSTGRES: &str =
    "SELECT custom_fields FROM contacts WHERE org_id = $1 AND email = $2 FOR UPDATE";

impl Store {
    /// Writes one fire, or reports the earlier fire that holds its key. On SQLite the fire
    /// joins the committer's next batch; on PostgreSQL it is its own transaction.
    pub async fn fire(&self, w: &FireWrite) -> sqlx::Result<FireWritten> {
        match &self.backend {
            Backend::Sqlite { committer, .. } => committer.submit(w.clone()).await,
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let written = fire_steps!(tx, w, SELECT_FIELDS_POSTGRES).await?;
                match written {
                    FireWritten::Recorded(_) => tx.commit().await?,
                    FireWritten::Existing(_) => tx.rollback().await?,
                }
                Ok(written)
            }
        }
    }

    /// The email of the contact that carries this provider id, if one does.
    pub async fn find_contact_by_identity(
        &self,
        org_id: &str,
        field: &str,
        value: &str,
    ) -> sqlx::Result<Option<String>> {
        super::with_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT email FROM contact_identities WHERE org_id = $1 AND field = $2 AND value = $3",
            )
            .bind(org_id)
            .bind(field)
            .bind(value)
            .fetch_optional(pool)
            .await
        })
    }
}

fn automations_json(automations: &[(String, String)]) -> String {
    let list: Vec<Value> = automations
        .iter()
        .map(|(id, name)| serde_json::json!({"automationId": id, "name": name}))
        .collect();
    Value::Array(list).to_string()
}

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

/// Group commit for SQLite: one task owns the writes of fires and commits every fire that
/// is waiting as one transaction, so concurrent fires share one fsync. Each fire runs in its
/// own savepoint, so a failing or duplicate fire leaves the others of its batch intact, and
/// every request is answered only after the batch that holds it has committed.
#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    write: FireWrite,
    reply: oneshot::Sender<sqlx::Result<FireWritten>>,
}

/// The most fires one transaction holds.
const MAX_BATCH: usize = 128;

impl Committer {
    pub(super) fn start(pool: SqlitePool) -> Committer {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 8);
        tokio::spawn(run_batches(pool, queue));
        Committer { jobs }
    }

    async fn submit(&self, write: FireWrite) -> sqlx::Result<FireWritten> {
        let (reply, answer) = oneshot::channel();
        let gone = || sqlx::Error::WorkerCrashed;
        self.jobs
            .send(Job { write, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run_batches(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit_batch(&pool, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, fires = batch.len(), "fire batch failed to commit");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(sqlx::Error::Protocol(format!(
                        "the fire's batch failed: {e}"
                    ))));
                }
            }
        }
    }
}

async fn commit_batch(
    pool: &SqlitePool,
    batch: &[Job],
) -> sqlx::Result<Vec<sqlx::Result<FireWritten>>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        sqlx::query("SAVEPOINT fire").execute(&mut *tx).await?;
        let written = fire_steps!(tx, job.write, SELECT_FIELDS_SQLITE).await;
        if !matches!(written, Ok(FireWritten::Recorded(_))) {
            sqlx::query("ROLLBACK TO fire").execute(&mut *tx).await?;
        }
        sqlx::query("RELEASE fire").execute(&mut *tx).await?;
        results.push(written);
    }
    tx.commit().await?;
    Ok(results)
}
