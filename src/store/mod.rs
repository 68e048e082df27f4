//! Storage through sqlx: an embedded SQLite file or PostgreSQL, picked from the URL.
//!
//! Both backends run the same SQL (`$n` parameters work in both); the few statements whose
//! dialects differ are chosen per backend. Each query is written once and expanded for
//! both pool types by [`with_read!`] / [`with_write!`].

mod at_rest;
mod automations;
mod cache;
mod connections;
mod contacts;
mod deliveries;
mod digest;
mod fire;
mod generation;
pub mod key_file;
mod keys;
mod outbound;
mod outbox;
mod packed;
mod runs;
pub mod sealed;
mod triggers;

pub use automations::AutomationRow;
pub use cache::{LiveConnection, LiveTrigger, LoadError};
pub use connections::{ConnectionEdit, ConnectionRow, NewConnection, SecretRow};
pub use contacts::ContactRow;
pub use deliveries::{
    Arrival, Cutoffs, DeliveryDetail, DeliveryFilter, DeliveryRow, Health, LoggedDelivery, Pruned,
    Verdict,
};
pub use fire::{
    duplicate_of, ContactUpdate, FireError, FireMode, FireRecord, FireWrite, FireWritten, KeyClaim,
    ReplayRecord, StartedRun,
};
pub use key_file::KeySource;
pub use keys::{ApiKeyRecord, NewApiKey};
pub use outbound::{
    AttemptRecord, AttemptRow, Claim, Next, OutboundDeliveryRow, OutboundFilter, QueueStats, Room,
    SubscriptionRow,
};
pub use outbox::{example_message, RejectedDelivery};
pub use packed::PackedBody;
pub use runs::{RunFilter, RunRow, TriggerInstanceRow};
pub use sealed::SealingKey;
pub use triggers::TriggerRow;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::Notify;

use crate::config::{DatabaseSettings, ExposeSecret, Settings, SqliteSynchronous};

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    caches: Arc<cache::Caches>,
    /// Told after a commit that wrote outbound events, so the dispatcher sends them at once.
    outbox: Arc<Notify>,
    /// Seals signing secrets on their way to the database and opens them on the way back.
    key: Arc<SealingKey>,
}

#[derive(Clone)]
enum Backend {
    /// SQLite allows one writer at a time: fires go through the committer's connection and
    /// other writes through a one-connection pool, so they queue in-process; the two wait
    /// for each other with a busy timeout. Reads use the read pool (WAL).
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        committer: fire::Committer,
    },
    /// Fires go through the committer's writer tasks, in batches (see `fire`).
    Postgres {
        pool: PgPool,
        committer: fire::PgCommitter,
    },
}

/// Runs `$body` with `$pool` bound to the pool for reads of either backend.
macro_rules! with_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { read: $pool, .. } => $body,
            $crate::store::Backend::Postgres { pool: $pool, .. } => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool for writes of either backend.
macro_rules! with_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::store::Backend::Postgres { pool: $pool, .. } => $body,
        }
    };
}
pub(crate) use {with_read, with_write};

/// A page of a list: the rows and whether more follow.
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `limit + 1` rows.
    fn from_rows(mut rows: Vec<T>, limit: u32) -> Page<T> {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Page { rows, has_more }
    }
}

/// One column of a multi-row PostgreSQL statement (bound as an array for `unnest`): `f`
/// of every row.
fn column<'a, T, U>(rows: &'a [T], f: impl FnMut(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

impl Store {
    /// Connects with the encryption key of `settings` (see [`key_file::resolve`]).
    pub async fn open(settings: &Settings) -> anyhow::Result<Store> {
        let (key, _) = key_file::resolve(settings)?;
        Store::connect(&settings.database, key).await
    }

    pub async fn connect(settings: &DatabaseSettings, key: SealingKey) -> anyhow::Result<Store> {
        let url = settings.url.expose_secret();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                // A ping before every checkout is a round trip per fire. A connection the
                // server has dropped fails its next statement instead (a 503 the client
                // retries) and is not handed out again.
                .test_before_acquire(false)
                .connect(url)
                .await?;
            Backend::Postgres {
                committer: fire::PgCommitter::start(pool.clone()),
                pool,
            }
        } else if url.starts_with("sqlite:") {
            let options = sqlite_options(url, settings.sqlite_synchronous)?;
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let committer =
                fire::Committer::start(options.get_filename(), settings.sqlite_synchronous)?;
            let read = SqlitePoolOptions::new()
                .max_connections(settings.max_connections.max(2))
                .connect_with(options.read_only(true))
                .await?;
            Backend::Sqlite {
                write,
                read,
                committer,
            }
        } else {
            anyhow::bail!("database.url must start with sqlite: or postgres://");
        };
        Ok(Store {
            backend,
            caches: Arc::new(cache::Caches::new()),
            outbox: Arc::new(Notify::new()),
            key: Arc::new(key),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite { write, .. } => {
                // Migration 0007 indexes keys by the digests SQLite cannot compute itself;
                // rows from before 0005 get theirs in between.
                sqlite_migrations_through(5).run(write).await?;
                digest::fill_in_sqlite(write).await?;
                sqlx::migrate!("./migrations/sqlite").run(write).await?;
            }
            Backend::Postgres { pool, .. } => {
                sqlx::migrate!("./migrations/postgres").run(pool).await?
            }
        }
        Ok(())
    }

    /// Answers whether the database takes a query.
    pub async fn ping(&self) -> sqlx::Result<()> {
        with_read!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Wakes the outbound dispatcher: new events are committed.
    pub(crate) fn outbox_written(&self) {
        self.outbox.notify_one();
    }

    /// Completes when events were committed since the last call returned.
    pub async fn outbox_notified(&self) {
        self.outbox.notified().await
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { write, read, .. } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres { pool, .. } => pool.close().await,
        }
    }
}

/// The embedded SQLite migrations up to `version`; later ones already applied are fine.
fn sqlite_migrations_through(version: i64) -> sqlx::migrate::Migrator {
    let all = sqlx::migrate!("./migrations/sqlite");
    let through: Vec<_> = all
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    sqlx::migrate::Migrator {
        migrations: through.into(),
        ignore_missing: true,
        ..all
    }
}

/// How long a SQLite connection waits for another one's write lock. Both the sqlx pools
/// and the fire committer's connection use it.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn sqlite_options(
    url: &str,
    synchronous: SqliteSynchronous,
) -> anyhow::Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url)?;
    // The fire committer opens the file a second time, which an in-memory database has not.
    if url.contains(":memory:") || url.contains("mode=memory") {
        anyhow::bail!("database.url must name a SQLite file, not an in-memory database");
    }
    if let Some(dir) = options.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous.pragma_value().parse()?)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT))
}

/// A fresh key for the unit tests' stores.
#[cfg(test)]
pub(crate) fn test_key() -> SealingKey {
    SealingKey::from_base64(&SealingKey::generate_base64()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:file:x?mode=memory",
        ] {
            let settings = DatabaseSettings {
                url: SecretString::from(url),
                max_connections: 2,
                sqlite_synchronous: SqliteSynchronous::Full,
            };
            let err = Store::connect(&settings, test_key())
                .await
                .err()
                .expect(url);
            assert!(
                err.to_string().contains("not an in-memory database"),
                "{url}: {err}"
            );
        }
    }
}
