//! `/v1/webhook-subscriptions/deliveries`: every outbound delivery with its attempts, and
//! sending one again.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body;
use super::error::{ApiError, ErrorEnvelope};
use super::page::List;
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::{EventType, OutboundStatus};
use crate::store::{AttemptRow, OutboundDeliveryRow, OutboundFilter};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    subscription_id: Option<String>,
    #[param(value_type = Option<OutboundStatus>)]
    status: Option<String>,
    #[param(value_type = Option<EventType>)]
    event_type: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// An outbound delivery: one event for one subscription, with its attempts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundDelivery {
    delivery_id: String,
    subscription_id: String,
    event_id: String,
    event_type: String,
    /// `pending`, `succeeded` or `failed`.
    status: String,
    attempt_count: i64,
    /// When a pending delivery is due next. While a dispatcher is sending it, the end of
    /// that dispatcher's lease: the time by which another process would take it over.
    next_attempt_at: Option<String>,
    created_at: String,
    updated_at: String,
    attempts: Vec<Attempt>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    attempt: i64,
    attempted_at: String,
    http_status: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
    /// The first KiB of the response body.
    response_excerpt: Option<String>,
}

fn render(d: &OutboundDeliveryRow, attempts: &[&AttemptRow]) -> OutboundDelivery {
    OutboundDelivery {
        delivery_id: d.id.clone(),
        subscription_id: d.subscription_id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        status: d.status.clone(),
        attempt_count: d.attempts,
        next_attempt_at: (d.status == OutboundStatus::Pending.as_str())
            .then(|| rfc3339(d.next_attempt_at)),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
        attempts: attempts
            .iter()
            .map(|a| Attempt {
                attempt: a.attempt,
                attempted_at: rfc3339(a.attempted_at),
                http_status: a.http_status,
                latency_ms: a.latency_ms,
                error: a.error.clone(),
                response_excerpt: a.response_excerpt.clone(),
            })
            .collect(),
    }
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

/// The outbound delivery log, newest first, with every attempt.
#[utoipa::path(get, operation_id = "listOutboundDeliveries", path = "/v1/webhook-subscriptions/deliveries", tag = "outbound",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of outbound deliveries", body = List<OutboundDelivery>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
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
#[utoipa::path(post, operation_id = "retryOutboundDelivery", path = "/v1/webhook-subscriptions/deliveries/{id}/retry", tag = "outbound",
    params(("id" = String, Path)),
    responses(
        (status = 202, description = "Due now; the delivery as it stands", body = OutboundDelivery),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such delivery in this org", body = ErrorEnvelope),
    ),
)]
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
