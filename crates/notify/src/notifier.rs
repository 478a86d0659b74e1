//! The notifier: one delivery task per configured sink, started together and stopped
//! together. Each task reads its own sink's outbox rows, so a sink that is down only grows
//! its own backlog: the event writer never waits on a sink, and other sinks keep delivering.
//!
//! Shutdown protocol: [`Notifier::shutdown`] (or the `shutdown` future given to
//! [`Notifier::start`]) asks every task to stop; a task finishes the round it is in (bounded
//! by the sink's timeouts), so nothing it has claimed stays hidden, and returns. Dropping a
//! `Notifier` aborts the tasks at once, like a crash: rows claimed but not yet marked become
//! due again after their visibility timeout and are delivered again (at least once).

use crate::config::{NotifySection, SinkConfig};
use crate::error::NotifyError;
use crate::retry::{Retry, RetryPolicy};
use crate::telemetry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sightline_core::{Clock, Event, FieldErrors};
use sightline_store::{OutboxDepth, OutboxRow, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How often a task refreshes its backlog figures (gauges and [`Notifier::status`]).
const DEPTH_REFRESH: Duration = Duration::from_secs(1);

/// Health of one sink, for `/ready` details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStatus {
    pub name: String,
    /// `mqtt` or `webhook`.
    pub kind: &'static str,
    /// MQTT: connected to the broker. Webhook: the last request reached the endpoint and
    /// succeeded (true until the first failure).
    pub connected: bool,
    /// Undelivered rows (refreshed about every second).
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
    /// Whether `pending` is over `max_outbox_depth`.
    pub over_cap: bool,
    pub last_error: Option<String>,
}

/// What a sink task shares with the handle.
#[derive(Debug)]
pub(crate) struct SinkState {
    pub(crate) name: String,
    kind: &'static str,
    connected: AtomicBool,
    over_cap: AtomicBool,
    depth: Mutex<OutboxDepth>,
    last_error: Mutex<Option<String>>,
}

impl SinkState {
    fn new(name: &str, kind: &'static str, connected: bool) -> Self {
        SinkState {
            name: name.to_owned(),
            kind,
            connected: AtomicBool::new(connected),
            over_cap: AtomicBool::new(false),
            depth: Mutex::new(OutboxDepth::default()),
            last_error: Mutex::new(None),
        }
    }

    /// Records a connection change (logged and exported only when it changes).
    pub(crate) fn set_connected(&self, connected: bool, error: Option<&str>) {
        if let Some(e) = error {
            self.set_error(e);
        }
        if self.connected.swap(connected, Ordering::Relaxed) != connected {
            telemetry::connection(&self.name, connected, error);
        }
    }

    pub(crate) fn set_error(&self, e: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_owned());
    }

    fn status(&self) -> SinkStatus {
        let d = *self.depth.lock().unwrap_or_else(|p| p.into_inner());
        SinkStatus {
            name: self.name.clone(),
            kind: self.kind,
            connected: self.connected.load(Ordering::Relaxed),
            pending: d.pending,
            dead: d.dead,
            over_cap: self.over_cap.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// What every sink task needs: the outbox, time, its shared state, wake-ups and the stop
/// signal.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: Arc<SinkState>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    poll: Duration,
    max_depth: u64,
    last_depth: Option<Instant>,
    /// After a failed delivery, nothing newer is claimed before the failed rows' retry time
    /// (see [`Ctx::claim`]).
    hold_until: Mutex<Option<DateTime<Utc>>>,
}

impl Ctx {
    pub(crate) fn sink(&self) -> &str {
        &self.state.name
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.clock.wall())
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the notifier is asked to stop (or its handle is gone).
    pub(crate) async fn stopped(&mut self) {
        while !*self.stop.borrow_and_update() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits for a wake-up, the poll interval or the stop signal. Returns false when
    /// stopping.
    pub(crate) async fn idle(&mut self) -> bool {
        self.sleep(self.poll).await
    }

    /// Sleeps `d` unless woken or stopped. Returns false when stopping.
    pub(crate) async fn sleep(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wake.notified() => {}
            _ = self.stop.changed() => {}
        }
        !self.stopping()
    }

    /// Sleeps `d` (a reconnect delay) unless stopped; wake-ups do not cut it short.
    pub(crate) async fn backoff(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
        !self.stopping()
    }

    /// Refreshes the backlog gauges and status at most every [`DEPTH_REFRESH`] (always when
    /// `force`).
    pub(crate) async fn refresh_depth(&mut self, force: bool) {
        if !force && self.last_depth.is_some_and(|t| t.elapsed() < DEPTH_REFRESH) {
            return;
        }
        self.last_depth = Some(Instant::now());
        match self.store.outbox_depth(&self.state.name).await {
            Ok(d) => {
                *self.state.depth.lock().unwrap_or_else(|p| p.into_inner()) = d;
                let over = d.pending > self.max_depth;
                let was = self.state.over_cap.swap(over, Ordering::Relaxed);
                telemetry::depth(
                    &self.state.name,
                    d.pending,
                    d.dead,
                    self.max_depth,
                    over,
                    was,
                );
            }
            Err(e) => tracing::warn!(sink = self.sink(), error = %e, "outbox depth unavailable"),
        }
    }

    /// Claims up to `limit` due rows, hidden from other tasks for `visibility`. A store
    /// error is logged and yields nothing (the caller idles and tries again).
    ///
    /// After a failure the sink holds back until the failed rows are due again: newer rows,
    /// which are due at once, would otherwise overtake the ones waiting for their retry,
    /// and a receiver would see events out of order after every outage. Then the oldest
    /// rows go first again (rows are claimed in insertion order), so a sink with one
    /// request in flight delivers in order.
    pub(crate) async fn claim(&self, limit: u32, visibility: Duration) -> Vec<OutboxRow> {
        let now = self.now();
        {
            let mut hold = self.hold_until.lock().unwrap_or_else(|p| p.into_inner());
            match *hold {
                // In milliseconds, the precision the outbox stores retry times in.
                Some(until) if now.timestamp_millis() < until.timestamp_millis() => {
                    return Vec::new();
                }
                Some(_) => *hold = None,
                None => {}
            }
        }
        match self
            .store
            .claim_due(&self.state.name, limit, self.now(), visibility)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(sink = self.sink(), error = %e, "cannot read the outbox");
                Vec::new()
            }
        }
    }

    pub(crate) async fn mark_delivered(&self, ids: &[i64]) {
        if let Err(e) = self.store.mark_delivered(ids).await {
            // The rows become due again after their visibility timeout: delivered twice,
            // never lost.
            tracing::warn!(sink = self.sink(), error = %e, rows = ids.len(),
                "delivered rows not marked; they will be delivered again");
        }
    }

    /// Records a failed attempt for each row: retried per `policy`, or dead.
    pub(crate) async fn mark_failed(&self, rows: &[&OutboxRow], policy: &RetryPolicy, error: &str) {
        if rows.is_empty() {
            return;
        }
        let now = self.now();
        let plan: Vec<(i64, DateTime<Utc>, bool)> = {
            let mut rng = rand::rng();
            rows.iter()
                .map(
                    |r| match policy.after_failure(r.attempts.saturating_add(1), now, &mut rng) {
                        Retry::At(t) => (r.id, t, false),
                        Retry::Dead => (r.id, now, true),
                    },
                )
                .collect()
        };
        let dead = plan.iter().filter(|p| p.2).count() as u64;
        if let Some(first_retry) = plan.iter().filter(|p| !p.2).map(|p| p.1).min() {
            *self.hold_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(first_retry);
        }
        for (id, at, is_dead) in plan {
            if let Err(e) = self.store.mark_failed(id, at, error, is_dead).await {
                tracing::warn!(sink = self.sink(), outbox_id = id, error = %e,
                    "failure not recorded; the row will be retried after its visibility timeout");
            }
        }
        self.state.set_error(error);
        telemetry::failed(self.sink(), rows.len() as u64, dead, error);
    }

    /// Decodes a row's event; a row that does not hold an event is made a dead letter.
    pub(crate) async fn decode(&self, row: &OutboxRow) -> Option<Event> {
        match serde_json::from_value::<Event>(row.payload.clone()) {
            Ok(ev) => Some(ev),
            Err(e) => {
                let msg = format!("payload is not an event: {e}");
                if let Err(e) = self.store.mark_failed(row.id, self.now(), &msg, true).await {
                    tracing::warn!(sink = self.sink(), outbox_id = row.id, error = %e,
                        "undecodable row not dead-lettered");
                }
                telemetry::failed(self.sink(), 1, 1, &msg);
                None
            }
        }
    }
}

struct SinkHandle {
    state: Arc<SinkState>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Running delivery tasks. See the module docs for the shutdown protocol.
pub struct Notifier {
    sinks: Vec<SinkHandle>,
    stop: watch::Sender<bool>,
    /// The shutdown-future watcher and the PostgreSQL listener.
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.state.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Notifier {
    /// Validates `config` and spawns one delivery task per sink on the current tokio
    /// runtime. Never waits for a sink: a broker that is down at start shows as
    /// disconnected in [`Notifier::status`] while the task keeps reconnecting. The tasks
    /// stop when `shutdown` resolves or [`Notifier::shutdown`] is called.
    pub fn start(
        store: Store,
        config: &NotifySection,
        clock: Arc<dyn Clock>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Notifier, NotifyError> {
        let mut errors = FieldErrors::new();
        config.validate("notify", &mut errors);
        if !errors.is_empty() {
            return Err(NotifyError::Config(errors));
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut sinks = Vec::with_capacity(config.sinks.len());
        for sink in &config.sinks {
            let state = Arc::new(SinkState::new(
                sink.name(),
                sink.kind(),
                matches!(sink, SinkConfig::Webhook(_)),
            ));
            telemetry::connection(sink.name(), state.connected.load(Ordering::Relaxed), None);
            let wake = Arc::new(Notify::new());
            let ctx = Ctx {
                store: store.clone(),
                clock: clock.clone(),
                state: state.clone(),
                wake: wake.clone(),
                stop: stop_rx.clone(),
                poll: Duration::from_millis(config.poll_interval_ms),
                max_depth: config.max_outbox_depth,
                last_depth: None,
                hold_until: Mutex::new(None),
            };
            let task = match sink {
                SinkConfig::Mqtt(m) => tokio::spawn(crate::mqtt::run(ctx, m.clone())),
                SinkConfig::Webhook(w) => {
                    let worker = crate::webhook::Worker::new(ctx, w.clone())?;
                    tokio::spawn(worker.run())
                }
            };
            sinks.push(SinkHandle { state, wake, task });
        }
        let stop_on = stop.clone();
        let wakers: Vec<Arc<Notify>> = sinks.iter().map(|s| s.wake.clone()).collect();
        let listener = tokio::spawn(listen(store, wakers, stop_rx));
        let watcher = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_on.send(true);
        });
        tracing::info!(sinks = sinks.len(), "notifier started");
        Ok(Notifier {
            sinks,
            stop,
            background: vec![watcher, listener],
        })
    }

    /// Health of every sink, from figures the tasks keep current (no database access).
    pub fn status(&self) -> Vec<SinkStatus> {
        self.sinks.iter().map(|s| s.state.status()).collect()
    }

    /// A cheap, cloneable view of [`Notifier::status`] (for the API's `/ready`).
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(self.sinks.iter().map(|s| s.state.clone()).collect())
    }

    /// Whether any delivery task is still running (false once stopped, by
    /// [`Notifier::shutdown`] or the `shutdown` future, or if a task died).
    pub fn is_running(&self) -> bool {
        self.sinks.iter().any(|s| !s.task.is_finished())
    }

    /// Tells every sink task to look at the outbox now (call after writing events with
    /// outbox rows, to deliver without waiting for the poll interval).
    pub fn wake(&self) {
        for s in &self.sinks {
            s.wake.notify_one();
        }
    }

    /// A cheap handle that can [`Waker::wake`] the tasks from the event writer.
    pub fn waker(&self) -> Waker {
        Waker(self.sinks.iter().map(|s| s.wake.clone()).collect())
    }

    /// Stops every task after its current round and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for s in std::mem::take(&mut self.sinks) {
            if let Err(e) = s.task.await
                && e.is_panic()
            {
                tracing::error!(sink = %s.state.name, "delivery task panicked");
            }
        }
        for b in std::mem::take(&mut self.background) {
            b.abort();
        }
        tracing::info!("notifier stopped");
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for s in &self.sinks {
            s.task.abort();
        }
        for b in &self.background {
            b.abort();
        }
    }
}

/// On PostgreSQL, wakes every sink when any process commits an event batch (the store's
/// `LISTEN`/`NOTIFY` channel), so delivery starts at once even when the events were written
/// by another worker. On SQLite (or if listening fails) polling alone finds new rows.
async fn listen(store: Store, wakers: Vec<Arc<Notify>>, mut stop: watch::Receiver<bool>) {
    if wakers.is_empty() {
        return;
    }
    let mut l = match store.listen_events().await {
        Ok(Some(l)) => l,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for new events; polling only");
            return;
        }
    };
    loop {
        tokio::select! {
            n = l.recv() => {
                if n.is_none() {
                    return;
                }
                for w in &wakers {
                    w.notify_one();
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Reads the sinks' health without owning the [`Notifier`].
#[derive(Debug, Clone)]
pub struct StatusHandle(Vec<Arc<SinkState>>);

impl StatusHandle {
    pub fn status(&self) -> Vec<SinkStatus> {
        self.0.iter().map(|s| s.status()).collect()
    }
}

/// Wakes the delivery tasks; see [`Notifier::waker`].
#[derive(Debug, Clone)]
pub struct Waker(Vec<Arc<Notify>>);

impl Waker {
    pub fn wake(&self) {
        for w in &self.0 {
            w.notify_one();
        }
    }
}
