//! What the pipeline answers: the typed outcome of a fire, of a receive-URL request and of
//! an API fire, and why a fire could not be carried out.

use std::sync::Arc;

use adapters::{MapError, VerifyError};
use serde_json::{Map, Value};

use super::schema::Resolved;
use crate::domain::{IdempotencyKey, IgnoreReason};
use crate::store::{FireError, LoadError, StartedRun};

/// A fire that was recorded: its trigger instance and the runs it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub instance_id: String,
    pub received_at_ms: i64,
    pub runs: Vec<StartedRun>,
}

impl Fired {
    pub fn run_ids(&self) -> impl Iterator<Item = &str> {
        self.runs.iter().map(|r| r.run_id.as_str())
    }
}

/// What a fire came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One run per published automation was started.
    Triggered(Fired),
    /// The contact was upserted and the fire recorded; no automation bound to the trigger
    /// is published.
    NoPublishedAutomation(Fired),
    /// The trigger is disabled: the fire was recorded and started nothing.
    TriggerDisabled(Fired),
    /// The fire was recorded with this reason; nothing was upserted.
    Ignored(IgnoreReason),
    /// The key was used before for the same request: the earlier fire.
    Replay(Fired),
    /// The key was used before for a different request: the earlier fire.
    Conflict(Fired),
}

/// A receive-URL request that was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// The connection is disabled (404).
    Disabled,
    /// The body is over the size limit (413).
    TooLarge,
    /// The body could not be read off the connection (400).
    BodyUnreadable,
    /// The body did not arrive within `server.body_timeout_ms` (408).
    BodyTimedOut,
    /// The signature or token did not verify (401).
    Signature(VerifyError),
    /// Verified, but the body cannot be read as the provider's payload (400).
    Unreadable(MapError),
}

impl Rejection {
    /// The reason the delivery log shows.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Disabled => "connection_disabled",
            Rejection::TooLarge => "body_too_large",
            Rejection::BodyUnreadable => "body_unreadable",
            Rejection::BodyTimedOut => "body_timeout",
            Rejection::Signature(e) => e.reason(),
            Rejection::Unreadable(MapError::InvalidJson(_)) => "invalid_json",
            Rejection::Unreadable(MapError::MissingEvent(_)) => "missing_event",
        }
    }

    /// The HTTP status the receive URL answers it with.
    pub fn http_status(&self) -> u16 {
        match self {
            Rejection::Disabled => 404,
            Rejection::TooLarge => 413,
            Rejection::Signature(_) => 401,
            Rejection::BodyTimedOut => 408,
            Rejection::BodyUnreadable | Rejection::Unreadable(_) => 400,
        }
    }
}

/// What a receive-URL request came to.
#[derive(Debug)]
pub enum Delivered {
    Rejected(Rejection),
    Answered {
        /// The delivery's entry in the log.
        delivery_id: String,
        /// The event name of the mapped delivery.
        event: String,
        /// The trigger this event fires on the connection.
        trigger_id: String,
        outcome: Outcome,
    },
}

/// An API fire as the request states it.
#[derive(Debug)]
pub struct ApiFire {
    pub payload: Map<String, Value>,
    pub key: Option<IdempotencyKey>,
    pub dry_run: bool,
}

/// What an API fire came to.
#[derive(Debug)]
pub enum ApiFired {
    TriggerNotFound,
    /// The payload does not fit the trigger's schema; nothing was written. `resolved` is
    /// set when the schema resolved it but its email is not an address.
    PayloadMismatch {
        problems: Vec<Value>,
        resolved: Option<Resolved>,
    },
    /// A dry run: validated and resolved, nothing written, the key not consumed.
    Ready(Resolved),
    Fired {
        resolved: Resolved,
        outcome: Outcome,
    },
}

/// A fire that could not be carried out; nothing of it was committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("loading the trigger or the contact failed")]
    Load(#[source] Arc<LoadError>),
    #[error("looking up a contact by provider id failed")]
    Lookup(#[source] Arc<sqlx::Error>),
    #[error("writing the fire failed")]
    Write(#[source] Arc<FireError>),
}

impl From<Arc<LoadError>> for PipelineError {
    fn from(e: Arc<LoadError>) -> PipelineError {
        PipelineError::Load(e)
    }
}
