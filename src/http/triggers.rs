//! `/v1/automations/triggers`: the events automations bind to.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{stored, ApiError, ErrorEnvelope};
use super::page::List;
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::TriggerStatus;
use crate::ids;
use crate::pipeline::schema::PayloadSchema;
use crate::store::TriggerRow;

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 2000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"title": "Signed up", "payloadSchema": {"fields": [{"key": "email", "type": "string", "required": true}]}}))]
pub struct CreateTrigger {
    #[schema(min_length = 1, max_length = 120)]
    title: String,
    #[schema(max_length = 2000)]
    description: Option<String>,
    payload_schema: PayloadSchema,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchTrigger {
    #[schema(min_length = 1, max_length = 120)]
    title: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    payload_schema: Option<PayloadSchema>,
    status: Option<TriggerStatus>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `api` or a provider's slug.
    provider: Option<String>,
    connection_id: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A trigger as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    trigger_event_id: String,
    title: String,
    description: Option<String>,
    provider: String,
    connection_id: Option<String>,
    provider_event_key: Option<String>,
    status: TriggerStatus,
    payload_schema: PayloadSchema,
    created_at: String,
    updated_at: String,
}

pub fn render(t: &TriggerRow) -> Result<Trigger, ApiError> {
    Ok(Trigger {
        trigger_event_id: t.id.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        provider: t.provider.clone(),
        connection_id: t.connection_id.clone(),
        provider_event_key: t.provider_event_key.clone(),
        status: t.status,
        payload_schema: stored("payload schema", &t.id, &t.payload_schema)?,
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
    })
}

fn check_schema(schema: &PayloadSchema) -> Result<(), ApiError> {
    schema
        .check()
        .map_err(|(param, message)| ApiError::invalid(param, message))
}

impl Validate for CreateTrigger {
    fn validate(&self) -> Result<(), ApiError> {
        check_len("title", &self.title, 1, TITLE_MAX)?;
        if let Some(d) = &self.description {
            check_len("description", d, 0, DESCRIPTION_MAX)?;
        }
        check_schema(&self.payload_schema)
    }
}

impl Validate for PatchTrigger {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(title) = &self.title {
            check_len("title", title, 1, TITLE_MAX)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, 0, DESCRIPTION_MAX)?;
        }
        self.payload_schema.as_ref().map_or(Ok(()), check_schema)
    }
}

/// Creates an API trigger; its payload schema must declare a required string `email`.
#[utoipa::path(post, operation_id = "createTrigger", path = "/v1/automations/triggers", tag = "triggers",
    request_body = CreateTrigger,
    responses(
        (status = 201, description = "The trigger", body = Trigger),
        (status = 400, description = "Invalid request", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn create(
    Json(input): Json<CreateTrigger>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now_ms();
    let trigger = TriggerRow {
        id: ids::new_id(ids::TRIGGER),
        org_id: org.0,
        title: input.title,
        description: input.description,
        provider: "api".into(),
        connection_id: None,
        provider_event_key: None,
        status: TriggerStatus::Enabled,
        payload_schema: serde_json::to_string(&input.payload_schema).map_err(ApiError::internal)?,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_trigger(&trigger).await?;
    Ok(HttpResponse::Created().json(render(&trigger)?))
}

/// Lists triggers, API and integration ones alike.
#[utoipa::path(get, operation_id = "listTriggers", path = "/v1/automations/triggers", tag = "triggers",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of triggers", body = List<Trigger>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
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
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |t| &t.id, render)?))
}

pub async fn find(state: &State, org: &Org, id: &str) -> Result<TriggerRow, ApiError> {
    state.store.get_trigger(&org.0, id).await?.ok_or_else(|| {
        ApiError::not_found("NO_SUCH_TRIGGER", format!("no trigger `{id}`"))
            .with_param("triggerEventId")
    })
}

#[utoipa::path(get, operation_id = "getTrigger", path = "/v1/automations/triggers/{id}", tag = "triggers",
    params(("id" = String, Path, description = "`tri_...` or `<provider>:<connectionId>:<event>`")),
    responses(
        (status = 200, description = "The trigger", body = Trigger),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such trigger in this org", body = ErrorEnvelope),
    ),
)]
pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(render(&find(&state, &org, &path).await?)?))
}

/// Edits a trigger; `status: disabled` records fires but starts no runs.
#[utoipa::path(patch, operation_id = "updateTrigger", path = "/v1/automations/triggers/{id}", tag = "triggers",
    params(("id" = String, Path)),
    request_body = PatchTrigger,
    responses(
        (status = 200, description = "The trigger", body = Trigger),
        (status = 400, description = "Invalid request", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such trigger in this org", body = ErrorEnvelope),
    ),
)]
pub async fn patch(
    path: web::Path<String>,
    Json(input): Json<PatchTrigger>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let mut trigger = find(&state, &org, &path).await?;
    if let Some(title) = input.title {
        trigger.title = title;
    }
    if let Some(description) = input.description {
        trigger.description = Some(description);
    }
    if let Some(schema) = input.payload_schema {
        trigger.payload_schema = serde_json::to_string(&schema).map_err(ApiError::internal)?;
    }
    if let Some(status) = input.status {
        trigger.status = status;
    }
    trigger.updated_at = state.clock.now_ms();
    state.store.update_trigger(&trigger).await?;
    Ok(HttpResponse::Ok().json(render(&trigger)?))
}
