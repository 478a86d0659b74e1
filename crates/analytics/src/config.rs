//! The zones, lines and rules a customer writes, as the pipeline config file embeds them
//! (`[zones.<name>]`, `[lines.<name>]`, `[[rules]]`). These types live here, beside the code
//! that executes them, so the file format and its meaning cannot drift apart; the config crate
//! only composes them. Every field has a named default and a doc comment (which becomes the
//! JSON Schema description).

use serde::{Deserialize, Serialize};

/// Default [`ZoneRule::hysteresis_px`] and friends: how far (in pixels of the frame) an anchor
/// must be past a zone edge or a line before its side changes. Boxes from a detector jitter by
/// a few pixels from frame to frame; this keeps an object standing on an edge from flapping.
pub const DEFAULT_HYSTERESIS_PX: f32 = 8.0;
/// Default [`CountRule::seconds`]: how long an occupancy level must hold before it is reported.
pub const DEFAULT_COUNT_HOLD_S: f64 = 1.0;
/// Default [`DetectedRule::min_frames`].
pub const DEFAULT_MIN_FRAMES: u32 = 1;
/// Default `min_confidence` of every rule: any track qualifies.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.0;

/// How the coordinates of a zone or a line are given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Units {
    /// Fractions of the frame: `x` in 0..1 of its width, `y` in 0..1 of its height, from the
    /// top-left corner. The same config works at any resolution.
    #[default]
    Normalized,
    /// Pixels of the source frame, from the top-left corner.
    Pixels,
}

/// The point of a track's box that stands for the object's position.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// Middle of the bottom edge: where a person or a vehicle touches the ground.
    #[default]
    BottomCenter,
    /// Centre of the box.
    Center,
    /// Middle of the top edge (heads seen from above).
    TopCenter,
}

impl Anchor {
    /// The anchor point of `bbox`.
    pub fn of(self, bbox: &sightline_core::BBox) -> sightline_core::Point {
        let x = (bbox.x1 + bbox.x2) / 2.0;
        let y = match self {
            Anchor::BottomCenter => bbox.y2,
            Anchor::Center => (bbox.y1 + bbox.y2) / 2.0,
            Anchor::TopCenter => bbox.y1,
        };
        sightline_core::Point::new(x, y)
    }
}

/// A zone transition a zone rule reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ZoneTransition {
    /// `zone_enter`: the anchor went inside.
    Enter,
    /// `zone_exit`: the anchor went outside, or the track disappeared while inside.
    Exit,
}

/// A named polygon (`[zones.<name>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneDef {
    /// Vertices `[x, y]` in order around the polygon (either way round), at least 3. The
    /// polygon closes itself (do not repeat the first point) and must not cross itself.
    pub points: Vec<[f32; 2]>,
    /// Units of `points`: `normalized` (0..1 of the frame width/height, the default) or
    /// `pixels`.
    #[serde(default)]
    pub units: Units,
    /// Colour the overlay draws the zone in, `"#rrggbb"`; default: a palette colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// A named counting line (`[lines.<name>]`) from `a` to `b`.
///
/// Direction convention (as [`sightline_core::Direction`]): standing on `a` and looking
/// towards `b`, a crossing from the left-hand side to the right-hand side is `in`, the reverse
/// is `out`. Image coordinates have y pointing down, so for a horizontal line drawn left to
/// right (`a` west of `b`), `in` is moving downwards across it; swap `a` and `b` to swap the
/// directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineDef {
    /// Start of the line, `[x, y]`.
    pub a: [f32; 2],
    /// End of the line, `[x, y]`.
    pub b: [f32; 2],
    /// Units of `a` and `b`: `normalized` (0..1 of the frame width/height, the default) or
    /// `pixels`.
    #[serde(default)]
    pub units: Units,
    /// Shown instead of `in` next to the line's counter (e.g. `"entering"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_label: Option<String>,
    /// Shown instead of `out` next to the line's counter (e.g. `"leaving"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_label: Option<String>,
}

/// One rule (`[[rules]]`), selected by `type`. Rules are evaluated in the order they are
/// listed, and their events on a frame come out in that order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleDef {
    /// `zone_enter` / `zone_exit` when a track's anchor crosses a zone's edge.
    Zone(ZoneRule),
    /// `line_cross` (with its direction) when a track's anchor crosses a line.
    Line(LineRule),
    /// `dwell` when a track has stayed in a zone for `seconds` of stream time.
    Dwell(DwellRule),
    /// `count` when a zone's occupancy goes to or above `threshold`, or back below it, and
    /// stays there for `seconds`.
    Count(CountRule),
    /// `detected` once per track, when a track of the classes first appears.
    Detected(DetectedRule),
}

impl RuleDef {
    /// The rule's name (unique in a config; events carry it).
    pub fn name(&self) -> &str {
        match self {
            RuleDef::Zone(r) => &r.name,
            RuleDef::Line(r) => &r.name,
            RuleDef::Dwell(r) => &r.name,
            RuleDef::Count(r) => &r.name,
            RuleDef::Detected(r) => &r.name,
        }
    }

    /// The class names the rule is limited to (empty: every class).
    pub fn classes(&self) -> &[String] {
        match self {
            RuleDef::Zone(r) => &r.classes,
            RuleDef::Line(r) => &r.classes,
            RuleDef::Dwell(r) => &r.classes,
            RuleDef::Count(r) => &r.classes,
            RuleDef::Detected(r) => &r.classes,
        }
    }

    /// The minimum track score of the rule.
    pub fn min_confidence(&self) -> f32 {
        match self {
            RuleDef::Zone(r) => r.min_confidence,
            RuleDef::Line(r) => r.min_confidence,
            RuleDef::Dwell(r) => r.min_confidence,
            RuleDef::Count(r) => r.min_confidence,
            RuleDef::Detected(r) => r.min_confidence,
        }
    }

    /// The attribute condition of the rule: the attribute's name and the pattern its value
    /// must match.
    pub fn attribute(&self) -> (Option<&str>, Option<&str>) {
        let (a, m) = match self {
            RuleDef::Zone(r) => (&r.attribute, &r.attribute_matches),
            RuleDef::Line(r) => (&r.attribute, &r.attribute_matches),
            RuleDef::Dwell(r) => (&r.attribute, &r.attribute_matches),
            RuleDef::Count(r) => (&r.attribute, &r.attribute_matches),
            RuleDef::Detected(r) => (&r.attribute, &r.attribute_matches),
        };
        (a.as_deref(), m.as_deref())
    }

    /// The zone the rule watches, if it is a zone, dwell or count rule.
    pub fn zone(&self) -> Option<&str> {
        match self {
            RuleDef::Zone(r) => Some(&r.zone),
            RuleDef::Dwell(r) => Some(&r.zone),
            RuleDef::Count(r) => Some(&r.zone),
            RuleDef::Line(_) | RuleDef::Detected(_) => None,
        }
    }

    /// The line the rule watches, if it is a line rule.
    pub fn line(&self) -> Option<&str> {
        match self {
            RuleDef::Line(r) => Some(&r.line),
            _ => None,
        }
    }

    /// The `type` tag as written in the file.
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleDef::Zone(_) => "zone",
            RuleDef::Line(_) => "line",
            RuleDef::Dwell(_) => "dwell",
            RuleDef::Count(_) => "count",
            RuleDef::Detected(_) => "detected",
        }
    }
}

fn default_hysteresis_px() -> f32 {
    DEFAULT_HYSTERESIS_PX
}
fn default_min_confidence() -> f32 {
    DEFAULT_MIN_CONFIDENCE
}
fn default_count_hold_s() -> f64 {
    DEFAULT_COUNT_HOLD_S
}
fn default_min_frames() -> u32 {
    DEFAULT_MIN_FRAMES
}
fn default_zone_events() -> Vec<ZoneTransition> {
    vec![ZoneTransition::Enter, ZoneTransition::Exit]
}

/// `type = "zone"`: entering and leaving a zone.
///
/// A track is inside once its anchor is more than `hysteresis_px` inside the polygon, and
/// outside once it is more than `hysteresis_px` outside it; in between, it keeps its previous
/// state. A track first seen in that band is neither until it leaves the band. A track that
/// disappears from the tracker's output while inside exits on that frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneRule {
    /// Unique name of the rule; events carry it.
    pub name: String,
    /// Class names the rule applies to; empty (the default) means every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// A track is considered once its score has reached this (0..1); from then on it stays
    /// considered, so a score hovering around the threshold does not make it flap.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// Only tracks that carry this attribute are considered (an attribute a `[[secondary]]`
    /// stage gives tracks: `"plate"`, the plate stage's voted text). Like `min_confidence`,
    /// it is latched: a track is considered from the frame it first carries the attribute
    /// (and, with `attribute_matches`, a matching value) on. Events the rule emits carry the
    /// track's attributes. Unset (the default): no condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// With `attribute`: a regular expression (Rust `regex` syntax) the attribute's value
    /// must match somewhere, e.g. `"^KA01"` or `"^(AB12CDE|XY34ZZZ)$"`; unset: any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_matches: Option<String>,
    /// Name of the zone (a key of `[zones]`).
    pub zone: String,
    /// Which point of the box must be in the zone.
    #[serde(default)]
    pub anchor: Anchor,
    /// Dead band around the zone's edge, in pixels of the frame (see the rule's description).
    /// Note that a zone narrower than twice this can never be entered.
    #[serde(default = "default_hysteresis_px")]
    pub hysteresis_px: f32,
    /// Which transitions to report: `enter`, `exit` or both (the default).
    #[serde(default = "default_zone_events")]
    pub events: Vec<ZoneTransition>,
}

/// `type = "line"`: crossing a line, with its direction (see [`LineDef`]).
///
/// A crossing is counted once the anchor has moved from more than `hysteresis_px` on one side
/// of the line to more than `hysteresis_px` on the other, and its path (frame to frame) went
/// through the segment A–B itself (passing beyond either end does not count). Standing on
/// the line and jittering there counts nothing; each real crossing counts once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRule {
    /// Unique name of the rule; events carry it.
    pub name: String,
    /// Class names the rule applies to; empty (the default) means every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// A track is considered once its score has reached this (0..1); from then on it stays
    /// considered.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// Only tracks that carry this attribute are considered (an attribute a `[[secondary]]`
    /// stage gives tracks: `"plate"`, the plate stage's voted text). Like `min_confidence`,
    /// it is latched: a track is considered from the frame it first carries the attribute
    /// (and, with `attribute_matches`, a matching value) on. Events the rule emits carry the
    /// track's attributes. Unset (the default): no condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// With `attribute`: a regular expression (Rust `regex` syntax) the attribute's value
    /// must match somewhere, e.g. `"^KA01"` or `"^(AB12CDE|XY34ZZZ)$"`; unset: any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_matches: Option<String>,
    /// Name of the line (a key of `[lines]`).
    pub line: String,
    /// Which point of the box must cross the line.
    #[serde(default)]
    pub anchor: Anchor,
    /// Dead band on each side of the line, in pixels of the frame.
    #[serde(default = "default_hysteresis_px")]
    pub hysteresis_px: f32,
}

/// `type = "dwell"`: a track has been inside a zone for at least `seconds` of stream time
/// (PTS). Reported once per visit: the track must leave and re-enter to be reported again.
/// Inside and outside are decided as for zone rules (with the same hysteresis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DwellRule {
    /// Unique name of the rule; events carry it.
    pub name: String,
    /// Class names the rule applies to; empty (the default) means every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// A track is considered once its score has reached this (0..1); from then on it stays
    /// considered.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// Only tracks that carry this attribute are considered (an attribute a `[[secondary]]`
    /// stage gives tracks: `"plate"`, the plate stage's voted text). Like `min_confidence`,
    /// it is latched: a track is considered from the frame it first carries the attribute
    /// (and, with `attribute_matches`, a matching value) on. Events the rule emits carry the
    /// track's attributes. Unset (the default): no condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// With `attribute`: a regular expression (Rust `regex` syntax) the attribute's value
    /// must match somewhere, e.g. `"^KA01"` or `"^(AB12CDE|XY34ZZZ)$"`; unset: any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_matches: Option<String>,
    /// Name of the zone (a key of `[zones]`).
    pub zone: String,
    /// Time in the zone, in seconds of stream time, before the event fires (more than 0).
    pub seconds: f64,
    /// Which point of the box must be in the zone.
    #[serde(default)]
    pub anchor: Anchor,
    /// Dead band around the zone's edge, in pixels of the frame.
    #[serde(default = "default_hysteresis_px")]
    pub hysteresis_px: f32,
}

/// `type = "count"`: occupancy of a zone against a threshold. The level is `above` while at
/// least `threshold` matching tracks are inside, `below` otherwise; it starts `below` (no
/// event at start) and an event is emitted on each change of level that has held for
/// `seconds` of stream time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRule {
    /// Unique name of the rule; events carry it.
    pub name: String,
    /// Class names the rule applies to; empty (the default) means every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// A track is considered once its score has reached this (0..1); from then on it stays
    /// considered.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// Only tracks that carry this attribute are considered (an attribute a `[[secondary]]`
    /// stage gives tracks: `"plate"`, the plate stage's voted text). Like `min_confidence`,
    /// it is latched: a track is considered from the frame it first carries the attribute
    /// (and, with `attribute_matches`, a matching value) on. Events the rule emits carry the
    /// track's attributes. Unset (the default): no condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// With `attribute`: a regular expression (Rust `regex` syntax) the attribute's value
    /// must match somewhere, e.g. `"^KA01"` or `"^(AB12CDE|XY34ZZZ)$"`; unset: any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_matches: Option<String>,
    /// Name of the zone (a key of `[zones]`).
    pub zone: String,
    /// Occupancy at or above which the level is `above` (at least 1).
    pub threshold: u32,
    /// How long, in seconds of stream time, a new level must hold before it is reported
    /// (0 reports at once).
    #[serde(default = "default_count_hold_s")]
    pub seconds: f64,
    /// Which point of the box must be in the zone.
    #[serde(default)]
    pub anchor: Anchor,
    /// Dead band around the zone's edge, in pixels of the frame.
    #[serde(default = "default_hysteresis_px")]
    pub hysteresis_px: f32,
}

/// `type = "detected"`: a track of the classes appears. Fires once per track, after the track
/// has been present (and matched by a detection) for `min_frames` consecutive frames with a
/// score of at least `min_confidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectedRule {
    /// Unique name of the rule; events carry it.
    pub name: String,
    /// Class names the rule applies to; empty (the default) means every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Minimum score (0..1) of the track on each of the `min_frames` frames.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// Only tracks that carry this attribute are considered (an attribute a `[[secondary]]`
    /// stage gives tracks: `"plate"`, the plate stage's voted text). Like `min_confidence`,
    /// it is latched: a track is considered from the frame it first carries the attribute
    /// (and, with `attribute_matches`, a matching value) on. Events the rule emits carry the
    /// track's attributes. Unset (the default): no condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// With `attribute`: a regular expression (Rust `regex` syntax) the attribute's value
    /// must match somewhere, e.g. `"^KA01"` or `"^(AB12CDE|XY34ZZZ)$"`; unset: any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_matches: Option<String>,
    /// Consecutive frames the track must be seen before the event fires (at least 1). A
    /// frame on which the track is missing, predicted without a detection, or scores below
    /// `min_confidence` restarts the count.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        zones: BTreeMap<String, ZoneDef>,
        #[serde(default)]
        lines: BTreeMap<String, LineDef>,
        #[serde(default)]
        rules: Vec<RuleDef>,
    }

    #[test]
    fn toml_sections_parse_with_defaults() {
        let f: File = toml::from_str(
            r##"
            [zones.dock]
            points = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]
            color = "#ff8800"

            [lines.door]
            a = [10, 20]
            b = [300, 20]
            units = "pixels"
            in_label = "entering"

            [[rules]]
            type = "zone"
            name = "dock-people"
            zone = "dock"
            classes = ["person"]

            [[rules]]
            type = "count"
            name = "crowd"
            zone = "dock"
            threshold = 3

            [[rules]]
            type = "dwell"
            name = "loiter"
            zone = "dock"
            seconds = 30
            anchor = "center"

            [[rules]]
            type = "line"
            name = "door-count"
            line = "door"

            [[rules]]
            type = "detected"
            name = "any-car"
            classes = ["car"]
            min_frames = 3
            min_confidence = 0.6
            "##,
        )
        .unwrap();
        assert_eq!(f.zones["dock"].units, Units::Normalized);
        assert_eq!(f.zones["dock"].color.as_deref(), Some("#ff8800"));
        assert_eq!(f.lines["door"].units, Units::Pixels);
        assert_eq!(f.lines["door"].a, [10.0, 20.0]);
        let RuleDef::Zone(z) = &f.rules[0] else {
            panic!("{:?}", f.rules[0])
        };
        assert_eq!(z.anchor, Anchor::BottomCenter);
        assert_eq!(z.hysteresis_px, DEFAULT_HYSTERESIS_PX);
        assert_eq!(z.events, [ZoneTransition::Enter, ZoneTransition::Exit]);
        let RuleDef::Count(c) = &f.rules[1] else {
            panic!("{:?}", f.rules[1])
        };
        assert_eq!((c.threshold, c.seconds), (3, DEFAULT_COUNT_HOLD_S));
        let RuleDef::Dwell(d) = &f.rules[2] else {
            panic!("{:?}", f.rules[2])
        };
        assert_eq!((d.seconds, d.anchor), (30.0, Anchor::Center));
        assert_eq!(f.rules[3].line(), Some("door"));
        assert_eq!(f.rules[3].min_confidence(), 0.0);
        let RuleDef::Detected(x) = &f.rules[4] else {
            panic!("{:?}", f.rules[4])
        };
        assert_eq!((x.min_frames, x.min_confidence), (3, 0.6));
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let e = toml::from_str::<File>(
            "[[rules]]\ntype = \"zone\"\nname = \"a\"\nzone = \"z\"\nhysteresis = 3\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("hysteresis"), "{e}");
        let e =
            toml::from_str::<File>("[[rules]]\ntype = \"teleport\"\nname = \"a\"\n").unwrap_err();
        assert!(e.to_string().contains("teleport"), "{e}");
        let e = toml::from_str::<File>("[zones.a]\npoints = []\nunits = \"inches\"\n").unwrap_err();
        assert!(e.to_string().contains("inches"), "{e}");
    }

    #[test]
    fn serialize_round_trips() {
        let rule = RuleDef::Count(CountRule {
            name: "crowd".into(),
            classes: vec!["person".into()],
            min_confidence: 0.5,
            zone: "dock".into(),
            threshold: 2,
            seconds: 0.5,
            anchor: Anchor::Center,
            hysteresis_px: 2.0,
            attribute: Some("plate".into()),
            attribute_matches: Some("^KA".into()),
        });
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["type"], "count");
        assert_eq!(serde_json::from_value::<RuleDef>(json).unwrap(), rule);
    }

    #[test]
    fn json_schema_names_every_rule_type_and_documents_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(RuleDef)).unwrap();
        let text = schema.to_string();
        for ty in ["zone", "line", "dwell", "count", "detected"] {
            assert!(
                text.contains(&format!("\"enum\":[\"{ty}\"]")),
                "type {ty} missing"
            );
        }
        assert!(
            text.contains("Dead band around the zone's edge"),
            "field docs missing"
        );
        let zone = serde_json::to_value(schemars::schema_for!(ZoneDef)).unwrap();
        assert_eq!(zone["additionalProperties"], serde_json::json!(false));
        assert_eq!(zone["required"], serde_json::json!(["points"]));
    }

    #[test]
    fn anchors() {
        let b = sightline_core::BBox::new(10.0, 20.0, 30.0, 60.0);
        assert_eq!(
            Anchor::BottomCenter.of(&b),
            sightline_core::Point::new(20.0, 60.0)
        );
        assert_eq!(
            Anchor::Center.of(&b),
            sightline_core::Point::new(20.0, 40.0)
        );
        assert_eq!(
            Anchor::TopCenter.of(&b),
            sightline_core::Point::new(20.0, 20.0)
        );
    }
}
