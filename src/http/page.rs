//! Cursor pagination: `?limit=` (1-100) and `?cursor=` (opaque; pass back
//! `pagination.cursor`, `null` on the last page).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::store::Page;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The validated `limit` and the decoded position after which the page starts.
pub fn window(limit: Option<u32>, cursor: Option<&str>) -> Result<(u32, Option<String>), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let after = match cursor {
        None | Some("") => None,
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::invalid("cursor", "unknown cursor"))?;
            let position = String::from_utf8(bytes)
                .ok()
                .filter(|p| !p.chars().any(super::input::is_refused))
                .ok_or_else(|| ApiError::invalid("cursor", "unknown cursor"))?;
            Some(position)
        }
    };
    Ok((limit, after))
}

/// `{data, pagination: {limit, cursor, hasMore}}`; the cursor encodes the last row's key.
pub fn list<T, R: Serialize>(
    page: Page<T>,
    limit: u32,
    key: impl Fn(&T) -> &str,
    render: impl Fn(&T) -> Result<R, ApiError>,
) -> Result<Value, ApiError> {
    let cursor = match (page.has_more, page.rows.last()) {
        (true, Some(last)) => Value::String(URL_SAFE_NO_PAD.encode(key(last))),
        _ => Value::Null,
    };
    let data = page
        .rows
        .iter()
        .map(render)
        .collect::<Result<Vec<R>, _>>()?;
    Ok(
        json!({"data": data, "pagination": {"limit": limit, "cursor": cursor, "hasMore": page.has_more}}),
    )
}
