//! Health, readiness, metrics, and the answer for unknown routes.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::input;
use super::State;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: State) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "reason": "database"}))
        }
    }
}

pub async fn metrics(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Unknown routes answer 404; a known route asked with another method answers 405.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.resource_map().has_resource(req.path()) {
        return Ok(input::method_not_allowed());
    }
    Err(ApiError::not_found("NOT_FOUND", "no such route"))
}
