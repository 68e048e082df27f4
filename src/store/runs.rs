//! Runs and trigger instances (the record of every fire).

use super::{with_read, Page, Store};
use crate::domain::{FireOutcome, RunStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub automation_id: String,
    pub automation_version: i64,
    pub trigger_id: String,
    pub trigger_instance_id: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub contact_email: String,
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerInstanceRow {
    pub id: String,
    pub trigger_id: String,
    pub source: String,
    #[sqlx(try_from = "String")]
    pub outcome: FireOutcome,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub contact_email: Option<String>,
    pub payload: String,
    pub warnings: String,
    pub run_ids: String,
    pub automations: String,
    pub received_at: i64,
}

/// Filters of `GET /v1/automations/runs`; each one given narrows the list.
#[derive(Debug, Default)]
pub struct RunFilter<'a> {
    pub run_id: Option<&'a str>,
    pub automation_id: Option<&'a str>,
    pub trigger_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

const RUN_COLUMNS: &str = "id, automation_id, automation_version, trigger_id, \
                           trigger_instance_id, status, contact_email, payload, created_at";
pub(super) const INSTANCE_COLUMNS: &str =
    "id, trigger_id, source, outcome, reason, idempotency_key, \
     contact_email, payload, warnings, run_ids, automations, received_at";

impl Store {
    pub async fn list_runs(
        &self,
        org_id: &str,
        filter: &RunFilter<'_>,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE org_id = $1 \
             AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR automation_id = $3) \
             AND ($4 IS NULL OR trigger_id = $4) AND ($5 IS NULL OR status = $5) \
             AND ($6 IS NULL OR id > $6) ORDER BY id LIMIT $7"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(filter.run_id)
                .bind(filter.automation_id)
                .bind(filter.trigger_id)
                .bind(filter.status)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        Ok(Page::from_rows(rows, limit))
    }

    pub async fn list_trigger_instances(
        &self,
        org_id: &str,
        trigger_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<TriggerInstanceRow>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM trigger_instances WHERE org_id = $1 \
             AND ($2 IS NULL OR trigger_id = $2) AND ($3 IS NULL OR id > $3) \
             ORDER BY id LIMIT $4"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(trigger_id)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        Ok(Page::from_rows(rows, limit))
    }
}
