//! Group commit for SQLite fires.
//!
//! One thread owns a connection of its own and commits every fire that is waiting as one
//! transaction, so concurrent fires share one fsync. A failing fire leaves the others of
//! its batch intact (see [`commit_batch`]), and every request is answered only after the
//! batch that holds it has committed.
//!
//! The thread talks to SQLite through rusqlite rather than sqlx: sqlx hands each statement
//! to a worker thread and wakes the caller with its result, and with a dozen statements
//! per fire those hand-offs, not SQLite, took most of the CPU. Here a batch runs start to
//! finish on one thread, with prepared statements kept between batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_executor::block_on;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use serde_json::{Map, Value};

use super::run_columns;
use super::{
    insert_instance, json_type, upsert_contact, write_fire, FireError, FireTx, FireWrite,
    FireWritten, KeyClaim, KeyHolderRow, NewRecord, Published, KEY_HOLDER, LINK_IDENTITY,
    PUBLISHED, RELEASE_KEY,
};
use crate::config::SqliteSynchronous;
use crate::domain::{Email, RunStatus};
use crate::store::deliveries::{Arrival, LoggedDelivery, Verdict, INSERT_DELIVERY};
use crate::store::digest::index_key;
use crate::store::outbound::{
    AttemptRecord, Lease, CLAIM_SQLITE, DUE_SUBSCRIPTIONS, FINISH_ATTEMPT, INSERT_ATTEMPT,
};
use crate::store::outbox::{
    ContactChange, OutboundEvent, Subscribers, INSERT_DELIVERY as INSERT_OUTBOUND_DELIVERY,
    INSERT_EVENT,
};
use crate::store::{ContactRow, SQLITE_BUSY_TIMEOUT};

/// The most fires one transaction holds.
const MAX_BATCH: usize = 128;
/// The committer's page cache, in KiB. SQLite's default of 2 MiB stopped holding the
/// inner pages of the indexes a fire inserts into (keys, contacts, identities) once the
/// database grew, and each miss is a read from the OS. 16 MiB measured no faster than 8
/// over a million deliveries, and took 8 MB more of the process's memory.
const COMMITTER_CACHE_KIB: i64 = 8 * 1024;

#[derive(Clone)]
pub(in crate::store) struct Committer {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, FireError>>,
}

/// What a job writes: a fire, deliveries logged outside a fire, or an outbound attempt.
enum Work {
    /// A fire, with the org's subscriptions, which decide the outbound events it writes.
    Fire(Box<FireWrite>, Arc<Subscribers>),
    Log(Vec<LoggedDelivery>),
    Attempt(Box<AttemptRecord>),
    /// Leases due outbound deliveries to a dispatcher.
    Claim(Box<Lease>),
}

enum Done {
    Fire(FireWritten),
    Written,
    Claimed(Vec<String>),
}

/// Writes one job on an open transaction or savepoint.
async fn write_work(tx: &mut Writer<'_>, work: &Work) -> rusqlite::Result<Done> {
    match work {
        Work::Fire(w, subscribers) => Ok(Done::Fire(write_fire(tx, w, subscribers).await?)),
        Work::Log(deliveries) => {
            for d in deliveries {
                tx.record_delivery(&d.arrival, &d.verdict).await?;
            }
            Ok(Done::Written)
        }
        Work::Attempt(attempt) => {
            tx.record_attempt(attempt).await?;
            Ok(Done::Written)
        }
        Work::Claim(lease) => Ok(Done::Claimed(tx.claim_outbound(lease)?)),
    }
}

impl Committer {
    /// Opens the committer's connection to the database file and starts its thread. The
    /// schema must exist before the first fire, not before this call.
    pub(in crate::store) fn start(
        path: &Path,
        synchronous: SqliteSynchronous,
    ) -> anyhow::Result<Committer> {
        let conn = open(path, synchronous)?;
        conn.pragma_update(None, "cache_size", -COMMITTER_CACHE_KIB)?;
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 8);
        std::thread::Builder::new()
            .name("sqlite-committer".into())
            .spawn(move || run_batches(conn, queue))?;
        Ok(Committer { jobs })
    }

    pub(super) async fn submit(
        &self,
        write: FireWrite,
        subscribers: Arc<Subscribers>,
    ) -> Result<FireWritten, FireError> {
        match self.run(Work::Fire(Box::new(write), subscribers)).await? {
            Done::Fire(written) => Ok(written),
            Done::Written | Done::Claimed(_) => unreachable!("a fire job answers with its fire"),
        }
    }

    /// Logs deliveries in the next batch.
    pub(in crate::store) async fn log(
        &self,
        deliveries: Vec<LoggedDelivery>,
    ) -> Result<(), FireError> {
        self.run(Work::Log(deliveries)).await.map(|_| ())
    }

    /// Records an outbound attempt in the next batch.
    pub(in crate::store) async fn record_attempt(
        &self,
        attempt: AttemptRecord,
    ) -> Result<(), FireError> {
        self.run(Work::Attempt(Box::new(attempt))).await.map(|_| ())
    }

    /// Leases due outbound deliveries in the next batch; answers their ids.
    pub(in crate::store) async fn claim(&self, lease: Lease) -> Result<Vec<String>, FireError> {
        match self.run(Work::Claim(Box::new(lease))).await? {
            Done::Claimed(ids) => Ok(ids),
            Done::Fire(_) | Done::Written => unreachable!("a claim answers with its ids"),
        }
    }

    async fn run(&self, work: Work) -> Result<Done, FireError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { work, reply })
            .await
            .map_err(|_| FireError::WriterStopped)?;
        answer.await.map_err(|_| FireError::WriterStopped)?
    }
}

fn open(path: &Path, synchronous: SqliteSynchronous) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        PathBuf::from(path),
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma_value())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Runs until every sender is gone, that is until the store is dropped.
fn run_batches(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&mut conn, &batch) {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, fires = batch.len(), "fire batch failed to commit");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(FireError::BatchFailed(e.to_string())));
                }
            }
        }
    }
}

/// Commits a batch. Fires rarely fail, so the batch is first written without savepoints,
/// which cost a copy of every page a fire touches; if a fire does fail, that attempt is
/// rolled back and the batch is written again with a savepoint per fire.
fn commit_batch(
    conn: &mut Connection,
    batch: &[Job],
) -> rusqlite::Result<Vec<Result<Done, FireError>>> {
    match commit_together(conn, batch)? {
        Some(results) => Ok(results),
        None => commit_one_by_one(conn, batch),
    }
}

/// Every job of the batch in one transaction; `None` (and nothing written) if one failed.
fn commit_together(
    conn: &mut Connection,
    batch: &[Job],
) -> rusqlite::Result<Option<Vec<Result<Done, FireError>>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        // The statements never wait, so the future completes on its first poll.
        match block_on(write_work(&mut Writer(&tx), &job.work)) {
            Ok(written) => results.push(Ok(written)),
            Err(e) => {
                tracing::warn!(error = %e, "a fire failed; writing its batch fire by fire");
                return Ok(None);
            }
        }
    }
    tx.commit()?;
    Ok(Some(results))
}

/// Each fire in its own savepoint, so a failing one leaves the others of its batch intact.
fn commit_one_by_one(
    conn: &mut Connection,
    batch: &[Job],
) -> rusqlite::Result<Vec<Result<Done, FireError>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = tx.savepoint()?;
        let written = block_on(write_work(&mut Writer(&savepoint), &job.work));
        if written.is_ok() {
            savepoint.commit()?;
        } else {
            // Rolls back to the savepoint and releases it.
            savepoint.finish()?;
        }
        results.push(written.map_err(FireError::from));
    }
    tx.commit()?;
    Ok(results)
}

/// The statements of a fire on the committer's open transaction or savepoint.
struct Writer<'conn>(&'conn Connection);

impl Writer<'_> {
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<()> {
        self.0.prepare_cached(sql)?.execute(params)?;
        Ok(())
    }

    /// Leases due outbound deliveries, each subscription's up to its room; answers their ids.
    fn claim_outbound(&self, lease: &Lease) -> rusqlite::Result<Vec<String>> {
        let due: Vec<String> = self
            .0
            .prepare_cached(DUE_SUBSCRIPTIONS)?
            .query_map([lease.now], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut claim = self.0.prepare_cached(CLAIM_SQLITE)?;
        let mut ids: Vec<String> = Vec::new();
        for subscription in Lease::visiting_order(due) {
            let n = lease.share(&subscription, ids.len());
            if n <= 0 {
                continue;
            }
            let leased = claim.query_map(
                params![lease.owner, lease.until, subscription, lease.now, n],
                |row| row.get::<_, String>(0),
            )?;
            for id in leased {
                ids.push(id?);
            }
        }
        Ok(ids)
    }
}

impl FireTx for Writer<'_> {
    type Error = rusqlite::Error;

    async fn claim_key(&mut self, w: &FireWrite, claim: &KeyClaim) -> rusqlite::Result<bool> {
        let mut claim_key = self.0.prepare_cached(claim.sql())?;
        let claimed: Option<String> = claim_key
            .query_row(
                params![
                    w.org_id,
                    claim.scope,
                    index_key(&claim.key),
                    claim.request_hash,
                    w.instance_id,
                    w.now_ms,
                    claim.key,
                    w.key_expired_before_ms
                ],
                |row| row.get(0),
            )
            .optional()?;
        Ok(claimed.is_some())
    }

    async fn key_holder(
        &mut self,
        org_id: &str,
        claim: &KeyClaim,
    ) -> rusqlite::Result<KeyHolderRow> {
        let mut key_holder = self.0.prepare_cached(KEY_HOLDER)?;
        key_holder.query_row(
            params![org_id, claim.scope, index_key(&claim.key)],
            key_holder_row,
        )
    }

    async fn upsert_contact(
        &mut self,
        w: &FireWrite,
        email: &Email,
    ) -> rusqlite::Result<ContactChange> {
        let email = email.as_str();
        // The committer is SQLite's only writer of fires, so reading the stored fields and
        // writing the merge back needs no lock.
        let stored: Option<String> = self
            .0
            .prepare_cached("SELECT custom_fields FROM contacts WHERE org_id = $1 AND email = $2")?
            .query_row(params![w.org_id, email], |row| row.get(0))
            .optional()?;
        let created = stored.is_none();
        let mut fields: Map<String, Value> = match stored {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            None => Map::new(),
        };
        let c = &w.contact;
        fields.extend(c.custom_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        let fields = Value::Object(fields).to_string();
        let row = self
            .0
            .prepare_cached(concat!(
                upsert_contact!("excluded.custom_fields"),
                " RETURNING email, first_name, last_name, subscribed, custom_fields, \
                 created_at, updated_at"
            ))?
            .query_row(
                params![
                    w.org_id,
                    email,
                    c.first_name,
                    c.last_name,
                    c.subscribed,
                    fields,
                    w.now_ms
                ],
                |row| {
                    Ok(ContactRow {
                        email: row.get(0)?,
                        first_name: row.get(1)?,
                        last_name: row.get(2)?,
                        subscribed: row.get(3)?,
                        custom_fields: row.get(4)?,
                        created_at: row.get(5)?,
                        updated_at: row.get(6)?,
                    })
                },
            )?;
        for (key, value) in &c.custom_fields {
            self.execute(
                "INSERT INTO contact_fields (org_id, key, type, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, key) DO NOTHING",
                params![w.org_id, key, json_type(value), w.now_ms],
            )?;
        }
        for (field, value) in &w.identities {
            self.execute(
                LINK_IDENTITY,
                params![w.org_id, field, value, email, index_key(value)],
            )?;
        }
        Ok(ContactChange { created, row })
    }

    async fn published(&mut self, trigger_id: &str) -> rusqlite::Result<Vec<Published>> {
        let mut published = self.0.prepare_cached(PUBLISHED)?;
        let rows = published.query_map(params![trigger_id, true], |row| {
            Ok(Published {
                id: row.get(0)?,
                name: row.get(1)?,
                version: row.get(2)?,
            })
        })?;
        rows.collect()
    }

    async fn record(
        &mut self,
        w: &FireWrite,
        r: &NewRecord<'_>,
        delivery: Option<(&Arrival, &Verdict)>,
    ) -> rusqlite::Result<()> {
        for run in r.runs {
            self.execute(
                concat!(
                    "INSERT INTO ",
                    run_columns!(),
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                params![
                    run.id,
                    w.org_id,
                    run.automation.id,
                    run.automation.version,
                    w.trigger_id,
                    w.instance_id,
                    RunStatus::Queued.as_str(),
                    w.contact_email
                        .as_ref()
                        .map(Email::as_str)
                        .unwrap_or_default(),
                    r.payload,
                    w.now_ms
                ],
            )?;
        }
        self.execute(
            insert_instance!(),
            params![
                w.instance_id,
                w.org_id,
                w.trigger_id,
                w.source,
                r.outcome(),
                r.reason(),
                w.claim.as_ref().map(|c| c.key.as_str()),
                w.contact_email.as_ref().map(Email::as_str),
                r.payload,
                w.warnings.to_string(),
                r.run_ids_json(),
                r.automations_json(),
                w.now_ms
            ],
        )?;
        match delivery {
            Some((arrival, verdict)) => self.record_delivery(arrival, verdict).await,
            None => Ok(()),
        }
    }

    async fn release_key(&mut self, org_id: &str, claim: &KeyClaim) -> rusqlite::Result<()> {
        self.execute(
            RELEASE_KEY,
            params![org_id, claim.scope, index_key(&claim.key)],
        )
    }

    async fn record_delivery(&mut self, a: &Arrival, v: &Verdict) -> rusqlite::Result<()> {
        self.execute(
            INSERT_DELIVERY,
            params![
                a.id,
                a.org_id,
                a.connection_id,
                a.provider,
                a.event,
                v.status.as_str(),
                v.reason,
                v.http_status,
                a.received_at_ms,
                a.trigger_id,
                v.trigger_instance_id,
                serde_json::to_string(&v.run_ids).expect("strings serialise"),
                a.replay_of,
                a.headers,
                a.body_bytes,
                a.body.as_ref().map(|b| &b.bytes),
                a.body.as_ref().and_then(|b| b.encoding)
            ],
        )
    }

    async fn record_attempt(&mut self, a: &AttemptRecord) -> rusqlite::Result<()> {
        self.execute(
            INSERT_ATTEMPT,
            params![
                a.delivery_id,
                a.attempt,
                a.attempted_at,
                a.http_status,
                a.latency_ms,
                a.error,
                a.response_excerpt
            ],
        )?;
        let (status, at, step) = a.outcome();
        self.execute(
            FINISH_ATTEMPT,
            params![
                status.as_str(),
                a.attempt,
                step,
                at,
                a.attempted_at,
                a.delivery_id,
                a.owner
            ],
        )
    }

    async fn outbox(&mut self, events: &[OutboundEvent]) -> rusqlite::Result<()> {
        for e in events {
            let ty = e.event_type.as_str();
            self.execute(
                INSERT_EVENT,
                params![e.id, e.org_id, ty, e.body, e.created_at],
            )?;
            for (delivery_id, subscription_id) in &e.deliveries {
                self.execute(
                    INSERT_OUTBOUND_DELIVERY,
                    params![
                        delivery_id,
                        e.org_id,
                        e.id,
                        subscription_id,
                        ty,
                        e.created_at
                    ],
                )?;
            }
        }
        Ok(())
    }
}

fn key_holder_row(row: &Row<'_>) -> rusqlite::Result<KeyHolderRow> {
    Ok(KeyHolderRow {
        request_hash: row.get(0)?,
        instance_id: row.get(1)?,
        outcome: row.get(2)?,
        run_ids: row.get(3)?,
        automations: row.get(4)?,
        received_at_ms: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::config::{DatabaseSettings, SecretString};
    use crate::domain::IgnoreReason;
    use crate::store::{FireMode, Room, Store};

    fn ignored_fire(instance_id: &str, key: &str) -> FireWrite {
        FireWrite {
            org_id: "org_1".into(),
            trigger_id: "api:welcome".into(),
            instance_id: instance_id.into(),
            source: "api".into(),
            claim: Some(KeyClaim {
                scope: "api".into(),
                key: key.into(),
                request_hash: "hash".into(),
                reclaim_unfired: false,
            }),
            mode: FireMode::Ignore(IgnoreReason::EventNotMapped),
            contact_email: None,
            contact: Default::default(),
            identities: vec![],
            payload: Default::default(),
            warnings: Value::Array(vec![]),
            release_key_without_runs: false,
            now_ms: 1_000,
            key_expired_before_ms: 0,
            delivery: None,
        }
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_failing_fire_leaves_the_rest_of_its_batch_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = migrated(dir.path()).await;

        // The third fire reuses the first one's instance id, so its insert fails.
        let writes = [
            ignored_fire("tin_a", "key-a"),
            ignored_fire("tin_b", "key-b"),
            ignored_fire("tin_a", "key-c"),
        ];
        let jobs: Vec<Job> = writes
            .into_iter()
            .map(|write| Job {
                work: Work::Fire(Box::new(write), Default::default()),
                reply: oneshot::channel().0,
            })
            .collect();
        let results = commit_batch(&mut conn, &jobs).unwrap();

        assert!(matches!(
            results[0],
            Ok(Done::Fire(FireWritten::Recorded(_)))
        ));
        assert!(matches!(
            results[1],
            Ok(Done::Fire(FireWritten::Recorded(_)))
        ));
        assert!(matches!(results[2], Err(FireError::Sqlite(_))));
        assert_eq!(count(&conn, "trigger_instances"), 2);
        // The failed fire's key claim was rolled back with it: a retry can fire.
        let claimed: Vec<String> = conn
            .prepare("SELECT key FROM fire_keys ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(claimed, ["key-a", "key-b"]);
    }

    /// A migrated database and the committer's own connection to it.
    async fn migrated(dir: &Path) -> Connection {
        let path = dir.join("firehook.db");
        let settings = DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}", path.display())),
            max_connections: 2,
            sqlite_synchronous: SqliteSynchronous::Full,
        };
        Store::connect(&settings, crate::store::test_key())
            .await
            .unwrap()
            .migrate()
            .await
            .unwrap();
        open(&path, SqliteSynchronous::Full).unwrap()
    }

    #[tokio::test]
    async fn a_claim_leases_each_due_subscription_up_to_its_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = migrated(dir.path()).await;
        conn.execute(
            "INSERT INTO outbound_events (id, org_id, type, body, created_at) \
             VALUES ('evt_1', 'org_1', 'trigger.fired', '{}', 0)",
            [],
        )
        .unwrap();
        for i in 0..5 {
            for (sub, due) in [("whs_a", 100 + i), ("whs_b", 200 + i), ("whs_later", 5_000)] {
                conn.execute(
                    "INSERT INTO outbound_deliveries (id, org_id, event_id, subscription_id, \
                     event_type, status, attempts, retry_step, next_attempt_at, created_at, \
                     updated_at) VALUES (?1, 'org_1', 'evt_1', ?2, 'trigger.fired', 'pending', \
                     0, 0, ?3, 0, 0)",
                    params![format!("whd_{sub}_{i}"), sub, due],
                )
                .unwrap();
            }
        }
        // A process that holds one of whs_a's deliveries, each endpoint's share being 3.
        let claim = |owner: &str, now: i64, limit: i64, held: &[(&str, i64)]| Job {
            work: Work::Claim(Box::new(Lease {
                owner: owner.into(),
                until: 2_000,
                now,
                limit,
                room: Room {
                    per_endpoint: 3,
                    held: held.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
                },
            })),
            reply: oneshot::channel().0,
        };
        let mut leased = |job: Job| -> Vec<String> {
            match commit_batch(&mut conn, &[job]).unwrap().remove(0) {
                Ok(Done::Claimed(mut ids)) => {
                    ids.sort();
                    ids
                }
                _ => panic!("a claim answers ids"),
            }
        };
        let held = [("whs_a", 1)];
        assert_eq!(
            leased(claim("dsp_1", 1_000, 100, &held)),
            [
                "whd_whs_a_0",
                "whd_whs_a_1",
                "whd_whs_b_0",
                "whd_whs_b_1",
                "whd_whs_b_2"
            ]
        );
        // What a claim leased is not due again before its lease ends.
        assert_eq!(
            leased(claim("dsp_1", 1_000, 100, &held)),
            ["whd_whs_a_2", "whd_whs_a_3", "whd_whs_b_3", "whd_whs_b_4"]
        );
        // The process's free slots bound a claim in all.
        assert_eq!(leased(claim("dsp_1", 1_000, 1, &held)), ["whd_whs_a_4"]);
        assert!(leased(claim("dsp_1", 1_000, 100, &[])).is_empty());
        // Once the leases have ended another process takes them over; whs_later's
        // deliveries are still not due.
        let taken = leased(claim("dsp_2", 2_001, 100, &[]));
        assert_eq!(taken.len(), 6, "{taken:?}");
        assert_eq!(taken.iter().filter(|id| id.contains("whs_a")).count(), 3);
        assert!(!taken.iter().any(|id| id.contains("whs_later")));
    }
}
