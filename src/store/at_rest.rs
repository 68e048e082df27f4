//! Sealing and unsealing the signing secrets as they go to and come from the database, and
//! the passes that rewrite all of them: sealing values an older version left in clear, and
//! re-encrypting with a new key.

use anyhow::Context;

use super::sealed::{is_sealed, SealingKey};
use super::{with_write, Store};

/// The row a connection secret is bound to.
pub(super) fn connection_secret_row(id: &str) -> String {
    format!("connection_secrets:{id}")
}

/// The row a subscription's secrets are bound to.
pub(super) fn subscription_row(id: &str) -> String {
    format!("webhook_subscriptions:{id}")
}

impl Store {
    pub(super) fn seal_secret(&self, row: &str, plain: &str) -> String {
        self.key.seal(row, plain)
    }

    /// The plain value of a stored secret; a value in clear or under another key is an
    /// error, so a row written around the gateway cannot plant a known secret.
    pub(super) fn open_secret(&self, row: &str, stored: &str) -> sqlx::Result<String> {
        self.key
            .open(row, stored)
            .map_err(|e| sqlx::Error::Decode(format!("{row}: {e}").into()))
    }

    /// Seals every secret still in clear and checks that every sealed one opens with the
    /// key in use, in one transaction; answers how many were sealed.
    pub async fn seal_clear_secrets(&self) -> anyhow::Result<u64> {
        let key = self.key.clone();
        self.rewrite_secrets(move |row, stored| {
            if is_sealed(stored) {
                key.open(row, stored).with_context(|| row.to_owned())?;
                Ok(None)
            } else {
                Ok(Some(key.seal(row, stored)))
            }
        })
        .await
    }

    /// Re-encrypts every secret with `new` in one transaction; answers how many values
    /// were re-encrypted. The store keeps using its own key: open a new one afterwards.
    pub async fn reseal_secrets(&self, new: &SealingKey) -> anyhow::Result<u64> {
        let key = self.key.clone();
        self.rewrite_secrets(move |row, stored| {
            let plain = if is_sealed(stored) {
                key.open(row, stored).with_context(|| row.to_owned())?
            } else {
                stored.to_owned()
            };
            Ok(Some(new.seal(row, &plain)))
        })
        .await
    }

    /// Applies `f` (row, stored value) to every stored secret, deleted rows included, and
    /// writes the values it answers; counts them.
    async fn rewrite_secrets(
        &self,
        f: impl Fn(&str, &str) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<u64> {
        let mut count = 0;
        with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT id, secret FROM connection_secrets ORDER BY id")
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, stored) in rows {
                if let Some(new) = f(&connection_secret_row(&id), &stored)? {
                    sqlx::query("UPDATE connection_secrets SET secret = $1 WHERE id = $2")
                        .bind(new)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    count += 1;
                }
            }
            let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT id, secret, previous_secret FROM webhook_subscriptions ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (id, secret, previous) in rows {
                let row = subscription_row(&id);
                let new_secret = f(&row, &secret)?;
                let new_previous = previous.as_deref().map(|p| f(&row, p)).transpose()?.flatten();
                if new_secret.is_none() && new_previous.is_none() {
                    continue;
                }
                count += u64::from(new_secret.is_some()) + u64::from(new_previous.is_some());
                sqlx::query(
                    "UPDATE webhook_subscriptions SET secret = $1, previous_secret = $2 \
                     WHERE id = $3",
                )
                .bind(new_secret.unwrap_or(secret))
                .bind(new_previous.or(previous))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(count)
    }
}
