//! The always-on encoder of a run: frames in, H.264 out to an RTSP mount and/or an MP4 file.
//!
//! One pipeline per run, running whether or not anyone watches:
//! `appsrc (RGB or I420) ! videoconvert ! videoscale ! I420/NV12 at the output size ! x264enc
//! (zerolatency, ultrafast) | nvh264enc ! h264parse config-interval=-1 ! tee`, with one tee
//! branch to an appsink that hands every access unit to the [`Mount`] (which fans it out to
//! the RTSP clients' media) and an optional branch `h264parse ! mp4mux ! filesink`.
//! `h264parse config-interval=-1` repeats SPS/PPS before every IDR as whole access units;
//! letting the payloader do it corrupts x264's sliced keyframes (see STACK.md).
//!
//! [`Output::push`] wraps the frame's `Vec` in a `gst::Buffer` without copying and never
//! waits longer than `push_timeout`: when the encoder is that far behind the frame is dropped
//! and counted. Timestamps are rebuilt by [`timing::Retimer`] so that source restarts and
//! slates never make the stream go backwards.

mod timing;

pub use timing::LatencySummary;

use crate::error::{MediaError, MediaErrorKind};
use crate::rtsp::Mount;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use parking_lot::{Condvar, Mutex};
use sightline_core::Frame;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use timing::{LatencyRing, Retimer};

/// Which H.264 encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// `nvh264enc` when its plugin registered (an NVIDIA driver is present), else `x264enc`.
    #[default]
    Auto,
    X264,
    Nvenc,
}

/// How to encode and where to publish. Build with [`OutputOptions::new`].
pub struct OutputOptions {
    /// Output size; frames of another size are scaled to it.
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate (sets the keyframe interval and the duration of each frame).
    pub fps: f64,
    /// RTSP mount to publish on.
    pub mount: Option<Mount>,
    /// MP4 file to record to (finalised by [`Output::finish`]).
    pub mp4_path: Option<PathBuf>,
    pub bitrate_kbps: u32,
    /// Longest time between keyframes (also the worst wait of a new RTSP client).
    pub keyframe_interval: Duration,
    pub encoder: EncoderChoice,
    /// Longest time [`Output::push`] waits for room in the encoder's queue before dropping
    /// the frame (default 500 ms; real-time callers never wait this long).
    pub push_timeout: Duration,
    /// Continuous recording of the encoded stream in MP4 segments.
    pub record: Option<crate::record::RecordOptions>,
    /// Called with every encoded access unit (the live view's feed); see [`AuCallback`].
    pub on_au: Option<AuCallback>,
}

/// One encoded H.264 access unit as it leaves the encoder.
#[derive(Debug, Clone, Copy)]
pub struct EncodedAu<'a> {
    /// Annex B byte stream (SPS/PPS before every keyframe).
    pub data: &'a [u8],
    /// On the output's own timeline (monotonic), nanoseconds.
    pub pts_ns: u64,
    pub duration_ns: u64,
    pub keyframe: bool,
}

/// Receives every access unit on the encoder's streaming thread: keep it short.
pub type AuCallback = Arc<dyn Fn(EncodedAu<'_>) + Send + Sync>;

impl std::fmt::Debug for OutputOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputOptions")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("mp4_path", &self.mp4_path)
            .field("bitrate_kbps", &self.bitrate_kbps)
            .field("keyframe_interval", &self.keyframe_interval)
            .field("encoder", &self.encoder)
            .field("record", &self.record)
            .field("on_au", &self.on_au.is_some())
            .finish_non_exhaustive()
    }
}

impl OutputOptions {
    /// No mount, no file, 4 Mbit/s, a keyframe every second, automatic encoder.
    pub fn new(width: u32, height: u32, fps: f64) -> Self {
        OutputOptions {
            width,
            height,
            fps,
            mount: None,
            mp4_path: None,
            bitrate_kbps: 4000,
            keyframe_interval: Duration::from_secs(1),
            encoder: EncoderChoice::Auto,
            push_timeout: Duration::from_millis(500),
            record: None,
            on_au: None,
        }
    }
}

/// Counters and latencies of an output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputStats {
    pub frames_pushed: u64,
    /// Frames refused because the encoder was more than `push_timeout` behind.
    pub frames_dropped: u64,
    /// Access units that left the encoder.
    pub frames_encoded: u64,
    /// RTSP sessions on the mount.
    pub clients: usize,
    /// Push → encoded access unit.
    pub encode_latency: LatencySummary,
    /// Frame decoded (`Frame::decoded_at`) → encoded access unit: the glass-to-glass
    /// estimate inside Sightline (network and client buffering excluded).
    pub pipeline_latency: LatencySummary,
    /// The encoder element in use (`x264enc`, `nvh264enc`).
    pub encoder: String,
}

struct Pending {
    pts: u64,
    pushed_at: Instant,
    decoded_at: Instant,
}

/// State shared with the encoder's streaming thread and the bus thread.
struct Shared {
    name: String,
    pending: Mutex<VecDeque<Pending>>,
    pts_offset: Mutex<Option<u64>>,
    encode: Mutex<LatencyRing>,
    pipeline_lat: Mutex<LatencyRing>,
    encoded: AtomicU64,
    progress: Condvar,
    progress_lock: Mutex<()>,
    error: Mutex<Option<MediaError>>,
    eos: Mutex<bool>,
    eos_cv: Condvar,
    stop: AtomicBool,
    mount: Mutex<Option<Mount>>,
    recorder: Option<crate::record::Recorder>,
    on_au: Option<AuCallback>,
}

/// A running encoder. Dropping it finishes it (bounded wait).
pub struct Output {
    shared: Arc<Shared>,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    encoder: String,
    state: Mutex<PushState>,
    pushed: AtomicU64,
    dropped: AtomicU64,
    push_timeout: Duration,
    bus_thread: Option<JoinHandle<()>>,
    finished: bool,
}

struct PushState {
    retimer: Retimer,
    /// Size and format of the caps set on the appsrc, and their layout.
    caps_key: Option<(u32, u32, sightline_core::PixelFormat)>,
    info: Option<gst_video::VideoInfo>,
    fps: (i32, i32),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.shared.name)
            .field("encoder", &self.encoder)
            .finish()
    }
}

/// Encoded frames waiting in the encoder's input before `push` waits.
const MAX_QUEUED: u64 = 3;

fn rgb_caps(width: u32, height: u32, fps: (i32, i32)) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps.0, fps.1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

impl Output {
    /// Builds and starts the encoder pipeline.
    pub fn start(opts: OutputOptions) -> Result<Output, MediaError> {
        crate::init()?;
        let name = match (&opts.mount, &opts.mp4_path) {
            (Some(m), _) => m.url().to_string(),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "output".to_string(),
        };
        if opts.width < 16 || opts.height < 16 || opts.width % 2 == 1 || opts.height % 2 == 1 {
            return Err(MediaError::new(
                MediaErrorKind::InvalidUri,
                &name,
                format!(
                    "output size {}x{} must be even and at least 16x16",
                    opts.width, opts.height
                ),
            ));
        }
        if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 1000.0) {
            return Err(MediaError::new(
                MediaErrorKind::InvalidUri,
                &name,
                format!("output fps {} must be in (0, 1000]", opts.fps),
            ));
        }
        let use_nvenc = match opts.encoder {
            EncoderChoice::X264 => false,
            EncoderChoice::Nvenc => true,
            EncoderChoice::Auto => crate::has_element("nvh264enc"),
        };
        let (pipeline, appsrc, au_sink, encoder, enc_name) = match build(&opts, &name, use_nvenc) {
            Ok(b) => b,
            Err(e) if use_nvenc && opts.encoder == EncoderChoice::Auto => {
                tracing::warn!(error = %e, "nvh264enc unusable, falling back to x264enc");
                build(&opts, &name, false)?
            }
            Err(e) => return Err(e),
        };

        let recorder = opts
            .record
            .clone()
            .map(|r| crate::record::Recorder::new(&name, r));
        let OutputOptions { mount, fps, .. } = opts;
        if let Some(m) = &mount {
            let weak = encoder.downgrade();
            m.set_keyframe_requester(Arc::new(move || {
                if let Some(pad) = weak.upgrade().and_then(|e| e.static_pad("src")) {
                    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build();
                    pad.send_event(event);
                }
            }));
        }
        let shared = Arc::new(Shared {
            name: name.clone(),
            pending: Mutex::new(VecDeque::new()),
            pts_offset: Mutex::new(None),
            encode: Mutex::new(LatencyRing::default()),
            pipeline_lat: Mutex::new(LatencyRing::default()),
            encoded: AtomicU64::new(0),
            progress: Condvar::new(),
            progress_lock: Mutex::new(()),
            error: Mutex::new(None),
            eos: Mutex::new(false),
            eos_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            mount: Mutex::new(mount),
            recorder,
            on_au: opts.on_au.clone(),
        });
        let cb = shared.clone();
        au_sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    if let Some(buffer) = sample.buffer_owned() {
                        cb.on_encoded(&buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::internal(&name, "pipeline without a bus"))?;
        let bus_shared = shared.clone();
        let bus_thread = std::thread::Builder::new()
            .name("sightline-out-bus".into())
            .spawn(move || bus_shared.watch(bus))
            .map_err(|e| MediaError::internal(&name, e.to_string()))?;
        let fps_frac = crate::uri::fps_fraction(fps);
        let mut output = Output {
            shared,
            pipeline,
            appsrc,
            encoder: enc_name,
            state: Mutex::new(PushState {
                retimer: Retimer::new(fps),
                caps_key: None,
                info: None,
                fps: fps_frac,
            }),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            push_timeout: opts.push_timeout,
            bus_thread: Some(bus_thread),
            finished: false,
        };
        if output.pipeline.set_state(gst::State::Playing).is_err() {
            std::thread::sleep(Duration::from_millis(100));
            let err = output.shared.error.lock().clone().unwrap_or_else(|| {
                MediaError::internal(&name, "the encoder pipeline refused to start")
            });
            output.finished = true;
            output.teardown();
            return Err(err);
        }
        tracing::info!(output = %name, encoder = %output.encoder, "output started");
        Ok(output)
    }

    /// Queues a frame for encoding. Waits at most `push_timeout` for the encoder (then drops
    /// the frame, counted in `frames_dropped`). Fails only if the pipeline failed.
    pub fn push(&self, frame: Frame) -> Result<(), MediaError> {
        if let Some(e) = self.shared.error.lock().clone() {
            return Err(e);
        }
        if !frame.is_well_formed() || frame.width == 0 || frame.height == 0 {
            return Err(MediaError::internal(
                &self.shared.name,
                format!(
                    "frame of {} bytes is not {}x{} {:?}",
                    frame.data.len(),
                    frame.width,
                    frame.height,
                    frame.format
                ),
            ));
        }
        self.pushed.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.push_timeout;
        {
            let mut guard = self.shared.progress_lock.lock();
            while self.appsrc.current_level_buffers() >= MAX_QUEUED {
                if Instant::now() >= deadline || self.shared.stop.load(Ordering::Relaxed) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(output = %self.shared.name, "encoder behind: frame dropped");
                    return Ok(());
                }
                self.shared
                    .progress
                    .wait_for(&mut guard, Duration::from_millis(5));
            }
        }
        let mut st = self.state.lock();
        let key = (frame.width, frame.height, frame.format);
        if st.caps_key != Some(key) {
            let info = crate::convert::frame_info(&frame)?;
            let mut caps = info
                .to_caps()
                .map_err(|e| MediaError::internal(&self.shared.name, e.to_string()))?;
            caps.make_mut()
                .set("framerate", gst::Fraction::new(st.fps.0, st.fps.1));
            self.appsrc.set_caps(Some(&caps));
            st.caps_key = Some(key);
            st.info = Some(info);
        }
        let pts = st.retimer.map(frame.pts.nanos()).max(0) as u64;
        let duration = st.retimer.frame_ns() as u64;
        let decoded_at = frame.decoded_at;
        let mut buffer = gst::Buffer::from_mut_slice(frame.data);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_duration(gst::ClockTime::from_nseconds(duration));
            // Frames are tightly packed; GStreamer's default layout pads rows to 4 bytes, so
            // say where the planes and rows are.
            if let Some(info) = &st.info {
                let _ = gst_video::VideoMeta::add_full(
                    b,
                    gst_video::VideoFrameFlags::empty(),
                    info.format(),
                    info.width(),
                    info.height(),
                    info.offset(),
                    info.stride(),
                );
            }
        }
        self.shared.pending.lock().push_back(Pending {
            pts,
            pushed_at: Instant::now(),
            decoded_at,
        });
        let pushed = self.appsrc.push_buffer(buffer);
        drop(st);
        pushed.map(|_| ()).map_err(|e| {
            self.shared.error.lock().clone().unwrap_or_else(|| {
                MediaError::internal(&self.shared.name, format!("encoder refused a frame: {e:?}"))
            })
        })
    }

    pub fn stats(&self) -> OutputStats {
        OutputStats {
            frames_pushed: self.pushed.load(Ordering::Relaxed),
            frames_dropped: self.dropped.load(Ordering::Relaxed),
            frames_encoded: self.shared.encoded.load(Ordering::Relaxed),
            clients: self.shared.mount.lock().as_ref().map_or(0, Mount::clients),
            encode_latency: self.shared.encode.lock().summary(),
            pipeline_latency: self.shared.pipeline_lat.lock().summary(),
            encoder: self.encoder.clone(),
        }
    }

    /// The RTSP URL clients use, if published.
    pub fn url(&self) -> Option<String> {
        self.shared
            .mount
            .lock()
            .as_ref()
            .map(|m| m.url().to_string())
    }

    /// Ends the stream: flushes the encoder, finalises the MP4 (waits up to 10 s), removes
    /// the mount.
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.finish_within(Duration::from_secs(10))
    }

    fn finish_within(&mut self, timeout: Duration) -> Result<(), MediaError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let _ = self.appsrc.end_of_stream();
        let deadline = Instant::now() + timeout;
        let mut result = Ok(());
        {
            let mut eos = self.shared.eos.lock();
            while !*eos && self.shared.error.lock().is_none() {
                if self
                    .shared
                    .eos_cv
                    .wait_until(&mut eos, deadline)
                    .timed_out()
                {
                    result = Err(MediaError::new(
                        MediaErrorKind::Timeout,
                        &self.shared.name,
                        format!("the encoder did not finish within {timeout:?}"),
                    ));
                    break;
                }
            }
        }
        if let Some(e) = self.shared.error.lock().clone() {
            result = Err(e);
        }
        if let Some(r) = &self.shared.recorder {
            r.finish(Duration::from_secs(5));
        }
        self.teardown();
        tracing::info!(output = %self.shared.name, frames = self.shared.encoded.load(Ordering::Relaxed),
            "output finished");
        result
    }

    fn teardown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
        self.shared.mount.lock().take();
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish_within(Duration::from_secs(3));
        } else {
            self.teardown();
        }
    }
}

impl Shared {
    fn on_encoded(&self, au: &gst::Buffer) {
        let now = Instant::now();
        let mut out_pts = None;
        if let Some(au_pts) = au.pts().map(gst::ClockTime::nseconds) {
            let mut pending = self.pending.lock();
            // Encoders may shift every timestamp by a constant (x264enc adds 1000 hours so
            // that DTS never goes negative); learn it from the first access unit.
            let offset = *self
                .pts_offset
                .lock()
                .get_or_insert_with(|| pending.front().map_or(0, |p| au_pts.wrapping_sub(p.pts)));
            let pts = au_pts.wrapping_sub(offset);
            out_pts = Some(pts);
            while let Some(p) = pending.front() {
                if p.pts > pts {
                    break;
                }
                if let Some(p) = pending.pop_front().filter(|p| p.pts == pts) {
                    self.encode.lock().record(now - p.pushed_at);
                    self.pipeline_lat.lock().record(now - p.decoded_at);
                }
            }
            if pending.len() > 256 {
                // Nothing matches any more: forget and relearn.
                pending.clear();
                *self.pts_offset.lock() = None;
            }
        }
        self.encoded.fetch_add(1, Ordering::Relaxed);
        if let Some(mount) = self.mount.lock().as_ref() {
            mount.feed(au);
        }
        if let Some(r) = &self.recorder {
            r.feed(au);
        }
        if let (Some(cb), Some(pts)) = (&self.on_au, out_pts)
            && let Ok(map) = au.map_readable()
        {
            cb(EncodedAu {
                data: map.as_slice(),
                pts_ns: pts,
                duration_ns: au.duration().map_or(0, gst::ClockTime::nseconds),
                keyframe: !au.flags().contains(gst::BufferFlags::DELTA_UNIT),
            });
        }
        let _guard = self.progress_lock.lock();
        self.progress.notify_all();
    }

    fn watch(&self, bus: gst::Bus) {
        use gst::MessageView;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                MessageView::Error(e) => {
                    let debug = e.debug().map(|d| d.to_string());
                    let mut err = MediaError::from_glib(&self.name, &e.error(), debug.as_deref());
                    if err.kind != MediaErrorKind::Internal {
                        err.kind = MediaErrorKind::Internal;
                    }
                    tracing::error!(output = %self.name, error = %err, "output pipeline error");
                    self.error.lock().get_or_insert(err);
                    self.eos_cv.notify_all();
                    let _g = self.progress_lock.lock();
                    self.progress.notify_all();
                }
                MessageView::Eos(_) => {
                    *self.eos.lock() = true;
                    self.eos_cv.notify_all();
                }
                MessageView::Warning(w) => {
                    tracing::debug!(output = %self.name, warning = %w.error(), "output pipeline warning");
                }
                _ => {}
            }
        }
    }
}

type Built = (
    gst::Pipeline,
    gst_app::AppSrc,
    gst_app::AppSink,
    gst::Element,
    String,
);

fn build(opts: &OutputOptions, name: &str, nvenc: bool) -> Result<Built, MediaError> {
    let err = |e: &dyn std::fmt::Display| MediaError::internal(name, e.to_string());
    let make = |factory: &str| {
        gst::ElementFactory::make(factory).build().map_err(|_| {
            MediaError::internal(
                name,
                format!("GStreamer element `{factory}` is not installed"),
            )
        })
    };
    let fps = crate::uri::fps_fraction(opts.fps);
    let pipeline = gst::Pipeline::builder().name("sightline-output").build();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&rgb_caps(opts.width, opts.height, fps))
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(false)
        .block(false)
        .build();
    let convert = make("videoconvert")?;
    convert.set_property("n-threads", crate::convert_threads());
    let scale = make("videoscale")?;
    let raw_caps = gst::Caps::builder("video/x-raw")
        .field("format", if nvenc { "NV12" } else { "I420" })
        .field("width", opts.width as i32)
        .field("height", opts.height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let raw_filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &raw_caps)
        .build()
        .map_err(|e| err(&e))?;
    let key_int = ((opts.keyframe_interval.as_secs_f64() * opts.fps).round() as u32).max(1);
    let encoder = if nvenc {
        let e = make("nvh264enc")?;
        set_if_present(&e, "preset", "low-latency-hq");
        set_if_present(&e, "rc-mode", "cbr");
        set_if_present(&e, "zerolatency", "true");
        set_if_present(&e, "bframes", "0");
        set_if_present(&e, "gop-size", &key_int.to_string());
        set_if_present(&e, "bitrate", &opts.bitrate_kbps.to_string());
        e
    } else {
        let e = make("x264enc")?;
        e.set_property_from_str("tune", "zerolatency");
        e.set_property_from_str("speed-preset", "ultrafast");
        e.set_property("key-int-max", key_int);
        e.set_property("bitrate", opts.bitrate_kbps.max(64));
        e
    };
    let parse = make("h264parse")?;
    parse.set_property("config-interval", -1i32);
    let au_caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let au_filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &au_caps)
        .build()
        .map_err(|e| err(&e))?;
    let tee = make("tee")?;
    let au_queue = make("queue")?;
    let au_sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(8)
        .drop(false)
        .enable_last_sample(false)
        .build();
    let chain: [&gst::Element; 10] = [
        appsrc.upcast_ref(),
        &convert,
        &scale,
        &raw_filter,
        &encoder,
        &parse,
        &au_filter,
        &tee,
        &au_queue,
        au_sink.upcast_ref(),
    ];
    pipeline.add_many(chain).map_err(|e| err(&e))?;
    gst::Element::link_many(&chain[..8]).map_err(|e| err(&e))?;
    gst::Element::link_many([&tee, &au_queue, au_sink.upcast_ref()]).map_err(|e| err(&e))?;

    if let Some(path) = &opts.mp4_path {
        let queue = make("queue")?;
        let parse = make("h264parse")?;
        let mux = make("mp4mux")?;
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        sink.set_property("async", false);
        pipeline
            .add_many([&queue, &parse, &mux, &sink])
            .map_err(|e| err(&e))?;
        gst::Element::link_many([&tee, &queue, &parse, &mux, &sink]).map_err(|e| err(&e))?;
    }
    let enc_name = encoder
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default();
    if nvenc && encoder.set_state(gst::State::Ready).is_err() {
        return Err(MediaError::internal(
            name,
            "nvh264enc cannot start (no usable GPU?)",
        ));
    }
    Ok((pipeline, appsrc, au_sink, encoder, enc_name))
}

/// Sets a property given as text if the element has it and the text is valid for its type
/// (enum nick, boolean or integer); never panics on a plugin version without it.
fn set_if_present(element: &gst::Element, prop: &str, value: &str) {
    use gst::glib;
    let Some(pspec) = element.find_property(prop) else {
        return;
    };
    let ty = pspec.value_type();
    let v: Option<glib::Value> = if ty.is_a(glib::Type::ENUM) {
        glib::EnumClass::with_type(ty).and_then(|c| c.to_value_by_nick(value))
    } else if ty == glib::Type::BOOL {
        value.parse::<bool>().ok().map(|b| b.to_value())
    } else if ty == glib::Type::U32 {
        value.parse::<u32>().ok().map(|n| n.to_value())
    } else if ty == glib::Type::I32 {
        value.parse::<i32>().ok().map(|n| n.to_value())
    } else {
        None
    };
    match v {
        Some(v) => element.set_property_from_value(prop, &v),
        None => tracing::debug!(prop, value, "encoder property not set"),
    }
}
