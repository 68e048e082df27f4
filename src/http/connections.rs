//! `/v1/integrations/connections`: a receive URL per connection, its secrets, and the
//! triggers it provisions.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use adapters::{Provider, Scheme, SecretKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body::{self, check_len, Json, Validate};
use super::error::{stored, ApiError, ErrorEnvelope, ErrorType};
use super::page::List;
use super::triggers::Trigger;
use super::{page, triggers, State};
use crate::clock::rfc3339;
use crate::domain::TriggerStatus;
use crate::domain::{integration_trigger_id, DeliveryStatus};
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "clerk", "name": "Production", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}))]
pub struct CreateConnection {
    /// A provider's slug: `clerk`, `stripe`, `shopify`, `supabase`, `generic`, ...
    provider: String,
    #[schema(min_length = 1, max_length = 120)]
    name: Option<String>,
    /// The signing secrets the provider's dashboard shows; token providers get one minted.
    /// A `whsec_` Svix secret decodes to at least 24 bytes; other secrets have at least 16
    /// characters.
    #[schema(max_items = 10)]
    secrets: Option<Vec<String>>,
    /// Provider options, such as `events` for the generic and standard receivers.
    #[schema(value_type = Option<Object>)]
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchConnection {
    enabled: Option<bool>,
    #[schema(min_length = 1, max_length = 120)]
    name: Option<String>,
    /// Another active secret (rotation: any active secret verifies), as long as `secrets`
    /// requires.
    add_secret: Option<String>,
    /// A `sec_...` id; the last active secret cannot be removed alone.
    remove_secret_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    options: Option<Map<String, Value>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

fn receive_url(state: &State, c: &ConnectionRow) -> String {
    format!(
        "{}/api/integrations/{}/webhook/{}",
        state.public_url, c.provider, c.id
    )
}

/// A connection as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    connection_id: String,
    provider: String,
    name: String,
    enabled: bool,
    /// Where the provider posts its webhooks.
    receive_url: String,
    #[schema(value_type = Object)]
    options: Value,
    /// The active secrets, as ids and hints only.
    secrets: Vec<SecretHint>,
    /// The triggers it provisions (on create and get-one).
    #[serde(skip_serializing_if = "Option::is_none")]
    triggers: Option<Vec<Trigger>>,
    /// What arrived lately, from the delivery log.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
    /// A minted token (token providers), in the create response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    created_at: String,
    updated_at: String,
}

/// What a connection received lately (within the delivery log's retention).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    last_delivery_at: Option<String>,
    last_triggered_at: Option<String>,
    last_rejected_at: Option<String>,
    last_reject_reason: Option<String>,
    /// The last delivery whose signature or token verified.
    last_verified_at: Option<String>,
    /// Deliveries of the last 24 hours by status.
    #[schema(example = json!({"triggered": 12, "rejected": 1}))]
    last24h: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretHint {
    secret_id: String,
    /// The secret's last four characters (absent when the secret is too short to hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    created_at: String,
    /// When a delivery last verified with this secret (so an old one can be removed).
    last_verified_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    connection_id: String,
    deleted: bool,
}

fn render(
    state: &State,
    c: &ConnectionRow,
    secrets: &[SecretRow],
    triggers: Option<&[TriggerRow]>,
) -> Result<Connection, ApiError> {
    let triggers = match triggers {
        Some(rows) => Some(
            rows.iter()
                .map(triggers::render)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    Ok(Connection {
        connection_id: c.id.clone(),
        provider: c.provider.clone(),
        name: c.name.clone(),
        enabled: c.enabled,
        receive_url: receive_url(state, c),
        options: stored("options", &c.id, &c.options)?,
        secrets: secrets
            .iter()
            .map(|s| SecretHint {
                secret_id: s.id.clone(),
                hint: (!s.hint.is_empty()).then(|| s.hint.clone()),
                created_at: rfc3339(s.created_at),
                last_verified_at: s.last_verified_at.map(rfc3339),
            })
            .collect(),
        triggers,
        health: None,
        secret: None,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
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
            id: integration_trigger_id(provider, &connection.id, &event),
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

/// Creates a connection: its receive URL, secrets and one trigger per provider event.
#[utoipa::path(post, operation_id = "createConnection", path = "/v1/integrations/connections", tag = "connections",
    request_body = CreateConnection,
    responses(
        (status = 201, description = "The connection (with `secret` once, for minted tokens)", body = Connection),
        (status = 400, description = "Invalid request", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
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
    out.health = Some(health(&state, &new.connection.id).await?);
    if let Some(token) = minted {
        // Shown once: only its hint is ever returned again.
        if provider.scheme() == Scheme::UrlToken {
            out.receive_url = format!("{}?token={token}", out.receive_url);
        }
        out.secret = Some(token);
    }
    Ok(HttpResponse::Created().json(out))
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// `health`: the latest deliveries and the last 24 hours' counts, from the delivery log
/// (so within `retention.deliveries_days`). `lastVerifiedAt` is the connection's; each
/// secret carries its own.
async fn health(state: &State, connection_id: &str) -> Result<Health, ApiError> {
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
    Ok(Health {
        last_delivery_at: latest(&[
            Triggered,
            NoPublishedAutomation,
            Ignored,
            Duplicate,
            Rejected,
        ]),
        last_triggered_at: latest(&[Triggered]),
        last_rejected_at: latest(&[Rejected]),
        last_reject_reason: health.last_reject_reason.clone(),
        last_verified_at: latest(&verified),
        last24h: health
            .by_status
            .iter()
            .map(|(status, _, recent)| (status.as_str().to_owned(), *recent))
            .collect(),
    })
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

async fn render_full(state: &State, org: &Org, c: &ConnectionRow) -> Result<Connection, ApiError> {
    let secrets = state.store.active_secrets(&c.id).await?;
    let triggers = state
        .store
        .list_triggers(&org.0, None, Some(&c.id), None, page::MAX_LIMIT)
        .await?;
    let mut out = render(state, c, &secrets, Some(&triggers.rows))?;
    out.health = Some(health(state, &c.id).await?);
    Ok(out)
}

#[utoipa::path(get, operation_id = "getConnection", path = "/v1/integrations/connections/{id}", tag = "connections",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The connection", body = Connection),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such connection in this org", body = ErrorEnvelope),
    ),
)]
pub async fn get(
    path: web::Path<String>,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let connection = find(&state, &org, &path).await?;
    Ok(HttpResponse::Ok().json(render_full(&state, &org, &connection).await?))
}

#[utoipa::path(get, operation_id = "listConnections", path = "/v1/integrations/connections", tag = "connections",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of connections", body = List<Connection>),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
    ),
)]
pub async fn list(req: HttpRequest, state: State, org: Org) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = body::query(&req)?;
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_connections(&org.0, after.as_deref(), limit)
        .await?;
    let mut healths: HashMap<String, Health> = HashMap::new();
    for c in &rows.rows {
        healths.insert(c.id.clone(), health(&state, &c.id).await?);
    }
    Ok(HttpResponse::Ok().json(page::list(
        rows,
        limit,
        |c| &c.id,
        |c| {
            let mut out = render(&state, c, &[], None)?;
            out.health = healths.remove(&c.id);
            Ok(out)
        },
    )?))
}

/// Enables or disables a connection, renames it, adds or removes a secret.
#[utoipa::path(patch, operation_id = "updateConnection", path = "/v1/integrations/connections/{id}", tag = "connections",
    params(("id" = String, Path)),
    request_body = PatchConnection,
    responses(
        (status = 200, description = "The connection", body = Connection),
        (status = 400, description = "Invalid request", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such connection or secret", body = ErrorEnvelope),
        (status = 409, description = "`LAST_SECRET`", body = ErrorEnvelope),
    ),
)]
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

/// Deletes a connection; its triggers stop firing, past fires stay.
#[utoipa::path(delete, operation_id = "deleteConnection", path = "/v1/integrations/connections/{id}", tag = "connections",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "No such connection in this org", body = ErrorEnvelope),
    ),
)]
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
    Ok(HttpResponse::Ok().json(Deleted {
        connection_id: connection.id,
        deleted: true,
    }))
}
