//! `/v1/webhook-subscriptions`: where firehook sends outbound webhooks, and the event
//! types it sends.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{ApiError, ErrorEnvelope, ErrorType};
use super::page::{List, Pagination};
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::EventType;
use crate::ids;
use crate::outbound::{guard, sign};
use crate::store::{example_message, SubscriptionRow};

pub const DESCRIPTION_MAX: usize = 2000;
/// How long messages stay signed with the secret a rotation replaced.
const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"url": "https://example.com/hooks/firehook", "events": ["trigger.fired"]}))]
pub struct CreateSubscription {
    /// `https://` or `http://`; private and loopback addresses are refused.
    url: String,
    /// `["*"]` (the default), or event types; `[]` pauses delivery.
    #[serde(default = "every_event")]
    events: Vec<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchSubscription {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

fn every_event() -> Vec<String> {
    vec!["*".into()]
}

/// `["*"]`, or known event types; `[]` pauses delivery.
fn check_events(events: &[String]) -> Result<(), ApiError> {
    for (i, event) in events.iter().enumerate() {
        if event != "*" && event.parse::<EventType>().is_err() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!(
                    "unknown event type `{event}`; use \"*\" or one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ApiError> {
    guard::parse(url)
        .map(|_| ())
        .map_err(|e| ApiError::invalid("url", e.to_string()))
}

impl Validate for CreateSubscription {
    fn validate(&self) -> Result<(), ApiError> {
        check_url(&self.url)?;
        check_events(&self.events)?;
        if let Some(d) = &self.description {
            check_len("description", d, 0, DESCRIPTION_MAX)?;
        }
        Ok(())
    }
}

impl Validate for PatchSubscription {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(url) = &self.url {
            check_url(url)?;
        }
        if let Some(events) = &self.events {
            check_events(events)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, 0, DESCRIPTION_MAX)?;
        }
        Ok(())
    }
}

/// Refuses URLs that reach the gateway's own network, unless configured otherwise.
async fn check_reachable(state: &State, url: &str) -> Result<(), ApiError> {
    if state.settings.outbound.allow_private_urls {
        return Ok(());
    }
    let url = guard::parse(url).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    guard::check(&url).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequest,
            "URL_NOT_ALLOWED",
            e.to_string(),
        )
        .with_param("url")
    })
}

/// The events filter as stored: deduplicated, in the order given.
fn events_json(events: &[String]) -> String {
    let mut unique: Vec<&str> = vec![];
    for e in events {
        if !unique.contains(&e.as_str()) {
            unique.push(e);
        }
    }
    json!(unique).to_string()
}

/// A subscription as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    subscription_id: String,
    url: String,
    events: Vec<String>,
    description: Option<String>,
    enabled: bool,
    /// `whsec_...`: in the create and rotate-secret responses only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDeleted {
    subscription_id: String,
    deleted: bool,
}

/// An event type with an example message.
#[derive(Serialize, ToSchema)]
pub struct EventTypeInfo {
    #[serde(rename = "type")]
    kind: EventType,
    description: &'static str,
    #[schema(value_type = Object)]
    example: Value,
}

/// The subscription as the API shows it; never its secret.
fn render(s: &SubscriptionRow) -> Subscription {
    Subscription {
        subscription_id: s.id.clone(),
        url: s.url.clone(),
        events: serde_json::from_str(&s.events).unwrap_or_default(),
        description: s.description.clone(),
        enabled: s.enabled,
        secret: None,
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
    }
}

/// The subscription with its new secret: the one time the secret is shown.
fn render_with_secret(s: &SubscriptionRow) -> Subscription {
    Subscription {
        secret: Some(s.secret.clone()),
        ..render(s)
    }
}

/// Subscribes an endpoint to firehook's events; the response shows its signing secret once.
#[utoipa::path(post, operation_id = "createSubscription", path = "/v1/webhook-subscriptions", tag = "outbound",
    request_body = CreateSubscription,
    responses(
        (status = 201, description = "The subscription, with `secret`", body = Subscription),
        (status = 400, description = "Invalid request or `URL_NOT_ALLOWED`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn create(
    Json(input): Json<CreateSubscription>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    check_reachable(&state, &input.url).await?;
    let now = state.clock.now_ms();
    let subscription = SubscriptionRow {
        id: ids::new_id(ids::SUBSCRIPTION),
        org_id: org.0,
        url: input.url,
        events: events_json(&input.events),
        description: input.description,
        enabled: input.enabled.unwrap_or(true),
        secret: sign::new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_subscription(&subscription).await?;
    Ok(HttpResponse::Created().json(render_with_secret(&subscription)))
}

#[utoipa::path(get, operation_id = "listSubscriptions", path = "/v1/webhook-subscriptions", tag = "outbound",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of subscriptions", body = List<Subscription>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_subscriptions(&org.0, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |s| &s.id, |s| Ok(render(s)))?))
}

async fn find(state: &State, org: &Org, id: &str) -> Result<SubscriptionRow, ApiError> {
    state
        .store
        .get_subscription(&org.0, id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("SUBSCRIPTION_NOT_FOUND", format!("no subscription `{id}`"))
                .with_param("subscriptionId")
        })
}

#[utoipa::path(get, operation_id = "getSubscription", path = "/v1/webhook-subscriptions/{id}", tag = "outbound",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such subscription in this org", body = ErrorEnvelope),
    ),
)]
pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(render(&find(&state, &org, &path).await?)))
}

#[utoipa::path(patch, operation_id = "updateSubscription", path = "/v1/webhook-subscriptions/{id}", tag = "outbound",
    params(("id" = String, Path)),
    request_body = PatchSubscription,
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 400, description = "Invalid request or `URL_NOT_ALLOWED`", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such subscription in this org", body = ErrorEnvelope),
    ),
)]
pub async fn patch(
    path: web::Path<String>,
    Json(input): Json<PatchSubscription>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let mut subscription = find(&state, &org, &path).await?;
    if let Some(url) = input.url {
        check_reachable(&state, &url).await?;
        subscription.url = url;
    }
    if let Some(events) = input.events {
        subscription.events = events_json(&events);
    }
    if let Some(description) = input.description {
        subscription.description = Some(description);
    }
    if let Some(enabled) = input.enabled {
        subscription.enabled = enabled;
    }
    subscription.updated_at = state.clock.now_ms();
    state.store.update_subscription(&subscription).await?;
    Ok(HttpResponse::Ok().json(render(&subscription)))
}

#[utoipa::path(delete, operation_id = "deleteSubscription", path = "/v1/webhook-subscriptions/{id}", tag = "outbound",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = SubscriptionDeleted),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such subscription in this org", body = ErrorEnvelope),
    ),
)]
pub async fn delete(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let subscription = find(&state, &org, &path).await?;
    state
        .store
        .delete_subscription(&org.0, &subscription.id, state.clock.now_ms())
        .await?;
    Ok(HttpResponse::Ok().json(SubscriptionDeleted {
        subscription_id: subscription.id,
        deleted: true,
    }))
}

/// A new secret, shown once; the one it replaces keeps signing for a day, so receivers can
/// switch without losing a message.
#[utoipa::path(post, operation_id = "rotateSubscriptionSecret", path = "/v1/webhook-subscriptions/{id}/rotate-secret", tag = "outbound",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription, with its new `secret`", body = Subscription),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such subscription in this org", body = ErrorEnvelope),
    ),
)]
pub async fn rotate_secret(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let mut subscription = find(&state, &org, &path).await?;
    let now = state.clock.now_ms();
    subscription.previous_secret = Some(std::mem::replace(
        &mut subscription.secret,
        sign::new_secret(),
    ));
    subscription.previous_expires_at = Some(now + ROTATION_OVERLAP_MS);
    subscription.updated_at = now;
    state.store.update_subscription(&subscription).await?;
    Ok(HttpResponse::Ok().json(render_with_secret(&subscription)))
}

/// Public knowledge, but like every `/v1` route it takes an API key.
#[utoipa::path(get, operation_id = "listEventTypes", path = "/v1/webhook-subscriptions/event-types", tag = "outbound",
    responses(
        (status = 200, description = "Every event type with an example message", body = List<EventTypeInfo>),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn event_types(_org: Org) -> HttpResponse {
    let data: Vec<EventTypeInfo> = EventType::ALL
        .iter()
        .map(|&ty| EventTypeInfo {
            kind: ty,
            description: describe(ty),
            example: example_message(ty),
        })
        .collect();
    let count = data.len() as u32;
    HttpResponse::Ok().json(List {
        data,
        pagination: Pagination {
            limit: count,
            cursor: None,
            has_more: false,
        },
    })
}

fn describe(ty: EventType) -> &'static str {
    match ty {
        EventType::TriggerFired => "A trigger fired (API call or verified integration delivery); `payload` is the resolved flat record, `event` the provider's event name (null for API fires).",
        EventType::RunQueued => "A fire queued a run of a published automation; one event per run.",
        EventType::ContactCreated => "A fire created a contact; `data` is the contact.",
        EventType::ContactUpdated => "A fire updated an existing contact; `data` is the contact as it is now.",
        EventType::DeliveryRejected => "A request on a receive URL was refused (bad signature or token, timestamp outside tolerance).",
    }
}
