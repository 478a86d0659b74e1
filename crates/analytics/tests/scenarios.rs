//! Golden scenarios: each `tests/scenarios/*.json` file holds a frame size, zones, lines and
//! rules (as the config file gives them), a list of frames with the tracker's output, and the
//! events the engine must emit, in order. Each scenario is replayed twice to check that a
//! replay gives the same events.
//!
//! Expected events are written as the engine's `RuleEvent` JSON with two conveniences:
//! `pts_ms` (milliseconds) instead of `pts` (nanoseconds) and `bbox` as `[x1, y1, x2, y2]`.
//! Every field the engine emits must be listed; numbers are compared to 1e-6.

use rstest::rstest;
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_analytics::{LineDef, RuleDef, RuleEngine, ZoneDef};
use sightline_core::{BBox, ClassId, Labels, Pts, RuleEvent, Track, TrackId};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// What the scenario shows (printed when it fails).
    description: String,
    /// `[width, height]` in pixels.
    frame_size: [u32; 2],
    /// The model's class names; `class_id` indexes them.
    labels: Vec<String>,
    #[serde(default)]
    zones: BTreeMap<String, ZoneDef>,
    #[serde(default)]
    lines: BTreeMap<String, LineDef>,
    rules: Vec<RuleDef>,
    frames: Vec<FrameIn>,
    expected: Vec<Value>,
    /// Occupancy per zone and `[in, out]` per line after the last frame.
    #[serde(default)]
    final_snapshot: Option<SnapshotIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameIn {
    pts_ms: i64,
    tracks: Vec<TrackIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackIn {
    id: u64,
    class_id: u32,
    bbox: [f32; 4],
    score: f32,
    /// Inference frames without a matching detection (default 0: matched).
    #[serde(default)]
    misses: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotIn {
    #[serde(default)]
    zones: BTreeMap<String, u32>,
    #[serde(default)]
    lines: BTreeMap<String, [u32; 2]>,
}

impl TrackIn {
    fn to_track(&self) -> Track {
        let [x1, y1, x2, y2] = self.bbox;
        Track {
            id: TrackId(self.id),
            class_id: ClassId(self.class_id),
            bbox: BBox::new(x1, y1, x2, y2),
            score: self.score,
            hits: 10,
            misses: self.misses,
            matched: self.misses == 0,
        }
    }
}

/// The event in the scenario's compact form.
fn compact(e: &RuleEvent) -> Value {
    let mut v = serde_json::to_value(e).unwrap();
    let obj = v.as_object_mut().unwrap();
    let pts = obj.remove("pts").unwrap().as_i64().unwrap();
    assert_eq!(pts % 1_000_000, 0, "scenario times are whole milliseconds");
    obj.insert("pts_ms".into(), json!(pts / 1_000_000));
    if let Some(b) = e.bbox {
        obj.insert("bbox".into(), json!([b.x1, b.y1, b.x2, b.y2]));
    }
    v
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn replay(s: &Scenario, labels: &Labels) -> (Vec<RuleEvent>, RuleEngine) {
    let [w, h] = s.frame_size;
    let mut engine = RuleEngine::new(&s.zones, &s.lines, &s.rules, w, h, labels)
        .unwrap_or_else(|e| panic!("scenario config is invalid:\n{e}"));
    let mut events = Vec::new();
    for f in &s.frames {
        let tracks: Vec<Track> = f.tracks.iter().map(TrackIn::to_track).collect();
        events.extend(engine.process(Pts::from_millis(f.pts_ms), &tracks));
    }
    (events, engine)
}

#[rstest]
fn scenario(#[files("tests/scenarios/*.json")] path: PathBuf) {
    let text = std::fs::read_to_string(&path).unwrap();
    let s: Scenario =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!s.frames.is_empty(), "a scenario needs frames");
    let labels = Labels::new(s.labels.iter().cloned());

    let (events, engine) = replay(&s, &labels);
    let got: Vec<Value> = events.iter().map(compact).collect();
    let listing = got
        .iter()
        .map(|v| format!("  {v}"))
        .collect::<Vec<_>>()
        .join(",\n");
    assert_eq!(
        got.len(),
        s.expected.len(),
        "{}: wrong number of events ({})\ngot:\n{listing}",
        path.display(),
        s.description
    );
    for (i, (g, x)) in got.iter().zip(&s.expected).enumerate() {
        assert!(
            same(g, x),
            "{}: event {i} differs ({})\n  expected {x}\n  got      {g}\nall events:\n{listing}",
            path.display(),
            s.description
        );
    }

    let (again, _) = replay(&s, &labels);
    assert_eq!(
        again,
        events,
        "{}: a replay gave other events",
        path.display()
    );

    if let Some(want) = &s.final_snapshot {
        let snap = engine.snapshot();
        for (zone, occupancy) in &want.zones {
            let z = snap.zones.iter().find(|z| &z.name == zone).unwrap();
            assert_eq!(z.occupancy, *occupancy, "{}: zone {zone}", path.display());
        }
        for (line, [i, o]) in &want.lines {
            let l = snap.lines.iter().find(|l| &l.name == line).unwrap();
            assert_eq!(
                (l.in_count, l.out_count),
                (*i, *o),
                "{}: line {line}",
                path.display()
            );
        }
    }
}
