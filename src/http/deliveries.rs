//! `/v1/integrations/deliveries`: the inbound delivery log, one delivery with its headers
//! and body, and replay.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use adapters::Provider;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::Org;
use super::body::{self, check_len};
use super::error::{ApiError, ErrorType};
use super::{page, receive, State};
use crate::clock::rfc3339;
use crate::domain::DeliveryStatus;
use crate::ids;
use crate::store::{DeliveryDetail, DeliveryFilter, DeliveryRow};

/// The longest id or event name a filter takes; longer ones match nothing stored.
const FILTER_MAX: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    connection_id: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    event: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    force: bool,
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

fn render(d: &DeliveryRow) -> Value {
    let mut out = json!({
        "deliveryId": d.id,
        "connectionId": d.connection_id,
        "provider": d.provider,
        "status": d.status,
        "httpStatus": d.http_status,
        "receivedAt": rfc3339(d.received_at),
        "automationRunIds": d.run_ids,
        "bodyBytes": d.body_bytes,
    });
    let optional = [
        ("event", &d.event),
        ("reason", &d.reason),
        ("triggerEventId", &d.trigger_id),
        ("triggerInstanceId", &d.trigger_instance_id),
        ("replayOf", &d.replay_of),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            out[key] = json!(value);
        }
    }
    out
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

pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let detail = find(&state, &org, &path).await?;
    let mut out = render(&detail.row);
    out["headers"] = detail.headers.clone();
    if let Some(body) = &detail.body {
        out["body"] = json!(String::from_utf8_lossy(body));
    }
    Ok(HttpResponse::Ok().json(out))
}

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
