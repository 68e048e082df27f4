//! HTTP routes, and what every request goes through.

mod auth;
mod automations;
pub mod body;
mod connections;
mod contacts;
mod deliveries;
pub mod error;
mod fire;
pub mod input;
pub mod limits;
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
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope("/v1")
                .route("/automations/triggers", web::post().to(triggers::create))
                .route("/automations/triggers", web::get().to(triggers::list))
                .route("/automations/triggers/{id}", web::get().to(triggers::get))
                .route(
                    "/automations/triggers/{id}",
                    web::patch().to(triggers::patch),
                )
                .route(
                    "/automations/triggers/{id}/fire",
                    web::post().to(fire::fire),
                )
                .route("/automations/runs", web::get().to(automations::list_runs))
                .route("/automations", web::post().to(automations::create))
                .route("/automations", web::get().to(automations::list))
                .route("/automations/{id}", web::get().to(automations::get))
                .route("/automations/{id}", web::patch().to(automations::patch))
                .route(
                    "/trigger-instances",
                    web::get().to(automations::list_trigger_instances),
                )
                .route("/contacts", web::get().to(contacts::get_or_list))
                .route(
                    "/integrations/connections",
                    web::post().to(connections::create),
                )
                .route(
                    "/integrations/connections",
                    web::get().to(connections::list),
                )
                .route(
                    "/integrations/connections/{id}",
                    web::get().to(connections::get),
                )
                .route(
                    "/integrations/connections/{id}",
                    web::patch().to(connections::patch),
                )
                .route(
                    "/integrations/connections/{id}",
                    web::delete().to(connections::delete),
                )
                .route("/integrations/deliveries", web::get().to(deliveries::list))
                .route(
                    "/integrations/deliveries/{id}",
                    web::get().to(deliveries::get),
                )
                .route(
                    "/integrations/deliveries/{id}/replay",
                    web::post().to(deliveries::replay),
                )
                .configure(webhook_subscription_routes),
        )
        .route(
            "/api/integrations/{provider}/webhook/{connection_id}",
            web::post().to(receive::receive),
        )
        .default_service(web::to(ops::not_found));
}

/// Outbound webhooks. The fixed paths come before `{id}`, which would match them too.
fn webhook_subscription_routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/webhook-subscriptions";
    cfg.route(
        &format!("{BASE}/event-types"),
        web::get().to(subscriptions::event_types),
    )
    .route(
        &format!("{BASE}/deliveries"),
        web::get().to(outbound_log::list),
    )
    .route(
        &format!("{BASE}/deliveries/{{id}}/retry"),
        web::post().to(outbound_log::retry),
    )
    .route(BASE, web::post().to(subscriptions::create))
    .route(BASE, web::get().to(subscriptions::list))
    .route(&format!("{BASE}/{{id}}"), web::get().to(subscriptions::get))
    .route(
        &format!("{BASE}/{{id}}"),
        web::patch().to(subscriptions::patch),
    )
    .route(
        &format!("{BASE}/{{id}}"),
        web::delete().to(subscriptions::delete),
    )
    .route(
        &format!("{BASE}/{{id}}/rotate-secret"),
        web::post().to(subscriptions::rotate_secret),
    );
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
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
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
