//! What one frame's overlay shows, as plain borrowed data. The engine builds a [`Scene`]
//! from tracker and rule state; keeping these types here (rather than taking tracking or
//! analytics types) keeps the overlay independent of how those results were produced.

use crate::color::Color;
use sightline_core::{BBox, ClassId, Point, TrackId};

/// Everything drawn on one frame. `Scene::default()` is empty; fill the parts you have.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scene<'a> {
    /// Detected or tracked objects.
    pub objects: &'a [SceneObject<'a>],
    /// Zones, drawn under everything else.
    pub zones: &'a [SceneZone<'a>],
    /// Counting lines.
    pub lines: &'a [SceneLine<'a>],
    /// Lines of the status corner, top first (`"12.3 fps"`, `"running"`).
    pub status: &'a [&'a str],
    /// Shown at the top right (`"2024-05-01 12:00:03"`).
    pub timestamp: Option<&'a str>,
}

/// One object: a box with its class, score and (when tracked) track id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject<'a> {
    /// Box in frame pixels; non-finite boxes are skipped.
    pub bbox: BBox,
    /// Picks the palette colour (unless the style overrides the class by name).
    pub class_id: ClassId,
    /// Shown in the label.
    pub class_name: &'a str,
    /// Detection score, 0–1.
    pub score: f32,
    /// Shown as `#12` when the object is tracked.
    pub track_id: Option<TrackId>,
}

/// A zone: a polygon with its name and, optionally, how many objects are in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneZone<'a> {
    /// Shown in the zone's label.
    pub name: &'a str,
    /// Vertices in frame pixels, in order; zones with a non-finite vertex are skipped.
    pub polygon: &'a [Point],
    /// Default: a fixed palette colour chosen by the zone's position in the scene.
    pub color: Option<Color>,
    /// Occupancy, shown after the name (`dock: 3`).
    pub count: Option<u32>,
}

/// A counting line from `a` to `b`. Crossing from the left of A→B to its right (y down) is
/// `in`, as in [`sightline_core::Direction`]; the overlay's arrow points that way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneLine<'a> {
    /// Shown before the counters.
    pub name: &'a str,
    /// Start of the line, in frame pixels.
    pub a: Point,
    /// End of the line, in frame pixels.
    pub b: Point,
    /// Crossings in the `in` direction so far.
    pub in_count: u32,
    /// Crossings in the `out` direction so far.
    pub out_count: u32,
    /// Replaces the word `in` in the counters (`entering: 4`).
    pub in_label: Option<&'a str>,
    /// Replaces the word `out` in the counters.
    pub out_label: Option<&'a str>,
    /// Default: a fixed palette colour chosen by the line's position in the scene.
    pub color: Option<Color>,
}
