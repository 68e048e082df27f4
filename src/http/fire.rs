//! `POST /v1/automations/triggers/{id}/fire`: the one endpoint that answers in the fire
//! envelope, success and failure alike.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::{authenticate, AuthError};
use super::body;
use super::error::ApiError;
use super::State;
use crate::clock::rfc3339;
use crate::domain::IdempotencyKey;
use crate::pipeline::schema::Resolved;
use crate::pipeline::{ApiFire, ApiFired, Fired, Outcome};

/// The request body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"payload": {"email": "jane@example.com", "plan": "pro"}, "idempotencyKey": "signup-jane-1"}))]
struct FireBody {
    /// Checked against the trigger's payload schema.
    #[schema(value_type = Object)]
    payload: Map<String, Value>,
    /// 1 to 100 characters; the `Idempotency-Key` header wins over it.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    idempotency_key: Option<String>,
    /// Validate and resolve only: nothing is written, the key not consumed.
    #[serde(default)]
    dry_run: bool,
}

/// The fire envelope: the one shape of every answer of the fire endpoint.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"success": true, "status": "triggered", "code": "TRIGGERED", "message": "fired", "triggerEventId": "tri_01J...", "receivedAt": "2026-11-22T06:21:45.123Z", "details": {"resolvedPayload": {"email": "jane@example.com", "plan": "pro"}, "warnings": [], "triggerInstanceId": "tin_01J...", "counts": {"automations": 1}, "publishedAutomations": [{"automationId": "aut_01J...", "name": "Welcome"}], "automationRunIds": ["run_01J..."]}}))]
#[serde(rename_all = "camelCase")]
struct Envelope {
    success: bool,
    status: &'static str,
    code: &'static str,
    message: String,
    trigger_event_id: String,
    received_at: String,
    details: Details,
}

#[derive(Serialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Details {
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    resolved_payload: Option<Map<String, Value>>,
    /// `{code: "unexpected_key", field}` per payload key the schema does not declare.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    warnings: Option<Vec<Value>>,
    /// `{field, problem, expected?}` per schema violation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    problems: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_automations: Option<Vec<PublishedAutomation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    automation_run_ids: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
struct Counts {
    automations: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PublishedAutomation {
    automation_id: String,
    name: String,
}

impl Details {
    fn resolved(&mut self, resolved: Resolved) {
        self.resolved_payload = Some(resolved.values);
        self.warnings = Some(resolved.warnings);
    }

    fn fired(&mut self, fired: &Fired) {
        self.trigger_instance_id = Some(fired.instance_id.clone());
        self.counts = Some(Counts {
            automations: fired.runs.len(),
        });
        self.published_automations = Some(
            fired
                .runs
                .iter()
                .map(|run| PublishedAutomation {
                    automation_id: run.automation_id.clone(),
                    name: run.automation_name.clone(),
                })
                .collect(),
        );
        self.automation_run_ids = Some(fired.run_ids().map(str::to_owned).collect());
    }
}

/// The envelope under construction: everything but the verdict.
struct Answer {
    trigger_id: String,
    received_at: String,
    details: Details,
}

impl Answer {
    fn answer(
        self,
        http: StatusCode,
        status: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> HttpResponse {
        HttpResponse::build(http).json(Envelope {
            success: http.is_success(),
            status,
            code,
            message: message.into(),
            trigger_event_id: self.trigger_id,
            received_at: self.received_at,
            details: self.details,
        })
    }

    fn fail(
        self,
        http: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> HttpResponse {
        self.answer(http, "failed", code, message)
    }

    /// An error in the envelope; a 500's cause is logged here, once.
    fn error(self, e: ApiError) -> HttpResponse {
        e.log();
        let retry_after = e.retry_after;
        let mut res = self.answer(e.status, "failed", e.code, e.message);
        if let Some(secs) = retry_after {
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(secs),
            );
        }
        res
    }
}

/// Fires a trigger: validates the payload, deduplicates by idempotency key, upserts the
/// contact and starts one run per published automation. Every answer, failures included,
/// is the fire envelope.
#[utoipa::path(post, operation_id = "fireTrigger", path = "/v1/automations/triggers/{id}/fire", tag = "triggers",
    params(
        ("id" = String, Path, description = "The trigger's `triggerEventId`"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "\\S", max_length = 100,
            description = "1 to 100 characters; wins over the body's `idempotencyKey`"),
    ),
    request_body = FireBody,
    responses(
        (status = 200, description = "`triggered`, `idempotent_replay` or `ready` (dry run)", body = Envelope),
        (status = 400, description = "`payload_mismatch`, `invalid_json`, `INVALID_IDEMPOTENCY_KEY`", body = Envelope),
        (status = 401, description = "Missing or unknown API key", body = Envelope),
        (status = 404, description = "`trigger_event_not_found`", body = Envelope),
        (status = 409, description = "`IDEMPOTENCY_CONFLICT`", body = Envelope),
        (status = 413, description = "Body over the size limit", body = Envelope),
        (status = 415, description = "Not JSON", body = Envelope),
        (status = 422, description = "`NO_PUBLISHED_AUTOMATION` or `TRIGGER_DISABLED` (fire recorded)", body = Envelope),
    ),
)]
pub async fn fire(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    let mut answer = Answer {
        trigger_id: path.into_inner(),
        received_at: rfc3339(state.clock.now_ms()),
        details: Details::default(),
    };
    match parse(&req, payload, &state, &mut answer.details).await {
        Ok((org, fire)) => match state
            .pipeline
            .fire_api(&org, &answer.trigger_id, fire)
            .await
        {
            Ok(fired) => render(answer, fired),
            Err(e) => answer.error(e.into()),
        },
        Err(Refused::Answer(http, status, code, message)) => {
            answer.answer(http, status, code, message)
        }
        Err(Refused::Error(e)) => answer.error(e),
    }
}

/// The trigger id of a fire route's path.
pub fn trigger_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/automations/triggers/")?
        .strip_suffix("/fire")
        .filter(|id| !id.contains('/'))
}

/// The fire envelope's 404 for a trigger id that no trigger can have (one the input guard
/// refuses before any handler runs).
pub fn unknown_trigger(req: &HttpRequest, trigger_id: &str) -> HttpResponse {
    let state = req.app_data::<State>().expect("state is registered");
    let answer = Answer {
        trigger_id: trigger_id.to_owned(),
        received_at: rfc3339(state.clock.now_ms()),
        details: Details::default(),
    };
    render(answer, ApiFired::TriggerNotFound)
}

/// A request refused before the pipeline.
enum Refused {
    /// Answered in the envelope with this HTTP status, `status`, `code` and message.
    Answer(StatusCode, &'static str, &'static str, String),
    Error(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused::Error(e)
    }
}

/// The org and the fire a request asks for.
async fn parse(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    details: &mut Details,
) -> Result<(String, ApiFire), Refused> {
    let failed = |code, message: &str| {
        Refused::Answer(StatusCode::BAD_REQUEST, "failed", code, message.to_owned())
    };
    let org = match authenticate(req, state).await {
        Ok(org) => org,
        Err(AuthError::Failed(f)) => {
            return Err(Refused::Answer(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                f.code(),
                f.message().to_owned(),
            ))
        }
        Err(AuthError::Internal(e)) => return Err(e.into()),
    };
    body::require_json(req)?;
    let bytes = body::read(req, payload, state.settings.server.max_body_bytes).await?;
    let Ok(request @ Value::Object(_)) = serde_json::from_slice(&bytes) else {
        return Err(Refused::Answer(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "INVALID_JSON",
            "the body must be a JSON object".to_owned(),
        ));
    };
    let request: FireBody = match body::typed(request) {
        Ok(request) => request,
        Err(e) if e.param.as_deref() == Some("idempotencyKey") => {
            return Err(failed(
                "INVALID_IDEMPOTENCY_KEY",
                "`idempotencyKey` must be a string",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // The header wins over the body field.
    let raw_key = match req.headers().get("idempotency-key") {
        Some(value) => Some(value.to_str().unwrap_or_default().to_owned()),
        None => request.idempotency_key,
    };
    let key = match raw_key {
        None => None,
        Some(raw) => {
            let key = IdempotencyKey::parse(&raw).ok_or_else(|| {
                failed(
                    "INVALID_IDEMPOTENCY_KEY",
                    &format!(
                        "the idempotency key must be 1 to {} characters",
                        IdempotencyKey::MAX_LEN
                    ),
                )
            })?;
            details.idempotency_key = Some(raw);
            Some(key)
        }
    };
    let fire = ApiFire {
        payload: request.payload,
        key,
        dry_run: request.dry_run,
    };
    Ok((org.0, fire))
}

/// The envelope for what the pipeline made of the fire.
fn render(mut answer: Answer, fired: ApiFired) -> HttpResponse {
    let outcome = match fired {
        ApiFired::TriggerNotFound => {
            let message = format!("no trigger `{}`", answer.trigger_id);
            return answer.answer(
                StatusCode::NOT_FOUND,
                "trigger_event_not_found",
                "TRIGGER_EVENT_NOT_FOUND",
                message,
            );
        }
        ApiFired::PayloadMismatch { problems, resolved } => {
            if let Some(resolved) = resolved {
                answer.details.resolved(resolved);
            }
            answer.details.problems = Some(problems);
            return answer.answer(
                StatusCode::BAD_REQUEST,
                "payload_mismatch",
                "PAYLOAD_MISMATCH",
                "the payload does not match the trigger's schema",
            );
        }
        ApiFired::Ready(resolved) => {
            answer.details.resolved(resolved);
            return answer.answer(
                StatusCode::OK,
                "ready",
                "READY",
                "validated; nothing was written",
            );
        }
        ApiFired::Fired { resolved, outcome } => {
            answer.details.resolved(resolved);
            outcome
        }
    };
    match outcome {
        Outcome::Triggered(fired) => {
            answer.details.fired(&fired);
            answer.answer(StatusCode::OK, "triggered", "TRIGGERED", "fired")
        }
        Outcome::Replay(fired) => {
            answer.details.fired(&fired);
            answer.answer(
                StatusCode::OK,
                "idempotent_replay",
                "IDEMPOTENT_REPLAY",
                "already fired with this idempotency key; these are the original runs",
            )
        }
        Outcome::Conflict(fired) => {
            answer.details.fired(&fired);
            answer.fail(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_CONFLICT",
                "this idempotency key was used with a different payload",
            )
        }
        Outcome::NoPublishedAutomation(fired) => {
            answer.details.fired(&fired);
            answer.fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "NO_PUBLISHED_AUTOMATION",
                "no published automation is bound to this trigger; publish one and retry",
            )
        }
        Outcome::TriggerDisabled(fired) => {
            answer.details.fired(&fired);
            answer.fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TRIGGER_DISABLED",
                "the trigger is disabled; the fire was recorded and started no runs",
            )
        }
        // API fires resolve their contact from the payload and never ignore.
        Outcome::Ignored(reason) => answer.fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "FIRE_IGNORED",
            format!("the fire was recorded and ignored: {reason}"),
        ),
    }
}
