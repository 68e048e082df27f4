//! `POST /api/integrations/{provider}/webhook/{connectionId}`: verify, map, fire.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use adapters::{Action, ContactRecord, Headers, Inbound, MapError, Provider, Secret};
use moka::future::Cache;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorType};
use super::trigger_cache::live_trigger;
use super::State;
use crate::pipeline::contact::normalize_email;
use crate::pipeline::schema::PayloadSchema;
use crate::pipeline::{FireRequest, Fired};
use crate::store::{
    ConnectionRow, FireMode, OUTCOME_IGNORED, OUTCOME_NO_PUBLISHED, OUTCOME_TRIGGERED,
};

/// A live connection and its active secrets, as deliveries need them.
pub struct LiveConnection {
    row: ConnectionRow,
    provider: Provider,
    secrets: Vec<Secret>,
    options: Value,
}

/// Connection id -> live connection (or `None`: unknown). Edits in this process invalidate
/// their entry; other processes see them within the time to live.
pub type ConnectionCache = Cache<String, Option<Arc<LiveConnection>>>;

pub fn connection_cache() -> ConnectionCache {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(5))
        .build()
}

async fn load(state: &State, id: &str) -> Result<Option<Arc<LiveConnection>>, ApiError> {
    let store = &state.store;
    let loaded = state
        .connections
        .try_get_with(id.to_owned(), async {
            let Some(row) = store.find_connection(id).await? else {
                return Ok::<_, sqlx::Error>(None);
            };
            let Some(provider) = Provider::from_slug(&row.provider) else {
                return Ok(None);
            };
            let secrets = store
                .active_secrets(id)
                .await?
                .into_iter()
                .map(|s| Secret::new(s.secret))
                .collect();
            let options = serde_json::from_str(&row.options).unwrap_or_else(|_| json!({}));
            Ok(Some(Arc::new(LiveConnection {
                row,
                provider,
                secrets,
                options,
            })))
        })
        .await;
    loaded.map_err(|e| ApiError::internal(e.to_string()))
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "CONNECTION_NOT_FOUND",
        "no enabled connection at this receive URL",
    )
}

fn received(status: &str, event: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("received".into(), json!(true));
    out.insert("status".into(), json!(status));
    out.insert("event".into(), json!(event));
    out.insert("automationRunIds".into(), json!([]));
    out
}

pub async fn receive(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let (provider_slug, connection_id) = path.into_inner();
    let connection = load(&state, &connection_id).await?.ok_or_else(not_found)?;
    if connection.row.provider != provider_slug || !connection.row.enabled {
        return Err(not_found());
    }
    let provider = connection.provider;
    let body = super::body::read(&req, payload, state.settings.server.max_body_bytes).await?;

    let mut headers = Headers::new();
    for (name, value) in req.headers() {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str(), value);
        }
    }
    let inbound = Inbound {
        headers: &headers,
        body: &body,
        query: Some(req.query_string()),
    };
    let now_ms = state.clock.now_ms();
    let verified = adapters::verify(provider, &inbound, &connection.secrets, now_ms.div_euclid(1000)).map_err(|e| {
        tracing::warn!(provider = provider.slug(), connection = %connection_id, reason = e.reason(), "delivery rejected");
        state.metrics.verification_failures.with_label_values(&[provider.slug(), e.reason()]).inc();
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorType::Authentication, "INVALID_SIGNATURE", e.to_string())
    })?;
    let delivery = adapters::map(&verified, &connection.options, now_ms.div_euclid(1000)).map_err(
        |e| match e {
            MapError::InvalidJson(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequest,
                "INVALID_JSON",
                e.to_string(),
            ),
            MapError::MissingEvent(field) => ApiError::invalid(field, e.to_string()),
        },
    )?;

    let org_id = connection.row.org_id.clone();
    let request_hash = hex::encode(Sha256::digest(&body));
    // A provider's retry is answered from memory before any further work.
    let key = (connection_id.as_str(), delivery.dedupe_id.as_str());
    if let Some(earlier) = state.pipeline.remembered(&org_id, key, &request_hash).await {
        return Ok(duplicate(&state, provider, &delivery.event, &earlier));
    }

    let trigger_id = format!("{}:{}:{}", provider.slug(), connection_id, delivery.event);
    let trigger = live_trigger(&state, &org_id, &trigger_id).await?;
    let (mode, email, payload) = match (&delivery.action, &trigger) {
        (Action::Ignore(reason), _) => (FireMode::Ignore(reason.clone()), None, Default::default()),
        (Action::Fire(_), None) => (
            FireMode::Ignore("event_not_mapped".into()),
            None,
            Default::default(),
        ),
        (Action::Fire(_), Some(t)) if !t.enabled => (
            FireMode::Ignore("trigger_disabled".into()),
            None,
            Default::default(),
        ),
        (Action::Fire(record), Some(t)) => resolve(&state, &org_id, record, &t.schema).await?,
    };
    let identities = match &mode {
        FireMode::Run => provider
            .identity_fields()
            .iter()
            .filter_map(|f| {
                payload
                    .get(*f)
                    .and_then(Value::as_str)
                    .map(|v| ((*f).to_owned(), v.to_owned()))
            })
            .collect(),
        _ => vec![],
    };
    let fired = state
        .pipeline
        .fire(FireRequest {
            org_id,
            trigger_id: trigger_id.clone(),
            source: provider.slug().into(),
            key: Some((connection_id, delivery.dedupe_id.clone())),
            request_hash,
            mode: mode.clone(),
            contact_email: email,
            identities,
            payload,
            warnings: vec![],
            release_key_without_runs: false,
        })
        .await?;

    if fired.replay.is_some() {
        return Ok(duplicate(&state, provider, &delivery.event, &fired));
    }
    state
        .metrics
        .fires
        .with_label_values(&[provider.slug(), &fired.outcome])
        .inc();
    let status = match fired.outcome.as_str() {
        OUTCOME_TRIGGERED => "triggered",
        OUTCOME_NO_PUBLISHED => "no_published_automation",
        OUTCOME_IGNORED => "ignored",
        other => {
            return Err(ApiError::internal(format!(
                "unexpected fire outcome {other}"
            )))
        }
    };
    let mut out = received(status, &delivery.event);
    if let FireMode::Ignore(reason) = &mode {
        out.insert("reason".into(), json!(reason));
    } else {
        out.insert("triggerEventId".into(), json!(trigger_id));
        out.insert("triggerInstanceId".into(), json!(fired.instance_id));
        out.insert("automationRunIds".into(), json!(fired.run_ids));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The answer to a delivery whose event id was seen before: the earlier fire's instance.
fn duplicate(state: &State, provider: Provider, event: &str, earlier: &Fired) -> HttpResponse {
    state
        .metrics
        .duplicates
        .with_label_values(&[provider.slug()])
        .inc();
    let mut out = received("duplicate", event);
    out.insert("triggerInstanceId".into(), json!(earlier.instance_id));
    HttpResponse::Ok().json(out)
}

/// Finds the contact a record is about and checks the record against the trigger's schema.
async fn resolve(
    state: &State,
    org_id: &str,
    record: &ContactRecord,
    schema: &PayloadSchema,
) -> Result<(FireMode, Option<String>, serde_json::Map<String, Value>), ApiError> {
    let ignore = |reason: &str| Ok((FireMode::Ignore(reason.into()), None, Default::default()));
    let email = match (&record.email, &record.lookup) {
        (Some(raw), _) => normalize_email(raw),
        (None, Some((field, value))) => {
            state
                .store
                .find_contact_by_identity(org_id, field, value)
                .await?
        }
        (None, None) => None,
    };
    let Some(email) = email else {
        return ignore(if record.lookup.is_some() {
            "contact_not_found"
        } else {
            "no_email"
        });
    };
    let mut fields = record.fields.clone();
    fields.insert("email".into(), json!(email));
    match schema.resolve(&fields) {
        Ok(resolved) => Ok((FireMode::Run, Some(email), resolved.values)),
        Err(_) => ignore("payload_mismatch"),
    }
}
