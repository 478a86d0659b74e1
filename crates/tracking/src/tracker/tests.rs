//! Scenario tests of the association rules, one behaviour each.

use super::*;

fn det(cx: f32, cy: f32, score: f32, class: u32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 40.0, 80.0),
        score,
        class_id: ClassId(class),
    }
}

fn pts(frame: i64) -> Pts {
    Pts::from_nanos(frame * 33_333_333)
}

fn ids(tracks: &[Track]) -> Vec<u64> {
    tracks.iter().map(|t| t.id.0).collect()
}

/// A tracker past its warm-up (it has seen `min_hits` empty inference frames), so births are
/// tentative.
fn warmed(settings: TrackerSettings) -> Tracker {
    let mut t = Tracker::new(settings);
    for f in 0..i64::from(t.settings().min_hits) {
        assert!(t.update(pts(f), &[]).is_empty());
    }
    t
}

#[test]
fn ids_start_at_one_and_follow_detection_order() {
    let mut t = Tracker::new(TrackerSettings::default());
    let out = t.update(
        pts(0),
        &[det(100.0, 100.0, 0.9, 0), det(300.0, 100.0, 0.8, 0)],
    );
    assert_eq!(ids(out), [1, 2]);
    assert!(
        out.iter()
            .all(|t| t.matched && t.hits == 1 && t.misses == 0)
    );
    assert_eq!(out[1].score, 0.8);
    assert_eq!(out[0].bbox, BBox::from_cxcywh(100.0, 100.0, 40.0, 80.0));
}

#[test]
fn after_warm_up_a_track_is_reported_once_it_has_min_hits() {
    let mut t = warmed(TrackerSettings::default());
    assert!(t.update(pts(3), &[det(100.0, 100.0, 0.9, 0)]).is_empty());
    assert!(t.predict(pts(4)).is_empty());
    assert!(t.update(pts(5), &[det(102.0, 100.0, 0.9, 0)]).is_empty());
    let out = t.update(pts(6), &[det(104.0, 100.0, 0.9, 0)]);
    assert_eq!(ids(out), [1]);
    assert_eq!(out[0].hits, 3);
}

#[test]
fn tracks_born_in_the_first_min_hits_frames_are_confirmed_at_once() {
    let mut t = Tracker::new(TrackerSettings::default());
    t.update(pts(0), &[]);
    t.update(pts(1), &[]);
    assert_eq!(ids(t.update(pts(2), &[det(100.0, 100.0, 0.9, 0)])), [1]);
    // The fourth inference frame is past the warm-up.
    let out = t.update(
        pts(3),
        &[det(100.0, 100.0, 0.9, 0), det(400.0, 100.0, 0.9, 0)],
    );
    assert_eq!(ids(out), [1]);
}

#[test]
fn min_hits_of_one_confirms_every_birth() {
    let mut t = warmed(TrackerSettings {
        min_hits: 1,
        ..TrackerSettings::default()
    });
    assert_eq!(ids(t.update(pts(5), &[det(100.0, 100.0, 0.9, 0)])), [1]);
}

#[test]
fn a_tentative_track_that_misses_a_frame_is_dropped_and_its_id_not_reused() {
    let mut t = warmed(TrackerSettings::default());
    t.update(pts(3), &[det(100.0, 100.0, 0.9, 0)]);
    t.update(pts(4), &[det(100.0, 100.0, 0.9, 0)]);
    t.update(pts(5), &[]);
    t.update(pts(6), &[det(100.0, 100.0, 0.9, 0)]);
    t.update(pts(7), &[det(100.0, 100.0, 0.9, 0)]);
    let out = t.update(pts(8), &[det(100.0, 100.0, 0.9, 0)]);
    assert_eq!(ids(out), [2]);
}

#[test]
fn births_need_new_track_score_and_low_scores_never_start_tracks() {
    let mut t = Tracker::new(TrackerSettings::default());
    let out = t.update(
        pts(0),
        &[
            det(100.0, 100.0, 0.55, 0),
            det(300.0, 100.0, 0.3, 0),
            det(500.0, 100.0, 0.05, 0),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(ids(t.update(pts(1), &[det(700.0, 100.0, 0.6, 0)])), [1]);
}

#[test]
fn low_score_detections_keep_a_tracked_object() {
    let mut t = Tracker::new(TrackerSettings::default());
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    for f in 1..10 {
        let out = t.update(pts(f), &[det(100.0 + f as f32, 100.0, 0.2, 0)]);
        assert_eq!(ids(out), [1]);
        assert!(out[0].matched, "frame {f}");
        assert_eq!(out[0].score, 0.2);
    }
}

#[test]
fn low_score_detections_do_not_revive_a_lost_track() {
    let mut t = Tracker::new(TrackerSettings::default());
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    let out = t.update(pts(1), &[]);
    assert_eq!(out[0].misses, 1);
    let out = t.update(pts(2), &[det(100.0, 100.0, 0.3, 0)]);
    assert!(!out[0].matched);
    assert_eq!(out[0].misses, 2);
    // A high-score detection does (stage 1 includes lost tracks).
    let out = t.update(pts(3), &[det(100.0, 100.0, 0.7, 0)]);
    assert!(out[0].matched);
    assert_eq!(out[0].misses, 0);
}

#[test]
fn lost_tracks_are_reported_until_max_age_frames_then_removed() {
    let settings = TrackerSettings {
        max_age_frames: 6,
        ..TrackerSettings::default()
    };
    let mut t = Tracker::new(settings);
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    // Inference every 3rd frame: frames 3 and 6 miss, 9 is 9 frames since the last match.
    let mut f = 0;
    for expected_misses in [1, 2] {
        for _ in 0..2 {
            f += 1;
            let out = t.predict(pts(f));
            assert_eq!(out[0].misses, expected_misses - 1);
        }
        f += 1;
        let out = t.update(pts(f), &[]);
        assert_eq!(ids(out), [1]);
        assert_eq!(out[0].misses, expected_misses);
        assert!(!out[0].matched);
    }
    t.predict(pts(7));
    t.predict(pts(8));
    assert!(t.update(pts(9), &[]).is_empty());
    // The object comes back past the warm-up: a new, tentative track with a new id.
    for f in 10..13 {
        t.update(pts(f), &[det(100.0, 100.0, 0.9, 0)]);
    }
    assert_eq!(ids(t.update(pts(13), &[det(100.0, 100.0, 0.9, 0)])), [2]);
}

#[test]
fn a_lost_track_is_recovered_where_it_was_heading() {
    let mut t = Tracker::new(TrackerSettings::default());
    for f in 0..20 {
        t.update(pts(f), &[det(100.0 + 4.0 * f as f32, 200.0, 0.9, 0)]);
    }
    for f in 20..35 {
        let out = t.update(pts(f), &[]);
        assert_eq!(out[0].misses as i64, f - 19);
        // The predicted box keeps moving right.
        let cx = out[0].bbox.center().x;
        let truth = 100.0 + 4.0 * f as f32;
        assert!((cx - truth).abs() < 4.0, "frame {f}: {cx} vs {truth}");
    }
    let out = t.update(pts(35), &[det(100.0 + 4.0 * 35.0, 200.0, 0.9, 0)]);
    assert_eq!(ids(out), [1]);
    assert!(out[0].matched);
}

#[test]
fn predict_moves_boxes_without_touching_counters() {
    let mut t = Tracker::new(TrackerSettings::default());
    for f in 0..10 {
        t.update(pts(f), &[det(100.0, 100.0 + 5.0 * f as f32, 0.9, 0)]);
    }
    let before = t.update(pts(10), &[det(100.0, 150.0, 0.9, 0)])[0].clone();
    let after = t.predict(pts(11))[0].clone();
    assert!(!after.matched);
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));
    let dy = after.bbox.center().y - before.bbox.center().y;
    assert!((dy - 5.0).abs() < 1.0, "{dy}");
}

#[test]
fn predict_neither_births_nor_removes() {
    let mut t = Tracker::new(TrackerSettings {
        max_age_frames: 1,
        ..TrackerSettings::default()
    });
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    for f in 1..50 {
        assert_eq!(ids(t.predict(pts(f))), [1]);
    }
    assert!(t.update(pts(50), &[]).is_empty());
}

#[test]
fn unusable_detections_are_ignored() {
    let mut t = Tracker::new(TrackerSettings::default());
    let bad = [
        Detection {
            bbox: BBox::new(10.0, 10.0, 10.0, 50.0),
            score: 0.9,
            class_id: ClassId(0),
        },
        Detection {
            bbox: BBox::new(10.0, 10.0, f32::INFINITY, 50.0),
            score: 0.9,
            class_id: ClassId(0),
        },
        det(100.0, 100.0, f32::NAN, 0),
    ];
    assert!(t.update(pts(0), &bad).is_empty());
    assert_eq!(ids(t.update(pts(1), &[det(100.0, 100.0, 0.9, 0)])), [1]);
}

#[test]
fn per_class_keeps_classes_apart_and_can_be_turned_off() {
    for per_class in [true, false] {
        let mut t = Tracker::new(TrackerSettings {
            per_class,
            ..TrackerSettings::default()
        });
        t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
        let out = t.update(pts(1), &[det(100.0, 100.0, 0.9, 7)]);
        if per_class {
            assert_eq!(ids(out), [1, 2]);
            assert!(!out[0].matched && out[1].matched);
            assert_eq!(out[1].class_id, ClassId(7));
        } else {
            assert_eq!(ids(out), [1]);
            assert!(out[0].matched);
            // A track keeps the class it was born with.
            assert_eq!(out[0].class_id, ClassId(0));
        }
    }
}

#[test]
fn clear_forgets_tracks_but_not_ids() {
    let mut t = Tracker::new(TrackerSettings::default());
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    t.clear();
    assert!(t.predict(pts(1)).is_empty());
    // Warm-up starts again, so the object shows at once, under a new id.
    assert_eq!(ids(t.update(pts(2), &[det(100.0, 100.0, 0.9, 0)])), [2]);
}

#[test]
fn new_settings_apply_from_the_next_frame() {
    let mut t = Tracker::new(TrackerSettings::default());
    t.update(pts(0), &[det(100.0, 100.0, 0.9, 0)]);
    t.set_settings(TrackerSettings {
        high_score: 0.95,
        new_track_score: 0.95,
        ..TrackerSettings::default()
    });
    assert_eq!(t.settings().high_score, 0.95);
    // 0.9 is now a low score: it keeps the tracked object but starts nothing.
    let out = t.update(
        pts(1),
        &[det(100.0, 100.0, 0.9, 0), det(400.0, 100.0, 0.9, 0)],
    );
    assert_eq!(ids(out), [1]);
    assert!(out[0].matched);
}

#[test]
fn overlapping_objects_moving_apart_keep_their_ids() {
    let mut t = Tracker::new(TrackerSettings::default());
    for f in 0..30 {
        let dx = 2.0 * f as f32;
        let dets = [
            det(200.0 - dx, 100.0, 0.9, 0),
            det(215.0 + dx, 100.0, 0.8, 0),
        ];
        let out = t.update(pts(f), &dets);
        assert_eq!(ids(out), [1, 2]);
        let xs: Vec<f32> = out.iter().map(|t| t.bbox.center().x).collect();
        assert!(xs[0] < xs[1], "frame {f}: {xs:?}");
    }
}
