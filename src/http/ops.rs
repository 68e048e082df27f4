//! Health, readiness, metrics, and the answer for unknown routes.

use actix_web::HttpResponse;
use serde_json::json;

use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::http::StatusCode;
use actix_web::ResponseError;

use super::error::{ApiError, ErrorType};
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

/// A known path asked with a method it does not serve.
pub fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorType::InvalidRequest,
        "METHOD_NOT_ALLOWED",
        format!("this path answers {allow}"),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(ALLOW, value);
    }
    res
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("NOT_FOUND", "no such route"))
}
