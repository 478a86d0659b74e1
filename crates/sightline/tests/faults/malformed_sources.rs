//! Malformed sources on one `sightline worker`: a clear verdict or a clean renegotiation,
//! never a hang.
//!
//! - a TCP server that answers every connection with garbage bytes, as `rtsp://` and as
//!   `http://…/x.mp4`;
//! - a TCP server that accepts and never answers, as `rtsp://` and as `http://…/x.mp4`;
//!
//! each must end `failed` with its reason code within a bounded time under a short
//! `[connect]` policy (2 attempts, 0.5 s apart, 3 s each), and
//!
//! - a stream whose resolution changes mid-run (2 s of 640x360 then 2 s of 320x240 H.264 in
//!   one MPEG-TS, made with ffmpeg), as a file and served over HTTP, must complete with every
//!   frame through the pipeline (counted in the run's MP4 recording).
//!
//! Afterwards the worker is still alive and completes a good run.

use crate::harness::{Env, Guard, wait_exit};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `[connect]` bounds: 2 attempts × 3 s + 0.5 s between them, plus start-up slack.
const VERDICT_BOUND: Duration = Duration::from_secs(30);

/// A server on 127.0.0.1 that runs `serve` on each accepted connection (own thread each);
/// the listener lives as long as the test process.
fn server(serve: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

/// Reads what the client sends, answers with garbage (binary, no protocol line), closes.
fn garbage(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let mut seed = 0x2545_f491_u32;
    let junk: Vec<u8> = (0..8192)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    let _ = s.write_all(b"\x00\xffGARBAGE\r\n\r\n");
    let _ = s.write_all(&junk);
    let _ = s.flush();
}

/// Accepts and never answers; reads (and discards) until the client goes away.
fn silent(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// Serves one file over HTTP/1.0 (`Content-Type: video/mp2t`), whatever the path.
fn http_file(file: &Path) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let file = file.to_owned();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let file = file.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                let body = std::fs::read(&file).unwrap_or_default();
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            });
        }
    });
    port
}

fn ffmpeg(args: &[&str]) {
    let o = Command::new("timeout")
        .args(["-k", "2", "60", "ffmpeg", "-nostdin", "-y", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Consecutive frames of one size: `((width, height), count)`.
type SizeRun = ((u64, u64), u64);

/// `(frames, sizes in order)` of a video file, by ffprobe.
fn frames(file: &Path) -> (u64, Vec<SizeRun>) {
    let o = Command::new("timeout")
        .args([
            "-k",
            "2",
            "60",
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
        ])
        .args(["-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    assert!(o.status.success(), "ffprobe {}", file.display());
    let mut runs: Vec<SizeRun> = Vec::new();
    let mut n = 0;
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let mut it = l.split(',').filter(|s| !s.is_empty());
        let (Some(w), Some(h)) = (it.next(), it.next()) else {
            continue;
        };
        let wh = (w.parse().unwrap_or(0), h.parse().unwrap_or(0));
        n += 1;
        match runs.last_mut() {
            Some((last, k)) if *last == wh => *k += 1,
            _ => runs.push((wh, 1)),
        }
    }
    (n, runs)
}

/// Seconds from the run's creation to its last transition.
fn verdict_time(run: &Value) -> f64 {
    let tr = run["transitions"].as_array().unwrap();
    let t = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    (t(tr.last().unwrap()) - t(&tr[0])) as f64 / 1000.0
}

#[test]
fn malformed_sources_fail_clearly_or_renegotiate() {
    let t_test = Instant::now();
    let env = Env::sqlite();
    env.config(
        "short",
        "[model]\ninterval = 5\n[output]\nrtsp = false\n\
         [connect]\nattempts = 2\ninterval_s = 0.5\ntimeout_s = 3.0\n",
    );
    // The resolution change: 20 frames of 640x360 then 20 of 320x240, one MPEG-TS.
    let a = env.path("a.ts");
    let b = env.path("b.ts");
    let ab = env.path("ab.ts");
    let x264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10"];
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x360:rate=10:duration=2",
    ];
    args.extend(x264);
    args.extend(["-f", "mpegts", a.to_str().unwrap()]);
    ffmpeg(&args);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10:duration=2",
    ];
    args.extend(x264);
    args.extend([
        "-output_ts_offset",
        "2",
        "-f",
        "mpegts",
        b.to_str().unwrap(),
    ]);
    ffmpeg(&args);
    let mut joined = std::fs::read(&a).unwrap();
    joined.extend(std::fs::read(&b).unwrap());
    std::fs::write(&ab, joined).unwrap();
    let (n, sizes) = frames(&ab);
    assert_eq!(
        (n, sizes.as_slice()),
        (40, &[((640, 360), 20), ((320, 240), 20)][..]),
        "the test stream"
    );
    let http_ab = http_file(&ab);

    let garbage_port = server(garbage);
    let silent_port = server(silent);
    let mut worker = Guard(Some(env.worker("w1", &["--max-runs", "8"])));
    let bad = [
        (
            "garbage-rtsp",
            format!("rtsp://127.0.0.1:{garbage_port}/cam"),
        ),
        (
            "garbage-http",
            format!("http://127.0.0.1:{garbage_port}/x.mp4"),
        ),
        ("silent-rtsp", format!("rtsp://127.0.0.1:{silent_port}/cam")),
        (
            "silent-http",
            format!("http://127.0.0.1:{silent_port}/x.mp4"),
        ),
    ];
    for (id, url) in &bad {
        env.add_run(id, url, "short", &[]);
    }
    let mp4_file = env.path("resize-file.mp4");
    let mp4_http = env.path("resize-http.mp4");
    env.add_run(
        "resize-file",
        ab.to_str().unwrap(),
        "short",
        &["--pacing", "fast", "--mp4", mp4_file.to_str().unwrap()],
    );
    env.add_run(
        "resize-http",
        &format!("http://127.0.0.1:{http_ab}/ab.ts"),
        "short",
        // Blocking, not live: a live source drops the oldest frames when behind (by design),
        // and this case is about the renegotiation, not about load.
        &["--pacing", "fast", "--mp4", mp4_http.to_str().unwrap()],
    );

    for (id, _) in &bad {
        env.wait_state(id, &["failed", "completed"], VERDICT_BOUND, &["w1"]);
        let r = env.run(id);
        assert_eq!(r["state"], "failed", "{id}: {r}");
        let code = r["last_error"]["code"].as_str().unwrap_or_default();
        let msg = r["last_error"]["message"].as_str().unwrap_or_default();
        let expected: &[&str] = if id.starts_with("silent") {
            // A silent server times out: retried per `[connect]`, then unreachable.
            &["source_unreachable"]
        } else {
            // Garbage is not a stream: GStreamer reports a read error ("Could not read from
            // resource", "Internal data stream error"), which counts as unreachable: retried
            // per `[connect]`, then failed.
            &["source_unreachable"]
        };
        assert!(
            expected.contains(&code) && !msg.is_empty(),
            "{id}: reason {code:?} ({msg}) not one of {expected:?}"
        );
        assert!(
            msg.contains("after 2 attempts"),
            "{id}: the [connect] policy: {msg}"
        );
        // Garbage fails at each attempt at once; silence costs the 3 s attempt timeout twice.
        let secs = verdict_time(&r);
        let bound = if id.starts_with("silent") { 12.0 } else { 5.0 };
        assert!(
            secs < bound,
            "{id}: verdict after {secs} s (bound {bound} s)"
        );
        eprintln!("FIGURE: malformed source {id}: failed, {code} in {secs:.1} s ({msg})");
    }

    for (id, mp4) in [("resize-file", &mp4_file), ("resize-http", &mp4_http)] {
        env.wait_state(
            id,
            &["completed", "failed"],
            Duration::from_secs(60),
            &["w1"],
        );
        let r = env.run(id);
        assert_eq!(r["state"], "completed", "{id}: {r}\n{}", env.log("w1"));
        let (n, sizes) = frames(mp4);
        assert_eq!(n, 40, "{id}: frames through the pipeline: {sizes:?}");
        eprintln!(
            "FIGURE: malformed source {id} (640x360 → 320x240 mid-stream): completed, \
             {n}/40 frames out {sizes:?}, in {:.1} s",
            verdict_time(&r)
        );
    }

    // Still alive, still working.
    assert!(
        worker.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "worker died: {}",
        env.log("w1")
    );
    env.add_run("good", a.to_str().unwrap(), "short", &["--pacing", "fast"]);
    env.wait_state(
        "good",
        &["completed", "failed"],
        Duration::from_secs(30),
        &["w1"],
    );
    assert_eq!(env.state("good"), "completed", "{}", env.run("good"));
    let mut w = worker.0.take().unwrap();
    crate::common::sigterm(&w);
    let st = wait_exit(&mut w, Duration::from_secs(20), "worker");
    assert!(st.success(), "worker exit {st:?}: {}", env.log("w1"));
    eprintln!(
        "malformed sources test: {:.1} s",
        t_test.elapsed().as_secs_f64()
    );
}
