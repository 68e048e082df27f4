//! `/v1/webhook-subscriptions/deliveries`: every outbound delivery with its attempts, and
//! sending one again.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Org;
use super::body;
use super::error::ApiError;
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::{EventType, OutboundStatus};
use crate::store::{AttemptRow, OutboundDeliveryRow, OutboundFilter};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    subscription_id: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn render(d: &OutboundDeliveryRow, attempts: &[&AttemptRow]) -> Value {
    json!({
        "deliveryId": d.id,
        "subscriptionId": d.subscription_id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status,
        "attemptCount": d.attempts,
        "nextAttemptAt": (d.status == OutboundStatus::Pending.as_str()).then(|| rfc3339(d.next_attempt_at)),
        "createdAt": rfc3339(d.created_at),
        "updatedAt": rfc3339(d.updated_at),
        "attempts": attempts.iter().map(|a| json!({
            "attempt": a.attempt,
            "attemptedAt": rfc3339(a.attempted_at),
            "httpStatus": a.http_status,
            "latencyMs": a.latency_ms,
            "error": a.error,
            "responseExcerpt": a.response_excerpt,
        })).collect::<Vec<_>>(),
    })
}

/// Parses an optional vocabulary word from the query, naming the parameter when unknown.
fn word<T: std::str::FromStr>(param: &str, value: Option<&str>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse()
                .map_err(|e: T::Err| ApiError::invalid(param, e.to_string()))
        })
        .transpose()
}

pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let status = word::<OutboundStatus>("status", q.status.as_deref())?;
    word::<EventType>("eventType", q.event_type.as_deref())?;
    let (limit, before) = page::window(q.limit, q.cursor.as_deref())?;
    let filter = OutboundFilter {
        subscription_id: q.subscription_id.as_deref(),
        status,
        event_type: q.event_type.as_deref(),
    };
    let rows = state
        .store
        .list_outbound_deliveries(&org.0, &filter, before.as_deref(), limit)
        .await?;
    let ids: Vec<&str> = rows.rows.iter().map(|d| d.id.as_str()).collect();
    let attempts = state.store.attempts_of(&ids).await?;
    let mut by_delivery: HashMap<&str, Vec<&AttemptRow>> = HashMap::new();
    for a in &attempts {
        by_delivery.entry(&a.delivery_id).or_default().push(a);
    }
    Ok(HttpResponse::Ok().json(page::list(
        rows,
        limit,
        |d| &d.id,
        |d| {
            Ok(render(
                d,
                by_delivery.get(d.id.as_str()).map_or(&[], Vec::as_slice),
            ))
        },
    )?))
}

/// Makes a delivery due now, whatever its status.
pub async fn retry(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let last_step = state.settings.outbound.retry_schedule.len() as i64;
    let now = state.clock.now_ms();
    if !state
        .store
        .retry_outbound_delivery(&org.0, &path, now, last_step)
        .await?
    {
        return Err(
            ApiError::not_found("DELIVERY_NOT_FOUND", format!("no delivery `{path}`"))
                .with_param("deliveryId"),
        );
    }
    let delivery = state
        .store
        .get_outbound_delivery(&org.0, &path)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("delivery {path} vanished")))?;
    let attempts = state.store.attempts_of(&[delivery.id.as_str()]).await?;
    let attempts: Vec<&AttemptRow> = attempts.iter().collect();
    Ok(HttpResponse::Accepted().json(render(&delivery, &attempts)))
}
