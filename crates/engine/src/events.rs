//! Where a run's events go. The pipeline thread stamps each rule event with an id, its run
//! and the wall time, then hands the batch of one frame to an [`EventSink`]: JSON lines for
//! `sightline run`, the database writer for the engine. Sinks must not lose events; a slow
//! sink applies backpressure rather than dropping.

use sightline_core::{Clock, Event, EventId, RuleEvent, RunId};
use std::io::Write;

/// Receives the events of a run, frame by frame.
pub trait EventSink: Send {
    fn emit(&mut self, events: &[Event]) -> Result<(), SinkError>;
    /// Called when the run ends: write out anything buffered.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("event sink: {0}")]
pub struct SinkError(pub String);

/// How a run's events get their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventIds {
    /// Time-ordered random ids (UUIDv7): live sources and looped files, whose events after
    /// a restart are new ones.
    #[default]
    Random,
    /// Ids derived from the run and the rule decision ([`EventId::derived`]): a file played
    /// once, which a takeover or a restart replays from its start. The replayed events get
    /// the ids they had and the store keeps each once (`ON CONFLICT (id) DO NOTHING`, and no
    /// second outbox row), so nothing is stored or notified twice. `base_ms` is the run's
    /// creation time.
    Replay { base_ms: i64 },
}

/// Turns rule events into stored events.
pub fn stamp(run: &RunId, clock: &dyn Clock, ids: EventIds, body: Vec<RuleEvent>) -> Vec<Event> {
    let wall_ms = clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    body.into_iter()
        .map(|b| Event {
            id: match ids {
                EventIds::Random => EventId::generate(),
                EventIds::Replay { base_ms } => EventId::derived(run, base_ms, &b),
            },
            run_id: run.clone(),
            wall_ms,
            body: b,
            media: None,
        })
        .collect()
}

/// One JSON object per line (stdout or a file).
pub struct JsonLinesSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(out: W) -> Self {
        JsonLinesSink { out }
    }
}

impl<W: Write + Send> EventSink for JsonLinesSink<W> {
    fn emit(&mut self, events: &[Event]) -> Result<(), SinkError> {
        for e in events {
            serde_json::to_writer(&mut self.out, e).map_err(|e| SinkError(e.to_string()))?;
            self.out
                .write_all(b"\n")
                .map_err(|e| SinkError(e.to_string()))?;
        }
        if !events.is_empty() {
            self.out.flush().map_err(|e| SinkError(e.to_string()))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| SinkError(e.to_string()))
    }
}

/// Keeps events in memory (tests, `sightline bench`).
#[derive(Default, Clone)]
pub struct MemorySink(pub std::sync::Arc<parking_lot::Mutex<Vec<Event>>>);

impl EventSink for MemorySink {
    fn emit(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.0.lock().extend_from_slice(events);
        Ok(())
    }
}

/// Sends batches to the async database writer over a bounded channel; blocks the run
/// thread when the writer is behind (backpressure, never loss). Must be used from a plain
/// thread, not from inside the async runtime.
pub struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Vec<Event>>,
}

impl ChannelSink {
    pub fn new(tx: tokio::sync::mpsc::Sender<Vec<Event>>) -> Self {
        ChannelSink { tx }
    }
}

impl EventSink for ChannelSink {
    fn emit(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(events.to_vec())
            .map_err(|_| SinkError("event writer has stopped".into()))
    }
}
