//! HTTP routes, and what every request goes through.

mod auth;
mod automations;
pub mod body;
mod connections;
mod console;
mod contacts;
mod deliveries;
pub mod error;
mod events;
mod fire;
pub mod input;
pub mod limits;
mod openapi;
mod ops;
mod outbound_log;
mod page;
mod receive;
mod subscriptions;
mod triggers;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, Handler, HttpMessage, Resource, Responder};
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Settings;
use crate::ids;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::store::Store;

pub use error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub pipeline: Pipeline,
    pub clock: Clock,
    pub metrics: Metrics,
    pub settings: Settings,
    pub limits: limits::RateLimits,
    /// Base of the receive URLs shown in connection responses.
    pub public_url: String,
}

pub type State = web::Data<Arc<AppState>>;

/// The id of the request being served, as sent back in `x-request-id`.
#[derive(Clone)]
pub struct RequestId(pub String);

/// Every route of the main listener; `/metrics` too unless it has a listener of its own
/// (`metrics.bind`). Each path is one resource, so a method it does not serve answers 405
/// with `Allow` from the resource itself, without any extra routing.
pub fn routes(with_metrics: bool) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        // Deliveries come first and under a fixed prefix, matched by hand: actix tries
        // services in order, and matches any pattern with a `{segment}` by a regex, which
        // took 7% of the CPU of a repeated delivery.
        cfg.service(web::scope(receive::PREFIX).default_service(web::to(receive::receive)));
        let mut resources = Resources::default();
        resources
            .add(Method::GET, "/healthz", ops::healthz)
            .add(Method::GET, "/readyz", ops::readyz)
            .add(Method::GET, "/openapi.json", openapi::document);
        if with_metrics {
            resources.add(Method::GET, "/metrics", ops::metrics);
        }
        console::routes(&mut resources);
        v1_routes(&mut resources);
        resources.register(cfg);
        cfg.default_service(web::to(ops::not_found));
    }
}

/// The routes of the metrics listener (`metrics.bind`): `/metrics` alone.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    let mut resources = Resources::default();
    resources.add(Method::GET, "/metrics", ops::metrics);
    resources.register(cfg);
    cfg.default_service(web::to(ops::not_found));
}

/// Where routes go: actix resources when serving, a list when the OpenAPI test checks
/// that the document describes every `/v1` route.
pub trait Router {
    fn add<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;
}

/// Routes grouped by path, one actix resource each, so that a path asked with a method it
/// does not serve answers 405 with `Allow` (in the error envelope) rather than 404.
#[derive(Default)]
struct Resources(Vec<(String, Vec<Method>, Resource)>);

impl Router for Resources {
    fn add<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::method(method.clone()).to(handler);
        match self.0.iter_mut().find(|(p, _, _)| p == path) {
            Some((_, methods, resource)) => {
                methods.push(method);
                let taken = std::mem::replace(resource, web::resource(path));
                *resource = taken.route(route);
            }
            None => self.0.push((
                path.to_owned(),
                vec![method],
                web::resource(path).route(route),
            )),
        }
        self
    }
}

impl Resources {
    fn register(self, cfg: &mut web::ServiceConfig) {
        for (_, methods, resource) in self.0 {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            let allow = allow.join(", ");
            cfg.service(resource.default_service(web::to(move || {
                let res = input::method_not_allowed(&allow);
                async move { res }
            })));
        }
    }
}

/// The public API. Each route must also be listed in [`openapi::ApiDoc`] (a test checks).
/// Fixed paths come before `{id}`, which would match them too.
pub fn v1_routes(r: &mut impl Router) {
    const TRIGGERS: &str = "/v1/automations/triggers";
    const CONNECTIONS: &str = "/v1/integrations/connections";
    const DELIVERIES: &str = "/v1/integrations/deliveries";
    const OUTBOUND: &str = "/v1/webhook-subscriptions";
    r.add(Method::POST, TRIGGERS, triggers::create)
        .add(Method::GET, TRIGGERS, triggers::list)
        .add(Method::GET, &format!("{TRIGGERS}/{{id}}"), triggers::get)
        .add(
            Method::PATCH,
            &format!("{TRIGGERS}/{{id}}"),
            triggers::patch,
        )
        .add(Method::POST, &format!("{TRIGGERS}/{{id}}/fire"), fire::fire)
        .add(Method::GET, "/v1/automations/runs", automations::list_runs)
        .add(Method::POST, "/v1/automations", automations::create)
        .add(Method::GET, "/v1/automations", automations::list)
        .add(Method::GET, "/v1/automations/{id}", automations::get)
        .add(Method::PATCH, "/v1/automations/{id}", automations::patch)
        .add(
            Method::GET,
            "/v1/trigger-instances",
            automations::list_trigger_instances,
        )
        .add(Method::GET, "/v1/contacts", contacts::get_or_list)
        .add(Method::POST, CONNECTIONS, connections::create)
        .add(Method::GET, CONNECTIONS, connections::list)
        .add(
            Method::GET,
            &format!("{CONNECTIONS}/{{id}}"),
            connections::get,
        )
        .add(
            Method::PATCH,
            &format!("{CONNECTIONS}/{{id}}"),
            connections::patch,
        )
        .add(
            Method::DELETE,
            &format!("{CONNECTIONS}/{{id}}"),
            connections::delete,
        )
        .add(Method::GET, DELIVERIES, deliveries::list)
        .add(
            Method::GET,
            &format!("{DELIVERIES}/{{id}}"),
            deliveries::get,
        )
        .add(
            Method::POST,
            &format!("{DELIVERIES}/{{id}}/replay"),
            deliveries::replay,
        )
        .add(
            Method::GET,
            &format!("{OUTBOUND}/event-types"),
            subscriptions::event_types,
        )
        .add(
            Method::GET,
            &format!("{OUTBOUND}/deliveries"),
            outbound_log::list,
        )
        .add(
            Method::POST,
            &format!("{OUTBOUND}/deliveries/{{id}}/retry"),
            outbound_log::retry,
        )
        .add(Method::POST, OUTBOUND, subscriptions::create)
        .add(Method::GET, OUTBOUND, subscriptions::list)
        .add(
            Method::GET,
            &format!("{OUTBOUND}/{{id}}"),
            subscriptions::get,
        )
        .add(
            Method::PATCH,
            &format!("{OUTBOUND}/{{id}}"),
            subscriptions::patch,
        )
        .add(
            Method::DELETE,
            &format!("{OUTBOUND}/{{id}}"),
            subscriptions::delete,
        )
        .add(
            Method::POST,
            &format!("{OUTBOUND}/{{id}}/rotate-secret"),
            subscriptions::rotate_secret,
        )
        .add(Method::GET, "/v1/events/stream", events::stream);
}

/// Gives every request an id (the caller's `x-request-id` if it sent a sane one) and a
/// span carrying it, so whatever is logged while serving it names the id the caller got
/// back; counts the request in the metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| ids::new_id(ids::REQUEST));
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let metrics = req.app_data::<State>().map(|s| s.metrics.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    if let Some(metrics) = metrics {
        let request = res.request();
        let route = match request.match_pattern() {
            Some(pattern) => pattern,
            // Receive URLs are matched by hand, not by a pattern.
            None if receive::receive_url(request.path()).is_some() => receive::ROUTE.into(),
            None => "unmatched".into(),
        };
        metrics
            .requests
            .with_label_values(&[route.as_str(), res.status().as_str()])
            .inc();
        metrics
            .latency
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
