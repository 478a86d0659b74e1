//! Sources: a URI in, decoded frames (RGB, or I420 with [`SourceOptions::yuv`]) out, through
//! a bounded queue.
//!
//! A [`Source`] owns one GStreamer pipeline (built in [`build`]) and one small thread that
//! watches its bus. The pipeline's streaming thread copies each decoded frame once into a
//! [`Frame`] and hands it to a [`FrameQueue`] whose overflow policy follows [`Pacing`]; the
//! bus thread turns GStreamer messages (errors, end of stream) and silence (no frame for
//! `stall_timeout`) into typed [`SourceEvent`]s that travel in the same queue, after the
//! frames that preceded them. The consumer pulls with [`Source::next`].
//!
//! Reconnecting is the caller's job (the engine owns the retry policy): after `Lost`, close
//! the source and [`Source::open`] a new one; the output side is independent and keeps
//! running.

mod build;

use crate::error::{MediaError, MediaErrorKind};
use crate::queue::{FrameQueue, Item, Overflow, PushOutcome};
use crate::uri::{SourceSpec, mask_uri};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use parking_lot::{Condvar, Mutex};
use sightline_core::Frame;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How frames are paced and what happens when the consumer is slower than the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Real-time sources (RTSP, HTTP live, `test://`): never wait for the consumer; when the
    /// queue is full the oldest frame is dropped (and counted).
    #[default]
    Live,
    /// A file played at its own frame rate; blocks when the consumer is slow, never drops.
    Realtime,
    /// As fast as the consumer pulls; blocks, never drops (replays, tests, benchmarks).
    Fast,
}

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// TCP first; UDP if the camera refuses TCP (`461 Unsupported transport`).
    #[default]
    Auto,
    /// RTP interleaved in the RTSP TCP connection: works through NAT and firewalls.
    Tcp,
    /// RTP/RTCP over UDP.
    Udp,
}

impl RtspTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Auto => "auto",
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// How to open a source. Build with [`SourceOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// `file://…` or a plain path, `rtsp://[user:pass@]host/…`, `http(s)://…`, `test://PATTERN?…`.
    pub uri: String,
    pub pacing: Pacing,
    /// Frames held between decoder and consumer (default 4).
    pub queue_capacity: usize,
    /// Longest wait for the first frame in [`Source::open`] (default 10 s).
    pub connect_timeout: Duration,
    /// RTSP only; an `rtspt://` or `rtspu://` URI overrides it with TCP or UDP.
    pub rtsp_transport: RtspTransport,
    /// Restart a file at its end instead of reporting `Eos` (timestamps keep increasing).
    pub loop_file: bool,
    /// No frame for this long while running (and not held back by the consumer) ⇒ `Lost`
    /// (default 5 s).
    pub stall_timeout: Duration,
    /// Deliver frames in I420, the decoders' own format (no colour conversion; see
    /// `docs/adr/0013-yuv-frames.md`) instead of packed RGB (default `false`: RGB).
    pub yuv: bool,
}

impl SourceOptions {
    pub const DEFAULT_QUEUE_CAPACITY: usize = 4;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

    /// Defaults: `Live` pacing, queue of 4, 10 s connect timeout, RTSP transport `Auto`, no
    /// loop, 5 s stall.
    pub fn new(uri: impl Into<String>) -> Self {
        SourceOptions {
            uri: uri.into(),
            pacing: Pacing::Live,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            rtsp_transport: RtspTransport::Auto,
            loop_file: false,
            stall_timeout: Self::DEFAULT_STALL_TIMEOUT,
            yuv: false,
        }
    }

    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }
}

/// What the first decoded frame told us about the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate; `None` for variable-rate streams.
    pub fps: Option<f64>,
    /// Produces frames in real time by itself (camera, live test pattern).
    pub is_live: bool,
    /// The source URI with credentials masked.
    pub uri: String,
    /// The video decoder GStreamer chose (e.g. `avdec_h264`, `nvh264dec`), if any.
    pub decoder: Option<String>,
    /// RTSP sources: the transport in use (`Tcp` or `Udp`, never `Auto`).
    pub rtsp_transport: Option<RtspTransport>,
    /// Files: the stream's length, when the container says (progress of a batch job).
    pub duration: Option<Duration>,
}

/// One step of a source, as returned by [`Source::next`].
#[derive(Debug)]
pub enum SourceEvent {
    Frame(Frame),
    /// A finite source (file, `test://?frames=N`) reached its end.
    Eos,
    /// A network source dropped, ended, or stalled; reopen it to resume.
    Lost(String),
    /// A failure that reopening will not fix by itself (decode error, bad stream).
    Error(MediaError),
    /// Nothing arrived within the timeout.
    Idle,
}

/// Counters of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Frames that left the decoder.
    pub frames_received: u64,
    /// Frames evicted from a full queue (`Live` pacing only).
    pub frames_dropped: u64,
    /// Frames returned by [`Source::next`].
    pub frames_delivered: u64,
}

#[derive(Debug, Clone)]
enum Control {
    Eos,
    Lost(String),
    Error(MediaError),
}

#[derive(Default)]
struct Startup {
    info: Option<StreamInfo>,
    error: Option<MediaError>,
}

/// State shared by the consumer, the streaming thread and the bus thread.
pub(crate) struct Shared {
    raw_uri: String,
    is_live: bool,
    network: bool,
    /// RTSP sources: the transport this pipeline asks for.
    transport: Option<RtspTransport>,
    queue: FrameQueue<Frame, Control>,
    startup: Mutex<Startup>,
    startup_cv: Condvar,
    received: AtomicU64,
    delivered: AtomicU64,
    last_progress: Mutex<Instant>,
    stop: AtomicBool,
    terminal: Mutex<Option<Control>>,
    decoder: Mutex<Option<String>>,
}

impl Shared {
    /// Called by the streaming thread with the first caps (and on every caps change).
    fn started(&self, info: &gst_video::VideoInfo) {
        let mut st = self.startup.lock();
        if st.info.is_some() {
            return;
        }
        let fps = info.fps();
        st.info = Some(StreamInfo {
            width: info.width(),
            height: info.height(),
            fps: (fps.numer() > 0 && fps.denom() > 0)
                .then(|| fps.numer() as f64 / fps.denom() as f64),
            is_live: self.is_live,
            uri: mask_uri(&self.raw_uri),
            decoder: self.decoder.lock().clone(),
            rtsp_transport: self.transport,
            duration: None,
        });
        drop(st);
        self.startup_cv.notify_all();
    }

    fn has_started(&self) -> bool {
        self.startup.lock().info.is_some()
    }

    /// Called by the streaming thread for every decoded frame.
    fn deliver(&self, frame: Frame) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.received.fetch_add(1, Ordering::Relaxed);
        *self.last_progress.lock() = Instant::now();
        match self.queue.push_frame(frame) {
            PushOutcome::Queued => Ok(gst::FlowSuccess::Ok),
            PushOutcome::QueuedDroppedOldest => {
                tracing::trace!("source queue full: dropped the oldest frame");
                Ok(gst::FlowSuccess::Ok)
            }
            PushOutcome::Closed => Err(gst::FlowError::Flushing),
        }
    }

    /// Routes a failure: to `open` while starting, into the queue once running.
    fn fail(&self, err: MediaError) {
        let mut st = self.startup.lock();
        if st.info.is_none() {
            st.error.get_or_insert(err);
            drop(st);
            self.startup_cv.notify_all();
            return;
        }
        drop(st);
        let control = if self.network
            && !matches!(
                err.kind,
                MediaErrorKind::AuthFailed | MediaErrorKind::NotFound | MediaErrorKind::NotVideo
            ) {
            Control::Lost(err.message.clone())
        } else {
            Control::Error(err)
        };
        self.end(control);
    }

    fn end(&self, control: Control) {
        let mut terminal = self.terminal.lock();
        if self.queue.push_terminal(control.clone()) {
            match &control {
                Control::Eos => tracing::debug!(uri = %mask_uri(&self.raw_uri), "source ended"),
                Control::Lost(reason) => {
                    tracing::warn!(uri = %mask_uri(&self.raw_uri), %reason, "source lost")
                }
                Control::Error(error) => {
                    tracing::warn!(uri = %mask_uri(&self.raw_uri), %error, "source failed")
                }
            }
            *terminal = Some(control);
        }
    }
}

/// A running source. Dropping it stops the pipeline.
pub struct Source {
    shared: Arc<Shared>,
    pipeline: gst::Pipeline,
    info: StreamInfo,
    bus_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("info", &self.info).finish()
    }
}

impl Source {
    /// Starts the pipeline and returns once the first frame is decoded, or a typed error
    /// (never later than `connect_timeout` per attempt). An RTSP source with transport `Auto`
    /// asks for TCP and, if the camera refuses it (`TransportRefused`), for UDP.
    pub fn open(opts: SourceOptions) -> Result<Source, MediaError> {
        crate::init()?;
        let spec = SourceSpec::parse(&opts.uri)?;
        if !matches!(spec, SourceSpec::Rtsp { .. }) {
            return Self::open_with(&opts, &spec, None);
        }
        match spec.forced_rtsp_transport().unwrap_or(opts.rtsp_transport) {
            RtspTransport::Auto => match Self::open_rtsp(&opts, &spec, RtspTransport::Tcp) {
                Err(e) if e.kind == MediaErrorKind::TransportRefused => {
                    tracing::info!(uri = %mask_uri(&opts.uri),
                        "the camera refused RTP over TCP; trying UDP");
                    Self::open_rtsp(&opts, &spec, RtspTransport::Udp).map_err(|e| match e.kind {
                        MediaErrorKind::TransportRefused => MediaError::new(
                            MediaErrorKind::TransportRefused,
                            &opts.uri,
                            "the camera refused RTP over TCP and over UDP \
                             (461 Unsupported transport)",
                        ),
                        _ => e,
                    })
                }
                other => other,
            },
            forced => Self::open_rtsp(&opts, &spec, forced),
        }
    }

    /// One RTSP open with `transport`. A camera that answers `503 Service Unavailable` (busy,
    /// e.g. still tearing down a session it just refused) gets a few quick retries.
    fn open_rtsp(
        opts: &SourceOptions,
        spec: &SourceSpec,
        transport: RtspTransport,
    ) -> Result<Source, MediaError> {
        let mut result = Self::open_with(opts, spec, Some(transport));
        for _ in 0..3 {
            match &result {
                Err(e) if e.kind == MediaErrorKind::Unreachable && e.message.contains("(503)") => {
                    std::thread::sleep(Duration::from_millis(250));
                    result = Self::open_with(opts, spec, Some(transport));
                }
                _ => break,
            }
        }
        result
    }

    fn open_with(
        opts: &SourceOptions,
        spec: &SourceSpec,
        transport: Option<RtspTransport>,
    ) -> Result<Source, MediaError> {
        if let SourceSpec::File(path) = spec {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(MediaError::new(
                        MediaErrorKind::NotVideo,
                        &opts.uri,
                        "not a regular file",
                    ));
                }
                Err(e) => {
                    return Err(MediaError::new(
                        MediaErrorKind::NotFound,
                        &opts.uri,
                        format!("cannot open the file: {e}"),
                    ));
                }
            }
        }
        let is_live = spec.is_network()
            || (matches!(spec, SourceSpec::Test(_)) && opts.pacing == Pacing::Live);
        let overflow = if opts.pacing == Pacing::Live {
            Overflow::DropOldest
        } else {
            Overflow::Block
        };
        let shared = Arc::new(Shared {
            raw_uri: opts.uri.clone(),
            is_live,
            network: spec.is_network(),
            transport,
            queue: FrameQueue::new(opts.queue_capacity, overflow),
            startup: Mutex::new(Startup::default()),
            startup_cv: Condvar::new(),
            received: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            last_progress: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
            terminal: Mutex::new(None),
            decoder: Mutex::new(None),
        });
        let built = build::build(spec, opts, &shared)?;
        let pipeline = built.pipeline;
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::internal(&opts.uri, "pipeline without a bus"))?;
        let watch = BusWatch {
            shared: shared.clone(),
            pipeline: pipeline.downgrade(),
            loop_file: opts.loop_file && matches!(spec, SourceSpec::File(_)),
            rtsp: matches!(spec, SourceSpec::Rtsp { .. }),
            stall_timeout: opts.stall_timeout,
        };
        let bus_thread = std::thread::Builder::new()
            .name("sightline-src-bus".into())
            .spawn(move || watch.run(bus))
            .map_err(|e| MediaError::internal(&opts.uri, e.to_string()))?;
        let mut source = Source {
            shared: shared.clone(),
            pipeline: pipeline.clone(),
            info: StreamInfo {
                width: 0,
                height: 0,
                fps: None,
                is_live,
                uri: mask_uri(&opts.uri),
                decoder: None,
                rtsp_transport: transport,
                duration: None,
            },
            bus_thread: Mutex::new(Some(bus_thread)),
        };
        // From here on, dropping `source` tears everything down.
        if pipeline.set_state(gst::State::Playing).is_err() {
            // The reason, if any, arrives on the bus; give it a moment.
            let mut st = shared.startup.lock();
            if st.error.is_none() {
                let _ = shared
                    .startup_cv
                    .wait_for(&mut st, Duration::from_millis(500));
            }
            let err = st.error.take().unwrap_or_else(|| {
                MediaError::internal(&opts.uri, "the pipeline refused to start")
            });
            return Err(err);
        }
        let deadline = Instant::now() + opts.connect_timeout;
        let mut st = shared.startup.lock();
        loop {
            if let Some(err) = st.error.take() {
                return Err(err);
            }
            if let Some(mut info) = st.info.clone() {
                drop(st);
                if !info.is_live {
                    info.duration = pipeline
                        .query_duration::<gst::ClockTime>()
                        .map(|d| Duration::from_nanos(d.nseconds()))
                        .filter(|d| !d.is_zero());
                }
                tracing::info!(uri = %info.uri, width = info.width, height = info.height,
                    fps = ?info.fps, decoder = ?info.decoder, duration = ?info.duration,
                    rtsp_transport = info.rtsp_transport.map(RtspTransport::as_str),
                    "source opened");
                source.info = info;
                return Ok(source);
            }
            if shared.startup_cv.wait_until(&mut st, deadline).timed_out()
                && st.info.is_none()
                && st.error.is_none()
            {
                return Err(MediaError::new(
                    MediaErrorKind::Timeout,
                    &opts.uri,
                    format!("no video frame within {:?}", opts.connect_timeout),
                ));
            }
        }
    }

    pub fn info(&self) -> StreamInfo {
        self.info.clone()
    }

    /// The next frame or event, waiting up to `timeout` (`Idle` if nothing came). After
    /// `Eos`, `Lost` or `Error`, every later call returns that event again.
    pub fn next(&self, timeout: Duration) -> SourceEvent {
        match self.shared.queue.pop(timeout) {
            Some(Item::Frame(frame)) => {
                self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                SourceEvent::Frame(frame)
            }
            Some(Item::Control(c)) => {
                *self.shared.terminal.lock() = Some(c.clone());
                control_event(c)
            }
            None => match self.shared.terminal.lock().clone() {
                Some(c) if self.shared.queue.is_ended() => control_event(c),
                _ => SourceEvent::Idle,
            },
        }
    }

    pub fn stats(&self) -> SourceStats {
        SourceStats {
            frames_received: self.shared.received.load(Ordering::Relaxed),
            frames_dropped: self.shared.queue.dropped(),
            frames_delivered: self.shared.delivered.load(Ordering::Relaxed),
        }
    }

    /// Stops the pipeline and its threads.
    pub fn close(self) {
        // Drop does the work.
    }

    fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.queue.close();
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(handle) = self.bus_thread.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn control_event(c: Control) -> SourceEvent {
    match c {
        Control::Eos => SourceEvent::Eos,
        Control::Lost(r) => SourceEvent::Lost(r),
        Control::Error(e) => SourceEvent::Error(e),
    }
}

/// The bus thread: GStreamer messages and stall detection become queue events.
struct BusWatch {
    shared: Arc<Shared>,
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    loop_file: bool,
    rtsp: bool,
    stall_timeout: Duration,
}

impl BusWatch {
    fn run(self, bus: gst::Bus) {
        let uri = self.shared.raw_uri.clone();
        while !self.shared.stop.load(Ordering::SeqCst) {
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                self.handle(&uri, &msg);
            }
            if self.shared.queue.is_ended() {
                if self.shared.has_started() {
                    // Terminal event delivered: release the network/decoder resources now.
                    if let Some(p) = self.pipeline.upgrade() {
                        let _ = p.set_state(gst::State::Null);
                    }
                    break;
                }
                continue;
            }
            self.check_stall();
        }
    }

    fn handle(&self, uri: &str, msg: &gst::Message) {
        use gst::MessageView;
        match msg.view() {
            MessageView::Error(e) => {
                let debug = e.debug().map(|d| d.to_string());
                let mut err = MediaError::from_glib(uri, &e.error(), debug.as_deref());
                // souphttpsrc reports a refused or failed connection only as a flow error of
                // the source element ("Internal data stream error").
                let from_source = msg.src().is_some_and(|s| s.name() == "source");
                if self.shared.network && from_source && err.kind == MediaErrorKind::Internal {
                    err.kind = MediaErrorKind::Unreachable;
                }
                // rtspsrc answers `461 Unsupported transport` to every SETUP with "no supported
                // stream" (a codec error), which uridecodebin passes on as a missing plug-in;
                // only the (untranslated) debug text says it came from the SETUP phase.
                if err.kind == MediaErrorKind::NotVideo
                    && debug
                        .as_deref()
                        .is_some_and(|d| d.contains("gst_rtspsrc_setup_streams_start"))
                    && let Some(asked) = self.shared.transport
                {
                    let other = match asked {
                        RtspTransport::Udp => "tcp",
                        _ => "udp",
                    };
                    err = MediaError::new(
                        MediaErrorKind::TransportRefused,
                        uri,
                        format!(
                            "the camera does not offer RTP over {} (461 Unsupported transport); \
                             use rtsp_transport = \"{other}\" or \"auto\"",
                            asked.as_str().to_ascii_uppercase()
                        ),
                    );
                }
                let details = crate::uri::scrub(uri, debug.as_deref().unwrap_or(""));
                tracing::debug!(uri = %mask_uri(uri), kind = %err.kind, error = %err.message,
                    %details, "source pipeline error");
                self.shared.fail(err);
            }
            MessageView::Eos(_) => {
                if self.loop_file
                    && let Some(p) = self.pipeline.upgrade()
                    && p.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    )
                    .is_ok()
                {
                    tracing::debug!(uri = %mask_uri(uri), "looping the file");
                    return;
                }
                if !self.shared.has_started() {
                    self.shared.fail(MediaError::new(
                        MediaErrorKind::NotVideo,
                        uri,
                        "the stream ended before any video frame",
                    ));
                } else if self.rtsp {
                    self.shared
                        .end(Control::Lost("the server ended the stream".into()));
                } else {
                    self.shared.end(Control::Eos);
                }
            }
            MessageView::Warning(w) => {
                tracing::debug!(uri = %mask_uri(uri), warning = %crate::uri::scrub(uri, &w.error().to_string()),
                    "source pipeline warning");
            }
            MessageView::Latency(_) => {
                if let Some(p) = self.pipeline.upgrade() {
                    let _ = p.recalculate_latency();
                }
            }
            MessageView::ClockLost(_) => {
                if let Some(p) = self.pipeline.upgrade() {
                    let _ = p.set_state(gst::State::Paused);
                    let _ = p.set_state(gst::State::Playing);
                }
            }
            _ => {}
        }
    }

    fn check_stall(&self) {
        if !self.shared.has_started() {
            return;
        }
        if self.shared.queue.producer_blocked() {
            *self.shared.last_progress.lock() = Instant::now();
            return;
        }
        let silent = self.shared.last_progress.lock().elapsed();
        if silent >= self.stall_timeout {
            self.shared.end(Control::Lost(format!(
                "no frame for {:.1} s",
                silent.as_secs_f64()
            )));
        }
    }
}
