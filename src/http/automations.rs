//! `/v1/automations`, their runs, and the record of fires.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{stored, ApiError, ErrorEnvelope, ErrorType};
use super::input::MAX_ID_LEN;
use super::page::List;
use super::{page, triggers, State};
use crate::clock::rfc3339;
use crate::domain::{FireOutcome, RunStatus};
use crate::ids;
use crate::pipeline::graph::{self, Edge, Node};
use crate::store::{AutomationRow, RunFilter, RunRow, TriggerInstanceRow};

const NAME_MAX: usize = 120;
const MAX_NODES: usize = 500;
/// Node ids, labels and the ends of connections.
const NODE_TEXT_MAX: usize = 200;
/// A node's `config`, serialized.
const NODE_CONFIG_MAX_BYTES: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"name": "Welcome", "triggerEventId": "tri_01J...", "nodes": [{"id": "t", "type": "trigger"}, {"id": "e", "type": "sendEmail"}], "connections": [{"from": "t", "to": "e"}]}))]
pub struct CreateAutomation {
    #[schema(min_length = 1, max_length = 120)]
    name: String,
    trigger_event_id: String,
    nodes: Vec<Node>,
    connections: Vec<Edge>,
    #[schema(max_length = 2000)]
    description: Option<String>,
}

/// Either graph edits (a new version) or `published` alone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchAutomation {
    #[schema(min_length = 1, max_length = 120)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    trigger_event_id: Option<String>,
    nodes: Option<Vec<Node>>,
    connections: Option<Vec<Edge>>,
    published: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    trigger_event_id: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct RunQuery {
    automation_run_id: Option<String>,
    automation_id: Option<String>,
    trigger_event_id: Option<String>,
    status: Option<RunStatus>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// An automation as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Automation {
    automation_id: String,
    name: String,
    description: Option<String>,
    trigger_event_id: String,
    nodes: Vec<Node>,
    connections: Vec<Edge>,
    version: i64,
    published: bool,
    created_at: String,
    updated_at: String,
}

fn render(a: &AutomationRow) -> Result<Automation, ApiError> {
    Ok(Automation {
        automation_id: a.id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        trigger_event_id: a.trigger_id.clone(),
        nodes: stored("nodes", &a.id, &a.nodes)?,
        connections: stored("edges", &a.id, &a.edges)?,
        version: a.version,
        published: a.published,
        created_at: rfc3339(a.created_at),
        updated_at: rfc3339(a.updated_at),
    })
}

/// A run as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Run {
    automation_run_id: String,
    automation_id: String,
    automation_version: i64,
    trigger_event_id: String,
    trigger_instance_id: String,
    status: RunStatus,
    contact_email: String,
    #[schema(value_type = Object)]
    payload: Map<String, Value>,
    created_at: String,
}

fn render_run(r: &RunRow) -> Result<Run, ApiError> {
    Ok(Run {
        automation_run_id: r.id.clone(),
        automation_id: r.automation_id.clone(),
        automation_version: r.automation_version,
        trigger_event_id: r.trigger_id.clone(),
        trigger_instance_id: r.trigger_instance_id.clone(),
        status: r.status,
        contact_email: r.contact_email.clone(),
        payload: stored("payload", &r.id, &r.payload)?,
        created_at: rfc3339(r.created_at),
    })
}

/// A trigger instance (the record of one fire) as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TriggerInstance {
    trigger_instance_id: String,
    trigger_event_id: String,
    source: String,
    outcome: FireOutcome,
    reason: Option<String>,
    idempotency_key: Option<String>,
    contact_email: Option<String>,
    #[schema(value_type = Object)]
    payload: Map<String, Value>,
    #[schema(value_type = Vec<Object>)]
    warnings: Vec<Value>,
    automation_run_ids: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    published_automations: Vec<Value>,
    received_at: String,
}

fn render_instance(t: &TriggerInstanceRow) -> Result<TriggerInstance, ApiError> {
    Ok(TriggerInstance {
        trigger_instance_id: t.id.clone(),
        trigger_event_id: t.trigger_id.clone(),
        source: t.source.clone(),
        outcome: t.outcome,
        reason: t.reason.clone(),
        idempotency_key: t.idempotency_key.clone(),
        contact_email: t.contact_email.clone(),
        payload: stored("payload", &t.id, &t.payload)?,
        warnings: stored("warnings", &t.id, &t.warnings)?,
        automation_run_ids: stored("run ids", &t.id, &t.run_ids)?,
        published_automations: stored("automations", &t.id, &t.automations)?,
        received_at: rfc3339(t.received_at),
    })
}

fn check_graph(nodes: &[Node], edges: &[Edge]) -> Result<(), ApiError> {
    if nodes.len() > MAX_NODES || edges.len() > MAX_NODES * 4 {
        return Err(ApiError::invalid(
            "nodes",
            format!("a graph has at most {MAX_NODES} nodes"),
        ));
    }
    check_sizes(nodes, edges)?;
    let issues = graph::issues(nodes, edges);
    if issues.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorType::InvalidRequest,
        "AUTOMATION_GRAPH_INVALID",
        format!("the automation graph has {} issue(s)", issues.len()),
    )
    .with_details(json!({ "issues": issues })))
}

/// The lengths of a graph's strings and the size of each node's config.
fn check_sizes(nodes: &[Node], edges: &[Edge]) -> Result<(), ApiError> {
    for (i, node) in nodes.iter().enumerate() {
        check_len(&format!("nodes[{i}].id"), &node.id, 1, NODE_TEXT_MAX)?;
        if let Some(label) = &node.label {
            check_len(&format!("nodes[{i}].label"), label, 0, NODE_TEXT_MAX)?;
        }
        if let Some(config) = &node.config {
            if to_json(config)?.len() > NODE_CONFIG_MAX_BYTES {
                return Err(ApiError::invalid(
                    format!("nodes[{i}].config"),
                    format!("a node's config is at most {NODE_CONFIG_MAX_BYTES} bytes of JSON"),
                ));
            }
        }
    }
    for (i, edge) in edges.iter().enumerate() {
        check_len(
            &format!("connections[{i}].from"),
            &edge.from,
            1,
            NODE_TEXT_MAX,
        )?;
        check_len(&format!("connections[{i}].to"), &edge.to, 1, NODE_TEXT_MAX)?;
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

/// The trigger an automation names must be the org's; a reference in a body is a 400.
async fn check_trigger(state: &State, org: &Org, id: &str) -> Result<(), ApiError> {
    match triggers::find(state, org, id).await {
        Ok(_) => Ok(()),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(ApiError::invalid(
            "triggerEventId",
            format!("no trigger `{id}`"),
        )),
        Err(e) => Err(e),
    }
}

impl Validate for CreateAutomation {
    fn validate(&self) -> Result<(), ApiError> {
        check_len("name", &self.name, 1, NAME_MAX)?;
        check_len("triggerEventId", &self.trigger_event_id, 1, MAX_ID_LEN)?;
        if let Some(d) = &self.description {
            check_len("description", d, 0, triggers::DESCRIPTION_MAX)?;
        }
        check_graph(&self.nodes, &self.connections)
    }
}

impl Validate for PatchAutomation {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(name) = &self.name {
            check_len("name", name, 1, NAME_MAX)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, 0, triggers::DESCRIPTION_MAX)?;
        }
        if let Some(id) = &self.trigger_event_id {
            check_len("triggerEventId", id, 1, MAX_ID_LEN)?;
        }
        // The graph's structure is checked once the stored half of it is known.
        check_sizes(
            self.nodes.as_deref().unwrap_or_default(),
            self.connections.as_deref().unwrap_or_default(),
        )
    }
}

/// Creates an unpublished automation bound to a trigger.
#[utoipa::path(post, operation_id = "createAutomation", path = "/v1/automations", tag = "automations",
    request_body = CreateAutomation,
    responses(
        (status = 201, description = "The automation", body = Automation),
        (status = 400, description = "Invalid request or graph (`AUTOMATION_GRAPH_INVALID`)", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn create(
    Json(input): Json<CreateAutomation>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    check_trigger(&state, &org, &input.trigger_event_id).await?;
    let now = state.clock.now_ms();
    let automation = AutomationRow {
        id: ids::new_id(ids::AUTOMATION),
        org_id: org.0,
        trigger_id: input.trigger_event_id,
        name: input.name,
        description: input.description,
        nodes: to_json(&input.nodes)?,
        edges: to_json(&input.connections)?,
        version: 1,
        published: false,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_automation(&automation).await?;
    Ok(HttpResponse::Created().json(render(&automation)?))
}

#[utoipa::path(get, operation_id = "listAutomations", path = "/v1/automations", tag = "automations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of automations", body = List<Automation>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_automations(
            &org.0,
            q.trigger_event_id.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |a| &a.id, render)?))
}

async fn find(state: &State, org: &Org, id: &str) -> Result<AutomationRow, ApiError> {
    state
        .store
        .get_automation(&org.0, id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("NO_SUCH_AUTOMATION", format!("no automation `{id}`"))
                .with_param("automationId")
        })
}

#[utoipa::path(get, operation_id = "getAutomation", path = "/v1/automations/{id}", tag = "automations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The automation", body = Automation),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such automation in this org", body = ErrorEnvelope),
    ),
)]
pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(render(&find(&state, &org, &path).await?)?))
}

/// Either edits the graph (a new version) or publishes / unpublishes, not both at once.
#[utoipa::path(patch, operation_id = "updateAutomation", path = "/v1/automations/{id}", tag = "automations",
    params(("id" = String, Path)),
    request_body = PatchAutomation,
    responses(
        (status = 200, description = "The automation", body = Automation),
        (status = 400, description = "Invalid request or graph", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such automation in this org", body = ErrorEnvelope),
    ),
)]
pub async fn patch(
    path: web::Path<String>,
    Json(input): Json<PatchAutomation>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let mut automation = find(&state, &org, &path).await?;
    let edits_graph = input.name.is_some()
        || input.description.is_some()
        || input.trigger_event_id.is_some()
        || input.nodes.is_some()
        || input.connections.is_some();
    match (edits_graph, input.published) {
        (true, Some(_)) => {
            return Err(ApiError::invalid(
                "published",
                "set `published` on its own, not with graph edits",
            ))
        }
        (false, None) => return Err(ApiError::invalid("body", "nothing to change")),
        (false, Some(published)) => automation.published = published,
        (true, None) => {
            if let Some(name) = input.name {
                automation.name = name;
            }
            if let Some(description) = input.description {
                automation.description = Some(description);
            }
            let nodes = match input.nodes {
                Some(nodes) => nodes,
                None => stored("nodes", &automation.id, &automation.nodes)?,
            };
            let edges = match input.connections {
                Some(edges) => edges,
                None => stored("edges", &automation.id, &automation.edges)?,
            };
            check_graph(&nodes, &edges)?;
            if let Some(trigger_id) = input.trigger_event_id {
                check_trigger(&state, &org, &trigger_id).await?;
                automation.trigger_id = trigger_id;
            }
            automation.nodes = to_json(&nodes)?;
            automation.edges = to_json(&edges)?;
            automation.version += 1;
        }
    }
    automation.updated_at = state.clock.now_ms();
    state.store.update_automation(&automation).await?;
    Ok(HttpResponse::Ok().json(render(&automation)?))
}

#[utoipa::path(get, operation_id = "listRuns", path = "/v1/automations/runs", tag = "runs",
    params(RunQuery),
    responses(
        (status = 200, description = "A page of runs, newest first", body = List<Run>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list_runs(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: RunQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let filter = RunFilter {
        run_id: q.automation_run_id.as_deref(),
        automation_id: q.automation_id.as_deref(),
        trigger_id: q.trigger_event_id.as_deref(),
        status: q.status.map(RunStatus::as_str),
    };
    let rows = state
        .store
        .list_runs(&org.0, &filter, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |r| &r.id, render_run)?))
}

/// Every recorded fire, with its outcome and the runs it started.
#[utoipa::path(get, operation_id = "listTriggerInstances", path = "/v1/trigger-instances", tag = "runs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of fires", body = List<TriggerInstance>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list_trigger_instances(
    req: HttpRequest,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_trigger_instances(
            &org.0,
            q.trigger_event_id.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |t| &t.id, render_instance)?))
}
