//! Request bodies: the size limit, the content type, and [`Json`], the one extractor that
//! parses and validates a JSON body before a handler sees it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ErrorType};
use super::input::is_refused;
use super::State;

/// Reads the whole body, refusing more than `limit` bytes (413) without buffering them.
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(limit));
    }
    let timeout = req
        .app_data::<State>()
        .map(|s| Duration::from_millis(s.settings.server.body_timeout_ms))
        .unwrap_or(DEFAULT_BODY_TIMEOUT);
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    // One deadline for the whole body: a client trickling a byte a second must not hold a
    // connection (and a file descriptor) for as long as it likes.
    let reading = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::invalid("body", format!("the body could not be read: {e}"))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| request_timeout(timeout))??;
    Ok(body.freeze())
}

const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn request_timeout(after: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorType::InvalidRequest,
        "REQUEST_TIMEOUT",
        format!(
            "the request body did not arrive within {} ms",
            after.as_millis()
        ),
    )
}

/// A JSON body must say so when it names a content type (415 otherwise).
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorType::InvalidRequest,
            "UNSUPPORTED_MEDIA_TYPE",
            "the body must be JSON (Content-Type: application/json)",
        ))
    }
}

/// Parses a JSON body into `T`; every failure answers 400 `INVALID_REQUEST` naming the
/// field at fault (see [`typed`]).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    typed(value)
}

/// Reads a JSON document as `T`: a string holding a control character (NUL included) or a
/// value of the wrong shape answers 400 `INVALID_REQUEST` naming the field at fault.
pub fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if let Some(path) = control_character_at(&value, &mut String::new()) {
        let param = if path.is_empty() { "body".into() } else { path };
        return Err(ApiError::invalid(
            param.clone(),
            format!("{param}: control characters (such as NUL) are not allowed in strings"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." { "body".to_owned() } else { path };
        let message = without_quoted_values(&e.into_inner().to_string());
        ApiError::invalid(param.clone(), format!("{param}: {message}"))
    })
}

/// The dotted path of the first key or string holding a refused character.
fn control_character_at(value: &Value, path: &mut String) -> Option<String> {
    let depth = path.len();
    let found = match value {
        Value::String(s) => s.chars().any(is_refused).then(|| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.truncate(depth);
            path.push_str(&format!("[{i}]"));
            control_character_at(item, path)
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            path.truncate(depth);
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            if key.chars().any(is_refused) {
                return Some(path.clone());
            }
            control_character_at(item, path)
        }),
        _ => None,
    };
    path.truncate(depth);
    found
}

/// Checks a string's length in characters.
pub fn check_len(param: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be {min} to {max} characters"),
        ));
    }
    Ok(())
}

/// What a request body checks beyond its shape: lengths, counts, ranges.
pub trait Validate {
    fn validate(&self) -> Result<(), ApiError>;
}

/// A JSON body of type `T`, read within `server.max_body_bytes`, parsed by [`parse`] and
/// checked by its [`Validate`] impl; a handler taking it sees only valid input.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload).into_inner();
        Box::pin(async move {
            let payload = payload.map_err(|e| {
                ApiError::invalid("body", format!("the body could not be read: {e}"))
            })?;
            let limit = req
                .app_data::<State>()
                .expect("state is registered")
                .settings
                .server
                .max_body_bytes;
            require_json(&req)?;
            let bytes = read(&req, payload, limit).await?;
            let value: T = parse(&bytes)?;
            value.validate()?;
            Ok(Json(value))
        })
    }
}

/// Parses a query string into `T`; an unknown parameter, a malformed value or an unknown
/// enum word answers 400 naming the parameter.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(req.query_string().as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." {
            "query".to_owned()
        } else {
            path
        };
        let message = without_quoted_values(&e.into_inner().to_string());
        ApiError::invalid(param.clone(), format!("{param}: {message}"))
    })
}

/// A parse error without the value that failed to parse: serde quotes string values
/// (`invalid type: string "..."`), and that value may be a secret.
fn without_quoted_values(message: &str) -> String {
    match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            format!("{}{}", &message[..first].trim_end(), &message[last + 1..])
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
        tags: Vec<String>,
    }

    #[test]
    fn a_control_character_is_refused_with_its_path() {
        let err = parse::<Named>(br#"{"name": "ok", "tags": ["a", "b\u0000"]}"#).unwrap_err();
        assert_eq!(err.code, "INVALID_REQUEST");
        assert_eq!(err.param.as_deref(), Some("tags[1]"));
        let err = parse::<Value>(br#"{"a": {"k\u001b": 1}}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("a.k\u{1b}"));
        assert!(parse::<Value>(b"{\"a\": \"line\\nbreak\\ttab\"}").is_ok());
    }

    #[test]
    fn not_json_and_wrong_types_name_the_field() {
        assert_eq!(
            parse::<Named>(b"{").unwrap_err().param.as_deref(),
            Some("body")
        );
        let err = parse::<Named>(br#"{"name": 1, "tags": []}"#).unwrap_err();
        assert_eq!(err.code, "INVALID_REQUEST");
        assert_eq!(err.param.as_deref(), Some("name"));
    }

    #[test]
    fn a_value_that_fails_to_parse_is_not_echoed() {
        let err = parse::<Named>(br#"{"name": "n", "tags": "whsec_c2VjcmV0"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tags"));
        assert!(!err.message.contains("whsec_"), "{}", err.message);
        assert!(
            err.message.contains("expected a sequence"),
            "{}",
            err.message
        );
    }
}
