//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' own
//! request and response types by their `#[utoipa::path]` annotations.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use adapters::Provider;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    automations, connections, contacts, deliveries, events, fire, outbound_log, subscriptions,
    triggers,
};
use crate::domain::{DeliveryStatus, EventType, OutboundStatus};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "firehook",
        description = "A gateway for inbound webhooks: connections and their receive URLs, \
            triggers, automations and their runs, contacts, and the live events stream. \
            Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        triggers::create, triggers::list, triggers::get, triggers::patch,
        fire::fire,
        automations::list_runs, automations::create, automations::list, automations::get,
        automations::patch, automations::list_trigger_instances,
        contacts::get_or_list,
        connections::create, connections::list, connections::get, connections::patch,
        connections::delete,
        deliveries::list, deliveries::get, deliveries::replay,
        subscriptions::event_types, subscriptions::create, subscriptions::list,
        subscriptions::get, subscriptions::patch, subscriptions::delete,
        subscriptions::rotate_secret, outbound_log::list, outbound_log::retry,
        events::stream,
    ),
    // Vocabularies named only by query parameters, which do not register their schemas.
    components(schemas(DeliveryStatus, OutboundStatus, EventType)),
    modifiers(&Security),
    security(("bearer" = []), ("apiKey" = [])),
)]
pub struct ApiDoc;

/// The two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document as served; generated once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        name_providers(&mut doc);
        add_shared_answers(&mut doc);
        serde_json::to_string_pretty(&doc).expect("the document serialises")
    })
}

/// The answers any `/v1` operation may give besides its own, in the body its 400 (or
/// else the error envelope) has: 429 over the API key's rate limit, 503 while the
/// database is unreachable.
fn add_shared_answers(doc: &mut Value) {
    let envelope = serde_json::json!({"application/json": {"schema": {
        "$ref": "#/components/schemas/ErrorEnvelope"}}});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in operation.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let content = responses
                .get("400")
                .and_then(|r| r.get("content"))
                .cloned()
                .unwrap_or_else(|| envelope.clone());
            for (status, description) in [
                (
                    "429",
                    "`RATE_LIMITED`: over the API key's rate limit; see `Retry-After`",
                ),
                ("503", "The database is unreachable; see `Retry-After`"),
            ] {
                responses.entry(status).or_insert_with(
                    || serde_json::json!({"description": description, "content": content.clone()}),
                );
            }
        }
    }
}

/// The provider slugs a connection takes, from the provider registry.
fn name_providers(doc: &mut Value) {
    let slugs: Vec<&str> = Provider::all().map(Provider::slug).collect();
    doc["components"]["schemas"]["CreateConnection"]["properties"]["provider"]["enum"] =
        serde_json::json!(slugs);
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::http::Method;
    use actix_web::{FromRequest, Handler, Responder};
    use serde_json::Value;

    use super::*;
    use crate::http::{v1_routes, Router};

    /// The routes `v1_routes` registers, without their handlers.
    #[derive(Default)]
    struct Listed(BTreeSet<(String, String)>);

    impl Router for Listed {
        fn add<F, Args>(&mut self, method: Method, path: &str, _: F) -> &mut Self
        where
            F: Handler<Args>,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.0
                .insert((method.as_str().to_lowercase(), path.to_owned()));
            self
        }
    }

    #[test]
    fn the_document_describes_exactly_the_registered_routes() {
        let mut registered = Listed::default();
        v1_routes(&mut registered);
        let doc: Value = serde_json::from_str(json()).unwrap();
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let undescribed: Vec<_> = registered.0.difference(&described).collect();
        let unregistered: Vec<_> = described.difference(&registered.0).collect();
        assert!(
            undescribed.is_empty(),
            "routes missing from the document: {undescribed:?}"
        );
        assert!(
            unregistered.is_empty(),
            "documented but not served: {unregistered:?}"
        );
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
