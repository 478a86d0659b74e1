//! Retry timing: exponential backoff with jitter, as a pure function of the attempt number
//! and a random source, so the schedule can be checked in simulated time. Used for webhook
//! redelivery (with a dead-letter limit) and for MQTT reconnects (without one).

use chrono::{DateTime, Utc};
use rand::Rng;
use std::time::Duration;

/// Exponential backoff: `base · 2^(attempt-1)`, capped at `max`, minus a random fraction up
/// to `jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// 0..=1: the delay is drawn uniformly from `[nominal · (1 - jitter), nominal]`.
    pub jitter: f64,
    /// Attempts before giving up (dead letter); `None` retries for ever.
    pub max_attempts: Option<u32>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(DateTime<Utc>),
    /// Give up: the row becomes a dead letter.
    Dead,
}

impl RetryPolicy {
    /// The delay before the next try after `attempt` (1-based) failures, without jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        let factor = 1u64 << shift;
        let nanos = self.base.as_nanos().saturating_mul(u128::from(factor));
        let nanos = nanos.min(self.max.as_nanos());
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The delay after `attempt` failures, jittered with `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let nominal = self.nominal(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return nominal;
        }
        let cut: f64 = rng.random_range(0.0..=jitter);
        nominal.mul_f64(1.0 - cut)
    }

    /// After the `attempt`-th failure at `now`: when to retry, or give up.
    pub fn after_failure(&self, attempt: u32, now: DateTime<Utc>, rng: &mut impl Rng) -> Retry {
        if self.max_attempts.is_some_and(|m| attempt >= m) {
            return Retry::Dead;
        }
        let d = self.delay(attempt, rng);
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Retry::At(
            now.checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use sightline_core::{Clock, ManualClock};

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter,
            max_attempts: Some(5),
        }
    }

    #[test]
    fn nominal_delays_double_up_to_the_cap() {
        let p = policy(0.0);
        let got: Vec<u64> = (1..=6).map(|a| p.nominal(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(p.nominal(u32::MAX), Duration::from_secs(10));
    }

    /// The schedule a failing row follows in simulated time: each retry is due no earlier
    /// than the jittered delay allows and no later than the nominal one; the fifth failure
    /// makes it dead.
    #[test]
    fn schedule_in_simulated_time() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(1_700_000_000));
        let p = policy(0.2);
        let mut rng = StdRng::seed_from_u64(7);
        let mut gaps = Vec::new();
        for attempt in 1..=5u32 {
            let now = DateTime::<Utc>::from(clock.wall());
            match p.after_failure(attempt, now, &mut rng) {
                Retry::At(t) => {
                    let gap = (t - now).to_std().unwrap();
                    let nominal = p.nominal(attempt);
                    assert!(gap <= nominal && gap >= nominal.mul_f64(0.8), "{gap:?}");
                    gaps.push(gap);
                    clock.advance(gap);
                }
                Retry::Dead => {
                    assert_eq!(attempt, 5);
                    gaps.push(Duration::ZERO);
                }
            }
        }
        assert_eq!(gaps.len(), 5);
        assert_eq!(gaps[4], Duration::ZERO, "fifth failure is final");
        assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2] && gaps[2] < gaps[3]);
    }

    #[test]
    fn jitter_spreads_retries() {
        let p = policy(0.5);
        let mut rng = StdRng::seed_from_u64(1);
        let ds: std::collections::HashSet<Duration> =
            (0..20).map(|_| p.delay(3, &mut rng)).collect();
        assert!(ds.len() > 10, "retries do not run in lockstep");
        assert!(
            ds.iter()
                .all(|d| *d >= Duration::from_secs(2) && *d <= Duration::from_secs(4))
        );
    }

    #[test]
    fn no_limit_never_dies() {
        let mut p = policy(0.0);
        p.max_attempts = None;
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert!(matches!(
            p.after_failure(1000, now, &mut rand::rng()),
            Retry::At(_)
        ));
    }
}
