//! The inbound delivery log: one row per receive-URL request of a known connection,
//! connection health read from it, and retention.
//!
//! Accepted deliveries are written by the fire's own transaction (see `store::fire`);
//! rejected ones, and repeats answered from the dedupe cache, through [`Store::log_deliveries`].

use std::time::Duration;

use serde_json::Value;

use super::packed::{unpack, PackedBody};
use super::{with_read, with_write, Backend, Page, Store};
use crate::domain::DeliveryStatus;
use crate::ids;

/// The reason a delivery's log row gives when its fire's commit was not confirmed (the
/// connection to PostgreSQL failed during COMMIT): the fire may be stored, but the provider
/// was answered 503 and retries.
pub const UNCONFIRMED: &str = "commit_unconfirmed";

/// What arrived on a receive URL; [`Verdict`] says what became of it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub id: String,
    pub org_id: String,
    pub connection_id: String,
    pub provider: String,
    pub event: Option<String>,
    pub received_at_ms: i64,
    /// The trigger the event maps to.
    pub trigger_id: Option<String>,
    /// A JSON object of the request's headers, secret-bearing values redacted.
    pub headers: String,
    pub body_bytes: i64,
    /// The body, kept only for verified deliveries.
    pub body: Option<PackedBody>,
    /// The delivery this one replays.
    pub replay_of: Option<String>,
}

impl Arrival {
    /// Packs the body for storage, with its provider's dictionary (see `packed`).
    pub(super) fn pack_body(&mut self) {
        if let Some(body) = &mut self.body {
            body.pack(&self.provider);
        }
    }
}

/// What a delivery came to.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    pub http_status: u16,
    pub trigger_instance_id: Option<String>,
    pub run_ids: Vec<String>,
}

/// A delivery with its verdict, logged outside a fire.
#[derive(Debug, Clone)]
pub struct LoggedDelivery {
    pub arrival: Arrival,
    pub verdict: Verdict,
}

/// The columns a delivery is inserted with, in the order of its parameters.
macro_rules! delivery_columns {
    () => {
        "deliveries (id, org_id, connection_id, provider, event, status, reason, http_status, \
         received_at, trigger_id, trigger_instance_id, run_ids, replay_of, headers, body_bytes, \
         body, body_encoding)"
    };
}
pub(super) use delivery_columns;

/// Inserts a delivery (`$1` to `$17`).
pub(super) const INSERT_DELIVERY: &str = concat!(
    "INSERT INTO ",
    delivery_columns!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);

/// A logged delivery as the list shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub connection_id: String,
    pub provider: String,
    pub event: Option<String>,
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    pub http_status: i64,
    pub received_at: i64,
    pub trigger_id: Option<String>,
    pub trigger_instance_id: Option<String>,
    pub run_ids: Vec<String>,
    pub replay_of: Option<String>,
    pub body_bytes: i64,
}

/// One delivery with its headers and, when verified, its body.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub row: DeliveryRow,
    pub headers: Value,
    pub body: Option<Vec<u8>>,
}

/// The list's filters; `None` matches everything.
#[derive(Debug, Default)]
pub struct DeliveryFilter<'a> {
    pub connection_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub status: Option<DeliveryStatus>,
    pub event: Option<&'a str>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// A connection's recent deliveries, per status.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Per status: the latest delivery and the count of the last 24 hours.
    pub by_status: Vec<(DeliveryStatus, Option<i64>, i64)>,
    pub last_reject_reason: Option<String>,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub fire_keys: u64,
    /// Finished outbound deliveries (with their attempts) and the events they sent.
    pub outbound_deliveries: u64,
    pub outbound_events: u64,
}

/// Where a retention pass cuts: rows received (keys claimed) before these instants go.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// Inbound deliveries received, and finished outbound ones created, before this go.
    pub deliveries_before_ms: i64,
    /// `api` Idempotency-Keys.
    pub api_keys_before_ms: i64,
    /// Provider event ids (scope = a connection id); never later than `api_keys_before_ms`.
    pub connection_keys_before_ms: i64,
}

/// Rows one retention statement deletes, so no statement holds the write lock for long.
const PRUNE_BATCH: i64 = 1000;
/// The pause between two retention statements, leaving the database to the fire path.
const PRUNE_PAUSE: Duration = Duration::from_millis(20);

const LIST_COLUMNS: &str = "id, connection_id, provider, event, status, reason, http_status, \
     received_at, trigger_id, trigger_instance_id, run_ids, replay_of, body_bytes";

/// A delivery row as stored, decoded by [`RawRow::decode`].
#[derive(sqlx::FromRow)]
struct RawRow {
    id: String,
    connection_id: String,
    provider: String,
    event: Option<String>,
    status: String,
    reason: Option<String>,
    http_status: i64,
    received_at: i64,
    trigger_id: Option<String>,
    trigger_instance_id: Option<String>,
    run_ids: String,
    replay_of: Option<String>,
    body_bytes: i64,
}

#[derive(sqlx::FromRow)]
struct RawDetail {
    #[sqlx(flatten)]
    row: RawRow,
    headers: String,
    body: Option<Vec<u8>>,
    body_encoding: Option<String>,
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

impl RawRow {
    fn decode(self) -> sqlx::Result<DeliveryRow> {
        Ok(DeliveryRow {
            status: self.status.parse().map_err(corrupt)?,
            run_ids: serde_json::from_str(&self.run_ids).map_err(corrupt)?,
            id: self.id,
            connection_id: self.connection_id,
            provider: self.provider,
            event: self.event,
            reason: self.reason,
            http_status: self.http_status,
            received_at: self.received_at,
            trigger_id: self.trigger_id,
            trigger_instance_id: self.trigger_instance_id,
            replay_of: self.replay_of,
            body_bytes: self.body_bytes,
        })
    }
}

impl Store {
    /// Writes deliveries that belong to no fire, in one transaction (on SQLite, in the
    /// committer's next batch).
    pub async fn log_deliveries(
        &self,
        mut deliveries: Vec<LoggedDelivery>,
    ) -> Result<(), super::FireError> {
        for d in &mut deliveries {
            d.arrival.pack_body();
        }
        match &self.backend {
            Backend::Sqlite { committer, .. } => committer.log(deliveries).await,
            Backend::Postgres { pool, .. } => {
                Ok(super::fire::log_deliveries_pg(pool, &deliveries).await?)
            }
        }
    }

    /// A page of an org's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        org_id: &str,
        filter: &DeliveryFilter<'_>,
        before: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<DeliveryRow>> {
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM deliveries WHERE org_id = $1 \
             AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR connection_id = $3) \
             AND ($4 IS NULL OR provider = $4) AND ($5 IS NULL OR status = $5) \
             AND ($6 IS NULL OR event = $6) AND ($7 IS NULL OR received_at >= $7) \
             AND ($8 IS NULL OR received_at <= $8) ORDER BY id DESC LIMIT $9"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as::<_, RawRow>(&sql)
                .bind(org_id)
                .bind(before)
                .bind(filter.connection_id)
                .bind(filter.provider)
                .bind(filter.status.map(DeliveryStatus::as_str))
                .bind(filter.event)
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let rows = rows
            .into_iter()
            .map(RawRow::decode)
            .collect::<sqlx::Result<_>>()?;
        Ok(Page::from_rows(rows, limit))
    }

    /// One of an org's deliveries, with its headers and body.
    pub async fn get_delivery(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<DeliveryDetail>> {
        let sql = format!(
            "SELECT {LIST_COLUMNS}, headers, body, body_encoding FROM deliveries \
             WHERE org_id = $1 AND id = $2"
        );
        let raw: Option<RawDetail> = with_read!(self, pool => {
            sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await?
        });
        raw.map(|raw| {
            Ok(DeliveryDetail {
                row: raw.row.decode()?,
                headers: serde_json::from_str(&raw.headers).map_err(corrupt)?,
                body: raw
                    .body
                    .map(|bytes| unpack(bytes, raw.body_encoding.as_deref()))
                    .transpose()
                    .map_err(corrupt)?,
            })
        })
        .transpose()
    }

    /// A connection's health from its logged deliveries (one index range per status).
    pub async fn connection_health(
        &self,
        connection_id: &str,
        since_ms: i64,
    ) -> sqlx::Result<Health> {
        const HEALTH: &str = "WITH s(status) AS (VALUES ('triggered'), \
             ('no_published_automation'), ('ignored'), ('duplicate'), ('rejected')) \
             SELECT s.status, \
             (SELECT max(d.received_at) FROM deliveries d \
              WHERE d.connection_id = $1 AND d.status = s.status) AS latest, \
             (SELECT count(*) FROM deliveries d WHERE d.connection_id = $1 \
              AND d.status = s.status AND d.received_at >= $2) AS recent \
             FROM s";
        const LAST_REJECT: &str = "SELECT reason FROM deliveries \
             WHERE connection_id = $1 AND status = 'rejected' \
             ORDER BY received_at DESC LIMIT 1";
        with_read!(self, pool => {
            let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(HEALTH)
                .bind(connection_id)
                .bind(since_ms)
                .fetch_all(pool)
                .await?;
            let by_status = rows
                .into_iter()
                .map(|(status, latest, recent)| {
                    let status = status.parse().map_err(corrupt)?;
                    Ok((status, latest, recent))
                })
                .collect::<sqlx::Result<_>>()?;
            let last_reject_reason: Option<Option<String>> = sqlx::query_scalar(LAST_REJECT)
                .bind(connection_id)
                .fetch_optional(pool)
                .await?;
            Ok(Health {
                by_status,
                last_reject_reason: last_reject_reason.flatten(),
            })
        })
    }

    /// Deletes logged deliveries and expired idempotency keys before the cutoffs, a batch
    /// at a time with a pause between batches. Fires, runs and contacts stay.
    pub async fn prune(&self, cutoffs: Cutoffs) -> sqlx::Result<Pruned> {
        const DELIVERIES: &str = "DELETE FROM deliveries WHERE id IN \
             (SELECT id FROM deliveries WHERE id < $1 LIMIT $2)";
        const FIRE_KEYS: &str = "DELETE FROM fire_keys WHERE (org_id, scope, key_index) IN \
             (SELECT org_id, scope, key_index FROM fire_keys WHERE created_at < $1 \
              AND (scope = 'api' OR created_at < $2) LIMIT $3)";
        // Finished outbound deliveries created before the cutoff: their attempts first
        // (they reference them), then the deliveries, then events none of whose
        // deliveries remain. A delivery that is still retrying keeps its event.
        const OUTBOUND_ATTEMPTS: &str = "DELETE FROM outbound_attempts WHERE delivery_id IN \
             (SELECT id FROM outbound_deliveries WHERE id < $1 \
              AND status IN ('succeeded', 'failed') LIMIT $2)";
        const OUTBOUND_DELIVERIES: &str = "DELETE FROM outbound_deliveries WHERE id IN \
             (SELECT d.id FROM outbound_deliveries d \
              WHERE d.id < $1 AND d.status IN ('succeeded', 'failed') \
              AND NOT EXISTS (SELECT 1 FROM outbound_attempts a WHERE a.delivery_id = d.id) \
              LIMIT $2)";
        const OUTBOUND_EVENTS: &str = "DELETE FROM outbound_events WHERE id IN \
             (SELECT e.id FROM outbound_events e WHERE e.id < $1 \
              AND NOT EXISTS (SELECT 1 FROM outbound_deliveries d WHERE d.event_id = e.id) \
              LIMIT $2)";
        // Delivery, outbound delivery and event ids are ULIDs, which sort by creation
        // time: the first id of the cutoff's millisecond is the first one kept.
        let first_kept = |prefix| {
            let at = u64::try_from(cutoffs.deliveries_before_ms).unwrap_or(0);
            format!("{prefix}_{}", ulid::Ulid::from_parts(at, 0))
        };
        /// Runs a batched DELETE (its parameters, then the batch size) until a batch
        /// deletes fewer rows than the batch size, pausing between batches.
        macro_rules! in_batches {
            ($sql:expr $(, $param:expr)*) => {{
                let mut total = 0;
                loop {
                    let deleted = with_write!(self, pool => {
                        sqlx::query($sql)
                            $(.bind($param))*
                            .bind(PRUNE_BATCH)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    });
                    total += deleted;
                    if deleted < PRUNE_BATCH as u64 {
                        break total;
                    }
                    tokio::time::sleep(PRUNE_PAUSE).await;
                }
            }};
        }
        let deliveries = in_batches!(DELIVERIES, first_kept(ids::DELIVERY));
        let fire_keys = in_batches!(
            FIRE_KEYS,
            cutoffs.api_keys_before_ms,
            cutoffs.connection_keys_before_ms
        );
        let mut outbound_deliveries = 0;
        loop {
            in_batches!(OUTBOUND_ATTEMPTS, first_kept(ids::OUTBOUND_DELIVERY));
            let deleted = in_batches!(OUTBOUND_DELIVERIES, first_kept(ids::OUTBOUND_DELIVERY));
            outbound_deliveries += deleted;
            if deleted == 0 {
                break;
            }
        }
        let outbound_events = in_batches!(OUTBOUND_EVENTS, first_kept(ids::EVENT));
        Ok(Pruned {
            deliveries,
            fire_keys,
            outbound_deliveries,
            outbound_events,
        })
    }
}
