//! `POST /api/integrations/{provider}/webhook/{connectionId}`: hand the request to the
//! pipeline, render what it came to. Every request of a known connection reaches the
//! pipeline, refused or not, so the delivery log misses none.

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use adapters::{Headers, Inbound, MapError};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorType};
use super::{body, input, State};
use crate::domain::IgnoreReason;
use crate::pipeline::{Delivered, Fired, Outcome, Rejection};

/// The body of every 200 a receive URL (or a replay) answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    received: bool,
    /// `triggered`, `no_published_automation`, `ignored` or `duplicate`.
    status: &'static str,
    event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_instance_id: Option<String>,
    automation_run_ids: Vec<String>,
    /// Why an `ignored` delivery started nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reason: Option<IgnoreReason>,
    /// This request's entry in the delivery log.
    delivery_id: String,
}

impl Received {
    fn new(status: &'static str, event: &str, delivery_id: &str) -> Received {
        Received {
            received: true,
            status,
            event: event.to_owned(),
            trigger_event_id: None,
            trigger_instance_id: None,
            automation_run_ids: vec![],
            reason: None,
            delivery_id: delivery_id.to_owned(),
        }
    }

    /// A fire of `trigger_id` that this request recorded.
    fn fired(mut self, trigger_id: &str, fired: &Fired) -> Received {
        self.trigger_event_id = Some(trigger_id.to_owned());
        self.trigger_instance_id = Some(fired.instance_id.clone());
        self.automation_run_ids = fired.run_ids().map(str::to_owned).collect();
        self
    }
}

/// Where receive URLs live: `PREFIX/<provider>/webhook/<connection id>`.
pub const PREFIX: &str = "/api/integrations";
/// The receive URL's route, as metrics name it.
pub const ROUTE: &str = "/api/integrations/{provider}/webhook/{connection_id}";

/// The provider and connection id of a receive URL's path, `None` for any other path.
pub(super) fn receive_url(path: &str) -> Option<(&str, &str)> {
    let mut segments = path.strip_prefix(PREFIX)?.strip_prefix('/')?.split('/');
    let (provider, webhook, connection_id) = (segments.next()?, segments.next()?, segments.next()?);
    let matched = segments.next().is_none()
        && webhook == "webhook"
        && !provider.is_empty()
        && !connection_id.is_empty();
    matched.then_some((provider, connection_id))
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "CONNECTION_NOT_FOUND",
        "no enabled connection at this receive URL",
    )
}

/// Every request under [`PREFIX`]: a receive URL takes POST alone (405 otherwise), and
/// any other path there is an unknown route.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let Some((provider, connection_id)) = receive_url(req.path()) else {
        return super::ops::not_found().await;
    };
    if req.method() != Method::POST {
        return Ok(input::method_not_allowed("POST"));
    }
    // An unknown URL belongs to no org: answered, not logged.
    let connection = state
        .store
        .live_connection(connection_id)
        .await?
        .filter(|c| c.row.provider == provider)
        .ok_or_else(not_found)?;
    let headers: Headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    // Every refusal below goes through the pipeline, which logs it.
    let refuse = |rejection| {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        state
            .pipeline
            .refuse(&connection, &headers, declared, rejection)
    };
    let delivered = if !connection.row.enabled {
        refuse(Rejection::Disabled).await
    } else {
        match body::read(&req, payload, state.settings.server.max_body_bytes).await {
            Err(e) => {
                let rejection = match e.status {
                    StatusCode::PAYLOAD_TOO_LARGE => Rejection::TooLarge,
                    StatusCode::REQUEST_TIMEOUT => Rejection::BodyTimedOut,
                    _ => Rejection::BodyUnreadable,
                };
                refuse(rejection).await;
                // The read's own answer (a 408 also closes the connection).
                return Err(e);
            }
            Ok(body) => {
                let inbound = Inbound {
                    headers: &headers,
                    body: &body,
                    query: Some(req.query_string()),
                };
                state.pipeline.deliver(&connection, &inbound).await?
            }
        }
    };
    if let Delivered::Rejected(Rejection::Signature(e)) = &delivered {
        // Logged as a sampled summary; a flood of bad signatures on one connection is
        // answered 429 (good deliveries still verify and pass).
        let id = &connection.row.id;
        state.limits.log_rejection(id, provider, e.reason());
        if let Some(rate) = state.limits.failed_verification(id) {
            req.extensions_mut().insert(rate);
            return Err(rate.error());
        }
    }
    let body = received_body(delivered, state.settings.server.max_body_bytes)?;
    Ok(HttpResponse::Ok().json(body))
}

/// The receive body of an answered delivery (with its `deliveryId`), or the error its
/// rejection answers.
pub fn received_body(delivered: Delivered, max_body_bytes: usize) -> Result<Received, ApiError> {
    let (delivery_id, event, trigger_id, outcome) = match delivered {
        Delivered::Answered {
            delivery_id,
            event,
            trigger_id,
            outcome,
        } => (delivery_id, event, trigger_id, outcome),
        Delivered::Rejected(rejection) => return Err(refusal(rejection, max_body_bytes)),
    };
    let new = |status| Received::new(status, &event, &delivery_id);
    Ok(match &outcome {
        Outcome::Triggered(fired) => new("triggered").fired(&trigger_id, fired),
        Outcome::NoPublishedAutomation(fired) => {
            new("no_published_automation").fired(&trigger_id, fired)
        }
        Outcome::Ignored(reason) => Received {
            reason: Some(*reason),
            ..new("ignored")
        },
        Outcome::TriggerDisabled(_) => Received {
            reason: Some(IgnoreReason::TriggerDisabled),
            ..new("ignored")
        },
        // A repeat of a provider's event id is a duplicate whatever its body.
        Outcome::Replay(fired) | Outcome::Conflict(fired) => Received {
            trigger_instance_id: Some(fired.instance_id.clone()),
            ..new("duplicate")
        },
    })
}

fn refusal(rejection: Rejection, max_body_bytes: usize) -> ApiError {
    match rejection {
        Rejection::Disabled => not_found(),
        Rejection::TooLarge => ApiError::too_large(max_body_bytes),
        Rejection::BodyUnreadable => ApiError::invalid("body", "the body could not be read"),
        Rejection::BodyTimedOut => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorType::InvalidRequest,
            "REQUEST_TIMEOUT",
            "the body did not arrive in time",
        ),
        Rejection::Signature(e) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::Authentication,
            "INVALID_SIGNATURE",
            e.to_string(),
        ),
        Rejection::Unreadable(e) => match e {
            MapError::InvalidJson(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequest,
                "INVALID_JSON",
                e.to_string(),
            ),
            MapError::MissingEvent(field) => ApiError::invalid(field, e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::receive_url;

    #[test]
    fn receive_urls_are_matched_segment_by_segment() {
        assert_eq!(
            receive_url("/api/integrations/clerk/webhook/con_1"),
            Some(("clerk", "con_1"))
        );
        for other in [
            "/api/integrations",
            "/api/integrations/",
            "/api/integrations/clerk/webhook",
            "/api/integrations/clerk/webhook/",
            "/api/integrations/clerk/webhook/con_1/",
            "/api/integrations/clerk/webhook/con_1/more",
            "/api/integrations/clerk/hook/con_1",
            "/api/integrations//webhook/con_1",
            "/api/integrationsx/clerk/webhook/con_1",
        ] {
            assert_eq!(receive_url(other), None, "{other}");
        }
    }
}
