//! Contacts, keyed by org and normalised email.

use serde_json::{json, Value};

use super::{with_read, Page, Store};
use crate::clock::rfc3339;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub subscribed: Option<bool>,
    pub custom_fields: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ContactRow {
    /// The contact as the API and outbound webhooks show it.
    pub fn to_json(&self) -> Value {
        json!({
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "subscribed": self.subscribed,
            "customFields": serde_json::from_str::<Value>(&self.custom_fields)
                .unwrap_or_else(|_| json!({})),
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

pub(super) const COLUMNS: &str =
    "email, first_name, last_name, subscribed, custom_fields, created_at, updated_at";

impl Store {
    pub async fn get_contact(&self, org_id: &str, email: &str) -> sqlx::Result<Option<ContactRow>> {
        let sql = format!("SELECT {COLUMNS} FROM contacts WHERE org_id = $1 AND email = $2");
        with_read!(self, pool => {
            sqlx::query_as(&sql).bind(org_id).bind(email).fetch_optional(pool).await
        })
    }

    pub async fn list_contacts(
        &self,
        org_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<ContactRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM contacts WHERE org_id = $1 AND ($2 IS NULL OR email > $2) \
             ORDER BY email LIMIT $3"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        Ok(Page::from_rows(rows, limit))
    }
}
