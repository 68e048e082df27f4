//! The one error type at the edge: typed 4xx answers in the error envelope, and opaque 500s
//! that log their cause.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    #[serde(rename = "authentication_error")]
    Authentication,
    InvalidRequest,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimit,
    #[serde(rename = "internal_error")]
    Internal,
}

/// The error envelope every `/v1` error (and every receive-URL refusal) answers with.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "NO_SUCH_TRIGGER", "type": "not_found",
    "message": "no trigger `tri_01J...`", "param": "triggerEventId"}}))]
pub struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `INVALID_REQUEST` or `NO_SUCH_TRIGGER`.
    code: String,
    #[serde(rename = "type")]
    kind: ErrorType,
    message: String,
    /// The request field or parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    /// Structured detail, such as `issues` of an invalid automation graph.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub kind: ErrorType,
    pub message: String,
    pub param: Option<String>,
    pub details: Option<Box<Value>>,
    /// What caused a 500, logged with its chain when the response is rendered.
    cause: Option<Arc<anyhow::Error>>,
    /// Seconds for `Retry-After` (a 503 while the database is unreachable).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: ErrorType,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            kind,
            message: message.into(),
            param: None,
            details: None,
            cause: None,
            retry_after: None,
        }
    }

    /// 503: the database cannot be reached. Logged at most once a second, however many
    /// requests meet the outage.
    pub fn unavailable(cause: impl std::fmt::Display) -> ApiError {
        outage::note(&cause);
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal,
            "SERVICE_UNAVAILABLE",
            "the database is unavailable; retry shortly",
        );
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    }

    /// 400 `INVALID_REQUEST` naming the offending field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequest,
            "INVALID_REQUEST",
            message,
        )
        .with_param(param)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorType::NotFound, code, message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::PayloadTooLarge,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// An unexpected failure: the client sees an opaque 500; the cause is logged once, with
    /// its chain, when the answer is rendered (inside the request's span).
    pub fn internal(cause: impl Into<anyhow::Error>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Internal,
            "INTERNAL_ERROR",
            "an internal error occurred; it has been logged",
        );
        e.cause = Some(Arc::new(cause.into()));
        e
    }

    /// Logs the cause of a 500.
    pub fn log(&self) {
        if let Some(cause) = &self.cause {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(Box::new(details));
        self
    }
}

/// Reads a JSON document the server stored itself. One that does not decode is a 500 that
/// names the row, never a silently empty field.
pub fn stored<T: serde::de::DeserializeOwned>(
    what: &'static str,
    id: &str,
    text: &str,
) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::internal(anyhow::anyhow!(
            "stored {what} of {id} does not decode: {e}"
        ))
    })
}

/// `Retry-After` of a 503.
const RETRY_AFTER_SECS: u64 = 5;

/// Whether a database error says the database cannot be reached (or is refusing work),
/// rather than that a statement is wrong.
fn unreachable_database(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: connection exceptions, shutdowns, insufficient resources, the
        // database gone; SQLite: busy or locked past the busy timeout.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "3D000"
                || code == "5"
                || code == "6"
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        if unreachable_database(&e) {
            ApiError::unavailable(e)
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<Arc<crate::store::LoadError>> for ApiError {
    fn from(e: Arc<crate::store::LoadError>) -> ApiError {
        match &*e {
            crate::store::LoadError::Database(db) if unreachable_database(db) => {
                ApiError::unavailable(db)
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(e: crate::pipeline::PipelineError) -> ApiError {
        use crate::pipeline::PipelineError;
        use crate::store::FireError;
        match &e {
            PipelineError::Load(load) => load.clone().into(),
            PipelineError::Lookup(db) if unreachable_database(db) => ApiError::unavailable(db),
            PipelineError::Write(write) => match &**write {
                FireError::Postgres(db) if unreachable_database(db) => ApiError::unavailable(db),
                FireError::Unconfirmed(_) => ApiError::unavailable(write),
                FireError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(
                        f.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
                {
                    ApiError::unavailable(write)
                }
                _ => ApiError::internal(e),
            },
            _ => ApiError::internal(e),
        }
    }
}

/// The log of an outage: one line a second with the number of failures since the last.
mod outage {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

    pub(super) fn note(cause: &dyn std::fmt::Display) {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *last {
            Some((at, suppressed)) if at.elapsed() < Duration::from_secs(1) => *suppressed += 1,
            slot => {
                let suppressed = slot.map_or(0, |(_, n)| n);
                tracing::error!(
                    error = %cause,
                    failures_since_last_line = suppressed,
                    "database unavailable; answering 503"
                );
                *slot = Some((Instant::now(), 0));
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a body that was too slow is not waited for.
            res.force_close();
        }
        res.json(ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                kind: self.kind,
                message: self.message.clone(),
                param: self.param.clone(),
                details: self.details.as_deref().cloned(),
            },
        })
    }
}
