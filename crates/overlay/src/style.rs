//! The drawing style: the `[draw]` section of a pipeline config. It lives here, beside the
//! code that executes it, and the config crate composes it into the file format.
//!
//! Colours stay strings in the file so that one validation pass can report every bad value
//! with its path; [`Painter`](crate::Painter) resolves them once when the style is installed.

use crate::color::Color;
use serde::{Deserialize, Serialize};
use sightline_core::FieldErrors;
use std::collections::BTreeMap;

/// Default box outline thickness, in pixels.
pub const DEFAULT_BOX_THICKNESS: u32 = 2;
/// Default label font size (glyph height), in pixels.
pub const DEFAULT_FONT_SIZE: u32 = 14;
/// Default opacity of zone fills.
pub const DEFAULT_ZONE_FILL_OPACITY: f32 = 0.25;
/// Accepted box thicknesses.
pub const BOX_THICKNESS_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
/// Accepted label font sizes.
pub const FONT_SIZE_RANGE: std::ops::RangeInclusive<u32> = 8..=96;

/// How results are drawn onto the republished stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DrawStyle {
    /// Thickness of box outlines in pixels (1–16). Counting lines are drawn one pixel thicker.
    pub box_thickness: u32,
    /// Height of label text in pixels (8–96); the status corner uses the same size.
    pub font_size: u32,
    /// Draw a label (class name, and score / track id when enabled) above each box.
    pub show_labels: bool,
    /// Include the detection score in labels (`person 0.87`).
    pub show_scores: bool,
    /// Include the track id in labels (`#12`).
    pub show_track_ids: bool,
    /// Draw zones: translucent fill, outline, name and occupancy.
    pub show_zones: bool,
    /// Draw counting lines with their `in` direction arrow and counters.
    pub show_lines: bool,
    /// Draw the status corner (fps, run state…) at the top left.
    pub show_status: bool,
    /// Draw the timestamp at the top right.
    pub show_timestamp: bool,
    /// Opacity of zone fills, from 0 (outline only) to 1 (opaque).
    pub zone_fill_opacity: f32,
    /// Colour overrides by class name, as `#rrggbb` or `#rgb` (`person = "#ff0000"`).
    /// Classes not listed take a fixed palette colour chosen by class id.
    pub class_colors: BTreeMap<String, String>,
    /// Stamp the wall-clock time of drawing as a row of black/white squares at the bottom
    /// left (48 bits of Unix milliseconds, see [`crate::clock_code`]), so that a viewer can
    /// measure glass-to-glass latency by reading it back from the displayed picture.
    pub clock_code: bool,
}

impl Default for DrawStyle {
    fn default() -> Self {
        DrawStyle {
            box_thickness: DEFAULT_BOX_THICKNESS,
            font_size: DEFAULT_FONT_SIZE,
            show_labels: true,
            show_scores: true,
            show_track_ids: true,
            show_zones: true,
            show_lines: true,
            show_status: true,
            show_timestamp: true,
            zone_fill_opacity: DEFAULT_ZONE_FILL_OPACITY,
            class_colors: BTreeMap::new(),
            clock_code: false,
        }
    }
}

impl DrawStyle {
    /// Adds one error per bad field to `errs`, each under `path` (`draw.font_size`).
    pub fn validate(&self, path: &str, errs: &mut FieldErrors) {
        let field = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        if !BOX_THICKNESS_RANGE.contains(&self.box_thickness) {
            errs.push(
                field("box_thickness"),
                format!(
                    "must be between {} and {} pixels, got {}",
                    BOX_THICKNESS_RANGE.start(),
                    BOX_THICKNESS_RANGE.end(),
                    self.box_thickness
                ),
            );
        }
        if !FONT_SIZE_RANGE.contains(&self.font_size) {
            errs.push(
                field("font_size"),
                format!(
                    "must be between {} and {} pixels, got {}",
                    FONT_SIZE_RANGE.start(),
                    FONT_SIZE_RANGE.end(),
                    self.font_size
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.zone_fill_opacity) {
            errs.push(
                field("zone_fill_opacity"),
                format!("must be between 0 and 1, got {}", self.zone_fill_opacity),
            );
        }
        for (class, colour) in &self.class_colors {
            if class.is_empty() {
                errs.push(field("class_colors"), "class names must not be empty");
            }
            if Color::from_hex(colour).is_none() {
                errs.push(
                    field(&format!("class_colors.{class}")),
                    format!("{colour:?} is not a colour; use \"#rrggbb\" or \"#rgb\""),
                );
            }
        }
    }

    /// The validated colour overrides; entries with a bad colour are left out.
    pub(crate) fn resolved_class_colors(&self) -> Vec<(String, Color)> {
        self.class_colors
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), Color::from_hex(v)?)))
            .collect()
    }

    /// Zone fill opacity as an 8-bit alpha (out-of-range and NaN values clamp).
    pub(crate) fn zone_fill_alpha(&self) -> u8 {
        if self.zone_fill_opacity.is_nan() {
            return 0;
        }
        (self.zone_fill_opacity.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(style: &DrawStyle) -> FieldErrors {
        let mut e = FieldErrors::new();
        style.validate("draw", &mut e);
        e
    }

    #[test]
    fn default_is_valid() {
        assert!(errors(&DrawStyle::default()).is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut s = DrawStyle {
            box_thickness: 0,
            font_size: 400,
            zone_fill_opacity: f32::NAN,
            ..DrawStyle::default()
        };
        s.class_colors.insert("person".into(), "#ff0000".into());
        s.class_colors.insert("car".into(), "red".into());
        s.class_colors.insert("truck".into(), "#12345".into());
        let e = errors(&s);
        let paths: Vec<&str> = e.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "draw.box_thickness",
                "draw.font_size",
                "draw.zone_fill_opacity",
                "draw.class_colors.car",
                "draw.class_colors.truck",
            ]
        );
        assert!(e.to_string().contains("\"red\" is not a colour"));
        let resolved = s.resolved_class_colors();
        assert_eq!(resolved, vec![("person".to_owned(), Color::rgb(255, 0, 0))]);
    }

    #[test]
    fn opacity_bounds() {
        for (v, ok) in [(0.0, true), (1.0, true), (-0.01, false), (1.5, false)] {
            let s = DrawStyle {
                zone_fill_opacity: v,
                ..DrawStyle::default()
            };
            assert_eq!(errors(&s).is_empty(), ok, "{v}");
        }
        let s = DrawStyle {
            zone_fill_opacity: 2.0,
            ..DrawStyle::default()
        };
        assert_eq!(s.zone_fill_alpha(), 255);
    }

    #[test]
    fn parses_from_toml_with_defaults_and_rejects_unknown_fields() {
        let s: DrawStyle = toml::from_str(
            "font_size = 18\nshow_scores = false\n[class_colors]\nperson = \"#00ff00\"\n",
        )
        .unwrap();
        assert_eq!(s.font_size, 18);
        assert!(!s.show_scores);
        assert_eq!(s.box_thickness, DEFAULT_BOX_THICKNESS);
        assert_eq!(s.class_colors["person"], "#00ff00");
        let err = toml::from_str::<DrawStyle>("font_colour = 3").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        // Round trip through JSON.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<DrawStyle>(&json).unwrap(), s);
    }

    #[test]
    fn schema_documents_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(DrawStyle)).unwrap();
        let props = &schema["properties"];
        assert!(props["zone_fill_opacity"]["description"].is_string());
        assert_eq!(props["font_size"]["default"], DEFAULT_FONT_SIZE);
    }
}
