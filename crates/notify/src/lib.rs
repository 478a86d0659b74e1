//! Notifications: events delivered from the transactional outbox to MQTT brokers and
//! webhooks, at least once, without ever slowing a pipeline.
//!
//! The engine's event writer stores each batch of events together with one outbox row per
//! (event, sink) in the same transaction, choosing the sinks with [`NotifySection::route`]
//! (per-customer filters by event type and class). A [`Notifier`] runs one delivery task per
//! sink that reads its rows in order, delivers them, and marks them delivered, or failed with
//! the next attempt time (exponential backoff with jitter), or dead after too many attempts.
//! A sink that is down only lets its backlog grow (`sightline_outbox_depth{sink}`); the
//! writer never waits on it.
//!
//! Delivery is at least once: a crash between delivering and marking, a lost
//! acknowledgement or a retried request can deliver an event twice. Every payload
//! ([`Notification`]) carries the event id, which is also the webhook `Idempotency-Key`, so
//! receivers dedupe by id. See `README.md` for the receiver's side.

pub mod config;
pub mod error;
mod mqtt;
pub mod notifier;
pub mod payload;
pub mod retry;
mod telemetry;
pub mod template;
pub mod webhook;

pub use config::{
    Filter, MqttSinkConfig, NotifySection, Router, Secret, SinkConfig, WebhookSinkConfig,
};
pub use error::NotifyError;
pub use notifier::{Notifier, SinkStatus, StatusHandle, Waker};
pub use payload::Notification;
pub use retry::{Retry, RetryPolicy};
pub use webhook::{signature, verify_signature};
