//! Post-processing shared by every detector family: score threshold, class filter,
//! class-aware non-maximum suppression, the per-frame cap, and the mapping back to source
//! pixels.
//!
//! These are pure functions over `Vec<Detection>` so they are tested (including a property
//! test) and benchmarked without a model. They run on the caller's thread, after the batcher
//! has handed the raw tensors back.

use crate::preprocess::Geometry;
use sightline_core::{BBox, ClassId, Detection};
use std::collections::HashMap;

/// Sorts by score (best first) and keeps, per class, only boxes that overlap no better box
/// of the same class by more than `iou_threshold`. Stable: equal scores keep their order,
/// so running it twice changes nothing.
pub fn nms(dets: &mut Vec<Detection>, iou_threshold: f32) {
    nms_top(dets, iou_threshold, usize::MAX);
}

/// [`nms`] that stops once `limit` boxes are kept (the rest could only rank lower).
pub fn nms_top(dets: &mut Vec<Detection>, iou_threshold: f32, limit: usize) {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(dets.len().min(limit).min(1024));
    // Kept boxes per class, so each candidate is compared with its own class only.
    let mut by_class: HashMap<ClassId, Vec<BBox>> = HashMap::new();
    for d in dets.iter() {
        if kept.len() >= limit {
            break;
        }
        let same = by_class.entry(d.class_id).or_default();
        if same.iter().all(|k| k.iou(&d.bbox) <= iou_threshold) {
            same.push(d.bbox);
            kept.push(*d);
        }
    }
    *dets = kept;
}

/// What to keep after decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct PostParams {
    pub score_threshold: f32,
    pub iou_threshold: f32,
    /// Only these classes (None = all).
    pub classes: Option<Vec<ClassId>>,
    pub max_detections: usize,
    /// False for end-to-end models whose output is already suppressed.
    pub nms: bool,
}

/// Threshold, class filter, NMS, cap, then boxes to source pixels (clamped; boxes left with
/// no area, e.g. entirely in letterbox padding, are dropped). Input boxes are in model-input
/// pixels; IoU is invariant under the axis-aligned scaling, so NMS there equals NMS on the
/// source frame.
pub fn finish(mut dets: Vec<Detection>, geo: &Geometry, p: &PostParams) -> Vec<Detection> {
    dets.retain(|d| {
        d.score.is_finite()
            && d.score >= p.score_threshold
            && d.bbox.is_finite()
            && p.classes.as_ref().is_none_or(|c| c.contains(&d.class_id))
    });
    if p.nms {
        nms_top(&mut dets, p.iou_threshold, p.max_detections);
    } else {
        dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        dets.truncate(p.max_detections);
    }
    dets.into_iter()
        .map(|d| Detection {
            bbox: geo.to_source(&d.bbox),
            ..d
        })
        .filter(|d| d.bbox.area() > 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ResizeMode;
    use proptest::prelude::*;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class: u32) -> Detection {
        Detection {
            bbox: BBox::new(x1, y1, x2, y2),
            score,
            class_id: ClassId(class),
        }
    }

    #[test]
    fn suppresses_within_a_class_only() {
        let mut d = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.8, 0),
            det(1.0, 1.0, 11.0, 11.0, 0.9, 0),
            det(1.0, 1.0, 11.0, 11.0, 0.7, 1),
            det(50.0, 50.0, 60.0, 60.0, 0.6, 0),
        ];
        nms(&mut d, 0.5);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].score, 0.9);
        assert_eq!(d[1].class_id, ClassId(1));
        assert_eq!(d[2].score, 0.6);
    }

    #[test]
    fn finish_filters_caps_and_maps_back() {
        let geo = Geometry::fit(200, 100, 100, 100, ResizeMode::Stretch);
        let dets = vec![
            det(10.0, 10.0, 20.0, 20.0, 0.9, 0),
            det(10.0, 10.0, 20.0, 20.0, 0.2, 0),
            det(30.0, 30.0, 40.0, 40.0, 0.8, 2),
            det(50.0, 50.0, 60.0, 60.0, f32::NAN, 0),
            det(60.0, 60.0, 70.0, 70.0, 0.7, 0),
        ];
        let p = PostParams {
            score_threshold: 0.5,
            iou_threshold: 0.5,
            classes: Some(vec![ClassId(0)]),
            max_detections: 1,
            nms: true,
        };
        let out = finish(dets, &geo, &p);
        assert_eq!(out, vec![det(20.0, 10.0, 40.0, 20.0, 0.9, 0)]);
    }

    #[test]
    fn boxes_in_the_padding_are_dropped() {
        let geo = Geometry::fit(100, 50, 100, 100, ResizeMode::Letterbox);
        let p = PostParams {
            score_threshold: 0.0,
            iou_threshold: 0.5,
            classes: None,
            max_detections: 10,
            nms: false,
        };
        let out = finish(vec![det(0.0, 0.0, 100.0, 20.0, 0.9, 0)], &geo, &p);
        assert!(out.is_empty());
    }

    fn arb_det() -> impl Strategy<Value = Detection> {
        (
            0f32..100.0,
            0f32..100.0,
            1f32..40.0,
            1f32..40.0,
            0f32..1.0,
            0u32..3,
        )
            .prop_map(|(x, y, w, h, s, c)| det(x, y, x + w, y + h, s, c))
    }

    proptest! {
        #[test]
        fn kept_boxes_never_overlap_and_nms_is_idempotent(
            dets in prop::collection::vec(arb_det(), 0..60),
            iou in 0.1f32..0.9,
        ) {
            let mut once = dets.clone();
            nms(&mut once, iou);
            for (i, a) in once.iter().enumerate() {
                for b in &once[i + 1..] {
                    if a.class_id == b.class_id {
                        prop_assert!(a.bbox.iou(&b.bbox) <= iou);
                    }
                }
                prop_assert!(dets.contains(a));
            }
            prop_assert!(once.windows(2).all(|w| w[0].score >= w[1].score));
            let mut twice = once.clone();
            nms(&mut twice, iou);
            prop_assert_eq!(once, twice);
        }
    }
}
