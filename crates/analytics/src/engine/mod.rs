//! The rule engine of one run: built from a validated config for one frame size, then fed the
//! tracker's output frame by frame. It owns every rule's short-term state (who is in which
//! zone, on which side of which line, since when) and turns changes into [`RuleEvent`]s in
//! stream time only, so replaying the same tracks gives the same events in the same order.

use crate::config::{
    Anchor, DEFAULT_HYSTERESIS_PX, LineDef, RuleDef, Units, ZoneDef, ZoneTransition,
};
use crate::geometry::{Polygon, Segment};
use crate::table::{TrackTable, Visit};
use crate::validate::validate;
use crate::watch::{AttributeCondition, Change, Filter, LineWatch, Seen, ZoneWatch};
use serde::Serialize;
use sightline_core::event::Level;
use sightline_core::{
    EventKind, FieldErrors, Labels, Point, Pts, RuleEvent, Track, TrackAttributes,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// A zone as drawn: pixel polygon, colour and current occupancy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneSnapshot {
    /// The zone's name (its key in `[zones]`).
    pub name: String,
    /// Vertices in pixels of the frame size the engine was built for.
    pub polygon: Vec<Point>,
    /// `"#rrggbb"` from the config, if any.
    pub color: Option<String>,
    /// Tracks inside now, as seen by the first zone, dwell or count rule on this zone (in rule
    /// order, with its class filter, anchor and hysteresis); for a zone no rule uses, every
    /// track, by its bottom-centre, with the default hysteresis.
    pub occupancy: u32,
}

/// A line as drawn: pixel end points, running totals and labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineSnapshot {
    /// The line's name (its key in `[lines]`).
    pub name: String,
    /// Start, in pixels.
    pub a: Point,
    /// End, in pixels.
    pub b: Point,
    /// Crossings in the `in` direction so far, as counted by the first line rule on this line
    /// (or, for a line no rule uses, by every track, by its bottom-centre).
    pub in_count: u32,
    /// Crossings in the `out` direction so far, counted like `in_count`.
    pub out_count: u32,
    /// Replaces `in` in the counter, from the config.
    pub in_label: Option<String>,
    /// Replaces `out` in the counter, from the config.
    pub out_label: Option<String>,
}

/// What the overlay needs to draw the rules' zones and lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RulesSnapshot {
    /// Zones, in name order.
    pub zones: Vec<ZoneSnapshot>,
    /// Lines, in name order.
    pub lines: Vec<LineSnapshot>,
}

#[derive(Debug)]
struct Zone {
    name: String,
    polygon: Polygon,
    color: Option<String>,
    /// The rule whose occupancy the zone shows, or its own watcher.
    shown: Shown<ZoneWatch>,
}

#[derive(Debug)]
struct Line {
    name: String,
    segment: Segment,
    in_label: Option<String>,
    out_label: Option<String>,
    shown: Shown<LineWatch>,
}

#[derive(Debug)]
enum Shown<W> {
    Rule(usize),
    Own(Box<W>),
}

#[derive(Debug)]
struct Rule {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Zone {
        watch: ZoneWatch,
        enter: bool,
        exit: bool,
    },
    Line {
        watch: LineWatch,
    },
    Dwell {
        watch: ZoneWatch,
        after: Duration,
    },
    Count {
        watch: ZoneWatch,
        threshold: u32,
        hold: Duration,
        level: Level,
        /// A level different from `level`, and since when it has held.
        pending: Option<(Level, Pts)>,
    },
    Detected {
        filter: Filter,
        min_frames: u32,
        table: TrackTable<Sighting>,
    },
}

impl Kind {
    /// The zone watcher of a zone, dwell or count rule.
    fn zone_watch(&self) -> Option<&ZoneWatch> {
        match self {
            Kind::Zone { watch, .. } | Kind::Dwell { watch, .. } | Kind::Count { watch, .. } => {
                Some(watch)
            }
            Kind::Line { .. } | Kind::Detected { .. } => None,
        }
    }

    /// The line watcher of a line rule.
    fn line_watch(&self) -> Option<&LineWatch> {
        match self {
            Kind::Line { watch } => Some(watch),
            _ => None,
        }
    }
}

/// A track's progress towards a `detected` event.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    consecutive: u32,
    fired: bool,
}

/// Rules with their per-run state, for one frame size. See the crate documentation.
#[derive(Debug)]
pub struct RuleEngine {
    labels: Labels,
    zones: Vec<Zone>,
    lines: Vec<Line>,
    rules: Vec<Rule>,
    /// Scratch: indices of this frame's tracks, by id.
    order: Vec<usize>,
}

fn to_pixels(p: [f32; 2], units: Units, w: f32, h: f32) -> Point {
    match units {
        Units::Normalized => Point::new(p[0] * w, p[1] * h),
        Units::Pixels => Point::new(p[0], p[1]),
    }
}

fn duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

impl RuleEngine {
    /// Validates the rules (class names against `labels`) and builds the engine for frames of
    /// `frame_width` × `frame_height` pixels, converting normalized coordinates to pixels.
    pub fn new(
        zones: &BTreeMap<String, ZoneDef>,
        lines: &BTreeMap<String, LineDef>,
        rules: &[RuleDef],
        frame_width: u32,
        frame_height: u32,
        labels: &Labels,
    ) -> Result<RuleEngine, FieldErrors> {
        let names: Vec<String> = labels.iter().map(str::to_owned).collect();
        let mut errors = match validate(zones, lines, rules, Some(&names)) {
            Ok(()) => FieldErrors::new(),
            Err(e) => e,
        };
        if frame_width == 0 || frame_height == 0 {
            errors.push(
                "(frame)",
                format!("frame size {frame_width}x{frame_height} has no pixels"),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (w, h) = (frame_width as f32, frame_height as f32);
        let zone_index: BTreeMap<&str, usize> = zones
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let line_index: BTreeMap<&str, usize> = lines
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();

        let mut built = Vec::with_capacity(rules.len());
        for def in rules {
            let classes = (!def.classes().is_empty()).then(|| {
                def.classes()
                    .iter()
                    .filter_map(|c| labels.id_of(c))
                    .collect::<Vec<_>>()
            });
            let (attribute, pattern) = def.attribute();
            let filter = Filter::new(
                classes,
                def.min_confidence(),
                AttributeCondition::new(attribute, pattern),
            );
            let zone_of = |name: &str| zone_index.get(name).copied().unwrap_or(0);
            let kind = match def {
                RuleDef::Zone(r) => Kind::Zone {
                    watch: ZoneWatch::new(zone_of(&r.zone), filter, r.anchor, r.hysteresis_px),
                    enter: r.events.contains(&ZoneTransition::Enter),
                    exit: r.events.contains(&ZoneTransition::Exit),
                },
                RuleDef::Line(r) => Kind::Line {
                    watch: LineWatch::new(
                        line_index.get(r.line.as_str()).copied().unwrap_or(0),
                        filter,
                        r.anchor,
                        r.hysteresis_px,
                    ),
                },
                RuleDef::Dwell(r) => Kind::Dwell {
                    watch: ZoneWatch::new(zone_of(&r.zone), filter, r.anchor, r.hysteresis_px),
                    after: duration(r.seconds),
                },
                RuleDef::Count(r) => Kind::Count {
                    watch: ZoneWatch::new(zone_of(&r.zone), filter, r.anchor, r.hysteresis_px),
                    threshold: r.threshold,
                    hold: duration(r.seconds),
                    level: Level::Below,
                    pending: None,
                },
                RuleDef::Detected(r) => Kind::Detected {
                    filter,
                    min_frames: r.min_frames,
                    table: TrackTable::default(),
                },
            };
            built.push(Rule {
                name: def.name().to_owned(),
                kind,
            });
        }

        let zones = zones
            .iter()
            .enumerate()
            .map(|(i, (name, def))| {
                let pts: Vec<Point> = def
                    .points
                    .iter()
                    .map(|p| to_pixels(*p, def.units, w, h))
                    .collect();
                let polygon = Polygon::new(pts);
                if !polygon.overlaps_frame(w, h) {
                    tracing::warn!(
                        zone = %name,
                        frame_width,
                        frame_height,
                        "zone lies outside the frame; nothing can enter it"
                    );
                }
                let rule = built
                    .iter()
                    .position(|r| r.kind.zone_watch().is_some_and(|w| w.zone == i));
                let shown = match rule {
                    Some(r) => Shown::Rule(r),
                    None => Shown::Own(Box::new(ZoneWatch::new(
                        i,
                        Filter::all(),
                        Anchor::BottomCenter,
                        DEFAULT_HYSTERESIS_PX,
                    ))),
                };
                Zone {
                    name: name.clone(),
                    polygon,
                    color: def.color.clone(),
                    shown,
                }
            })
            .collect();
        let lines = lines
            .iter()
            .enumerate()
            .map(|(i, (name, def))| {
                let rule = built
                    .iter()
                    .position(|r| r.kind.line_watch().is_some_and(|w| w.line == i));
                let shown = match rule {
                    Some(r) => Shown::Rule(r),
                    None => Shown::Own(Box::new(LineWatch::new(
                        i,
                        Filter::all(),
                        Anchor::BottomCenter,
                        DEFAULT_HYSTERESIS_PX,
                    ))),
                };
                Line {
                    name: name.clone(),
                    segment: Segment::new(
                        to_pixels(def.a, def.units, w, h),
                        to_pixels(def.b, def.units, w, h),
                    ),
                    in_label: def.in_label.clone(),
                    out_label: def.out_label.clone(),
                    shown,
                }
            })
            .collect();
        tracing::debug!(
            rules = built.len(),
            frame_width,
            frame_height,
            "rule engine built"
        );
        Ok(RuleEngine {
            labels: labels.clone(),
            zones,
            lines,
            rules: built,
            order: Vec::new(),
        })
    }

    /// Advances one frame: `tracks` is the tracker's output for the frame at `pts` (any order;
    /// a track id listed twice counts once, a track with a non-finite box counts as absent).
    /// Returns the events of this frame, by rule order, then by track id.
    pub fn process(&mut self, pts: Pts, tracks: &[Track]) -> Vec<RuleEvent> {
        self.process_with(pts, tracks, &TrackAttributes::default())
    }

    /// [`RuleEngine::process`] with the attributes secondary stages have given the tracks so
    /// far: rules with an `attribute` condition consider only tracks that carry it, and track
    /// events carry the track's attributes.
    pub fn process_with(
        &mut self,
        pts: Pts,
        tracks: &[Track],
        attrs: &TrackAttributes,
    ) -> Vec<RuleEvent> {
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend((0..tracks.len()).filter(|&i| tracks[i].bbox.is_finite()));
        order.sort_unstable_by_key(|&i| (tracks[i].id, i));
        order.dedup_by_key(|i| tracks[*i].id);
        let current = || order.iter().map(|&i| &tracks[i]);

        let mut events = Vec::new();
        let labels = &self.labels;
        for rule in &mut self.rules {
            let name = rule.name.as_str();
            match &mut rule.kind {
                Kind::Zone { watch, enter, exit } => {
                    let zone = &self.zones[watch.zone];
                    watch.update(&zone.polygon, pts, current(), attrs, |p, change| {
                        let kind = match change {
                            Some(Change::Enter) if *enter => EventKind::ZoneEnter,
                            Some(Change::Exit) if *exit => EventKind::ZoneExit,
                            _ => return,
                        };
                        let mut e = track_event(kind, name, pts, &p.last, labels, attrs);
                        e.zone = Some(zone.name.clone());
                        events.push(e);
                    });
                }
                Kind::Dwell { watch, after } => {
                    let zone = &self.zones[watch.zone];
                    watch.update(&zone.polygon, pts, current(), attrs, |p, _| {
                        if !p.inside() || p.dwell_fired {
                            return;
                        }
                        let stayed = pts.since(p.since);
                        if stayed >= *after {
                            p.dwell_fired = true;
                            let mut e =
                                track_event(EventKind::Dwell, name, pts, &p.last, labels, attrs);
                            e.zone = Some(zone.name.clone());
                            e.dwell_s = Some(stayed.as_secs_f64());
                            events.push(e);
                        }
                    });
                }
                Kind::Count {
                    watch,
                    threshold,
                    hold,
                    level,
                    pending,
                } => {
                    let zone = &self.zones[watch.zone];
                    watch.update(&zone.polygon, pts, current(), attrs, |_, _| {});
                    let n = watch.occupancy();
                    let now = if n >= *threshold {
                        Level::Above
                    } else {
                        Level::Below
                    };
                    if now == *level {
                        *pending = None;
                        continue;
                    }
                    let since = match *pending {
                        Some((l, since)) if l == now => since,
                        _ => {
                            *pending = Some((now, pts));
                            pts
                        }
                    };
                    if pts.since(since) >= *hold {
                        *level = now;
                        *pending = None;
                        let mut e = RuleEvent::new(EventKind::Count, name, pts);
                        e.zone = Some(zone.name.clone());
                        e.count = Some(n);
                        e.level = Some(now);
                        events.push(e);
                    }
                }
                Kind::Line { watch } => {
                    let line = &self.lines[watch.line];
                    watch.update(&line.segment, current(), attrs, |t, dir, total| {
                        let mut e = track_event(
                            EventKind::LineCross,
                            name,
                            pts,
                            &Seen::of(t),
                            labels,
                            attrs,
                        );
                        e.line = Some(line.name.clone());
                        e.direction = Some(dir);
                        e.count = Some(total);
                        events.push(e);
                    });
                }
                Kind::Detected {
                    filter,
                    min_frames,
                    table,
                } => {
                    let tracks = current().filter(|t| filter.class_ok(t.class_id));
                    table.update(tracks, |visit| {
                        let Visit::Seen(t, prev) = visit else {
                            return None;
                        };
                        let mut s = prev.unwrap_or(Sighting {
                            consecutive: 0,
                            fired: false,
                        });
                        if s.fired {
                            return Some(s);
                        }
                        if t.misses == 0 && filter.qualifies(t, attrs) {
                            s.consecutive += 1;
                        } else {
                            s.consecutive = 0;
                        }
                        if s.consecutive >= *min_frames {
                            s.fired = true;
                            events.push(track_event(
                                EventKind::Detected,
                                name,
                                pts,
                                &Seen::of(t),
                                labels,
                                attrs,
                            ));
                        }
                        Some(s)
                    });
                }
            }
        }
        for zone in &mut self.zones {
            if let Shown::Own(watch) = &mut zone.shown {
                watch.update(&zone.polygon, pts, current(), attrs, |_, _| {});
            }
        }
        for line in &mut self.lines {
            if let Shown::Own(watch) = &mut line.shown {
                watch.update(&line.segment, current(), attrs, |_, _, _| {});
            }
        }
        self.order = order;
        events
    }

    /// Zones and lines in pixels with their current occupancy and totals, for drawing.
    pub fn snapshot(&self) -> RulesSnapshot {
        let zones = self
            .zones
            .iter()
            .map(|z| ZoneSnapshot {
                name: z.name.clone(),
                polygon: z.polygon.points().to_vec(),
                color: z.color.clone(),
                occupancy: match &z.shown {
                    Shown::Own(w) => w.occupancy(),
                    Shown::Rule(r) => self.rules[*r]
                        .kind
                        .zone_watch()
                        .map_or(0, ZoneWatch::occupancy),
                },
            })
            .collect();
        let lines = self
            .lines
            .iter()
            .map(|l| {
                let watch = match &l.shown {
                    Shown::Own(w) => Some(&**w),
                    Shown::Rule(r) => self.rules[*r].kind.line_watch(),
                };
                LineSnapshot {
                    name: l.name.clone(),
                    a: l.segment.a,
                    b: l.segment.b,
                    in_count: watch.map_or(0, |w| w.in_total),
                    out_count: watch.map_or(0, |w| w.out_total),
                    in_label: l.in_label.clone(),
                    out_label: l.out_label.clone(),
                }
            })
            .collect();
        RulesSnapshot { zones, lines }
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

fn track_event(
    kind: EventKind,
    rule: &str,
    pts: Pts,
    s: &Seen,
    labels: &Labels,
    attrs: &TrackAttributes,
) -> RuleEvent {
    let mut e = RuleEvent::new(kind, rule, pts);
    e.attributes = attrs.of(s.id);
    e.track_id = Some(s.id);
    e.class = Some(labels.name(s.class_id).into_owned());
    e.confidence = Some(s.score);
    e.bbox = Some(s.bbox);
    e
}

#[cfg(test)]
mod tests;
