//! The integration suite: every test runs against SQLite (`sqlite::`) and against
//! PostgreSQL (`postgres::`; FIREHOOK_TEST_POSTGRES_URL, else the local server).

mod helpers;
mod idempotency;
mod ops;

mod api;
mod cli;
mod console;
mod deliveries;
mod events;
mod fire;
mod fire_batches;
mod inputs;
mod limits;
mod long_ids;
mod lost_commits;
mod outbound;
mod outbound_processes;
mod processes;
mod receive;
mod revocation;
mod secrets;
mod tenancy;
mod timeouts;
