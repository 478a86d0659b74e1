//! Typed telemetry events (STYLE pattern 8): each struct is one thing that happened, and
//! `emit()` records its metric (and log line where one is useful). Metric names follow
//! `sightline_<noun>_<unit>[_total]`; the `run` label has bounded cardinality (a worker
//! carries a handful of runs).

use crate::processor::StageTimings;
use metrics::{counter, histogram};
use sightline_core::RunId;

/// Per-stage latency of one processed frame.
pub struct StageTimed<'a> {
    pub run: &'a RunId,
    pub timings: &'a StageTimings,
}

impl StageTimed<'_> {
    pub fn emit(&self) {
        let run = self.run.to_string();
        let t = self.timings;
        if t.inferred {
            histogram!("sightline_stage_latency_seconds", "run" => run.clone(), "stage" => "infer")
                .record(t.infer.as_secs_f64());
            counter!("sightline_frames_inferred_total", "run" => run.clone()).increment(1);
        }
        if t.gated {
            counter!("sightline_frames_gated_total", "run" => run.clone()).increment(1);
        }
        histogram!("sightline_stage_latency_seconds", "run" => run.clone(), "stage" => "track")
            .record(t.track.as_secs_f64());
        histogram!("sightline_stage_latency_seconds", "run" => run.clone(), "stage" => "rules")
            .record(t.rules.as_secs_f64());
        if !t.convert.is_zero() {
            histogram!("sightline_stage_latency_seconds", "run" => run.clone(), "stage" => "convert")
                .record(t.convert.as_secs_f64());
        }
        if !t.pictures.is_zero() {
            histogram!("sightline_stage_latency_seconds", "run" => run.clone(), "stage" => "pictures")
                .record(t.pictures.as_secs_f64());
        }
        histogram!("sightline_stage_latency_seconds", "run" => run, "stage" => "draw")
            .record(t.draw.as_secs_f64());
    }
}

/// A decoded frame reached the run's pipeline, `queued_s` after the decoder produced it.
pub struct FrameIn<'a> {
    pub run: &'a RunId,
    pub queued_s: f64,
}

impl FrameIn<'_> {
    pub fn emit(&self) {
        let run = self.run.to_string();
        counter!("sightline_frames_received_total", "run" => run.clone()).increment(1);
        histogram!("sightline_stage_latency_seconds", "run" => run, "stage" => "queue")
            .record(self.queued_s);
    }
}

/// Frames that never reached the output: `source_behind` (the source queue overflowed,
/// newest wins) or `infer_overloaded` (the model's queue was full; shown without results).
pub struct FramesDropped<'a> {
    pub run: &'a RunId,
    pub reason: &'static str,
    pub count: u64,
}

impl FramesDropped<'_> {
    pub fn emit(&self) {
        counter!("sightline_frames_dropped_total", "run" => self.run.to_string(), "reason" => self.reason)
            .increment(self.count);
    }
}

/// A frame left the pipeline for the encoder.
pub struct FrameOut<'a> {
    pub run: &'a RunId,
    /// Decoder output → handed to the encoder.
    pub latency_s: f64,
}

impl FrameOut<'_> {
    pub fn emit(&self) {
        let run = self.run.to_string();
        counter!("sightline_frames_out_total", "run" => run.clone()).increment(1);
        histogram!("sightline_pipeline_latency_seconds", "run" => run).record(self.latency_s);
    }
}

/// A reconnection attempt.
pub struct Reconnect<'a> {
    pub run: &'a RunId,
}

impl Reconnect<'_> {
    pub fn emit(&self) {
        counter!("sightline_reconnects_total", "run" => self.run.to_string()).increment(1);
    }
}

/// A batch of events was stored.
pub struct EventsWritten {
    pub count: usize,
}

impl EventsWritten {
    pub fn emit(&self) {
        counter!("sightline_events_written_total").increment(self.count as u64);
    }
}

/// Writing a batch of events failed (it is retried).
pub struct EventWriteFailed;

impl EventWriteFailed {
    pub fn emit(&self) {
        counter!("sightline_event_write_failures_total").increment(1);
    }
}

/// A lease renewal round.
pub struct LeaseRenewal {
    pub ok: bool,
}

impl LeaseRenewal {
    pub fn emit(&self) {
        let outcome = if self.ok { "ok" } else { "failed" };
        counter!("sightline_lease_renewals_total", "outcome" => outcome).increment(1);
        if self.ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!("sightline_engine_heartbeat_timestamp_seconds").set(now);
        }
    }
}

/// Runs of this worker by state.
pub struct RunsByState;

impl RunsByState {
    pub fn emit(states: impl Iterator<Item = sightline_core::RunState>) {
        let mut counts = [0u32; sightline_core::RunState::ALL.len()];
        for s in states {
            if let Some(i) = sightline_core::RunState::ALL.iter().position(|x| *x == s) {
                counts[i] += 1;
            }
        }
        for (i, s) in sightline_core::RunState::ALL.iter().enumerate() {
            metrics::gauge!("sightline_runs", "state" => s.as_str()).set(f64::from(counts[i]));
        }
    }
}

/// A run's state (1 for the current one, 0 for the others) and output frame rate, set on
/// every heartbeat. Gauges of runs that left this worker expire in the exporter.
pub struct RunLive<'a> {
    pub run: &'a RunId,
    pub state: sightline_core::RunState,
    pub fps: f64,
    /// Inference on every n-th frame now (above the config's while degraded).
    pub inference_interval: u64,
}

impl RunLive<'_> {
    pub fn emit(&self) {
        let run = self.run.to_string();
        for s in sightline_core::RunState::ALL {
            let v = if s == self.state { 1.0 } else { 0.0 };
            metrics::gauge!("sightline_run_state", "run" => run.clone(), "state" => s.as_str())
                .set(v);
        }
        metrics::gauge!("sightline_output_fps", "run" => run.clone()).set(self.fps);
        metrics::gauge!("sightline_run_inference_interval", "run" => run)
            .set(self.inference_interval as f64);
    }
}

/// A run changed state (persisted).
pub struct RunTransition<'a> {
    pub run: &'a RunId,
    pub to: sightline_core::RunState,
    pub reason: &'a str,
}

impl RunTransition<'_> {
    pub fn emit(&self) {
        counter!("sightline_run_transitions_total", "to" => self.to.as_str()).increment(1);
        tracing::info!(run_id = %self.run, state = %self.to, reason = self.reason, "run state persisted");
    }
}

/// The watchdog restarted a run.
pub struct Stalled<'a> {
    pub run: &'a RunId,
}

impl Stalled<'_> {
    pub fn emit(&self) {
        counter!("sightline_run_stalls_total", "run" => self.run.to_string()).increment(1);
    }
}

/// One call of a secondary stage (plates): its outcome and duration.
#[derive(Debug)]
pub struct SecondaryCall<'a> {
    pub run: &'a str,
    pub stage: &'a str,
    /// `ok`, `error` or `timeout`.
    pub outcome: &'static str,
    pub seconds: f64,
}

impl SecondaryCall<'_> {
    pub fn emit(&self) {
        counter!("sightline_secondary_calls_total", "run" => self.run.to_string(), "stage" => self.stage.to_string(), "outcome" => self.outcome)
            .increment(1);
        histogram!("sightline_secondary_latency_seconds", "stage" => self.stage.to_string())
            .record(self.seconds);
    }
}

/// Whether a secondary stage's circuit breaker is open (1) or closed (0).
#[derive(Debug)]
pub struct SecondaryState<'a> {
    pub run: &'a str,
    pub stage: &'a str,
    pub open: bool,
}

impl SecondaryState<'_> {
    pub fn emit(&self) {
        metrics::gauge!("sightline_secondary_breaker_open", "run" => self.run.to_string(), "stage" => self.stage.to_string())
            .set(if self.open { 1.0 } else { 0.0 });
    }
}

/// A batch job ended on this worker (`sightline_jobs_processed_total` counts completed jobs,
/// `sightline_jobs_failed_total` failed ones, both with the frames they processed).
pub struct JobEnded<'a> {
    pub job: &'a RunId,
    pub to: sightline_core::RunState,
    pub snap: &'a crate::status::StatusSnapshot,
}

impl JobEnded<'_> {
    pub fn emit(&self) {
        let state = sightline_core::JobState::of(self.to);
        match state {
            sightline_core::JobState::Completed => {
                counter!("sightline_jobs_processed_total").increment(1);
            }
            sightline_core::JobState::Failed => {
                counter!("sightline_jobs_failed_total").increment(1)
            }
            _ => {}
        }
        counter!("sightline_job_frames_total").increment(self.snap.frames_in);
        let speed = match self.snap.source_fps {
            Some(f) if f > 0.0 && self.snap.uptime_s > 0.0 => {
                self.snap.frames_in as f64 / f / self.snap.uptime_s
            }
            _ => 0.0,
        };
        tracing::info!(job_id = %self.job, state = %state, frames = self.snap.frames_in,
            seconds = self.snap.uptime_s, x_realtime = speed, "job ended");
    }
}

/// Jobs in the queue by state (every worker sets it from the database on each heartbeat),
/// the job fps of this worker, and whether jobs here yield to live runs now.
pub struct JobsGauges<'a> {
    pub counts: &'a [(sightline_core::JobState, u64)],
    pub fps: f64,
    pub yielding: bool,
}

impl JobsGauges<'_> {
    pub fn emit(&self) {
        for (s, n) in self.counts {
            metrics::gauge!("sightline_jobs", "state" => s.as_str()).set(*n as f64);
        }
        metrics::gauge!("sightline_job_fps").set(self.fps);
        metrics::gauge!("sightline_jobs_yielding_to_live").set(if self.yielding {
            1.0
        } else {
            0.0
        });
    }
}
