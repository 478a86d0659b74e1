//! Clip export: a time range cut out of recorded MP4 segments, concatenated, without
//! re-encoding. `splitmuxsrc` plays the segment files as one timeline; a flushing seek with
//! `KEY_UNIT | SNAP_BEFORE` starts the clip at the keyframe at or before `start` (so it
//! decodes from its first frame) and stops at `stop`; `mp4mux` writes the result. The clip therefore begins up to one keyframe interval before the asked start.

use crate::error::{MediaError, MediaErrorKind};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `[start, stop)` of the concatenation of `inputs` to `out` as MP4.
///
/// Two pipelines: `splitmuxsrc ! h264parse ! appsink`, which is seeked, and
/// `appsrc ! mp4mux ! filesink`, which only ever sees the access units after the seek
/// (a flushing seek through `mp4mux` would leave a file without its `moov`).
pub fn export_clip(
    inputs: &[PathBuf],
    start: Duration,
    stop: Duration,
    out: &Path,
    timeout: Duration,
) -> Result<(), MediaError> {
    crate::init()?;
    let name = out.display().to_string();
    if inputs.is_empty() {
        return Err(MediaError::new(
            MediaErrorKind::NotFound,
            &name,
            "no segments to cut a clip from",
        ));
    }
    let err = |e: &dyn std::fmt::Display| MediaError::internal(&name, format!("clip: {e}"));
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|_| err(&format!("GStreamer element `{f}` is not installed")))
    };
    // Reader.
    let reader = gst::Pipeline::builder().name("sightline-clip-read").build();
    let src = make("splitmuxsrc")?;
    let files: Vec<String> = inputs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    src.connect("format-location", false, move |_| {
        Some(gst::glib::StrV::from(files.clone()).to_value())
    });
    let parse = make("h264parse")?;
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(64)
        .drop(false)
        .caps(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build(),
        )
        .build();
    reader
        .add_many([&src, &parse, appsink.upcast_ref()])
        .map_err(|e| err(&e))?;
    gst::Element::link_many([&parse, appsink.upcast_ref()]).map_err(|e| err(&e))?;
    let parse_weak = parse.downgrade();
    src.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if let Some(parse) = parse_weak.upgrade()
            && is_video
            && let Some(sinkpad) = parse.static_pad("sink")
            && !sinkpad.is_linked()
        {
            let _ = pad.link(&sinkpad);
        }
    });
    // Writer.
    let writer = gst::Pipeline::builder()
        .name("sightline-clip-write")
        .build();
    let appsrc = gst_app::AppSrc::builder()
        .format(gst::Format::Time)
        .block(true)
        .max_buffers(64)
        .build();
    let mux = make("mp4mux")?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", name.as_str())
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| err(&e))?;
    writer
        .add_many([appsrc.upcast_ref(), &mux, &sink])
        .map_err(|e| err(&e))?;
    // The appsrc has no caps until the first sample: link it to a video pad explicitly (a
    // plain link would pick mp4mux's first template, audio).
    let video_pad = mux
        .request_pad_simple("video_%u")
        .ok_or_else(|| err(&"mp4mux has no video pad"))?;
    appsrc
        .static_pad("src")
        .ok_or_else(|| err(&"appsrc without a pad"))?
        .link(&video_pad)
        .map_err(|e| err(&e))?;
    mux.link(&sink).map_err(|e| err(&e))?;

    let rbus = reader.bus().ok_or_else(|| err(&"pipeline without a bus"))?;
    let wbus = writer.bus().ok_or_else(|| err(&"pipeline without a bus"))?;
    let deadline = Instant::now() + timeout;
    let result = (|| {
        reader
            .set_state(gst::State::Paused)
            .map_err(|_| err(&"the segments cannot be opened"))?;
        wait_for(&rbus, &name, deadline, |m| {
            matches!(m.view(), gst::MessageView::AsyncDone(_))
        })?;
        reader
            .seek(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                gst::SeekType::Set,
                gst::ClockTime::from_nseconds(start.as_nanos() as u64),
                gst::SeekType::Set,
                gst::ClockTime::from_nseconds(stop.as_nanos() as u64),
            )
            .map_err(|e| err(&format!("seek to {start:?}: {e}")))?;
        reader
            .set_state(gst::State::Playing)
            .map_err(|_| err(&"the segments cannot be played"))?;
        writer
            .set_state(gst::State::Playing)
            .map_err(|_| err(&"the clip writer refused to start"))?;
        let mut base: Option<u64> = None;
        let mut frames = 0u64;
        loop {
            if let Some(msg) = rbus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                let debug = e.debug().map(|d| d.to_string());
                return Err(MediaError::from_glib(&name, &e.error(), debug.as_deref()));
            }
            if Instant::now() > deadline {
                return Err(MediaError::new(
                    MediaErrorKind::Timeout,
                    &name,
                    "the clip did not finish in time",
                ));
            }
            let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
                if appsink.is_eos() {
                    break;
                }
                continue;
            };
            let Some(buf) = sample.buffer() else { continue };
            if base.is_none()
                && let Some(c) = sample.caps()
            {
                appsrc.set_caps(Some(&c.to_owned()));
            }
            let t = buf.dts().or(buf.pts()).map(gst::ClockTime::nseconds);
            let b0 = *base.get_or_insert(t.unwrap_or(0));
            let mut copy = buf.copy();
            if let Some(b) = copy.get_mut() {
                if let Some(p) = buf.pts() {
                    b.set_pts(gst::ClockTime::from_nseconds(
                        p.nseconds().saturating_sub(b0),
                    ));
                }
                if let Some(d) = buf.dts() {
                    b.set_dts(gst::ClockTime::from_nseconds(
                        d.nseconds().saturating_sub(b0),
                    ));
                }
            }
            appsrc
                .push_buffer(copy)
                .map_err(|e| err(&format!("clip writer refused a frame: {e:?}")))?;
            frames += 1;
        }
        if frames == 0 {
            return Err(MediaError::new(
                MediaErrorKind::NotFound,
                &name,
                "no frames in the requested range",
            ));
        }
        let _ = appsrc.end_of_stream();
        wait_for(&wbus, &name, deadline, |m| {
            matches!(m.view(), gst::MessageView::Eos(_))
        })
    })();
    let _ = reader.set_state(gst::State::Null);
    let _ = writer.set_state(gst::State::Null);
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

fn wait_for(
    bus: &gst::Bus,
    name: &str,
    deadline: Instant,
    done: impl Fn(&gst::Message) -> bool,
) -> Result<(), MediaError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MediaError::new(
                MediaErrorKind::Timeout,
                name,
                "the clip did not finish in time",
            ));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            continue;
        };
        if let gst::MessageView::Error(e) = msg.view() {
            let debug = e.debug().map(|d| d.to_string());
            return Err(MediaError::from_glib(name, &e.error(), debug.as_deref()));
        }
        if done(&msg) {
            return Ok(());
        }
    }
}
