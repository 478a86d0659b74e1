//! The per-run handle on a shared model: pre-process here, queue, wait, decode here.
//!
//! A run's own thread does the work that scales with the number of streams (resize,
//! normalise, decode, NMS), so only the session call is serialised in the batcher. Each
//! client's queue is bounded: a run that submits faster than the model keeps up loses its
//! *oldest* pending frame (newest wins, latency stays bounded), and the loss is counted both
//! on the client ([`InferClient::dropped`]) and on the model ([`crate::ModelStats::dropped`]).

use crate::decode::{DecodeParams, Decoder, TensorView};
use crate::error::InferError;
use crate::model::{ClientSlot, DetectOptions, ModelCore, Reply, Request, SharedModel};
use crate::nms::{self, PostParams};
use crate::preprocess::{Geometry, Preprocessor};
use parking_lot::Mutex;
use sightline_core::{Detection, Frame};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long [`InferClient::infer`] waits for its result.
pub const DEFAULT_INFER_TIMEOUT: Duration = Duration::from_secs(30);

/// One run's connection to a [`SharedModel`]. Dropping it discards its queued requests.
pub struct InferClient {
    model: Arc<SharedModel>,
    id: u64,
    pre: Mutex<Preprocessor>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for InferClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferClient")
            .field("model", &self.model.info().name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl InferClient {
    pub(crate) fn new(model: Arc<SharedModel>, capacity: usize) -> Self {
        let id = {
            let mut st = model.shared.state.lock();
            st.next_client += 1;
            let id = st.next_client;
            st.clients.push(ClientSlot {
                id,
                capacity,
                queue: VecDeque::with_capacity(capacity),
            });
            id
        };
        let pre = Preprocessor::new(&model.core.manifest.input);
        InferClient {
            model,
            id,
            pre: Mutex::new(pre),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn model(&self) -> &Arc<SharedModel> {
        &self.model
    }

    /// Pre-processes `frame` on this thread and queues it. When the queue is full the
    /// oldest pending request is dropped (its `wait` returns [`InferError::Dropped`]).
    pub fn submit(&self, frame: &Frame, opts: &DetectOptions) -> Result<Pending, InferError> {
        let core = &self.model.core;
        let params = post_params(core, opts)?;
        let shared = &self.model.shared;
        let mut input = shared.pool.lock().pop().unwrap_or_default();
        let geometry = self.pre.lock().run(frame, &mut input)?;
        let (tx, rx) = oneshot::channel();
        let evicted = {
            let mut st = shared.state.lock();
            if st.shutdown {
                return Err(InferError::Closed);
            }
            let slot = st
                .clients
                .iter_mut()
                .find(|c| c.id == self.id)
                .ok_or(InferError::Closed)?;
            slot.queue.push_back(Request {
                input,
                enqueued: Instant::now(),
                reply: tx,
            });
            if slot.queue.len() > slot.capacity {
                slot.queue.pop_front()
            } else {
                None
            }
        };
        shared.wake.notify_one();
        if let Some(old) = evicted {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = old.reply.send(Err(InferError::Dropped));
            let mut pool = shared.pool.lock();
            if pool.len() < 32 {
                pool.push(old.input);
            }
        }
        Ok(Pending {
            rx,
            core: core.clone(),
            geometry,
            params,
        })
    }

    /// Submits and waits (up to [`DEFAULT_INFER_TIMEOUT`]): the blocking convenience.
    pub fn infer(&self, frame: &Frame, opts: &DetectOptions) -> Result<Vec<Detection>, InferError> {
        self.submit(frame, opts)?.wait(DEFAULT_INFER_TIMEOUT)
    }

    /// Requests this client lost to a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Requests of this client waiting for the batcher.
    pub fn queued(&self) -> usize {
        let st = self.model.shared.state.lock();
        st.clients
            .iter()
            .find(|c| c.id == self.id)
            .map_or(0, |c| c.queue.len())
    }
}

impl Drop for InferClient {
    fn drop(&mut self) {
        // Queued requests are dropped with the slot; their `Pending`s resolve as `Closed`.
        let mut st = self.model.shared.state.lock();
        st.clients.retain(|c| c.id != self.id);
    }
}

fn post_params(core: &ModelCore, opts: &DetectOptions) -> Result<PostParams, InferError> {
    let m = &core.manifest;
    let score = opts.score_threshold.unwrap_or(m.score_threshold);
    let iou = opts.iou_threshold.unwrap_or(m.iou_threshold);
    for (name, v) in [("score_threshold", score), ("iou_threshold", iou)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(InferError::InvalidRequest(format!(
                "{name} {v} is outside 0..=1"
            )));
        }
    }
    Ok(PostParams {
        score_threshold: score,
        iou_threshold: iou,
        classes: opts.classes.clone(),
        max_detections: m.max_detections,
        nms: m.family.needs_nms(),
    })
}

/// A submitted request; decoding happens in [`wait`](Self::wait), on the waiter's thread.
#[must_use = "a Pending does nothing unless waited on"]
pub struct Pending {
    rx: oneshot::Receiver<Reply>,
    core: Arc<ModelCore>,
    geometry: Geometry,
    params: PostParams,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("model", &self.core.info.name)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Blocks up to `timeout` for the result, then decodes it on this thread.
    pub fn wait(self, timeout: Duration) -> Result<Vec<Detection>, InferError> {
        match self.rx.recv_timeout(timeout) {
            Ok(reply) => finish(&self.core, reply, &self.geometry, &self.params),
            Err(oneshot::RecvTimeoutError::Timeout) => Err(InferError::Timeout(timeout)),
            Err(oneshot::RecvTimeoutError::Disconnected) => Err(InferError::Closed),
        }
    }

    /// Awaits the result from async code without blocking the executor; inference itself
    /// runs on the model's batcher thread. Decoding (a fraction of a millisecond) runs in the
    /// task. Wrap in a timeout (e.g. `tokio::time::timeout`) to bound the wait.
    pub async fn wait_async(self) -> Result<Vec<Detection>, InferError> {
        let Pending {
            rx,
            core,
            geometry,
            params,
        } = self;
        match rx.await {
            Ok(reply) => finish(&core, reply, &geometry, &params),
            Err(oneshot::RecvError) => Err(InferError::Closed),
        }
    }

    /// How the frame was fitted into the model input.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
}

fn finish(
    core: &ModelCore,
    reply: Reply,
    geo: &Geometry,
    params: &PostParams,
) -> Result<Vec<Detection>, InferError> {
    let raw = reply?;
    let views: Vec<TensorView<'_>> = raw
        .iter()
        .map(|t| TensorView {
            shape: &t.shape,
            data: &t.data,
        })
        .collect();
    let decode = DecodeParams {
        score_threshold: params.score_threshold,
    };
    let dets =
        core.decoder
            .decode(&views, &decode)
            .map_err(|message| InferError::OutputMismatch {
                model: core.info.name.clone(),
                family: core.manifest.family.as_str(),
                message,
            })?;
    Ok(nms::finish(dets, geo, params))
}
