//! Sources against real GStreamer: files, test patterns, bad inputs, slow consumers.

#![allow(clippy::print_stderr)]

mod common;

use common::*;
use sightline_core::error::{Classify, RetryHint};
use sightline_media::testing::ReferenceCamera;
use sightline_media::{MediaErrorKind, Pacing, RtspTransport, Source, SourceEvent, SourceOptions};
use std::time::{Duration, Instant};

fn open_err(opts: SourceOptions) -> (sightline_media::MediaError, Duration) {
    let start = Instant::now();
    let err = Source::open(opts).expect_err("must fail");
    (err, start.elapsed())
}

#[test]
fn file_replay_is_complete_and_ordered() {
    init_tracing();
    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Fast;
    let source = Source::open(opts).expect("open vtest.avi");
    let info = source.info();
    assert_eq!((info.width, info.height), (768, 576));
    assert_eq!(info.fps, Some(10.0));
    assert!(!info.is_live);
    assert_eq!(info.decoder.as_deref(), Some("avdec_msmpeg4"));
    let mut frames = 0u64;
    let mut last_pts = None;
    let end = loop {
        match source.next(Duration::from_secs(5)) {
            SourceEvent::Frame(f) => {
                assert_eq!(f.data.len(), 768 * 576 * 3);
                assert_eq!(f.seq, frames);
                if let Some(p) = last_pts {
                    assert!(f.pts > p, "PTS must increase");
                }
                last_pts = Some(f.pts);
                frames += 1;
            }
            other => break other,
        }
    };
    assert!(matches!(end, SourceEvent::Eos), "{end:?}");
    // Terminal events repeat.
    assert!(matches!(source.next(Duration::ZERO), SourceEvent::Eos));
    assert_eq!(frames, 795, "vtest.avi has 795 frames");
    let stats = source.stats();
    assert_eq!(stats.frames_received, 795);
    assert_eq!(stats.frames_delivered, 795);
    assert_eq!(stats.frames_dropped, 0);
    source.close();
}

#[test]
fn looped_file_keeps_timestamps_increasing() {
    init_tracing();
    let mut opts = SourceOptions::new("test://ball?width=64&height=48&fps=100&frames=30");
    opts.pacing = Pacing::Fast;
    let source = Source::open(opts).expect("open");
    let mut n = 0;
    while let SourceEvent::Frame(_) = source.next(Duration::from_secs(5)) {
        n += 1;
    }
    assert_eq!(n, 30, "frames=30 ends after 30 frames");

    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Fast;
    opts.loop_file = true;
    let source = Source::open(opts).expect("open");
    let mut last = None;
    for i in 0..1000 {
        match source.next(Duration::from_secs(5)) {
            SourceEvent::Frame(f) => {
                if let Some(p) = last {
                    assert!(f.pts > p, "frame {i}: {:?} after {:?}", f.pts, p);
                }
                last = Some(f.pts);
            }
            other => panic!("frame {i}: {other:?}"),
        }
    }
    // 1000 frames at 10 fps: more than the clip's 79.5 s.
    assert!(last.unwrap().secs_f64() > 95.0, "{:?}", last);
}

#[test]
fn test_pattern_source() {
    init_tracing();
    let source = Source::open(SourceOptions::new(
        "test://smpte?width=320&height=240&fps=30",
    ))
    .expect("open");
    let info = source.info();
    assert_eq!((info.width, info.height, info.fps), (320, 240, Some(30.0)));
    assert!(info.is_live);
    match source.next(Duration::from_secs(2)) {
        SourceEvent::Frame(f) => {
            assert_eq!((f.width, f.height), (320, 240));
            // SMPTE bars: the left-most bar is light grey (192,192,192).
            let [r, g, b] = f.pixel(5, 5);
            assert!(r > 150 && g > 150 && b > 150, "{:?}", [r, g, b]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_inputs_fail_fast_with_their_kind() {
    init_tracing();
    let (e, t) = open_err(SourceOptions::new("/definitely/not/here.mp4"));
    assert_eq!(e.kind, MediaErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("/definitely/not/here.mp4"));
    assert_eq!(e.retry(), RetryHint::DoNotRetry);
    assert!(t < Duration::from_secs(2));

    let (e, _) = open_err(SourceOptions::new("foo://x"));
    assert_eq!(e.kind, MediaErrorKind::UnsupportedScheme, "{e}");
    assert_eq!(e.retry(), RetryHint::DoNotRetry);

    let (e, _) = open_err(SourceOptions::new("test://nosuchpattern"));
    assert_eq!(e.kind, MediaErrorKind::InvalidUri, "{e}");

    // A text file dressed as an MP4.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.mp4");
    std::fs::write(
        &fake,
        "these are not the frames you are looking for\n".repeat(200),
    )
    .unwrap();
    let (e, t) = open_err(SourceOptions::new(fake.to_string_lossy().into_owned()));
    assert_eq!(e.kind, MediaErrorKind::NotVideo, "{e}");
    assert!(t < Duration::from_secs(5), "{t:?}");

    // An audio-only file.
    let wav = dir.path().join("tone.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-y"])
        .arg(&wav)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let (e, t) = open_err(SourceOptions::new(wav.to_string_lossy().into_owned()));
    assert_eq!(e.kind, MediaErrorKind::NotVideo, "{e}");
    assert!(t < Duration::from_secs(5), "{t:?}");
}

#[test]
fn unreachable_hosts_are_typed_and_bounded() {
    init_tracing();
    // Connection refused: nothing listens on port 1. Credentials never leak.
    let mut opts = SourceOptions::new("rtsp://admin:hunter22@127.0.0.1:1/x");
    opts.connect_timeout = Duration::from_secs(5);
    let (e, t) = open_err(opts);
    assert_eq!(e.kind, MediaErrorKind::Unreachable, "{e}");
    assert_eq!(e.retry(), RetryHint::Retry);
    assert!(t < Duration::from_secs(6), "{t:?}");
    assert!(!format!("{e} {e:?}").contains("hunter22"), "{e:?}");
    assert!(e.uri.starts_with("rtsp://***@127.0.0.1:1"), "{}", e.uri);

    // A non-routable address (TEST-NET-1): the connect timeout decides.
    for transport in [RtspTransport::Auto, RtspTransport::Tcp, RtspTransport::Udp] {
        let mut opts = SourceOptions::new("rtsp://192.0.2.1:554/stream");
        opts.connect_timeout = Duration::from_secs(2);
        opts.rtsp_transport = transport;
        let (e, t) = open_err(opts);
        assert!(
            matches!(
                e.kind,
                MediaErrorKind::Timeout | MediaErrorKind::Unreachable
            ),
            "{e}"
        );
        assert_eq!(e.retry(), RetryHint::Retry);
        assert!(t < Duration::from_secs(5), "{transport:?} took {t:?}");
    }

    // HTTP to a closed port.
    let mut opts = SourceOptions::new("http://127.0.0.1:1/clip.mp4");
    opts.connect_timeout = Duration::from_secs(5);
    let (e, t) = open_err(opts);
    assert_eq!(e.kind, MediaErrorKind::Unreachable, "{e}");
    assert!(t < Duration::from_secs(6), "{t:?}");
}

#[test]
fn realtime_pacing_follows_the_clip_rate_and_never_drops() {
    init_tracing();
    let mut opts = SourceOptions::new(vtest().to_string_lossy().into_owned());
    opts.pacing = Pacing::Realtime;
    let source = Source::open(opts).expect("open");
    let start = Instant::now();
    let mut n = 0;
    while n < 20 {
        if let SourceEvent::Frame(_) = source.next(Duration::from_secs(2)) {
            n += 1;
        }
    }
    let t = start.elapsed();
    // 20 frames at 10 fps ≈ 1.9 s after the first one.
    assert!(t > Duration::from_millis(1500), "{t:?}");
    // A slow consumer: the source waits instead of dropping.
    std::thread::sleep(Duration::from_secs(2));
    let stats = source.stats();
    assert_eq!(stats.frames_dropped, 0);
    assert!(stats.frames_received <= 20 + 6, "{stats:?}");
    assert!(matches!(
        source.next(Duration::from_secs(1)),
        SourceEvent::Frame(_)
    ));
}

/// Opens `url` with `transport` and reads one frame; returns the transport in use.
fn open_and_read(
    url: &str,
    transport: RtspTransport,
) -> Result<RtspTransport, sightline_media::MediaError> {
    let mut opts = SourceOptions::new(url);
    opts.rtsp_transport = transport;
    opts.connect_timeout = Duration::from_secs(8);
    let source = Source::open(opts)?;
    let info = source.info();
    assert_eq!((info.width, info.height), (320, 240), "{info:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match source.next(Duration::from_millis(500)) {
            SourceEvent::Frame(_) => break,
            SourceEvent::Idle if Instant::now() < deadline => {}
            other => panic!("{url}: expected a frame, got {other:?}"),
        }
    }
    Ok(info
        .rtsp_transport
        .expect("an RTSP source says its transport"))
}

/// Against the GStreamer reference RTSP server: a UDP-only camera (answers TCP `SETUP` with
/// `461 Unsupported transport`), a TCP-only one, and one with credentials.
#[test]
fn rtsp_transport_choice_fallback_and_error_kinds_against_a_reference_camera() {
    init_tracing();
    let udp_only = ReferenceCamera::start("udp", None);
    let url = udp_only.url("rtsp", "", "/cam");
    // Forced TCP: refused at once, with its own kind and a message that says what to do.
    let start = Instant::now();
    let e = open_and_read(&url, RtspTransport::Tcp).expect_err("TCP refused");
    assert_eq!(e.kind, MediaErrorKind::TransportRefused, "{e}");
    assert_eq!(e.retry(), RetryHint::DoNotRetry);
    assert!(
        e.message.contains("461") && e.message.contains("udp"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // UDP, auto (TCP refused, then UDP) and an rtspu:// URI all stream.
    assert_eq!(
        open_and_read(&url, RtspTransport::Udp).unwrap(),
        RtspTransport::Udp
    );
    let start = Instant::now();
    assert_eq!(
        open_and_read(&url, RtspTransport::Auto).unwrap(),
        RtspTransport::Udp
    );
    eprintln!(
        "auto on a UDP-only camera: first frame after {:?}",
        start.elapsed()
    );
    let rtspu = udp_only.url("rtspu", "", "/cam");
    assert_eq!(
        open_and_read(&rtspu, RtspTransport::Tcp).unwrap(),
        RtspTransport::Udp
    );

    let tcp_only = ReferenceCamera::start("tcp", None);
    let url = tcp_only.url("rtsp", "", "/cam");
    let e = open_and_read(&url, RtspTransport::Udp).expect_err("UDP refused");
    assert_eq!(e.kind, MediaErrorKind::TransportRefused, "{e}");
    assert!(e.message.contains("tcp"), "{e}");
    assert_eq!(
        open_and_read(&url, RtspTransport::Auto).unwrap(),
        RtspTransport::Tcp
    );
    let rtspt = tcp_only.url("rtspt", "", "/cam");
    assert_eq!(
        open_and_read(&rtspt, RtspTransport::Udp).unwrap(),
        RtspTransport::Tcp
    );

    let secured = ReferenceCamera::start("all", Some(("viewer", "s3cret")));
    let good = secured.url("rtsp", "viewer:s3cret@", "/cam");
    assert_eq!(
        open_and_read(&good, RtspTransport::Auto).unwrap(),
        RtspTransport::Tcp
    );
    // 401: its own kind, not retried, credentials masked everywhere.
    let bad = secured.url("rtsp", "viewer:hunter22@", "/cam");
    let e = open_and_read(&bad, RtspTransport::Auto).expect_err("401");
    assert_eq!(e.kind, MediaErrorKind::AuthFailed, "{e}");
    assert_eq!(e.retry(), RetryHint::DoNotRetry);
    assert!(!format!("{e} {e:?}").contains("hunter22"), "{e:?}");
    assert!(e.uri.starts_with("rtsp://***@127.0.0.1:"), "{}", e.uri);
    // 404: its own kind.
    let missing = secured.url("rtsp", "viewer:s3cret@", "/nothere");
    let e = open_and_read(&missing, RtspTransport::Auto).expect_err("404");
    assert_eq!(e.kind, MediaErrorKind::NotFound, "{e}");
    assert!(!format!("{e} {e:?}").contains("s3cret"), "{e:?}");
}

/// The first `n` frames of `uri`, decoded as RGB or as I420.
fn first_frames(uri: &str, yuv: bool, n: usize) -> Vec<sightline_core::Frame> {
    let mut opts = SourceOptions::new(uri.to_owned());
    opts.pacing = Pacing::Fast;
    opts.yuv = yuv;
    let source = Source::open(opts).expect("open");
    let mut out = Vec::new();
    while out.len() < n {
        match source.next(Duration::from_secs(5)) {
            SourceEvent::Frame(f) => out.push(f),
            other => panic!("{uri}: {other:?} after {} frames", out.len()),
        }
    }
    source.close();
    out
}

#[test]
fn i420_frames_turn_into_the_same_rgb_as_the_pipeline() {
    init_tracing();
    // The sample clip (SD, BT.601), an HD H.264 clip (BT.709) and an odd size (padded rows
    // and planes in GStreamer's layout, packed in ours), both encoded here by an `Output`.
    let dir = tempfile::tempdir().expect("tempdir");
    let encode = |name: &str, w: u32, h: u32| {
        let path = dir.path().join(name);
        let mut o = sightline_media::OutputOptions::new(w, h, 25.0);
        o.mp4_path = Some(path.clone());
        let out = sightline_media::Output::start(o).expect("output");
        for f in first_frames(
            &format!("test://ball?width={w}&height={h}&fps=25&frames=6"),
            false,
            6,
        ) {
            out.push(f).expect("push");
        }
        out.finish().expect("finish");
        path.to_string_lossy().into_owned()
    };
    let hd = encode("hd.mp4", 1280, 720);
    let odd = encode("odd.mp4", 322, 242);
    let clip = vtest().to_string_lossy().into_owned();
    for (uri, n) in [(clip.as_str(), 40), (hd.as_str(), 5), (odd.as_str(), 5)] {
        let rgb = first_frames(uri, false, n);
        let yuv = first_frames(uri, true, n);
        let mut conv = sightline_media::RgbConverter::new();
        for (a, b) in rgb.iter().zip(&yuv) {
            assert!(a.is_rgb() && !b.is_rgb(), "{uri}: formats");
            assert!(b.is_well_formed(), "{uri}: packed planes");
            assert_eq!(
                (a.width, a.height, a.pts, a.seq),
                (b.width, b.height, b.pts, b.seq)
            );
            let c = conv.to_rgb(b).expect("convert");
            assert!(c.is_rgb());
            let differ = a.data.iter().zip(&c.data).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "{uri} frame {}: {differ} bytes differ", a.seq);
        }
    }
    // I420 frames go into the encoder as they are (odd chroma width, packed planes): the
    // re-encoded clip decodes to the same pictures, up to H.264's loss.
    let yuv = first_frames(&odd, true, 5);
    let path = dir.path().join("odd-again.mp4");
    let mut o = sightline_media::OutputOptions::new(322, 242, 25.0);
    o.mp4_path = Some(path.clone());
    o.bitrate_kbps = 8000;
    let out = sightline_media::Output::start(o).expect("output");
    for f in yuv {
        out.push(f).expect("push an I420 frame");
    }
    out.finish().expect("finish");
    let again = first_frames(&path.to_string_lossy(), false, 5);
    let before = first_frames(&odd, false, 5);
    for (a, b) in before.iter().zip(&again) {
        let mad = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as f64)
            .sum::<f64>()
            / a.data.len() as f64;
        assert!(mad < 4.0, "frame {}: mean difference {mad:.2}", a.seq);
    }
}
