//! API-key authentication for `/v1`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest};

use super::error::{ApiError, ErrorType};
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
    let org = state
        .store
        .org_for_key(&hash_key(&key))
        .await
        .map_err(|e| AuthError::Internal(e.into()))?;
    org.map(Org).ok_or(AuthError::Failed(AuthFailure::Invalid))
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
