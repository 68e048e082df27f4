//! Outbound webhooks: firehook telling the org's own endpoints what happened. Writes put
//! events in the outbox (see `store::outbox`); the [`Dispatcher`] sends them, signed, and
//! retries; [`guard`] keeps subscription URLs away from the gateway's own network.

mod dispatcher;
pub mod guard;
pub mod sign;

pub use dispatcher::Dispatcher;
