//! Criterion benches for the per-frame CPU work around the session call: pre-processing
//! (resize + normalise + layout) and class-aware NMS.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use sightline_core::{BBox, ClassId, Detection, Frame, Pts};
use sightline_inference::nms::{PostParams, finish, nms};
use sightline_inference::preprocess::{Geometry, Preprocessor};
use sightline_inference::{ColorOrder, InputSpec, Layout, ResizeMode};

fn frame(w: u32, h: u32) -> Frame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x ^ y) as u8, (x + y) as u8, (x * 3) as u8]);
        }
    }
    Frame::from_rgb(w, h, Pts::ZERO, data).expect("sized")
}

fn spec(size: u32, layout: Layout, color: ColorOrder, resize: ResizeMode) -> InputSpec {
    InputSpec {
        width: size,
        height: size,
        layout,
        color,
        resize,
        scale: 1.0,
        mean: [103.53, 116.28, 123.675],
        std: [57.375, 57.12, 58.395],
        pad_value: 114,
        name: None,
    }
}

fn preprocess(c: &mut Criterion) {
    let mut g = c.benchmark_group("preprocess");
    let cases = [
        (
            "768x576_to_416_nchw_bgr_stretch",
            frame(768, 576),
            spec(416, Layout::Nchw, ColorOrder::Bgr, ResizeMode::Stretch),
        ),
        (
            "768x576_to_512_nhwc_rgb_stretch",
            frame(768, 576),
            spec(512, Layout::Nhwc, ColorOrder::Rgb, ResizeMode::Stretch),
        ),
        (
            "1920x1080_to_640_nchw_rgb_letterbox",
            frame(1920, 1080),
            spec(640, Layout::Nchw, ColorOrder::Rgb, ResizeMode::Letterbox),
        ),
    ];
    for (name, f, s) in cases {
        let mut p = Preprocessor::new(&s);
        let mut out = Vec::new();
        g.bench_function(name, |b| {
            b.iter(|| p.run(black_box(&f), &mut out).expect("runs"))
        });
    }
    g.finish();
}

/// `n` boxes in clusters of ~8 overlapping boxes, 4 classes.
fn candidates(n: usize) -> Vec<Detection> {
    let mut seed = 0x2545_f491_u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 10_000) as f32 / 10_000.0
    };
    (0..n)
        .map(|i| {
            let cluster = (i / 8) as f32;
            let (cx, cy) = (
                (cluster * 37.0) % 600.0 + 20.0,
                (cluster * 53.0) % 400.0 + 20.0,
            );
            let (dx, dy) = (rnd() * 6.0, rnd() * 6.0);
            Detection {
                bbox: BBox::new(
                    cx + dx,
                    cy + dy,
                    cx + dx + 30.0 + rnd() * 4.0,
                    cy + dy + 60.0,
                ),
                score: rnd(),
                class_id: ClassId((i % 4) as u32),
            }
        })
        .collect()
}

fn suppression(c: &mut Criterion) {
    let mut g = c.benchmark_group("nms");
    for n in [100, 1000, 5000] {
        let dets = candidates(n);
        g.bench_function(format!("nms_{n}"), |b| {
            b.iter(|| {
                let mut d = dets.clone();
                nms(&mut d, 0.5);
                d
            })
        });
    }
    let geo = Geometry::fit(768, 576, 416, 416, ResizeMode::Stretch);
    let params = PostParams {
        score_threshold: 0.35,
        iou_threshold: 0.5,
        classes: None,
        max_detections: 100,
        nms: true,
    };
    let dets = candidates(1000);
    g.bench_function("finish_1000", |b| {
        b.iter(|| finish(dets.clone(), &geo, &params))
    });
    g.finish();
}

criterion_group!(benches, preprocess, suppression);
criterion_main!(benches);
