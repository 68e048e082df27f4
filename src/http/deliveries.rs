//! `/v1/integrations/deliveries`: the inbound delivery log, one delivery with its headers
//! and body, and replay.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use adapters::Provider;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body::{self, check_len};
use super::error::{ApiError, ErrorEnvelope, ErrorType};
use super::page::List;
use super::receive::Received;
use super::{page, receive, State};
use crate::clock::rfc3339;
use crate::domain::DeliveryStatus;
use crate::ids;
use crate::store::{DeliveryDetail, DeliveryFilter, DeliveryRow};

/// The longest id or event name a filter takes; longer ones match nothing stored.
const FILTER_MAX: usize = 200;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(max_length = 200)]
    connection_id: Option<String>,
    /// A provider's slug.
    #[param(max_length = 200)]
    provider: Option<String>,
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    #[param(max_length = 200)]
    event: Option<String>,
    /// RFC 3339; deliveries received at or after it.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339; deliveries received before it.
    #[param(format = DateTime)]
    until: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Fire again under a fresh key even if the delivery fired before.
    #[serde(default)]
    force: bool,
}

/// A delivery in the log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    delivery_id: String,
    connection_id: String,
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    status: DeliveryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    http_status: i64,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_instance_id: Option<String>,
    automation_run_ids: Vec<String>,
    body_bytes: i64,
    /// The delivery this one replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<String>,
}

/// A delivery with its redacted headers and, for verified ones, its raw body.
#[derive(Serialize, ToSchema)]
pub struct DeliveryWithBody {
    #[serde(flatten)]
    delivery: Delivery,
    /// Names and values; signatures, tokens and authorization values are `[redacted]`.
    #[schema(value_type = Object)]
    headers: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

/// A filter's text: 1 to [`FILTER_MAX`] characters, no control characters.
fn text_filter<'a>(param: &str, value: &'a Option<String>) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = value.as_deref() else {
        return Ok(None);
    };
    check_len(param, value, 1, FILTER_MAX)?;
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!("{param}: control characters (such as NUL) are not allowed"),
        ));
    }
    Ok(Some(value))
}

fn time_filter(param: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.as_deref() else {
        return Ok(None);
    };
    let at = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        ApiError::invalid(
            param,
            format!("{param} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"),
        )
    })?;
    Ok(Some((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

fn render(d: &DeliveryRow) -> Delivery {
    Delivery {
        delivery_id: d.id.clone(),
        connection_id: d.connection_id.clone(),
        provider: d.provider.clone(),
        event: d.event.clone(),
        status: d.status,
        reason: d.reason.clone(),
        http_status: d.http_status,
        received_at: rfc3339(d.received_at),
        trigger_event_id: d.trigger_id.clone(),
        trigger_instance_id: d.trigger_instance_id.clone(),
        automation_run_ids: d.run_ids.clone(),
        body_bytes: d.body_bytes,
        replay_of: d.replay_of.clone(),
    }
}

/// A logged delivery of the org, or 404 (also for a string that is no delivery id).
async fn find(state: &State, org: &Org, id: &str) -> Result<DeliveryDetail, ApiError> {
    let not_found = || ApiError::not_found("NO_SUCH_DELIVERY", "no such delivery").with_param("id");
    if !ids::is_id(ids::DELIVERY, id) {
        return Err(not_found());
    }
    state
        .store
        .get_delivery(&org.0, id)
        .await?
        .ok_or_else(not_found)
}

/// The delivery log, newest first.
#[utoipa::path(get, operation_id = "listDeliveries", path = "/v1/integrations/deliveries", tag = "deliveries",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = List<Delivery>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, before) = page::window(q.limit, q.cursor.as_deref())?;
    if before
        .as_deref()
        .is_some_and(|id| !ids::is_id(ids::DELIVERY, id))
    {
        return Err(ApiError::invalid("cursor", "unknown cursor"));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<DeliveryStatus>().map_err(|_| {
                ApiError::invalid(
                    "status",
                    "status is one of triggered, no_published_automation, ignored, duplicate, rejected",
                )
            })
        })
        .transpose()?;
    let provider = text_filter("provider", &q.provider)?;
    if provider.is_some_and(|p| Provider::from_slug(p).is_none()) {
        return Err(ApiError::invalid("provider", "unknown provider"));
    }
    let filter = DeliveryFilter {
        connection_id: text_filter("connectionId", &q.connection_id)?,
        provider,
        status,
        event: text_filter("event", &q.event)?,
        since_ms: time_filter("since", &q.since)?,
        until_ms: time_filter("until", &q.until)?,
    };
    let rows = state
        .store
        .list_deliveries(&org.0, &filter, before.as_deref(), limit)
        .await?;
    let listed = page::list(rows, limit, |d| &d.id, |d| Ok::<_, ApiError>(render(d)))?;
    Ok(HttpResponse::Ok().json(listed))
}

#[utoipa::path(get, operation_id = "getDelivery", path = "/v1/integrations/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path, description = "`dlv_...`")),
    responses(
        (status = 200, description = "The delivery, its headers and body", body = DeliveryWithBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such delivery in this org", body = ErrorEnvelope),
    ),
)]
pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let detail = find(&state, &org, &path).await?;
    Ok(HttpResponse::Ok().json(DeliveryWithBody {
        delivery: render(&detail.row),
        headers: detail.headers.clone(),
        body: detail
            .body
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
    }))
}

/// Runs a stored verified delivery through the pipeline again, as it would run now.
#[utoipa::path(post, operation_id = "replayDelivery", path = "/v1/integrations/deliveries/{id}/replay", tag = "deliveries",
    params(("id" = String, Path, description = "`dlv_...`")),
    request_body = Option<ReplayRequest>,
    responses(
        (status = 200, description = "The receive body of the replay, with its new `deliveryId`", body = Received),
        (status = 400, description = "Invalid request", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such delivery in this org", body = ErrorEnvelope),
        (status = 409, description = "`DELIVERY_NOT_REPLAYABLE`", body = ErrorEnvelope),
    ),
)]
pub async fn replay(
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let input: ReplayRequest = if raw.is_empty() {
        ReplayRequest::default()
    } else {
        body::require_json(&req)?;
        body::parse(&raw)?
    };
    let detail = find(&state, &org, &path).await?;
    let not_replayable = |why: &str| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorType::Conflict,
            "DELIVERY_NOT_REPLAYABLE",
            format!("delivery {} cannot be replayed: {why}", detail.row.id),
        )
    };
    let body = match (&detail.body, detail.row.status) {
        (Some(body), status) if status != DeliveryStatus::Rejected => body,
        _ => return Err(not_replayable("it was rejected, so its body was not kept")),
    };
    let connection = state
        .store
        .live_connection(&detail.row.connection_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_replayable("its connection was deleted"))?;
    if !connection.row.enabled {
        return Err(not_replayable("its connection is disabled"));
    }
    let delivered = state
        .pipeline
        .replay(&connection, &detail, body, input.force)
        .await?;
    let answer = receive::received_body(delivered, state.settings.server.max_body_bytes)?;
    Ok(HttpResponse::Ok().json(answer))
}
