//! `/v1/webhook-subscriptions`: where firehook sends outbound webhooks, and the event
//! types it sends.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{ApiError, ErrorType};
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::EventType;
use crate::ids;
use crate::outbound::{guard, sign};
use crate::store::{example_message, SubscriptionRow};

pub const DESCRIPTION_MAX: usize = 2000;
/// How long messages stay signed with the secret a rotation replaced.
const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSubscription {
    url: String,
    #[serde(default = "every_event")]
    events: Vec<String>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchSubscription {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
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

/// The subscription as the API shows it; never its secret.
fn render(s: &SubscriptionRow) -> Value {
    json!({
        "subscriptionId": s.id,
        "url": s.url,
        "events": serde_json::from_str::<Value>(&s.events).unwrap_or_else(|_| json!([])),
        "description": s.description,
        "enabled": s.enabled,
        "createdAt": rfc3339(s.created_at),
        "updatedAt": rfc3339(s.updated_at),
    })
}

/// The subscription with its new secret: the one time the secret is shown.
fn render_with_secret(s: &SubscriptionRow) -> Value {
    let mut body = render(s);
    body["secret"] = json!(s.secret);
    body
}

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

pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(render(&find(&state, &org, &path).await?)))
}

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
    Ok(HttpResponse::Ok().json(json!({"subscriptionId": subscription.id, "deleted": true})))
}

/// A new secret, shown once; the one it replaces keeps signing for a day, so receivers can
/// switch without losing a message.
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
pub async fn event_types(_org: Org) -> HttpResponse {
    let data: Vec<Value> = EventType::ALL
        .iter()
        .map(|&ty| json!({"type": ty, "description": describe(ty), "example": example_message(ty)}))
        .collect();
    let count = data.len();
    HttpResponse::Ok().json(json!({
        "data": data,
        "pagination": {"limit": count, "cursor": null, "hasMore": false},
    }))
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
