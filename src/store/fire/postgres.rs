//! Fires on PostgreSQL: each fire is its own transaction (the server groups concurrent
//! commits itself), in as few round trips as the steps allow.

use std::borrow::Cow;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Row};

use serde_json::Value;

use super::postgres_batch::{commit, Failed};
use super::postgres_statements::{bind_logged, INSERT_LOGGED};
use super::{
    insert_instance, json_type, run_columns, upsert_contact, write_fire, FireTx, FireWrite,
    FireWritten, KeyClaim, KeyHolderRow, NewRecord, Published, KEY_HOLDER, PUBLISHED, RELEASE_KEY,
};
use crate::domain::{Email, RunStatus};
use crate::store::deliveries::{
    delivery_columns, Arrival, LoggedDelivery, Verdict, INSERT_DELIVERY, UNCONFIRMED,
};
use crate::store::digest::index_key;
use crate::store::outbound::{AttemptRecord, FINISH_ATTEMPT, INSERT_ATTEMPT};
use crate::store::outbox::{insert_outbox_pg, ContactChange, OutboundEvent, Subscribers};
use crate::store::ContactRow;

/// One round trip for a fire's runs and instance (`$1` to `$17`). The runs' reference to
/// the instance is checked at commit.
macro_rules! record {
    ($($logged:expr)?) => {
        concat!(
            "WITH started AS (INSERT INTO ",
            run_columns!(),
            " SELECT r.id, $2, r.automation_id, r.version, $3, $1, $17, COALESCE($8, ''), \
             $9, $13 FROM unnest($14::text[], $15::text[], $16::bigint[]) \
             AS r(id, automation_id, version)) ",
            $($logged,)?
            insert_instance!()
        )
    };
}

const RECORD: &str = record!();

/// [`RECORD`] and, in the same round trip, the log row of the delivery behind the fire
/// (`$18` to `$34`, as [`INSERT_DELIVERY`] binds them).
const RECORD_AND_LOG: &str = record!(concat!(
    ", logged AS (INSERT INTO ",
    delivery_columns!(),
    " VALUES ($18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, \
     $33, $34)) "
));

/// Binds a delivery's columns in the order of [`INSERT_DELIVERY`].
fn bind_delivery<'q>(
    query: Query<'q, Postgres, PgArguments>,
    a: &'q Arrival,
    v: &'q Verdict,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(&a.id)
        .bind(&a.org_id)
        .bind(&a.connection_id)
        .bind(&a.provider)
        .bind(&a.event)
        .bind(v.status.as_str())
        .bind(&v.reason)
        .bind(i64::from(v.http_status))
        .bind(a.received_at_ms)
        .bind(&a.trigger_id)
        .bind(&v.trigger_instance_id)
        .bind(serde_json::to_string(&v.run_ids).expect("strings serialise"))
        .bind(&a.replay_of)
        .bind(&a.headers)
        .bind(a.body_bytes)
        .bind(a.body.as_ref().map(|b| &b.bytes))
        .bind(a.body.as_ref().and_then(|b| b.encoding))
}

pub(super) async fn fire(
    pool: &PgPool,
    w: &FireWrite,
    subscribers: &Subscribers,
) -> Result<FireWritten, Failed> {
    let mut tx = pool.begin().await.map_err(Failed::RolledBack)?;
    let written = write_fire(&mut *tx, w, subscribers)
        .await
        .map_err(Failed::RolledBack)?;
    // A repeat of a held key wrote its delivery's log row, if any, and nothing else.
    commit(tx).await?;
    Ok(written)
}

/// Corrects the log rows of deliveries whose fires' commit was not confirmed: they were
/// answered 503, so the provider retries them.
pub(super) async fn mark_unconfirmed(pool: &PgPool, delivery_ids: &[String]) -> sqlx::Result<()> {
    sqlx::query("UPDATE deliveries SET http_status = 503, reason = $1 WHERE id = ANY($2)")
        .bind(UNCONFIRMED)
        .bind(delivery_ids)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Writes deliveries logged outside a fire in one statement.
pub(in crate::store) async fn log_deliveries(
    pool: &PgPool,
    deliveries: &[LoggedDelivery],
) -> sqlx::Result<()> {
    let logged: Vec<(&Arrival, &Verdict)> = deliveries
        .iter()
        .map(|d| (&d.arrival, &d.verdict))
        .collect();
    bind_logged(sqlx::query(INSERT_LOGGED), &logged)
        .execute(pool)
        .await?;
    Ok(())
}

pub(in crate::store) async fn record_attempt(pool: &PgPool, a: &AttemptRecord) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    tx.record_attempt(a).await?;
    tx.commit().await
}

impl FireTx for PgConnection {
    type Error = sqlx::Error;

    async fn claim_key(&mut self, w: &FireWrite, claim: &KeyClaim) -> sqlx::Result<bool> {
        let claimed: Option<String> = sqlx::query_scalar(claim.sql())
            .bind(&w.org_id)
            .bind(&claim.scope)
            .bind(index_key(&claim.key))
            .bind(&claim.request_hash)
            .bind(&w.instance_id)
            .bind(w.now_ms)
            .bind(&claim.key)
            .bind(w.key_expired_before_ms)
            .fetch_optional(&mut *self)
            .await?;
        Ok(claimed.is_some())
    }

    async fn key_holder(&mut self, org_id: &str, claim: &KeyClaim) -> sqlx::Result<KeyHolderRow> {
        let row = sqlx::query(KEY_HOLDER)
            .bind(org_id)
            .bind(&claim.scope)
            .bind(index_key(&claim.key))
            .fetch_one(&mut *self)
            .await?;
        Ok(KeyHolderRow {
            request_hash: row.try_get(0)?,
            instance_id: row.try_get(1)?,
            outcome: row.try_get(2)?,
            run_ids: row.try_get(3)?,
            automations: row.try_get(4)?,
            received_at_ms: row.try_get(5)?,
        })
    }

    async fn upsert_contact(
        &mut self,
        w: &FireWrite,
        email: &Email,
    ) -> sqlx::Result<ContactChange> {
        let email = email.as_str();
        // One round trip: the row lock the upsert takes orders concurrent merges.
        const UPSERT: &str = concat!(
            "WITH defined AS (INSERT INTO contact_fields (org_id, key, type, created_at) \
             SELECT $1, f.key, f.type, $7 FROM unnest($8::text[], $9::text[]) AS f(key, type) \
             ON CONFLICT (org_id, key) DO NOTHING), \
             linked AS (INSERT INTO contact_identities (org_id, field, value, value_index, email) \
             SELECT $1, i.field, i.value, i.index_key, $2 \
             FROM unnest($10::text[], $11::text[], $12::text[]) AS i(field, value, index_key) \
             ON CONFLICT (org_id, field, value_index) DO UPDATE SET email = excluded.email) ",
            upsert_contact!(
                "(contacts.custom_fields::jsonb || excluded.custom_fields::jsonb)::text"
            ),
            // A freshly inserted row has xmax 0; the row ON CONFLICT updated carries the
            // updating transaction's id there. That tells contact.created from .updated.
            " RETURNING email, first_name, last_name, subscribed, custom_fields, created_at, \
             updated_at, (xmax = 0) AS created"
        );
        let c = &w.contact;
        let (keys, types): (Vec<&str>, Vec<&str>) = c
            .custom_fields
            .iter()
            .map(|(k, v)| (k.as_str(), json_type(v)))
            .unzip();
        let (fields, values): (Vec<&str>, Vec<&str>) = w
            .identities
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .unzip();
        let index_keys: Vec<Cow<str>> = values.iter().map(|v| index_key(v)).collect();
        let row = sqlx::query(UPSERT)
            .bind(&w.org_id)
            .bind(email)
            .bind(&c.first_name)
            .bind(&c.last_name)
            .bind(c.subscribed)
            .bind(Value::Object(c.custom_fields.clone()).to_string())
            .bind(w.now_ms)
            .bind(keys)
            .bind(types)
            .bind(fields)
            .bind(values)
            .bind(index_keys)
            .fetch_one(&mut *self)
            .await?;
        Ok(ContactChange {
            created: row.try_get("created")?,
            row: ContactRow::from_row(&row)?,
        })
    }

    async fn published(&mut self, trigger_id: &str) -> sqlx::Result<Vec<Published>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(PUBLISHED)
            .bind(trigger_id)
            .bind(true)
            .fetch_all(&mut *self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, version)| Published { id, name, version })
            .collect())
    }

    async fn record(
        &mut self,
        w: &FireWrite,
        r: &NewRecord<'_>,
        delivery: Option<(&Arrival, &Verdict)>,
    ) -> sqlx::Result<()> {
        let run_ids: Vec<&str> = r.runs.iter().map(|run| run.id.as_str()).collect();
        let automation_ids: Vec<&str> = r
            .runs
            .iter()
            .map(|run| run.automation.id.as_str())
            .collect();
        let versions: Vec<i64> = r.runs.iter().map(|run| run.automation.version).collect();
        let sql = match delivery {
            Some(_) => RECORD_AND_LOG,
            None => RECORD,
        };
        let query = sqlx::query(sql)
            .bind(&w.instance_id)
            .bind(&w.org_id)
            .bind(&w.trigger_id)
            .bind(&w.source)
            .bind(r.outcome())
            .bind(r.reason())
            .bind(w.claim.as_ref().map(|c| c.key.as_str()))
            .bind(w.contact_email.as_ref().map(Email::as_str))
            .bind(r.payload)
            .bind(w.warnings.to_string())
            .bind(r.run_ids_json())
            .bind(r.automations_json())
            .bind(w.now_ms)
            .bind(run_ids)
            .bind(automation_ids)
            .bind(versions)
            .bind(RunStatus::Queued.as_str());
        let query = match delivery {
            Some((arrival, verdict)) => bind_delivery(query, arrival, verdict),
            None => query,
        };
        query.execute(&mut *self).await?;
        Ok(())
    }

    async fn record_attempt(&mut self, a: &AttemptRecord) -> sqlx::Result<()> {
        sqlx::query(INSERT_ATTEMPT)
            .bind(&a.delivery_id)
            .bind(a.attempt)
            .bind(a.attempted_at)
            .bind(a.http_status)
            .bind(a.latency_ms)
            .bind(&a.error)
            .bind(&a.response_excerpt)
            .execute(&mut *self)
            .await?;
        let (status, at, step) = a.outcome();
        sqlx::query(FINISH_ATTEMPT)
            .bind(status.as_str())
            .bind(a.attempt)
            .bind(step)
            .bind(at)
            .bind(a.attempted_at)
            .bind(&a.delivery_id)
            .bind(&a.owner)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn outbox(&mut self, events: &[OutboundEvent]) -> sqlx::Result<()> {
        insert_outbox_pg(self, events).await
    }

    async fn release_key(&mut self, org_id: &str, claim: &KeyClaim) -> sqlx::Result<()> {
        sqlx::query(RELEASE_KEY)
            .bind(org_id)
            .bind(&claim.scope)
            .bind(index_key(&claim.key))
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn record_delivery(&mut self, a: &Arrival, v: &Verdict) -> sqlx::Result<()> {
        bind_delivery(sqlx::query(INSERT_DELIVERY), a, v)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}
