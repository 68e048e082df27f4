//! Digests of values chosen by others, used in unique keys in their place.

use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

/// The fixed-size stand-in for a value chosen by others (a provider's event id, an
/// idempotency key, a provider id) in a unique key: hex SHA-256. PostgreSQL refuses index
/// rows over about 2.7 KB, and a validly signed delivery may carry a far longer id.
pub(super) fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Rows a batch of the fill-in updates.
const BATCH: i64 = 500;

/// Gives the rows written before migration 0005 their digests (SQLite has no SHA-256 of
/// its own; PostgreSQL's migration computes them). Rows lacking one are found through a
/// partial index, so this costs nothing once done.
pub(super) async fn fill_in_sqlite(pool: &SqlitePool) -> sqlx::Result<()> {
    for (table, value, digest_column) in [
        ("fire_keys", "key", "key_digest"),
        ("contact_identities", "value", "value_digest"),
    ] {
        let select = format!(
            "SELECT rowid, {value} FROM {table} WHERE {digest_column} IS NULL LIMIT {BATCH}"
        );
        let update = format!("UPDATE {table} SET {digest_column} = $1 WHERE rowid = $2");
        loop {
            let rows: Vec<(i64, String)> = sqlx::query_as(&select).fetch_all(pool).await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = pool.begin().await?;
            for (rowid, value) in rows {
                sqlx::query(&update)
                    .bind(digest(&value))
                    .bind(rowid)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseSettings, SecretString, SqliteSynchronous};
    use crate::store::{Backend, Store};

    #[tokio::test]
    async fn rows_written_before_the_digests_get_theirs_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}", dir.path().join("f.db").display())),
            max_connections: 2,
            sqlite_synchronous: SqliteSynchronous::Full,
        };
        let store = Store::connect(&settings, crate::store::test_key())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let Backend::Sqlite { write, .. } = &store.backend else {
            unreachable!("a SQLite URL")
        };
        // As a row from before migration 0005: no digest.
        sqlx::query(
            "INSERT INTO fire_keys (org_id, scope, key, request_hash, trigger_instance_id, \
             created_at) VALUES ('org', 'api', 'an old key', '', 'tin_1', 0)",
        )
        .execute(write)
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT key_digest FROM fire_keys")
            .fetch_one(write)
            .await
            .unwrap();
        assert_eq!(stored, digest("an old key"));
    }
}
