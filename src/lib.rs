//! firehook: a gateway for inbound webhooks. Verify each provider's signature, map the
//! delivery to one flat contact record, deduplicate it, upsert the contact and start one
//! run per published automation — the same pipeline the public fire API uses.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod outbound;
pub mod pipeline;
pub mod retention;
pub mod send_test;
pub mod startup;
pub mod store;
pub mod telemetry;
