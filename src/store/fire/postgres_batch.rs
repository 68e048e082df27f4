//! Group commit for PostgreSQL fires.
//!
//! On its own a fire costs six round trips (begin, key, contact, automations, record,
//! commit), and at a couple of thousand fires a second the round trips' context switches,
//! not the server's work, filled the cores. Writer tasks take every fire that is waiting
//! and write them as one transaction of multi-row statements (`unnest` arrays, see
//! [`super::postgres_statements`]): four round trips for the whole batch (begin; its keys,
//! with the published automations of its triggers; everything it writes, contacts, runs,
//! trigger instances and log rows; commit).
//!
//! A batch holds fires that touch different keys, contacts and provider ids: one multi-row
//! upsert cannot change a row twice. A fire that would share one is written on its own
//! after the batch, and so is a replay that may take a key over. If a statement of a batch
//! fails, the batch is rolled back and each of its fires is written on its own, so a bad
//! fire fails alone, with its own error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::postgres_statements::{claim_keys, write_records, Claimed, ContactUpserts};
use super::{
    duplicate_of, payload_json, start_runs, FireError, FireMode, FireRecord, FireTx, FireWrite,
    FireWritten, NewRecord, NewRun,
};
use crate::domain::FireOutcome;
use crate::store::digest::index_key;
use crate::store::outbox::{self, insert_outbox_pg, Subscribers};

/// The most fires one transaction holds.
const MAX_BATCH: usize = 128;
/// Batches written at once: while one waits on the server, the next fires gather. Two
/// measured ahead of one and four (BENCHMARKS.md); more only made each batch smaller.
const WRITERS: usize = 2;

#[derive(Clone)]
pub(in crate::store) struct PgCommitter {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    write: Box<FireWrite>,
    subscribers: Arc<Subscribers>,
    reply: oneshot::Sender<Result<FireWritten, FireError>>,
}

impl PgCommitter {
    /// Starts the writer tasks on the current runtime; they stop when the last committer
    /// handle is dropped.
    pub(in crate::store) fn start(pool: PgPool) -> PgCommitter {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * WRITERS * 2);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(run_batches(pool.clone(), queue.clone()));
        }
        PgCommitter { jobs }
    }

    pub(super) async fn submit(
        &self,
        write: FireWrite,
        subscribers: Arc<Subscribers>,
    ) -> Result<FireWritten, FireError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write: Box::new(write),
            subscribers,
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| FireError::WriterStopped)?;
        answer.await.map_err(|_| FireError::WriterStopped)?
    }
}

async fn run_batches(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        write(&pool, batch).await;
    }
}

/// Writes a batch and answers each of its fires.
async fn write(pool: &PgPool, batch: Vec<Job>) {
    let (together, alone) = split(batch);
    if !together.is_empty() {
        match write_together(pool, &together).await {
            Ok(written) => {
                for (job, written) in together.into_iter().zip(written) {
                    let _ = job.reply.send(Ok(written));
                }
            }
            Err(Failed::Unconfirmed(e)) => unconfirmed(pool, together, &e),
            Err(Failed::RolledBack(e)) => {
                tracing::warn!(error = %e, fires = together.len(), "a fire batch failed; writing its fires one by one");
                // They touch different rows, so they need not wait for each other; while
                // the database is unreachable they fail together, not one timeout after
                // another.
                join_all(together.into_iter().map(|job| write_alone(pool, job))).await;
            }
        }
    }
    for job in alone {
        write_alone(pool, job).await;
    }
}

async fn write_alone(pool: &PgPool, job: Job) {
    match super::postgres::fire(pool, &job.write, &job.subscribers).await {
        Ok(written) => {
            let _ = job.reply.send(Ok(written));
        }
        Err(Failed::RolledBack(e)) => {
            let _ = job.reply.send(Err(FireError::from(e)));
        }
        Err(Failed::Unconfirmed(e)) => unconfirmed(pool, vec![job], &e),
    }
}

/// Answers fires whose commit was not confirmed (the client is told to retry), then
/// corrects the log rows of their deliveries, in the background: where the commit took,
/// the row was written as if the delivery had been answered, and says 200.
fn unconfirmed(pool: &PgPool, jobs: Vec<Job>, e: &sqlx::Error) {
    tracing::error!(error = %e, fires = jobs.len(), "a commit of fires was not confirmed");
    let mut logged = vec![];
    for job in jobs {
        logged.extend(job.write.delivery.as_ref().map(|a| a.id.clone()));
        let _ = job.reply.send(Err(FireError::Unconfirmed(e.to_string())));
    }
    if logged.is_empty() {
        return;
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(e) = super::postgres::mark_unconfirmed(&pool, &logged).await {
            tracing::warn!(error = %e, deliveries = ?logged, "marking deliveries whose commit was not confirmed failed");
        }
    });
}

/// Why a batch (or a fire written alone) was not written.
pub(super) enum Failed {
    /// Nothing of it was committed: each fire can be written again.
    RolledBack(sqlx::Error),
    /// The connection failed during COMMIT, so the batch may or may not be stored. Writing
    /// its fires again could store a fire without a key twice.
    Unconfirmed(sqlx::Error),
}

/// Splits a batch into the fires written together and those written alone after them.
fn split(batch: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut keys = HashSet::new();
    let mut contacts = HashSet::new();
    let mut identities = HashSet::new();
    let (mut together, mut alone) = (vec![], vec![]);
    for job in batch {
        let w = &job.write;
        let key = w.claim.as_ref().map(|c| {
            (
                w.org_id.clone(),
                c.scope.clone(),
                index_key(&c.key).into_owned(),
            )
        });
        let upserts = w.mode == FireMode::Run && w.contact_email.is_some();
        let contact = w
            .contact_email
            .as_ref()
            .filter(|_| upserts)
            .map(|e| (w.org_id.clone(), e.as_str().to_owned()));
        let linked: Vec<_> = w
            .identities
            .iter()
            .filter(|_| upserts)
            .map(|(f, v)| (w.org_id.clone(), f.clone(), index_key(v).into_owned()))
            .collect();
        let fits = !w.claim.as_ref().is_some_and(|c| c.reclaim_unfired)
            && !key.as_ref().is_some_and(|k| keys.contains(k))
            && !contact.as_ref().is_some_and(|c| contacts.contains(c))
            && !linked.iter().any(|i| identities.contains(i));
        if fits {
            keys.extend(key);
            contacts.extend(contact);
            identities.extend(linked);
            together.push(job);
        } else {
            alone.push(job);
        }
    }
    (together, alone)
}

async fn write_together(pool: &PgPool, jobs: &[Job]) -> Result<Vec<FireWritten>, Failed> {
    let mut tx = pool.begin().await.map_err(Failed::RolledBack)?;
    let written = write_batch(&mut tx, jobs)
        .await
        .map_err(Failed::RolledBack)?;
    commit(tx).await?;
    Ok(written)
}

/// Commits a fire's or a batch's transaction.
pub(super) async fn commit(tx: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), Failed> {
    match tx.commit().await {
        Ok(()) => Ok(()),
        // The server answered: the commit failed (a deferred check) and rolled back.
        Err(e @ sqlx::Error::Database(_)) => Err(Failed::RolledBack(e)),
        Err(e) => Err(Failed::Unconfirmed(e)),
    }
}

/// The steps of [`super::write_fire`] for a whole batch, each one statement.
async fn write_batch(conn: &mut PgConnection, jobs: &[Job]) -> sqlx::Result<Vec<FireWritten>> {
    let writes: Vec<&FireWrite> = jobs.iter().map(|j| &*j.write).collect();
    let may_run: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].mode == FireMode::Run)
        .collect();
    let Claimed {
        instance_ids: claimed,
        published,
    } = claim_keys(conn, &writes, &may_run).await?;

    // A held key: the earlier fire, and this delivery logged as its duplicate.
    let mut held = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Some(claim) = &w.claim {
            if !claimed.contains(w.instance_id.as_str()) {
                let holder = conn.key_holder(&w.org_id, claim).await?.decode()?;
                if let Some(arrival) = &w.delivery {
                    conn.record_delivery(arrival, &duplicate_of(&holder.instance_id))
                        .await?;
                }
                held.insert(i, holder);
            }
        }
    }
    let firing: Vec<usize> = (0..writes.len())
        .filter(|i| !held.contains_key(i))
        .collect();
    let running: Vec<usize> = firing
        .iter()
        .copied()
        .filter(|&i| writes[i].mode == FireMode::Run)
        .collect();

    let upserts = ContactUpserts::new(&writes, &running);
    let mut runs: HashMap<usize, Vec<NewRun>> = running
        .iter()
        .map(|&i| {
            let automations = published.get(writes[i].trigger_id.as_str());
            (i, start_runs(automations.cloned().unwrap_or_default()))
        })
        .collect();
    let payloads: Vec<String> = firing.iter().map(|&i| payload_json(writes[i])).collect();
    let records: Vec<(usize, NewRecord)> = firing
        .iter()
        .zip(&payloads)
        .map(|(&i, payload)| {
            let runs = runs.get(&i).map(Vec::as_slice).unwrap_or_default();
            (i, NewRecord::new(writes[i].mode, runs, payload))
        })
        .collect();
    let mut contacts = write_records(conn, &writes, &upserts, &records).await?;
    let outcomes: Vec<(usize, FireOutcome)> =
        records.into_iter().map(|(i, r)| (i, r.outcome)).collect();

    let mut recorded = HashMap::new();
    let mut events = vec![];
    let mut released = vec![];
    for (i, outcome) in outcomes {
        let w = writes[i];
        let record = FireRecord::started(outcome, runs.remove(&i).unwrap_or_default());
        if w.release_key_without_runs && record.runs.is_empty() {
            released.extend(w.claim.as_ref().map(|claim| (w, claim)));
        }
        let contact = contacts.remove(&i);
        events.extend(outbox::fire_events(
            &jobs[i].subscribers,
            w,
            &record,
            contact.as_ref(),
        ));
        recorded.insert(i, record);
    }
    for (w, claim) in released {
        conn.release_key(&w.org_id, claim).await?;
    }
    if !events.is_empty() {
        insert_outbox_pg(conn, &events).await?;
    }

    Ok((0..writes.len())
        .map(|i| match held.remove(&i) {
            Some(holder) => FireWritten::Existing(Box::new(holder)),
            None => FireWritten::Recorded(recorded.remove(&i).expect("every fire is recorded")),
        })
        .collect())
}
