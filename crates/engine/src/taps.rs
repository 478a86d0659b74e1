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
    /// The latest undrawn camera frame (refreshed about once a second by the run, which
    /// keeps it for the signal-lost slate anyway): the zone editor draws on it.
    raw: Mutex<Option<Arc<Frame>>>,
    /// Copies are RGB (readers encode JPEG): I420 frames are converted, only when copied.
    rgb: Mutex<sightline_media::RgbConverter>,
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
            raw: Mutex::new(None),
            rgb: Mutex::new(sightline_media::RgbConverter::new()),
        }
    }

    /// An RGB copy of `frame` (a plain clone when it already is RGB); `None`, logged, when
    /// it cannot be converted.
    fn rgb_of(&self, frame: &Frame) -> Option<Frame> {
        match self.rgb.lock().to_rgb(frame) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(error = %e, "frame tap: cannot convert the frame to RGB");
                None
            }
        }
    }

    /// `frame` as RGB (a cheap `Arc` clone when it already is).
    fn rgb_copy(&self, frame: Arc<Frame>) -> Option<Arc<Frame>> {
        if frame.is_rgb() {
            return Some(frame);
        }
        self.rgb_of(&frame).map(Arc::new)
    }

    /// Called by the run with its latest raw frame.
    pub fn set_raw(&self, frame: Arc<Frame>) {
        let frame = self.rgb_copy(frame);
        *self.raw.lock() = frame;
    }

    /// The latest raw (undrawn) frame, if any.
    pub fn raw(&self) -> Option<Arc<Frame>> {
        self.raw.lock().clone()
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
        let Some(mut copy) = self.rgb_of(frame) else {
            return;
        };
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

/// One encoded access unit of a run's output, shared by every live viewer.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Annex B H.264 (SPS/PPS before keyframes).
    pub data: Vec<u8>,
    pub pts_ns: u64,
    pub duration_ns: u64,
    pub keyframe: bool,
}

/// The run's encoded output for live viewers (the dashboard's MSE player): every access
/// unit the encoder produces, broadcast, plus the current group of pictures (from the last
/// keyframe) so that a viewer who joins late starts at a keyframe at once. The encode is the
/// run's own, done once whatever the number of viewers.
#[derive(Debug)]
pub struct LiveFeed {
    tx: tokio::sync::broadcast::Sender<Arc<EncodedUnit>>,
    gop: Mutex<Vec<Arc<EncodedUnit>>>,
    size: Mutex<(u32, u32)>,
    /// Set when the run stops executing here (viewers close; a new run gets a new feed).
    ended: tokio::sync::watch::Sender<bool>,
}

/// Longest group of pictures kept for late joiners (a keyframe is expected every second).
const MAX_GOP: usize = 600;

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            tx: tokio::sync::broadcast::channel(256).0,
            gop: Mutex::new(Vec::new()),
            size: Mutex::new((0, 0)),
            ended: tokio::sync::watch::channel(false).0,
        }
    }
}

impl LiveFeed {
    /// Called on the encoder's thread with each access unit.
    pub fn offer(&self, data: &[u8], pts_ns: u64, duration_ns: u64, keyframe: bool) {
        let unit = Arc::new(EncodedUnit {
            data: data.to_vec(),
            pts_ns,
            duration_ns,
            keyframe,
        });
        let mut gop = self.gop.lock();
        if keyframe {
            gop.clear();
        }
        if gop.len() < MAX_GOP && (keyframe || !gop.is_empty()) {
            gop.push(unit.clone());
        }
        // Sent under the lock, so a subscriber sees the GOP and then exactly what follows.
        let _ = self.tx.send(unit);
    }

    /// The output's size (the live view's init segment needs it).
    pub fn set_size(&self, width: u32, height: u32) {
        *self.size.lock() = (width, height);
    }

    pub fn size(&self) -> (u32, u32) {
        *self.size.lock()
    }

    /// The current group of pictures (starting at a keyframe; empty before the first one)
    /// and a receiver of every later access unit.
    pub fn subscribe(
        &self,
    ) -> (
        Vec<Arc<EncodedUnit>>,
        tokio::sync::broadcast::Receiver<Arc<EncodedUnit>>,
    ) {
        let gop = self.gop.lock();
        (gop.clone(), self.tx.subscribe())
    }

    /// The run stopped executing here.
    pub fn end(&self) {
        self.ended.send_replace(true);
    }

    /// Resolves once [`LiveFeed::end`] was called.
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// Live viewers now.
    pub fn viewers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;

    #[test]
    fn late_joiners_get_the_gop_then_everything_after_it() {
        let f = LiveFeed::default();
        f.offer(b"p0", 0, 1, false); // before any keyframe: not cached
        f.offer(b"k1", 1, 1, true);
        f.offer(b"p2", 2, 1, false);
        let (gop, mut rx) = f.subscribe();
        assert_eq!(
            gop.iter().map(|u| u.data.clone()).collect::<Vec<_>>(),
            [b"k1".to_vec(), b"p2".to_vec()]
        );
        f.offer(b"p3", 3, 1, false);
        f.offer(b"k4", 4, 1, true);
        assert_eq!(rx.try_recv().unwrap().data, b"p3");
        assert_eq!(rx.try_recv().unwrap().data, b"k4");
        let (gop, _rx2) = f.subscribe();
        assert_eq!(gop.len(), 1, "a keyframe starts a new GOP");
        assert_eq!(f.viewers(), 2);
    }

    #[tokio::test]
    async fn viewers_learn_that_the_run_ended() {
        let f = Arc::new(LiveFeed::default());
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.ended().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        f.end();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("ended() resolves after end()")
            .unwrap();
        // Late callers see it at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), f.ended())
            .await
            .unwrap();
    }
}
