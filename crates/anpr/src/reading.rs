//! One recogniser output turned into a plate reading, or the reason it is not one.

use std::fmt;

use sightline_core::BBox;

use crate::settings::CompiledPlateSettings;

/// A text accepted as a plate reading in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Normalised text (upper case, A–Z and 0–9), after the `replace` rules.
    pub text: String,
    /// Mean character confidence, 0..1.
    pub confidence: f32,
    /// Per-character confidence, 0..1, aligned with `text`.
    pub chars: Vec<f32>,
    /// Where the plate is, in frame pixels.
    pub plate_bbox: Option<BBox>,
}

/// Why a recognised text is not a plate reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// No letters or digits (after the `replace` rules).
    Empty,
    /// This many characters, outside `min_chars..=max_chars`.
    Length(usize),
    /// Does not match `format` in full.
    Format,
    /// Mean character confidence below `recognition_threshold`.
    LowConfidence(f32),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Empty => write!(f, "no letters or digits"),
            Rejected::Length(n) => write!(f, "{n} characters, outside the plate length"),
            Rejected::Format => write!(f, "does not match the plate format"),
            Rejected::LowConfidence(c) => write!(f, "confidence {c:.2} below the threshold"),
        }
    }
}

impl std::error::Error for Rejected {}

/// A confidence as a number in 0..=1: NaN counts as 0, out-of-range values are clamped.
pub(crate) fn unit(c: f32) -> f32 {
    if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) }
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

/// Turns the recogniser's text into a [`Reading`] when it can be a plate.
///
/// 1. Normalise: upper case, ASCII letters and digits only; the confidences of dropped
///    characters are dropped with them. `char_conf` is aligned with `raw.chars()`; when its
///    length differs, every character gets the mean of `char_conf` (0 when it is empty).
///    Confidences are clamped to 0..=1, NaN counts as 0.
/// 2. Apply the `replace` rules. When they change the text, the characters no longer line up
///    with the recogniser's, so every character of the result gets the mean confidence of the
///    normalised text: the reading's confidence is unchanged, its per-character detail is lost.
/// 3. Check, in this order: not empty ([`Rejected::Empty`]), `min_chars..=max_chars`
///    characters ([`Rejected::Length`]), full match of `format` ([`Rejected::Format`]), mean
///    character confidence ≥ `recognition_threshold` ([`Rejected::LowConfidence`]).
pub fn accept(
    raw: &str,
    char_conf: &[f32],
    plate_bbox: Option<BBox>,
    s: &CompiledPlateSettings,
) -> Result<Reading, Rejected> {
    let aligned = char_conf.len() == raw.chars().count();
    let fallback = unit(mean(char_conf));
    let (mut text, mut chars): (String, Vec<f32>) = raw
        .chars()
        .enumerate()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, c)| {
            let conf = if aligned {
                unit(char_conf[i])
            } else {
                fallback
            };
            (c.to_ascii_uppercase(), conf)
        })
        .unzip();
    let confidence = mean(&chars);

    let replaced = s.apply_replace(&text);
    if replaced != text {
        chars = vec![confidence; replaced.len()];
        text = replaced;
    }

    let cfg = s.settings();
    if text.is_empty() {
        return Err(Rejected::Empty);
    }
    let n = text.len();
    if n < cfg.min_chars || n > cfg.max_chars {
        return Err(Rejected::Length(n));
    }
    if !s.matches_format(&text) {
        return Err(Rejected::Format);
    }
    if confidence < cfg.recognition_threshold {
        return Err(Rejected::LowConfidence(confidence));
    }
    Ok(Reading {
        text,
        confidence,
        chars,
        plate_bbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{PlateSettings, Replace};

    fn settings(f: impl FnOnce(&mut PlateSettings)) -> CompiledPlateSettings {
        let mut s = PlateSettings::default();
        f(&mut s);
        s.validate().unwrap()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn normalises_and_keeps_the_confidences_of_kept_characters() {
        let s = settings(|_| {});
        let bbox = Some(BBox::new(1.0, 2.0, 3.0, 4.0));
        let r = accept("ka-01", &[0.9, 0.8, 0.1, 0.7, 0.6], bbox, &s).unwrap();
        assert_eq!(r.text, "KA01");
        assert_eq!(r.chars, [0.9, 0.8, 0.7, 0.6]);
        assert!(close(r.confidence, 0.75), "the '-' does not count");
        assert_eq!(r.plate_bbox, bbox);
    }

    #[test]
    fn misaligned_confidences_give_every_character_the_mean() {
        let s = settings(|_| {});
        let r = accept("AB12", &[0.6, 1.0], None, &s).unwrap();
        assert_eq!(r.chars, [0.8; 4]);
        assert!(close(r.confidence, 0.8));
        assert_eq!(
            accept("AB12", &[], None, &s),
            Err(Rejected::LowConfidence(0.0))
        );
    }

    #[test]
    fn confidences_are_clamped() {
        let s = settings(|_| {});
        let r = accept("AB12", &[2.0, 1.0, f32::NAN, 1.0], None, &s).unwrap();
        assert_eq!(r.chars, [1.0, 1.0, 0.0, 1.0]);
        assert!(close(r.confidence, 0.75));
    }

    #[test]
    fn replace_rules_run_before_the_checks_and_flatten_confidences() {
        let s = settings(|s| {
            s.max_chars = 6;
            s.replace = vec![Replace {
                pattern: "^IND".into(),
                with: String::new(),
            }];
        });
        let r = accept(
            "IND KA0123",
            &[0.5, 0.5, 0.5, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            None,
            &s,
        )
        .unwrap();
        assert_eq!(r.text, "KA0123");
        let mean = (1.5 + 6.0) / 9.0;
        assert!(close(r.confidence, mean));
        assert_eq!(r.chars.len(), 6);
        assert!(r.chars.iter().all(|&c| close(c, mean)));
        // Without the rule the prefix makes it too long.
        let plain = settings(|s| s.max_chars = 6);
        assert_eq!(
            accept("IND KA0123", &[0.9; 10], None, &plain),
            Err(Rejected::Length(9))
        );
    }

    #[test]
    fn refuses_empty_texts() {
        let s = settings(|_| {});
        assert_eq!(accept(" -·- ", &[1.0; 5], None, &s), Err(Rejected::Empty));
        let strip = settings(|s| {
            s.replace = vec![Replace {
                pattern: "TAXI".into(),
                with: String::new(),
            }]
        });
        assert_eq!(
            accept("taxi", &[1.0; 4], None, &strip),
            Err(Rejected::Empty)
        );
    }

    #[test]
    fn enforces_the_length_bounds() {
        let s = settings(|_| {});
        assert_eq!(accept("AB1", &[1.0; 3], None, &s), Err(Rejected::Length(3)));
        assert!(accept("AB12", &[1.0; 4], None, &s).is_ok());
        assert!(accept("AB12345678", &[1.0; 10], None, &s).is_ok());
        assert_eq!(
            accept("AB123456789", &[1.0; 11], None, &s),
            Err(Rejected::Length(11))
        );
    }

    #[test]
    fn enforces_the_format_in_full() {
        let s = settings(|s| s.format = Some("[A-Z]{2}[0-9]{2}[A-Z]{1,2}[0-9]{4}".into()));
        assert!(accept("KA 01 AB 1234", &[0.9; 13], None, &s).is_ok());
        assert_eq!(
            accept("KA0IAB1234", &[0.9; 10], None, &s),
            Err(Rejected::Format)
        );
        // Contains a match (`KA01A1234`) but is not one.
        assert_eq!(
            accept("KA01A12345", &[0.9; 10], None, &s),
            Err(Rejected::Format)
        );
    }

    #[test]
    fn enforces_the_recognition_threshold() {
        let s = settings(|_| {});
        assert!(accept("AB12", &[0.5; 4], None, &s).is_ok());
        assert_eq!(
            accept("AB12", &[0.4; 4], None, &s),
            Err(Rejected::LowConfidence(0.4))
        );
    }

    #[test]
    fn rejections_say_why() {
        assert_eq!(
            Rejected::Length(3).to_string(),
            "3 characters, outside the plate length"
        );
        assert_eq!(
            Rejected::LowConfidence(0.4).to_string(),
            "confidence 0.40 below the threshold"
        );
    }
}
