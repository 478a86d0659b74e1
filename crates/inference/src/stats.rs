//! Per-model counters the batcher keeps for metrics: batches run, the batch-size
//! distribution, inference latency and drops.
//!
//! This crate exports no metrics itself (that is the binary's job); it hands out a plain
//! snapshot ([`ModelStats`]) whose histogram maps directly onto a Prometheus histogram
//! (`sightline_model_inference_seconds`, `sightline_model_batch_size`).

use serde::Serialize;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets; a last, unbounded bucket follows.
pub const LATENCY_BOUNDS_SECONDS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0,
];

/// A latency histogram: `counts[i]` observations fell in `(bounds[i-1], bounds[i]]`, the last
/// count is above every bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyHistogram {
    pub bounds_seconds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            bounds_seconds: LATENCY_BOUNDS_SECONDS.to_vec(),
            counts: vec![0; LATENCY_BOUNDS_SECONDS.len() + 1],
            sum_seconds: 0.0,
            count: 0,
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self
            .bounds_seconds
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(self.bounds_seconds.len());
        self.counts[i] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }

    /// Mean of all observations.
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_secs_f64(self.sum_seconds / self.count as f64))
    }

    /// Cumulative counts (Prometheus `_bucket{le=...}` values), last = `+Inf` = `count`.
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }
}

/// A snapshot of one loaded model's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ModelStats {
    /// Batches run (one session call each).
    pub batches: u64,
    /// Requests run.
    pub frames: u64,
    /// Requests dropped because a client's queue was full.
    pub dropped: u64,
    /// Batches that failed (every request in them got the error).
    pub errors: u64,
    /// Of those, accelerator out-of-memory failures.
    pub out_of_memory: u64,
    /// `batch_sizes[n]` = number of batches of `n` requests (index 0 unused).
    pub batch_sizes: Vec<u64>,
    /// Session run time per batch.
    pub latency: LatencyHistogram,
    /// Requests waiting in client queues right now.
    pub queued: usize,
}

impl ModelStats {
    /// Average requests per batch.
    pub fn mean_batch_size(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.frames as f64 / self.batches as f64
        }
    }

    pub(crate) fn record_batch(&mut self, size: usize, took: Duration) {
        self.batches += 1;
        self.frames += size as u64;
        if self.batch_sizes.len() <= size {
            self.batch_sizes.resize(size + 1, 0);
        }
        self.batch_sizes[size] += 1;
        self.latency.observe(took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_mean() {
        let mut h = LatencyHistogram::default();
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(3));
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[6], 1); // (0.035, 0.05]
        assert_eq!(*h.counts.last().unwrap(), 1);
        assert_eq!(*h.cumulative().last().unwrap(), 3);
        assert_eq!(h.mean().unwrap().as_millis(), 1013);
    }

    #[test]
    fn batch_sizes_grow_as_needed() {
        let mut s = ModelStats::default();
        s.record_batch(1, Duration::from_millis(5));
        s.record_batch(4, Duration::from_millis(9));
        s.record_batch(4, Duration::from_millis(9));
        assert_eq!(s.batch_sizes, vec![0, 1, 0, 0, 2]);
        assert_eq!(s.mean_batch_size(), 3.0);
    }
}
