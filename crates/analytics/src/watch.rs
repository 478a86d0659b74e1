//! The two state machines the rules are built on: *presence* in a zone (zone, dwell and count
//! rules) and *crossing* a line (line rules), each with a dead band so that a box jittering on
//! an edge changes nothing. A rule owns one watcher with its own class filter, confidence
//! and anchor; the engine also runs unfiltered watchers for zones and lines no rule uses, so
//! the overlay can show their occupancy and counters.

use crate::config::Anchor;
use crate::geometry::{Polygon, Region, Segment};
use crate::table::{TrackTable, Visit};
use regex::Regex;
use sightline_core::{BBox, ClassId, Direction, Point, Pts, Track, TrackAttributes, TrackId};

/// Compiles an `attribute_matches` pattern, with a bound on the compiled program's size so a
/// config cannot make the engine build a huge automaton.
pub(crate) fn compile_pattern(p: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(p).size_limit(1 << 20).build()
}

/// An `attribute` condition: the attribute's name and the pattern its value must match.
#[derive(Debug, Clone)]
pub(crate) struct AttributeCondition {
    name: String,
    /// `None`: any value.
    pattern: Option<Regex>,
}

impl AttributeCondition {
    /// `None` for a rule without `attribute`; an invalid pattern (refused by validation) is
    /// treated as matching nothing.
    pub(crate) fn new(name: Option<&str>, pattern: Option<&str>) -> Option<Self> {
        let name = name?.to_owned();
        let pattern = pattern.map(|p| compile_pattern(p).unwrap_or_else(|_| never()));
        Some(AttributeCondition { name, pattern })
    }

    fn holds(&self, track: TrackId, attrs: &TrackAttributes) -> bool {
        attrs
            .get(&self.name, track)
            .is_some_and(|v| self.pattern.as_ref().is_none_or(|p| p.is_match(v)))
    }
}

/// A pattern that matches no string.
fn never() -> Regex {
    Regex::new(r"[^\s\S]").expect("constant pattern")
}

/// Which tracks a rule considers.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// `None`: every class.
    classes: Option<Vec<ClassId>>,
    min_confidence: f32,
    attribute: Option<AttributeCondition>,
}

impl Filter {
    pub(crate) fn new(
        classes: Option<Vec<ClassId>>,
        min_confidence: f32,
        attribute: Option<AttributeCondition>,
    ) -> Self {
        Filter {
            classes,
            min_confidence,
            attribute,
        }
    }

    pub(crate) fn all() -> Self {
        Filter::new(None, 0.0, None)
    }

    pub(crate) fn class_ok(&self, c: ClassId) -> bool {
        self.classes.as_ref().is_none_or(|v| v.contains(&c))
    }

    /// The track's score reaches `min_confidence` and it carries the attribute, if the rule
    /// asks for one.
    pub(crate) fn qualifies(&self, t: &Track, attrs: &TrackAttributes) -> bool {
        t.score >= self.min_confidence
            && self.attribute.as_ref().is_none_or(|a| a.holds(t.id, attrs))
    }
}

/// What an event needs of a track, kept so a track that vanished can still be described.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub(crate) id: TrackId,
    pub(crate) class_id: ClassId,
    pub(crate) bbox: BBox,
    pub(crate) score: f32,
}

impl Seen {
    pub(crate) fn of(t: &Track) -> Self {
        Seen {
            id: t.id,
            class_id: t.class_id,
            bbox: t.bbox,
            score: t.score,
        }
    }
}

/// A change of a track's presence in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Enter,
    /// Went outside, or vanished while inside.
    Exit,
}

/// One track's presence in one zone.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    /// Its score has reached the rule's `min_confidence` (latched).
    qualified: bool,
    /// `None` until the anchor has been out of the dead band once.
    inside: Option<bool>,
    /// When it last entered.
    pub(crate) since: Pts,
    /// Dwell rules: already reported for this visit.
    pub(crate) dwell_fired: bool,
    pub(crate) last: Seen,
}

impl Presence {
    pub(crate) fn inside(&self) -> bool {
        self.inside == Some(true)
    }
}

/// Presence of matching tracks in one zone.
#[derive(Debug, Clone)]
pub(crate) struct ZoneWatch {
    pub(crate) zone: usize,
    filter: Filter,
    anchor: Anchor,
    hysteresis: f32,
    table: TrackTable<Presence>,
    occupancy: u32,
}

impl ZoneWatch {
    pub(crate) fn new(zone: usize, filter: Filter, anchor: Anchor, hysteresis: f32) -> Self {
        ZoneWatch {
            zone,
            filter,
            anchor,
            hysteresis,
            table: TrackTable::default(),
            occupancy: 0,
        }
    }

    /// Tracks inside after the last update.
    pub(crate) fn occupancy(&self) -> u32 {
        self.occupancy
    }

    /// Advances one frame. `f(presence, change)` is called, in track-id order, for every
    /// qualified track present on this frame (with its change, if any) and for every track
    /// that vanished while inside (with [`Change::Exit`]).
    pub(crate) fn update<'t>(
        &mut self,
        poly: &Polygon,
        pts: Pts,
        tracks: impl IntoIterator<Item = &'t Track>,
        attrs: &TrackAttributes,
        mut f: impl FnMut(&mut Presence, Option<Change>),
    ) {
        let (filter, anchor, h) = (&self.filter, self.anchor, self.hysteresis);
        let mut occupancy = 0u32;
        let tracks = tracks.into_iter().filter(|t| filter.class_ok(t.class_id));
        self.table.update(tracks, |visit| match visit {
            Visit::Seen(t, prev) => {
                let mut p = prev.unwrap_or(Presence {
                    qualified: false,
                    inside: None,
                    since: pts,
                    dwell_fired: false,
                    last: Seen::of(t),
                });
                p.last = Seen::of(t);
                if !p.qualified {
                    if !filter.qualifies(t, attrs) {
                        return Some(p);
                    }
                    p.qualified = true;
                }
                let change = match (p.inside, poly.classify(anchor.of(&t.bbox), h)) {
                    (Some(true), Region::Out) => {
                        p.inside = Some(false);
                        Some(Change::Exit)
                    }
                    (None | Some(false), Region::In) => {
                        p.inside = Some(true);
                        p.since = pts;
                        p.dwell_fired = false;
                        Some(Change::Enter)
                    }
                    (None, Region::Out) => {
                        p.inside = Some(false);
                        None
                    }
                    _ => None,
                };
                if p.inside() {
                    occupancy += 1;
                }
                f(&mut p, change);
                Some(p)
            }
            Visit::Gone(mut p) => {
                if p.inside() {
                    p.inside = Some(false);
                    f(&mut p, Some(Change::Exit));
                }
                None
            }
        });
        self.occupancy = occupancy;
    }
}

/// Side of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Right of A→B: the `in` side.
    Right,
    Left,
}

/// One track's progress across one line.
#[derive(Debug, Clone)]
struct Crossing {
    qualified: bool,
    /// Last side the anchor was on by more than the dead band.
    side: Option<Side>,
    /// The anchor's path has met the segment since `side` was last confirmed.
    met: bool,
    last_anchor: Option<Point>,
}

/// Crossings of one line by matching tracks, with running totals.
#[derive(Debug, Clone)]
pub(crate) struct LineWatch {
    pub(crate) line: usize,
    filter: Filter,
    anchor: Anchor,
    hysteresis: f32,
    table: TrackTable<Crossing>,
    pub(crate) in_total: u32,
    pub(crate) out_total: u32,
}

impl LineWatch {
    pub(crate) fn new(line: usize, filter: Filter, anchor: Anchor, hysteresis: f32) -> Self {
        LineWatch {
            line,
            filter,
            anchor,
            hysteresis,
            table: TrackTable::default(),
            in_total: 0,
            out_total: 0,
        }
    }

    /// Advances one frame; `f(track, direction, total)` is called, in track-id order, for each
    /// crossing completed on this frame, with the new total in that direction.
    pub(crate) fn update<'t>(
        &mut self,
        seg: &Segment,
        tracks: impl IntoIterator<Item = &'t Track>,
        attrs: &TrackAttributes,
        mut f: impl FnMut(&'t Track, Direction, u32),
    ) {
        let (filter, anchor, h) = (&self.filter, self.anchor, self.hysteresis);
        let (in_total, out_total) = (&mut self.in_total, &mut self.out_total);
        let tracks = tracks.into_iter().filter(|t| filter.class_ok(t.class_id));
        self.table.update(tracks, |visit| {
            let (t, prev) = match visit {
                Visit::Seen(t, prev) => (t, prev),
                Visit::Gone(..) => return None,
            };
            let mut c = prev.unwrap_or(Crossing {
                qualified: false,
                side: None,
                met: false,
                last_anchor: None,
            });
            if !c.qualified {
                if !filter.qualifies(t, attrs) {
                    return Some(c);
                }
                c.qualified = true;
            }
            let p = anchor.of(&t.bbox);
            if !(p.x.is_finite() && p.y.is_finite()) {
                return Some(c);
            }
            if let Some(q) = c.last_anchor
                && seg.meets(q, p)
            {
                c.met = true;
            }
            c.last_anchor = Some(p);
            let side = match seg.classify(p, h) {
                Region::In => Side::Right,
                Region::Out => Side::Left,
                Region::Band => return Some(c),
            };
            if let Some(old) = c.side
                && old != side
                && c.met
            {
                let (dir, total) = if side == Side::Right {
                    (Direction::In, &mut *in_total)
                } else {
                    (Direction::Out, &mut *out_total)
                };
                *total = total.saturating_add(1);
                f(t, dir, *total);
            }
            c.side = Some(side);
            c.met = false;
            Some(c)
        });
    }
}
