//! Unit tests of each rule's state machine through the engine's public surface.

use super::*;
use crate::config::*;
use sightline_core::{BBox, ClassId, Direction, TrackId};

const PERSON: ClassId = ClassId(0);
const CAR: ClassId = ClassId(1);

fn labels() -> Labels {
    Labels::new(["person", "car", "bicycle"])
}

/// A 40×100 box whose bottom-centre is at (`x`, `y`).
fn at(id: u64, class_id: ClassId, x: f32, y: f32, score: f32) -> Track {
    Track {
        id: TrackId(id),
        class_id,
        bbox: BBox::new(x - 20.0, y - 100.0, x + 20.0, y),
        score,
        hits: 10,
        misses: 0,
        matched: true,
    }
}

fn person(id: u64, x: f32, y: f32) -> Track {
    at(id, PERSON, x, y, 0.9)
}

fn ms(v: i64) -> Pts {
    Pts::from_millis(v)
}

/// Pixel square 200..800 × 200..800 named "yard".
fn yard() -> BTreeMap<String, ZoneDef> {
    BTreeMap::from([(
        "yard".to_string(),
        ZoneDef {
            points: vec![
                [200.0, 200.0],
                [800.0, 200.0],
                [800.0, 800.0],
                [200.0, 800.0],
            ],
            units: Units::Pixels,
            color: Some("#00ff00".into()),
        },
    )])
}

/// Vertical pixel line x = 500 from y = 100 (A) to y = 900 (B): `in` is moving towards -x.
fn door() -> BTreeMap<String, LineDef> {
    BTreeMap::from([(
        "door".to_string(),
        LineDef {
            a: [500.0, 100.0],
            b: [500.0, 900.0],
            units: Units::Pixels,
            in_label: Some("entering".into()),
            out_label: None,
        },
    )])
}

fn zone_rule(h: f32) -> RuleDef {
    RuleDef::Zone(ZoneRule {
        name: "z".into(),
        classes: vec![],
        min_confidence: 0.0,
        attribute: None,
        attribute_matches: None,
        zone: "yard".into(),
        anchor: Anchor::BottomCenter,
        hysteresis_px: h,
        events: vec![ZoneTransition::Enter, ZoneTransition::Exit],
    })
}

fn engine(rules: Vec<RuleDef>) -> RuleEngine {
    RuleEngine::new(&yard(), &door(), &rules, 1000, 1000, &labels()).unwrap()
}

fn kinds(events: &[RuleEvent]) -> Vec<(EventKind, Option<u64>)> {
    events
        .iter()
        .map(|e| (e.kind, e.track_id.map(|t| t.0)))
        .collect()
}

#[test]
fn zone_enter_and_exit_with_hysteresis() {
    let mut e = engine(vec![zone_rule(10.0)]);
    // Approach the top edge (y = 200) from above.
    let steps = [
        (150.0, None),
        (195.0, None),
        (205.0, None),
        (209.0, None),
        (211.0, Some(EventKind::ZoneEnter)),
        (195.0, None),
        (191.0, None),
        (205.0, None),
        (189.0, Some(EventKind::ZoneExit)),
        (205.0, None),
    ];
    for (i, (y, want)) in steps.into_iter().enumerate() {
        let ev = e.process(ms(i as i64 * 40), &[person(1, 500.0, y)]);
        assert_eq!(ev.iter().map(|e| e.kind).next(), want, "step {i} y={y}");
        assert!(ev.len() <= 1);
    }
}

#[test]
fn zone_events_carry_the_track() {
    let mut e = engine(vec![zone_rule(10.0)]);
    let t = at(4, CAR, 500.0, 500.0, 0.75);
    let ev = e.process(ms(80), std::slice::from_ref(&t));
    assert_eq!(ev.len(), 1);
    let ev = &ev[0];
    assert_eq!(ev.kind, EventKind::ZoneEnter);
    assert_eq!(ev.rule, "z");
    assert_eq!(ev.pts, ms(80));
    assert_eq!(ev.track_id, Some(TrackId(4)));
    assert_eq!(ev.class.as_deref(), Some("car"));
    assert_eq!(ev.confidence, Some(0.75));
    assert_eq!(ev.bbox, Some(t.bbox));
    assert_eq!(ev.zone.as_deref(), Some("yard"));
    assert_eq!(
        (ev.line.as_ref(), ev.count, ev.level, ev.dwell_s),
        (None, None, None, None)
    );
}

#[test]
fn a_track_that_vanishes_inside_exits_with_its_last_box() {
    let mut e = engine(vec![zone_rule(10.0)]);
    let t = person(2, 500.0, 500.0);
    assert_eq!(
        kinds(&e.process(ms(0), std::slice::from_ref(&t))),
        [(EventKind::ZoneEnter, Some(2))]
    );
    let ev = e.process(ms(40), &[]);
    assert_eq!(kinds(&ev), [(EventKind::ZoneExit, Some(2))]);
    assert_eq!((ev[0].pts, ev[0].bbox), (ms(40), Some(t.bbox)));
    // Vanishing while outside says nothing.
    e.process(ms(80), &[person(3, 50.0, 50.0)]);
    assert!(e.process(ms(120), &[]).is_empty());
}

#[test]
fn a_track_first_seen_in_the_band_waits_for_a_side() {
    let mut e = engine(vec![zone_rule(10.0)]);
    assert!(e.process(ms(0), &[person(1, 500.0, 205.0)]).is_empty());
    assert!(e.process(ms(40), &[person(1, 500.0, 195.0)]).is_empty());
    assert!(
        e.process(ms(80), &[person(1, 500.0, 185.0)]).is_empty(),
        "out, was never in"
    );
    assert!(e.process(ms(120), &[person(5, 500.0, 205.0)]).is_empty());
    assert!(e.process(ms(160), &[]).is_empty(), "never inside: no exit");
}

#[test]
fn zone_events_filter() {
    let RuleDef::Zone(mut r) = zone_rule(0.0) else {
        unreachable!()
    };
    r.events = vec![ZoneTransition::Exit];
    let mut e = engine(vec![RuleDef::Zone(r)]);
    assert!(e.process(ms(0), &[person(1, 500.0, 500.0)]).is_empty());
    assert_eq!(
        kinds(&e.process(ms(40), &[person(1, 500.0, 900.0)])),
        [(EventKind::ZoneExit, Some(1))]
    );
}

#[test]
fn anchors_pick_the_point_that_must_be_inside() {
    let RuleDef::Zone(mut r) = zone_rule(0.0) else {
        unreachable!()
    };
    r.anchor = Anchor::TopCenter;
    let mut e = engine(vec![RuleDef::Zone(r)]);
    // Bottom inside (y = 250), top outside (y = 150).
    assert!(e.process(ms(0), &[person(1, 500.0, 250.0)]).is_empty());
    assert_eq!(e.snapshot().zones[0].occupancy, 0);
    assert_eq!(
        kinds(&e.process(ms(40), &[person(1, 500.0, 310.0)])),
        [(EventKind::ZoneEnter, Some(1))]
    );
}

fn line_rule() -> RuleDef {
    RuleDef::Line(LineRule {
        name: "l".into(),
        classes: vec![],
        min_confidence: 0.0,
        attribute: None,
        attribute_matches: None,
        line: "door".into(),
        anchor: Anchor::BottomCenter,
        hysteresis_px: 8.0,
    })
}

#[test]
fn line_crossings_count_once_each_way() {
    let mut e = engine(vec![line_rule()]);
    let xs = [
        600.0, 520.0, 505.0, 497.0, 503.0, 495.0, 490.0, 480.0, 505.0, 510.0, 400.0,
    ];
    let mut got = Vec::new();
    for (i, x) in xs.into_iter().enumerate() {
        for ev in e.process(ms(i as i64 * 40), &[person(1, x, 500.0)]) {
            assert_eq!(ev.line.as_deref(), Some("door"));
            got.push((i, ev.direction, ev.count));
        }
    }
    assert_eq!(
        got,
        [
            (6, Some(Direction::In), Some(1)),
            (9, Some(Direction::Out), Some(1)),
            (10, Some(Direction::In), Some(2)),
        ]
    );
    let snap = e.snapshot();
    assert_eq!((snap.lines[0].in_count, snap.lines[0].out_count), (2, 1));
    assert_eq!(snap.lines[0].in_label.as_deref(), Some("entering"));
}

#[test]
fn passing_beyond_the_end_of_a_line_does_not_count() {
    let mut e = engine(vec![line_rule()]);
    assert!(e.process(ms(0), &[person(1, 600.0, 950.0)]).is_empty());
    assert!(e.process(ms(40), &[person(1, 400.0, 950.0)]).is_empty());
    // Now on the `in` side; going back across the segment is `out`.
    let ev = e.process(ms(80), &[person(1, 600.0, 800.0)]);
    assert_eq!(
        ev.iter().map(|e| e.direction).collect::<Vec<_>>(),
        [Some(Direction::Out)]
    );
}

#[test]
fn a_new_track_in_the_band_does_not_count() {
    let mut e = engine(vec![line_rule()]);
    assert!(e.process(ms(0), &[person(1, 503.0, 500.0)]).is_empty());
    assert!(e.process(ms(40), &[person(1, 450.0, 500.0)]).is_empty());
    assert_eq!(e.process(ms(80), &[person(1, 550.0, 500.0)]).len(), 1);
}

#[test]
fn dwell_fires_once_per_visit_in_stream_time() {
    let mut e = engine(vec![RuleDef::Dwell(DwellRule {
        name: "d".into(),
        classes: vec![],
        min_confidence: 0.0,
        attribute: None,
        attribute_matches: None,
        zone: "yard".into(),
        seconds: 2.0,
        anchor: Anchor::BottomCenter,
        hysteresis_px: 10.0,
    })]);
    let mut fired = Vec::new();
    // Inside from 1000 ms; out at 5000 ms; back at 6000 ms until 9000 ms.
    for step in 0..=18 {
        let t = step * 500;
        let y = if (1000..5000).contains(&t) || t >= 6000 {
            500.0
        } else {
            100.0
        };
        for ev in e.process(ms(t), &[person(1, 500.0, y)]) {
            assert_eq!(ev.kind, EventKind::Dwell);
            fired.push((t, ev.dwell_s));
        }
    }
    assert_eq!(fired, [(3000, Some(2.0)), (8000, Some(2.0))]);
}

#[test]
fn dwell_ignores_jitter_in_the_band() {
    let mut e = engine(vec![RuleDef::Dwell(DwellRule {
        name: "d".into(),
        classes: vec![],
        min_confidence: 0.0,
        attribute: None,
        attribute_matches: None,
        zone: "yard".into(),
        seconds: 1.0,
        anchor: Anchor::BottomCenter,
        hysteresis_px: 10.0,
    })]);
    let ys = [215.0, 195.0, 205.0, 192.0, 215.0];
    let mut fired = Vec::new();
    for (i, y) in ys.into_iter().enumerate() {
        let ev = e.process(ms(i as i64 * 250), &[person(1, 500.0, y)]);
        fired.extend(ev.iter().map(|ev| (i, ev.dwell_s)));
    }
    assert_eq!(fired, [(4, Some(1.0))]);
}

fn count_rule(threshold: u32, seconds: f64) -> RuleDef {
    RuleDef::Count(CountRule {
        name: "c".into(),
        classes: vec!["person".into()],
        min_confidence: 0.0,
        attribute: None,
        attribute_matches: None,
        zone: "yard".into(),
        threshold,
        seconds,
        anchor: Anchor::BottomCenter,
        hysteresis_px: 0.0,
    })
}

#[test]
fn count_levels_need_to_hold() {
    let mut e = engine(vec![count_rule(2, 1.0)]);
    let inside = |n: u64| -> Vec<Track> {
        (1..=n)
            .map(|i| person(i, 300.0 + i as f32, 500.0))
            .collect()
    };
    // (ms, persons inside)
    let plan = [
        (0, 1),
        (250, 2),
        (500, 1),
        (750, 2),
        (1000, 3),
        (1500, 2),
        (1750, 2),
        (2000, 1),
        (2250, 2),
        (2500, 0),
        (3000, 0),
        (3500, 0),
    ];
    let mut got = Vec::new();
    for (t, n) in plan {
        // A car inside never counts.
        let mut tracks = inside(n);
        tracks.push(at(99, CAR, 400.0, 400.0, 0.9));
        for ev in e.process(ms(t), &tracks) {
            assert_eq!(
                (ev.kind, ev.zone.as_deref(), ev.track_id),
                (EventKind::Count, Some("yard"), None)
            );
            got.push((t, ev.level, ev.count));
        }
    }
    assert_eq!(
        got,
        [
            (1750, Some(Level::Above), Some(2)),
            (3500, Some(Level::Below), Some(0))
        ]
    );
}

#[test]
fn count_with_no_hold_reports_at_once_and_never_at_start() {
    let mut e = engine(vec![count_rule(1, 0.0)]);
    assert!(e.process(ms(0), &[]).is_empty());
    let ev = e.process(ms(40), &[person(1, 500.0, 500.0)]);
    assert_eq!((ev[0].level, ev[0].count), (Some(Level::Above), Some(1)));
    let ev = e.process(ms(80), &[]);
    assert_eq!((ev[0].level, ev[0].count), (Some(Level::Below), Some(0)));
}

fn detected(min_frames: u32, min_confidence: f32) -> RuleDef {
    RuleDef::Detected(DetectedRule {
        name: "d".into(),
        classes: vec!["car".into()],
        min_confidence,
        attribute: None,
        attribute_matches: None,
        min_frames,
    })
}

#[test]
fn detected_after_consecutive_frames_once_per_track() {
    let mut e = engine(vec![detected(3, 0.5)]);
    let car = |score: f32, misses: u32| Track {
        misses,
        matched: misses == 0,
        ..at(1, CAR, 100.0, 100.0, score)
    };
    let seq = [
        car(0.9, 0),
        car(0.9, 0),
        car(0.9, 1), // predicted: restarts
        car(0.9, 0),
        car(0.4, 0), // too weak: restarts
        car(0.9, 0),
        car(0.9, 0),
        car(0.9, 0), // third in a row
        car(0.9, 0),
    ];
    let mut fired = Vec::new();
    for (i, t) in seq.into_iter().enumerate() {
        let ev = e.process(ms(i as i64 * 40), &[t, person(2, 0.0, 0.0)]);
        fired.extend(ev.iter().map(|ev| (i, ev.track_id, ev.class.clone())));
    }
    assert_eq!(fired, [(7, Some(TrackId(1)), Some("car".to_string()))]);
}

#[test]
fn min_confidence_latches_per_track() {
    let RuleDef::Zone(mut r) = zone_rule(0.0) else {
        unreachable!()
    };
    r.min_confidence = 0.5;
    let mut e = engine(vec![RuleDef::Zone(r)]);
    assert!(
        e.process(ms(0), &[at(1, PERSON, 500.0, 500.0, 0.3)])
            .is_empty()
    );
    let ev = e.process(ms(40), &[at(1, PERSON, 500.0, 500.0, 0.6)]);
    assert_eq!(kinds(&ev), [(EventKind::ZoneEnter, Some(1))]);
    // A weaker score later does not make it leave.
    assert!(
        e.process(ms(80), &[at(1, PERSON, 500.0, 500.0, 0.1)])
            .is_empty()
    );
    let ev = e.process(ms(120), &[at(1, PERSON, 500.0, 900.0, 0.1)]);
    assert_eq!(kinds(&ev), [(EventKind::ZoneExit, Some(1))]);
}

#[test]
fn events_are_ordered_by_rule_then_track_whatever_the_input_order() {
    let RuleDef::Zone(mut second) = zone_rule(0.0) else {
        unreachable!()
    };
    second.name = "z2".into();
    let mut e = engine(vec![
        zone_rule(0.0),
        RuleDef::Zone(second),
        detected(1, 0.0),
    ]);
    let tracks = [
        at(9, CAR, 500.0, 500.0, 0.9),
        person(3, 400.0, 400.0),
        person(5, 600.0, 600.0),
        person(3, 10.0, 10.0), // duplicate id: ignored
        Track {
            bbox: BBox::new(f32::NAN, 0.0, 1.0, 1.0),
            ..person(1, 0.0, 0.0)
        },
    ];
    let ev = e.process(ms(0), &tracks);
    let got: Vec<(&str, u64)> = ev
        .iter()
        .map(|e| (e.rule.as_str(), e.track_id.unwrap().0))
        .collect();
    assert_eq!(
        got,
        [
            ("z", 3),
            ("z", 5),
            ("z", 9),
            ("z2", 3),
            ("z2", 5),
            ("z2", 9),
            ("d", 9)
        ]
    );
}

#[test]
fn snapshot_reports_pixels_and_unruled_zones_and_lines() {
    let zones = BTreeMap::from([(
        "half".to_string(),
        ZoneDef {
            points: vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]],
            units: Units::Normalized,
            color: None,
        },
    )]);
    let lines = BTreeMap::from([(
        "mid".to_string(),
        LineDef {
            a: [0.0, 0.5],
            b: [1.0, 0.5],
            units: Units::Normalized,
            in_label: None,
            out_label: Some("up".into()),
        },
    )]);
    let mut e = RuleEngine::new(&zones, &lines, &[], 640, 480, &labels()).unwrap();
    let snap = e.snapshot();
    assert_eq!(
        snap.zones[0].polygon,
        [
            Point::new(320.0, 0.0),
            Point::new(640.0, 0.0),
            Point::new(640.0, 480.0),
            Point::new(320.0, 480.0)
        ]
    );
    assert_eq!(
        (snap.lines[0].a, snap.lines[0].b),
        (Point::new(0.0, 240.0), Point::new(640.0, 240.0))
    );
    assert!(
        e.process(
            ms(0),
            &[person(1, 400.0, 300.0), at(2, CAR, 100.0, 300.0, 0.2)]
        )
        .is_empty()
    );
    assert!(e.process(ms(40), &[person(1, 400.0, 100.0)]).is_empty());
    let snap = e.snapshot();
    assert_eq!(snap.zones[0].occupancy, 1);
    // Moving up across A→B (east) is from its right to its left: `out`.
    assert_eq!((snap.lines[0].in_count, snap.lines[0].out_count), (0, 1));
    assert_eq!(snap.lines[0].out_label.as_deref(), Some("up"));
}

#[test]
fn new_refuses_invalid_rules_and_empty_frames() {
    let rules = vec![RuleDef::Zone(ZoneRule {
        classes: vec!["dog".into()],
        ..match zone_rule(0.0) {
            RuleDef::Zone(z) => z,
            _ => unreachable!(),
        }
    })];
    let err = RuleEngine::new(&yard(), &door(), &rules, 0, 10, &labels()).unwrap_err();
    let msgs: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("rules[0].classes[0]: unknown class \"dog\""),
        "{msgs:?}"
    );
    assert_eq!(msgs[1], "(frame): frame size 0x10 has no pixels");
}

fn with_attribute(rule: RuleDef, attribute: &str, matches: Option<&str>) -> RuleDef {
    let a = Some(attribute.to_owned());
    let m = matches.map(str::to_owned);
    match rule {
        RuleDef::Zone(mut r) => {
            (r.attribute, r.attribute_matches) = (a, m);
            RuleDef::Zone(r)
        }
        RuleDef::Line(mut r) => {
            (r.attribute, r.attribute_matches) = (a, m);
            RuleDef::Line(r)
        }
        RuleDef::Detected(mut r) => {
            (r.attribute, r.attribute_matches) = (a, m);
            RuleDef::Detected(r)
        }
        other => panic!("not used here: {other:?}"),
    }
}

fn plates(values: &[(u64, &str)]) -> TrackAttributes {
    let mut a = TrackAttributes::default();
    for (id, v) in values {
        a.set("plate", TrackId(*id), (*v).to_owned());
    }
    a
}

#[test]
fn line_rule_with_attribute_counts_only_tracks_that_carry_it() {
    let mut e = engine(vec![with_attribute(line_rule(), "plate", Some("^KA01"))]);
    // Track 1 has a matching plate, 2 a different one, 3 none; all cross the door (x = 500)
    // from the right to the left.
    let attrs = plates(&[(1, "KA01AB1234"), (2, "MH12XY9999")]);
    let cars = |x: f32| {
        [
            at(1, CAR, x, 300.0, 0.9),
            at(2, CAR, x, 500.0, 0.9),
            at(3, CAR, x, 700.0, 0.9),
        ]
    };
    let mut all = Vec::new();
    for (i, x) in [600.0, 560.0, 520.0, 480.0, 440.0].into_iter().enumerate() {
        all.extend(e.process_with(ms(i as i64 * 40), &cars(x), &attrs));
    }
    assert_eq!(kinds(&all), [(EventKind::LineCross, Some(1))]);
    assert_eq!(all[0].attributes["plate"], "KA01AB1234");
    assert_eq!(e.snapshot().lines[0].in_count, 1);
}

#[test]
fn zone_rule_with_attribute_enters_when_the_attribute_arrives() {
    let mut e = engine(vec![with_attribute(zone_rule(10.0), "plate", None)]);
    let car = at(1, CAR, 500.0, 500.0, 0.9);
    // Inside the yard for two frames without a plate: nothing.
    let none = TrackAttributes::default();
    assert!(
        e.process_with(ms(0), std::slice::from_ref(&car), &none)
            .is_empty()
    );
    assert!(
        e.process_with(ms(40), std::slice::from_ref(&car), &none)
            .is_empty()
    );
    // The plate is read: the car enters now, and the event carries the plate.
    let attrs = plates(&[(1, "AB12CDE")]);
    let ev = e.process_with(ms(80), std::slice::from_ref(&car), &attrs);
    assert_eq!(kinds(&ev), [(EventKind::ZoneEnter, Some(1))]);
    assert_eq!(ev[0].attributes["plate"], "AB12CDE");
    // Latched: a frame where the stage has nothing for it (e.g. the breaker is open) does not
    // make it leave.
    assert!(
        e.process_with(ms(120), std::slice::from_ref(&car), &none)
            .is_empty()
    );
    let ev = e.process_with(ms(160), &[], &none);
    assert_eq!(kinds(&ev), [(EventKind::ZoneExit, Some(1))]);
}

#[test]
fn detected_rule_with_attribute_pattern_fires_for_the_matching_plate_only() {
    let mut e = engine(vec![with_attribute(
        detected(1, 0.0),
        "plate",
        Some("^(AB12CDE|XY34ZZZ)$"),
    )]);
    let tracks = [at(1, CAR, 100.0, 100.0, 0.9), at(2, CAR, 300.0, 100.0, 0.9)];
    let ev = e.process_with(ms(0), &tracks, &plates(&[(1, "AB12CDEF"), (2, "XY34ZZ")]));
    assert!(ev.is_empty(), "{ev:?}");
    let ev = e.process_with(ms(40), &tracks, &plates(&[(1, "AB12CDE"), (2, "XY34ZZ")]));
    assert_eq!(kinds(&ev), [(EventKind::Detected, Some(1))]);
    // Events of rules without a condition carry the attributes too.
    let mut plain = engine(vec![detected(1, 0.0)]);
    let ev = plain.process_with(ms(0), &tracks[..1], &plates(&[(1, "AB12CDE")]));
    assert_eq!(ev[0].attributes["plate"], "AB12CDE");
    let ev = plain.process(ms(0), &tracks[1..]);
    assert!(ev[0].attributes.is_empty());
}
