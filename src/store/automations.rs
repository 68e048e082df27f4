//! Automations: graphs bound to a trigger; only published ones start runs.

use super::{with_read, with_write, Page, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AutomationRow {
    pub id: String,
    pub org_id: String,
    pub trigger_id: String,
    pub name: String,
    pub description: Option<String>,
    pub nodes: String,
    pub edges: String,
    pub version: i64,
    pub published: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, org_id, trigger_id, name, description, nodes, edges, version, \
                       published, created_at, updated_at";

impl Store {
    pub async fn insert_automation(&self, a: &AutomationRow) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO automations (id, org_id, trigger_id, name, description, nodes, \
                 edges, version, published, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&a.id)
            .bind(&a.org_id)
            .bind(&a.trigger_id)
            .bind(&a.name)
            .bind(&a.description)
            .bind(&a.nodes)
            .bind(&a.edges)
            .bind(a.version)
            .bind(a.published)
            .bind(a.created_at)
            .bind(a.updated_at)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    pub async fn get_automation(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<AutomationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM automations WHERE org_id = $1 AND id = $2");
        with_read!(self, pool => {
            sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await
        })
    }

    pub async fn list_automations(
        &self,
        org_id: &str,
        trigger_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<AutomationRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM automations WHERE org_id = $1 \
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

    /// Writes the editable columns of `a` back.
    pub async fn update_automation(&self, a: &AutomationRow) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE automations SET trigger_id = $1, name = $2, description = $3, \
                 nodes = $4, edges = $5, version = $6, published = $7, updated_at = $8 \
                 WHERE org_id = $9 AND id = $10",
            )
            .bind(&a.trigger_id)
            .bind(&a.name)
            .bind(&a.description)
            .bind(&a.nodes)
            .bind(&a.edges)
            .bind(a.version)
            .bind(a.published)
            .bind(a.updated_at)
            .bind(&a.org_id)
            .bind(&a.id)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }
}
