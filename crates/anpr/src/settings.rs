//! The plate options of a `[[secondary]]` pipeline stage, and their validation.
//!
//! `PlateSettings` is the file format (TOML/JSON, with a JSON Schema for editors);
//! [`PlateSettings::validate`] checks it, collecting every problem with its path, and compiles
//! the regexes once into [`CompiledPlateSettings`], which is what the rest of the crate takes.

use regex::Regex;
use serde::{Deserialize, Serialize};
use sightline_core::FieldError;

use crate::text::normalize;

/// Default of [`PlateSettings::min_chars`].
pub const DEFAULT_MIN_CHARS: usize = 4;
/// Default of [`PlateSettings::max_chars`].
pub const DEFAULT_MAX_CHARS: usize = 10;
/// Default of [`PlateSettings::min_aspect`].
pub const DEFAULT_MIN_ASPECT: f32 = 1.5;
/// Default of [`PlateSettings::max_aspect`].
pub const DEFAULT_MAX_ASPECT: f32 = 12.0;
/// Default of [`PlateSettings::min_char_height`].
pub const DEFAULT_MIN_CHAR_HEIGHT: f32 = 8.0;
/// Default of [`PlateSettings::recognition_threshold`].
pub const DEFAULT_RECOGNITION_THRESHOLD: f32 = 0.5;
/// Default of [`PlateSettings::min_readings`].
pub const DEFAULT_MIN_READINGS: u32 = 3;
/// Default of [`PlateSettings::vote_confidence`].
pub const DEFAULT_VOTE_CONFIDENCE: f32 = 0.6;
/// Default of [`KnownPlate::distance`].
pub const DEFAULT_KNOWN_DISTANCE: u32 = 1;
/// The largest [`KnownPlate::distance`] accepted: beyond it short plates match unrelated ones.
pub const MAX_KNOWN_DISTANCE: u32 = 3;

/// Licence-plate options of a secondary stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PlateSettings {
    /// Fewest letters and digits a plate has after normalisation (default 4).
    pub min_chars: usize,
    /// Most letters and digits a plate has after normalisation (default 10).
    pub max_chars: usize,
    /// Regular expression the normalised text (upper case, A–Z and 0–9 only, after `replace`)
    /// must match in full, e.g. `^[A-Z]{2}[0-9]{2}[A-Z]{1,2}[0-9]{4}$`. None: any text.
    pub format: Option<String>,
    /// Rewrites applied in order to the normalised text before the length and format checks
    /// (country prefixes, known confusions). The result is normalised again.
    pub replace: Vec<Replace>,
    /// Smallest width/height of a text box that can be a plate (default 1.5).
    pub min_aspect: f32,
    /// Largest width/height of a text box that can be a plate (default 12.0).
    pub max_aspect: f32,
    /// Text-box height in crop pixels below which a candidate is too small to read (default 8).
    pub min_char_height: f32,
    /// Minimum mean character confidence of a reading, 0..1 (default 0.5).
    pub recognition_threshold: f32,
    /// Agreeing readings after which a track's vote is final and the plate event is sent then,
    /// not at track end (default 3).
    pub min_readings: u32,
    /// Minimum vote confidence, 0..1, to send a plate at all; at track end a weaker vote sends
    /// nothing (default 0.6).
    pub vote_confidence: f32,
    /// Watch list: plates that raise a `plate_match` event.
    pub known: Vec<KnownPlate>,
}

impl Default for PlateSettings {
    fn default() -> Self {
        PlateSettings {
            min_chars: DEFAULT_MIN_CHARS,
            max_chars: DEFAULT_MAX_CHARS,
            format: None,
            replace: Vec::new(),
            min_aspect: DEFAULT_MIN_ASPECT,
            max_aspect: DEFAULT_MAX_ASPECT,
            min_char_height: DEFAULT_MIN_CHAR_HEIGHT,
            recognition_threshold: DEFAULT_RECOGNITION_THRESHOLD,
            min_readings: DEFAULT_MIN_READINGS,
            vote_confidence: DEFAULT_VOTE_CONFIDENCE,
            known: Vec::new(),
        }
    }
}

/// One rewrite of the normalised text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// Regular expression; every match is replaced.
    pub pattern: String,
    /// Replacement; `$1`, `${name}` refer to capture groups.
    pub with: String,
}

/// One watch-list entry: `plate` (exact text, within `distance` edits) or `regex`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownPlate {
    /// Name reported in the `plate_match` event.
    pub label: String,
    /// Plate text; normalised (upper case, A–Z and 0–9) when compiled.
    #[serde(default)]
    pub plate: Option<String>,
    /// Regular expression matched against the normalised text (unanchored: write `^…$` for a
    /// whole-text match).
    #[serde(default)]
    pub regex: Option<String>,
    /// Edits (Levenshtein, on the text or on its folded key) a read may differ from `plate` by
    /// and still match, 0..=3 (default 1). Ignored for `regex`.
    #[serde(default = "default_known_distance")]
    pub distance: u32,
}

fn default_known_distance() -> u32 {
    DEFAULT_KNOWN_DISTANCE
}

/// How a compiled watch-list entry matches.
#[derive(Debug, Clone)]
pub(crate) enum KnownMatcher {
    /// Normalised plate text and its allowed distance.
    Exact {
        text: String,
        distance: u32,
    },
    Regex(Regex),
}

/// A compiled watch-list entry.
#[derive(Debug, Clone)]
pub(crate) struct CompiledKnown {
    pub(crate) label: String,
    pub(crate) matcher: KnownMatcher,
}

/// Validated settings with their regexes compiled: what the rest of the crate takes.
#[derive(Debug, Clone)]
pub struct CompiledPlateSettings {
    settings: PlateSettings,
    /// `format`, anchored at both ends.
    format: Option<Regex>,
    replace: Vec<(Regex, String)>,
    known: Vec<CompiledKnown>,
}

impl CompiledPlateSettings {
    /// The settings this was compiled from.
    pub fn settings(&self) -> &PlateSettings {
        &self.settings
    }

    /// Applies the `replace` rules in order to a normalised text and normalises the result.
    pub fn apply_replace(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (re, with) in &self.replace {
            out = re.replace_all(&out, with.as_str()).into_owned();
        }
        normalize(&out)
    }

    /// Whether `text` matches `format` in full (always true without a format).
    pub fn matches_format(&self, text: &str) -> bool {
        self.format.as_ref().is_none_or(|re| re.is_match(text))
    }

    pub(crate) fn known(&self) -> &[CompiledKnown] {
        &self.known
    }
}

fn field_error(errors: &mut Vec<FieldError>, path: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        path: path.into(),
        message: message.into(),
    });
}

fn compile(errors: &mut Vec<FieldError>, path: String, pattern: &str) -> Option<Regex> {
    match Regex::new(pattern) {
        Ok(re) => Some(re),
        Err(e) => {
            field_error(errors, path, format!("invalid regex: {e}"));
            None
        }
    }
}

fn check_unit(errors: &mut Vec<FieldError>, path: &str, value: f32) {
    if !(0.0..=1.0).contains(&value) {
        field_error(errors, path, format!("must be within 0..=1, got {value}"));
    }
}

impl PlateSettings {
    /// Checks every field and compiles the regexes; on failure returns every problem found,
    /// each with its path relative to these settings (`format`, `replace[1].pattern`,
    /// `known[0].regex`, …).
    pub fn validate(&self) -> Result<CompiledPlateSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.min_chars == 0 {
            field_error(&mut errors, "min_chars", "must be at least 1");
        }
        if self.min_chars > self.max_chars {
            field_error(
                &mut errors,
                "min_chars",
                format!(
                    "is more than max_chars ({} > {})",
                    self.min_chars, self.max_chars
                ),
            );
        }
        if !(self.min_aspect.is_finite() && self.min_aspect > 0.0) {
            field_error(&mut errors, "min_aspect", "must be a number above 0");
        }
        if !self.max_aspect.is_finite() {
            field_error(&mut errors, "max_aspect", "must be a finite number");
        } else if self.min_aspect > self.max_aspect {
            field_error(
                &mut errors,
                "min_aspect",
                format!(
                    "is more than max_aspect ({} > {})",
                    self.min_aspect, self.max_aspect
                ),
            );
        }
        if !(self.min_char_height.is_finite() && self.min_char_height >= 0.0) {
            field_error(&mut errors, "min_char_height", "must be a number ≥ 0");
        }
        check_unit(
            &mut errors,
            "recognition_threshold",
            self.recognition_threshold,
        );
        check_unit(&mut errors, "vote_confidence", self.vote_confidence);
        if self.min_readings == 0 {
            field_error(&mut errors, "min_readings", "must be at least 1");
        }

        let format = self.format.as_ref().and_then(|f| {
            // Checked on its own first so that the error names the user's regex, not ours.
            compile(&mut errors, "format".into(), f)
                .and_then(|_| Regex::new(&format!("^(?:{f})$")).ok())
        });
        let replace = self
            .replace
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                compile(&mut errors, format!("replace[{i}].pattern"), &r.pattern)
                    .map(|re| (re, r.with.clone()))
            })
            .collect();
        let known = self
            .known
            .iter()
            .enumerate()
            .filter_map(|(i, k)| compile_known(&mut errors, i, k))
            .collect();

        if errors.is_empty() {
            Ok(CompiledPlateSettings {
                settings: self.clone(),
                format,
                replace,
                known,
            })
        } else {
            Err(errors)
        }
    }
}

fn compile_known(errors: &mut Vec<FieldError>, i: usize, k: &KnownPlate) -> Option<CompiledKnown> {
    let before = errors.len();
    if k.label.trim().is_empty() {
        field_error(errors, format!("known[{i}].label"), "must not be empty");
    }
    if k.distance > MAX_KNOWN_DISTANCE {
        field_error(
            errors,
            format!("known[{i}].distance"),
            format!("must be at most {MAX_KNOWN_DISTANCE}, got {}", k.distance),
        );
    }
    let matcher = match (&k.plate, &k.regex) {
        (None, None) => {
            field_error(errors, format!("known[{i}]"), "needs `plate` or `regex`");
            None
        }
        (Some(_), Some(_)) => {
            field_error(
                errors,
                format!("known[{i}]"),
                "takes `plate` or `regex`, not both",
            );
            None
        }
        (Some(plate), None) => {
            let text = normalize(plate);
            if text.is_empty() {
                field_error(
                    errors,
                    format!("known[{i}].plate"),
                    "has no letters or digits",
                );
                None
            } else {
                Some(KnownMatcher::Exact {
                    text,
                    distance: k.distance,
                })
            }
        }
        (None, Some(re)) => {
            compile(errors, format!("known[{i}].regex"), re).map(KnownMatcher::Regex)
        }
    };
    match matcher {
        Some(matcher) if errors.len() == before => Some(CompiledKnown {
            label: k.label.clone(),
            matcher,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(s: &PlateSettings) -> Vec<String> {
        s.validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let s = PlateSettings::default();
        assert_eq!((s.min_chars, s.max_chars), (4, 10));
        assert_eq!((s.min_aspect, s.max_aspect), (1.5, 12.0));
        assert_eq!(s.min_char_height, 8.0);
        assert_eq!(s.recognition_threshold, 0.5);
        assert_eq!(s.min_readings, 3);
        assert_eq!(s.vote_confidence, 0.6);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn parses_toml_with_defaults_and_refuses_unknown_fields() {
        let s: PlateSettings = toml::from_str(
            r#"
            format = "^[A-Z]{2}[0-9]{4}$"
            min_readings = 5
            [[replace]]
            pattern = "^IND"
            with = ""
            [[known]]
            label = "boss"
            plate = "ka-01 ab 1234"
            "#,
        )
        .unwrap();
        assert_eq!(s.min_readings, 5);
        assert_eq!(s.max_chars, 10);
        assert_eq!(s.known[0].distance, 1);
        assert_eq!(s.replace[0].pattern, "^IND");
        assert!(toml::from_str::<PlateSettings>("min_char = 3").is_err());
        assert!(toml::from_str::<PlateSettings>("[[known]]\nlabel='x'\nplat='A'").is_err());
        let json: PlateSettings = serde_json::from_str(r#"{"max_chars": 8}"#).unwrap();
        assert_eq!(json.max_chars, 8);
    }

    #[test]
    fn schema_carries_field_docs() {
        let schema = serde_json::to_string(&schemars::schema_for!(PlateSettings)).unwrap();
        assert!(schema.contains("Fewest letters and digits"));
        assert!(schema.contains("Edits (Levenshtein"));
    }

    #[test]
    fn every_bad_regex_is_reported_with_its_path_and_message() {
        let s = PlateSettings {
            format: Some("[A-Z".into()),
            replace: vec![
                Replace {
                    pattern: "OK".into(),
                    with: "0K".into(),
                },
                Replace {
                    pattern: "(".into(),
                    with: String::new(),
                },
            ],
            known: vec![KnownPlate {
                label: "x".into(),
                plate: None,
                regex: Some("a{2".into()),
                distance: 1,
            }],
            ..PlateSettings::default()
        };
        let errors = s.validate().unwrap_err();
        let p: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(p, ["format", "replace[1].pattern", "known[0].regex"]);
        assert!(errors[0].message.contains("unclosed character class"));
    }

    #[test]
    fn range_errors_name_their_fields() {
        let s = PlateSettings {
            min_chars: 11,
            min_aspect: 20.0,
            recognition_threshold: 1.5,
            vote_confidence: -0.1,
            min_readings: 0,
            min_char_height: f32::NAN,
            ..PlateSettings::default()
        };
        assert_eq!(
            paths(&s),
            [
                "min_chars",
                "min_aspect",
                "min_char_height",
                "recognition_threshold",
                "vote_confidence",
                "min_readings"
            ]
        );
        let zero = PlateSettings {
            min_chars: 0,
            ..PlateSettings::default()
        };
        assert_eq!(paths(&zero), ["min_chars"]);
    }

    #[test]
    fn known_entries_need_exactly_one_matcher() {
        let entry = |plate: Option<&str>, regex: Option<&str>, distance| KnownPlate {
            label: "l".into(),
            plate: plate.map(Into::into),
            regex: regex.map(Into::into),
            distance,
        };
        let s = PlateSettings {
            known: vec![
                entry(Some("AB12"), None, 1),
                entry(None, Some("^AB"), 1),
                entry(None, None, 1),
                entry(Some("AB"), Some("AB"), 1),
                entry(Some("--"), None, 1),
                entry(Some("AB12"), None, 4),
            ],
            ..PlateSettings::default()
        };
        let errors = s.validate().unwrap_err();
        let p: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            p,
            [
                "known[2]",
                "known[3]",
                "known[4].plate",
                "known[5].distance"
            ]
        );
        assert!(errors[0].message.contains("needs `plate` or `regex`"));
    }

    #[test]
    fn format_is_anchored_and_replace_applies_in_order() {
        let s = PlateSettings {
            format: Some("[A-Z]{2}[0-9]{2}".into()),
            replace: vec![
                Replace {
                    pattern: "^IND".into(),
                    with: String::new(),
                },
                Replace {
                    pattern: "O(\\d)".into(),
                    with: "0-$1".into(),
                },
            ],
            ..PlateSettings::default()
        }
        .validate()
        .unwrap();
        assert!(s.matches_format("AB12"));
        assert!(!s.matches_format("XAB12"));
        assert!(!s.matches_format("AB123"));
        // Second rule sees the first's output; the '-' it inserts is normalised away.
        assert_eq!(s.apply_replace("INDKAO1"), "KA01");
        assert_eq!(s.settings().format.as_deref(), Some("[A-Z]{2}[0-9]{2}"));
    }

    #[test]
    fn compiled_settings_are_shareable() {
        fn assert_shareable<T: Clone + std::fmt::Debug + Send + Sync>() {}
        assert_shareable::<CompiledPlateSettings>();
    }
}
