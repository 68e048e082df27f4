//! `/v1/contacts`: one by email, or the list.

use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Org;
use super::body;
use super::error::{stored, ApiError};
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::Email;
use crate::store::ContactRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    email: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A contact as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Contact {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    subscribed: Option<bool>,
    custom_fields: Map<String, Value>,
    created_at: String,
    updated_at: String,
}

fn render(c: &ContactRow) -> Result<Contact, ApiError> {
    Ok(Contact {
        email: c.email.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        subscribed: c.subscribed,
        custom_fields: stored("custom fields", &c.email, &c.custom_fields)?,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
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
        return Ok(HttpResponse::Ok().json(render(&contact)?));
    }
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_contacts(&org.0, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::list(rows, limit, |c| &c.email, render)?))
}
