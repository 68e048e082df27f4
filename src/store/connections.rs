//! Integration connections and their signing secrets.

use super::at_rest::connection_secret_row;
use super::generation::BUMP;
use super::triggers::{bind_trigger, INSERT_TRIGGER};
use super::{with_read, with_write, Page, Store, TriggerRow};
use crate::domain::TriggerStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub org_id: String,
    pub provider: String,
    pub name: String,
    pub enabled: bool,
    pub options: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored secret. `secret` (plain here, sealed in the database) is needed to verify
/// deliveries and never leaves the server.
#[derive(Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub id: String,
    pub connection_id: String,
    pub secret: String,
    pub hint: String,
    pub created_at: i64,
    /// When the secret last verified a delivery, to the minute.
    pub last_verified_at: Option<i64>,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("id", &self.id)
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

/// An edit of a connection: its row as it is to be, at most one secret added and one
/// retired, and the triggers new options provision.
pub struct ConnectionEdit<'a> {
    pub connection: &'a ConnectionRow,
    pub add_secret: Option<&'a SecretRow>,
    pub remove_secret_id: Option<&'a str>,
    /// Triggers the connection's options now provision.
    pub new_triggers: &'a [TriggerRow],
}

/// A connection with its first secrets and the triggers it provisions, written together.
pub struct NewConnection {
    pub connection: ConnectionRow,
    pub secrets: Vec<SecretRow>,
    pub triggers: Vec<TriggerRow>,
}

const COLUMNS: &str = "id, org_id, provider, name, enabled, options, created_at, updated_at";
const SECRET_COLUMNS: &str = "id, connection_id, secret, hint, created_at, last_verified_at";
/// Binds a secret row to [`INSERT_SECRET`], its secret sealed by `$store`.
macro_rules! bind_secret {
    ($query:expr, $store:expr, $s:expr) => {
        $query
            .bind(&$s.id)
            .bind(&$s.connection_id)
            .bind($store.seal_secret(&connection_secret_row(&$s.id), &$s.secret))
            .bind(&$s.hint)
            .bind($s.created_at)
    };
}

const INSERT_SECRET: &str = "INSERT INTO connection_secrets (id, connection_id, secret, hint, \
                             created_at) VALUES ($1, $2, $3, $4, $5)";

impl Store {
    pub async fn insert_connection(&self, new: &NewConnection) -> sqlx::Result<()> {
        let c = &new.connection;
        with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO connections (id, org_id, provider, name, enabled, options, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&c.id)
            .bind(&c.org_id)
            .bind(&c.provider)
            .bind(&c.name)
            .bind(c.enabled)
            .bind(&c.options)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await?;
            for s in &new.secrets {
                bind_secret!(sqlx::query(INSERT_SECRET), self, s)
                    .execute(&mut *tx)
                    .await?;
            }
            for t in &new.triggers {
                bind_trigger!(sqlx::query(INSERT_TRIGGER), t).execute(&mut *tx).await?;
            }
            tx.commit().await?
        });
        // The id may have been looked up (and remembered as unknown) before it existed.
        self.forget_connection(&c.id).await;
        self.forget_triggers();
        Ok(())
    }

    /// A live (not deleted) connection of `org_id`.
    pub async fn get_connection(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<ConnectionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM connections WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        with_read!(self, pool => sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await)
    }

    /// A live connection by id alone, for its receive URL.
    pub async fn find_connection(&self, id: &str) -> sqlx::Result<Option<ConnectionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM connections WHERE id = $1 AND deleted_at IS NULL");
        with_read!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)
    }

    pub async fn list_connections(
        &self,
        org_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<ConnectionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM connections WHERE org_id = $1 AND deleted_at IS NULL \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
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

    pub async fn active_secrets(&self, connection_id: &str) -> sqlx::Result<Vec<SecretRow>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM connection_secrets \
             WHERE connection_id = $1 AND removed_at IS NULL ORDER BY id"
        );
        let rows: Vec<SecretRow> = with_read!(self, pool => {
            sqlx::query_as(&sql).bind(connection_id).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|s| {
                let secret = self.open_secret(&connection_secret_row(&s.id), &s.secret)?;
                Ok(SecretRow { secret, ..s })
            })
            .collect()
    }

    /// Notes that a secret verified a delivery at `at` (a later note wins).
    pub async fn mark_secret_verified(&self, secret_id: &str, at: i64) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE connection_secrets SET last_verified_at = $1 \
                 WHERE id = $2 AND (last_verified_at IS NULL OR last_verified_at < $1)",
            )
            .bind(at)
            .bind(secret_id)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// Writes a connection's editable columns, its secret changes and the triggers its
    /// new options provision (those that exist already are kept) in one transaction, which
    /// also moves the cache generation: other processes see the edit within a second.
    pub async fn update_connection(&self, edit: &ConnectionEdit<'_>) -> sqlx::Result<()> {
        let c = edit.connection;
        let insert_trigger = format!("{INSERT_TRIGGER} ON CONFLICT (id) DO NOTHING");
        with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE connections SET name = $1, enabled = $2, options = $3, updated_at = $4 \
                 WHERE id = $5",
            )
            .bind(&c.name)
            .bind(c.enabled)
            .bind(&c.options)
            .bind(c.updated_at)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
            if let Some(s) = edit.add_secret {
                bind_secret!(sqlx::query(INSERT_SECRET), self, s)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(secret_id) = edit.remove_secret_id {
                sqlx::query(
                    "UPDATE connection_secrets SET removed_at = $1 \
                     WHERE connection_id = $2 AND id = $3 AND removed_at IS NULL",
                )
                .bind(c.updated_at)
                .bind(&c.id)
                .bind(secret_id)
                .execute(&mut *tx)
                .await?;
            }
            for t in edit.new_triggers {
                bind_trigger!(sqlx::query(&insert_trigger), t).execute(&mut *tx).await?;
            }
            sqlx::query(BUMP).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        self.forget_connection(&c.id).await;
        if !edit.new_triggers.is_empty() {
            self.forget_triggers();
        }
        Ok(())
    }

    /// Deletes a connection: its receive URL stops answering and its triggers are disabled;
    /// past fires and runs stay.
    pub async fn delete_connection(&self, org_id: &str, id: &str, now: i64) -> sqlx::Result<bool> {
        let deleted = with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(
                "UPDATE connections SET deleted_at = $1, enabled = $2 \
                 WHERE org_id = $3 AND id = $4 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(false)
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected() == 1;
            sqlx::query("UPDATE triggers SET status = $1, updated_at = $2 WHERE connection_id = $3")
                .bind(TriggerStatus::Disabled.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            tx.commit().await?;
            deleted
        });
        self.forget_connection(id).await;
        self.forget_triggers();
        Ok(deleted)
    }
}
