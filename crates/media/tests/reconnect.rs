//! A camera that dies and comes back: the source reports `Lost`, reopens once the camera is
//! back, and the run's output mount stays up throughout (serving a slate meanwhile), so a
//! viewer connected from start to end keeps receiving frames.

#![allow(clippy::print_stderr)]

mod common;

use common::*;
use sightline_core::{Frame, Pts};
use sightline_media::testing::TestRtspServer;
use sightline_media::{
    EncoderChoice, Output, OutputOptions, RtspServer, Source, SourceEvent, SourceOptions, draw,
};
use std::time::{Duration, Instant};

const SLATE_EVERY: Duration = Duration::from_millis(100);

/// Pushes a dimmed copy of `last` if no frame was pushed for `SLATE_EVERY`.
fn slate_tick(output: &Output, last: &Frame, last_push: &mut Instant, slates: &mut u64) {
    if last_push.elapsed() >= SLATE_EVERY {
        let pts = Pts::from_nanos(last.pts.nanos() + (*slates as i64 + 1) * 100_000_000);
        output
            .push(draw::lost_slate(last, pts))
            .expect("push slate");
        *last_push = Instant::now();
        *slates += 1;
    }
}

#[test]
fn lost_camera_is_reopened_and_viewers_stay_connected() {
    init_tracing();
    let mut camera = TestRtspServer::start(0, vtest(), "/cam").expect("camera");
    let cam_port = camera.port();

    let server = RtspServer::start("127.0.0.1", 0).expect("server");
    let mut out = OutputOptions::new(768, 576, 10.0);
    out.mount = Some(server.mount("/runs/reconnect").expect("mount"));
    out.encoder = EncoderChoice::X264;
    let output = Output::start(out).expect("output");
    let out_url = server.url("/runs/reconnect");

    let mut opts = SourceOptions::new(camera.url());
    opts.connect_timeout = Duration::from_secs(10);
    opts.stall_timeout = Duration::from_secs(2);
    let source = Source::open(opts.clone()).expect("open camera");
    assert!(source.info().is_live);
    assert_eq!((source.info().width, source.info().height), (768, 576));

    let viewer = spawn_ffmpeg(&out_url, 100);
    // A recorder copying the stream across the outage (slates, then a new camera clock).
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("across.mkv");
    let recorder = spawn_ffmpeg_copy(&out_url, 90, &recording);

    // Phase A: live frames until the viewer and the recorder are watching and 30 frames went through.
    let mut last: Option<Frame> = None;
    let mut live_a = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_a < 30 || output.stats().clients < 2 {
        assert!(Instant::now() < deadline, "phase A: {:?}", output.stats());
        match source.next(Duration::from_millis(500)) {
            SourceEvent::Frame(mut f) => {
                draw::stamp_pts(&mut f);
                last = Some(f.clone());
                output.push(f).expect("push");
                live_a += 1;
            }
            SourceEvent::Idle => {}
            other => panic!("phase A: {other:?}"),
        }
    }
    let last = last.expect("a frame");

    // The camera dies.
    camera.stop();
    let killed = Instant::now();
    let mut last_push = Instant::now();
    let mut slates = 0u64;
    let reason = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "no Lost after the camera died"
        );
        match source.next(Duration::from_millis(50)) {
            SourceEvent::Lost(reason) => break reason,
            SourceEvent::Frame(f) => {
                // Frames still in flight when the camera died.
                output.push(f).expect("push");
                last_push = Instant::now();
            }
            SourceEvent::Idle => slate_tick(&output, &last, &mut last_push, &mut slates),
            other => panic!("expected Lost, got {other:?}"),
        }
    };
    assert!(!reason.is_empty());
    source.close();

    // Phase B: the camera stays down for a while; the mount keeps serving the slate.
    let encoded_before = output.stats().frames_encoded;
    let down_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < down_until {
        slate_tick(&output, &last, &mut last_push, &mut slates);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reopening fails while it is down, with a retryable error.
    let err = Source::open(SourceOptions {
        connect_timeout: Duration::from_secs(1),
        ..opts.clone()
    })
    .expect_err("camera is down");
    assert!(
        matches!(
            err.kind,
            sightline_media::MediaErrorKind::Unreachable | sightline_media::MediaErrorKind::Timeout
        ),
        "{err}"
    );
    let stats = output.stats();
    assert!(slates >= 25, "only {slates} slates");
    assert!(
        stats.frames_encoded >= encoded_before + 20,
        "slates were not encoded: {stats:?}"
    );
    assert_eq!(
        stats.clients, 2,
        "the viewer or the recorder left during the outage"
    );

    // The camera comes back on the same port; the source is reopened (with retries).
    camera.restart().expect("camera restart");
    assert_eq!(camera.port(), cam_port);
    let reopen_deadline = Instant::now() + Duration::from_secs(15);
    let source = loop {
        slate_tick(&output, &last, &mut last_push, &mut slates);
        match Source::open(opts.clone()) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < reopen_deadline, "cannot reopen: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };

    // Phase C: frames resume; keep going until the viewer has its 100 frames.
    let mut live_c = 0u64;
    let viewer_deadline = Instant::now() + Duration::from_secs(40);
    let mut viewer = Some(viewer);
    let mut viewer_result = None;
    while viewer_result.is_none() {
        assert!(Instant::now() < viewer_deadline, "viewer never finished");
        match source.next(Duration::from_millis(200)) {
            SourceEvent::Frame(mut f) => {
                draw::stamp_pts(&mut f);
                output.push(f).expect("push");
                live_c += 1;
            }
            SourceEvent::Idle => {}
            other => panic!("phase C: {other:?}"),
        }
        if live_c >= 30
            && let Some(mut v) = viewer.take()
        {
            match v.try_wait().expect("viewer") {
                Some(_) => viewer_result = Some(wait_ffmpeg(v, Duration::from_secs(1))),
                None => viewer = Some(v),
            }
        }
    }
    let (ok, frames, stderr) = viewer_result.expect("viewer result");
    assert!(ok, "viewer failed:\n{stderr}");
    assert!(frames >= 100, "viewer got {frames} frames:\n{stderr}");
    assert!(live_c >= 30, "frames did not resume: {live_c}");
    let stats = output.stats();
    assert_eq!(stats.frames_dropped, 0, "{stats:?}");
    output.finish().expect("finish");

    // The recording's timestamps only go forwards, through the slate and the reconnect,
    // without holes or bunching beyond a frame or so.
    let (ok, _, stderr) = wait_ffmpeg(recorder, Duration::from_secs(10));
    assert!(ok, "recorder failed:\n{stderr}");
    assert_eq!(timestamp_complaints(&stderr), 0, "{stderr}");
    let pts = packet_pts(&recording);
    assert!(pts.len() >= 85, "recorded {} packets", pts.len());
    let steps: Vec<f64> = pts[1..].windows(2).map(|w| w[1] - w[0]).collect();
    let (min, max) = steps
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    eprintln!(
        "recording across the outage: {} packets, steps {min:.3}..{max:.3} s",
        pts.len()
    );
    assert!(
        min > 0.0 && max < 0.35,
        "steps from {min} to {max}: {steps:?}"
    );
}

#[test]
fn rtsp_credentials_are_used_and_never_leak() {
    init_tracing();
    let camera =
        TestRtspServer::start_with_credentials(0, vtest(), "/secure", "viewer", "s3cr:t@pw")
            .expect("camera");
    let good = camera.url_with_credentials("viewer", "s3cr:t@pw");
    let mut opts = SourceOptions::new(good);
    opts.connect_timeout = Duration::from_secs(10);
    let source = Source::open(opts).expect("authenticated open");
    assert_eq!(
        source.info().uri,
        format!("rtsp://***@127.0.0.1:{}/secure", camera.port())
    );
    assert!(matches!(
        source.next(Duration::from_secs(3)),
        SourceEvent::Frame(_)
    ));
    source.close();

    for url in [
        camera.url_with_credentials("viewer", "wrong-password"),
        camera.url(),
    ] {
        let mut opts = SourceOptions::new(url);
        opts.connect_timeout = Duration::from_secs(5);
        let err = Source::open(opts).expect_err("must be refused");
        assert_eq!(
            err.kind,
            sightline_media::MediaErrorKind::AuthFailed,
            "{err}"
        );
        assert!(!format!("{err:?}").contains("wrong-password"), "{err:?}");
    }
}

/// A TCP relay that can be frozen: connections stay open but nothing passes, like a camera
/// behind a dead network path.
struct FreezableRelay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezableRelay {
    fn start(upstream_port: u16) -> FreezableRelay {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let Ok(n) = from.read(&mut buf) else { return };
                            if n == 0 {
                                return;
                            }
                            while flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezableRelay { port, frozen }
    }
}

#[test]
fn a_silent_camera_is_reported_lost_after_the_stall_timeout() {
    init_tracing();
    let camera = TestRtspServer::start(0, vtest(), "/cam").expect("camera");
    let relay = FreezableRelay::start(camera.port());
    let mut opts = SourceOptions::new(format!("rtsp://127.0.0.1:{}/cam", relay.port));
    opts.connect_timeout = Duration::from_secs(10);
    opts.stall_timeout = Duration::from_millis(1500);
    // What is tested is the stall after frames flowed. Opening through the relay has timed
    // out once on a loaded CI machine (no frame within 10 s); one more try is allowed.
    let source = match Source::open(opts.clone()) {
        Ok(s) => s,
        Err(e) if e.kind == sightline_media::MediaErrorKind::Timeout => {
            tracing::warn!(error = %e, "first open through the relay timed out; retrying");
            Source::open(opts).expect("open through the relay")
        }
        Err(e) => panic!("open through the relay: {e:?}"),
    };
    let mut frames = 0;
    while frames < 10 {
        if let SourceEvent::Frame(_) = source.next(Duration::from_secs(2)) {
            frames += 1;
        }
    }
    relay
        .frozen
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let frozen_at = Instant::now();
    let reason = loop {
        match source.next(Duration::from_millis(100)) {
            SourceEvent::Lost(reason) => break reason,
            SourceEvent::Frame(_) | SourceEvent::Idle => {
                assert!(frozen_at.elapsed() < Duration::from_secs(6), "no Lost");
            }
            other => panic!("{other:?}"),
        }
    };
    let after = frozen_at.elapsed();
    assert!(reason.contains("no frame for"), "{reason}");
    assert!(after >= Duration::from_millis(1400), "{after:?}");
    // Lost is sticky until the caller reopens.
    assert!(matches!(source.next(Duration::ZERO), SourceEvent::Lost(_)));
    let start = Instant::now();
    source.close();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        start.elapsed()
    );
}
