//! `sightline-media`: the only crate that links GStreamer.
//!
//! It turns a source URI into decoded frames and frames into a published H.264 stream, so
//! that every other crate works with plain [`sightline_core::Frame`]s (packed RGB24) and
//! never sees a GStreamer type.
//!
//! - [`Source`] — `file://` (or a path), `rtsp://` (TCP by default, credentials masked),
//!   `http(s)://` (MP4/HLS), `test://PATTERN?width=&height=&fps=&frames=` (videotestsrc).
//!   Decoding by `uridecodebin` (hardware decoders win by rank). Frames reach the consumer
//!   through a bounded queue: [`Pacing::Live`] drops the oldest frame when the consumer is
//!   slow (counted in [`SourceStats::frames_dropped`]); [`Pacing::Realtime`] and
//!   [`Pacing::Fast`] block instead and never drop. [`Source::next`] yields
//!   [`SourceEvent`]s: `Frame`, `Eos`, `Lost`, `Error`, `Idle`.
//! - [`RtspServer`] — gst-rtsp-server on its own GLib main-loop thread; [`RtspServer::mount`]
//!   gives a [`Mount`] (`/runs/{id}`) that any number of clients can join and leave;
//!   [`RtspServer::require_basic_auth`] protects the mounts created after it.
//!   [`StreamInfo::decoder`] names the decoder that won the ranking (`nvh264dec`,
//!   `avdec_h264`, …); [`has_element`] tells whether a plugin element is registered.
//! - [`Output`] — one always-on encoder per run: `appsrc ! videoconvert ! videoscale !
//!   x264enc (or nvh264enc) ! h264parse ! tee`, fanned out to the RTSP mount's clients and
//!   optionally to an MP4 file. It encodes whether or not anyone watches. Its timeline is
//!   its own (monotonic even when the source restarts); [`OutputStats`] carries push→encoded
//!   and decoded→encoded latency percentiles.
//!
//! Build options with [`SourceOptions::new`] / [`OutputOptions::new`] and then set fields,
//! so that new fields do not break callers.
//! - Recording: [`OutputOptions::record`] adds continuous MP4 segments of the encoded
//!   stream (`splitmuxsink`, its own pipeline: a full disk never stops the encoder), each
//!   reported as a [`SegmentEvent`]; [`export_clip`] cuts a time range out of segments on
//!   keyframes without re-encoding.
//! - [`RgbConverter`] — I420 frames to RGB in-process with GStreamer's converter (bit-identical
//!   to `videoconvert`).
//! - [`draw`] — a frame timestamp stamp and "signal lost" slates (dimmed last frame).
//! - [`testing`] — a looping test RTSP server that can be stopped and restarted on the same
//!   port, for tests that need a camera to disappear.
//! - Errors: [`MediaError`] with a [`MediaErrorKind`]; implements
//!   [`sightline_core::error::Classify`] (`Unreachable`/`Timeout` are retryable). URIs in
//!   errors and logs are masked with [`mask_uri`].
//!
//! Threads: each `Source` has GStreamer streaming threads plus one bus thread; each `Output`
//! has its encoder streaming threads plus one bus thread; an `RtspServer` has one main-loop
//! thread. All of them stop when their owner is closed or dropped.

mod clip;
mod convert;
pub mod draw;
mod error;
mod output;
mod queue;
mod record;
mod rtsp;
mod source;
pub mod testing;
mod uri;

pub use clip::export_clip;
pub use convert::RgbConverter;
pub use error::{MediaError, MediaErrorKind};
pub use output::{
    AuCallback, EncodedAu, EncoderChoice, LatencySummary, Output, OutputOptions, OutputStats,
};
pub use record::{RecordOptions, SegmentCallback, SegmentEvent, SegmentLocation};
pub use rtsp::{Mount, RtspServer};
pub use source::{
    Pacing, RtspTransport, Source, SourceEvent, SourceOptions, SourceStats, StreamInfo,
};
pub use uri::{file_path, mask_uri};

use std::sync::OnceLock;

/// Initialises GStreamer once per process; later calls return the first result.
pub fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gstreamer::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| MediaError::internal("gstreamer", format!("cannot initialise GStreamer: {e}")))
}

/// Threads for each colour conversion: a quarter of the cores, 1 to 4 (many streams share
/// the machine; one 1080p conversion per thread keeps up with about 80 fps).
pub(crate) fn convert_threads() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    (cores / 4).clamp(1, 4)
}

/// Whether a GStreamer element factory is available (e.g. `nvh264enc`, `nvh264dec`).
pub fn has_element(name: &str) -> bool {
    init().is_ok() && gstreamer::ElementFactory::find(name).is_some()
}
