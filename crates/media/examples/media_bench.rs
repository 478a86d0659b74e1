//! Media throughput and latency figures (not a test: numbers depend on the machine).
//!
//! `cargo run -p sightline-media --example media_bench --release [-- --rounds N] [--client]`
//!
//! For `samples/vtest.avi` and a 1080p30 H.264 clip generated with ffmpeg it measures:
//! - Sightline: `Source` (Fast pacing) → draw the timestamp → `Output` (x264enc) on an RTSP
//!   mount (with `--client`, one ffmpeg client is watching, on the same cores), in fps;
//! - the same decode + encode chain run by `gst-launch-1.0 … ! fakesink` (the decode+encode
//!   limit of this machine; with a `queue` between decoding and encoding, as Sightline has a
//!   thread boundary there too) and decode alone, in fps, and Sightline's ratio to it;
//! - latency with the file paced in real time: push → encoded access unit, and
//!   decoded frame → encoded access unit (the glass-to-glass estimate inside Sightline).
#![allow(clippy::print_stdout)] // a command-line tool: its output is the report

use sightline_media::{
    EncoderChoice, Output, OutputOptions, Pacing, RtspServer, Source, SourceEvent, SourceOptions,
    draw,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Clip {
    name: &'static str,
    path: PathBuf,
    bitrate_kbps: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let with_client = args.iter().any(|a| a == "--client");
    sightline_media::init()?;

    let dir = std::env::temp_dir().join(format!("sightline-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip_1080 = dir.join("testsrc2-1080p30.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip_1080)
        .status()?;
    if !status.success() {
        return Err("ffmpeg could not generate the 1080p clip".into());
    }
    let clips = [
        Clip {
            name: "vtest.avi 768x576 msmpeg4v3 10fps, 795 frames",
            path: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../samples/vtest.avi"
            )),
            bitrate_kbps: 4000,
        },
        Clip {
            name: "testsrc2 1920x1080 h264 30fps, 300 frames",
            path: clip_1080.clone(),
            bitrate_kbps: 8000,
        },
    ];

    println!("# sightline-media bench ({rounds} rounds, best of; client watching: {with_client})");
    println!(
        "cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for clip in &clips {
        println!("\n## {}", clip.name);
        let (mut ours, mut reference, mut decode) = (0f64, 0f64, 0f64);
        let mut frames = 0;
        for _ in 0..rounds {
            let (n, fps) = sightline_fps(clip, with_client)?;
            frames = n;
            ours = ours.max(fps);
            reference = reference.max(gst_launch_fps(clip, n, true)?);
            decode = decode.max(gst_launch_fps(clip, n, false)?);
        }
        println!("frames: {frames}");
        println!("decode only (gst-launch ! fakesink):               {decode:7.1} fps");
        println!("decode+encode reference (gst-launch ! fakesink):   {reference:7.1} fps");
        println!("sightline decode→stamp→encode→RTSP mount:          {ours:7.1} fps");
        println!(
            "ratio sightline / reference:                       {:7.2}",
            ours / reference
        );
        latency(clip)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn key_int(fps: f64) -> u32 {
    fps.round().max(1.0) as u32
}

/// Sightline's chain as fast as it goes; returns (frames, fps).
fn sightline_fps(clip: &Clip, with_client: bool) -> Result<(u64, f64), Box<dyn std::error::Error>> {
    let server = RtspServer::start("127.0.0.1", 0)?;
    let mut opts = SourceOptions::new(clip.path.to_string_lossy().into_owned());
    opts.pacing = Pacing::Fast;
    let source = Source::open(opts)?;
    let info = source.info();
    let mut out = OutputOptions::new(info.width, info.height, info.fps.unwrap_or(25.0));
    out.mount = Some(server.mount("/runs/bench")?);
    out.bitrate_kbps = clip.bitrate_kbps;
    out.encoder = EncoderChoice::X264;
    out.push_timeout = Duration::from_secs(10);
    let output = Output::start(out)?;
    let client = with_client.then(|| spawn_client(&server.url("/runs/bench")));
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(mut f) => {
                draw::stamp_pts(&mut f);
                output.push(f)?;
                n += 1;
            }
            SourceEvent::Eos => break,
            other => return Err(format!("source: {other:?}").into()),
        }
    }
    let stats = output.stats();
    output.finish()?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(mut c) = client {
        let _ = c.kill();
        let _ = c.wait();
    }
    if stats.frames_dropped > 0 {
        return Err(format!("output dropped frames: {stats:?}").into());
    }
    Ok((n, n as f64 / secs))
}

fn spawn_client(url: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg client")
}

/// The same chain in gst-launch-1.0 (with `encode`), or decode alone; fps over `frames`.
fn gst_launch_fps(
    clip: &Clip,
    frames: u64,
    encode: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let fps = if clip.path.to_string_lossy().contains("1080") {
        30.0
    } else {
        10.0
    };
    let mut pipeline = format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB",
        quote(&clip.path)
    );
    if encode {
        pipeline.push_str(&format!(
            " ! queue max-size-buffers=4 ! videoconvert ! videoscale ! video/x-raw,format=I420 \
             ! x264enc tune=zerolatency \
             speed-preset=ultrafast key-int-max={} bitrate={} ! h264parse config-interval=-1 \
             ! video/x-h264,stream-format=byte-stream,alignment=au",
            key_int(fps),
            clip.bitrate_kbps
        ));
    }
    pipeline.push_str(" ! fakesink sync=false");
    let start = Instant::now();
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .status()?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("gst-launch failed: {pipeline}").into());
    }
    Ok(frames as f64 / secs)
}

fn quote(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Real-time pacing for a few seconds; latency percentiles from the output's own tracking.
fn latency(clip: &Clip) -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = SourceOptions::new(clip.path.to_string_lossy().into_owned());
    opts.pacing = Pacing::Realtime;
    let source = Source::open(opts)?;
    let info = source.info();
    let mut out = OutputOptions::new(info.width, info.height, info.fps.unwrap_or(25.0));
    out.bitrate_kbps = clip.bitrate_kbps;
    out.encoder = EncoderChoice::X264;
    let output = Output::start(out)?;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        match source.next(Duration::from_secs(2)) {
            SourceEvent::Frame(mut f) => {
                draw::stamp_pts(&mut f);
                output.push(f)?;
            }
            SourceEvent::Eos => break,
            other => return Err(format!("source: {other:?}").into()),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = output.stats();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "latency, real-time pacing ({} frames): push→encoded p50 {:.1} ms p95 {:.1} ms; \
         decoded→encoded p50 {:.1} ms p95 {:.1} ms",
        s.encode_latency.samples,
        ms(s.encode_latency.p50),
        ms(s.encode_latency.p95),
        ms(s.pipeline_latency.p50),
        ms(s.pipeline_latency.p95)
    );
    output.finish()?;
    Ok(())
}
