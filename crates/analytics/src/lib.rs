//! Sightline's rules: tracks in, events out, frame by frame.
//!
//! The customer's config names zones (polygons), lines and rules ([`ZoneDef`], [`LineDef`],
//! [`RuleDef`]); [`validate()`] checks them and reports every problem with its field path. A
//! [`RuleEngine`] is built from them for one frame size and is then fed the tracker's output
//! for each frame with its stream time ([`sightline_core::Pts`]); it keeps each rule's
//! short-term state and returns [`sightline_core::RuleEvent`]s:
//!
//! | rule       | event(s)                   | when |
//! |------------|----------------------------|------|
//! | `zone`     | `zone_enter`, `zone_exit`  | the anchor goes more than `hysteresis_px` inside / outside; a track that vanishes while inside exits |
//! | `line`     | `line_cross` + direction   | the anchor goes from one side to the other through the segment, past the dead band on both sides; `count` is the running total in that direction |
//! | `dwell`    | `dwell` (with `dwell_s`)   | a track has been inside for `seconds` of stream time; once per visit |
//! | `count`    | `count` (`level`, `count`) | occupancy reaches `threshold` (above) or drops below it, and stays so for `seconds` |
//! | `detected` | `detected`                 | a track has been seen for `min_frames` consecutive frames; once per track |
//!
//! Every rule has a class filter (`classes`, empty for all) and a `min_confidence` on the
//! track's score. The crate is sans-IO: no clock (only PTS), no threads, no hash-map
//! iteration; replaying the same tracks gives the same events in the same order (rule order,
//! then track id). The overlay draws [`RuleEngine::snapshot`].
//!
//! ```
//! use sightline_analytics::{RuleDef, RuleEngine, ZoneDef, LineDef};
//! use sightline_core::{BBox, ClassId, EventKind, Labels, Pts, Track, TrackId};
//! use std::collections::BTreeMap;
//!
//! let zones: BTreeMap<String, ZoneDef> = BTreeMap::from([(
//!     "dock".to_string(),
//!     serde_json::from_str(r#"{"points": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]}"#).unwrap(),
//! )]);
//! let rules: Vec<RuleDef> = vec![serde_json::from_str(
//!     r#"{"type": "zone", "name": "dock-watch", "zone": "dock", "classes": ["person"]}"#,
//! ).unwrap()];
//! let labels = Labels::new(["person", "car"]);
//! let mut engine = RuleEngine::new(&zones, &BTreeMap::<String, LineDef>::new(), &rules, 640, 480, &labels).unwrap();
//!
//! let person_at = |x: f32| Track {
//!     id: TrackId(7), class_id: ClassId(0), bbox: BBox::new(x - 10.0, 100.0, x + 10.0, 200.0),
//!     score: 0.9, hits: 5, misses: 0, matched: true,
//! };
//! assert!(engine.process(Pts::from_millis(0), &[person_at(100.0)]).is_empty());
//! let events = engine.process(Pts::from_millis(40), &[person_at(400.0)]);
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].kind, EventKind::ZoneEnter);
//! assert_eq!(engine.snapshot().zones[0].occupancy, 1);
//! ```

#![deny(missing_docs)]

pub mod config;
mod engine;
mod geometry;
mod table;
pub mod validate;
mod watch;

pub use config::{
    Anchor, CountRule, DetectedRule, DwellRule, LineDef, LineRule, RuleDef, Units, ZoneDef,
    ZoneRule, ZoneTransition,
};
pub use engine::{LineSnapshot, RuleEngine, RulesSnapshot, ZoneSnapshot};
pub use validate::validate;
