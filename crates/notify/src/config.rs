//! The `[notify]` section of the config: which sinks exist, which events each one wants (by
//! type and class, per customer), and how each is reached. `deny_unknown_fields` everywhere,
//! named defaults, secrets masked in `Debug` and `Serialize`, and one validation pass that
//! reports every problem with its field path (`notify.sinks[0].topic: unknown placeholder`).
//!
//! [`NotifySection::route`] is what the engine's event writer passes to
//! `Store::insert_events_routed`, so an event gets an outbox row only for the sinks that
//! want it.

use crate::template::{PLACEHOLDERS, TopicTemplate};
use serde::{Deserialize, Serialize};
use sightline_core::{Event, EventKind, FieldErrors};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Default MQTT topic template.
pub const DEFAULT_TOPIC: &str = "sightline/{run_id}/{type}";
/// Default retained occupancy topic template.
pub const DEFAULT_OCCUPANCY_TOPIC: &str = "sightline/{run_id}/zones/{zone}/count";
/// Placeholders an occupancy topic may use.
pub const OCCUPANCY_PLACEHOLDERS: [&str; 2] = ["run_id", "zone"];

/// Notification sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// Where events go. Each event gets one outbox row per sink whose filter matches.
    pub sinks: Vec<SinkConfig>,
    /// Backlog (undelivered rows) per sink above which an alert is raised: a warning in the
    /// log and `sightline_outbox_over_cap{sink} = 1`. Events are never dropped.
    pub max_outbox_depth: u64,
    /// How often an idle sink looks for new rows, in milliseconds (a wake-up from the event
    /// writer makes it look at once).
    pub poll_interval_ms: u64,
}

impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            sinks: Vec::new(),
            max_outbox_depth: 100_000,
            poll_interval_ms: 200,
        }
    }
}

/// Which events a sink receives. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Event types (`zone_enter`, `line_cross`, …); empty: all types.
    pub types: Vec<EventKind>,
    /// Object classes (`person`, `car`); empty: all classes, including events without one.
    pub classes: Vec<String>,
}

impl Filter {
    /// Whether `ev` passes the filter.
    pub fn matches(&self, ev: &Event) -> bool {
        let type_ok = self.types.is_empty() || self.types.contains(&ev.body.kind);
        let class_ok = self.classes.is_empty()
            || ev
                .body
                .class
                .as_ref()
                .is_some_and(|c| self.classes.iter().any(|x| x == c));
        type_ok && class_ok
    }
}

/// One sink, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    Mqtt(MqttSinkConfig),
    Webhook(WebhookSinkConfig),
}

impl SinkConfig {
    /// The sink's name: the `sink` of its outbox rows.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Mqtt(m) => &m.name,
            SinkConfig::Webhook(w) => &w.name,
        }
    }
    pub fn filter(&self) -> &Filter {
        match self {
            SinkConfig::Mqtt(m) => &m.filter,
            SinkConfig::Webhook(w) => &w.filter,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Mqtt(_) => "mqtt",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// An MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkConfig {
    /// Sink name (unique; `[A-Za-z0-9_-]`).
    pub name: String,
    /// Which events this sink receives.
    #[serde(default)]
    pub filter: Filter,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// MQTT client id; default `sightline-{name}-{random}` (unique per process, so two
    /// workers never kick each other off the broker).
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name, if the broker wants credentials.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (masked in logs and API output).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Topic template. Placeholders: `{run_id}`, `{type}`, `{class}`, `{zone}`, `{line}`,
    /// `{rule}`, `{track_id}`, `{direction}`; a missing value renders as `_`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Quality of service: 0 (at most once), 1 (at least once), 2 (exactly once).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Connect over TLS.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate (TLS only); default: the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Also publish each `count` event's occupancy as a retained message on
    /// `occupancy_topic`, so a new subscriber sees the current count at once.
    #[serde(default)]
    pub retain_occupancy: bool,
    /// Retained occupancy topic; placeholders `{run_id}` and `{zone}`.
    #[serde(default = "default_occupancy_topic")]
    pub occupancy_topic: String,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// First reconnect delay in milliseconds (doubles up to `reconnect_max_ms`, with jitter).
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay in milliseconds.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Rows published per round; each round waits for its acknowledgements.
    #[serde(default = "default_mqtt_batch")]
    pub batch: u32,
    /// How long to wait for the broker's acknowledgements of a round, in milliseconds,
    /// before reconnecting and publishing the round again.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: u64,
}

/// An HTTP(S) endpoint that receives POSTed JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// Sink name (unique; `[A-Za-z0-9_-]`).
    pub name: String,
    /// Which events this sink receives.
    #[serde(default)]
    pub filter: Filter,
    /// Endpoint (`http://` or `https://`).
    pub url: String,
    /// Shared secret: when set, `X-Sightline-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Events per request: 1 posts each event as a JSON object; more posts JSON arrays.
    #[serde(default = "default_webhook_batch")]
    pub batch: u32,
    /// Request timeout in milliseconds (connect + response).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Requests in flight at once to this endpoint.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// Attempts per event before it becomes a dead letter.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay after the first failure, in milliseconds; doubles per attempt.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Random fraction taken off each delay (0..1), so failed deliveries do not retry in
    /// lockstep.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic() -> String {
    DEFAULT_TOPIC.into()
}
fn default_occupancy_topic() -> String {
    DEFAULT_OCCUPANCY_TOPIC.into()
}
fn default_qos() -> u8 {
    1
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_mqtt_batch() -> u32 {
    100
}
fn default_ack_timeout() -> u64 {
    10_000
}
fn default_webhook_batch() -> u32 {
    1
}
fn default_timeout() -> u64 {
    5_000
}
fn default_concurrency() -> u32 {
    4
}
fn default_max_attempts() -> u32 {
    10
}
fn default_backoff_base() -> u64 {
    1_000
}
fn default_backoff_max() -> u64 {
    300_000
}
fn default_jitter() -> f64 {
    0.2
}

impl WebhookSinkConfig {
    /// A webhook with the defaults.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        WebhookSinkConfig {
            name: name.into(),
            filter: Filter::default(),
            url: url.into(),
            secret: None,
            batch: default_webhook_batch(),
            timeout_ms: default_timeout(),
            max_concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            backoff_base_ms: default_backoff_base(),
            backoff_max_ms: default_backoff_max(),
            jitter: default_jitter(),
        }
    }

    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms),
            jitter: self.jitter,
            max_attempts: Some(self.max_attempts),
        }
    }
}

impl MqttSinkConfig {
    /// A broker sink with the defaults.
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        MqttSinkConfig {
            name: name.into(),
            filter: Filter::default(),
            host: host.into(),
            port,
            client_id: None,
            username: None,
            password: None,
            topic: default_topic(),
            qos: default_qos(),
            tls: false,
            ca_file: None,
            retain_occupancy: false,
            occupancy_topic: default_occupancy_topic(),
            keep_alive_s: default_keep_alive(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_ms: default_reconnect_max(),
            batch: default_mqtt_batch(),
            ack_timeout_ms: default_ack_timeout(),
        }
    }

    /// Reconnect delays: exponential with jitter, never giving up.
    pub fn reconnect_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            base: Duration::from_millis(self.reconnect_min_ms),
            max: Duration::from_millis(self.reconnect_max_ms),
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

impl NotifySection {
    /// The sinks whose filter matches `ev`: pass this to `Store::insert_events_routed`.
    pub fn route(&self, ev: &Event) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|s| s.filter().matches(ev))
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// An owned, cheaply cloned router for the event writer task.
    pub fn router(&self) -> Router {
        Router {
            sinks: Arc::new(
                self.sinks
                    .iter()
                    .map(|s| (s.name().to_owned(), s.filter().clone()))
                    .collect(),
            ),
        }
    }

    /// Checks every sink; errors are pushed with paths under `path` (`notify`).
    pub fn validate(&self, path: &str, e: &mut FieldErrors) {
        if self.poll_interval_ms == 0 || self.poll_interval_ms > 60_000 {
            e.push(
                format!("{path}.poll_interval_ms"),
                "must be within 1..=60000",
            );
        }
        if self.max_outbox_depth == 0 {
            e.push(format!("{path}.max_outbox_depth"), "must be at least 1");
        }
        let mut seen = HashSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let p = format!("{path}.sinks[{i}]");
            let name = s.name();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                e.push(
                    format!("{p}.name"),
                    "use 1-64 characters of letters, digits, '-' and '_'",
                );
            } else if !seen.insert(name) {
                e.push(format!("{p}.name"), format!("duplicate sink name {name:?}"));
            }
            for (j, c) in s.filter().classes.iter().enumerate() {
                if c.trim().is_empty() {
                    e.push(format!("{p}.filter.classes[{j}]"), "must not be empty");
                }
            }
            match s {
                SinkConfig::Mqtt(m) => validate_mqtt(m, &p, e),
                SinkConfig::Webhook(w) => validate_webhook(w, &p, e),
            }
        }
    }
}

fn validate_mqtt(m: &MqttSinkConfig, p: &str, e: &mut FieldErrors) {
    if m.host.trim().is_empty() {
        e.push(format!("{p}.host"), "must not be empty");
    }
    if m.port == 0 {
        e.push(format!("{p}.port"), "must be 1..=65535");
    }
    if let Some(id) = &m.client_id
        && (id.is_empty() || id.len() > 128)
    {
        e.push(format!("{p}.client_id"), "must be 1-128 characters");
    }
    if m.password.is_some() && m.username.is_none() {
        e.push(format!("{p}.password"), "a password needs a username");
    }
    if let Err(msg) = TopicTemplate::parse(&m.topic, &PLACEHOLDERS) {
        e.push(format!("{p}.topic"), msg);
    }
    if let Err(msg) = TopicTemplate::parse(&m.occupancy_topic, &OCCUPANCY_PLACEHOLDERS) {
        e.push(format!("{p}.occupancy_topic"), msg);
    }
    if m.qos > 2 {
        e.push(format!("{p}.qos"), "must be 0, 1 or 2");
    }
    if m.ca_file.is_some() && !m.tls {
        e.push(format!("{p}.ca_file"), "only used with tls = true");
    }
    if !(5..=3600).contains(&m.keep_alive_s) {
        e.push(format!("{p}.keep_alive_s"), "must be within 5..=3600");
    }
    if m.reconnect_min_ms == 0 {
        e.push(format!("{p}.reconnect_min_ms"), "must be at least 1");
    }
    if m.reconnect_max_ms < m.reconnect_min_ms {
        e.push(
            format!("{p}.reconnect_max_ms"),
            "must be at least reconnect_min_ms",
        );
    }
    if !(1..=1000).contains(&m.batch) {
        e.push(format!("{p}.batch"), "must be within 1..=1000");
    }
    if m.ack_timeout_ms < 100 {
        e.push(format!("{p}.ack_timeout_ms"), "must be at least 100");
    }
}

fn validate_webhook(w: &WebhookSinkConfig, p: &str, e: &mut FieldErrors) {
    match url::Url::parse(&w.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        Ok(u) if !matches!(u.scheme(), "http" | "https") => e.push(
            format!("{p}.url"),
            format!("scheme {:?} is not http or https", u.scheme()),
        ),
        Ok(_) => e.push(format!("{p}.url"), "has no host"),
        Err(err) => e.push(format!("{p}.url"), format!("not a URL: {err}")),
    }
    if w.secret.as_ref().is_some_and(Secret::is_empty) {
        e.push(format!("{p}.secret"), "must not be empty (omit it instead)");
    }
    if !(1..=1000).contains(&w.batch) {
        e.push(format!("{p}.batch"), "must be within 1..=1000");
    }
    if !(1..=600_000).contains(&w.timeout_ms) {
        e.push(format!("{p}.timeout_ms"), "must be within 1..=600000");
    }
    if !(1..=256).contains(&w.max_concurrency) {
        e.push(format!("{p}.max_concurrency"), "must be within 1..=256");
    }
    if w.max_attempts == 0 {
        e.push(format!("{p}.max_attempts"), "must be at least 1");
    }
    if w.backoff_base_ms == 0 {
        e.push(format!("{p}.backoff_base_ms"), "must be at least 1");
    }
    if w.backoff_max_ms < w.backoff_base_ms {
        e.push(
            format!("{p}.backoff_max_ms"),
            "must be at least backoff_base_ms",
        );
    }
    if !(0.0..=1.0).contains(&w.jitter) {
        e.push(format!("{p}.jitter"), "must be within 0..=1");
    }
}

/// Owned routing table built by [`NotifySection::router`].
#[derive(Debug, Clone, Default)]
pub struct Router {
    sinks: Arc<Vec<(String, Filter)>>,
}

impl Router {
    /// The sinks that want `ev`.
    pub fn route(&self, ev: &Event) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|(_, f)| f.matches(ev))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Secrets (passwords, HMAC keys): masked in `Debug` and serialisation.
pub use sightline_core::secret::Secret;
