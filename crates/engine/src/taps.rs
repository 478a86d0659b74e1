//! Copies of a run's annotated frames for the snapshot and MJPEG preview endpoints. A copy
//! costs a full-frame memcpy, so the pipeline makes one only while somebody asked for frames
//! in the last few seconds, and at most `max_fps` times per second.

use parking_lot::Mutex;
use sightline_core::Frame;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one request keeps copies flowing.
const INTEREST: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct FrameTaps {
    tx: tokio::sync::watch::Sender<Option<Arc<Frame>>>,
    state: Mutex<TapState>,
    min_gap: Duration,
}

#[derive(Debug)]
struct TapState {
    wanted_until: Option<Instant>,
    last_copy: Option<Instant>,
}

impl Default for FrameTaps {
    fn default() -> Self {
        Self::new(10.0)
    }
}

impl FrameTaps {
    pub fn new(max_fps: f64) -> Self {
        FrameTaps {
            tx: tokio::sync::watch::channel(None).0,
            state: Mutex::new(TapState {
                wanted_until: None,
                last_copy: None,
            }),
            min_gap: Duration::from_secs_f64(1.0 / max_fps.max(0.1)),
        }
    }

    /// Called by readers: keep copies flowing for a few more seconds.
    pub fn request(&self) {
        self.state.lock().wanted_until = Some(Instant::now() + INTEREST);
    }

    /// A receiver of copies (the latest one is available immediately if any).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Arc<Frame>>> {
        self.request();
        self.tx.subscribe()
    }

    /// The latest copy, if it is younger than `max_age`.
    pub fn latest(&self, max_age: Duration) -> Option<Arc<Frame>> {
        let f = self.tx.borrow().clone()?;
        (f.decoded_at.elapsed() <= max_age).then_some(f)
    }

    /// Called by the pipeline with each output frame; copies it only when wanted.
    pub fn offer(&self, frame: &Frame) {
        let now = Instant::now();
        {
            let mut s = self.state.lock();
            match s.wanted_until {
                Some(t) if t > now => {}
                _ => return,
            }
            if s.last_copy
                .is_some_and(|l| now.duration_since(l) < self.min_gap)
            {
                return;
            }
            s.last_copy = Some(now);
        }
        let mut copy = frame.clone();
        copy.decoded_at = now;
        self.tx.send_replace(Some(Arc::new(copy)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Pts;

    #[test]
    fn copies_only_when_wanted_and_rate_limited() {
        let t = FrameTaps::new(1000.0);
        let f = Frame::filled(4, 4, [1, 2, 3], Pts::ZERO);
        t.offer(&f);
        assert!(t.latest(Duration::from_secs(1)).is_none(), "nobody asked");
        t.request();
        t.offer(&f);
        assert_eq!(
            t.latest(Duration::from_secs(1)).unwrap().pixel(0, 0),
            [1, 2, 3]
        );

        let slow = FrameTaps::new(0.5);
        slow.request();
        slow.offer(&f);
        let g = Frame::filled(4, 4, [9, 9, 9], Pts::ZERO);
        slow.offer(&g);
        assert_eq!(
            slow.latest(Duration::from_secs(1)).unwrap().pixel(0, 0),
            [1, 2, 3]
        );
    }
}
