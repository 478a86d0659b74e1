//! One validation pass over zones, lines and rules that reports *every* problem with the path
//! of the field it concerns (`rules[2].zone: unknown zone "dock"`), so a customer can fix a
//! config in one go. The config crate runs it when a config is submitted; the rule engine runs
//! it again before it builds, so it never executes a config that was not checked.

use crate::config::{LineDef, RuleDef, Units, ZoneDef};
use crate::geometry;
use sightline_core::{FieldErrors, Point};
use std::collections::BTreeMap;

/// Most vertices a zone may have (validation is quadratic in it).
pub const MAX_ZONE_POINTS: usize = 1000;
/// Longest zone, line or rule name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest `in_label` / `out_label`, in characters.
pub const MAX_LABEL_CHARS: usize = 32;
/// How many of the model's class names an "unknown class" message lists.
const LISTED_CLASSES: usize = 12;

/// Checks zones, lines and rules, and the rules' references to zones, lines and (when
/// `class_names`, the model's classes, is given) classes. Returns every problem found.
pub fn validate(
    zones: &BTreeMap<String, ZoneDef>,
    lines: &BTreeMap<String, LineDef>,
    rules: &[RuleDef],
    class_names: Option<&[String]>,
) -> Result<(), FieldErrors> {
    let mut e = FieldErrors::new();
    for (name, zone) in zones {
        validate_zone(&format!("zones.{name}"), name, zone, &mut e);
    }
    for (name, line) in lines {
        validate_line(&format!("lines.{name}"), name, line, &mut e);
    }
    let mut first_with_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        let name = rule.name();
        check_name(&format!("{path}.name"), name, &mut e);
        if let Some(&first) = first_with_name.get(name) {
            e.push(
                format!("{path}.name"),
                format!("duplicate rule name {name:?} (also rules[{first}])"),
            );
        } else {
            first_with_name.insert(name, i);
        }
        validate_rule(&path, rule, zones, lines, class_names, &mut e);
    }
    e.into_result(())
}

fn check_name(path: &str, name: &str, e: &mut FieldErrors) {
    if name.trim().is_empty() {
        e.push(path, "must not be empty");
    } else if name.chars().count() > MAX_NAME_CHARS {
        e.push(path, format!("must be at most {MAX_NAME_CHARS} characters"));
    } else if name.chars().any(char::is_control) {
        e.push(path, "must not contain control characters");
    }
}

fn check_point(path: &str, p: [f32; 2], units: Units, e: &mut FieldErrors) {
    if !(p[0].is_finite() && p[1].is_finite()) {
        e.push(path, "coordinates must be finite numbers");
        return;
    }
    match units {
        Units::Normalized => {
            if !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]) {
                e.push(
                    path,
                    "normalized coordinates must be within 0..1 (use units = \"pixels\" for pixels)",
                );
            }
        }
        Units::Pixels => {
            if p[0] < 0.0 || p[1] < 0.0 {
                e.push(path, "pixel coordinates must not be negative");
            }
        }
    }
}

fn check_color(path: &str, color: &str, e: &mut FieldErrors) {
    let ok = color.len() == 7
        && color.starts_with('#')
        && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        e.push(path, format!("colour {color:?} must be \"#rrggbb\""));
    }
}

fn validate_zone(path: &str, name: &str, zone: &ZoneDef, e: &mut FieldErrors) {
    check_name(path, name, e);
    let n = zone.points.len();
    if n < 3 {
        e.push(
            format!("{path}.points"),
            format!("polygon needs >= 3 points (has {n})"),
        );
    } else if n > MAX_ZONE_POINTS {
        e.push(
            format!("{path}.points"),
            format!("polygon has {n} points; at most {MAX_ZONE_POINTS} are allowed"),
        );
    }
    let errors_before = e.len();
    for (i, p) in zone.points.iter().enumerate() {
        check_point(&format!("{path}.points[{i}]"), *p, zone.units, e);
    }
    if let Some(c) = &zone.color {
        check_color(&format!("{path}.color"), c, e);
    }
    if e.len() > errors_before || !(3..=MAX_ZONE_POINTS).contains(&n) {
        return;
    }
    // Shape checks, only on finite, in-range points.
    let mut pts: Vec<Point> = zone.points.iter().map(|p| Point::new(p[0], p[1])).collect();
    pts.dedup();
    while pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    let crossing = if pts.len() >= 3 {
        geometry::self_intersection(&pts)
    } else {
        None
    };
    if let Some((i, j)) = crossing {
        e.push(
            format!("{path}.points"),
            format!(
                "polygon crosses itself (edges {i}-{} and {j}-{}); list the points in order around the zone",
                (i + 1) % pts.len(),
                (j + 1) % pts.len()
            ),
        );
    } else if pts.len() < 3 || geometry::doubled_area(&pts) == 0.0 {
        e.push(
            format!("{path}.points"),
            "polygon has no area (its points are all on one line)",
        );
    }
}

fn validate_line(path: &str, name: &str, line: &LineDef, e: &mut FieldErrors) {
    check_name(path, name, e);
    let before = e.len();
    check_point(&format!("{path}.a"), line.a, line.units, e);
    check_point(&format!("{path}.b"), line.b, line.units, e);
    if e.len() == before && line.a == line.b {
        e.push(
            format!("{path}.b"),
            "must differ from a (the line has no length)",
        );
    }
    for (field, label) in [("in_label", &line.in_label), ("out_label", &line.out_label)] {
        if let Some(l) = label {
            let p = format!("{path}.{field}");
            if l.trim().is_empty() {
                e.push(p, "must not be empty (leave it out for the default)");
            } else if l.chars().count() > MAX_LABEL_CHARS {
                e.push(p, format!("must be at most {MAX_LABEL_CHARS} characters"));
            }
        }
    }
}

fn known(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.map(|n| format!("{:?}", n.as_ref())).collect();
    if v.is_empty() {
        "none are defined".into()
    } else {
        format!("defined: {}", v.join(", "))
    }
}

/// Longest `attribute_matches` pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;

fn validate_attribute(path: &str, rule: &RuleDef, e: &mut FieldErrors) {
    let (attribute, matches) = rule.attribute();
    if let Some(a) = attribute
        && (a.is_empty() || !a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        e.push(
            format!("{path}.attribute"),
            format!("{a:?} is not an attribute name (lower-case letters and _, e.g. \"plate\")"),
        );
    }
    let Some(m) = matches else { return };
    let p = format!("{path}.attribute_matches");
    if attribute.is_none() {
        e.push(
            p,
            "needs `attribute` (the attribute whose value it matches)",
        );
    } else if m.len() > MAX_PATTERN_BYTES {
        e.push(p, format!("must be at most {MAX_PATTERN_BYTES} bytes"));
    } else if let Err(err) = crate::watch::compile_pattern(m) {
        e.push(p, format!("not a valid regular expression: {err}"));
    }
}

fn validate_rule(
    path: &str,
    rule: &RuleDef,
    zones: &BTreeMap<String, ZoneDef>,
    lines: &BTreeMap<String, LineDef>,
    class_names: Option<&[String]>,
    e: &mut FieldErrors,
) {
    if let Some(z) = rule.zone()
        && !zones.contains_key(z)
    {
        e.push(
            format!("{path}.zone"),
            format!("unknown zone {z:?} ({})", known(zones.keys())),
        );
    }
    if let Some(l) = rule.line()
        && !lines.contains_key(l)
    {
        e.push(
            format!("{path}.line"),
            format!("unknown line {l:?} ({})", known(lines.keys())),
        );
    }
    for (j, class) in rule.classes().iter().enumerate() {
        let p = format!("{path}.classes[{j}]");
        match class_names {
            _ if class.trim().is_empty() => e.push(p, "must not be empty"),
            Some(names) if !names.iter().any(|n| n == class) => {
                e.push(p, unknown_class(class, names))
            }
            _ => {}
        }
    }
    let mc = rule.min_confidence();
    if !(0.0..=1.0).contains(&mc) {
        e.push(format!("{path}.min_confidence"), "must be within 0..1");
    }
    validate_attribute(path, rule, e);
    let hysteresis = match rule {
        RuleDef::Zone(r) => {
            if r.events.is_empty() {
                e.push(
                    format!("{path}.events"),
                    "must list at least one of \"enter\", \"exit\"",
                );
            }
            Some(r.hysteresis_px)
        }
        RuleDef::Line(r) => Some(r.hysteresis_px),
        RuleDef::Dwell(r) => {
            if !(r.seconds.is_finite() && r.seconds > 0.0) {
                e.push(
                    format!("{path}.seconds"),
                    "must be a positive number of seconds",
                );
            }
            Some(r.hysteresis_px)
        }
        RuleDef::Count(r) => {
            if r.threshold == 0 {
                e.push(
                    format!("{path}.threshold"),
                    "must be at least 1 (0 would always be above)",
                );
            }
            if !(r.seconds.is_finite() && r.seconds >= 0.0) {
                e.push(
                    format!("{path}.seconds"),
                    "must be zero or a positive number of seconds",
                );
            }
            Some(r.hysteresis_px)
        }
        RuleDef::Detected(r) => {
            if r.min_frames == 0 {
                e.push(format!("{path}.min_frames"), "must be at least 1");
            }
            None
        }
    };
    if let Some(h) = hysteresis
        && !(h.is_finite() && h >= 0.0)
    {
        e.push(
            format!("{path}.hysteresis_px"),
            "must be zero or a positive number of pixels",
        );
    }
}

fn unknown_class(class: &str, names: &[String]) -> String {
    let mut listed: Vec<&str> = names
        .iter()
        .take(LISTED_CLASSES)
        .map(String::as_str)
        .collect();
    if names.len() > LISTED_CLASSES {
        listed.push("…");
    }
    let mut msg = if names.is_empty() {
        format!("unknown class {class:?}; the model has no class names")
    } else {
        format!(
            "unknown class {class:?}; the model's classes are: {}",
            listed.join(", ")
        )
    };
    if names.len() > LISTED_CLASSES {
        msg.push_str(&format!(" ({} in all)", names.len()));
    }
    if let Some(best) = closest(class, names) {
        msg.push_str(&format!("; did you mean {best:?}?"));
    }
    msg
}

/// The class name nearest to `s` by edit distance, if it is close enough to be a typo.
fn closest<'a>(s: &str, names: &'a [String]) -> Option<&'a str> {
    let s = s.to_lowercase();
    names
        .iter()
        .map(|n| (edit_distance(&s, &n.to_lowercase()), n.as_str()))
        .filter(|(d, n)| *d <= 2.max(n.chars().count() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;

    fn zone(points: &[[f32; 2]]) -> ZoneDef {
        ZoneDef {
            points: points.to_vec(),
            units: Units::Normalized,
            color: None,
        }
    }

    fn zone_rule(name: &str, zone: &str) -> RuleDef {
        RuleDef::Zone(ZoneRule {
            name: name.into(),
            classes: vec![],
            min_confidence: 0.0,
            attribute: None,
            attribute_matches: None,
            zone: zone.into(),
            anchor: Anchor::BottomCenter,
            hysteresis_px: DEFAULT_HYSTERESIS_PX,
            events: vec![ZoneTransition::Enter, ZoneTransition::Exit],
        })
    }

    fn messages(r: Result<(), FieldErrors>) -> Vec<String> {
        r.unwrap_err().iter().map(ToString::to_string).collect()
    }

    const SQUARE: [[f32; 2]; 4] = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];

    #[test]
    fn a_valid_config_passes() {
        let zones = BTreeMap::from([("dock".to_string(), zone(&SQUARE))]);
        let lines = BTreeMap::from([(
            "door".to_string(),
            LineDef {
                a: [0.0, 0.5],
                b: [1.0, 0.5],
                units: Units::Normalized,
                in_label: Some("in".into()),
                out_label: None,
            },
        )]);
        let rules = vec![zone_rule("a", "dock")];
        let names = vec!["person".to_string()];
        validate(&zones, &lines, &rules, Some(&names)).unwrap();
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let zones = BTreeMap::from([
            ("dock".to_string(), zone(&[[0.1, 0.1], [0.2, 0.2]])),
            (
                "lawn".to_string(),
                zone(&[[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]]),
            ),
            (
                "bow".to_string(),
                zone(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
            ),
            (
                "flat".to_string(),
                zone(&[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]),
            ),
            (
                "tinted".to_string(),
                ZoneDef {
                    color: Some("orange".into()),
                    ..zone(&SQUARE)
                },
            ),
        ]);
        let lines = BTreeMap::from([(
            "dot".to_string(),
            LineDef {
                a: [5.0, 5.0],
                b: [5.0, 5.0],
                units: Units::Pixels,
                in_label: Some(" ".into()),
                out_label: None,
            },
        )]);
        let mut dwell = match zone_rule("d", "bow") {
            RuleDef::Zone(z) => z,
            _ => unreachable!(),
        };
        dwell.events.clear();
        dwell.hysteresis_px = -1.0;
        let rules = vec![
            RuleDef::Detected(DetectedRule {
                name: "seen".into(),
                classes: vec!["person".into(), "persn".into()],
                min_confidence: 1.5,
                attribute: None,
                attribute_matches: None,
                min_frames: 0,
            }),
            zone_rule("x", "nowhere"),
            zone_rule("x", "dock"),
            RuleDef::Zone(dwell),
            RuleDef::Dwell(DwellRule {
                name: "loiter".into(),
                classes: vec![],
                min_confidence: 0.0,
                attribute: None,
                attribute_matches: None,
                zone: "dock".into(),
                seconds: 0.0,
                anchor: Anchor::Center,
                hysteresis_px: 0.0,
            }),
            RuleDef::Count(CountRule {
                name: "crowd".into(),
                classes: vec![],
                min_confidence: 0.0,
                attribute: None,
                attribute_matches: None,
                zone: "dock".into(),
                threshold: 0,
                seconds: f64::NAN,
                anchor: Anchor::Center,
                hysteresis_px: 0.0,
            }),
            RuleDef::Line(LineRule {
                name: "".into(),
                classes: vec![],
                min_confidence: 0.0,
                attribute: None,
                attribute_matches: None,
                line: "gate".into(),
                anchor: Anchor::Center,
                hysteresis_px: 0.0,
            }),
        ];
        let names: Vec<String> = ["person", "bicycle", "car"].map(String::from).to_vec();
        let got = messages(validate(&zones, &lines, &rules, Some(&names)));
        let expected = [
            "zones.bow.points: polygon crosses itself (edges 0-1 and 2-3); list the points in order around the zone",
            "zones.dock.points: polygon needs >= 3 points (has 2)",
            "zones.flat.points: polygon has no area (its points are all on one line)",
            "zones.lawn.points[1]: normalized coordinates must be within 0..1 (use units = \"pixels\" for pixels)",
            "zones.tinted.color: colour \"orange\" must be \"#rrggbb\"",
            "lines.dot.b: must differ from a (the line has no length)",
            "lines.dot.in_label: must not be empty (leave it out for the default)",
            "rules[0].classes[1]: unknown class \"persn\"; the model's classes are: person, bicycle, car; did you mean \"person\"?",
            "rules[0].min_confidence: must be within 0..1",
            "rules[0].min_frames: must be at least 1",
            "rules[1].zone: unknown zone \"nowhere\" (defined: \"bow\", \"dock\", \"flat\", \"lawn\", \"tinted\")",
            "rules[2].name: duplicate rule name \"x\" (also rules[1])",
            "rules[3].events: must list at least one of \"enter\", \"exit\"",
            "rules[3].hysteresis_px: must be zero or a positive number of pixels",
            "rules[4].seconds: must be a positive number of seconds",
            "rules[5].threshold: must be at least 1 (0 would always be above)",
            "rules[5].seconds: must be zero or a positive number of seconds",
            "rules[6].name: must not be empty",
            "rules[6].line: unknown line \"gate\" (defined: \"dot\")",
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn classes_are_only_checked_against_a_model() {
        let zones = BTreeMap::from([("dock".to_string(), zone(&SQUARE))]);
        let mut rule = match zone_rule("a", "dock") {
            RuleDef::Zone(z) => z,
            _ => unreachable!(),
        };
        rule.classes = vec!["unicorn".into()];
        let rules = vec![RuleDef::Zone(rule)];
        validate(&zones, &BTreeMap::new(), &rules, None).unwrap();
        let many: Vec<String> = (0..20).map(|i| format!("class{i}")).collect();
        let got = messages(validate(&zones, &BTreeMap::new(), &rules, Some(&many)));
        assert_eq!(
            got,
            [
                "rules[0].classes[0]: unknown class \"unicorn\"; the model's classes are: class0, \
              class1, class2, class3, class4, class5, class6, class7, class8, class9, class10, \
              class11, … (20 in all)"
            ]
        );
    }

    #[test]
    fn pixel_zones_and_closing_points() {
        let mut z = zone(&[[10.0, 10.0], [500.0, 10.0], [500.0, 400.0], [10.0, 10.0]]);
        z.units = Units::Pixels;
        let zones = BTreeMap::from([("a".to_string(), z.clone())]);
        validate(&zones, &BTreeMap::new(), &[], None).unwrap();
        z.points[1] = [-1.0, f32::NAN];
        let zones = BTreeMap::from([("a".to_string(), z)]);
        assert_eq!(
            messages(validate(&zones, &BTreeMap::new(), &[], None)),
            ["zones.a.points[1]: coordinates must be finite numbers"]
        );
    }

    /// The example in the README parses and is valid.
    #[test]
    fn readme_example_is_valid() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            zones: BTreeMap<String, ZoneDef>,
            lines: BTreeMap<String, LineDef>,
            rules: Vec<RuleDef>,
        }
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let f: File = toml::from_str(&readme[start..end]).unwrap();
        assert_eq!(f.rules.len(), 5);
        let names: Vec<String> = ["person", "bicycle", "car"].map(String::from).to_vec();
        validate(&f.zones, &f.lines, &f.rules, Some(&names)).unwrap();
    }

    #[test]
    fn typo_suggestions() {
        let names: Vec<String> = ["person", "car", "truck"].map(String::from).to_vec();
        assert_eq!(closest("Persn", &names), Some("person"));
        assert_eq!(closest("truk", &names), Some("truck"));
        assert_eq!(closest("zebra", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn attribute_conditions_are_checked() {
        let zones = BTreeMap::from([("dock".to_string(), zone(&SQUARE))]);
        let with = |a: Option<&str>, m: Option<&str>| {
            let RuleDef::Zone(mut r) = zone_rule("a", "dock") else {
                unreachable!()
            };
            r.attribute = a.map(str::to_owned);
            r.attribute_matches = m.map(str::to_owned);
            vec![RuleDef::Zone(r)]
        };
        let ok = with(Some("plate"), Some("^KA01[A-Z]{2}"));
        validate(&zones, &BTreeMap::new(), &ok, None).unwrap();
        let cases = [
            (
                with(Some("Plate!"), None),
                "rules[0].attribute: \"Plate!\" is not an attribute name",
            ),
            (with(Some(""), None), "rules[0].attribute: \"\" is not"),
            (
                with(None, Some("^KA")),
                "rules[0].attribute_matches: needs `attribute`",
            ),
            (
                with(Some("plate"), Some("KA(01")),
                "rules[0].attribute_matches: not a valid regular expression",
            ),
            (
                with(Some("plate"), Some(&"a".repeat(300))),
                "rules[0].attribute_matches: must be at most 256 bytes",
            ),
        ];
        for (rules, want) in cases {
            let got = messages(validate(&zones, &BTreeMap::new(), &rules, None));
            assert!(got.iter().any(|m| m.starts_with(want)), "{want}: {got:?}");
        }
    }
}
