//! Continuous recording of a run's encoded output in MP4 segments, without a second encode.
//!
//! The output's encoder hands every H.264 access unit to the RTSP mount and, when recording,
//! to a [`Recorder`]: a pipeline of its own, `appsrc ! h264parse ! splitmuxsink (mp4mux)`,
//! that cuts a new file at the first keyframe after `segment` and names it through the
//! caller's `location` callback. Being a separate pipeline, a recording that fails (the disk
//! is full) never stops the encoder or the RTSP stream: the recorder reports the lost
//! segment, tears itself down and starts again at a keyframe a few seconds later.
//!
//! Each opened and finalised segment is reported with the wall-clock time and recording
//! time (ns from the recorder's start) of its boundary, read from splitmuxsink's
//! `splitmuxsink-fragment-opened/closed` messages and mapped to wall time through the
//! arrival times of the access units.

use crate::error::MediaError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// What happened to a segment file.
#[derive(Debug, Clone)]
pub enum SegmentEvent {
    /// A new file was started at this boundary.
    Opened {
        path: PathBuf,
        wall: SystemTime,
        /// Recording time of its first frame.
        pts: Duration,
    },
    /// The file was finalised (playable); its end.
    Closed {
        path: PathBuf,
        wall: SystemTime,
        pts: Duration,
    },
    /// The file could not be finished (write error); it is not playable.
    Failed {
        path: PathBuf,
        wall: SystemTime,
        error: String,
    },
}

/// Callback naming the file of a new segment.
pub type SegmentLocation = Arc<dyn Fn() -> PathBuf + Send + Sync>;
/// Callback receiving [`SegmentEvent`]s (called on a GStreamer bus thread: keep it short).
pub type SegmentCallback = Arc<dyn Fn(SegmentEvent) + Send + Sync>;

/// How to record. See the module docs.
#[derive(Clone)]
pub struct RecordOptions {
    /// Segment length (each file ends at the first keyframe after it).
    pub segment: Duration,
    pub location: SegmentLocation,
    pub on_segment: SegmentCallback,
    /// How long to wait after a failure before recording again.
    pub retry_after: Duration,
}

impl std::fmt::Debug for RecordOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordOptions")
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl RecordOptions {
    pub fn new(segment: Duration, location: SegmentLocation, on_segment: SegmentCallback) -> Self {
        RecordOptions {
            segment,
            location,
            on_segment,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Arrival times of recent access units: recording time → wall time.
#[derive(Default)]
struct Clockmap {
    samples: VecDeque<(u64, SystemTime)>,
}

impl Clockmap {
    const MAX: usize = 8192;

    fn push(&mut self, pts: u64, wall: SystemTime) {
        if self.samples.len() == Self::MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((pts, wall));
    }

    /// Wall time of recording time `pts`: the first sample at or after it, else the last
    /// sample plus the difference.
    fn wall(&self, pts: u64) -> SystemTime {
        match self.samples.iter().find(|(p, _)| *p >= pts) {
            Some((p, w)) => w.checked_sub(Duration::from_nanos(p - pts)).unwrap_or(*w),
            None => match self.samples.back() {
                Some((p, w)) => *w + Duration::from_nanos(pts.saturating_sub(*p)),
                None => SystemTime::now(),
            },
        }
    }
}

struct RecShared {
    opts: RecordOptions,
    clock: Mutex<Clockmap>,
    current: Mutex<Option<PathBuf>>,
    /// Files splitmuxsink was told to write (`format-location`) and that were not reported
    /// opened yet. After a write error splitmuxsink may still open the next file while the
    /// pipeline goes down, when nothing watches its bus any more: such a file has no index
    /// row, so nobody would ever delete it. `teardown` removes what is left here.
    named: Mutex<Vec<PathBuf>>,
    failed: AtomicBool,
    eos: Mutex<bool>,
    eos_cv: Condvar,
    stop: AtomicBool,
}

struct RecPipe {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    shared: Arc<RecShared>,
    bus: Option<JoinHandle<()>>,
    base_pts: u64,
}

/// A recorder fed with access units (see the module docs).
pub(crate) struct Recorder {
    name: String,
    opts: RecordOptions,
    state: Mutex<RecState>,
}

#[derive(Default)]
struct RecState {
    pipe: Option<RecPipe>,
    retry_at: Option<Instant>,
}

impl Recorder {
    pub(crate) fn new(name: &str, opts: RecordOptions) -> Recorder {
        Recorder {
            name: name.to_owned(),
            opts,
            state: Mutex::new(RecState::default()),
        }
    }

    /// Records one access unit (called on the encoder's streaming thread; never blocks).
    pub(crate) fn feed(&self, au: &gst::Buffer) {
        let Some(pts) = au.pts().map(gst::ClockTime::nseconds) else {
            return;
        };
        let key = !au.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut st = self.state.lock();
        if st
            .pipe
            .as_ref()
            .is_some_and(|p| p.shared.failed.load(Ordering::SeqCst))
        {
            if let Some(p) = st.pipe.take() {
                teardown(p);
            }
            st.retry_at = Some(Instant::now() + self.opts.retry_after);
        }
        if st.pipe.is_none() {
            if !key || st.retry_at.is_some_and(|t| Instant::now() < t) {
                return;
            }
            match build(&self.name, &self.opts, pts) {
                Ok(p) => {
                    st.pipe = Some(p);
                    st.retry_at = None;
                }
                Err(e) => {
                    tracing::warn!(output = %self.name, error = %e, "recorder cannot start; retrying later");
                    st.retry_at = Some(Instant::now() + self.opts.retry_after);
                    return;
                }
            }
        }
        let Some(p) = st.pipe.as_ref() else { return };
        let rel = pts.saturating_sub(p.base_pts);
        let mut buffer = au.copy();
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(rel));
            b.set_dts(gst::ClockTime::from_nseconds(rel));
        }
        p.shared.clock.lock().push(rel, SystemTime::now());
        if let Err(e) = p.appsrc.push_buffer(buffer) {
            tracing::debug!(output = %self.name, error = ?e, "recorder refused an access unit");
        }
    }

    /// Finalises the current segment (bounded wait) and stops.
    pub(crate) fn finish(&self, timeout: Duration) {
        let Some(p) = self.state.lock().pipe.take() else {
            return;
        };
        let _ = p.appsrc.end_of_stream();
        let deadline = Instant::now() + timeout;
        {
            let mut eos = p.shared.eos.lock();
            while !*eos && !p.shared.failed.load(Ordering::SeqCst) {
                if p.shared.eos_cv.wait_until(&mut eos, deadline).timed_out() {
                    tracing::warn!(output = %self.name, "recording did not finalise in time");
                    break;
                }
            }
        }
        teardown(p);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(Duration::from_secs(3));
    }
}

fn teardown(mut p: RecPipe) {
    p.shared.stop.store(true, Ordering::SeqCst);
    let _ = p.pipeline.set_state(gst::State::Null);
    if let Some(t) = p.bus.take() {
        let _ = t.join();
    }
    // Files opened but never reported (see `RecShared::named`): not indexed, not playable.
    for path in p.shared.named.lock().drain(..) {
        if std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), "removed a segment file the failed recording left unindexed");
        }
    }
}

fn build(name: &str, opts: &RecordOptions, base_pts: u64) -> Result<RecPipe, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::internal(name, format!("recorder: {e}"));
    let pipeline = gst::Pipeline::builder().name("sightline-recorder").build();
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .is_live(true)
        .format(gst::Format::Time)
        .block(false)
        .max_bytes(64 << 20)
        .build();
    let parse = gst::ElementFactory::make("h264parse")
        .build()
        .map_err(|e| err(&e))?;
    let split = gst::ElementFactory::make("splitmuxsink")
        .property("max-size-time", opts.segment.as_nanos() as u64)
        .property("async-finalize", false)
        .build()
        .map_err(|_| err(&"GStreamer element `splitmuxsink` is not installed"))?;
    let shared = Arc::new(RecShared {
        opts: opts.clone(),
        clock: Mutex::new(Clockmap::default()),
        current: Mutex::new(None),
        named: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        eos: Mutex::new(false),
        eos_cv: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let loc = opts.location.clone();
    let named = shared.clone();
    split.connect("format-location", false, move |_| {
        let p = loc();
        named.named.lock().push(p.clone());
        Some(p.to_string_lossy().to_string().to_value())
    });
    pipeline
        .add_many([appsrc.upcast_ref(), &parse, &split])
        .map_err(|e| err(&e))?;
    gst::Element::link_many([appsrc.upcast_ref(), &parse, &split]).map_err(|e| err(&e))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| err(&"pipeline without a bus"))?;
    let bus_shared = shared.clone();
    let bus_name = name.to_owned();
    let bus_thread = std::thread::Builder::new()
        .name("sightline-rec-bus".into())
        .spawn(move || watch(&bus_name, bus, &bus_shared))
        .map_err(|e| err(&e))?;
    let mut p = RecPipe {
        pipeline,
        appsrc,
        shared,
        bus: Some(bus_thread),
        base_pts,
    };
    if p.pipeline.set_state(gst::State::Playing).is_err() {
        p.shared.stop.store(true, Ordering::SeqCst);
        let _ = p.pipeline.set_state(gst::State::Null);
        if let Some(t) = p.bus.take() {
            let _ = t.join();
        }
        return Err(err(&"the recording pipeline refused to start"));
    }
    tracing::info!(output = %name, segment_s = opts.segment.as_secs_f64(), "recording started");
    Ok(p)
}

fn watch(name: &str, bus: gst::Bus, s: &RecShared) {
    use gst::MessageView;
    while !s.stop.load(Ordering::SeqCst) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            MessageView::Element(e) => {
                let Some(st) = e.structure() else { continue };
                let opened = st.name() == "splitmuxsink-fragment-opened";
                let closed = st.name() == "splitmuxsink-fragment-closed";
                if !(opened || closed) {
                    continue;
                }
                let Ok(location) = st.get::<String>("location") else {
                    continue;
                };
                let rt = st
                    .get::<u64>("running-time")
                    .or_else(|_| {
                        st.get::<gst::ClockTime>("running-time")
                            .map(|t| t.nseconds())
                    })
                    .unwrap_or(0);
                let wall = s.clock.lock().wall(rt);
                let path = PathBuf::from(location);
                let pts = Duration::from_nanos(rt);
                if opened {
                    s.named.lock().retain(|p| *p != path);
                    *s.current.lock() = Some(path.clone());
                    (s.opts.on_segment)(SegmentEvent::Opened { path, wall, pts });
                } else {
                    let mut cur = s.current.lock();
                    if cur.as_ref() == Some(&path) {
                        *cur = None;
                    }
                    drop(cur);
                    (s.opts.on_segment)(SegmentEvent::Closed { path, wall, pts });
                }
            }
            MessageView::Error(e) => {
                let error = e.error().to_string();
                tracing::error!(output = %name, %error, "recording failed");
                s.failed.store(true, Ordering::SeqCst);
                if let Some(path) = s.current.lock().take() {
                    (s.opts.on_segment)(SegmentEvent::Failed {
                        path,
                        wall: SystemTime::now(),
                        error,
                    });
                }
                s.eos_cv.notify_all();
                break;
            }
            MessageView::Eos(_) => {
                *s.eos.lock() = true;
                s.eos_cv.notify_all();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clockmap_interpolates_wall_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut c = Clockmap::default();
        for i in 0..10u64 {
            c.push(i * 100_000_000, t0 + Duration::from_millis(i * 100));
        }
        assert_eq!(c.wall(300_000_000), t0 + Duration::from_millis(300));
        assert_eq!(c.wall(250_000_000), t0 + Duration::from_millis(250));
        assert_eq!(c.wall(1_500_000_000), t0 + Duration::from_millis(1500));
    }
}
