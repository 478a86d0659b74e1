//! HTTP sources against a tiny local HTTP server (no network needed).

mod common;

use common::*;
use sightline_media::{MediaErrorKind, Pacing, Source, SourceEvent, SourceOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

/// Serves `file` at `/clip.mp4` (anything else is 404) until the process ends; returns the
/// base URL.
fn serve(file: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let file = file.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                if path == "/clip.mp4" {
                    let body = std::fs::read(&file).unwrap();
                    let _ = write!(
                        stream,
                        "HTTP/1.0 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                } else {
                    let _ = stream.write_all(
                        b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn http_mp4_source_and_missing_resource() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let base = serve(clip);

    let mut opts = SourceOptions::new(format!("{base}/clip.mp4"));
    opts.pacing = Pacing::Fast;
    opts.connect_timeout = Duration::from_secs(10);
    let source = Source::open(opts).expect("open http");
    let info = source.info();
    assert_eq!((info.width, info.height), (320, 240));
    let mut n = 0;
    let end = loop {
        match source.next(Duration::from_secs(5)) {
            SourceEvent::Frame(_) => n += 1,
            other => break other,
        }
    };
    assert!(matches!(end, SourceEvent::Eos), "{end:?}");
    assert_eq!(n, 50, "2 s at 25 fps");

    let mut opts = SourceOptions::new(format!("{base}/nope.mp4"));
    opts.connect_timeout = Duration::from_secs(5);
    let err = Source::open(opts).expect_err("404");
    assert_eq!(err.kind, MediaErrorKind::NotFound, "{err}");
}
