//! Helpers shared by the integration tests: the sample clip, ffmpeg/ffprobe runners, RSS.
#![allow(dead_code)]

use sightline_media::{Output, Source, SourceEvent, draw};
use std::path::PathBuf;
use std::process::{Command, Output as ProcOutput, Stdio};
use std::time::{Duration, Instant};

pub fn vtest() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/vtest.avi"
    ))
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sightline_media=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs a command with a hard time limit; returns its output (killed ⇒ panics).
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> ProcOutput {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} ran longer than {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn ffprobe_rtsp(url: &str) -> String {
    let out = run_with_limit(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "default=noprint_wrappers=1",
            url,
        ]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawns `ffmpeg -rtsp_transport tcp -i URL -frames:v N -f null -`.
pub fn spawn_ffmpeg(url: &str, frames: u32) -> std::process::Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-frames:v",
            &frames.to_string(),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// Spawns a recorder as NVRs run one: `ffmpeg -rtsp_transport tcp -i URL -c copy -frames:v N
/// FILE` (no decoding; the muxer checks the timestamps).
pub fn spawn_ffmpeg_copy(url: &str, frames: u32, file: &std::path::Path) -> std::process::Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "warning",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-c",
            "copy",
            "-frames:v",
            &frames.to_string(),
            "-y",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// Lines where ffmpeg's muxer complained about timestamps.
pub fn timestamp_complaints(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("non monotonically increasing dts") || l.contains("non monotonic"))
        .count()
}

/// Presentation timestamps (seconds) of the video packets of a file, in file order.
pub fn packet_pts(path: &std::path::Path) -> Vec<f64> {
    let out = run_with_limit(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(path),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect()
}

/// Waits for a spawned ffmpeg (killing it after `limit`); returns (success, frames, stderr).
pub fn wait_ffmpeg(mut child: std::process::Child, limit: Duration) -> (bool, u64, String) {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("ffmpeg output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), decoded_frames(&stderr), stderr)
}

/// The last `frame=  N` in ffmpeg's progress output.
pub fn decoded_frames(stderr: &str) -> u64 {
    stderr
        .rsplit("frame=")
        .next()
        .filter(|_| stderr.contains("frame="))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Lines of ffmpeg's stderr that report decoding problems.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("concealing")
        })
        .collect()
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Pumps frames from a source into an output (stamping the PTS) until `until` says stop or
/// the source ends; returns the number of frames pushed and the last event.
pub fn pump(
    source: &Source,
    output: &Output,
    mut until: impl FnMut(u64) -> bool,
) -> (u64, Option<SourceEvent>) {
    let mut n = 0;
    loop {
        if until(n) {
            return (n, None);
        }
        match source.next(Duration::from_millis(200)) {
            SourceEvent::Frame(mut f) => {
                draw::stamp_pts(&mut f);
                output.push(f).expect("push");
                n += 1;
            }
            SourceEvent::Idle => {}
            other => return (n, Some(other)),
        }
    }
}
