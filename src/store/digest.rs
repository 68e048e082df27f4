//! What unique indexes hold for values chosen by others.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

/// The longest value indexed as itself.
const MAX_INDEXED_LEN: usize = 128;

/// The stand-in for a value chosen by others (a provider's event id, an idempotency key, a
/// provider id) in a unique index: the value itself when it is short, else `#` and its
/// hex SHA-256. PostgreSQL refuses index rows over about 2.7 KB, and a validly signed
/// delivery may carry a far longer id; yet most ids are time-ordered, and indexed as
/// themselves each new one lands beside the last instead of on a random page. A short
/// value starting with `#` is digested too, so no value can pass for another's digest.
pub(super) fn index_key(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_INDEXED_LEN && !value.starts_with('#') {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("#{}", sha256_hex(value)))
    }
}

fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Rows a batch of the fill-in updates.
const BATCH: i64 = 500;

/// Gives the rows written before migration 0005 their digests (SQLite has no SHA-256 of
/// its own; PostgreSQL's migration computes them), which migration 0007 turns into index
/// keys. Runs between the two; rows lacking a digest are found through a partial index.
pub(super) async fn fill_in_sqlite(pool: &SqlitePool) -> sqlx::Result<()> {
    let digests_pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('fire_keys') WHERE name = 'key_digest')",
    )
    .fetch_one(pool)
    .await?;
    if !digests_pending {
        // Migration 0007 has run: every row has its index key.
        return Ok(());
    }
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
                    .bind(sha256_hex(&value))
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
    use crate::store::{sqlite_migrations_through, Backend, Store};

    #[tokio::test]
    async fn rows_from_before_the_digests_are_indexed_after_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}", dir.path().join("f.db").display())),
            max_connections: 2,
            sqlite_synchronous: SqliteSynchronous::Full,
        };
        let store = Store::connect(&settings, crate::store::test_key())
            .await
            .unwrap();
        let Backend::Sqlite { write, .. } = &store.backend else {
            unreachable!("a SQLite URL")
        };
        // A database as firehook left it before migration 0005, with a short and a long key.
        sqlite_migrations_through(4).run(write).await.unwrap();
        let long = "k".repeat(3000);
        for key in ["an old key", long.as_str()] {
            sqlx::query(
                "INSERT INTO fire_keys (org_id, scope, key, request_hash, \
                 trigger_instance_id, created_at) VALUES ('org', 'api', $1, '', 'tin_1', 0)",
            )
            .bind(key)
            .execute(write)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO contact_identities (org_id, field, value, email) \
             VALUES ('org', 'clerk_user_id', '#user_1', 'a@b.co')",
        )
        .execute(write)
        .await
        .unwrap();

        store.migrate().await.unwrap();
        let keys: Vec<(String, String)> =
            sqlx::query_as("SELECT key, key_index FROM fire_keys ORDER BY length(key)")
                .fetch_all(write)
                .await
                .unwrap();
        let expected_long = format!("#{}", hex::encode(Sha256::digest(long.as_bytes())));
        assert_eq!(
            keys,
            [
                ("an old key".to_owned(), "an old key".to_owned()),
                (long.clone(), expected_long)
            ]
        );
        let identity: String = sqlx::query_scalar("SELECT value_index FROM contact_identities")
            .fetch_one(write)
            .await
            .unwrap();
        let expected = format!("#{}", hex::encode(Sha256::digest(b"#user_1")));
        assert_eq!(identity, expected, "a value starting with # is digested");
        // The next start finds every migration applied.
        store.migrate().await.unwrap();
    }

    #[test]
    fn short_values_index_as_themselves_and_others_as_digests() {
        assert_eq!(index_key("msg_2V0h7WVLc"), "msg_2V0h7WVLc");
        assert_eq!(index_key(&"a".repeat(128)), "a".repeat(128));
        let long = "a".repeat(129);
        let indexed = index_key(&long);
        assert!(indexed.starts_with('#') && indexed.len() == 65, "{indexed}");
        assert_ne!(index_key("#x"), "#x");
    }
}
