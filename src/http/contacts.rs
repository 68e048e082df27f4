//! `/v1/contacts`: one by email, or the list.

use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Org;
use super::body;
use super::error::{stored, ApiError, ErrorEnvelope};
use super::page::List;
use super::{page, State};
use crate::clock::rfc3339;
use crate::domain::Email;
use crate::store::ContactRow;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    /// Answers the one contact with this email (normalised) instead of a list.
    email: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A contact as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Contact {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    subscribed: Option<bool>,
    #[schema(value_type = Object)]
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

/// With `?email=`, the bare contact (or 404); without it, a page of contacts.
#[utoipa::path(get, operation_id = "getOrListContacts", path = "/v1/contacts", tag = "contacts",
    params(Query),
    responses(
        (status = 200, description = "The contact (with `?email=`) or a page of contacts",
            body = inline(ContactOrList)),
        (status = 400, description = "Invalid query", body = ErrorEnvelope),
        (status = 401, description = "Missing or unknown API key", body = ErrorEnvelope),
        (status = 404, description = "`CONTACT_NOT_FOUND`", body = ErrorEnvelope),
    ),
)]
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
        return Ok(HttpResponse::Ok().json(ContactOrList::One(render(&contact)?)));
    }
    let (limit, after) = page::window(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .list_contacts(&org.0, after.as_deref(), limit)
        .await?;
    let page = page::list(rows, limit, |c| &c.email, render)?;
    Ok(HttpResponse::Ok().json(ContactOrList::Page(page)))
}

/// What `GET /v1/contacts` answers: one contact, or a page of them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum ContactOrList {
    One(Contact),
    Page(List<Contact>),
}
