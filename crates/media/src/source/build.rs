//! Builds the decoding pipeline for each kind of source and turns appsink samples into
//! [`Frame`]s.
//!
//! Every source ends the same way — `videoconvert ! video/x-raw,format=RGB|I420 ! appsink` —
//! so the rest of Sightline sees one of two frame formats (with I420, `videoconvert` passes
//! the decoder's buffers through untouched unless the decoder emits another YUV layout). Files and network streams go through
//! `uridecodebin`, which picks demuxers and decoders by rank (hardware decoders outrank
//! software ones when their plugin registers); the RTSP/HTTP element is configured in
//! `source-setup` so credentials travel as properties, never inside a logged location.

use super::{Shared, SourceOptions};
use crate::error::{MediaError, MediaErrorKind};
use crate::uri::{SourceSpec, TestSpec};
use crate::{Pacing, RtspTransport};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use sightline_core::{Frame, PixelFormat, Pts};
use std::sync::Arc;
use std::time::Instant;

/// The elements a [`super::Source`] keeps.
pub(super) struct Built {
    pub pipeline: gst::Pipeline,
}

fn make(factory: &str, uri: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        MediaError::internal(
            uri,
            format!("GStreamer element `{factory}` is not installed"),
        )
    })
}

/// Builds (but does not start) the pipeline for `spec`.
pub(super) fn build(
    spec: &SourceSpec,
    opts: &SourceOptions,
    shared: &Arc<Shared>,
) -> Result<Built, MediaError> {
    let uri = opts.uri.as_str();
    let pipeline = gst::Pipeline::builder().name("sightline-source").build();
    let convert = make("videoconvert", uri)?;
    convert.set_property("n-threads", crate::convert_threads());
    let rgb = gst::Caps::builder("video/x-raw")
        .field("format", if opts.yuv { "I420" } else { "RGB" })
        .build();
    let sync = match spec {
        // Network and live test sources arrive in real time already; syncing would only add
        // latency. Files are paced by the clock unless the caller wants them as fast as possible.
        SourceSpec::Rtsp { .. } | SourceSpec::Http { .. } => false,
        SourceSpec::Test(_) | SourceSpec::File(_) => opts.pacing != Pacing::Fast,
    };
    let appsink = gst_app::AppSink::builder()
        .caps(&rgb)
        .max_buffers(1)
        .drop(false)
        .sync(sync)
        .enable_last_sample(false)
        .qos(false)
        .build();
    pipeline
        .add_many([&convert, appsink.upcast_ref()])
        .map_err(|e| MediaError::internal(uri, e.to_string()))?;
    convert
        .link(&appsink)
        .map_err(|e| MediaError::internal(uri, e.to_string()))?;

    match spec {
        SourceSpec::Test(t) => add_test_source(&pipeline, &convert, t, opts, uri)?,
        SourceSpec::File(path) => {
            let abs = std::path::absolute(path)
                .map_err(|e| MediaError::new(MediaErrorKind::NotFound, uri, e.to_string()))?;
            let file_uri = glib::filename_to_uri(&abs, None)
                .map_err(|e| MediaError::new(MediaErrorKind::InvalidUri, uri, e.to_string()))?;
            add_decodebin(&pipeline, &convert, &file_uri, spec, opts, shared)?;
        }
        SourceSpec::Rtsp { location, .. } | SourceSpec::Http { location, .. } => {
            add_decodebin(&pipeline, &convert, location, spec, opts, shared)?;
        }
    }

    // Remember which video decoder won the ranking (hardware or software), for logs/metrics.
    let dec_shared = shared.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        let is_video_decoder = element.factory().is_some_and(|f| {
            let klass = f.klass();
            klass.contains("Decoder") && klass.contains("Video")
        });
        if is_video_decoder {
            let name = element.factory().map(|f| f.name().to_string());
            dec_shared
                .decoder
                .lock()
                .get_or_insert_with(|| name.unwrap_or_default());
        }
    });

    let mut decoder = SampleConverter::new(opts.pacing);
    let cb_shared = shared.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                decoder.on_sample(&cb_shared, &sample)
            })
            .build(),
    );
    Ok(Built { pipeline })
}

fn add_test_source(
    pipeline: &gst::Pipeline,
    convert: &gst::Element,
    t: &TestSpec,
    opts: &SourceOptions,
    uri: &str,
) -> Result<(), MediaError> {
    let src = make("videotestsrc", uri)?;
    let pspec = src
        .find_property("pattern")
        .ok_or_else(|| MediaError::internal(uri, "videotestsrc has no pattern"))?;
    let value = glib::EnumClass::with_type(pspec.value_type())
        .and_then(|class| class.to_value_by_nick(&t.pattern))
        .ok_or_else(|| {
            MediaError::new(
                MediaErrorKind::InvalidUri,
                uri,
                format!("unknown test pattern `{}`", t.pattern),
            )
        })?;
    src.set_property_from_value("pattern", &value);
    src.set_property("is-live", opts.pacing == Pacing::Live);
    if let Some(n) = t.frames {
        src.set_property("num-buffers", i32::try_from(n).unwrap_or(i32::MAX));
    }
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", t.width as i32)
        .field("height", t.height as i32)
        .field("framerate", gst::Fraction::new(t.fps.0, t.fps.1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()
        .map_err(|e| MediaError::internal(uri, e.to_string()))?;
    pipeline
        .add_many([&src, &filter])
        .map_err(|e| MediaError::internal(uri, e.to_string()))?;
    gst::Element::link_many([&src, &filter, convert])
        .map_err(|e| MediaError::internal(uri, e.to_string()))
}

fn add_decodebin(
    pipeline: &gst::Pipeline,
    convert: &gst::Element,
    location: &str,
    spec: &SourceSpec,
    opts: &SourceOptions,
    shared: &Arc<Shared>,
) -> Result<(), MediaError> {
    let uri = opts.uri.as_str();
    let any_video = gst::Caps::builder("video/x-raw").any_features().build();
    let decodebin = gst::ElementFactory::make("uridecodebin")
        .property("uri", location)
        .property("caps", &any_video)
        .property("expose-all-streams", false)
        .build()
        .map_err(|_| MediaError::internal(uri, "uridecodebin is not installed"))?;

    let (user, password) = match spec {
        SourceSpec::Rtsp { user, password, .. } | SourceSpec::Http { user, password, .. } => {
            (user.clone(), password.clone())
        }
        _ => (None, None),
    };
    // Resolved by `Source::open` (`Auto` becomes TCP, then UDP if TCP is refused).
    let transport = shared.transport.unwrap_or(RtspTransport::Tcp);
    let timeout = opts.connect_timeout;
    decodebin.connect("source-setup", false, move |args| {
        let source = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        let has = |name: &str| source.find_property(name).is_some();
        if has("user-id") {
            if let Some(u) = &user {
                source.set_property("user-id", u);
            }
            if let Some(p) = &password {
                source.set_property("user-pw", p);
            }
        }
        if has("protocols") && has("tcp-timeout") {
            // rtspsrc: transport, connection timeout a little past ours so that our own
            // deadline decides (and reports `Timeout`), low jitter-buffer latency.
            let proto = match transport {
                RtspTransport::Auto | RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            };
            source.set_property_from_str("protocols", proto);
            let us = (timeout.as_micros() as u64).saturating_add(1_000_000);
            source.set_property("tcp-timeout", us);
            source.set_property("timeout", us);
            source.set_property("latency", 200u32);
            source.set_property("drop-on-latency", true);
        } else if has("timeout")
            && source.find_property("timeout").map(|p| p.value_type()) == Some(glib::Type::U32)
        {
            // souphttpsrc: seconds.
            source.set_property("timeout", timeout.as_secs().clamp(1, 3600) as u32);
        }
        None
    });

    let sink_pad = convert
        .static_pad("sink")
        .ok_or_else(|| MediaError::internal(uri, "videoconvert has no sink pad"))?;
    decodebin.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video
            && !sink_pad.is_linked()
            && let Err(e) = pad.link(&sink_pad)
        {
            tracing::warn!(error = ?e, "cannot link the decoded video pad");
        }
    });
    let nmp_shared = shared.clone();
    let conv = convert.clone();
    decodebin.connect_no_more_pads(move |_| {
        let linked = conv.static_pad("sink").is_some_and(|p| p.is_linked());
        if !linked {
            nmp_shared.fail(MediaError::new(
                MediaErrorKind::NotVideo,
                &nmp_shared.raw_uri,
                "the source has no video stream",
            ));
        }
    });
    pipeline
        .add(&decodebin)
        .map_err(|e| MediaError::internal(uri, e.to_string()))
}

/// Per-pipeline state of the appsink callback: caps cache, sequence numbers and a PTS that
/// never goes backwards (a looped file restarts at 0; the frames keep counting up).
struct SampleConverter {
    info: Option<(gst::Caps, gst_video::VideoInfo)>,
    seq: u64,
    pts_offset: i64,
    last_pts: Option<i64>,
    frame_ns: i64,
    _pacing: Pacing,
}

impl SampleConverter {
    fn new(pacing: Pacing) -> Self {
        SampleConverter {
            info: None,
            seq: 0,
            pts_offset: 0,
            last_pts: None,
            frame_ns: 40_000_000,
            _pacing: pacing,
        }
    }

    fn on_sample(
        &mut self,
        shared: &Shared,
        sample: &gst::Sample,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let caps = sample.caps().ok_or(gst::FlowError::NotNegotiated)?;
        if self.info.as_ref().is_none_or(|(c, _)| c != caps) {
            let info =
                gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
            let fps = info.fps();
            if fps.numer() > 0 && fps.denom() > 0 {
                self.frame_ns = (1_000_000_000i64 * fps.denom() as i64) / fps.numer() as i64;
            }
            shared.started(&info);
            self.info = Some((caps.to_owned(), info));
        }
        let Some((_, info)) = &self.info else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
        let (data, format) = if info.format() == gst_video::VideoFormat::I420 {
            let data = copy_i420(buffer, info).ok_or(gst::FlowError::Error)?;
            (data, PixelFormat::I420(crate::convert::yuv_color(info)))
        } else {
            let data = copy_rgb(buffer, info).ok_or(gst::FlowError::Error)?;
            (data, PixelFormat::Rgb24)
        };

        let raw = buffer
            .pts()
            .map(|t| t.nseconds() as i64)
            .unwrap_or(self.seq as i64 * self.frame_ns);
        let mut pts = raw + self.pts_offset;
        if let Some(last) = self.last_pts
            && pts <= last
        {
            // A loop back to the start (or a source that reset its clock): keep counting.
            self.pts_offset = last + self.frame_ns - raw;
            pts = last + self.frame_ns;
        }
        self.last_pts = Some(pts);
        let frame = Frame {
            width: info.width(),
            height: info.height(),
            pts: Pts::from_nanos(pts),
            seq: self.seq,
            decoded_at: Instant::now(),
            format,
            data,
        };
        self.seq += 1;
        shared.deliver(frame)
    }
}

/// Copies an RGB buffer into a tightly packed `Vec` (GStreamer pads rows to 4 bytes).
fn copy_rgb(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<Vec<u8>> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let row = w * 3;
    let stride = usize::try_from(*frame.plane_stride().first()?).ok()?;
    let plane = frame.plane_data(0).ok()?;
    if stride == row {
        return plane.get(..row * h).map(<[u8]>::to_vec);
    }
    let mut out = Vec::with_capacity(row * h);
    for y in 0..h {
        out.extend_from_slice(plane.get(y * stride..y * stride + row)?);
    }
    Some(out)
}

/// Copies the three planes of an I420 buffer into one tightly packed `Vec` (GStreamer pads
/// each plane's rows to 4 bytes and may align the planes).
fn copy_i420(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<Vec<u8>> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = Vec::with_capacity(w * h + 2 * w.div_ceil(2) * h.div_ceil(2));
    for (p, (pw, ph)) in [
        (w, h),
        (w.div_ceil(2), h.div_ceil(2)),
        (w.div_ceil(2), h.div_ceil(2)),
    ]
    .into_iter()
    .enumerate()
    {
        let stride = usize::try_from(*frame.plane_stride().get(p)?).ok()?;
        let plane = frame.plane_data(p as u32).ok()?;
        if stride == pw {
            out.extend_from_slice(plane.get(..pw * ph)?);
        } else {
            for y in 0..ph {
                out.extend_from_slice(plane.get(y * stride..y * stride + pw)?);
            }
        }
    }
    Some(out)
}
