//! The circuit breaker around a secondary stage (seed 003): closed while calls succeed; open
//! after `budget` consecutive failures (errors or timeouts), when the stage is skipped;
//! half-open after `open_for`, when exactly one trial call goes through — its success closes
//! the breaker, its failure opens it again for another `open_for`. Pure: time comes in.

use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    budget: u32,
    open_for: Duration,
    failures: u32,
    state: BreakerState,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(budget: u32, open_for: Duration) -> Breaker {
        Breaker {
            budget: budget.max(1),
            open_for,
            failures: 0,
            state: BreakerState::Closed,
            opened_at: None,
            trial_in_flight: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may start now. An open breaker past its wait turns half-open and lets
    /// this one call through; later calls wait for its outcome.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if self
                    .opened_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= self.open_for)
                {
                    self.state = BreakerState::HalfOpen;
                    self.trial_in_flight = true;
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => {
                if self.trial_in_flight {
                    false
                } else {
                    self.trial_in_flight = true;
                    true
                }
            }
        }
    }

    pub fn on_success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
        self.opened_at = None;
        self.trial_in_flight = false;
    }

    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.budget {
                    self.open(now);
                }
            }
            BreakerState::HalfOpen | BreakerState::Open => self.open(now),
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.trial_in_flight = false;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_error_budget_and_recovers_through_one_trial() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(30));
        assert!(b.allow(t0));
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_success(); // a success in between resets the count
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t0 + Duration::from_secs(29)));
        // Half-open: one trial, nothing else until it ends.
        let t1 = t0 + Duration::from_secs(30);
        assert!(b.allow(t1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(t1));
        b.on_failure(t1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t1 + Duration::from_secs(10)));
        let t2 = t1 + Duration::from_secs(30);
        assert!(b.allow(t2));
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t2) && b.allow(t2));
    }
}
