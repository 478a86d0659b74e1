//! The slow-consumer test lives alone in this binary: it measures the process's RSS, which
//! other tests running in parallel threads would disturb.

mod common;

use common::*;
use sightline_media::{Source, SourceEvent, SourceOptions};
use std::time::{Duration, Instant};

#[test]
fn slow_consumer_drops_frames_and_memory_stays_flat() {
    init_tracing();
    let mut opts = SourceOptions::new("test://snow?width=1280&height=720&fps=120");
    opts.queue_capacity = 4;
    let source = Source::open(opts).expect("open");
    // Warm up so allocator pools settle, then measure.
    let warm_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < warm_until {
        let _ = source.next(Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = rss_kib();
    let dropped_before = source.stats().frames_dropped;
    let mut seqs = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let SourceEvent::Frame(f) = source.next(Duration::from_millis(200)) {
            seqs.push(f.seq);
        }
        std::thread::sleep(Duration::from_millis(100)); // ~10 fps consumer vs a 120 fps source
    }
    let after = rss_kib();
    let stats = source.stats();
    let dropped = stats.frames_dropped - dropped_before;
    assert!(dropped > 50, "expected drops, got {stats:?}");
    assert_eq!(
        stats.frames_received,
        stats.frames_delivered + stats.frames_dropped + stats_in_queue(&stats),
        "{stats:?}"
    );
    // Newest wins: consecutive deliveries skip the dropped frames.
    assert!(seqs.windows(2).any(|w| w[1] > w[0] + 1), "{seqs:?}");
    // A 720p RGB frame is 2.6 MiB; a growing backlog would add hundreds of MiB.
    let growth = after.saturating_sub(before);
    assert!(
        growth < 40 * 1024,
        "RSS grew by {growth} KiB ({before} -> {after})"
    );
}

/// Frames still queued (at most the capacity) — received = delivered + dropped + queued.
fn stats_in_queue(s: &sightline_media::SourceStats) -> u64 {
    let q = s.frames_received - s.frames_delivered - s.frames_dropped;
    assert!(q <= 4, "more frames queued than the capacity: {s:?}");
    q
}
