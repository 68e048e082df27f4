//! Contacts, keyed by org and normalised email.

use serde::Serialize;
use serde_json::value::RawValue;

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
    /// The contact as outbound webhooks show it.
    pub fn as_json(&self) -> ContactJson<'_> {
        // The stored fields are a JSON object written by the fire; they are copied as they
        // are rather than parsed into a tree and printed again.
        let custom_fields = serde_json::from_str::<&RawValue>(&self.custom_fields)
            .unwrap_or_else(|_| serde_json::from_str("{}").expect("valid JSON"));
        ContactJson {
            email: &self.email,
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            subscribed: self.subscribed,
            custom_fields,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactJson<'a> {
    email: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    subscribed: Option<bool>,
    custom_fields: &'a RawValue,
    created_at: String,
    updated_at: String,
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
