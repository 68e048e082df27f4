//! Outbound webhooks: subscriptions, and the deliveries the dispatcher claims, sends and
//! records. Several processes share the deliveries through leases: a claim owns a delivery
//! until its lease ends, so no attempt is sent twice at once, and a crashed process's
//! claims are taken over when their leases run out.

use rand::Rng;
use sqlx::FromRow;

use super::at_rest::subscription_row;
use super::outbox::{insert_outbox, rejected_event, RejectedDelivery};
use super::{with_read, with_write, Backend, Page, Store};
use crate::domain::OutboundStatus;

#[derive(Clone, FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub org_id: String,
    pub url: String,
    /// JSON array of event types (`["*"]`: all).
    pub events: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A delivery this process claimed, with what sending it needs.
#[derive(Clone, FromRow)]
pub struct Claim {
    pub id: String,
    pub org_id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub attempts: i64,
    pub retry_step: i64,
    pub created_at: i64,
    pub lease_until: i64,
    pub body: String,
    pub url: String,
    pub enabled: bool,
    pub deleted_at: Option<i64>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    /// Pending again, due at `at`; `step` is the retry schedule's next index.
    Retry {
        at: i64,
        step: i64,
    },
    Failed,
}

#[derive(Debug)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// The process that claimed the delivery.
    pub owner: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub attempted_at: i64,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub next: Next,
}

impl AttemptRecord {
    /// The delivery's status after this attempt, when it is next due and the retry step.
    pub(super) fn outcome(&self) -> (OutboundStatus, i64, Option<i64>) {
        match self.next {
            Next::Succeeded => (OutboundStatus::Succeeded, self.attempted_at, None),
            Next::Retry { at, step } => (OutboundStatus::Pending, at, Some(step)),
            Next::Failed => (OutboundStatus::Failed, self.attempted_at, None),
        }
    }
}

/// Inserts an attempt (`$1` to `$7`).
pub(super) const INSERT_ATTEMPT: &str = "INSERT INTO outbound_attempts (delivery_id, attempt, \
     attempted_at, http_status, latency_ms, error, response_excerpt) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Moves a delivery on after an attempt and releases its lease (`$1` to `$7`).
pub(super) const FINISH_ATTEMPT: &str = "UPDATE outbound_deliveries SET status = $1, \
     attempts = $2, retry_step = COALESCE($3, retry_step), next_attempt_at = $4, \
     leased_by = NULL, lease_until = NULL, updated_at = $5 WHERE id = $6 AND leased_by = $7";

#[derive(Debug, Clone, FromRow)]
pub struct OutboundDeliveryRow {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i64,
    pub attempted_at: i64,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// Filters of the delivery log; each one given narrows it.
#[derive(Debug, Default)]
pub struct OutboundFilter<'a> {
    pub subscription_id: Option<&'a str>,
    pub status: Option<OutboundStatus>,
    pub event_type: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, FromRow)]
pub struct QueueStats {
    pub pending: i64,
    /// When the oldest pending delivery's event was created.
    pub oldest_created_at: Option<i64>,
}

const COLUMNS: &str = "id, org_id, url, events, description, enabled, secret, previous_secret, \
                       previous_expires_at, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, subscription_id, event_id, event_type, status, attempts, \
                                next_attempt_at, created_at, updated_at";

/// How many deliveries a claim may take per subscription: a subscription's room is
/// `per_endpoint` less what the claiming process holds of it already.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub per_endpoint: i64,
    /// Deliveries held per subscription.
    pub held: Vec<(String, i64)>,
}

/// A claim of due deliveries for one process.
pub struct Lease {
    pub owner: String,
    pub until: i64,
    pub now: i64,
    /// The most deliveries the claim takes in all.
    pub limit: i64,
    pub room: Room,
}

impl Lease {
    /// How many of `subscription`'s due deliveries the claim may still lease, having
    /// leased `so_far`: the subscription's room, within what is left of `limit`.
    pub(super) fn share(&self, subscription: &str, so_far: usize) -> i64 {
        let held = self
            .room
            .held
            .iter()
            .find(|(id, _)| id == subscription)
            .map_or(0, |(_, n)| *n);
        (self.room.per_endpoint - held).min(self.limit - so_far as i64)
    }

    /// The subscriptions with due deliveries (`DUE_SUBSCRIPTIONS`, in id order) in
    /// the order a claim visits them, starting at a random one: when a process has less room
    /// than is due, no subscription is always the last one served.
    pub(super) fn visiting_order(mut subscriptions: Vec<String>) -> Vec<String> {
        if !subscriptions.is_empty() {
            let start = rand::thread_rng().gen_range(0..subscriptions.len());
            subscriptions.rotate_left(start);
        }
        subscriptions
    }
}

/// The subscriptions with deliveries due at `$1`: a skip scan of the per-subscription due
/// index (two probes per subscription with anything pending), so a claim's cost grows with
/// the number of subscriptions and what it leases, never with a backlog it cannot take.
///
/// Claims used to scan the due deliveries in time order, passing over those of
/// subscriptions the process held all it may of; with one slow endpoint and a backlog of
/// tens of thousands, every claim read the whole backlog to lease nothing.
pub(super) const DUE_SUBSCRIPTIONS: &str = "WITH RECURSIVE subs(id) AS (\
     SELECT (SELECT subscription_id FROM outbound_deliveries WHERE status = 'pending' \
     ORDER BY subscription_id LIMIT 1) \
     UNION ALL SELECT (SELECT subscription_id FROM outbound_deliveries \
     WHERE status = 'pending' AND subscription_id > subs.id ORDER BY subscription_id LIMIT 1) \
     FROM subs WHERE subs.id IS NOT NULL) \
     SELECT id FROM subs WHERE id IS NOT NULL AND EXISTS (SELECT 1 FROM outbound_deliveries \
     WHERE subscription_id = subs.id AND status = 'pending' AND next_attempt_at <= $1)";

/// Leases to `$1` until `$2` the first `$5` deliveries of subscription `$3` due at `$4`
/// that nobody holds.
///
/// A leased delivery is next due when its lease runs out: the attempt that follows the
/// claim sets the real next time, and if the process dies first another takes it over
/// then. Held deliveries are thereby out of the due range the next claim reads.
macro_rules! claim_subscription {
    ($lock:literal) => {
        concat!(
            "UPDATE outbound_deliveries SET leased_by = $1, lease_until = $2, \
             next_attempt_at = $2 WHERE id IN (SELECT id FROM outbound_deliveries \
             WHERE subscription_id = $3 AND status = 'pending' AND next_attempt_at <= $4 \
             AND (lease_until IS NULL OR lease_until < $4) \
             ORDER BY next_attempt_at LIMIT $5",
            $lock,
            ") RETURNING id"
        )
    };
}

/// On SQLite, whose single writer serialises claims.
pub(super) const CLAIM_SQLITE: &str = claim_subscription!("");
/// PostgreSQL locks the rows it leases and skips rows locked by a concurrent claim, so
/// several processes never take the same delivery.
const CLAIM_POSTGRES: &str = claim_subscription!(" FOR UPDATE SKIP LOCKED");

/// The deliveries one claim leased, by the ids it returned (`$1`), while `$2` holds them.
macro_rules! claimed {
    ($ids:literal) => {
        concat!(
            "SELECT d.id, d.org_id, d.event_id, d.subscription_id, d.attempts, \
             d.retry_step, d.created_at, d.lease_until, e.body, s.url, s.enabled, s.deleted_at, \
             s.secret, s.previous_secret, s.previous_expires_at \
             FROM outbound_deliveries d JOIN outbound_events e ON e.id = d.event_id \
             JOIN webhook_subscriptions s ON s.id = d.subscription_id \
             WHERE d.id ",
            $ids,
            " AND d.leased_by = $2"
        )
    };
}

impl Store {
    pub async fn insert_subscription(&self, s: &SubscriptionRow) -> sqlx::Result<()> {
        let (secret, previous_secret) = self.seal_subscription(s);
        with_write!(self, pool => {
            sqlx::query(&format!(
                "INSERT INTO webhook_subscriptions ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&s.id)
            .bind(&s.org_id)
            .bind(&s.url)
            .bind(&s.events)
            .bind(&s.description)
            .bind(s.enabled)
            .bind(&secret)
            .bind(&previous_secret)
            .bind(s.previous_expires_at)
            .bind(s.created_at)
            .bind(s.updated_at)
            .execute(pool)
            .await?;
        });
        self.forget_subscribers(&s.org_id).await;
        Ok(())
    }

    pub async fn get_subscription(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<SubscriptionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions \
             WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row: Option<SubscriptionRow> = with_read!(self, pool => {
            sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await?
        });
        row.map(|s| self.open_subscription(s)).transpose()
    }

    pub async fn list_subscriptions(
        &self,
        org_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<SubscriptionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE org_id = $1 \
             AND deleted_at IS NULL AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows: Vec<SubscriptionRow> = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let rows = rows
            .into_iter()
            .map(|s| self.open_subscription(s))
            .collect::<sqlx::Result<_>>()?;
        Ok(Page::from_rows(rows, limit))
    }

    /// The secret and previous secret of `s` as they are stored.
    fn seal_subscription(&self, s: &SubscriptionRow) -> (String, Option<String>) {
        let row = subscription_row(&s.id);
        let previous = s
            .previous_secret
            .as_deref()
            .map(|p| self.seal_secret(&row, p));
        (self.seal_secret(&row, &s.secret), previous)
    }

    /// Opens the secrets of a subscription (or a claim's) as loaded.
    fn open_secrets(
        &self,
        id: &str,
        secret: &str,
        previous: Option<&str>,
    ) -> sqlx::Result<(String, Option<String>)> {
        let row = subscription_row(id);
        let previous = previous.map(|p| self.open_secret(&row, p)).transpose()?;
        Ok((self.open_secret(&row, secret)?, previous))
    }

    fn open_subscription(&self, s: SubscriptionRow) -> sqlx::Result<SubscriptionRow> {
        let (secret, previous_secret) =
            self.open_secrets(&s.id, &s.secret, s.previous_secret.as_deref())?;
        Ok(SubscriptionRow {
            secret,
            previous_secret,
            ..s
        })
    }

    /// Writes a subscription's editable columns and its secrets.
    pub async fn update_subscription(&self, s: &SubscriptionRow) -> sqlx::Result<()> {
        let (secret, previous_secret) = self.seal_subscription(s);
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE webhook_subscriptions SET url = $1, events = $2, description = $3, \
                 enabled = $4, secret = $5, previous_secret = $6, previous_expires_at = $7, \
                 updated_at = $8 WHERE org_id = $9 AND id = $10",
            )
            .bind(&s.url)
            .bind(&s.events)
            .bind(&s.description)
            .bind(s.enabled)
            .bind(&secret)
            .bind(&previous_secret)
            .bind(s.previous_expires_at)
            .bind(s.updated_at)
            .bind(&s.org_id)
            .bind(&s.id)
            .execute(pool)
            .await?;
        });
        self.forget_subscribers(&s.org_id).await;
        Ok(())
    }

    /// Deletes a subscription; its pending deliveries fail when they come due.
    pub async fn delete_subscription(
        &self,
        org_id: &str,
        id: &str,
        now: i64,
    ) -> sqlx::Result<bool> {
        let deleted = with_write!(self, pool => {
            sqlx::query(
                "UPDATE webhook_subscriptions SET deleted_at = $1, enabled = $2 \
                 WHERE org_id = $3 AND id = $4 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(false)
            .bind(org_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected() == 1
        });
        self.forget_subscribers(org_id).await;
        Ok(deleted)
    }

    /// Turns a subscription off (its endpoint answered 410 Gone).
    pub async fn disable_subscription(&self, org_id: &str, id: &str, now: i64) -> sqlx::Result<()> {
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE webhook_subscriptions SET enabled = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4",
            )
            .bind(false)
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(pool)
            .await?;
        });
        self.forget_subscribers(org_id).await;
        Ok(())
    }

    /// Writes the `delivery.rejected` event of a refused receive-URL request, if a
    /// subscription of the org wants it.
    pub async fn record_rejected_delivery(&self, r: &RejectedDelivery<'_>) -> anyhow::Result<()> {
        let subscribers = self.subscribers(r.org_id).await?;
        let Some(event) = rejected_event(&subscribers, r) else {
            return Ok(());
        };
        with_write!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_outbox!(&mut *tx, [&event]);
            tx.commit().await?;
        });
        self.outbox_written();
        Ok(())
    }

    /// Leases to `owner` until `lease_until` up to `limit` due deliveries, of each
    /// subscription the earliest due that `room` allows.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
        room: &Room,
    ) -> sqlx::Result<Vec<Claim>> {
        let lease = Lease {
            owner: owner.to_owned(),
            until: lease_until,
            now,
            limit,
            room: room.clone(),
        };
        let claims: Vec<Claim> = match &self.backend {
            Backend::Postgres { pool, .. } => {
                let due: Vec<String> = sqlx::query_scalar(DUE_SUBSCRIPTIONS)
                    .bind(now)
                    .fetch_all(pool)
                    .await?;
                let mut ids: Vec<String> = Vec::new();
                for subscription in Lease::visiting_order(due) {
                    let n = lease.share(&subscription, ids.len());
                    if n <= 0 {
                        continue;
                    }
                    let leased: Vec<String> = sqlx::query_scalar(CLAIM_POSTGRES)
                        .bind(owner)
                        .bind(lease_until)
                        .bind(&subscription)
                        .bind(now)
                        .bind(n)
                        .fetch_all(pool)
                        .await?;
                    ids.extend(leased);
                }
                if ids.is_empty() {
                    return Ok(vec![]);
                }
                sqlx::query_as(claimed!("= ANY($1)"))
                    .bind(ids)
                    .bind(owner)
                    .fetch_all(pool)
                    .await?
            }
            Backend::Sqlite {
                committer, read, ..
            } => {
                // Most polls find nothing due: a read answers them without a job for the
                // fire committer.
                let due: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM outbound_deliveries WHERE status = 'pending' \
                     AND next_attempt_at <= $1 LIMIT 1",
                )
                .bind(now)
                .fetch_optional(read)
                .await?;
                if due.is_none() {
                    return Ok(vec![]);
                }
                // Through the fire committer, whose batches it joins, rather than waiting
                // for SQLite's write lock behind them.
                let ids = committer.claim(lease).await.map_err(|e| {
                    sqlx::Error::Protocol(format!("claiming through the committer: {e}"))
                })?;
                if ids.is_empty() {
                    return Ok(vec![]);
                }
                sqlx::query_as(claimed!("IN (SELECT value FROM json_each($1))"))
                    .bind(serde_json::json!(ids).to_string())
                    .bind(owner)
                    .fetch_all(read)
                    .await?
            }
        };
        claims
            .into_iter()
            .map(|c| {
                let (secret, previous_secret) =
                    self.open_secrets(&c.subscription_id, &c.secret, c.previous_secret.as_deref())?;
                Ok(Claim {
                    secret,
                    previous_secret,
                    ..c
                })
            })
            .collect()
    }

    /// Extends `owner`'s lease on a delivery; `false` when another process took it over.
    pub async fn renew_lease(&self, id: &str, owner: &str, until: i64) -> sqlx::Result<bool> {
        with_write!(self, pool => {
            Ok(sqlx::query(
                "UPDATE outbound_deliveries SET lease_until = $1, next_attempt_at = $1 \
                 WHERE id = $2 AND leased_by = $3 AND status = 'pending'",
            )
            .bind(until)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected() == 1)
        })
    }

    /// Records an attempt and what follows it, releasing the lease. On SQLite it goes
    /// through the fire committer, so that attempts share its commits instead of each
    /// taking the write lock (and a sync of the disk) of their own.
    pub async fn record_attempt(&self, a: AttemptRecord) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite { committer, .. } => committer.record_attempt(a).await?,
            Backend::Postgres { pool, .. } => super::fire::record_attempt_pg(pool, &a).await?,
        }
        Ok(())
    }

    /// Makes a delivery due now. One that is no longer pending gets one more attempt
    /// (`last_step` is the retry schedule's length). `false` for an unknown delivery.
    pub async fn retry_outbound_delivery(
        &self,
        org_id: &str,
        id: &str,
        now: i64,
        last_step: i64,
    ) -> sqlx::Result<bool> {
        let found = with_write!(self, pool => {
            sqlx::query(
                "UPDATE outbound_deliveries SET \
                 retry_step = CASE WHEN status = 'pending' THEN retry_step ELSE $1 END, \
                 status = 'pending', next_attempt_at = $2, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4",
            )
            .bind(last_step)
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected() == 1
        });
        if found {
            self.outbox_written();
        }
        Ok(found)
    }

    pub async fn get_outbound_delivery(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<OutboundDeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries WHERE org_id = $1 AND id = $2"
        );
        with_read!(self, pool => sqlx::query_as(&sql).bind(org_id).bind(id).fetch_optional(pool).await)
    }

    /// The delivery log, newest first; `before` is the last id of the previous page.
    pub async fn list_outbound_deliveries(
        &self,
        org_id: &str,
        filter: &OutboundFilter<'_>,
        before: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Page<OutboundDeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries WHERE org_id = $1 \
             AND ($2 IS NULL OR subscription_id = $2) AND ($3 IS NULL OR status = $3) \
             AND ($4 IS NULL OR event_type = $4) AND ($5 IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        let rows = with_read!(self, pool => {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(filter.subscription_id)
                .bind(filter.status.map(OutboundStatus::as_str))
                .bind(filter.event_type)
                .bind(before)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        Ok(Page::from_rows(rows, limit))
    }

    /// The attempts of these deliveries, in order.
    pub async fn attempts_of(&self, delivery_ids: &[&str]) -> sqlx::Result<Vec<AttemptRow>> {
        if delivery_ids.is_empty() {
            return Ok(vec![]);
        }
        let placeholders: Vec<String> = (1..=delivery_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT delivery_id, attempt, attempted_at, http_status, latency_ms, error, \
             response_excerpt FROM outbound_attempts WHERE delivery_id IN ({}) \
             ORDER BY delivery_id, attempt",
            placeholders.join(", ")
        );
        with_read!(self, pool => {
            let mut query = sqlx::query_as(&sql);
            for id in delivery_ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await
        })
    }

    pub async fn outbound_queue(&self) -> sqlx::Result<QueueStats> {
        with_read!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest_created_at \
                 FROM outbound_deliveries WHERE status = 'pending'",
            )
            .fetch_one(pool)
            .await
        })
    }
}
