//! Triggers: API triggers and the ones connections provision.

use super::{with_read, with_write, Page, Store};
use crate::domain::TriggerStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerRow {
    pub id: String,
    pub org_id: String,
    pub title: String,
    pub description: Option<String>,
    pub provider: String,
    pub connection_id: Option<String>,
    pub provider_event_key: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TriggerStatus,
    pub payload_schema: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, org_id, title, description, provider, connection_id, \
                       provider_event_key, status, payload_schema, created_at, updated_at";

pub(super) const INSERT_TRIGGER: &str = "INSERT INTO triggers (id, org_id, title, description, \
     provider, connection_id, provider_event_key, status, payload_schema, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Binds a trigger row to [`INSERT_TRIGGER`].
macro_rules! bind_trigger {
    ($query:expr, $t:expr) => {
        $query
            .bind(&$t.id)
            .bind(&$t.org_id)
            .bind(&$t.title)
            .bind(&$t.description)
            .bind(&$t.provider)
            .bind(&$t.connection_id)
            .bind(&$t.provider_event_key)
            .bind($t.status.as_str())
            .bind(&$t.payload_schema)
            .bind($t.created_at)
            .bind($t.updated_at)
    };
}
pub(super) use bind_trigger;

impl Store {
    pub async fn insert_trigger(&self, t: &TriggerRow) -> sqlx::Result<()> {
        with_write!(self, pool => {
            bind_trigger!(sqlx::query(INSERT_TRIGGER), t).execute(pool).await.map(|_| ())?
        });
        self.forget_triggers();
        Ok(())
    }

    pub async fn get_trigger(&self, org_id: &str, id: &str) -> sqlx::Result<Option<TriggerRow>> {
        let sql = format!("SELECT {COLUMNS} FROM triggers WHERE org_id = $1 AND id = $2");
        with_read!(self, pool => {
            sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await
        })
    }

    pub async fn list_triggers(
        &self,
        org_id: &str,
        provider: Option<&str>,
        connection_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<TriggerRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM triggers WHERE org_id = $1 \
             AND ($2 IS NULL OR provider = $2) AND ($3 IS NULL OR connection_id = $3) \
             AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(provider)
                .bind(connection_id)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        Ok(Page::from_rows(rows, limit))
    }

    /// Writes the editable columns of `t` back.
    pub async fn update_trigger(&self, t: &TriggerRow) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE triggers SET title = $1, description = $2, status = $3, \
                 payload_schema = $4, updated_at = $5 WHERE org_id = $6 AND id = $7",
            )
            .bind(&t.title)
            .bind(&t.description)
            .bind(t.status.as_str())
            .bind(&t.payload_schema)
            .bind(t.updated_at)
            .bind(&t.org_id)
            .bind(&t.id)
            .execute(pool)
            .await
            .map(|_| ())?
        });
        self.forget_triggers();
        Ok(())
    }
}
