//! API-key authentication for `/v1`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use super::error::{ApiError, ErrorType};
use super::limits::Route;
use super::State;
use crate::auth::hash_key;

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
    /// Over a rate limit (429), or the database failed.
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

/// Resolves the request's API key to its org and draws on the key's rate limit; the
/// limit's state goes into the request's extensions for the `X-RateLimit-*` headers.
pub async fn authenticate(req: &HttpRequest, state: &State) -> Result<Org, AuthError> {
    let key = presented_key(req)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Failed(AuthFailure::Missing))?;
    let hash = hash_key(&key);
    let org = match state.store.cached_org_for_key(&hash).await {
        Some(org) => org,
        None => {
            if let Some(addr) = req.peer_addr() {
                let lookups = state.limits.key_lookup(addr.ip());
                if lookups.retry_after_secs.is_some() {
                    req.extensions_mut().insert(lookups);
                    return Err(AuthError::Internal(lookups.error()));
                }
            }
            state
                .store
                .org_for_key(&hash)
                .await
                .map_err(|e| AuthError::Internal(e.into()))?
                .ok_or(AuthError::Failed(AuthFailure::Invalid))?
        }
    };
    let route = match req.match_pattern().as_deref() {
        Some(FIRE_ROUTE) => Route::Fire,
        _ => Route::Api,
    };
    let rate = state.limits.request(route, &hash);
    req.extensions_mut().insert(rate);
    if rate.retry_after_secs.is_some() {
        return Err(AuthError::Internal(rate.error()));
    }
    Ok(Org(org))
}

/// The fire route, which has its own allowance.
const FIRE_ROUTE: &str = "/v1/automations/triggers/{id}/fire";

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
