//! Cost of one `Tracker::update` (and one `predict`) with 10 and 100 objects per frame.
//!
//! Objects sit on a grid over a 1920×1080 frame and move smoothly on small circles with a
//! period of `PERIOD` frames, so the detection sequence can be replayed in a loop without any
//! jump: after warming up, every measured call is a steady-state frame (all tracks matched in
//! stage 1, no births, no deaths).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sightline_core::{BBox, ClassId, Detection, Pts};
use sightline_tracking::{Tracker, TrackerSettings};
use std::hint::black_box;

const PERIOD: usize = 240;

fn frames(objects: usize) -> Vec<Vec<Detection>> {
    let cols = (objects as f32).sqrt().ceil() as usize;
    let rows = objects.div_ceil(cols);
    let (cell_w, cell_h) = (1920.0 / cols as f32, 1080.0 / rows as f32);
    (0..PERIOD)
        .map(|f| {
            (0..objects)
                .map(|i| {
                    let phase = i as f32 * 0.7;
                    let angle = std::f32::consts::TAU * f as f32 / PERIOD as f32 + phase;
                    let cx = (i % cols) as f32 * cell_w + cell_w / 2.0 + 20.0 * angle.cos();
                    let cy = (i / cols) as f32 * cell_h + cell_h / 2.0 + 10.0 * angle.sin();
                    Detection {
                        bbox: BBox::from_cxcywh(cx, cy, 0.3 * cell_w, 0.6 * cell_h),
                        score: 0.6 + 0.3 * ((i * 7 + f) % 10) as f32 / 10.0,
                        class_id: ClassId((i % 3) as u32),
                    }
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    for objects in [10, 100] {
        let frames = frames(objects);
        let mut tracker = Tracker::new(TrackerSettings::default());
        let mut n = 0_usize;
        for f in &frames {
            tracker.update(Pts::from_nanos(n as i64), f);
            n += 1;
        }
        assert_eq!(tracker.predict(Pts::from_nanos(n as i64)).len(), objects);
        n += 1;
        group.bench_function(BenchmarkId::new("update", objects), |b| {
            b.iter(|| {
                let out = tracker.update(Pts::from_nanos(n as i64), &frames[n % PERIOD]);
                n += 1;
                black_box(out.len())
            })
        });
        // Every track must still be matched: a steady state, not a storm of births.
        let out = tracker.update(Pts::from_nanos(n as i64), &frames[n % PERIOD]);
        assert_eq!(out.len(), objects);
        assert!(out.iter().all(|t| t.matched));
        n += 1;
        group.bench_function(BenchmarkId::new("predict", objects), |b| {
            b.iter(|| {
                let out = tracker.predict(Pts::from_nanos(n as i64));
                n += 1;
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
