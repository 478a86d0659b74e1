//! The event writer: one async task per engine that receives each frame's events from the
//! run threads (bounded channel, so a slow database slows pipelines instead of growing memory
//! without bound), gathers them for a few milliseconds and writes them in one batch together
//! with their outbox rows. Failed writes are retried with backoff; nothing is dropped. If the
//! database is still unreachable when the engine shuts down, the remaining events are spilled
//! to `<data_dir>/spill/*.jsonl` and inserted at the next start.

use sightline_core::Event;
use sightline_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;
/// How long the writer waits to fill a batch.
const GATHER: Duration = Duration::from_millis(20);

/// Handle returned by [`spawn`].
/// Where each stored event is also sent: the outbox sinks it gets a row for (in the same
/// transaction), and a callback after each committed batch (wakes the notifier).
/// Names the outbox sinks an event goes to.
pub type RouteFn = Arc<dyn Fn(&Event) -> Vec<String> + Send + Sync>;

#[derive(Clone)]
pub struct EventRouting {
    pub route: RouteFn,
    pub written: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for EventRouting {
    fn default() -> Self {
        EventRouting {
            route: Arc::new(|_| Vec::new()),
            written: None,
        }
    }
}

impl std::fmt::Debug for EventRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRouting").finish_non_exhaustive()
    }
}

pub struct Writer {
    pub tx: mpsc::Sender<Vec<Event>>,
    pub join: tokio::task::JoinHandle<u64>,
}

/// Starts the writer. `routing` names the notification sinks each event gets an outbox row for;
/// `live` receives every event once it is stored (server-sent events).
pub fn spawn(
    store: Store,
    routing: EventRouting,
    live: broadcast::Sender<Event>,
    spill_dir: PathBuf,
    shutdown_deadline: Duration,
) -> Writer {
    let (tx, rx) = mpsc::channel::<Vec<Event>>(1024);
    let join = tokio::spawn(run(store, rx, routing, live, spill_dir, shutdown_deadline));
    Writer { tx, join }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Vec<Event>>,
    routing: EventRouting,
    live: broadcast::Sender<Event>,
    spill_dir: PathBuf,
    shutdown_deadline: Duration,
) -> u64 {
    let mut written = 0u64;
    let mut buf: Vec<Event> = Vec::new();
    let mut closed = false;
    while !closed {
        match rx.recv().await {
            Some(b) => buf.extend(b),
            None => break,
        }
        let deadline = tokio::time::Instant::now() + GATHER;
        while buf.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(b)) => buf.extend(b),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let give_up_at = if closed {
            Some(tokio::time::Instant::now() + shutdown_deadline)
        } else {
            None
        };
        if write_with_retry(&store, &buf, &routing, give_up_at).await {
            written += buf.len() as u64;
            if let Some(w) = &routing.written {
                w();
            }
            crate::telemetry::EventsWritten { count: buf.len() }.emit();
            for e in buf.drain(..) {
                let _ = live.send(e);
            }
        } else {
            spill(&spill_dir, &buf);
            buf.clear();
        }
    }
    // Channel closed: anything left over (closed while gathering) was handled above.
    written
}

/// Inserts the batch, retrying with backoff; `false` only if `give_up_at` passed.
async fn write_with_retry(
    store: &Store,
    events: &[Event],
    routing: &EventRouting,
    give_up_at: Option<tokio::time::Instant>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let route = routing.route.clone();
        match store.insert_events_routed(events, move |e| route(e)).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "event batch not written; retrying");
                crate::telemetry::EventWriteFailed.emit();
                if give_up_at.is_some_and(|t| tokio::time::Instant::now() + backoff > t) {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn spill(dir: &Path, events: &[Event]) {
    let path = dir.join(format!("events-{}.jsonl", uuid_like()));
    let res = std::fs::create_dir_all(dir).and_then(|_| {
        let mut text = String::new();
        for e in events {
            text.push_str(&serde_json::to_string(e).unwrap_or_default());
            text.push('\n');
        }
        std::fs::write(&path, text)
    });
    match res {
        Ok(()) => {
            tracing::error!(path = %path.display(), events = events.len(), "database unreachable at shutdown: events spilled to disk, inserted at next start")
        }
        Err(e) => {
            tracing::error!(error = %e, events = events.len(), "events could not be written or spilled")
        }
    }
}

fn uuid_like() -> String {
    sightline_core::EventId::generate().to_string()
}

/// Inserts events spilled by an earlier shutdown, then removes the files.
pub async fn recover_spilled(store: &Store, dir: &Path, routing: &EventRouting) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let events: Vec<Event> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let route = routing.route.clone();
        match store.insert_events_routed(&events, move |e| route(e)).await {
            Ok(_) => {
                n += events.len() as u64;
                let _ = std::fs::remove_file(&path);
                tracing::info!(path = %path.display(), events = events.len(), "spilled events recovered");
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "spilled events not recovered yet")
            }
        }
    }
    n
}
