//! `/v1/automations/triggers`: the events automations bind to.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Org;
use super::body::{self, check_len};
use super::error::ApiError;
use super::{page, State};
use crate::clock::rfc3339;
use crate::ids;
use crate::pipeline::schema::PayloadSchema;
use crate::store::TriggerRow;

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 2000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateTrigger {
    title: String,
    description: Option<String>,
    payload_schema: PayloadSchema,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchTrigger {
    title: Option<String>,
    description: Option<String>,
    payload_schema: Option<PayloadSchema>,
    status: Option<TriggerStatus>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TriggerStatus {
    Enabled,
    Disabled,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    provider: Option<String>,
    connection_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The trigger as the API shows it.
pub fn render(t: &TriggerRow) -> Value {
    json!({
        "triggerEventId": t.id,
        "title": t.title,
        "description": t.description,
        "provider": t.provider,
        "connectionId": t.connection_id,
        "providerEventKey": t.provider_event_key,
        "status": t.status,
        "payloadSchema": serde_json::from_str::<Value>(&t.payload_schema).unwrap_or(Value::Null),
        "createdAt": rfc3339(t.created_at),
        "updatedAt": rfc3339(t.updated_at),
    })
}

fn check_schema(schema: &PayloadSchema) -> Result<(), ApiError> {
    schema
        .check()
        .map_err(|(param, message)| ApiError::invalid(param, message))
}

pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let input: CreateTrigger =
        body::json(&req, payload, state.settings.server.max_body_bytes).await?;
    check_len("title", &input.title, 1, TITLE_MAX)?;
    if let Some(d) = &input.description {
        check_len("description", d, 0, DESCRIPTION_MAX)?;
    }
    check_schema(&input.payload_schema)?;
    let now = state.clock.now_ms();
    let trigger = TriggerRow {
        id: ids::new_id(ids::TRIGGER),
        org_id: org.0,
        title: input.title,
        description: input.description,
        provider: "api".into(),
        connection_id: None,
        provider_event_key: None,
        status: "enabled".into(),
        payload_schema: serde_json::to_string(&input.payload_schema).map_err(ApiError::internal)?,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_trigger(&trigger).await?;
    state.triggers.invalidate_all();
    Ok(HttpResponse::Created().json(render(&trigger)))
}

pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_triggers(
            &org.0,
            q.provider.as_deref(),
            q.connection_id.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |t| &t.id, render)))
}

pub async fn find(state: &State, org: &Org, id: &str) -> Result<TriggerRow, ApiError> {
    state.store.get_trigger(&org.0, id).await?.ok_or_else(|| {
        ApiError::not_found("NO_SUCH_TRIGGER", format!("no trigger `{id}`"))
            .with_param("triggerEventId")
    })
}

pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(render(&find(&state, &org, &path).await?)))
}

pub async fn patch(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let input: PatchTrigger =
        body::json(&req, payload, state.settings.server.max_body_bytes).await?;
    let mut trigger = find(&state, &org, &path).await?;
    if let Some(title) = input.title {
        check_len("title", &title, 1, TITLE_MAX)?;
        trigger.title = title;
    }
    if let Some(description) = input.description {
        check_len("description", &description, 0, DESCRIPTION_MAX)?;
        trigger.description = Some(description);
    }
    if let Some(schema) = input.payload_schema {
        check_schema(&schema)?;
        trigger.payload_schema = serde_json::to_string(&schema).map_err(ApiError::internal)?;
    }
    if let Some(status) = input.status {
        trigger.status = match status {
            TriggerStatus::Enabled => "enabled",
            TriggerStatus::Disabled => "disabled",
        }
        .into();
    }
    trigger.updated_at = state.clock.now_ms();
    state.store.update_trigger(&trigger).await?;
    state.triggers.invalidate_all();
    Ok(HttpResponse::Ok().json(render(&trigger)))
}
