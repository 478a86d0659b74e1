//! Golden images: a full scene and the signal-lost slate drawn on a deterministic 768×576
//! gradient, compared with the PNGs in `tests/golden/` within a small per-pixel tolerance
//! (so harmless rounding differences between platforms do not fail the test, but any
//! visible change does). Regenerate with `SIGHTLINE_BLESS=1 cargo test -p sightline-overlay`
//! and look at the images before committing them.

use sightline_core::{BBox, ClassId, Frame, Point, Pts, TrackId};
use sightline_overlay::{DrawStyle, Painter, Scene, SceneLine, SceneObject, SceneZone};
use std::path::PathBuf;

/// Largest accepted difference of one channel of one pixel.
const TOLERANCE: u8 = 3;

/// A smooth, deterministic stand-in for a camera picture: a dim diagonal gradient with a
/// lighter "floor" band, so overlays are judged on both dark and bright backgrounds.
fn gradient(w: u32, h: u32) -> Frame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let floor = if fy > 0.55 {
                60.0 * (fy - 0.55) / 0.45
            } else {
                0.0
            };
            data.push((40.0 + 120.0 * fx + floor) as u8);
            data.push((50.0 + 90.0 * fy + floor) as u8);
            data.push((90.0 + 80.0 * (1.0 - fx) * (1.0 - fy) + floor) as u8);
        }
    }
    Frame::from_rgb(w, h, Pts::ZERO, data).unwrap()
}

fn object(
    b: [f32; 4],
    class: u32,
    name: &'static str,
    score: f32,
    id: Option<u64>,
) -> SceneObject<'static> {
    SceneObject {
        bbox: BBox::new(b[0], b[1], b[2], b[3]),
        class_id: ClassId(class),
        class_name: name,
        score,
        track_id: id.map(TrackId),
    }
}

fn scene_frame() -> Frame {
    let mut style = DrawStyle::default();
    style.class_colors.insert("truck".into(), "#ffffff".into());
    let mut painter = Painter::new(style).unwrap();
    let mut frame = gradient(768, 576);
    let objects = [
        object([96.0, 210.0, 168.0, 420.0], 0, "person", 0.91, Some(12)),
        object([182.0, 236.0, 236.0, 398.0], 0, "person", 0.64, Some(15)),
        // Touches the top edge: the label goes inside the box.
        object([300.0, -20.0, 372.0, 150.0], 0, "person", 0.78, Some(7)),
        object([420.0, 330.0, 640.0, 470.0], 2, "car", 0.88, Some(3)),
        object([590.0, 110.0, 730.0, 215.0], 7, "truck", 0.57, None),
        object([250.0, 420.0, 330.0, 520.0], 1, "bicycle", 0.43, Some(21)),
        // Runs off the right edge.
        object([700.0, 300.0, 820.0, 450.0], 0, "person", 0.70, Some(9)),
    ];
    let dock = [
        Point::new(380.0, 300.0),
        Point::new(700.0, 290.0),
        Point::new(740.0, 520.0),
        Point::new(360.0, 540.0),
    ];
    let entrance = [
        Point::new(40.0, 180.0),
        Point::new(260.0, 160.0),
        Point::new(290.0, 440.0),
        Point::new(20.0, 470.0),
    ];
    let zones = [
        SceneZone {
            name: "dock",
            polygon: &dock,
            color: None,
            count: Some(2),
        },
        SceneZone {
            name: "entrance",
            polygon: &entrance,
            color: None,
            count: Some(2),
        },
    ];
    let lines = [
        SceneLine {
            name: "gate",
            a: Point::new(420.0, 60.0),
            b: Point::new(520.0, 270.0),
            in_count: 14,
            out_count: 9,
            in_label: Some("entering"),
            out_label: Some("leaving"),
            color: None,
        },
        SceneLine {
            name: "corridor",
            a: Point::new(20.0, 500.0),
            b: Point::new(330.0, 500.0),
            in_count: 3,
            out_count: 0,
            in_label: None,
            out_label: None,
            color: None,
        },
    ];
    let scene = Scene {
        objects: &objects,
        zones: &zones,
        lines: &lines,
        status: &["25.0 fps", "running", "run demo-01"],
        timestamp: Some("2024-05-01 12:00:03.250"),
    };
    painter.draw_scene(&mut frame, &scene);
    frame
}

fn slate_frame() -> Frame {
    let mut painter = Painter::new(DrawStyle::default()).unwrap();
    let mut frame = gradient(768, 576);
    painter.draw_slate(&mut frame, "SIGNAL LOST", "reconnecting… attempt 3");
    frame
}

fn check(name: &str, frame: &Frame) {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual = image::RgbImage::from_raw(frame.width, frame.height, frame.data.clone()).unwrap();
    if std::env::var_os("SIGHTLINE_BLESS").is_some_and(|v| v == "1") {
        actual.save(&golden).unwrap();
        return;
    }
    let expected = image::open(&golden)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with SIGHTLINE_BLESS=1 to create it)",
                golden.display()
            )
        })
        .into_rgb8();
    assert_eq!(expected.dimensions(), actual.dimensions(), "{name}: size");
    let mut bad = 0usize;
    let mut worst = 0u8;
    for (e, a) in expected.pixels().zip(actual.pixels()) {
        let d =
            e.0.iter()
                .zip(a.0)
                .map(|(&e, a)| e.abs_diff(a))
                .max()
                .unwrap_or(0);
        worst = worst.max(d);
        if d > TOLERANCE {
            bad += 1;
        }
    }
    if bad > 0 {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        actual.save(&out).unwrap();
        panic!(
            "{name}: {bad} pixels differ by more than {TOLERANCE} (worst {worst}); actual image written to {}",
            out.display()
        );
    }
}

#[test]
fn scene_matches_golden() {
    check("scene.png", &scene_frame());
}

#[test]
fn slate_matches_golden() {
    check("slate.png", &slate_frame());
}

#[test]
fn drawing_is_deterministic() {
    assert_eq!(scene_frame().data, scene_frame().data);
}
