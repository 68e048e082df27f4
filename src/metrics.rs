//! Prometheus metrics served on `/metrics`.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub fires: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub verification_failures: IntCounterVec,
    pub deliveries_dropped: IntCounterVec,
    /// Outbound attempts by outcome (`succeeded`, `http_error`, `network_error`, ...).
    pub outbound_attempts: IntCounterVec,
    pub outbound_queue_depth: IntGauge,
    pub outbound_oldest_pending_seconds: Gauge,
    /// From an event's creation to its first 2xx.
    pub outbound_delivery_latency: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("firehook".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let fires = IntCounterVec::new(
            Opts::new("fires_total", "Fires by source and outcome"),
            &["source", "outcome"],
        )
        .expect("valid metric");
        let duplicates = IntCounterVec::new(
            Opts::new(
                "duplicates_total",
                "Repeated keys answered from an earlier fire, by source",
            ),
            &["source"],
        )
        .expect("valid metric");
        let verification_failures = IntCounterVec::new(
            Opts::new(
                "verification_failures_total",
                "Rejected deliveries by provider and reason",
            ),
            &["provider", "reason"],
        )
        .expect("valid metric");
        let deliveries_dropped = IntCounterVec::new(
            Opts::new(
                "deliveries_dropped_total",
                "Rejected deliveries left out of the delivery log, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let outbound_attempts = IntCounterVec::new(
            Opts::new(
                "outbound_attempts_total",
                "Outbound webhook attempts by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let outbound_queue_depth = IntGauge::new(
            "outbound_queue_depth",
            "Outbound deliveries not yet succeeded or failed",
        )
        .expect("valid metric");
        let outbound_oldest_pending_seconds = Gauge::new(
            "outbound_oldest_pending_seconds",
            "Age of the oldest pending outbound delivery",
        )
        .expect("valid metric");
        let outbound_delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "outbound_delivery_latency_seconds",
                "From an outbound event's creation to its first 2xx",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
            ]),
        )
        .expect("valid metric");
        for collector in [
            &requests,
            &fires,
            &duplicates,
            &verification_failures,
            &deliveries_dropped,
            &outbound_attempts,
        ] {
            registry
                .register(Box::new(collector.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(outbound_queue_depth.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(outbound_oldest_pending_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(outbound_delivery_latency.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            requests,
            latency,
            fires,
            duplicates,
            verification_failures,
            deliveries_dropped,
            outbound_attempts,
            outbound_queue_depth,
            outbound_oldest_pending_seconds,
            outbound_delivery_latency,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
