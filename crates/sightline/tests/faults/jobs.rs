//! Batch jobs end to end with the real binary: an upload through the real server becomes a
//! completed job whose events are the golden replay's; bad uploads (not a video, over the
//! limit by `Content-Length` or by counting, aborted mid-way, the disk full) leave nothing
//! behind; the same upload on PostgreSQL, with a queued job cancelled (its upload swept); two
//! workers on PostgreSQL share six queued jobs without running one twice.

use crate::common::{free_port, http};
use crate::harness::{self, Env, GOLDEN_EVENTS, Guard};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const BOUNDARY: &str = "sightline-test-boundary-7d1f";

/// A multipart `POST /v1/jobs` over one HTTP/1.1 connection: text fields, then the file.
/// Returns (status, body).
fn upload(port: u16, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (u16, String) {
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    if let Some((name, bytes)) = file {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) before it read everything; a reset then is expected.
    let _ = s.write_all(&body);
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_owned();
    // Chunked answers: keep the JSON object only.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b > a => body[a..=b].to_owned(),
        _ => body,
    };
    (status, body)
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http(port, "GET", path, None).expect("the server answers");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Files in the upload folder (temporary ones included).
fn uploads_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_job(port: u16, id: &str, within: Duration, env: &Env) -> (Value, f64) {
    let t0 = Instant::now();
    let mut max_fraction: f64 = 0.0;
    loop {
        let j = get_json(port, &format!("/v1/jobs/{id}"));
        if let Some(f) = j["progress"]["fraction"].as_f64() {
            assert!(f + 1e-9 >= max_fraction, "progress went back: {j}");
            max_fraction = f;
        }
        if matches!(
            j["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return (j, t0.elapsed().as_secs_f64());
        }
        assert!(
            t0.elapsed() < within,
            "job {id} not done after {within:?}: {j}\n{}",
            env.log("srv")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve(env: &Env, port: u16) -> Guard {
    serve_with(env, port, &[])
}

fn serve_with(env: &Env, port: u16, extra: &[&str]) -> Guard {
    let mut args = vec!["serve", "--rtsp-port", "0"];
    args.extend_from_slice(extra);
    let g = Guard(Some(env.spawn("srv", &args)));
    harness::wait_for(Duration::from_secs(60), "the API", || {
        http(port, "GET", "/health", None).map(|_| ())
    });
    g
}

#[test]
fn an_uploaded_clip_becomes_a_completed_job_with_the_golden_events() {
    let port = free_port();
    let mut env = Env::sqlite();
    env.var("SIGHTLINE_API__BIND", format!("127.0.0.1:{port}"));
    // Over the sample clip (8.1 MB), under what the over-limit cases send.
    env.var("SIGHTLINE_API__JOBS__MAX_UPLOAD_BYTES", "12000000");
    env.cli(&["migrate"]);
    env.config("demo", &harness::demo_toml_lean());
    let _srv = serve(&env, port);
    let upload_dir = env.path("uploads/jobs");

    let clip = std::fs::read(harness::sample_clip()).unwrap();
    let t0 = Instant::now();
    let (status, body) = upload(port, &[("config", "demo")], Some(("vtest.avi", &clip)));
    let upload_s = t0.elapsed().as_secs_f64();
    assert_eq!(status, 201, "{body}\n{}", env.log("srv"));
    let job: Value = serde_json::from_str(&body).unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["file_name"], "vtest.avi");
    assert_eq!(job["size_bytes"].as_u64(), Some(clip.len() as u64));
    assert!(matches!(job["state"].as_str(), Some("queued" | "running")));

    let (done, took) = wait_job(port, &id, Duration::from_secs(300), &env);
    assert_eq!(done["state"], "completed", "{done}\n{}", env.log("srv"));
    let p = &done["progress"];
    assert_eq!(p["fraction"].as_f64(), Some(1.0), "{done}");
    let frames = p["frames_done"].as_u64().unwrap();
    assert!(frames > 700, "the whole clip was processed: {done}");
    assert_eq!(p["total_frames"].as_u64(), Some(frames));
    assert!(done["warnings"].as_array().unwrap().is_empty(), "{done}");
    // Every event of the golden replay, reachable through the job filter.
    let events = harness::wait_for(Duration::from_secs(20), "the job's events", || {
        let page = get_json(port, &format!("/v1/events?job={id}&limit=1000"));
        let items = page["items"].as_array().unwrap().clone();
        (items.len() >= GOLDEN_EVENTS).then_some(items)
    });
    assert_eq!(events.len(), GOLDEN_EVENTS);
    assert_eq!(harness::duplicates(&events), 0);
    let summary = get_json(port, &format!("/v1/jobs/{id}/summary"));
    assert_eq!(summary["events_total"].as_u64(), Some(GOLDEN_EVENTS as u64));
    let by_rules: u64 = summary["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(by_rules, GOLDEN_EVENTS as u64);
    // The upload is gone once the job ended.
    harness::wait_for(Duration::from_secs(10), "the upload deleted", || {
        uploads_left(&upload_dir).is_empty().then_some(())
    });
    let listed = get_json(port, "/v1/jobs?state=completed");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    eprintln!(
        "FIGURE: job over the uploaded sample clip ({:.1} MB): upload {:.0} MB/s, {frames} \
         frames, {} events (golden {GOLDEN_EVENTS}), {:.1}× real time by the engine, {took:.1} s \
         from upload to completed",
        clip.len() as f64 / 1e6,
        clip.len() as f64 / 1e6 / upload_s,
        events.len(),
        p["x_realtime"].as_f64().unwrap_or(0.0),
    );

    // Not a video: the job fails with the reason, and the upload goes.
    let (status, body) = upload(
        port,
        &[("config", "demo")],
        Some((
            "notes.mp4",
            b"this is not a video, just text\n".repeat(2000).as_slice(),
        )),
    );
    assert_eq!(status, 201, "{body}");
    let bad: Value = serde_json::from_str(&body).unwrap();
    let (bad, _) = wait_job(
        port,
        bad["id"].as_str().unwrap(),
        Duration::from_secs(60),
        &env,
    );
    assert_eq!(bad["state"], "failed", "{bad}");
    let reason = bad["error"]["message"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "a failed job says why: {bad}");
    harness::wait_for(Duration::from_secs(10), "the bad upload deleted", || {
        uploads_left(&upload_dir).is_empty().then_some(())
    });

    // A truncated file: processed up to the damage.
    let (status, body) = upload(
        port,
        &[("config", "demo")],
        Some(("cut.avi", &clip[..clip.len() / 5])),
    );
    assert_eq!(status, 201, "{body}");
    let cut: Value = serde_json::from_str(&body).unwrap();
    let (cut, _) = wait_job(
        port,
        cut["id"].as_str().unwrap(),
        Duration::from_secs(120),
        &env,
    );
    eprintln!(
        "FIGURE: truncated upload (first 20 % of the clip): job {}, {} frames, warnings {}, error {}",
        cut["state"], cut["progress"]["frames_done"], cut["warnings"], cut["error"]
    );
    assert!(
        matches!(cut["state"].as_str(), Some("completed" | "failed")),
        "{cut}"
    );
    if cut["state"] == "completed" {
        assert!(cut["progress"]["frames_done"].as_u64().unwrap() < frames);
    }

    // Refused uploads leave nothing behind.
    let (status, body) = upload(port, &[("config", "nope")], Some(("a.avi", &clip[..1000])));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("config"), "{body}");
    // Over the limit by Content-Length: refused before the body is read.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 50000000\r\n\r\n"
    )
    .unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 413, "{body}");
    // Over the limit while streaming (the length is not announced up front).
    let big = vec![0u8; 13_000_000];
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let mut part = Vec::new();
    write!(
        part,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.avi\"\r\n\r\n"
    )
    .unwrap();
    part.extend_from_slice(&big);
    for chunk in part.chunks(256 * 1024) {
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 413, "{body}");
    // Aborted by the client mid-way.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 9000000\r\n\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.avi\"\r\n\r\n"
    )
    .unwrap();
    s.write_all(&clip[..2_000_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    harness::wait_for(Duration::from_secs(10), "no partial upload left", || {
        uploads_left(&upload_dir).is_empty().then_some(())
    });
    // Deleting a finished job removes it and its events.
    let (status, _) = http(port, "DELETE", &format!("/v1/jobs/{id}"), None).unwrap();
    assert_eq!(status, 204);
    let (status, _) = http(port, "GET", &format!("/v1/jobs/{id}"), None).unwrap();
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_share_six_jobs_without_running_one_twice() {
    let admin = harness::pg_admin_url();
    let (db, name) = harness::pg_fresh_db(&admin, "jobs").await;
    let env = Env::postgres(&db);
    env.cli(&["migrate"]);
    env.config("demo", &harness::demo_toml_lean());
    let clip = harness::repo_path("samples/plates/plate_car.mp4");
    let mut ids = Vec::new();
    for _ in 0..6 {
        let out = env.cli(&["jobs", "add", &clip, "-c", "demo"]);
        let j: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(j["state"], "queued");
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    let t0 = Instant::now();
    let _a = Guard(Some(env.worker("wa", &["--max-runs", "2"])));
    let _b = Guard(Some(env.worker("wb", &["--max-runs", "2"])));
    let mut owners = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let out = harness::wait_for(Duration::from_secs(240), "the jobs to end", || {
            let out = env.cli(&["jobs", "show", id]);
            let j: Value = serde_json::from_str(&out).unwrap();
            matches!(
                j["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
            .then_some(j)
        });
        assert_eq!(out["state"], "completed", "{out}\n{}", env.log("wa"));
        assert_eq!(out["attempts"], 1, "job {id} ran twice: {out}");
        let run = env.run(id);
        let starts: Vec<&str> = run["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["to"] == "starting")
            .filter_map(|t| t["worker"].as_str())
            .collect();
        assert_eq!(starts.len(), 1, "job {id} claimed more than once: {run}");
        *owners.entry(starts[0].to_owned()).or_default() += 1;
    }
    // `jobs wait` on a finished job prints its summary and exits 0.
    let out = env.cli(&["jobs", "wait", &ids[0]]);
    assert!(out.contains("\"completed\""), "{out}");
    eprintln!(
        "FIGURE: 6 jobs (plate_car.mp4) shared by 2 workers on PostgreSQL in {:.1} s: {owners:?}, \
         each claimed once",
        t0.elapsed().as_secs_f64()
    );
    harness::pg_drop_db(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_upload_completes_and_a_cancelled_queued_job_leaves_no_upload() {
    let admin = harness::pg_admin_url();
    let (db, name) = harness::pg_fresh_db(&admin, "jobup").await;
    let port = free_port();
    let mut env = Env::postgres(&db);
    env.var("SIGHTLINE_API__BIND", format!("127.0.0.1:{port}"));
    env.var("SIGHTLINE_API__JOBS__MAX_UPLOAD_BYTES", "12000000");
    env.cli(&["migrate"]);
    env.config("demo", &harness::demo_toml_lean());
    // One run at a time: the second job waits in the queue.
    let _srv = serve_with(&env, port, &["--max-runs", "1"]);
    let upload_dir = env.path("uploads/jobs");
    let clip = std::fs::read(harness::sample_clip()).unwrap();
    let post = |name: &str| {
        let (status, body) = upload(port, &[("config", "demo")], Some((name, &clip)));
        assert_eq!(status, 201, "{body}\n{}", env.log("srv"));
        let j: Value = serde_json::from_str(&body).unwrap();
        j["id"].as_str().unwrap().to_owned()
    };
    let first = post("first.avi");
    let second = post("second.avi");
    let j = get_json(port, &format!("/v1/jobs/{second}"));
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(uploads_left(&upload_dir).len(), 2);
    let (status, body) = http(port, "POST", &format!("/v1/jobs/{second}/cancel"), None).unwrap();
    assert_eq!(status, 202, "{body}");
    let j = get_json(port, &format!("/v1/jobs/{second}"));
    assert_eq!(j["state"], "cancelled", "{j}");
    // The queued job never reaches a pipeline; the worker's sweep deletes its upload.
    harness::wait_for(
        Duration::from_secs(10),
        "the cancelled upload deleted",
        || (uploads_left(&upload_dir).len() == 1).then_some(()),
    );

    let (done, _) = wait_job(port, &first, Duration::from_secs(300), &env);
    assert_eq!(done["state"], "completed", "{done}\n{}", env.log("srv"));
    assert_eq!(done["progress"]["fraction"].as_f64(), Some(1.0), "{done}");
    let events = harness::wait_for(Duration::from_secs(20), "the job's events", || {
        let page = get_json(port, &format!("/v1/events?job={first}&limit=1000"));
        let items = page["items"].as_array().unwrap().clone();
        (items.len() >= GOLDEN_EVENTS).then_some(items)
    });
    assert_eq!(events.len(), GOLDEN_EVENTS);
    assert_eq!(harness::duplicates(&events), 0);
    let summary = get_json(port, &format!("/v1/jobs/{first}/summary"));
    assert_eq!(summary["events_total"].as_u64(), Some(GOLDEN_EVENTS as u64));
    harness::wait_for(Duration::from_secs(10), "every upload deleted", || {
        uploads_left(&upload_dir).is_empty().then_some(())
    });
    harness::pg_drop_db(&admin, &name).await;
}

/// The upload folder is a 4 MB tmpfs (mounted by the test, as root): an 8 MB upload runs out
/// of space half-way → 507, the partial file removed, the server still serving; a small one
/// afterwards is accepted.
#[test]
fn an_upload_that_fills_the_disk_is_refused_with_507_and_leaves_nothing() {
    let port = free_port();
    let mut env = Env::sqlite();
    let vol = env.path("uploads-vol");
    let Some(_unmount) = harness::mount_tmpfs(&vol, 4 * 1024 * 1024) else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    env.var("SIGHTLINE_API__BIND", format!("127.0.0.1:{port}"));
    env.var("SIGHTLINE_API__JOBS__MAX_UPLOAD_BYTES", "12000000");
    env.var("SIGHTLINE_API__JOBS__UPLOAD_DIR", vol.to_str().unwrap());
    env.cli(&["migrate"]);
    env.config("demo", &harness::demo_toml_lean());
    let _srv = serve(&env, port);

    let clip = std::fs::read(harness::sample_clip()).unwrap();
    assert!(clip.len() > 6_000_000, "the clip is larger than the volume");
    let (status, body) = upload(port, &[("config", "demo")], Some(("vtest.avi", &clip)));
    assert_eq!(status, 507, "{body}\n{}", env.log("srv"));
    assert!(body.contains("insufficient_storage"), "{body}");
    harness::wait_for(Duration::from_secs(10), "no partial upload left", || {
        uploads_left(&vol).is_empty().then_some(())
    });
    let (status, _) = http(port, "GET", "/health", None).unwrap();
    assert_eq!(status, 200, "the server still serves");
    let listed = get_json(port, "/v1/jobs");
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    // Room again (the failed upload freed its space): a small upload is accepted.
    let (status, body) = upload(
        port,
        &[("config", "demo")],
        Some(("cut.avi", &clip[..1_000_000])),
    );
    assert_eq!(status, 201, "{body}\n{}", env.log("srv"));
    eprintln!("FIGURE: upload of 8.1 MB into a 4 MB upload folder: 507, nothing left behind");
}
