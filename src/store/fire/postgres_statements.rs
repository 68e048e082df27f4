//! The multi-row statements of a PostgreSQL fire batch (see [`super::postgres_batch`]):
//! each binds one array per column (`unnest`), so a batch of any size is one round trip
//! per statement. Rows are written in one sorted order per table, so two gateways'
//! batches never wait on each other in a cycle.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{FromRow, PgConnection, Postgres, Row};

use super::{
    claim_key, contact_conflict, instance_columns, json_type, run_columns, verdict, FireWrite,
    NewRecord, NewRun, Published,
};
use crate::domain::{Email, RunStatus};
use crate::store::deliveries::{delivery_columns, Arrival, Verdict};
use crate::store::digest::index_key;
use crate::store::outbox::ContactChange;
use crate::store::{column, ContactRow};

/// What the claim statement answers: the fires whose claim took, and the published
/// automations of the batch's triggers (read in the same round trip).
pub(super) struct Claimed {
    pub(super) instance_ids: HashSet<String>,
    pub(super) published: HashMap<String, Vec<Published>>,
}

/// A row of the claim statement: `(None, instance id, None, None)` for a claim that took,
/// `(trigger id, automation id, name, version)` for a published automation.
type ClaimRow = (Option<String>, String, Option<String>, Option<i64>);

/// Claims the batch's keys and reads the published automations of the triggers of
/// `running` fires.
pub(super) async fn claim_keys(
    conn: &mut PgConnection,
    writes: &[&FireWrite],
    running: &[usize],
) -> sqlx::Result<Claimed> {
    const CLAIM_KEYS: &str = concat!(
        "WITH claimed AS (",
        claim_key!(
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[], $7::text[])",
            "excluded.created_at - $8",
            ""
        ),
        ") SELECT NULL AS trigger_id, trigger_instance_id AS id, NULL AS name, \
         NULL::bigint AS version FROM claimed \
         UNION ALL SELECT trigger_id, id, name, version FROM automations \
         WHERE trigger_id = ANY($9::text[]) AND published = $10"
    );
    let mut triggers: Vec<&str> = running
        .iter()
        .map(|&i| writes[i].trigger_id.as_str())
        .collect();
    triggers.sort_unstable();
    triggers.dedup();
    // A claim expires after its window, which differs between API keys and provider ids:
    // one statement per window.
    let mut by_window: HashMap<i64, Vec<&FireWrite>> = HashMap::new();
    for w in writes.iter().filter(|w| w.claim.is_some()) {
        by_window
            .entry(w.now_ms - w.key_expired_before_ms)
            .or_default()
            .push(w);
    }
    if by_window.is_empty() {
        // No fire claims a key: the statement still reads the published automations.
        by_window.insert(0, vec![]);
    }
    let mut claimed = Claimed {
        instance_ids: HashSet::new(),
        published: HashMap::new(),
    };
    for (window, writes) in by_window {
        let mut claims: Vec<_> = writes
            .iter()
            .filter_map(|w| w.claim.as_ref().map(|c| (*w, c)))
            .collect();
        // Rows are locked in this order; one order for every batch keeps two batches that
        // share keys (two gateways) from waiting on each other in a cycle.
        claims.sort_by(|(a, x), (b, y)| {
            (&a.org_id, &x.scope, &x.key).cmp(&(&b.org_id, &y.scope, &y.key))
        });
        let rows: Vec<ClaimRow> = sqlx::query_as(CLAIM_KEYS)
            .bind(column(&claims, |(w, _)| w.org_id.as_str()))
            .bind(column(&claims, |(_, c)| c.scope.as_str()))
            .bind(column(&claims, |(_, c)| index_key(&c.key)))
            .bind(column(&claims, |(_, c)| c.request_hash.as_str()))
            .bind(column(&claims, |(w, _)| w.instance_id.as_str()))
            .bind(column(&claims, |(w, _)| w.now_ms))
            .bind(column(&claims, |(_, c)| c.key.as_str()))
            .bind(window)
            .bind(std::mem::take(&mut triggers))
            .bind(true)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            match row {
                (Some(trigger_id), id, Some(name), Some(version)) => claimed
                    .published
                    .entry(trigger_id)
                    .or_default()
                    .push(Published { id, name, version }),
                (_, instance_id, _, _) => {
                    claimed.instance_ids.insert(instance_id);
                }
            }
        }
    }
    // Runs are started in automation id order, as fire by fire.
    for automations in claimed.published.values_mut() {
        automations.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(claimed)
}

/// The contacts a batch upserts: those of its running fires that name one, with their
/// custom field definitions and provider ids, each an array per column.
pub(super) struct ContactUpserts<'w> {
    /// The fire, and its contact's email, in lock order.
    upserts: Vec<(usize, &'w FireWrite, &'w Email)>,
    /// New field definitions: org, key, type, when.
    fields: Vec<(&'w str, &'w str, &'static str, i64)>,
    /// Provider ids: org, field, value's index key, value, email.
    links: Vec<(&'w str, &'w str, Cow<'w, str>, &'w str, &'w str)>,
    custom_fields: Vec<String>,
}

impl<'w> ContactUpserts<'w> {
    pub(super) fn new(writes: &[&'w FireWrite], running: &[usize]) -> ContactUpserts<'w> {
        let mut upserts: Vec<(usize, &FireWrite, &Email)> = running
            .iter()
            .filter_map(|&i| writes[i].contact_email.as_ref().map(|e| (i, writes[i], e)))
            .collect();
        // One lock order, as for the keys.
        upserts
            .sort_by(|(_, a, x), (_, b, y)| (&a.org_id, x.as_str()).cmp(&(&b.org_id, y.as_str())));
        // The first value of a field new to the org defines its type, as fire by fire.
        let mut defined = HashSet::new();
        let mut fields = vec![];
        let mut links = vec![];
        for &(_, w, email) in &upserts {
            for (key, value) in &w.contact.custom_fields {
                if defined.insert((w.org_id.as_str(), key.as_str())) {
                    fields.push((w.org_id.as_str(), key.as_str(), json_type(value), w.now_ms));
                }
            }
            for (field, value) in &w.identities {
                links.push((
                    w.org_id.as_str(),
                    field.as_str(),
                    index_key(value),
                    value.as_str(),
                    email.as_str(),
                ));
            }
        }
        // New field definitions and provider ids are index entries too: one lock order.
        fields.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        links.sort_unstable_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        let custom_fields = upserts
            .iter()
            .map(|(_, w, _)| {
                serde_json::to_string(&w.contact.custom_fields).expect("JSON serialises")
            })
            .collect();
        ContactUpserts {
            upserts,
            fields,
            links,
            custom_fields,
        }
    }

    /// Binds `$1` to `$16` of [`WRITE_RECORDS`].
    fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        let (fields, links, upserts) = (&self.fields, &self.links, &self.upserts);
        query
            .bind(column(fields, |f| f.0))
            .bind(column(fields, |f| f.1))
            .bind(column(fields, |f| f.2))
            .bind(column(fields, |f| f.3))
            .bind(column(links, |l| l.0))
            .bind(column(links, |l| l.1))
            .bind(column(links, |l| l.3))
            .bind(column(links, |l| -> &str { &l.2 }))
            .bind(column(links, |l| l.4))
            .bind(column(upserts, |(_, w, _)| w.org_id.as_str()))
            .bind(column(upserts, |(_, _, e)| e.as_str()))
            .bind(column(upserts, |(_, w, _)| w.contact.first_name.as_deref()))
            .bind(column(upserts, |(_, w, _)| w.contact.last_name.as_deref()))
            .bind(column(upserts, |(_, w, _)| w.contact.subscribed))
            .bind(&self.custom_fields)
            .bind(column(upserts, |(_, w, _)| w.now_ms))
    }

    /// Each fire's contact change, from the rows the upsert returned.
    fn changes(&self, rows: Vec<PgRow>) -> sqlx::Result<HashMap<usize, ContactChange>> {
        // A batch holds each contact once, so (org, email) names the fire.
        let mut changes = HashMap::new();
        for row in rows {
            let org_id: String = row.try_get("org_id")?;
            let change = ContactChange {
                created: row.try_get("created")?,
                row: ContactRow::from_row(&row)?,
            };
            changes.insert((org_id, change.row.email.clone()), change);
        }
        Ok(self
            .upserts
            .iter()
            .filter_map(|(i, w, e)| {
                changes
                    .remove(&(w.org_id.clone(), e.as_str().to_owned()))
                    .map(|c| (*i, c))
            })
            .collect())
    }
}

/// Inserts delivery log rows, each column an array (`$1` to `$17`, bound by [`bind_logged`]).
pub(super) const INSERT_LOGGED: &str = concat!(
    "INSERT INTO ",
    delivery_columns!(),
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], \
     $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bytea[], $17::text[])"
);

/// Binds delivery log rows as one array per column, in the order of `delivery_columns!`.
pub(super) fn bind_logged<'q>(
    query: Query<'q, Postgres, PgArguments>,
    logged: &'q [(&'q Arrival, &'q Verdict)],
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(column(logged, |(a, _)| a.id.as_str()))
        .bind(column(logged, |(a, _)| a.org_id.as_str()))
        .bind(column(logged, |(a, _)| a.connection_id.as_str()))
        .bind(column(logged, |(a, _)| a.provider.as_str()))
        .bind(column(logged, |(a, _)| a.event.as_deref()))
        .bind(column(logged, |(_, v)| v.status.as_str()))
        .bind(column(logged, |(_, v)| v.reason.as_deref()))
        .bind(column(logged, |(_, v)| i64::from(v.http_status)))
        .bind(column(logged, |(a, _)| a.received_at_ms))
        .bind(column(logged, |(a, _)| a.trigger_id.as_deref()))
        .bind(column(logged, |(_, v)| v.trigger_instance_id.as_deref()))
        .bind(column(logged, |(_, v)| {
            serde_json::to_string(&v.run_ids).expect("strings serialise")
        }))
        .bind(column(logged, |(a, _)| a.replay_of.as_deref()))
        .bind(column(logged, |(a, _)| a.headers.as_str()))
        .bind(column(logged, |(a, _)| a.body_bytes))
        .bind(column(logged, |(a, _)| {
            a.body.as_ref().map(|b| b.bytes.as_slice())
        }))
        .bind(column(logged, |(a, _)| {
            a.body.as_ref().and_then(|b| b.encoding)
        }))
}

/// Writes what a batch's fires leave behind, in one statement: the contacts of the
/// running ones (`$1` to `$16`, bound by [`ContactUpserts::bind`]), their runs, trigger
/// instances and delivery log rows. The contacts' rows come back.
const WRITE_RECORDS: &str = concat!(
    "WITH defined AS (INSERT INTO contact_fields (org_id, key, type, created_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
     ON CONFLICT (org_id, key) DO NOTHING), \
     linked AS (INSERT INTO contact_identities (org_id, field, value, value_index, email) \
     SELECT * FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) \
     ON CONFLICT (org_id, field, value_index) DO UPDATE SET email = excluded.email), \
     started AS (INSERT INTO ",
    run_columns!(),
    " SELECT r.id, r.org_id, r.automation_id, r.version, r.trigger_id, r.instance_id, $17, \
     r.email, r.payload, r.at FROM unnest($18::text[], $19::text[], $20::text[], $21::bigint[], \
     $22::text[], $23::text[], $24::text[], $25::text[], $26::bigint[]) \
     AS r(id, org_id, automation_id, version, trigger_id, instance_id, email, payload, at)), \
     logged AS (INSERT INTO ",
    delivery_columns!(),
    " SELECT * FROM unnest($27::text[], $28::text[], $29::text[], $30::text[], $31::text[], \
     $32::text[], $33::text[], $34::bigint[], $35::bigint[], $36::text[], $37::text[], \
     $38::text[], $39::text[], $40::text[], $41::bigint[], $42::bytea[], $43::text[])), \
     instances AS (INSERT INTO ",
    instance_columns!(),
    " SELECT * FROM unnest($44::text[], $45::text[], $46::text[], $47::text[], $48::text[], \
     $49::text[], $50::text[], $51::text[], $52::text[], $53::text[], $54::text[], \
     $55::text[], $56::bigint[])) \
     INSERT INTO contacts (org_id, email, first_name, last_name, subscribed, \
     custom_fields, created_at, updated_at) \
     SELECT c.org_id, c.email, c.first_name, c.last_name, c.subscribed, c.custom_fields, \
     c.at, c.at FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], \
     $14::bool[], $15::text[], $16::bigint[]) \
     AS c(org_id, email, first_name, last_name, subscribed, custom_fields, at)",
    contact_conflict!("(contacts.custom_fields::jsonb || excluded.custom_fields::jsonb)::text"),
    // xmax is 0 on a freshly inserted row (see the single fire's upsert).
    " RETURNING org_id, email, first_name, last_name, subscribed, custom_fields, \
     created_at, updated_at, (xmax = 0) AS created"
);

/// Writes the batch's contacts, runs, trigger instances and delivery log rows in one
/// statement ([`WRITE_RECORDS`]); answers each running fire's contact change. The parts
/// touch different tables and none reads another's rows, so one statement does for what
/// took two round trips.
pub(super) async fn write_records(
    conn: &mut PgConnection,
    writes: &[&FireWrite],
    contacts: &ContactUpserts<'_>,
    records: &[(usize, NewRecord<'_>)],
) -> sqlx::Result<HashMap<usize, ContactChange>> {
    let runs: Vec<(&FireWrite, &NewRecord, &NewRun)> = records
        .iter()
        .flat_map(|(i, r)| r.runs.iter().map(move |run| (writes[*i], r, run)))
        .collect();
    let verdicts: Vec<(&Arrival, Verdict)> = records
        .iter()
        .filter_map(|(i, r)| {
            let w = writes[*i];
            w.delivery.as_ref().map(|a| (a, verdict(w, r)))
        })
        .collect();
    let logged: Vec<(&Arrival, &Verdict)> = verdicts.iter().map(|(a, v)| (*a, v)).collect();
    let instances: Vec<(&FireWrite, &NewRecord)> =
        records.iter().map(|(i, r)| (writes[*i], r)).collect();
    let query = contacts
        .bind(sqlx::query(WRITE_RECORDS))
        .bind(RunStatus::Queued.as_str())
        .bind(column(&runs, |(_, _, run)| run.id.as_str()))
        .bind(column(&runs, |(w, _, _)| w.org_id.as_str()))
        .bind(column(&runs, |(_, _, run)| run.automation.id.as_str()))
        .bind(column(&runs, |(_, _, run)| run.automation.version))
        .bind(column(&runs, |(w, _, _)| w.trigger_id.as_str()))
        .bind(column(&runs, |(w, _, _)| w.instance_id.as_str()))
        .bind(column(&runs, |(w, _, _)| {
            w.contact_email.as_ref().map_or("", Email::as_str)
        }))
        .bind(column(&runs, |(_, r, _)| r.payload))
        .bind(column(&runs, |(w, _, _)| w.now_ms));
    let rows = bind_logged(query, &logged)
        .bind(column(&instances, |(w, _)| w.instance_id.as_str()))
        .bind(column(&instances, |(w, _)| w.org_id.as_str()))
        .bind(column(&instances, |(w, _)| w.trigger_id.as_str()))
        .bind(column(&instances, |(w, _)| w.source.as_str()))
        .bind(column(&instances, |(_, r)| r.outcome()))
        .bind(column(&instances, |(_, r)| r.reason()))
        .bind(column(&instances, |(w, _)| {
            w.claim.as_ref().map(|c| c.key.as_str())
        }))
        .bind(column(&instances, |(w, _)| {
            w.contact_email.as_ref().map(Email::as_str)
        }))
        .bind(column(&instances, |(_, r)| r.payload))
        .bind(column(&instances, |(w, _)| w.warnings.to_string()))
        .bind(column(&instances, |(_, r)| r.run_ids_json()))
        .bind(column(&instances, |(_, r)| r.automations_json()))
        .bind(column(&instances, |(w, _)| w.now_ms))
        .fetch_all(conn)
        .await?;
    contacts.changes(rows)
}
