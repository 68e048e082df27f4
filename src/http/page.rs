//! Cursor pagination: `?limit=` (1-100) and `?cursor=` (opaque; pass back
//! `pagination.cursor`, `null` on the last page).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

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

/// A page of a list: `{data, pagination: {limit, cursor, hasMore}}`.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub limit: u32,
    /// Pass back as `?cursor=` for the next page; `null` on the last page.
    pub cursor: Option<String>,
    pub has_more: bool,
}

/// The page of `rendered` rows; the cursor encodes the last row's key.
pub fn list<T, R: Serialize>(
    page: Page<T>,
    limit: u32,
    key: impl Fn(&T) -> &str,
    render: impl FnMut(&T) -> Result<R, ApiError>,
) -> Result<List<R>, ApiError> {
    let cursor = match (page.has_more, page.rows.last()) {
        (true, Some(last)) => Some(URL_SAFE_NO_PAD.encode(key(last))),
        _ => None,
    };
    let data = page
        .rows
        .iter()
        .map(render)
        .collect::<Result<Vec<R>, _>>()?;
    Ok(List {
        data,
        pagination: Pagination {
            limit,
            cursor,
            has_more: page.has_more,
        },
    })
}
