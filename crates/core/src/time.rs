//! Stream time. GStreamer timestamps are nanoseconds; [`Pts`] keeps that clock rate explicit
//! so no bare integer ever carries a timestamp (STYLE pattern 15).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Presentation timestamp of a frame, in nanoseconds since the start of the stream
/// (clock rate 1 GHz, as in GStreamer).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Pts(i64);

impl Pts {
    /// Ticks per second.
    pub const CLOCK_RATE: i64 = 1_000_000_000;
    pub const ZERO: Pts = Pts(0);

    pub const fn from_nanos(ns: i64) -> Self {
        Pts(ns)
    }
    pub fn from_secs_f64(s: f64) -> Self {
        Pts((s * Self::CLOCK_RATE as f64).round() as i64)
    }
    pub fn from_millis(ms: i64) -> Self {
        Pts(ms.saturating_mul(1_000_000))
    }
    pub const fn nanos(self) -> i64 {
        self.0
    }
    pub fn millis(self) -> i64 {
        self.0 / 1_000_000
    }
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / Self::CLOCK_RATE as f64
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Pts) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
    pub fn saturating_add(self, d: Duration) -> Pts {
        Pts(self
            .0
            .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64))
    }
}

impl std::fmt::Display for Pts {
    /// `HH:MM:SS.mmm`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let ms = (self.0 / 1_000_000).unsigned_abs();
        write!(
            f,
            "{sign}{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            (ms / 60_000) % 60,
            (ms / 1000) % 60,
            ms % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_arithmetic() {
        let p = Pts::from_millis(3_723_456);
        assert_eq!(p.to_string(), "01:02:03.456");
        assert_eq!(
            p.since(Pts::from_millis(3_723_000)),
            Duration::from_millis(456)
        );
        assert_eq!(
            Pts::from_millis(1).since(Pts::from_millis(5)),
            Duration::ZERO
        );
        assert_eq!(Pts::from_secs_f64(0.1).nanos(), 100_000_000);
    }
}
