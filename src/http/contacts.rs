//! `/v1/contacts`: one by email, or the list.

use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Org;
use super::body;
use super::error::ApiError;
use super::{page, State};
use crate::domain::Email;
use crate::store::ContactRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    email: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn render(c: &ContactRow) -> Value {
    c.to_json()
}

pub async fn get_or_list(
    req: HttpRequest,
    state: State,
    org: Org,
) -> Result<HttpResponse, ApiError> {
    let q: Query = body::query(&req)?;
    if let Some(raw) = q.email {
        let not_found = || {
            ApiError::not_found("CONTACT_NOT_FOUND", "no contact with that email")
                .with_param("email")
        };
        let email = Email::parse(&raw).ok_or_else(not_found)?;
        let contact = state
            .store
            .get_contact(&org.0, email.as_str())
            .await?
            .ok_or_else(not_found)?;
        return Ok(HttpResponse::Ok().json(render(&contact)));
    }
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_contacts(&org.0, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |c| &c.email, render)))
}
