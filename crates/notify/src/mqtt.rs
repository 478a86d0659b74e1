//! MQTT delivery with `rumqttc`. The client's event loop is polled in its own task, which
//! reports connection changes, packets handed to the socket and the broker's
//! acknowledgements over a channel. The delivery task publishes a round of due rows in order
//! and marks a row delivered only once the broker has acknowledged it (PUBACK for QoS 1,
//! PUBCOMP for QoS 2) or, for QoS 0, once the publish was written to the connection.
//!
//! A lost connection abandons the connection object altogether (so no half-remembered
//! session state can resend or confuse packet ids), records the round's unacknowledged rows
//! as failed but due at once, and reconnects with exponential backoff and jitter. Broker
//! outages therefore never dead-letter anything: the backlog waits in the outbox.

use crate::config::{MqttSinkConfig, OCCUPANCY_PLACEHOLDERS};
use crate::notifier::Ctx;
use crate::payload::Notification;
use crate::retry::RetryPolicy;
use crate::telemetry;
use crate::template::{PLACEHOLDERS, TopicTemplate};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, Transport};
use sightline_core::EventKind;
use sightline_store::OutboxRow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the event-loop task reports.
#[derive(Debug)]
enum ConnEvent {
    Connected,
    /// A publish with this packet id (0 for QoS 0) was written to the connection.
    Sent(u16),
    /// The broker acknowledged this packet id (PUBACK or PUBCOMP).
    Acked(u16),
    Lost(String),
}

/// One connection: the client, the reports of its event loop, and that loop's task.
struct Conn {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

fn options(cfg: &MqttSinkConfig, client_id: &str) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        .set_clean_session(true)
        .set_inflight(u16::try_from(cfg.batch.max(2)).unwrap_or(u16::MAX))
        .set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some(user) = &cfg.username {
        let pw = cfg.password.as_ref().map(|p| p.expose().to_owned());
        o.set_credentials(user.clone(), pw.unwrap_or_default());
    }
    if cfg.tls {
        let tls = match &cfg.ca_file {
            Some(path) => rumqttc::TlsConfiguration::Simple {
                ca: std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?,
                alpn: None,
                client_auth: None,
            },
            // rumqttc panics when the platform roots cannot be loaded; report it instead.
            None => std::panic::catch_unwind(rumqttc::TlsConfiguration::default)
                .map_err(|_| "cannot load the system's TLS root certificates".to_owned())?,
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    Ok(o)
}

fn connect(opts: MqttOptions, cap: usize) -> Conn {
    let (client, mut el) = AsyncClient::new(opts, cap);
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let report = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => ConnEvent::Connected,
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => ConnEvent::Sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(a))) => ConnEvent::Acked(a.pkid),
                Ok(Event::Incoming(Packet::PubComp(c))) => ConnEvent::Acked(c.pkid),
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(ConnEvent::Lost(e.to_string()));
                    return;
                }
            };
            if tx.send(report).is_err() {
                return;
            }
        }
    });
    Conn {
        client,
        events,
        task,
    }
}

/// One publish of a round: which row it belongs to.
struct Pub {
    row: usize,
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

struct Worker {
    ctx: Ctx,
    cfg: MqttSinkConfig,
    client_id: String,
    topic: TopicTemplate,
    occupancy: TopicTemplate,
    qos: QoS,
    reconnect: RetryPolicy,
    /// Failed rows of a broken round are due again at once and never die.
    redeliver: RetryPolicy,
}

pub(crate) async fn run(ctx: Ctx, cfg: MqttSinkConfig) {
    let span = tracing::info_span!("mqtt", sink = %cfg.name);
    tracing::Instrument::instrument(run_inner(ctx, cfg), span).await;
}

async fn run_inner(ctx: Ctx, cfg: MqttSinkConfig) {
    // Validated before start: parse errors cannot happen here, but stay safe.
    let (Ok(topic), Ok(occupancy)) = (
        TopicTemplate::parse(&cfg.topic, &PLACEHOLDERS),
        TopicTemplate::parse(&cfg.occupancy_topic, &OCCUPANCY_PLACEHOLDERS),
    ) else {
        tracing::error!(sink = %cfg.name, "invalid topic template; sink not started");
        return;
    };
    let client_id = cfg.client_id.clone().unwrap_or_else(|| {
        format!(
            "sightline-{}-{}",
            cfg.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let mut w = Worker {
        qos: qos(cfg.qos),
        reconnect: cfg.reconnect_policy(),
        redeliver: RetryPolicy {
            base: Duration::ZERO,
            max: Duration::ZERO,
            jitter: 0.0,
            max_attempts: None,
        },
        ctx,
        cfg,
        client_id,
        topic,
        occupancy,
    };
    w.run().await;
}

/// How an idle wait ended.
enum Idle {
    Stop,
    Work,
    Lost(String),
}

impl Worker {
    async fn run(&mut self) {
        let mut conn: Option<Conn> = None;
        let mut failures = 0u32;
        loop {
            self.ctx.refresh_depth(false).await;
            if self.ctx.stopping() {
                break;
            }
            let Some(c) = conn.as_mut() else {
                match self.establish().await {
                    Ok(c) => {
                        failures = 0;
                        self.ctx.state.set_connected(true, None);
                        conn = Some(c);
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        self.ctx.state.set_connected(false, Some(&e));
                        let d = self.reconnect.delay(failures, &mut rand::rng());
                        tracing::debug!(delay_ms = d.as_millis() as u64, "reconnecting later");
                        if !self.ctx.backoff(d).await {
                            break;
                        }
                    }
                }
                continue;
            };
            let lost = match self.round(c).await {
                Ok(0) => match self.idle(c).await {
                    Idle::Stop => break,
                    Idle::Work => None,
                    Idle::Lost(e) => Some(e),
                },
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if let Some(e) = lost {
                // A fresh connection replaces this one; the first attempt is immediate.
                self.ctx.state.set_connected(false, Some(&e));
                conn = None;
            }
        }
        if let Some(c) = conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.client.disconnect()).await;
        }
        self.ctx.refresh_depth(true).await;
    }

    async fn establish(&mut self) -> Result<Conn, String> {
        let opts = options(&self.cfg, &self.client_id)?;
        let mut conn = connect(opts, self.cfg.batch as usize * 2 + 16);
        let first = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, conn.events.recv()) => r,
            _ = self.ctx.stopped() => return Err("stopping".into()),
        };
        match first {
            Ok(Some(ConnEvent::Connected)) => Ok(conn),
            Ok(Some(ConnEvent::Lost(e))) => Err(e),
            Ok(Some(other)) => Err(format!("unexpected {other:?} before CONNACK")),
            Ok(None) => Err("event loop ended".into()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    /// Waits for work (wake-up or poll interval) while watching the connection.
    async fn idle(&mut self, conn: &mut Conn) -> Idle {
        tokio::select! {
            keep = self.ctx.idle() => if keep { Idle::Work } else { Idle::Stop },
            ev = conn.events.recv() => match ev {
                Some(ConnEvent::Lost(e)) => Idle::Lost(e),
                None => Idle::Lost("event loop ended".into()),
                Some(_) => Idle::Work,
            },
        }
    }

    fn visibility(&self) -> Duration {
        Duration::from_millis(self.cfg.ack_timeout_ms.saturating_mul(2)) + CONNECT_TIMEOUT
    }

    /// One round: claim due rows, publish them in order, wait for every acknowledgement.
    /// Returns the rows claimed, or the connection error (the round's unacknowledged rows
    /// are then recorded as failed and due again at once).
    async fn round(&mut self, conn: &mut Conn) -> Result<usize, String> {
        let rows = self.ctx.claim(self.cfg.batch, self.visibility()).await;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pubs = Vec::with_capacity(rows.len());
        let mut live = vec![false; rows.len()];
        let mut remaining = vec![0u32; rows.len()];
        for (i, row) in rows.iter().enumerate() {
            let Some(ev) = self.ctx.decode(row).await else {
                continue;
            };
            live[i] = true;
            let note = Notification::from_event(&ev);
            pubs.push(Pub {
                row: i,
                topic: self.topic.render(&ev),
                payload: note.to_json(),
                retain: false,
            });
            remaining[i] += 1;
            if self.cfg.retain_occupancy
                && ev.body.kind == EventKind::Count
                && ev.body.zone.is_some()
                && let Some(count) = ev.body.count
            {
                pubs.push(Pub {
                    row: i,
                    topic: self.occupancy.render(&ev),
                    payload: count.to_string().into_bytes(),
                    retain: true,
                });
                remaining[i] += 1;
            }
        }
        let started = Instant::now();
        let result = self.publish_round(conn, pubs, &mut remaining).await;
        let (done, failed): (Vec<usize>, Vec<usize>) = (0..rows.len())
            .filter(|i| live[*i])
            .partition(|i| remaining[*i] == 0);
        let ids: Vec<i64> = done.iter().map(|i| rows[*i].id).collect();
        if !ids.is_empty() {
            self.ctx.mark_delivered(&ids).await;
            telemetry::delivered(&self.cfg.name, ids.len() as u64, started.elapsed());
        }
        if let Err(e) = &result {
            let failed: Vec<&OutboxRow> = failed.iter().map(|i| &rows[*i]).collect();
            self.ctx.mark_failed(&failed, &self.redeliver, e).await;
        }
        result.map(|()| rows.len())
    }

    async fn publish_round(
        &self,
        conn: &mut Conn,
        pubs: Vec<Pub>,
        remaining: &mut [u32],
    ) -> Result<(), String> {
        let mut order: VecDeque<usize> = VecDeque::with_capacity(pubs.len());
        let mut inflight: HashMap<u16, usize> = HashMap::new();
        let mut outstanding = pubs.len();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.cfg.ack_timeout_ms);
        let mut sender = pubs.into_iter();
        let mut next = sender.next();
        while outstanding > 0 {
            // Hand publishes to the client while its queue has room; it never blocks long
            // because the queue holds a whole round.
            if let Some(p) = next.take() {
                order.push_back(p.row);
                conn.client
                    .publish(p.topic, self.qos, p.retain, p.payload)
                    .await
                    .map_err(|e| format!("publish not queued: {e}"))?;
                next = sender.next();
                // Drain reports without waiting, so acks are seen while publishing.
                while let Ok(ev) = conn.events.try_recv() {
                    self.on_event(ev, &mut order, &mut inflight, remaining, &mut outstanding)?;
                }
                continue;
            }
            let ev = tokio::time::timeout_at(deadline, conn.events.recv())
                .await
                .map_err(|_| "acknowledgements timed out".to_owned())?
                .ok_or_else(|| "event loop ended".to_owned())?;
            self.on_event(ev, &mut order, &mut inflight, remaining, &mut outstanding)?;
        }
        Ok(())
    }

    fn on_event(
        &self,
        ev: ConnEvent,
        order: &mut VecDeque<usize>,
        inflight: &mut HashMap<u16, usize>,
        remaining: &mut [u32],
        outstanding: &mut usize,
    ) -> Result<(), String> {
        match ev {
            ConnEvent::Sent(pkid) => {
                let row = order
                    .pop_front()
                    .ok_or_else(|| format!("broker sent a publish ({pkid}) we did not make"))?;
                if self.qos == QoS::AtMostOnce {
                    remaining[row] -= 1;
                    *outstanding -= 1;
                } else {
                    inflight.insert(pkid, row);
                }
            }
            ConnEvent::Acked(pkid) => {
                if let Some(row) = inflight.remove(&pkid) {
                    remaining[row] -= 1;
                    *outstanding -= 1;
                }
            }
            ConnEvent::Lost(e) => return Err(e),
            ConnEvent::Connected => {}
        }
        Ok(())
    }
}
