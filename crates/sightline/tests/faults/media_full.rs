//! The media volume full: a `sightline worker` whose media store is a 4 MB tmpfs (mounted by
//! the test, as root) that a filler file has already taken to ~91 % (above the 90 %
//! high-water mark), replaying `samples/vtest.avi` through the demo config with crops,
//! snapshots and 5 s recording segments on.
//!
//! The pictures and segments cannot all fit; the worker must not crash, the run must complete
//! with every one of the golden events stored in the database (a full disk drops pictures,
//! never events), and survival mode must be reported (`sightline_media_survival_mode` on the
//! worker's `/metrics`, and the log). What was stored, dropped and deleted is the figure;
//! the pictures on the volume are exactly those written minus those the janitor deleted.

use crate::common::{free_port, get, repo, sigterm};
use crate::harness::{self, Env, GOLDEN_EVENTS, Guard, event_key, wait_exit};
use std::path::Path;
use std::time::{Duration, Instant};

const VOLUME: u64 = 4 * 1024 * 1024;
/// Leaves ~360 KB: room for a few snapshots (~100 KB each), not for the ~110 of the clip.
const FILLER: u64 = 3_830_000;

/// Sum of a metric's samples whose labels contain `label` (`""`: all).
fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The files under `dir` ending in `.ext`, as keys relative to `root`.
fn files(root: &Path, dir: &Path, ext: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.map_while(Result::ok)
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                files(root, &p, ext)
            } else if p.extension().is_some_and(|x| x == ext) {
                vec![p.strip_prefix(root).unwrap().to_string_lossy().into_owned()]
            } else {
                Vec::new()
            }
        })
        .collect()
}

#[test]
fn media_volume_full_survival_mode_keeps_every_event() {
    let t_test = Instant::now();
    let mut env = Env::sqlite();
    let vol = env.path("vol");
    let Some(_unmount) = harness::mount_tmpfs(&vol, VOLUME) else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    std::fs::write(vol.join("filler.bin"), vec![0x5au8; FILLER as usize]).unwrap();

    let metrics_port = free_port();
    env.var("SIGHTLINE_MEDIA__URL", vol.to_str().unwrap())
        .var("SIGHTLINE_MEDIA__USAGE_CHECK_S", "0.5")
        .var("SIGHTLINE_MEDIA__WRITE_TIMEOUT_S", "2");
    let demo = std::fs::read_to_string(repo().join("configs/demo.toml")).unwrap();
    let cfg = demo
        .replace("record = false", "record = true")
        .replace("segment_s = 60", "segment_s = 5");
    assert_ne!(cfg, demo, "the demo config names record/segment_s");
    env.config("demo", &cfg);
    let mut worker = Guard(Some(env.worker(
        "w1",
        &["--metrics-addr", &format!("127.0.0.1:{metrics_port}")],
    )));
    env.add_run(
        "full",
        repo().join("samples/vtest.avi").to_str().unwrap(),
        "demo",
        &["--pacing", "fast"],
    );

    // Watch the worker while the run goes: alive, survival mode on /metrics.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut survival_seen = false;
    let mut last_metrics = String::new();
    loop {
        if let Some(st) = worker.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "worker exited ({st}) with the media volume full: {}",
                env.log("w1")
            );
        }
        if let Some((200, m)) = get(metrics_port, "/metrics") {
            survival_seen |= metric(&m, "sightline_media_survival_mode", "") >= 1.0;
            last_metrics = m;
        }
        let state = env.state("full");
        if matches!(state.as_str(), "completed" | "failed" | "stopped") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run is {state} after 240 s: {}\n{}",
            env.run("full"),
            env.log("w1")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let run = env.run("full");
    assert_eq!(run["state"], "completed", "{run}\n{}", env.log("w1"));
    // Let the picture writer and the janitor finish what is queued.
    std::thread::sleep(Duration::from_secs(3));
    let m = get(metrics_port, "/metrics").map_or(last_metrics, |(_, m)| m);
    survival_seen |= metric(&m, "sightline_media_survival_mode", "") >= 1.0;

    let events = env.events("full");
    let mut keys: Vec<String> = events.iter().map(event_key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        (events.len(), keys.len()),
        (GOLDEN_EVENTS, GOLDEN_EVENTS),
        "every golden event stored once, pictures or not"
    );
    let with_pictures = events
        .iter()
        .filter(|e| !e["media"].is_null() && e["media"] != serde_json::json!({}))
        .count();
    // The pictures the events name (a snapshot shared by the events of one frame once).
    let mut named: Vec<&str> = events
        .iter()
        .flat_map(|e| ["crop", "snapshot"].map(|k| e["media"][k]["key"].as_str()))
        .flatten()
        .collect();
    named.sort_unstable();
    named.dedup();

    let log = env.log("w1");
    let survival_logged = log.contains("disk survival mode");
    let written = metric(&m, "sightline_media_pictures_total", "") as u64;
    let dropped = metric(&m, "sightline_media_dropped_total", "") as u64;
    let deleted = metric(&m, "sightline_janitor_deleted_total", "kind=\"pictures\"") as u64;
    let on_volume = files(&vol, &vol, "jpg").len() as u64;
    let segments = files(&vol, &vol, "mp4");
    let indexed: Vec<String> = env
        .cli(&["recordings", "list", "--run", "full"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    assert!(
        worker.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "{log}"
    );
    assert!(
        survival_seen && survival_logged,
        "survival mode: metric {survival_seen}, log {survival_logged}\n{log}"
    );
    assert!(written > 0, "some pictures fit: {m}");
    assert!(
        dropped + deleted > 0,
        "a 360 KB volume cannot keep every picture: written {written}, none dropped or deleted"
    );
    assert_eq!(
        on_volume,
        written - deleted,
        "pictures on the volume = written − deleted by the janitor"
    );
    // An event names only pictures that were written (a failed write is removed from it).
    assert_eq!(
        named.len() as u64,
        written,
        "pictures named by the events vs written"
    );
    // The janitor works from the index: a segment file nobody indexed is never deleted.
    let unindexed: Vec<&String> = segments.iter().filter(|k| !indexed.contains(k)).collect();
    let about: Vec<&str> = log
        .lines()
        .filter(|l| {
            unindexed.iter().any(|k| {
                let name = k.rsplit('/').next().unwrap_or(k);
                l.contains(name.trim_end_matches(".mp4")) || l.contains("recording")
            })
        })
        .collect();
    assert!(
        unindexed.is_empty(),
        "recording files on the volume that no recordings row names: {unindexed:?} \
         (indexed: {indexed:?}); the log about recordings:\n{}",
        about.join("\n")
    );
    let seg_closed = metric(&m, "sightline_recording_segments_total", "closed") as u64;
    let seg_failed = metric(&m, "sightline_recording_segments_total", "abandoned") as u64;
    let seg_deleted = metric(&m, "sightline_janitor_deleted_total", "kind=\"recordings\"") as u64;
    eprintln!(
        "FIGURE: media volume full (4 MB tmpfs, 91 % filled): worker alive, run completed, \
         {} / {GOLDEN_EVENTS} events stored ({with_pictures} with pictures); pictures written \
         {written}, dropped {dropped}, deleted by survival mode {deleted}, on the volume \
         {on_volume}; recording segments closed {seg_closed}, abandoned {seg_failed}, deleted \
         {seg_deleted}, on the volume {}; survival mode seen (metric and log)",
        events.len(),
        segments.len()
    );

    let mut w = worker.0.take().unwrap();
    sigterm(&w);
    let st = wait_exit(&mut w, Duration::from_secs(20), "worker");
    assert!(st.success(), "worker exit {st:?}: {}", env.log("w1"));
    eprintln!("media full test: {:.1} s", t_test.elapsed().as_secs_f64());
}
