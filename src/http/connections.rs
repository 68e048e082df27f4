//! `/v1/integrations/connections`: a receive URL per connection, its secrets, and the
//! triggers it provisions.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use adapters::{Provider, Scheme, SecretKind};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{stored, ApiError, ErrorType};
use super::{page, triggers, State};
use crate::clock::rfc3339;
use crate::domain::DeliveryStatus;
use crate::domain::TriggerStatus;
use crate::ids;
use crate::store::{ConnectionEdit, ConnectionRow, NewConnection, SecretRow, TriggerRow};

const NAME_MAX: usize = 120;
const MAX_SECRETS: usize = 10;
const MAX_SECRET_LEN: usize = 1024;
const MAX_EVENTS: usize = 100;
/// A connection's `options`, serialized.
const MAX_OPTIONS_BYTES: usize = 16 * 1024;
/// Secrets shorter than this show no hint: four characters would give too much away.
const HINT_MIN_SECRET_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    provider: String,
    name: Option<String>,
    secrets: Option<Vec<String>>,
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchConnection {
    enabled: Option<bool>,
    name: Option<String>,
    add_secret: Option<String>,
    remove_secret_id: Option<String>,
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

fn receive_url(state: &State, c: &ConnectionRow) -> String {
    format!(
        "{}/api/integrations/{}/webhook/{}",
        state.public_url, c.provider, c.id
    )
}

fn render(
    state: &State,
    c: &ConnectionRow,
    secrets: &[SecretRow],
    triggers: Option<&[TriggerRow]>,
) -> Result<Value, ApiError> {
    let secrets: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let mut secret = json!({
                "secretId": s.id,
                "createdAt": rfc3339(s.created_at),
                "lastVerifiedAt": s.last_verified_at.map(rfc3339),
            });
            if !s.hint.is_empty() {
                secret["hint"] = json!(s.hint);
            }
            secret
        })
        .collect();
    let mut out = json!({
        "connectionId": c.id,
        "provider": c.provider,
        "name": c.name,
        "enabled": c.enabled,
        "receiveUrl": receive_url(state, c),
        "options": stored::<Value>("options", &c.id, &c.options)?,
        "secrets": secrets,
        "createdAt": rfc3339(c.created_at),
        "updatedAt": rfc3339(c.updated_at),
    });
    if let Some(triggers) = triggers {
        let rendered = triggers
            .iter()
            .map(triggers::render)
            .collect::<Result<Vec<_>, _>>()?;
        out["triggers"] = json!(rendered);
    }
    Ok(out)
}

fn new_secret(connection_id: &str, secret: String, now: i64) -> SecretRow {
    let hint = if secret.chars().count() < HINT_MIN_SECRET_LEN {
        String::new()
    } else {
        let tail: Vec<char> = secret.chars().rev().take(4).collect();
        tail.into_iter().rev().collect()
    };
    SecretRow {
        id: ids::new_id(ids::SECRET),
        connection_id: connection_id.into(),
        secret,
        hint,
        created_at: now,
        last_verified_at: None,
    }
}

fn check_secret(provider: Provider, param: &str, secret: &str) -> Result<(), ApiError> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(ApiError::invalid(
            param,
            format!("a secret is at most {MAX_SECRET_LEN} bytes"),
        ));
    }
    provider
        .validate_secret(secret)
        .map_err(|why| ApiError::invalid(param, why))
}

fn mint_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("fhwt_{}", hex::encode(bytes))
}

/// Checks a connection's options and returns them with the events they provision.
fn checked_options(
    provider: Provider,
    options: Map<String, Value>,
) -> Result<(Value, Vec<(String, String)>), ApiError> {
    if let Some(path) = options.get("emailPath") {
        if !path
            .as_str()
            .is_some_and(|p| !p.is_empty() && p.len() <= 200)
        {
            return Err(ApiError::invalid(
                "options.emailPath",
                "must be a dotted path such as `data.to`",
            ));
        }
    }
    let options = Value::Object(options);
    if options.to_string().len() > MAX_OPTIONS_BYTES {
        return Err(ApiError::invalid(
            "options",
            format!("options are at most {MAX_OPTIONS_BYTES} bytes of JSON"),
        ));
    }
    provider
        .validate_options(&options)
        .map_err(|why| ApiError::invalid("options", why))?;
    let events = provisioned_events(provider, &options)?;
    Ok((options, events))
}

/// The events a connection provisions: the provider's own list (and what its options
/// add), or `options.events` for the generic and standard receivers.
fn provisioned_events(
    provider: Provider,
    options: &Value,
) -> Result<Vec<(String, String)>, ApiError> {
    let builtin = provider.events_for(options);
    if !builtin.is_empty() {
        return Ok(builtin
            .iter()
            .map(|e| (e.name.to_string(), e.provider_key.to_string()))
            .collect());
    }
    let Some(events) = options.get("events") else {
        return Ok(vec![]);
    };
    let list = events
        .as_array()
        .ok_or_else(|| ApiError::invalid("options.events", "must be an array of event names"))?;
    if list.len() > MAX_EVENTS {
        return Err(ApiError::invalid(
            "options.events",
            format!("at most {MAX_EVENTS} events"),
        ));
    }
    list.iter()
        .map(|e| {
            let name = e.as_str().filter(|s| {
                !s.is_empty()
                    && s.len() <= 100
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
            });
            name.map(|n| (n.replace('/', "."), n.to_owned()))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "options.events",
                        "event names are 1-100 characters of letters, digits and . _ - / :",
                    )
                })
        })
        .collect()
}

/// The flat record's schema: a required email, optional names, the provider's fields.
fn record_schema(provider: Provider) -> Value {
    let mut fields = vec![
        json!({"key": "email", "type": "string", "required": true}),
        json!({"key": "firstName", "type": "string", "required": false}),
        json!({"key": "lastName", "type": "string", "required": false}),
    ];
    fields.extend(
        provider
            .fields()
            .iter()
            .map(|f| json!({"key": f.key, "type": f.kind.as_str(), "required": false})),
    );
    json!({ "fields": fields })
}

impl Validate for CreateConnection {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(name) = &self.name {
            check_len("name", name, 1, NAME_MAX)?;
        }
        let secrets = self.secrets.as_deref().unwrap_or_default();
        if secrets.len() > MAX_SECRETS {
            return Err(ApiError::invalid(
                "secrets",
                format!("at most {MAX_SECRETS} secrets"),
            ));
        }
        Ok(())
    }
}

impl Validate for PatchConnection {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(name) = &self.name {
            check_len("name", name, 1, NAME_MAX)?;
        }
        Ok(())
    }
}

/// The trigger rows of a connection's events.
fn trigger_rows(
    provider: Provider,
    connection: &ConnectionRow,
    events: Vec<(String, String)>,
    now: i64,
) -> Vec<TriggerRow> {
    let schema = record_schema(provider).to_string();
    events
        .into_iter()
        .map(|(event, key)| TriggerRow {
            id: format!("{}:{}:{}", provider.slug(), connection.id, event),
            org_id: connection.org_id.clone(),
            title: format!("{} {}", provider.slug(), key),
            description: None,
            provider: provider.slug().into(),
            connection_id: Some(connection.id.clone()),
            provider_event_key: Some(key),
            status: TriggerStatus::Enabled,
            payload_schema: schema.clone(),
            created_at: now,
            updated_at: now,
        })
        .collect()
}

pub async fn create(
    Json(input): Json<CreateConnection>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let provider = Provider::from_slug(&input.provider).ok_or_else(|| {
        let known: Vec<&str> = Provider::all().map(Provider::slug).collect();
        ApiError::invalid(
            "provider",
            format!("unknown provider; one of: {}", known.join(", ")),
        )
    })?;
    let name = input.name.unwrap_or_else(|| provider.slug().to_owned());
    let (options, events) = checked_options(provider, input.options.unwrap_or_default())?;
    let mut secrets = input.secrets.unwrap_or_default();
    for (i, secret) in secrets.iter().enumerate() {
        check_secret(provider, &format!("secrets[{i}]"), secret)?;
    }
    let minted = match (secrets.is_empty(), provider.secret_kind()) {
        (true, SecretKind::Minted) => {
            let token = mint_token();
            secrets.push(token.clone());
            Some(token)
        }
        (true, SecretKind::ProviderIssued) => {
            return Err(ApiError::invalid(
                "secrets",
                format!(
                    "{} signs its deliveries: pass the signing secret its dashboard shows",
                    provider.slug()
                ),
            ))
        }
        (false, _) => None,
    };

    let now = state.clock.now_ms();
    let connection = ConnectionRow {
        id: ids::new_id(ids::CONNECTION),
        org_id: org.0.clone(),
        provider: provider.slug().into(),
        name,
        enabled: true,
        options: options.to_string(),
        created_at: now,
        updated_at: now,
    };
    let triggers = trigger_rows(provider, &connection, events, now);
    let secrets: Vec<SecretRow> = secrets
        .into_iter()
        .map(|s| new_secret(&connection.id, s, now))
        .collect();
    let new = NewConnection {
        connection,
        secrets,
        triggers,
    };
    state.store.insert_connection(&new).await?;

    let mut out = render(&state, &new.connection, &new.secrets, Some(&new.triggers))?;
    out["health"] = health(&state, &new.connection.id).await?;
    if let Some(token) = minted {
        // Shown once: only its hint is ever returned again.
        if provider.scheme() == Scheme::UrlToken {
            out["receiveUrl"] = json!(format!(
                "{}?token={token}",
                receive_url(&state, &new.connection)
            ));
        }
        out["secret"] = json!(token);
    }
    Ok(HttpResponse::Created().json(out))
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// `health`: the latest deliveries and the last 24 hours' counts, from the delivery log
/// (so within `retention.deliveries_days`). `lastVerifiedAt` is the connection's; each
/// secret carries its own.
async fn health(state: &State, connection_id: &str) -> Result<Value, ApiError> {
    let health = state
        .store
        .connection_health(connection_id, state.clock.now_ms() - DAY_MS)
        .await?;
    let latest = |wanted: &[DeliveryStatus]| {
        health
            .by_status
            .iter()
            .filter(|(status, _, _)| wanted.contains(status))
            .filter_map(|(_, latest, _)| *latest)
            .max()
            .map(rfc3339)
    };
    use DeliveryStatus::*;
    let verified = [Triggered, NoPublishedAutomation, Ignored, Duplicate];
    let last24h: Map<String, Value> = health
        .by_status
        .iter()
        .map(|(status, _, recent)| (status.as_str().to_owned(), json!(recent)))
        .collect();
    Ok(json!({
        "lastDeliveryAt": latest(&[Triggered, NoPublishedAutomation, Ignored, Duplicate, Rejected]),
        "lastTriggeredAt": latest(&[Triggered]),
        "lastRejectedAt": latest(&[Rejected]),
        "lastRejectReason": health.last_reject_reason,
        "lastVerifiedAt": latest(&verified),
        "last24h": last24h,
    }))
}

async fn find(state: &State, org: &Org, id: &str) -> Result<ConnectionRow, ApiError> {
    state
        .store
        .get_connection(&org.0, id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("NO_SUCH_CONNECTION", format!("no connection `{id}`"))
                .with_param("connectionId")
        })
}

async fn render_full(state: &State, org: &Org, c: &ConnectionRow) -> Result<Value, ApiError> {
    let secrets = state.store.active_secrets(&c.id).await?;
    let triggers = state
        .store
        .list_triggers(&org.0, None, Some(&c.id), None, page::MAX_LIMIT)
        .await?;
    let mut out = render(state, c, &secrets, Some(&triggers.rows))?;
    out["health"] = health(state, &c.id).await?;
    Ok(out)
}

pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let connection = find(&state, &org, &path).await?;
    Ok(HttpResponse::Ok().json(render_full(&state, &org, &connection).await?))
}

pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_connections(&org.0, after.as_deref(), limit)
        .await?;
    let mut healths: HashMap<String, Value> = HashMap::new();
    for c in &rows.rows {
        healths.insert(c.id.clone(), health(&state, &c.id).await?);
    }
    Ok(HttpResponse::Ok().json(page::list(
        rows,
        limit,
        |c| &c.id,
        |c| {
            let mut out = render(&state, c, &[], None)?;
            out["health"] = healths.get(&c.id).cloned().unwrap_or_default();
            Ok(out)
        },
    )?))
}

pub async fn patch(
    path: web::Path<String>,
    Json(input): Json<PatchConnection>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let mut connection = find(&state, &org, &path).await?;
    let provider = Provider::from_slug(&connection.provider).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "connection {} has the unknown provider `{}`",
            connection.id,
            connection.provider
        ))
    })?;
    let now = state.clock.now_ms();
    if let Some(name) = input.name {
        connection.name = name;
    }
    if let Some(enabled) = input.enabled {
        connection.enabled = enabled;
    }
    // New options provision the triggers they add; triggers they no longer name stay,
    // and simply stop being fired.
    let new_triggers = match input.options {
        Some(options) => {
            let (options, events) = checked_options(provider, options)?;
            connection.options = options.to_string();
            trigger_rows(provider, &connection, events, now)
        }
        None => Vec::new(),
    };
    if let Some(secret) = &input.add_secret {
        check_secret(provider, "addSecret", secret)?;
        if state.store.active_secrets(&connection.id).await?.len() >= MAX_SECRETS {
            return Err(ApiError::invalid(
                "addSecret",
                format!("at most {MAX_SECRETS} active secrets"),
            ));
        }
    }
    if let Some(secret_id) = &input.remove_secret_id {
        let active = state.store.active_secrets(&connection.id).await?;
        if !active.iter().any(|s| &s.id == secret_id) {
            return Err(ApiError::not_found(
                "NO_SUCH_SECRET",
                format!("no active secret `{secret_id}`"),
            )
            .with_param("removeSecretId"));
        }
        if active.len() == 1 && input.add_secret.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "LAST_SECRET",
                "a connection keeps at least one active secret: add the new one first",
            )
            .with_param("removeSecretId"));
        }
    }
    let added = input
        .add_secret
        .map(|secret| new_secret(&connection.id, secret, now));
    connection.updated_at = now;
    state
        .store
        .update_connection(&ConnectionEdit {
            connection: &connection,
            add_secret: added.as_ref(),
            remove_secret_id: input.remove_secret_id.as_deref(),
            new_triggers: &new_triggers,
        })
        .await?;
    Ok(HttpResponse::Ok().json(render_full(&state, &org, &connection).await?))
}

pub async fn delete(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let connection = find(&state, &org, &path).await?;
    state
        .store
        .delete_connection(&org.0, &connection.id, state.clock.now_ms())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"connectionId": connection.id, "deleted": true})))
}
