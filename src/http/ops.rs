//! Health, readiness, metrics, and the answer for unknown routes.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{ApiError, ErrorType};
use super::State;
use crate::auth::hash_key;
use crate::config::ExposeSecret;
use actix_web::http::StatusCode;

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

pub async fn metrics(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let token = state.settings.metrics.token.expose_secret();
    if !token.is_empty() {
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared as digests, so the time taken says nothing about the token.
        if hash_key(presented) != hash_key(token) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorType::Authentication,
                "AUTHENTICATION_REQUIRED",
                "send the metrics token as `Authorization: Bearer <token>`",
            ));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

/// Unknown routes answer 404 (a known path asked with another method is answered 405 by
/// its resource).
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("NOT_FOUND", "no such route"))
}
