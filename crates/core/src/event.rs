//! Events emitted by rules. The analytics crate produces [`RuleEvent`]s from stream time
//! alone (deterministic on replay); the engine stamps them with an id, run and wall time to
//! make [`Event`]s, which are stored and delivered.

use crate::geometry::BBox;
use crate::ids::{EventId, RunId, TrackId};
use crate::time::Pts;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ZoneEnter,
    ZoneExit,
    LineCross,
    Dwell,
    Count,
    Detected,
    /// A licence plate read for one vehicle (secondary plate stage, voted across frames).
    Plate,
    /// A plate read that matches a watch-list entry.
    PlateMatch,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::ZoneEnter,
        EventKind::ZoneExit,
        EventKind::LineCross,
        EventKind::Dwell,
        EventKind::Count,
        EventKind::Detected,
        EventKind::Plate,
        EventKind::PlateMatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ZoneEnter => "zone_enter",
            EventKind::ZoneExit => "zone_exit",
            EventKind::LineCross => "line_cross",
            EventKind::Dwell => "dwell",
            EventKind::Count => "count",
            EventKind::Detected => "detected",
            EventKind::Plate => "plate",
            EventKind::PlateMatch => "plate_match",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Direction of a line crossing. A line runs from point A to point B; `in` is a crossing from
/// the left of A→B to its right (in image coordinates, y down), `out` the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Whether an occupancy count is above or below its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Above,
    Below,
}

/// What a rule emits, in stream time only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Name of the rule that fired.
    pub rule: String,
    /// Stream time of the frame that triggered it.
    pub pts: Pts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<TrackId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Occupancy (count rules) or running total in that direction (line rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Count rules: the new level relative to the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Dwell rules: seconds spent in the zone when the event fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_s: Option<f64>,
    /// `plate` and `plate_match` events: what was read (the vehicle is `class`/`bbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<PlateRead>,
    /// Attributes secondary stages had given the track when the event fired (`plate` → its
    /// voted text), by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A licence plate read for one tracked vehicle: the result of the per-track vote over the
/// frames the plate stage read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlateRead {
    /// Normalised text: upper case, A–Z and 0–9 only.
    pub text: String,
    /// Folded search key of `text` (O/Q/D→0, I/L→1, S→5, B→8, Z→2, G→6).
    pub key: String,
    /// Confidence of the vote, 0..1.
    pub confidence: f32,
    /// Frames whose reading took part in the vote.
    pub readings: u32,
    /// The best whole-text candidates with their votes, best first.
    #[serde(default)]
    pub candidates: Vec<PlateCandidate>,
    /// Plate box of the best reading, in frame pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate_bbox: Option<BBox>,
    /// `plate_match`: the watch-list entry that matched (`label` of the entry, or its pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `plate_match`: edit distance between the read text and the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
}

/// One candidate text of a plate vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlateCandidate {
    pub text: String,
    /// Sum of the confidences of the readings that gave this text.
    pub votes: f32,
    /// Number of readings that gave this text.
    pub readings: u32,
}

impl RuleEvent {
    /// An event with only the required fields set.
    pub fn new(kind: EventKind, rule: impl Into<String>, pts: Pts) -> Self {
        RuleEvent {
            kind,
            rule: rule.into(),
            pts,
            track_id: None,
            class: None,
            confidence: None,
            bbox: None,
            zone: None,
            line: None,
            direction: None,
            count: None,
            level: None,
            dwell_s: None,
            plate: None,
            attributes: std::collections::BTreeMap::new(),
        }
    }
}

/// A stored, deliverable event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub run_id: RunId,
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub wall_ms: i64,
    #[serde(flatten)]
    pub body: RuleEvent,
    /// The event's pictures in the media store, if any were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::media::EventMedia>,
}
