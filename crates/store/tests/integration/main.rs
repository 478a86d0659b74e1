//! Integration tests of the store against real SQLite and PostgreSQL databases.

mod common;
mod connect;
mod events;
mod jobs;
mod leases;
mod media;
mod outbox;
mod plates;
mod registry;
mod runs;
