//! The fault suite: the real `sightline` binary against real servers on this machine
//! (PostgreSQL, Mosquitto, an HTTP webhook receiver, the GStreamer reference RTSP camera),
//! each fault injected for a bounded time, each test printing its figure (`--nocapture`
//! shows them; the README keeps the latest ones).
//!
//! One module per fault; `harness` drives the binary (CLI, worker/serve processes, waits).
//! Every test uses its own data directory and, on PostgreSQL, its own database, so the
//! faults never touch what other tests use.

#![allow(clippy::print_stderr)]

mod camera_outage;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod jobs;
mod malformed_sources;
mod media_full;
mod mqtt_outage;
mod postgres_restart;
mod webhook_outage;
mod worker_sigkill;
