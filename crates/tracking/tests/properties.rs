//! Property tests of the tracker's promises, through its public API only: ids are never
//! reused, smooth motion keeps one id, short occlusions keep the id, skipped frames still
//! move boxes, classes stay apart, and the output is a function of the input.

use proptest::prelude::*;
use sightline_core::{BBox, ClassId, Detection, Pts, Track};
use sightline_tracking::{Tracker, TrackerSettings};
use std::collections::{BTreeMap, BTreeSet};

fn pts(frame: usize) -> Pts {
    Pts::from_nanos(frame as i64 * 40_000_000)
}

/// One frame of input: `None` is a frame that skipped inference.
type Frame = Option<Vec<Detection>>;

fn detection() -> impl Strategy<Value = Detection> {
    (
        0.0f32..600.0,
        0.0f32..400.0,
        5.0f32..120.0,
        5.0f32..120.0,
        0.0f32..1.0,
        0u32..3,
    )
        .prop_map(|(x, y, w, h, score, class)| Detection {
            bbox: BBox::new(x, y, x + w, y + h),
            score,
            class_id: ClassId(class),
        })
}

/// Frames of random detections. Detections are perturbed copies of a few moving "objects" plus
/// clutter, so tracks actually form, match, get lost and die.
fn scene() -> impl Strategy<Value = Vec<Frame>> {
    let objects = prop::collection::vec((detection(), -6.0f32..6.0, -6.0f32..6.0), 0..6);
    let frame = (
        prop::bool::weighted(0.7),
        prop::collection::vec(prop::bool::weighted(0.8), 6),
        prop::collection::vec(detection(), 0..4),
    );
    (objects, prop::collection::vec(frame, 1..60)).prop_map(|(objects, frames)| {
        frames
            .into_iter()
            .enumerate()
            .map(|(f, (inferred, visible, clutter))| {
                inferred.then(|| {
                    let t = f as f32;
                    let mut dets: Vec<Detection> = objects
                        .iter()
                        .zip(&visible)
                        .filter(|(_, v)| **v)
                        .map(|((d, vx, vy), _)| Detection {
                            bbox: BBox::new(
                                d.bbox.x1 + vx * t,
                                d.bbox.y1 + vy * t,
                                d.bbox.x2 + vx * t,
                                d.bbox.y2 + vy * t,
                            ),
                            ..*d
                        })
                        .collect();
                    dets.extend(clutter);
                    dets
                })
            })
            .collect()
    })
}

fn settings() -> impl Strategy<Value = TrackerSettings> {
    (1u32..5, 0u32..10, any::<bool>()).prop_map(|(min_hits, max_age_frames, per_class)| {
        TrackerSettings {
            min_hits,
            max_age_frames,
            per_class,
            ..TrackerSettings::default()
        }
    })
}

fn run(tracker: &mut Tracker, frames: &[Frame]) -> Vec<Vec<Track>> {
    frames
        .iter()
        .enumerate()
        .map(|(f, frame)| match frame {
            Some(dets) => tracker.update(pts(f), dets).to_vec(),
            None => tracker.predict(pts(f)).to_vec(),
        })
        .collect()
}

/// A box of `w`×`h` centred at `(cx, cy)`, seen with a high score.
fn seen(cx: f32, cy: f32, w: f32, h: f32, class: u32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, w, h),
        score: 0.9,
        class_id: ClassId(class),
    }
}

fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// An id that left the output never comes back, ids are unique and sorted within a frame,
    /// and a track's class never changes.
    #[test]
    fn ids_are_never_reused(settings in settings(), frames in scene()) {
        let mut tracker = Tracker::new(settings);
        let mut gone = BTreeSet::new();
        let mut previous = BTreeSet::new();
        let mut class_of = BTreeMap::new();
        for out in run(&mut tracker, &frames) {
            let current: BTreeSet<u64> = out.iter().map(|t| t.id.0).collect();
            prop_assert_eq!(current.len(), out.len(), "duplicate id in one frame");
            prop_assert!(out.windows(2).all(|w| w[0].id < w[1].id), "output not in id order");
            prop_assert!(current.iter().all(|id| *id >= 1));
            for id in previous.difference(&current) {
                gone.insert(*id);
            }
            prop_assert!(current.is_disjoint(&gone), "an id came back: {:?}", current.intersection(&gone).collect::<Vec<_>>());
            for t in &out {
                prop_assert_eq!(*class_of.entry(t.id).or_insert(t.class_id), t.class_id);
            }
            previous = current;
        }
    }

    /// Same input, same output, bit for bit.
    #[test]
    fn output_is_a_function_of_the_input(settings in settings(), frames in scene()) {
        let a = run(&mut Tracker::new(settings.clone()), &frames);
        let b = run(&mut Tracker::new(settings), &frames);
        prop_assert_eq!(a, b);
    }

    /// With `per_class`, a track reported as matched always had a detection of its own class
    /// on that frame.
    #[test]
    fn matched_tracks_match_their_own_class(frames in scene()) {
        let mut tracker = Tracker::new(TrackerSettings::default());
        for (out, frame) in run(&mut tracker, &frames).iter().zip(&frames) {
            let classes: BTreeSet<ClassId> =
                frame.iter().flatten().map(|d| d.class_id).collect();
            for t in out.iter().filter(|t| t.matched) {
                prop_assert!(classes.contains(&t.class_id), "track {} of class {:?} matched among {:?}", t.id, t.class_id, classes);
            }
        }
    }

    /// An object moving at constant velocity (with a pixel of detector jitter) keeps one id
    /// over 100 frames, whether inference runs on every frame or every 2nd or 3rd.
    #[test]
    fn constant_velocity_keeps_one_id(
        (cx, cy) in (200.0f32..800.0, 200.0f32..600.0),
        (w, h) in (20.0f32..200.0, 20.0f32..200.0),
        (ux, uy) in (-1.0f32..1.0, -1.0f32..1.0),
        interval in 1usize..=3,
        jitter in prop::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 100),
    ) {
        // At most a quarter of the box per inference interval: what ByteTrack can follow from
        // a standing start (a new track has no velocity yet).
        let step = 0.25 * w.min(h) / interval as f32;
        let (vx, vy) = (ux * step, uy * step);
        let mut tracker = Tracker::new(TrackerSettings::default());
        let mut id = None;
        for (f, (jx, jy)) in jitter.iter().enumerate() {
            let t = f as f32;
            let truth = (cx + vx * t, cy + vy * t);
            let out = if f % interval == 0 {
                tracker.update(pts(f), &[seen(truth.0 + jx, truth.1 + jy, w, h, 0)])
            } else {
                tracker.predict(pts(f))
            };
            prop_assert_eq!(out.len(), 1, "frame {}", f);
            prop_assert_eq!(*id.get_or_insert(out[0].id), out[0].id);
            if f % interval == 0 {
                prop_assert!(out[0].matched);
            }
            let c = out[0].bbox.center();
            if f >= 30 {
                prop_assert!(distance((c.x, c.y), truth) < 4.0, "frame {}: {:?} vs {:?}", f, c, truth);
            }
        }
    }

    /// An object hidden for fewer than `max_age_frames` frames keeps its id when it reappears
    /// where its motion took it; meanwhile it is reported as unmatched, with growing misses.
    #[test]
    fn occlusion_keeps_the_id(
        (cx, cy) in (300.0f32..700.0, 300.0f32..500.0),
        (w, h) in (30.0f32..150.0, 30.0f32..150.0),
        (vx, vy) in (-3.0f32..3.0, -3.0f32..3.0),
        visible_before in 10usize..30,
        hidden_raw in 1u32..1000,
        max_age_frames in 5u32..60,
    ) {
        let hidden = (hidden_raw % max_age_frames).max(1) as usize;
        let settings = TrackerSettings { max_age_frames, ..TrackerSettings::default() };
        let mut tracker = Tracker::new(settings);
        let at = |f: usize| seen(cx + vx * f as f32, cy + vy * f as f32, w, h, 0);
        let mut f = 0;
        let mut id = None;
        for _ in 0..visible_before {
            let out = tracker.update(pts(f), &[at(f)]);
            prop_assert_eq!(out.len(), 1);
            id.get_or_insert(out[0].id);
            f += 1;
        }
        for k in 1..=hidden {
            let out = tracker.update(pts(f), &[]);
            prop_assert_eq!(out.len(), 1, "hidden frame {}", k);
            prop_assert!(!out[0].matched);
            prop_assert_eq!(out[0].misses as usize, k);
            f += 1;
        }
        let out = tracker.update(pts(f), &[at(f)]);
        prop_assert_eq!(out.len(), 1);
        prop_assert!(out[0].matched);
        prop_assert_eq!(Some(out[0].id), id);
    }

    /// With inference every 3rd frame, the box reported on a skipped frame has moved from the
    /// last inferred estimate toward the object's next true position, and is close to where
    /// the object really is.
    #[test]
    fn skipped_frames_move_toward_the_next_true_position(
        (cx, cy) in (300.0f32..700.0, 300.0f32..500.0),
        (w, h) in (40.0f32..150.0, 40.0f32..150.0),
        speed in 1.0f32..4.0,
        angle in 0.0f32..std::f32::consts::TAU,
    ) {
        let (vx, vy) = (speed * angle.cos(), speed * angle.sin());
        let truth = |f: usize| (cx + vx * f as f32, cy + vy * f as f32);
        let mut tracker = Tracker::new(TrackerSettings::default());
        let mut last_inferred = (0.0, 0.0);
        for f in 0..90 {
            if f % 3 == 0 {
                let (x, y) = truth(f);
                let out = tracker.update(pts(f), &[seen(x, y, w, h, 0)]);
                let c = out[0].bbox.center();
                last_inferred = (c.x, c.y);
                continue;
            }
            let out = tracker.predict(pts(f));
            prop_assert_eq!(out.len(), 1);
            prop_assert!(!out[0].matched);
            if f < 30 {
                continue; // let the velocity estimate settle
            }
            let c = out[0].bbox.center();
            let next = truth(f + 3 - f % 3);
            prop_assert!(
                distance((c.x, c.y), next) < distance(last_inferred, next),
                "frame {}: predicted {:?}, last inferred {:?}, next truth {:?}", f, c, last_inferred, next
            );
            prop_assert!(distance((c.x, c.y), truth(f)) < 0.25 * speed + 0.5, "frame {}: {:?} vs {:?}", f, c, truth(f));
        }
    }

    /// With `per_class`, a detection of another class in the very place of a track starts a
    /// new track instead of taking the old one over; without it, it continues the old track.
    #[test]
    fn classes_stay_apart_when_per_class(
        (cx, cy) in (100.0f32..500.0, 100.0f32..500.0),
        (w, h) in (20.0f32..150.0, 20.0f32..150.0),
        switch_at in 1usize..10,
        (a, b) in (0u32..80, 0u32..80).prop_filter("two classes", |(a, b)| a != b),
        per_class in any::<bool>(),
    ) {
        let settings = TrackerSettings { per_class, ..TrackerSettings::default() };
        let mut tracker = Tracker::new(settings);
        for f in 0..switch_at {
            tracker.update(pts(f), &[seen(cx, cy, w, h, a)]);
        }
        for f in switch_at..switch_at + 5 {
            let out = tracker.update(pts(f), &[seen(cx, cy, w, h, b)]);
            let first = &out[0];
            prop_assert_eq!(first.id.0, 1);
            prop_assert_eq!(first.class_id, ClassId(a));
            if per_class {
                prop_assert!(!first.matched, "class {} took over a track of class {}", b, a);
                prop_assert!(out[1..].iter().all(|t| t.class_id == ClassId(b)));
            } else {
                prop_assert!(first.matched);
                prop_assert_eq!(out.len(), 1);
            }
        }
    }
}
