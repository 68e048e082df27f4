//! Orgs and API keys.

use super::generation::BUMP;
use super::{with_read, with_write, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: String,
    pub org_id: String,
}

impl Store {
    pub async fn count_orgs(&self) -> sqlx::Result<i64> {
        with_read!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(pool).await)
    }

    pub async fn org_exists(&self, org_id: &str) -> sqlx::Result<bool> {
        let found: Option<String> = with_read!(self, pool => {
            sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
                .bind(org_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// The first org created, which `keys create` uses when no org is named.
    pub async fn first_org(&self) -> sqlx::Result<Option<String>> {
        with_read!(self, pool => {
            sqlx::query_scalar("SELECT id FROM orgs ORDER BY created_at, id LIMIT 1")
                .fetch_optional(pool)
                .await
        })
    }

    /// Creates an org with its first API key, atomically.
    pub async fn create_org_with_key(
        &self,
        org_id: &str,
        name: &str,
        key: &NewApiKey<'_>,
        now: i64,
    ) -> sqlx::Result<()> {
        with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(org_id)
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_KEY)
                .bind(key.id)
                .bind(org_id)
                .bind(key.name)
                .bind(key.hash)
                .bind(key.hint)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    pub async fn insert_api_key(
        &self,
        org_id: &str,
        key: &NewApiKey<'_>,
        now: i64,
    ) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(INSERT_KEY)
                .bind(key.id)
                .bind(org_id)
                .bind(key.name)
                .bind(key.hash)
                .bind(key.hint)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// The active key with this hash, if any.
    pub async fn find_api_key(&self, hash: &str) -> sqlx::Result<Option<ApiKeyRecord>> {
        with_read!(self, pool => {
            sqlx::query_as("SELECT id, org_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                .bind(hash)
                .fetch_optional(pool)
                .await
        })
    }

    /// Revokes a key; answers whether it existed and was active. Every process refuses it
    /// within a second (the cache generation moves with it).
    pub async fn revoke_api_key(&self, key_id: &str, now: i64) -> sqlx::Result<bool> {
        let revoked = with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let revoked = sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected() == 1;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            tx.commit().await?;
            revoked
        });
        self.forget_keys();
        Ok(revoked)
    }
}

const INSERT_KEY: &str = "INSERT INTO api_keys (id, org_id, name, key_hash, hint, created_at) \
                          VALUES ($1, $2, $3, $4, $5, $6)";

/// A key about to be stored: only its hash and last characters are kept.
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hash: &'a str,
    pub hint: &'a str,
}
