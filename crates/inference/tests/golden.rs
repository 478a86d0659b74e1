//! The shipped detectors on frame 100 of `vtest.avi` against the Python reference pipelines
//! (`bench/python_baseline.py golden`, run once; its JSON is committed).

mod common;

use common::{frame100, shipped};
use serde::Deserialize;
use sightline_core::Detection;
use sightline_inference::{DetectOptions, RuntimeOptions, SharedModel};

#[derive(Deserialize)]
struct Golden {
    width: u32,
    height: u32,
    detections: Vec<GoldenDet>,
}

#[derive(Deserialize)]
struct GoldenDet {
    class_id: u32,
    class: String,
    score: f32,
    bbox: [f32; 4],
}

fn golden(name: &str) -> Golden {
    let text = std::fs::read_to_string(common::fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn infer(model: &str) -> (Vec<Detection>, sightline_core::Labels) {
    let (onnx, manifest) = shipped(model);
    let opts = RuntimeOptions {
        intra_threads: Some(2),
        ..RuntimeOptions::default()
    };
    let m = SharedModel::load(&onnx, manifest, &opts).unwrap();
    let dets = m
        .client(1)
        .infer(&frame100(), &DetectOptions::default())
        .unwrap();
    (dets, m.labels().clone())
}

fn max_coord_diff(a: &Detection, b: &GoldenDet) -> f32 {
    let ours = [a.bbox.x1, a.bbox.y1, a.bbox.x2, a.bbox.y2];
    ours.iter()
        .zip(b.bbox)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every confident detection on either side has a counterpart of the same class on the
/// other, within `px` pixels per coordinate and `0.03` in score. Detections within 0.03 of
/// the threshold may legitimately appear on one side only (resizers differ by a grey level).
fn assert_matches(ours: &[Detection], gold: &Golden, threshold: f32, px: f32) {
    let margin = 0.03;
    for g in gold
        .detections
        .iter()
        .filter(|g| g.score >= threshold + margin)
    {
        let best = ours
            .iter()
            .filter(|d| d.class_id.0 == g.class_id)
            .min_by(|a, b| max_coord_diff(a, g).total_cmp(&max_coord_diff(b, g)))
            .unwrap_or_else(|| panic!("no {} found; ours: {ours:?}", g.class));
        let diff = max_coord_diff(best, g);
        assert!(
            diff <= px,
            "{} {:?}: ours {:?} is {diff:.1}px off",
            g.class,
            g.bbox,
            best.bbox
        );
        assert!(
            (best.score - g.score).abs() <= margin,
            "{} score {} vs {}",
            g.class,
            best.score,
            g.score
        );
    }
    for d in ours.iter().filter(|d| d.score >= threshold + margin) {
        assert!(
            gold.detections
                .iter()
                .any(|g| g.class_id == d.class_id.0 && max_coord_diff(d, g) <= px),
            "{d:?} has no counterpart in the Python reference"
        );
    }
}

fn count(dets: &[Detection], labels: &sightline_core::Labels, class: &str) -> usize {
    dets.iter()
        .filter(|d| labels.name(d.class_id) == class)
        .count()
}

#[test]
fn nanodet_matches_the_python_reference() {
    let gold = golden("golden_nanodet_frame100.json");
    assert_eq!((gold.width, gold.height), (768, 576));
    let (dets, labels) = infer("nanodet-m-416");
    assert!(count(&dets, &labels, "person") >= 6, "{dets:?}");
    assert!(count(&dets, &labels, "car") + count(&dets, &labels, "truck") >= 1);
    assert_matches(&dets, &gold, 0.35, 3.0);
}

/// The INT8 copy (`scripts/quantize`, gated at F1 0.95 against fp32 on 60 held-back frames)
/// loads through the same manifest path and, on frame 100, finds the fp32 model's confident
/// detections: every fp32 detection scoring >= 0.45 has an int8 one of its class with IoU
/// >= 0.5, and the people count stays within one.
#[test]
fn nanodet_int8_agrees_with_fp32() {
    let (fp32, labels) = infer("nanodet-m-416");
    let (int8, labels8) = infer("nanodet-m-416-int8");
    assert!(labels.iter().eq(labels8.iter()), "same classes");
    let people = |d: &[Detection]| count(d, &labels, "person") as i64;
    assert!(people(&int8) >= 5, "{int8:?}");
    assert!(
        (people(&int8) - people(&fp32)).abs() <= 1,
        "{fp32:?}\n{int8:?}"
    );
    for f in fp32.iter().filter(|d| d.score >= 0.45) {
        let found = int8
            .iter()
            .any(|q| q.class_id == f.class_id && q.bbox.iou(&f.bbox) >= 0.5);
        assert!(found, "fp32 {f:?} has no int8 counterpart in {int8:?}");
    }
}

#[test]
fn centernet_matches_the_python_reference() {
    let gold = golden("golden_centernet_frame100.json");
    let (dets, labels) = infer("centernet-mbv3-512");
    assert!(count(&dets, &labels, "person") >= 7, "{dets:?}");
    assert_eq!(count(&dets, &labels, "truck"), 1);
    assert_eq!(count(&dets, &labels, "car"), 1);
    assert_matches(&dets, &gold, 0.3, 3.0);
}

#[test]
fn options_override_the_manifest() {
    let (onnx, manifest) = shipped("nanodet-m-416");
    let m = SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap();
    let c = m.client(1);
    let frame = frame100();
    let all = c.infer(&frame, &DetectOptions::default()).unwrap();
    let person = m.labels().id_of("person").unwrap();
    let people = c
        .infer(
            &frame,
            &DetectOptions {
                classes: Some(vec![person]),
                ..DetectOptions::default()
            },
        )
        .unwrap();
    assert!(!people.is_empty() && people.iter().all(|d| d.class_id == person));
    assert_eq!(people.len(), count(&all, m.labels(), "person"));
    let strict = c
        .infer(
            &frame,
            &DetectOptions {
                score_threshold: Some(0.7),
                ..DetectOptions::default()
            },
        )
        .unwrap();
    assert!(strict.len() < all.len() && strict.iter().all(|d| d.score >= 0.7));
    assert!(
        c.infer(
            &frame,
            &DetectOptions {
                iou_threshold: Some(1.5),
                ..DetectOptions::default()
            }
        )
        .is_err()
    );
}
