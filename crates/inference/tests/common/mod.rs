//! Shared helpers for the integration tests: repository paths, fixtures, tiny-model manifests.
#![allow(dead_code)]

use sightline_core::{Frame, Pts};
use sightline_inference::{
    ClassNames, ColorOrder, Family, InputSpec, Layout, ModelManifest, ResizeMode, Task,
};
use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn model_dir(name: &str) -> PathBuf {
    repo().join("models").join(name)
}

pub fn shipped(name: &str) -> (PathBuf, ModelManifest) {
    let dir = model_dir(name);
    let manifest = ModelManifest::from_path(&dir.join("manifest.toml")).unwrap();
    (dir.join("model.onnx"), manifest)
}

pub fn frame100() -> Frame {
    let bytes = std::fs::read(fixture("vtest_frame100.png")).unwrap();
    sightline_inference::decode_image(&bytes, 10_000_000).unwrap()
}

/// Manifest of the tiny hand-made YOLO graphs (`tests/fixtures/make_tiny_yolo.py`).
pub fn tiny_manifest(family: Family) -> ModelManifest {
    ModelManifest {
        name: format!("tiny-{}", family.as_str()),
        task: Task::Detect,
        family,
        description: None,
        input: InputSpec {
            width: 32,
            height: 32,
            layout: Layout::Nchw,
            color: ColorOrder::Rgb,
            resize: ResizeMode::Stretch,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad_value: 114,
            name: None,
        },
        outputs: None,
        classes: ClassNames::List(vec!["red".into(), "green".into()]),
        score_threshold: 0.5,
        iou_threshold: 0.5,
        max_detections: 100,
    }
}

pub fn tiny(family: Family) -> (PathBuf, ModelManifest) {
    (
        fixture(&format!("tiny_{}.onnx", family.as_str())),
        tiny_manifest(family),
    )
}

/// A black `size`×`size` frame with cell (`gx`, `gy`) of the 4×4 grid painted `rgb`.
pub fn cell_frame(size: u32, gx: u32, gy: u32, rgb: [u8; 3]) -> Frame {
    let mut f = Frame::filled(size, size, [0, 0, 0], Pts::ZERO);
    let c = size / 4;
    for y in gy * c..(gy + 1) * c {
        for x in gx * c..(gx + 1) * c {
            let i = (y * size + x) as usize * 3;
            f.data[i..i + 3].copy_from_slice(&rgb);
        }
    }
    f
}
