//! `POST /v1/automations/triggers/{id}/fire`: the one endpoint that answers in the fire
//! envelope, success and failure alike.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::{authenticate, AuthError};
use super::body;
use super::error::ApiError;
use super::trigger_cache::live_trigger;
use super::State;
use crate::clock::rfc3339;
use crate::pipeline::contact::normalize_email;
use crate::pipeline::{canonical, FireRequest, Fired, Replay};
use crate::store::{FireMode, OUTCOME_DISABLED, OUTCOME_NO_PUBLISHED, OUTCOME_TRIGGERED};

const MAX_KEY_LEN: usize = 100;

/// The fire envelope under construction.
struct Envelope {
    trigger_id: String,
    received_at: String,
    details: Map<String, Value>,
}

impl Envelope {
    fn answer(
        &self,
        http: StatusCode,
        status: &str,
        code: &str,
        message: impl Into<String>,
    ) -> HttpResponse {
        HttpResponse::build(http).json(json!({
            "success": http.is_success(),
            "status": status,
            "code": code,
            "message": message.into(),
            "triggerEventId": self.trigger_id,
            "receivedAt": self.received_at,
            "details": self.details,
        }))
    }

    fn fail(&self, http: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
        self.answer(http, "failed", code, message)
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.details.insert(key.to_owned(), value.into());
    }

    fn record(&mut self, fired: &Fired) {
        let automations: Vec<Value> = fired
            .automations
            .iter()
            .map(|(id, name)| json!({"automationId": id, "name": name}))
            .collect();
        self.set("triggerInstanceId", fired.instance_id.clone());
        self.set("counts", json!({"automations": automations.len()}));
        self.set("publishedAutomations", automations);
        self.set("automationRunIds", json!(fired.run_ids));
    }
}

pub async fn fire(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let mut env = Envelope {
        trigger_id: path.into_inner(),
        received_at: rfc3339(state.clock.now_ms()),
        details: Map::new(),
    };
    match handle(&req, payload, &state, &mut env).await {
        Ok(response) => response,
        Err(e) => env.answer(e.status, "failed", e.code, e.message),
    }
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    env: &mut Envelope,
) -> Result<HttpResponse, ApiError> {
    let org = match authenticate(req, state).await {
        Ok(org) => org,
        Err(AuthError::Failed(f)) => {
            return Ok(env.answer(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                f.code(),
                f.message(),
            ))
        }
        Err(AuthError::Internal(e)) => return Err(e),
    };
    body::require_json(req)?;
    let bytes = body::read(req, payload, state.settings.server.max_body_bytes).await?;
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(env.answer(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "INVALID_JSON",
            "the body must be a JSON object",
        ));
    };

    let payload = match request.remove("payload") {
        Some(Value::Object(p)) => p,
        _ => {
            return Ok(env.fail(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "`payload` must be a JSON object",
            ));
        }
    };
    let dry_run = match request.remove("dryRun") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Ok(env.fail(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "`dryRun` must be a boolean",
            ))
        }
    };
    let body_key = match request.remove("idempotencyKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => {
            return Ok(env.fail(
                StatusCode::BAD_REQUEST,
                "INVALID_IDEMPOTENCY_KEY",
                "`idempotencyKey` must be a string",
            ))
        }
    };
    if let Some(unknown) = request.keys().next() {
        return Ok(env.fail(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("unknown field `{unknown}`"),
        ));
    }
    // The header wins over the body field.
    let key = match req.headers().get("idempotency-key") {
        Some(value) => Some(value.to_str().map(str::to_owned).unwrap_or_default()),
        None => body_key,
    };
    if let Some(k) = &key {
        if k.trim().is_empty() || k.chars().count() > MAX_KEY_LEN {
            return Ok(env.fail(
                StatusCode::BAD_REQUEST,
                "INVALID_IDEMPOTENCY_KEY",
                format!("the idempotency key must be 1 to {MAX_KEY_LEN} characters"),
            ));
        }
        env.set("idempotencyKey", k.clone());
    }

    let Some(trigger) = live_trigger(state, &org.0, &env.trigger_id).await? else {
        return Ok(env.answer(
            StatusCode::NOT_FOUND,
            "trigger_event_not_found",
            "TRIGGER_EVENT_NOT_FOUND",
            format!("no trigger `{}`", env.trigger_id),
        ));
    };
    let resolved = match trigger.schema.resolve(&payload) {
        Ok(r) => r,
        Err(problems) => {
            env.set("problems", problems);
            return Ok(env.answer(
                StatusCode::BAD_REQUEST,
                "payload_mismatch",
                "PAYLOAD_MISMATCH",
                "the payload does not match the trigger's schema",
            ));
        }
    };
    env.set("resolvedPayload", Value::Object(resolved.values.clone()));
    env.set("warnings", resolved.warnings.clone());
    let raw_email = resolved
        .values
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(email) = normalize_email(raw_email) else {
        env.set(
            "problems",
            json!([{"field": "email", "problem": "invalid_email"}]),
        );
        return Ok(env.answer(
            StatusCode::BAD_REQUEST,
            "payload_mismatch",
            "PAYLOAD_MISMATCH",
            "`email` is not an email address",
        ));
    };
    if dry_run {
        return Ok(env.answer(
            StatusCode::OK,
            "ready",
            "READY",
            "validated; nothing was written",
        ));
    }

    let mode = if trigger.enabled {
        FireMode::Run
    } else {
        FireMode::Disabled
    };
    let fired = state
        .pipeline
        .fire(FireRequest {
            org_id: org.0,
            trigger_id: trigger.id.clone(),
            source: "api".into(),
            key: key.map(|k| ("api".to_owned(), k)),
            request_hash: canonical::hash(&Value::Object(payload)),
            mode,
            contact_email: Some(email),
            identities: vec![],
            payload: resolved.values,
            warnings: resolved.warnings,
            release_key_without_runs: true,
        })
        .await?;
    env.record(&fired);
    let metrics = &state.metrics;
    match fired.replay {
        Some(Replay::DifferentRequest) => {
            return Ok(env.fail(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_CONFLICT",
                "this idempotency key was used with a different payload",
            ))
        }
        Some(Replay::SameRequest) => {
            metrics.duplicates.with_label_values(&["api"]).inc();
            return Ok(env.answer(
                StatusCode::OK,
                "idempotent_replay",
                "IDEMPOTENT_REPLAY",
                "already fired with this idempotency key; these are the original runs",
            ));
        }
        None => metrics
            .fires
            .with_label_values(&["api", &fired.outcome])
            .inc(),
    }
    Ok(match fired.outcome.as_str() {
        OUTCOME_TRIGGERED => env.answer(StatusCode::OK, "triggered", "TRIGGERED", "fired"),
        OUTCOME_NO_PUBLISHED => env.fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NO_PUBLISHED_AUTOMATION",
            "no published automation is bound to this trigger; publish one and retry",
        ),
        OUTCOME_DISABLED => env.fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "TRIGGER_DISABLED",
            "the trigger is disabled; the fire was recorded and started no runs",
        ),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected fire outcome {other}"
            )))
        }
    })
}
