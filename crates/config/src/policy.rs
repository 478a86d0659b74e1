//! Retry policies of a run: how hard to try when the source is unreachable at start
//! (`connect`), how to reconnect when it is lost while running (`reconnect`), and when a run
//! that makes no progress is restarted (`watchdog`). The delay arithmetic is pure so the
//! engine's retry loop can be tested with a simulated clock.

use serde::{Deserialize, Serialize};
use sightline_core::FieldErrors;
use std::time::Duration;

/// Source unreachable when the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectPolicy {
    /// Attempts before the run fails with `source_unreachable` (at least 1).
    pub attempts: u32,
    /// Seconds between attempts.
    pub interval_s: f64,
    /// Seconds one attempt may take before it counts as failed.
    pub timeout_s: f64,
    /// RTSP lower transport: `auto` (TCP, then UDP if the camera refuses TCP), `tcp` or
    /// `udp`. An `rtspt://` or `rtspu://` source URI forces TCP or UDP.
    pub rtsp_transport: RtspTransport,
}

/// How RTP travels from an RTSP camera.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (works through NAT and firewalls); over UDP
    /// when the camera answers TCP `SETUP` with `461 Unsupported transport`.
    #[default]
    Auto,
    /// Interleaved in the RTSP TCP connection only.
    Tcp,
    /// RTP/RTCP over UDP only (lower latency on a LAN; blocked by most NATs).
    Udp,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        ConnectPolicy {
            attempts: 3,
            interval_s: 2.0,
            timeout_s: 10.0,
            rtsp_transport: RtspTransport::Auto,
        }
    }
}

/// Shape of the waits between reconnection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// Always `initial_s`.
    Fixed,
    /// `initial_s`, doubling each attempt, capped at `max_s`.
    Exponential,
}

/// Source lost while running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectPolicy {
    pub backoff: Backoff,
    /// First wait in seconds.
    pub initial_s: f64,
    /// Longest wait in seconds (exponential backoff).
    pub max_s: f64,
    /// Random spread of each wait, as a fraction (0.2 = ±20 %), so many cameras that drop
    /// together do not reconnect in lockstep.
    pub jitter: f64,
    /// Give up after this many attempts (0 = no limit by count).
    pub max_attempts: u32,
    /// Give up after this many seconds since the loss (0 = no limit by time).
    pub max_duration_s: f64,
}

/// The default reconnection schedule of a lost source: waits of 0.5, 1, 2, then 4 s between
/// attempts (each ±20 %), for up to 5 minutes. A camera that comes back is picked up by the
/// next attempt, at most 4.8 s later, while a dead one gets one attempt every ~4 s (a
/// connection refused costs the camera nothing; the 10 s attempt timeout bounds a silent one).
impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            backoff: Backoff::Exponential,
            initial_s: 0.5,
            max_s: 4.0,
            jitter: 0.2,
            max_attempts: 0,
            max_duration_s: 300.0,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based). `unit` is a uniform sample in `[0,1)`
    /// supplied by the caller (a seeded RNG in tests), mapped to `±jitter`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = match self.backoff {
            Backoff::Fixed => self.initial_s,
            Backoff::Exponential => {
                let exp = attempt.saturating_sub(1).min(30) as i32;
                (self.initial_s * 2f64.powi(exp)).min(self.max_s)
            }
        };
        let spread = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((base * spread).max(0.0))
    }

    /// Whether another attempt is allowed after `attempts` failures and `elapsed` since the loss.
    pub fn may_retry(&self, attempts: u32, elapsed: Duration) -> bool {
        let by_count = self.max_attempts == 0 || attempts < self.max_attempts;
        let by_time = self.max_duration_s <= 0.0 || elapsed.as_secs_f64() < self.max_duration_s;
        by_count && by_time
    }
}

/// Progress watchdog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogPolicy {
    /// A run whose pipeline processes no frame for this many seconds is restarted (reason
    /// `stalled`). A lost source is handled by `reconnect` first.
    pub stall_timeout_s: f64,
}

impl Default for WatchdogPolicy {
    fn default() -> Self {
        WatchdogPolicy {
            stall_timeout_s: 20.0,
        }
    }
}

pub(crate) fn validate(
    c: &ConnectPolicy,
    r: &ReconnectPolicy,
    w: &WatchdogPolicy,
    errs: &mut FieldErrors,
) {
    if c.attempts == 0 {
        errs.push("connect.attempts", "must be at least 1");
    }
    for (p, v) in [
        ("connect.interval_s", c.interval_s),
        ("reconnect.max_duration_s", r.max_duration_s),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            errs.push(p, "must be a non-negative number of seconds");
        }
    }
    for (p, v) in [
        ("connect.timeout_s", c.timeout_s),
        ("reconnect.initial_s", r.initial_s),
        ("reconnect.max_s", r.max_s),
        ("watchdog.stall_timeout_s", w.stall_timeout_s),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            errs.push(p, "must be a positive number of seconds");
        }
    }
    if r.max_s < r.initial_s {
        errs.push("reconnect.max_s", "must be at least reconnect.initial_s");
    }
    if !(0.0..=1.0).contains(&r.jitter) {
        errs.push("reconnect.jitter", "must be within 0..1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_and_caps() {
        let p = ReconnectPolicy {
            jitter: 0.0,
            initial_s: 1.0,
            max_s: 10.0,
            ..Default::default()
        };
        let d: Vec<f64> = (1..=6).map(|a| p.delay(a, 0.5).as_secs_f64()).collect();
        assert_eq!(d, vec![1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
    }

    /// A camera back after an outage of any length is retried within 5 s by default.
    #[test]
    fn default_schedule_picks_up_a_returning_camera_within_5_s() {
        let p = ReconnectPolicy::default();
        let worst: Vec<f64> = (1..=100).map(|a| p.delay(a, 1.0).as_secs_f64()).collect();
        assert!(worst.iter().all(|d| *d <= 4.8 + 1e-9), "{worst:?}");
        for (got, want) in worst.iter().zip([0.6, 1.2, 2.4, 4.8, 4.8]) {
            assert!((got - want).abs() < 1e-6, "{worst:?}");
        }
        // ...and does not hammer a dead one: at least 3.2 s between attempts once capped.
        assert!((4..=100).all(|a| p.delay(a, 0.0).as_secs_f64() >= 3.2 - 1e-9));
        // Attempts within the 5 minutes: about one every 4 s.
        let mut t = 0.0;
        let mut n = 0;
        while p.may_retry(n, Duration::from_secs_f64(t)) {
            n += 1;
            t += p.delay(n, 0.5).as_secs_f64();
        }
        assert!((70..=80).contains(&n), "{n} attempts in 5 minutes");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = ReconnectPolicy {
            backoff: Backoff::Fixed,
            initial_s: 10.0,
            jitter: 0.2,
            ..Default::default()
        };
        assert_eq!(p.delay(3, 0.0).as_secs_f64(), 8.0);
        assert_eq!(p.delay(3, 1.0).as_secs_f64(), 12.0);
        assert_eq!(p.delay(3, 0.5).as_secs_f64(), 10.0);
    }

    #[test]
    fn limits_by_count_and_time() {
        let p = ReconnectPolicy {
            max_attempts: 3,
            max_duration_s: 60.0,
            ..Default::default()
        };
        assert!(p.may_retry(2, Duration::from_secs(10)));
        assert!(!p.may_retry(3, Duration::from_secs(10)));
        assert!(!p.may_retry(1, Duration::from_secs(61)));
        let unlimited = ReconnectPolicy {
            max_attempts: 0,
            max_duration_s: 0.0,
            ..Default::default()
        };
        assert!(unlimited.may_retry(1_000, Duration::from_secs(1_000_000)));
    }
}
