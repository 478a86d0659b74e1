//! Property tests of the rule state machines: whatever the geometry, a track that stays inside
//! a zone enters exactly once, a track going back and forth across a line alternates
//! directions, jitter within the dead band never produces events, and events do not depend
//! on the order tracks are listed in and come out by rule, then track id.

use proptest::prelude::*;
use sightline_analytics::{Anchor, LineDef, RuleDef, RuleEngine, Units, ZoneDef};
use sightline_core::{BBox, ClassId, Direction, EventKind, Labels, Pts, Track, TrackId};
use std::collections::BTreeMap;

const W: u32 = 1920;
const H: u32 = 1080;

fn labels() -> Labels {
    Labels::new(["person", "car"])
}

fn anchor_strategy() -> impl Strategy<Value = Anchor> {
    prop_oneof![
        Just(Anchor::BottomCenter),
        Just(Anchor::Center),
        Just(Anchor::TopCenter)
    ]
}

/// A box of `w`×`h` whose `anchor` point is at (`x`, `y`).
fn box_at(anchor: Anchor, x: f32, y: f32, w: f32, h: f32) -> BBox {
    let top = match anchor {
        Anchor::BottomCenter => y - h,
        Anchor::Center => y - h / 2.0,
        Anchor::TopCenter => y,
    };
    BBox::new(x - w / 2.0, top, x + w / 2.0, top + h)
}

fn track(id: u64, bbox: BBox) -> Track {
    Track {
        id: TrackId(id),
        class_id: ClassId(0),
        bbox,
        score: 0.9,
        hits: 5,
        misses: 0,
        matched: true,
    }
}

fn rect_zone(x1: f32, y1: f32, x2: f32, y2: f32) -> BTreeMap<String, ZoneDef> {
    BTreeMap::from([(
        "z".to_string(),
        ZoneDef {
            points: vec![[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
            units: Units::Pixels,
            color: None,
        },
    )])
}

fn zone_rules(anchor: Anchor, h: f32) -> Vec<RuleDef> {
    vec![
        serde_json::from_value(serde_json::json!({
            "type": "zone", "name": "zr", "zone": "z", "anchor": anchor, "hysteresis_px": h
        }))
        .unwrap(),
    ]
}

fn line_rules(anchor: Anchor, h: f32) -> Vec<RuleDef> {
    vec![
        serde_json::from_value(serde_json::json!({
            "type": "line", "name": "lr", "line": "l", "anchor": anchor, "hysteresis_px": h
        }))
        .unwrap(),
    ]
}

fn line(a: (f32, f32), b: (f32, f32)) -> BTreeMap<String, LineDef> {
    BTreeMap::from([(
        "l".to_string(),
        LineDef {
            a: [a.0, a.1],
            b: [b.0, b.1],
            units: Units::Pixels,
            in_label: None,
            out_label: None,
        },
    )])
}

/// A rectangle zone at least 100 px on each side, inside the frame.
fn rect_strategy() -> impl Strategy<Value = (f32, f32, f32, f32)> {
    (
        0.0f32..800.0,
        0.0f32..500.0,
        100.0f32..1000.0,
        100.0f32..500.0,
    )
        .prop_map(|(x, y, w, h)| (x, y, x + w, y + h))
}

/// A line at least 100 px long, inside the frame.
fn line_strategy() -> impl Strategy<Value = ((f32, f32), (f32, f32))> {
    let point = || (0.0f32..W as f32, 0.0f32..H as f32);
    (point(), point()).prop_filter("line shorter than 100 px", |(a, b)| {
        (b.0 - a.0).hypot(b.1 - a.1) >= 100.0
    })
}

/// The point at parameter `t` along A→B, `s` pixels to its right (y down).
fn beside(a: (f32, f32), b: (f32, f32), t: f32, s: f32) -> (f32, f32) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = dx.hypot(dy);
    let (nx, ny) = (-dy / len, dx / len);
    (a.0 + t * dx + s * nx, a.1 + t * dy + s * ny)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A track whose anchor wanders anywhere more than the dead band inside a zone enters once,
    /// never exits while present, and exits once when it vanishes.
    #[test]
    fn staying_inside_enters_exactly_once(
        (x1, y1, x2, y2) in rect_strategy(),
        h in 0.0f32..40.0,
        anchor in anchor_strategy(),
        path in prop::collection::vec((0.0f32..1.0, 0.0f32..1.0, 10.0f32..200.0, 10.0f32..300.0), 1..60),
    ) {
        let mut e = RuleEngine::new(&rect_zone(x1, y1, x2, y2), &BTreeMap::new(), &zone_rules(anchor, h), W, H, &labels()).unwrap();
        let m = h + 1.0;
        let mut enters = 0;
        for (i, (u, v, bw, bh)) in path.iter().enumerate() {
            let x = x1 + m + u * (x2 - x1 - 2.0 * m);
            let y = y1 + m + v * (y2 - y1 - 2.0 * m);
            let ev = e.process(Pts::from_millis(i as i64 * 40), &[track(1, box_at(anchor, x, y, *bw, *bh))]);
            prop_assert!(ev.iter().all(|e| e.kind == EventKind::ZoneEnter), "{ev:?}");
            prop_assert_eq!(ev.len(), usize::from(i == 0));
            enters += ev.len();
        }
        prop_assert_eq!(enters, 1);
        prop_assert_eq!(e.snapshot().zones[0].occupancy, 1);
        let ev = e.process(Pts::from_secs_f64(100.0), &[]);
        prop_assert_eq!(ev.len(), 1);
        prop_assert_eq!(ev[0].kind, EventKind::ZoneExit);
    }

    /// Going from one side of a line to the other through the segment, with any amount of
    /// jitter in the dead band on the way, gives one crossing per change of side, with
    /// alternating directions and running totals.
    #[test]
    fn back_and_forth_alternates_directions(
        (a, b) in line_strategy(),
        // At least 1 px, so that "within the band" is not decided by rounding.
        h in 1.0f32..30.0,
        anchor in anchor_strategy(),
        start_right in any::<bool>(),
        legs in prop::collection::vec(
            (0.05f32..0.95, 1.0f32..200.0, prop::collection::vec((0.05f32..0.95, -0.95f32..0.95), 0..4)),
            1..12,
        ),
    ) {
        let mut e = RuleEngine::new(&BTreeMap::new(), &line(a, b), &line_rules(anchor, h), W, H, &labels()).unwrap();
        let mut right = start_right;
        let mut frame = 0i64;
        let mut step = |e: &mut RuleEngine, (x, y): (f32, f32)| {
            frame += 1;
            e.process(Pts::from_millis(frame * 40), &[track(7, box_at(anchor, x, y, 30.0, 60.0))])
        };
        let side = |right: bool, d: f32| if right { h + d } else { -(h + d) };
        prop_assert!(step(&mut e, beside(a, b, 0.5, side(right, 5.0))).is_empty());
        let mut got = Vec::new();
        for (t, d, jitter) in &legs {
            for (jt, js) in jitter {
                let ev = step(&mut e, beside(a, b, *jt, js * h));
                prop_assert!(ev.is_empty(), "jitter in the band counted: {ev:?}");
            }
            right = !right;
            let ev = step(&mut e, beside(a, b, *t, side(right, *d)));
            prop_assert_eq!(ev.len(), 1, "one crossing per change of side");
            got.push((ev[0].direction.unwrap(), ev[0].count.unwrap()));
        }
        let first = if start_right { Direction::Out } else { Direction::In };
        for (i, (dir, count)) in got.iter().enumerate() {
            let want = if i % 2 == 0 { first } else if first == Direction::In { Direction::Out } else { Direction::In };
            prop_assert_eq!(*dir, want);
            prop_assert_eq!(*count as usize, i / 2 + 1);
        }
        let snap = e.snapshot();
        prop_assert_eq!((snap.lines[0].in_count + snap.lines[0].out_count) as usize, legs.len());
    }

    /// Anchors that stay within the dead band of a zone's edge or of a line never produce
    /// events (whether the track started in the band or clearly inside).
    #[test]
    fn jitter_in_the_band_is_silent(
        (x1, y1, x2, y2) in rect_strategy(),
        (a, b) in line_strategy(),
        h in 2.0f32..30.0,
        anchor in anchor_strategy(),
        start_inside in any::<bool>(),
        jitter in prop::collection::vec((0u8..4, 0.0f32..1.0, -0.95f32..0.95), 1..80),
        line_jitter in prop::collection::vec((-0.5f32..1.5, -0.95f32..0.95), 1..80),
    ) {
        // The zone rules watch the car, the line rule the person.
        let rules: Vec<RuleDef> = serde_json::from_value(serde_json::json!([
            {"type": "zone", "name": "zr", "zone": "z", "anchor": anchor, "hysteresis_px": h, "classes": ["car"]},
            {"type": "dwell", "name": "dr", "zone": "z", "anchor": anchor, "hysteresis_px": h, "seconds": 0.001, "classes": ["car"]},
            {"type": "count", "name": "cr", "zone": "z", "anchor": anchor, "hysteresis_px": h, "threshold": 1, "seconds": 0, "classes": ["car"]},
            {"type": "line", "name": "lr", "line": "l", "anchor": anchor, "hysteresis_px": h, "classes": ["person"]},
        ])).unwrap();
        let mut e = RuleEngine::new(&rect_zone(x1, y1, x2, y2), &line(a, b), &rules, W, H, &labels()).unwrap();
        let car = |x: f32, y: f32| Track { class_id: ClassId(1), ..track(1, box_at(anchor, x, y, 20.0, 40.0)) };
        let person = |x: f32, y: f32| track(2, box_at(anchor, x, y, 20.0, 40.0));
        let mut pts = 0;
        let mut next = || { pts += 40; Pts::from_millis(pts) };
        let mut car_at = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        if start_inside {
            let ev = e.process(next(), &[car(car_at.0, car_at.1)]);
            // zone_enter, and count above at once; the dwell fires on the next frame.
            let kinds: Vec<EventKind> = ev.iter().map(|e| e.kind).collect();
            prop_assert_eq!(kinds, [EventKind::ZoneEnter, EventKind::Count]);
            let ev = e.process(next(), &[car(car_at.0, car_at.1)]);
            prop_assert_eq!(ev.len(), 1);
            prop_assert_eq!(ev[0].kind, EventKind::Dwell);
        }
        let (wd, hd) = (x2 - x1, y2 - y1);
        for (edge, u, off) in &jitter {
            // A point on an edge, moved along that edge's normal by less than h.
            car_at = match edge {
                0 => (x1 + u * wd, y1 + off * h),
                1 => (x2 + off * h, y1 + u * hd),
                2 => (x1 + u * wd, y2 + off * h),
                _ => (x1 + off * h, y1 + u * hd),
            };
            let ev = e.process(next(), &[car(car_at.0, car_at.1)]);
            prop_assert!(ev.is_empty(), "zone band jitter produced {ev:?}");
        }
        for (t, s) in &line_jitter {
            let (x, y) = beside(a, b, *t, s * h);
            let ev = e.process(next(), &[car(car_at.0, car_at.1), person(x, y)]);
            prop_assert!(ev.is_empty(), "line band jitter produced {ev:?}");
        }
        prop_assert_eq!(e.snapshot().zones[0].occupancy, u32::from(start_inside));
    }

    /// Events do not depend on the order the tracks are listed in, replay identically, and
    /// come out by rule order, then increasing track id.
    #[test]
    fn events_are_deterministic_and_ordered(
        frames in prop::collection::vec(
            prop::collection::btree_map(0u64..12, (0.0f32..1900.0, 0.0f32..1060.0, 0u32..2, 0.0f32..1.0), 0..12),
            1..40,
        ),
        seed in any::<u64>(),
    ) {
        let zones: BTreeMap<String, ZoneDef> = serde_json::from_value(serde_json::json!({
            "a": {"points": [[0.1, 0.1], [0.6, 0.1], [0.6, 0.7], [0.1, 0.7]]},
            "b": {"points": [[0.4, 0.3], [0.95, 0.2], [0.9, 0.95], [0.5, 0.9]]},
        })).unwrap();
        let lines: BTreeMap<String, LineDef> = serde_json::from_value(serde_json::json!({
            "l": {"a": [0.5, 0.0], "b": [0.5, 1.0]},
        })).unwrap();
        let rules: Vec<RuleDef> = serde_json::from_value(serde_json::json!([
            {"type": "zone", "name": "r0", "zone": "a"},
            {"type": "count", "name": "r1", "zone": "b", "threshold": 2, "seconds": 0.1},
            {"type": "line", "name": "r2", "line": "l", "min_confidence": 0.3},
            {"type": "dwell", "name": "r3", "zone": "b", "seconds": 0.2, "classes": ["car"]},
            {"type": "detected", "name": "r4", "min_frames": 2},
        ])).unwrap();
        let mk = || RuleEngine::new(&zones, &lines, &rules, W, H, &labels()).unwrap();
        let (mut e1, mut e2) = (mk(), mk());
        let mut rng = seed;
        for (i, f) in frames.iter().enumerate() {
            let tracks: Vec<Track> = f.iter().map(|(id, (x, y, c, s))| Track {
                class_id: ClassId(*c),
                score: *s,
                ..track(*id, BBox::from_cxcywh(*x, *y, 30.0, 60.0))
            }).collect();
            let mut shuffled = tracks.clone();
            for j in (1..shuffled.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(j, (rng >> 33) as usize % (j + 1));
            }
            let pts = Pts::from_millis(i as i64 * 50);
            let ev1 = e1.process(pts, &tracks);
            let ev2 = e2.process(pts, &shuffled);
            prop_assert_eq!(&ev1, &ev2);
            let keys: Vec<(usize, Option<u64>)> = ev1.iter().map(|e| {
                (rules.iter().position(|r| r.name() == e.rule).unwrap(), e.track_id.map(|t| t.0))
            }).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
    }
}
