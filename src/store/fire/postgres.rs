//! Fires on PostgreSQL: each fire is its own transaction; the server groups concurrent
//! commits itself.

use sqlx::{FromRow, PgConnection, PgPool, Row};

use super::{
    write_fire, FireTx, FireWrite, FireWritten, KeyClaim, NewInstance, NewRun, Published,
    ReplayRecord, CLAIM_KEY, DEFINE_FIELD, INSERT_INSTANCE, INSERT_RUN, KEY_HOLDER, LINK_IDENTITY,
    PUBLISHED, RELEASE_KEY, UPSERT_CONTACT,
};
use crate::store::TriggerInstanceRow;

pub(super) async fn fire(pool: &PgPool, w: &FireWrite) -> sqlx::Result<FireWritten> {
    let mut tx = pool.begin().await?;
    let written = write_fire(&mut *tx, w).await?;
    match written {
        FireWritten::Recorded(_) => tx.commit().await?,
        FireWritten::Existing(_) => tx.rollback().await?,
    }
    Ok(written)
}

impl FireTx for PgConnection {
    type Error = sqlx::Error;

    async fn claim_key(&mut self, w: &FireWrite, claim: &KeyClaim) -> sqlx::Result<bool> {
        let claimed: Option<String> = sqlx::query_scalar(CLAIM_KEY)
            .bind(&w.org_id)
            .bind(&claim.scope)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(&w.instance_id)
            .bind(w.now_ms)
            .bind(w.key_expired_before_ms)
            .fetch_optional(&mut *self)
            .await?;
        Ok(claimed.is_some())
    }

    async fn key_holder(&mut self, org_id: &str, claim: &KeyClaim) -> sqlx::Result<ReplayRecord> {
        let row = sqlx::query(KEY_HOLDER)
            .bind(org_id)
            .bind(&claim.scope)
            .bind(&claim.key)
            .fetch_one(&mut *self)
            .await?;
        Ok(ReplayRecord {
            request_hash: row.try_get("request_hash")?,
            instance: TriggerInstanceRow::from_row(&row)?,
        })
    }

    async fn stored_fields(&mut self, org_id: &str, email: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT custom_fields FROM contacts WHERE org_id = $1 AND email = $2 FOR UPDATE",
        )
        .bind(org_id)
        .bind(email)
        .fetch_optional(&mut *self)
        .await
    }

    async fn upsert_contact(
        &mut self,
        w: &FireWrite,
        email: &str,
        fields: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(UPSERT_CONTACT)
            .bind(&w.org_id)
            .bind(email)
            .bind(&w.contact.first_name)
            .bind(&w.contact.last_name)
            .bind(w.contact.subscribed)
            .bind(fields)
            .bind(w.now_ms)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn define_field(&mut self, w: &FireWrite, key: &str, kind: &str) -> sqlx::Result<()> {
        sqlx::query(DEFINE_FIELD)
            .bind(&w.org_id)
            .bind(key)
            .bind(kind)
            .bind(w.now_ms)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn link_identity(
        &mut self,
        w: &FireWrite,
        field: &str,
        value: &str,
        email: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(LINK_IDENTITY)
            .bind(&w.org_id)
            .bind(field)
            .bind(value)
            .bind(email)
            .execute(&mut *self)
            .await?;
        Ok(())
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

    async fn insert_run(&mut self, w: &FireWrite, run: &NewRun<'_>) -> sqlx::Result<()> {
        sqlx::query(INSERT_RUN)
            .bind(run.id)
            .bind(&w.org_id)
            .bind(&run.automation.id)
            .bind(run.automation.version)
            .bind(&w.trigger_id)
            .bind(&w.instance_id)
            .bind("queued")
            .bind(w.contact_email.as_deref().unwrap_or_default())
            .bind(run.payload)
            .bind(w.now_ms)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn insert_instance(&mut self, w: &FireWrite, i: &NewInstance<'_>) -> sqlx::Result<()> {
        sqlx::query(INSERT_INSTANCE)
            .bind(&w.instance_id)
            .bind(&w.org_id)
            .bind(&w.trigger_id)
            .bind(&w.source)
            .bind(i.record.outcome)
            .bind(i.reason)
            .bind(w.claim.as_ref().map(|c| c.key.as_str()))
            .bind(&w.contact_email)
            .bind(i.payload)
            .bind(w.warnings.to_string())
            .bind(serde_json::to_string(&i.record.run_ids).unwrap_or_default())
            .bind(super::automations_json(&i.record.automations))
            .bind(w.now_ms)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn release_key(&mut self, org_id: &str, claim: &KeyClaim) -> sqlx::Result<()> {
        sqlx::query(RELEASE_KEY)
            .bind(org_id)
            .bind(&claim.scope)
            .bind(&claim.key)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}
