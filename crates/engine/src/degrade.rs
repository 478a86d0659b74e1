//! Controlled degradation of a live run's inference interval (spec: "under sustained overload
//! the engine degrades in a controlled way and says so").
//!
//! The source drops frames when the pipeline is behind. The first drops only make the
//! secondary stages shed their crops (see `secondary`); if drops go on for [`STEP_EVERY`],
//! the run infers every `k + 1`-th frame instead of every `k`-th (the tracker predicts in
//! between), one step per [`STEP_EVERY`] while they go on, at most [`MAX_STEPS`] above the
//! configured interval. After [`RESTORE_AFTER`] without a drop (and since the last change)
//! it steps back by one, down to the configured interval. Pure: time comes in as `Instant`s.

use std::time::{Duration, Instant};

/// Drops must go on this long before the first step, and between steps.
pub const STEP_EVERY: Duration = Duration::from_secs(2);
/// No drop for this long: one step back.
pub const RESTORE_AFTER: Duration = Duration::from_secs(30);
/// The interval goes at most this many steps above the configured one.
pub const MAX_STEPS: u32 = 3;

/// The interval a run infers at now.
#[derive(Debug, Clone)]
pub struct IntervalGovernor {
    base: u32,
    current: u32,
    /// Since when drops go on (reset after [`RESTORE_AFTER`] without one).
    episode: Option<Instant>,
    last_overload: Option<Instant>,
    last_change: Option<Instant>,
}

impl IntervalGovernor {
    /// At the configured interval (`model.interval`; 0 counts as 1).
    pub fn new(base: u32) -> Self {
        let base = base.max(1);
        IntervalGovernor {
            base,
            current: base,
            episode: None,
            last_overload: None,
            last_change: None,
        }
    }

    /// Infer every `interval()`-th frame.
    pub fn interval(&self) -> u32 {
        self.current
    }

    pub fn base(&self) -> u32 {
        self.base
    }

    fn since_change(&self, now: Instant) -> Duration {
        self.last_change
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t))
    }

    /// The source dropped frames at `now`. Returns whether the interval went up.
    pub fn note_overload(&mut self, now: Instant) -> bool {
        self.last_overload = Some(now);
        let start = *self.episode.get_or_insert(now);
        let step = now.saturating_duration_since(start) >= STEP_EVERY
            && self.since_change(now) >= STEP_EVERY
            && self.current < self.base + MAX_STEPS;
        if step {
            self.current += 1;
            self.last_change = Some(now);
        }
        step
    }

    /// Called with every frame. Returns whether the interval went back down.
    pub fn tick(&mut self, now: Instant) -> bool {
        let quiet = self
            .last_overload
            .is_none_or(|t| now.saturating_duration_since(t) >= RESTORE_AFTER);
        if !quiet {
            return false;
        }
        self.episode = None;
        let back = self.current > self.base && self.since_change(now) >= RESTORE_AFTER;
        if back {
            self.current -= 1;
            self.last_change = Some(now);
        }
        back
    }

    /// `interval 1→3` while degraded, for the run's status.
    pub fn degraded(&self) -> Option<String> {
        (self.current > self.base).then(|| format!("interval {}→{}", self.base, self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn short_drops_change_nothing_sustained_ones_step_up_to_the_cap() {
        let t0 = Instant::now();
        let mut g = IntervalGovernor::new(1);
        assert!(!g.note_overload(at(t0, 0.0)));
        assert!(!g.note_overload(at(t0, 1.0)));
        assert_eq!(g.interval(), 1);
        assert_eq!(g.degraded(), None);
        assert!(g.note_overload(at(t0, 2.0)));
        assert_eq!(g.interval(), 2);
        assert_eq!(g.degraded().as_deref(), Some("interval 1→2"));
        // Not faster than one step per STEP_EVERY.
        assert!(!g.note_overload(at(t0, 3.0)));
        assert!(g.note_overload(at(t0, 4.0)));
        assert!(g.note_overload(at(t0, 6.0)));
        assert_eq!(g.interval(), 4);
        assert!(!g.note_overload(at(t0, 20.0)), "capped at base + MAX_STEPS");
        assert_eq!(g.interval(), 1 + MAX_STEPS);
    }

    #[test]
    fn quiet_time_steps_back_one_at_a_time_to_the_configured_interval() {
        let t0 = Instant::now();
        let mut g = IntervalGovernor::new(2);
        g.note_overload(at(t0, 0.0));
        g.note_overload(at(t0, 2.0));
        g.note_overload(at(t0, 4.0));
        assert_eq!(g.interval(), 4);
        assert!(!g.tick(at(t0, 20.0)), "not quiet long enough");
        assert!(g.tick(at(t0, 34.0)));
        assert_eq!(g.interval(), 3);
        assert!(!g.tick(at(t0, 40.0)), "one step per RESTORE_AFTER");
        assert!(g.tick(at(t0, 64.0)));
        assert_eq!(g.interval(), 2);
        assert!(
            !g.tick(at(t0, 200.0)),
            "never below the configured interval"
        );
        assert_eq!(g.degraded(), None);
        // A new episode starts from scratch: short drops do not step.
        assert!(!g.note_overload(at(t0, 201.0)));
        assert_eq!(g.interval(), 2);
    }

    #[test]
    fn zero_counts_as_every_frame() {
        assert_eq!(IntervalGovernor::new(0).interval(), 1);
    }
}
