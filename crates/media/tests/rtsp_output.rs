//! The output path against real clients: vtest.avi → encoder → RTSP mount → ffprobe/ffmpeg,
//! and the MP4 recording.

#![allow(clippy::print_stderr)]

mod common;

use common::*;
use sightline_media::{
    EncoderChoice, Output, OutputOptions, Pacing, RtspServer, Source, SourceEvent, SourceOptions,
};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// vtest.avi in real time, looping, stamped, into an output on a fresh mount.
fn start_publishing(
    server: &RtspServer,
    path: &str,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Output>) {
    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Realtime;
    opts.loop_file = true;
    let source = Source::open(opts).expect("open vtest");
    let mut out = OutputOptions::new(768, 576, 10.0);
    out.mount = Some(server.mount(path).expect("mount"));
    out.encoder = EncoderChoice::X264;
    let output = Output::start(out).expect("output");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let (_, end) = pump(&source, &output, |_| flag.load(Ordering::SeqCst));
        assert!(end.is_none(), "source ended: {end:?}");
        output
    });
    (stop, handle)
}

#[test]
fn rtsp_mount_serves_clean_h264_to_several_clients() {
    init_tracing();
    let server = RtspServer::start("127.0.0.1", 0).expect("server");
    let (stop, publisher) = start_publishing(&server, "/runs/demo");
    let url = server.url("/runs/demo");

    let probe = ffprobe_rtsp(&url);
    assert!(probe.contains("codec_name=h264"), "{probe}");
    assert!(probe.contains("width=768"), "{probe}");
    assert!(probe.contains("height=576"), "{probe}");

    // One client from a fresh media: 60 frames, no decoding errors at all.
    let (ok, frames, stderr) = wait_ffmpeg(spawn_ffmpeg(&url, 60), Duration::from_secs(40));
    assert!(ok, "ffmpeg failed:\n{stderr}");
    assert!(frames >= 50, "only {frames} frames:\n{stderr}");
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "decoding errors: {errors:#?}\n{stderr}");

    // Two clients at once (the second joins the shared media while it runs).
    let a = spawn_ffmpeg(&url, 40);
    std::thread::sleep(Duration::from_millis(1500));
    let b = spawn_ffmpeg(&url, 40);
    let (ok_a, frames_a, err_a) = wait_ffmpeg(a, Duration::from_secs(40));
    let (ok_b, frames_b, err_b) = wait_ffmpeg(b, Duration::from_secs(40));
    assert!(ok_a && frames_a >= 35, "client A: {frames_a}\n{err_a}");
    assert!(ok_b && frames_b >= 35, "client B: {frames_b}\n{err_b}");
    assert!(
        error_lines(&err_b).is_empty(),
        "client B saw decoding errors:\n{err_b}"
    );
    assert!(
        error_lines(&err_a).is_empty(),
        "client A saw decoding errors:\n{err_a}"
    );

    stop.store(true, Ordering::SeqCst);
    let output = publisher.join().expect("publisher");
    let stats = output.stats();
    assert!(stats.frames_encoded > 100, "{stats:?}");
    assert_eq!(stats.frames_dropped, 0, "{stats:?}");
    assert!(stats.encode_latency.p50.is_some(), "{stats:?}");
    output.finish().expect("finish");
}

#[test]
fn clients_are_counted_and_the_encoder_runs_without_them() {
    init_tracing();
    let server = RtspServer::start("127.0.0.1", 0).expect("server");
    let mut out = OutputOptions::new(320, 240, 25.0);
    out.mount = Some(server.mount("/runs/count").expect("mount"));
    out.encoder = EncoderChoice::X264;
    let output = Arc::new(Output::start(out).expect("output"));
    // A second mount on the same path is refused.
    assert!(server.mount("/runs/count").is_err());
    let source = Source::open(SourceOptions::new(
        "test://ball?width=320&height=240&fps=25",
    ))
    .expect("source");
    let stop = Arc::new(AtomicBool::new(false));
    let pumper = {
        let (output, stop) = (output.clone(), stop.clone());
        std::thread::spawn(move || pump(&source, &output, |_| stop.load(Ordering::SeqCst)))
    };
    std::thread::sleep(Duration::from_secs(1));
    let s = output.stats();
    assert_eq!(s.clients, 0);
    assert!(s.frames_encoded > 10, "encodes with nobody watching: {s:?}");

    let client = spawn_ffmpeg(&server.url("/runs/count"), 100);
    let deadline = Instant::now() + Duration::from_secs(10);
    while output.stats().clients == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(output.stats().clients, 1);
    let (ok, frames, stderr) = wait_ffmpeg(client, Duration::from_secs(30));
    assert!(ok && frames >= 90, "{frames}\n{stderr}");
    // TEARDOWN removes the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while output.stats().clients > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(output.stats().clients, 0);
    stop.store(true, Ordering::SeqCst);
    pumper.join().unwrap();
}

#[test]
fn mp4_output_has_every_frame() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.mp4");
    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Fast;
    let source = Source::open(opts).expect("open");
    let mut out = OutputOptions::new(640, 480, 10.0); // scaled from 768x576
    out.mp4_path = Some(path.clone());
    out.encoder = EncoderChoice::X264;
    let output = Output::start(out).expect("output");
    let (pushed, end) = pump(&source, &output, |n| n >= 300);
    assert!(end.is_none(), "{end:?}");
    assert_eq!(pushed, 300);
    let stats = output.stats();
    assert_eq!(stats.frames_dropped, 0, "{stats:?}");
    output.finish().expect("finish");

    let out = run_with_limit(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
                "-of",
                "default=noprint_wrappers=1",
            ])
            .arg(&path),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("codec_name=h264"), "{text}");
    assert!(
        text.contains("width=640") && text.contains("height=480"),
        "{text}"
    );
    let n: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|v| v.trim().parse().ok())
        .expect("frame count");
    assert!((n - 300).abs() <= 2, "{n} frames in the MP4, pushed 300");
}

#[test]
fn output_rejects_bad_options_and_frames() {
    init_tracing();
    assert!(Output::start(OutputOptions::new(767, 576, 10.0)).is_err());
    assert!(Output::start(OutputOptions::new(640, 480, 0.0)).is_err());
    let output = Output::start(OutputOptions::new(64, 48, 10.0)).expect("output");
    let bad = sightline_core::Frame {
        format: sightline_core::PixelFormat::Rgb24,
        width: 64,
        height: 48,
        pts: sightline_core::Pts::ZERO,
        seq: 0,
        decoded_at: Instant::now(),
        data: vec![0; 10],
    };
    assert!(output.push(bad).is_err());
    // A frame of another size is scaled, not refused.
    let f = sightline_core::Frame::filled(32, 24, [255, 0, 0], sightline_core::Pts::ZERO);
    output.push(f).expect("scaled");
    output.finish().expect("finish");
    let _ = SourceEvent::Idle;
}

fn ffprobe_duration(path: &std::path::Path) -> (f64, i64) {
    let out = run_with_limit(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "format=duration:stream=nb_read_frames",
                "-of",
                "default=noprint_wrappers=1",
            ])
            .arg(path),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
    };
    (
        get("duration=").parse().unwrap(),
        get("nb_read_frames=").parse().unwrap(),
    )
}

#[test]
fn recording_cuts_playable_segments_and_clips_across_them() {
    use sightline_media::{RecordOptions, SegmentEvent, export_clip};
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(parking_lot::Mutex::new(Vec::<SegmentEvent>::new()));
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let root = dir.path().to_path_buf();
    let location = {
        let n = n.clone();
        Arc::new(move || root.join(format!("seg-{}.mp4", n.fetch_add(1, Ordering::SeqCst))))
    };
    let sink = events.clone();
    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Fast;
    let source = Source::open(opts).expect("open");
    let mut out = OutputOptions::new(768, 576, 10.0);
    out.encoder = EncoderChoice::X264;
    out.keyframe_interval = Duration::from_secs(1);
    out.record = Some(RecordOptions::new(
        Duration::from_secs(2),
        location,
        Arc::new(move |e| sink.lock().push(e)),
    ));
    let output = Output::start(out).expect("output");
    // 75 frames at 10 fps: 7.5 s of video → segments of ~2 s.
    let (pushed, end) = pump(&source, &output, |n| n >= 75);
    assert!(end.is_none(), "{end:?}");
    assert_eq!(pushed, 75);
    output.finish().expect("finish");

    let ev = events.lock().clone();
    let opened: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::Opened { path, pts, .. } => Some((path.clone(), *pts)),
            _ => None,
        })
        .collect();
    let closed: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::Closed { path, pts, .. } => Some((path.clone(), *pts)),
            _ => None,
        })
        .collect();
    assert!(
        !ev.iter().any(|e| matches!(e, SegmentEvent::Failed { .. })),
        "{ev:?}"
    );
    assert!(opened.len() >= 3, "segments: {ev:?}");
    assert_eq!(
        opened.len(),
        closed.len(),
        "every segment finalised: {ev:?}"
    );
    let mut total_frames = 0;
    for ((p, start), (q, end)) in opened.iter().zip(&closed) {
        assert_eq!(p, q);
        let (dur, frames) = ffprobe_duration(p);
        total_frames += frames;
        let span = (*end - *start).as_secs_f64();
        assert!(
            (dur - span).abs() < 0.25,
            "{p:?}: file {dur} s, reported {span} s"
        );
    }
    assert!(
        (total_frames - 75).abs() <= 1,
        "{total_frames} frames recorded"
    );

    // A clip from 1.5 s to 5.5 s, across segments: 4 s, starting up to 1 keyframe earlier.
    let files: Vec<_> = opened.iter().map(|(p, _)| p.clone()).collect();
    let clip = dir.path().join("clip.mp4");
    export_clip(
        &files,
        Duration::from_millis(1500),
        Duration::from_millis(5500),
        &clip,
        Duration::from_secs(30),
    )
    .expect("clip");
    let (dur, frames) = ffprobe_duration(&clip);
    assert!(
        (4.0..=5.1).contains(&dur),
        "clip of {dur} s ({frames} frames), asked 4 s ± 1 keyframe interval"
    );
}

/// A recorder copying the RTSP output (`ffmpeg -c copy`, as NVRs do) gets timestamps that
/// follow the source: monotonic, one frame interval apart, no muxer complaints.
#[test]
fn rtsp_output_timestamps_follow_the_source_for_recorders() {
    init_tracing();
    let server = RtspServer::start("127.0.0.1", 0).expect("server");
    let (stop, publisher) = start_publishing(&server, "/runs/pts");
    let url = server.url("/runs/pts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.mkv");
    let recorder = spawn_ffmpeg_copy(&url, 120, &file);
    let (ok, _, stderr) = wait_ffmpeg(recorder, Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    let output = publisher.join().expect("publisher");
    output.finish().expect("finish");
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let complaints = timestamp_complaints(&stderr);
    let pts = packet_pts(&file);
    assert!(pts.len() >= 100, "only {} packets", pts.len());
    // The first packet is skipped: ffmpeg gives the first access unit it receives the second
    // one's timestamp (seen with the former push-time stamping as well).
    let steps: Vec<f64> = pts[1..].windows(2).map(|w| w[1] - w[0]).collect();
    let off = steps.iter().filter(|d| (**d - 0.1).abs() > 0.0015).count();
    eprintln!(
        "recorder copy: {} packets, {complaints} dts complaints, {off} steps not 100 ms (min {:.4}, max {:.4})",
        pts.len(),
        steps.iter().copied().fold(f64::MAX, f64::min),
        steps.iter().copied().fold(f64::MIN, f64::max),
    );
    assert_eq!(complaints, 0, "ffmpeg complained:\n{stderr}");
    assert_eq!(off, 0, "output spacing jitters: {steps:?}");
}
