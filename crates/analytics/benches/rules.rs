//! Cost of one `RuleEngine::process` call with 10 and 100 moving tracks, 2 zones, 2 lines and
//! 5 rules (zone, count, dwell, line, detected), on a 1280×720 frame. Tracks walk
//! back and forth across the zones and lines, so the rules do real work (enters, exits,
//! crossings) on a share of the frames.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use sightline_analytics::{LineDef, RuleDef, RuleEngine, ZoneDef};
use sightline_core::{BBox, ClassId, Labels, Pts, Track, TrackId};
use std::collections::BTreeMap;

const W: f32 = 1280.0;
const H: f32 = 720.0;
const FRAMES: usize = 500;

fn config() -> (
    BTreeMap<String, ZoneDef>,
    BTreeMap<String, LineDef>,
    Vec<RuleDef>,
) {
    let zones: BTreeMap<String, ZoneDef> = serde_json::from_str(
        r##"{
            "dock": {"points": [[0.05, 0.3], [0.45, 0.25], [0.5, 0.9], [0.1, 0.95], [0.02, 0.6]]},
            "lawn": {"points": [[0.55, 0.2], [0.95, 0.2], [0.95, 0.8], [0.55, 0.8]], "color": "#20c040"}
        }"##,
    )
    .unwrap();
    let lines: BTreeMap<String, LineDef> = serde_json::from_str(
        r#"{
            "door": {"a": [0.5, 0.05], "b": [0.5, 0.95]},
            "road": {"a": [0.0, 0.5], "b": [1.0, 0.55], "in_label": "south"}
        }"#,
    )
    .unwrap();
    let rules: Vec<RuleDef> = serde_json::from_str(
        r#"[
            {"type": "zone", "name": "dock-people", "zone": "dock", "classes": ["person"]},
            {"type": "count", "name": "lawn-crowd", "zone": "lawn", "threshold": 5, "seconds": 0.5},
            {"type": "dwell", "name": "dock-loiter", "zone": "dock", "seconds": 2.0},
            {"type": "line", "name": "door-count", "line": "door", "min_confidence": 0.3},
            {"type": "detected", "name": "cars", "classes": ["car"], "min_frames": 3}
        ]"#,
    )
    .unwrap();
    (zones, lines, rules)
}

/// `n` tracks on Lissajous-like paths over the frame, one list per frame.
fn frames(n: usize) -> Vec<Vec<Track>> {
    (0..FRAMES)
        .map(|f| {
            (0..n)
                .map(|i| {
                    let t = f as f32 * 0.02 + i as f32 * 0.7;
                    let cx = W * (0.5 + 0.45 * (t * (1.0 + i as f32 * 0.01)).sin());
                    let cy = H * (0.5 + 0.4 * (t * 0.7 + i as f32).cos());
                    Track {
                        id: TrackId(i as u64 + 1),
                        class_id: ClassId((i % 3) as u32),
                        bbox: BBox::from_cxcywh(cx, cy, 40.0, 90.0),
                        score: 0.2 + (i % 8) as f32 * 0.1,
                        hits: 10,
                        misses: 0,
                        matched: true,
                    }
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (zones, lines, rules) = config();
    let labels = Labels::new(["person", "car", "bicycle"]);
    let mut g = c.benchmark_group("process");
    for n in [10usize, 100] {
        let frames = frames(n);
        let mut engine =
            RuleEngine::new(&zones, &lines, &rules, W as u32, H as u32, &labels).unwrap();
        let mut k = 0usize;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tracks", n), &frames, |b, frames| {
            b.iter(|| {
                let events = engine.process(
                    Pts::from_millis(k as i64 * 40),
                    black_box(&frames[k % FRAMES]),
                );
                k += 1;
                black_box(events)
            })
        });
        let mut engine =
            RuleEngine::new(&zones, &lines, &rules, W as u32, H as u32, &labels).unwrap();
        g.bench_with_input(
            BenchmarkId::new("tracks+snapshot", n),
            &frames,
            |b, frames| {
                b.iter(|| {
                    let events = engine.process(
                        Pts::from_millis(k as i64 * 40),
                        black_box(&frames[k % FRAMES]),
                    );
                    k += 1;
                    black_box((events, engine.snapshot()))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
