//! The YOLO decoders end to end on tiny hand-made graphs with the real output layouts
//! (`tests/fixtures/make_tiny_yolo.py`): a red cell is a "red" detection on that cell.

mod common;

use common::{cell_frame, tiny};
use sightline_core::{BBox, ClassId};
use sightline_inference::{DetectOptions, Family, RuntimeOptions, SharedModel};

fn load(family: Family) -> std::sync::Arc<SharedModel> {
    let (onnx, manifest) = tiny(family);
    SharedModel::load(&onnx, manifest, &RuntimeOptions::default()).unwrap()
}

#[test]
fn every_family_finds_the_painted_cell() {
    for family in [Family::Yolov5, Family::Yolov8, Family::Yolov10] {
        let m = load(family);
        assert!(m.info().dynamic_batch, "{family:?}");
        let c = m.client(2);
        // 64x64 frame, stretched to the 32x32 input: cell (2,1) is x 32..48, y 16..32.
        let dets = c
            .infer(
                &cell_frame(64, 2, 1, [255, 0, 0]),
                &DetectOptions::default(),
            )
            .unwrap();
        assert_eq!(dets.len(), 1, "{family:?}: {dets:?}");
        assert_eq!(dets[0].class_id, ClassId(0));
        assert!((dets[0].score - 1.0).abs() < 1e-4);
        assert_eq!(
            dets[0].bbox,
            BBox::new(32.0, 16.0, 48.0, 32.0),
            "{family:?}"
        );
        // Nothing on a black frame.
        let none = c
            .infer(&cell_frame(64, 0, 0, [0, 0, 0]), &DetectOptions::default())
            .unwrap();
        assert!(none.is_empty(), "{family:?}: {none:?}");
    }
}

#[test]
fn green_cells_are_class_one_and_dim_cells_fall_under_the_threshold() {
    for family in [Family::Yolov5, Family::Yolov8] {
        let m = load(family);
        let c = m.client(1);
        let dets = c
            .infer(
                &cell_frame(32, 3, 3, [0, 255, 0]),
                &DetectOptions::default(),
            )
            .unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(m.labels().name(dets[0].class_id), "green");
        assert_eq!(dets[0].bbox, BBox::new(24.0, 24.0, 32.0, 32.0));
        let dim = c
            .infer(
                &cell_frame(32, 3, 3, [0, 100, 0]),
                &DetectOptions::default(),
            )
            .unwrap();
        assert!(dim.is_empty());
        let low = DetectOptions {
            score_threshold: Some(0.3),
            ..DetectOptions::default()
        };
        let dim = c.infer(&cell_frame(32, 3, 3, [0, 100, 0]), &low).unwrap();
        assert_eq!(dim.len(), 1);
        assert!((dim[0].score - 100.0 / 255.0).abs() < 1e-4);
    }
}
