//! Output timestamps and latency bookkeeping, kept free of GStreamer so they test alone.
//!
//! The encoder and the MP4 muxer need timestamps that only go forward, but the frames a run
//! pushes come from sources that restart (a reconnected camera starts a new clock, a looped
//! file restarts at zero) and from slates. [`Retimer`] keeps the source's spacing between
//! frames (so dropped frames leave real gaps) and starts a new segment on any jump backwards
//! or long jump forwards. [`LatencyRing`] keeps recent push→encoded delays for percentiles.

use std::collections::VecDeque;
use std::time::Duration;

/// Maps source PTS (ns) onto a monotonic output timeline that starts at 0.
#[derive(Debug, Clone)]
pub(crate) struct Retimer {
    frame_ns: i64,
    max_gap_ns: i64,
    base_in: Option<i64>,
    base_out: i64,
    last_out: i64,
}

impl Retimer {
    pub fn new(fps: f64) -> Self {
        let frame_ns = if fps.is_finite() && fps > 0.0 {
            (1e9 / fps).round() as i64
        } else {
            40_000_000
        };
        Retimer {
            frame_ns,
            max_gap_ns: 2_000_000_000,
            base_in: None,
            base_out: 0,
            last_out: 0,
        }
    }

    pub fn frame_ns(&self) -> i64 {
        self.frame_ns
    }

    pub fn map(&mut self, pts_in: i64) -> i64 {
        let out = match self.base_in {
            None => {
                self.base_in = Some(pts_in);
                self.base_out = 0;
                0
            }
            Some(base) => {
                let candidate = self.base_out.saturating_add(pts_in.saturating_sub(base));
                if candidate <= self.last_out || candidate - self.last_out > self.max_gap_ns {
                    // Discontinuity: continue one frame after the last output.
                    self.base_in = Some(pts_in);
                    self.base_out = self.last_out + self.frame_ns;
                    self.base_out
                } else {
                    candidate
                }
            }
        };
        self.last_out = out;
        out
    }
}

/// Percentiles of recent latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub last: Option<Duration>,
    pub p50: Option<Duration>,
    pub p95: Option<Duration>,
    pub max: Option<Duration>,
    /// Samples the percentiles were computed over (the most recent ones, at most 512).
    pub samples: usize,
}

#[derive(Debug, Default)]
pub(crate) struct LatencyRing {
    values: VecDeque<Duration>,
}

impl LatencyRing {
    const CAPACITY: usize = 512;

    pub fn record(&mut self, d: Duration) {
        if self.values.len() == Self::CAPACITY {
            self.values.pop_front();
        }
        self.values.push_back(d);
    }

    pub fn summary(&self) -> LatencySummary {
        let mut sorted: Vec<Duration> = self.values.iter().copied().collect();
        sorted.sort_unstable();
        let pick = |q: f64| -> Option<Duration> {
            (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
        };
        LatencySummary {
            last: self.values.back().copied(),
            p50: pick(0.5),
            p95: pick(0.95),
            max: sorted.last().copied(),
            samples: sorted.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retimer_keeps_spacing_and_survives_restarts() {
        let mut r = Retimer::new(10.0);
        let ms = 1_000_000;
        assert_eq!(r.map(5_000 * ms), 0);
        assert_eq!(r.map(5_100 * ms), 100 * ms);
        // A dropped frame leaves a gap.
        assert_eq!(r.map(5_300 * ms), 300 * ms);
        // The source restarts at zero: continue one frame later.
        assert_eq!(r.map(0), 400 * ms);
        assert_eq!(r.map(100 * ms), 500 * ms);
        // A jump of an hour forwards is a new segment too.
        assert_eq!(r.map(3_600_000 * ms), 600 * ms);
        // Equal timestamps never repeat on the output.
        assert_eq!(r.map(3_600_000 * ms), 700 * ms);
    }

    #[test]
    fn latency_percentiles() {
        let mut ring = LatencyRing::default();
        assert_eq!(ring.summary().p50, None);
        for i in 1..=100u64 {
            ring.record(Duration::from_millis(i));
        }
        let s = ring.summary();
        assert_eq!(s.last, Some(Duration::from_millis(100)));
        assert_eq!(s.p50, Some(Duration::from_millis(51)));
        assert_eq!(s.p95, Some(Duration::from_millis(95)));
        assert_eq!(s.max, Some(Duration::from_millis(100)));
        for _ in 0..1000 {
            ring.record(Duration::from_millis(1));
        }
        assert_eq!(ring.summary().samples, 512);
        assert_eq!(ring.summary().max, Some(Duration::from_millis(1)));
    }
}
