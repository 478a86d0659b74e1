//! Hardware codec check: which NVIDIA elements registered, and whether the automatic
//! encoder choice and decoder ranking actually use them end to end.
//!
//! `cargo run -p sightline-media --example media_gpu_check --release`
//!
//! 1. 1080p test pattern → `Output` (x264enc, then the automatic choice) → MP4, in fps;
//! 2. each MP4 decoded back by a `Source` (which decoder won, fps, frame count);
//! 3. the automatic encoder on an RTSP mount read back by an RTSP `Source`.
#![allow(clippy::print_stdout)] // a command-line tool: its output is the report

use sightline_media::{
    EncoderChoice, Output, OutputOptions, Pacing, RtspServer, Source, SourceEvent, SourceOptions,
};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sightline_media::init()?;
    for e in [
        "nvh264enc",
        "nvh264dec",
        "nvh265dec",
        "x264enc",
        "avdec_h264",
    ] {
        println!("{e:12} registered: {}", sightline_media::has_element(e));
    }
    let dir = std::env::temp_dir().join(format!("sightline-gpu-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (label, choice) in [("x264", EncoderChoice::X264), ("auto", EncoderChoice::Auto)] {
        let path = dir.join(format!("{label}.mp4"));
        let mut src = SourceOptions::new("test://smpte?width=1920&height=1080&fps=30&frames=300");
        src.pacing = Pacing::Fast;
        let source = Source::open(src)?;
        let mut out = OutputOptions::new(1920, 1080, 30.0);
        out.encoder = choice;
        out.mp4_path = Some(path.clone());
        out.bitrate_kbps = 8000;
        out.push_timeout = Duration::from_secs(10);
        let output = Output::start(out)?;
        let start = Instant::now();
        let mut n = 0;
        while let SourceEvent::Frame(f) = source.next(Duration::from_secs(10)) {
            output.push(f)?;
            n += 1;
        }
        let stats = output.stats();
        output.finish()?;
        let enc_fps = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "encode {label}: {} {n} frames 1080p at {enc_fps:.1} fps (test pattern generation \
             included), encode latency p50 {:?}",
            stats.encoder, stats.encode_latency.p50
        );
        let mut dec = SourceOptions::new(path.to_string_lossy().into_owned());
        dec.pacing = Pacing::Fast;
        let source = Source::open(dec)?;
        let start = Instant::now();
        let mut m = 0;
        while let SourceEvent::Frame(_) = source.next(Duration::from_secs(10)) {
            m += 1;
        }
        println!(
            "decode {label}.mp4: decoder {:?}, {m} frames at {:.1} fps",
            source.info().decoder,
            m as f64 / start.elapsed().as_secs_f64()
        );
    }

    // Auto encoder on an RTSP mount, read back over RTSP.
    let server = RtspServer::start("127.0.0.1", 0)?;
    let mut out = OutputOptions::new(1280, 720, 25.0);
    out.mount = Some(server.mount("/runs/gpu")?);
    let output = Output::start(out)?;
    let url = server.url("/runs/gpu");
    let pump = std::thread::spawn(move || -> Result<String, String> {
        let source = Source::open(SourceOptions::new(
            "test://ball?width=1280&height=720&fps=25",
        ))
        .map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            if let SourceEvent::Frame(f) = source.next(Duration::from_secs(1)) {
                output.push(f).map_err(|e| e.to_string())?;
            }
        }
        let s = output.stats();
        output.finish().map_err(|e| e.to_string())?;
        Ok(format!("{} encoded {} frames", s.encoder, s.frames_encoded))
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut opts = SourceOptions::new(url.clone());
    opts.connect_timeout = Duration::from_secs(5);
    let viewer = Source::open(opts)?;
    let mut got = 0;
    let start = Instant::now();
    while got < 60 && start.elapsed() < Duration::from_secs(6) {
        if let SourceEvent::Frame(_) = viewer.next(Duration::from_secs(1)) {
            got += 1;
        }
    }
    println!(
        "rtsp {url}: decoder {:?}, {got} frames in {:.1} s",
        viewer.info().decoder,
        start.elapsed().as_secs_f64()
    );
    viewer.close();
    println!(
        "rtsp output: {}",
        pump.join().map_err(|_| "pump panicked")??
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
