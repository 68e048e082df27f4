//! API-key authentication for `/v1`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest};
use moka::future::Cache;

use super::error::{ApiError, ErrorType};
use super::State;
use crate::auth::hash_key;

/// Key hash -> org id. Short-lived so that a revoked key stops working within a minute in
/// every process.
pub type KeyCache = Cache<String, String>;

pub fn key_cache() -> KeyCache {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(30))
        .build()
}

/// The org an authenticated request acts for.
#[derive(Debug, Clone)]
pub struct Org(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "AUTHENTICATION_REQUIRED",
            AuthFailure::Invalid => "INVALID_API_KEY",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            }
            AuthFailure::Invalid => "the API key is unknown or revoked",
        }
    }
}

pub enum AuthError {
    Failed(AuthFailure),
    Internal(ApiError),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Failed(f) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorType::Authentication,
                f.code(),
                f.message(),
            ),
            AuthError::Internal(e) => e,
        }
    }
}

fn presented_key(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, key) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_owned());
    }
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// Resolves the request's API key to its org.
pub async fn authenticate(req: &HttpRequest, state: &State) -> Result<Org, AuthError> {
    let key = presented_key(req)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Failed(AuthFailure::Missing))?;
    let hash = hash_key(&key);
    if let Some(org) = state.keys.get(&hash).await {
        return Ok(Org(org));
    }
    let record = state
        .store
        .find_api_key(&hash)
        .await
        .map_err(|e| AuthError::Internal(e.into()))?;
    let record = record.ok_or(AuthError::Failed(AuthFailure::Invalid))?;
    state.keys.insert(hash, record.org_id.clone()).await;
    Ok(Org(record.org_id))
}

impl FromRequest for Org {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Org, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<State>()
                .expect("state is registered")
                .clone();
            authenticate(&req, &state).await.map_err(ApiError::from)
        })
    }
}
