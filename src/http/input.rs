//! Rules every request meets before a handler (and so before any database call) sees it:
//! path segments and query values hold no control characters and fit their maximum
//! length; and whatever actix itself answers with an error status is rendered in the
//! error envelope.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};

use super::error::{ApiError, ErrorType};
use super::fire;
use super::limits::RateState;

/// The longest id a path segment may carry (ids are far shorter; composite trigger ids
/// stay under it).
pub const MAX_ID_LEN: usize = 200;
/// The longest query value (an email is at most 254 characters, a cursor encodes an id).
pub const MAX_QUERY_VALUE_LEN: usize = 512;

/// Control characters other than tab, line feed and carriage return are refused in every
/// string firehook reads; PostgreSQL cannot store NUL at all.
pub fn is_refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The middleware: refuses hostile paths and queries, and wraps actix's own error answers.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Err(e) = check_path(req.path()).and_then(|()| check_query(req.query_string())) {
        // The fire route answers in its own envelope, refusals included.
        let answer = match fire::trigger_in_path(req.path()) {
            Some(trigger_id) if e.status == StatusCode::NOT_FOUND => {
                fire::unknown_trigger(req.request(), trigger_id)
            }
            _ => e.error_response(),
        };
        return Ok(req.into_response(answer));
    }
    let mut res = envelope(next.call(req).await?.map_into_boxed_body());
    let rate = res.request().extensions().get::<RateState>().copied();
    if let Some(rate) = rate {
        rate.apply(res.response_mut());
    }
    Ok(res)
}

/// A path whose decoded form holds a control character, or a segment longer than any id,
/// names nothing: 404.
fn check_path(raw: &str) -> Result<(), ApiError> {
    for segment in raw.split('/') {
        let decoded = percent_decode(segment);
        let text = String::from_utf8_lossy(&decoded);
        if text.chars().any(is_refused) || text.chars().count() > MAX_ID_LEN {
            return Err(ApiError::not_found("NOT_FOUND", "no such resource"));
        }
    }
    Ok(())
}

/// A query parameter holding a control character or an over-long value: 400 naming it.
fn check_query(query: &str) -> Result<(), ApiError> {
    if query.is_empty() {
        return Ok(());
    }
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name.chars().any(is_refused) {
            return Err(ApiError::invalid(
                "query",
                "control characters are not allowed in parameter names",
            ));
        }
        if value.chars().any(is_refused) {
            return Err(ApiError::invalid(
                name.clone(),
                format!("{name}: control characters (such as NUL) are not allowed"),
            ));
        }
        if value.chars().count() > MAX_QUERY_VALUE_LEN {
            return Err(ApiError::invalid(
                name.clone(),
                format!("{name} must be at most {MAX_QUERY_VALUE_LEN} characters"),
            ));
        }
    }
    Ok(())
}

fn percent_decode(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// An error answer actix produced itself (an extractor's plain-text 4xx, a 405 of a
/// resource) is rewritten into the error envelope; firehook's own answers are JSON already.
fn envelope(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let e = for_status(status);
    res.map_body(|head, _| {
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        e.error_response().into_body()
    })
}

/// The envelope for a bare status.
fn for_status(status: StatusCode) -> ApiError {
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (kind, code) = match status {
        StatusCode::NOT_FOUND => (ErrorType::NotFound, "NOT_FOUND"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorType::InvalidRequest, "METHOD_NOT_ALLOWED"),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorType::PayloadTooLarge, "PAYLOAD_TOO_LARGE"),
        StatusCode::REQUEST_TIMEOUT => (ErrorType::InvalidRequest, "REQUEST_TIMEOUT"),
        s if s.is_server_error() => (ErrorType::Internal, "INTERNAL_ERROR"),
        _ => (ErrorType::InvalidRequest, "INVALID_REQUEST"),
    };
    ApiError::new(status, kind, code, reason)
}

/// The answer for a route that exists but not with the request's method; `allow` lists
/// the methods it serves.
pub fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut res = for_status(StatusCode::METHOD_NOT_ALLOWED).error_response();
    if let Ok(value) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_control_characters_or_long_segments_name_nothing() {
        assert!(check_path("/v1/automations/aut_1").is_ok());
        assert!(check_path("/v1/automations/%00").is_err());
        assert!(check_path("/api/integrations/clerk/webhook/a%1Fb").is_err());
        assert!(check_path("/v1/automations/%7f").is_err());
        assert!(check_path(&format!("/v1/automations/{}", "a".repeat(201))).is_err());
        // A stray percent sign is not an escape.
        assert!(check_path("/v1/automations/50%").is_ok());
    }

    #[test]
    fn query_values_are_checked_and_named() {
        assert!(check_query("email=a%40b.co&limit=5").is_ok());
        let err = check_query("email=a%00@b.co").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("email"));
        let err = check_query(&format!("cursor={}", "A".repeat(513))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("cursor"));
        assert_eq!(
            check_query("%01=x").unwrap_err().param.as_deref(),
            Some("query")
        );
    }
}
