//! The recording index: the media crate's recorder writes MP4 segments (the run's encoded
//! H.264, no second encode) to the paths this module hands out, and reports each segment it
//! opens, closes or loses. The indexer task records them in the `recordings` table — `open`
//! while written (the current moment, never deleted), `closed` once finalised — and, with an
//! S3 store, uploads each closed segment from the spool directory and removes the local
//! copy. A segment whose writer failed (disk full) is marked `abandoned` and removed.

use crate::backend::MediaStore;
use crate::keys;
use crate::telemetry;
use sightline_core::RunId;
use sightline_store::{NewRecording, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the recorder reports about a segment file.
#[derive(Debug, Clone)]
pub enum SegmentNote {
    /// A new segment file was started; its first frame is at this wall time and recording
    /// time.
    Opened {
        path: PathBuf,
        wall_ms: i64,
        pts_ns: i64,
    },
    /// The segment was finalised and is playable; its end.
    Closed {
        path: PathBuf,
        wall_ms: i64,
        pts_ns: i64,
    },
    /// The segment could not be finished (write error); it is unplayable.
    Failed {
        path: PathBuf,
        wall_ms: i64,
        error: String,
    },
}

struct Open {
    id: uuid::Uuid,
    key: String,
}

/// Handle to the indexer task (cheap to clone).
#[derive(Clone)]
pub struct SegmentIndexer {
    tx: mpsc::UnboundedSender<(RunId, SegmentNote)>,
    media: Arc<MediaStore>,
}

impl std::fmt::Debug for SegmentIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentIndexer").finish_non_exhaustive()
    }
}

impl SegmentIndexer {
    /// Starts the indexer on the current tokio runtime. It ends when every handle is
    /// dropped and the notes are processed (uploads included).
    pub fn start(
        store: Store,
        media: Arc<MediaStore>,
        worker: String,
    ) -> (SegmentIndexer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            store,
            media: media.clone(),
            worker,
            open: HashMap::new(),
        };
        let join = tokio::spawn(task.run(rx));
        (SegmentIndexer { tx, media }, join)
    }

    /// Path for a new segment of `run` starting now (its directory is created).
    pub fn location(&self, run: &RunId) -> PathBuf {
        let now = chrono::Utc::now().timestamp_millis();
        let key = keys::segment_key(run, now, uuid::Uuid::now_v7());
        let path = self.media.recording_path(&key);
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the recording directory");
        }
        path
    }

    /// Reports a segment event (from the recorder's thread).
    pub fn note(&self, run: &RunId, note: SegmentNote) {
        let _ = self.tx.send((run.clone(), note));
    }
}

struct Task {
    store: Store,
    media: Arc<MediaStore>,
    worker: String,
    open: HashMap<PathBuf, Open>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<(RunId, SegmentNote)>) {
        while let Some((run, note)) = rx.recv().await {
            match note {
                SegmentNote::Opened {
                    path,
                    wall_ms,
                    pts_ns,
                } => self.opened(&run, path, wall_ms, pts_ns).await,
                SegmentNote::Closed {
                    path,
                    wall_ms,
                    pts_ns,
                } => self.closed(&run, &path, wall_ms, pts_ns).await,
                SegmentNote::Failed {
                    path,
                    wall_ms,
                    error,
                } => self.failed(&run, &path, wall_ms, &error).await,
            }
        }
    }

    fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(self.media.spool_root()).ok()?;
        Some(rel.to_string_lossy().replace('\\', "/"))
    }

    async fn opened(&mut self, run: &RunId, path: PathBuf, wall_ms: i64, pts_ns: i64) {
        let Some(key) = self.key_of(&path) else {
            tracing::error!(path = %path.display(), "segment outside the media store");
            return;
        };
        let id = keys::segment_id(&key).unwrap_or_else(uuid::Uuid::now_v7);
        let rec = NewRecording {
            id,
            run_id: run.clone(),
            volume: self.media.volume().to_owned(),
            key: key.clone(),
            worker: self.worker.clone(),
            start_wall_ms: wall_ms,
            start_pts_ns: pts_ns,
        };
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=5 {
            match self.store.open_recording(&rec).await {
                Ok(()) => break,
                Err(e) if attempt == 5 => {
                    tracing::error!(key, error = %e, "segment not indexed");
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        tracing::debug!(run_id = %run, key, "recording segment opened");
        self.open.insert(path, Open { id, key });
    }

    async fn closed(&mut self, run: &RunId, path: &Path, wall_ms: i64, pts_ns: i64) {
        let Some(o) = self.open.remove(path) else {
            tracing::warn!(path = %path.display(), "closed segment was never opened");
            return;
        };
        let bytes = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::error!(key = o.key, error = %e, "closed segment is missing");
                let _ = self
                    .store
                    .close_recording(o.id, "abandoned", wall_ms, pts_ns, 0)
                    .await;
                telemetry::segment("abandoned", 0);
                return;
            }
        };
        if !self.media.is_local() {
            // Upload, retried; the local copy is removed only once the object exists.
            let mut backoff = Duration::from_millis(200);
            let mut uploaded = false;
            for _ in 0..8 {
                match self.media.put_file(&o.key, path).await {
                    Ok(_) => {
                        uploaded = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(key = o.key, error = %e, "segment upload failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if !uploaded {
                tracing::error!(key = o.key, "segment not uploaded; given up");
                let _ = self
                    .store
                    .close_recording(o.id, "abandoned", wall_ms, pts_ns, 0)
                    .await;
                let _ = tokio::fs::remove_file(path).await;
                telemetry::segment("abandoned", 0);
                return;
            }
            let _ = tokio::fs::remove_file(path).await;
        }
        match self
            .store
            .close_recording(o.id, "closed", wall_ms, pts_ns, bytes)
            .await
        {
            Ok(()) => {
                tracing::debug!(run_id = %run, key = o.key, bytes, "recording segment closed");
                telemetry::segment("closed", bytes);
            }
            Err(e) => tracing::error!(key = o.key, error = %e, "segment close not indexed"),
        }
    }

    async fn failed(&mut self, run: &RunId, path: &Path, wall_ms: i64, error: &str) {
        tracing::warn!(run_id = %run, path = %path.display(), error, "recording segment lost");
        if let Some(o) = self.open.remove(path) {
            let _ = self
                .store
                .close_recording(o.id, "abandoned", wall_ms, 0, 0)
                .await;
        }
        let _ = tokio::fs::remove_file(path).await;
        telemetry::segment("abandoned", 0);
    }
}
