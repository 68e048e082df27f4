//! `POST /api/integrations/{provider}/webhook/{connectionId}`: hand the request to the
//! pipeline, render what it came to.

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use adapters::{Headers, Inbound, MapError};
use serde::Serialize;

use super::error::{ApiError, ErrorType};
use super::{body, State};
use crate::domain::IgnoreReason;
use crate::pipeline::{Delivered, Fired, Outcome, Rejection};

/// The body of every 200 a receive URL answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Received<'a> {
    received: bool,
    status: &'static str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_instance_id: Option<&'a str>,
    automation_run_ids: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<IgnoreReason>,
}

impl<'a> Received<'a> {
    fn new(status: &'static str, event: &'a str) -> Received<'a> {
        Received {
            received: true,
            status,
            event,
            trigger_event_id: None,
            trigger_instance_id: None,
            automation_run_ids: vec![],
            reason: None,
        }
    }

    /// A fire of `trigger_id` that this request recorded.
    fn fired(mut self, trigger_id: &'a str, fired: &'a Fired) -> Received<'a> {
        self.trigger_event_id = Some(trigger_id);
        self.trigger_instance_id = Some(&fired.instance_id);
        self.automation_run_ids = fired.run_ids().collect();
        self
    }
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "CONNECTION_NOT_FOUND",
        "no enabled connection at this receive URL",
    )
}

pub async fn receive(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let (provider, connection_id) = path.into_inner();
    let connection = state
        .store
        .live_connection(&connection_id)
        .await?
        .filter(|c| c.row.enabled && c.row.provider == provider)
        .ok_or_else(not_found)?;
    let body = body::read(&req, payload, state.settings.server.max_body_bytes).await?;
    let headers: Headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let inbound = Inbound {
        headers: &headers,
        body: &body,
        query: Some(req.query_string()),
    };

    let (event, trigger_id, outcome) = match state.pipeline.deliver(&connection, &inbound).await? {
        Delivered::Answered {
            event,
            trigger_id,
            outcome,
        } => (event, trigger_id, outcome),
        Delivered::Rejected(Rejection::Signature(e)) => {
            let id = &connection.row.id;
            state.limits.log_rejection(id, &provider, e.reason());
            if let Some(rate) = state.limits.failed_verification(id) {
                req.extensions_mut().insert(rate);
                return Err(rate.error());
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorType::Authentication,
                "INVALID_SIGNATURE",
                e.to_string(),
            ));
        }
        Delivered::Rejected(Rejection::Unreadable(e)) => {
            return Err(match e {
                MapError::InvalidJson(_) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorType::InvalidRequest,
                    "INVALID_JSON",
                    e.to_string(),
                ),
                MapError::MissingEvent(field) => ApiError::invalid(field, e.to_string()),
            })
        }
    };
    let received = match &outcome {
        Outcome::Triggered(fired) => Received::new("triggered", &event).fired(&trigger_id, fired),
        Outcome::NoPublishedAutomation(fired) => {
            Received::new("no_published_automation", &event).fired(&trigger_id, fired)
        }
        Outcome::Ignored(reason) => Received {
            reason: Some(*reason),
            ..Received::new("ignored", &event)
        },
        Outcome::TriggerDisabled(_) => Received {
            reason: Some(IgnoreReason::TriggerDisabled),
            ..Received::new("ignored", &event)
        },
        // A repeat of a provider's event id is a duplicate whatever its body.
        Outcome::Replay(fired) | Outcome::Conflict(fired) => Received {
            trigger_instance_id: Some(&fired.instance_id),
            ..Received::new("duplicate", &event)
        },
    };
    Ok(HttpResponse::Ok().json(received))
}
