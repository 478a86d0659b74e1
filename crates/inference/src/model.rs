//! A loaded model shared by every run, and the batcher thread that owns its session.
//!
//! ONNX Runtime sessions take `&mut self` to run, and one session per stream would multiply
//! memory (and, on a GPU, contexts). So each model gets exactly one session, owned by one
//! dedicated thread — never an async runtime thread. Clients (one per run) push requests into
//! their own bounded queues; the batcher takes them round-robin (so one busy stream cannot
//! starve the others), gathers up to `max_batch` requests or waits at most `max_wait` when
//! the batch dimension is dynamic, runs them as one batch, and sends each caller its own
//! tensors through a oneshot channel. With a fixed batch dimension (both shipped models are
//! `[1, ...]`) requests run one at a time, still round-robin.
//!
//! Shutdown: dropping the last handle (the [`SharedModel`] and every client hold one) sets
//! the stop flag, wakes the thread and joins it; queued requests then resolve as
//! [`InferError::Closed`].

use crate::client::InferClient;
use crate::decode::DetectDecoder;
use crate::error::InferError;
use crate::manifest::ModelManifest;
use crate::runtime::RuntimeOptions;
use crate::session::{ModelInfo, ModelSession, RawTensor};
use crate::stats::ModelStats;
use parking_lot::{Condvar, Mutex};
use sightline_core::{ClassId, Labels};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Per-request overrides of the manifest's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectOptions {
    /// Minimum score (default: the manifest's).
    pub score_threshold: Option<f32>,
    /// NMS IoU threshold (default: the manifest's).
    pub iou_threshold: Option<f32>,
    /// Only these classes (default: all).
    pub classes: Option<Vec<ClassId>>,
}

pub(crate) type Reply = Result<Vec<RawTensor>, InferError>;

pub(crate) struct Request {
    pub input: Vec<f32>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Reply>,
}

pub(crate) struct ClientSlot {
    pub id: u64,
    pub capacity: usize,
    pub queue: VecDeque<Request>,
}

#[derive(Default)]
pub(crate) struct QueueState {
    pub clients: Vec<ClientSlot>,
    pub next_client: u64,
    rr: usize,
    pub shutdown: bool,
}

impl QueueState {
    /// Pops the oldest request of the next client (round-robin) that has one.
    fn pop_round_robin(&mut self, skip: &[u64]) -> Option<(u64, Request)> {
        let n = self.clients.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            let slot = &mut self.clients[i];
            if skip.contains(&slot.id) {
                continue;
            }
            if let Some(r) = slot.queue.pop_front() {
                self.rr = (i + 1) % n;
                return Some((slot.id, r));
            }
        }
        None
    }

    pub(crate) fn queued(&self) -> usize {
        self.clients.iter().map(|c| c.queue.len()).sum()
    }
}

/// State shared by the model handle, its clients and the batcher thread.
pub(crate) struct Shared {
    pub state: Mutex<QueueState>,
    pub wake: Condvar,
    pub stats: Mutex<ModelStats>,
    pub dropped: AtomicU64,
    /// Input buffers returned by the batcher, reused by `submit`.
    pub pool: Mutex<Vec<Vec<f32>>>,
}

/// What callers need to decode their results (immutable after load).
#[derive(Debug)]
pub(crate) struct ModelCore {
    pub manifest: ModelManifest,
    pub labels: Labels,
    pub decoder: DetectDecoder,
    pub info: ModelInfo,
}

/// A model loaded once and shared by every run that uses it.
pub struct SharedModel {
    pub(crate) core: Arc<ModelCore>,
    pub(crate) shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for SharedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedModel")
            .field("info", &self.core.info)
            .finish_non_exhaustive()
    }
}

const POOL_MAX: usize = 32;

impl SharedModel {
    /// Opens the model (`opts.sessions` sessions for `opts.provider`), checks it against its
    /// manifest and starts one batcher thread per session; the batchers share the clients'
    /// queues, so a free session takes the next request.
    pub fn load(
        onnx: &Path,
        manifest: ModelManifest,
        opts: &RuntimeOptions,
    ) -> Result<Arc<SharedModel>, InferError> {
        let (session, decoder) = ModelSession::open(onnx, &manifest, opts)?;
        let core = Arc::new(ModelCore {
            labels: manifest.labels(),
            info: session.info().clone(),
            manifest,
            decoder,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            stats: Mutex::new(ModelStats::default()),
            dropped: AtomicU64::new(0),
            pool: Mutex::new(Vec::new()),
        });
        let max_batch = if core.info.dynamic_batch {
            opts.batch.max_batch.max(1)
        } else {
            1
        };
        let mut sessions = vec![session];
        for _ in 1..opts.sessions.max(1) {
            sessions.push(ModelSession::open(onnx, &core.manifest, opts)?.0);
        }
        let mut workers = Vec::new();
        for (i, session) in sessions.into_iter().enumerate() {
            let batcher = Batcher {
                session,
                shared: shared.clone(),
                max_batch,
                max_wait: opts.batch.max_wait,
                batch_buf: Vec::new(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("infer-{}-{i}", core.info.name))
                .spawn(move || batcher.run());
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    stop_workers(&shared, &mut workers, &core.info.name);
                    return Err(InferError::io("starting the batcher thread", e));
                }
            }
        }
        Ok(Arc::new(SharedModel {
            core,
            shared,
            workers: Mutex::new(workers),
        }))
    }

    pub fn labels(&self) -> &Labels {
        &self.core.labels
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.core.manifest
    }

    /// What was found when loading (provider in use, dynamic batch, tensor names and shapes).
    pub fn info(&self) -> &ModelInfo {
        &self.core.info
    }

    /// A client with its own queue of at most `queue_capacity` pending requests (min 1);
    /// when full, its oldest pending request is dropped.
    pub fn client(self: &Arc<Self>, queue_capacity: usize) -> InferClient {
        InferClient::new(self.clone(), queue_capacity.max(1))
    }

    /// Requests waiting in all client queues (for admission control).
    pub fn queued(&self) -> usize {
        self.shared.state.lock().queued()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ModelStats {
        let mut s = self.shared.stats.lock().clone();
        s.dropped = self.shared.dropped.load(Ordering::Relaxed);
        s.queued = self.queued();
        s
    }
}

impl Drop for SharedModel {
    fn drop(&mut self) {
        stop_workers(&self.shared, &mut self.workers.lock(), &self.core.info.name);
    }
}

/// Stops and joins the batcher threads.
fn stop_workers(shared: &Shared, workers: &mut Vec<JoinHandle<()>>, name: &str) {
    shared.state.lock().shutdown = true;
    shared.wake.notify_all();
    for h in workers.drain(..) {
        if h.join().is_err() {
            tracing::error!(model = %name, "batcher thread panicked");
        }
    }
}

struct Batcher {
    session: ModelSession,
    shared: Arc<Shared>,
    max_batch: usize,
    max_wait: Duration,
    batch_buf: Vec<f32>,
}

impl Batcher {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.execute(batch);
        }
        tracing::debug!(model = %self.session.info().name, "batcher stopped");
    }

    /// Blocks until there is work; `None` on shutdown.
    fn next_batch(&self) -> Option<Vec<Request>> {
        let mut st = self.shared.state.lock();
        let (first_client, first) = loop {
            if st.shutdown {
                return None;
            }
            if let Some(r) = st.pop_round_robin(&[]) {
                break r;
            }
            self.shared.wake.wait(&mut st);
        };
        let deadline = first.enqueued + self.max_wait;
        let mut batch = vec![first];
        let mut members = vec![first_client];
        while batch.len() < self.max_batch && !st.shutdown {
            // Take what is queued, at most one per client per pass so every stream gets in.
            let mut pass = Vec::new();
            while batch.len() < self.max_batch {
                let Some((id, r)) = st.pop_round_robin(&pass) else {
                    break;
                };
                pass.push(id);
                if !members.contains(&id) {
                    members.push(id);
                }
                batch.push(r);
            }
            if !pass.is_empty() {
                continue;
            }
            // Nothing queued: wait only if a client not yet in the batch could still join.
            if st.clients.iter().all(|c| members.contains(&c.id)) {
                break;
            }
            if self.shared.wake.wait_until(&mut st, deadline).timed_out() {
                while batch.len() < self.max_batch {
                    let Some((_, r)) = st.pop_round_robin(&[]) else {
                        break;
                    };
                    batch.push(r);
                }
                break;
            }
        }
        Some(batch)
    }

    fn execute(&mut self, batch: Vec<Request>) {
        // Callers that gave up (dropped their `Pending`) need no inference.
        let (batch, abandoned): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|r| !r.reply.is_closed());
        self.recycle(abandoned.into_iter().map(|r| r.input));
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let input: &[f32] = if n == 1 {
            &batch[0].input
        } else {
            self.batch_buf.clear();
            for r in &batch {
                self.batch_buf.extend_from_slice(&r.input);
            }
            &self.batch_buf
        };
        let started = Instant::now();
        let session = &mut self.session;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| session.run(input, n)));
        let took = started.elapsed();
        let mut inputs = Vec::with_capacity(n);
        match result {
            Ok(Ok(items)) => {
                self.shared.stats.lock().record_batch(n, took);
                for (req, outs) in batch.into_iter().zip(items) {
                    let _ = req.reply.send(Ok(outs));
                    inputs.push(req.input);
                }
            }
            Ok(Err(failure)) => {
                {
                    let mut s = self.shared.stats.lock();
                    s.errors += 1;
                    s.out_of_memory += u64::from(failure.oom);
                }
                tracing::warn!(
                    model = %self.session.info().name,
                    batch = n,
                    oom = failure.oom,
                    error = %failure.message,
                    "inference failed"
                );
                for req in batch {
                    let _ = req.reply.send(Err(failure.to_error()));
                    inputs.push(req.input);
                }
            }
            Err(_) => {
                self.shared.stats.lock().errors += 1;
                tracing::error!(model = %self.session.info().name, "inference panicked");
                for req in batch {
                    let _ = req
                        .reply
                        .send(Err(InferError::Runtime("inference panicked".into())));
                    inputs.push(req.input);
                }
            }
        }
        self.recycle(inputs);
    }

    fn recycle(&self, buffers: impl IntoIterator<Item = Vec<f32>>) {
        let mut pool = self.shared.pool.lock();
        for b in buffers {
            if pool.len() < POOL_MAX {
                pool.push(b);
            }
        }
    }
}
