//! The integration suite: every test runs against SQLite, and against PostgreSQL when
//! FIREHOOK_TEST_POSTGRES_URL is set.

mod helpers;

mod api;
mod fire;
mod outbound;
mod outbound_processes;
mod processes;
mod receive;
