//! Tracker settings as they appear in a customer's config (`tracker = { ... }`).
//!
//! They live here, beside the tracker that reads them, so the meaning of every threshold is
//! documented next to the code that applies it; the config crate embeds this struct and calls
//! [`TrackerSettings::validate`] with the field path, so every bad value is reported at once.

use serde::{Deserialize, Serialize};
use sightline_core::FieldErrors;

/// How the tracker associates detections with tracks, and when tracks are born and die.
///
/// Defaults follow ByteTrack (`track_thresh` 0.5, `match_thresh` 0.8, `track_buffer` 30 at
/// 30 fps), with IoU thresholds written as minimum overlaps rather than maximum costs
/// (`match_iou = 1 - match_thresh`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerSettings {
    /// Detections scoring at least this take part in the first association stage, against
    /// every confirmed track (tracked or lost). 0–1.
    pub high_score: f32,
    /// Detections scoring at least this but less than `high_score` take part in the second
    /// stage, against tracks that were matched on the previous inference frame and are still
    /// unmatched; lower-scoring detections are ignored. 0–1, at most `high_score`.
    pub low_score: f32,
    /// An unmatched high-score detection starts a new (tentative) track only if it scores at
    /// least this. 0–1, at least `high_score`.
    pub new_track_score: f32,
    /// First stage: a detection and a track are matched only if their boxes overlap with an
    /// intersection over union greater than this. 0–1 (exclusive).
    pub match_iou: f32,
    /// Second stage (low-score detections): minimum IoU, usually stricter than `match_iou`
    /// because low-score detections are less reliable. 0–1 (exclusive).
    pub low_match_iou: f32,
    /// Third stage (tentative tracks against the remaining high-score detections): minimum
    /// IoU. 0–1 (exclusive).
    pub unconfirmed_match_iou: f32,
    /// A track is confirmed, and reported, once this many detections have been matched to it
    /// on consecutive inference frames (the detection that started it counts). Tracks born in
    /// the first `min_hits` inference frames of a stream are confirmed at once, so objects in
    /// view when the stream starts are shown immediately. At least 1.
    pub min_hits: u32,
    /// A confirmed track is removed when it has gone more than this many frames (inferred or
    /// skipped) without a matched detection; until then it is reported with its predicted box
    /// and `misses > 0`, and it keeps its id if its object reappears (occlusion).
    pub max_age_frames: u32,
    /// When true, a detection is only ever matched to a track of the same class.
    pub per_class: bool,
}

impl TrackerSettings {
    /// Default for [`TrackerSettings::high_score`].
    pub const DEFAULT_HIGH_SCORE: f32 = 0.5;
    /// Default for [`TrackerSettings::low_score`].
    pub const DEFAULT_LOW_SCORE: f32 = 0.1;
    /// Default for [`TrackerSettings::new_track_score`].
    pub const DEFAULT_NEW_TRACK_SCORE: f32 = 0.6;
    /// Default for [`TrackerSettings::match_iou`].
    pub const DEFAULT_MATCH_IOU: f32 = 0.2;
    /// Default for [`TrackerSettings::low_match_iou`].
    pub const DEFAULT_LOW_MATCH_IOU: f32 = 0.5;
    /// Default for [`TrackerSettings::unconfirmed_match_iou`].
    pub const DEFAULT_UNCONFIRMED_MATCH_IOU: f32 = 0.3;
    /// Default for [`TrackerSettings::min_hits`].
    pub const DEFAULT_MIN_HITS: u32 = 3;
    /// Default for [`TrackerSettings::max_age_frames`].
    pub const DEFAULT_MAX_AGE_FRAMES: u32 = 30;
    /// Default for [`TrackerSettings::per_class`].
    pub const DEFAULT_PER_CLASS: bool = true;

    /// Reports every invalid value into `errs`, each with its path below `path` (for example
    /// `tracker.low_score: must be <= high_score`). `path` may be empty.
    pub fn validate(&self, path: &str, errs: &mut FieldErrors) {
        let at = |field: &str| {
            if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            }
        };
        let unit = [
            ("high_score", self.high_score),
            ("low_score", self.low_score),
            ("new_track_score", self.new_track_score),
        ];
        for (name, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                errs.push(at(name), format!("must be between 0 and 1, got {v}"));
            }
        }
        let ious = [
            ("match_iou", self.match_iou),
            ("low_match_iou", self.low_match_iou),
            ("unconfirmed_match_iou", self.unconfirmed_match_iou),
        ];
        for (name, v) in ious {
            if !(0.0..1.0).contains(&v) {
                errs.push(
                    at(name),
                    format!("must be at least 0 and less than 1, got {v}"),
                );
            }
        }
        if self.low_score > self.high_score {
            errs.push(at("low_score"), "must be <= high_score");
        }
        if self.new_track_score < self.high_score {
            errs.push(at("new_track_score"), "must be >= high_score");
        }
        if self.min_hits == 0 {
            errs.push(at("min_hits"), "must be at least 1");
        }
    }
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            high_score: Self::DEFAULT_HIGH_SCORE,
            low_score: Self::DEFAULT_LOW_SCORE,
            new_track_score: Self::DEFAULT_NEW_TRACK_SCORE,
            match_iou: Self::DEFAULT_MATCH_IOU,
            low_match_iou: Self::DEFAULT_LOW_MATCH_IOU,
            unconfirmed_match_iou: Self::DEFAULT_UNCONFIRMED_MATCH_IOU,
            min_hits: Self::DEFAULT_MIN_HITS,
            max_age_frames: Self::DEFAULT_MAX_AGE_FRAMES,
            per_class: Self::DEFAULT_PER_CLASS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(s: &TrackerSettings, path: &str) -> Vec<String> {
        let mut errs = FieldErrors::new();
        s.validate(path, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid_and_match_bytetrack() {
        let s = TrackerSettings::default();
        assert!(errors(&s, "tracker").is_empty());
        assert_eq!(s.high_score, 0.5);
        assert_eq!(s.low_score, 0.1);
        assert_eq!(s.new_track_score, 0.6);
        assert!((s.match_iou - (1.0 - 0.8)).abs() < 1e-6);
        assert_eq!(s.min_hits, 3);
        assert_eq!(s.max_age_frames, 30);
        assert!(s.per_class);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_path() {
        let s = TrackerSettings {
            high_score: 0.3,
            low_score: 0.4,
            new_track_score: 0.2,
            match_iou: 1.0,
            low_match_iou: -0.1,
            unconfirmed_match_iou: f32::NAN,
            min_hits: 0,
            ..TrackerSettings::default()
        };
        let errs = errors(&s, "tracker");
        let expected = [
            "tracker.match_iou: must be at least 0 and less than 1, got 1",
            "tracker.low_match_iou: must be at least 0 and less than 1, got -0.1",
            "tracker.unconfirmed_match_iou: must be at least 0 and less than 1, got NaN",
            "tracker.low_score: must be <= high_score",
            "tracker.new_track_score: must be >= high_score",
            "tracker.min_hits: must be at least 1",
        ];
        assert_eq!(errs, expected);
    }

    #[test]
    fn scores_outside_unit_range_are_reported() {
        let s = TrackerSettings {
            high_score: 1.5,
            low_score: -0.5,
            new_track_score: f32::INFINITY,
            ..TrackerSettings::default()
        };
        let errs = errors(&s, "");
        assert_eq!(
            errs,
            [
                "high_score: must be between 0 and 1, got 1.5",
                "low_score: must be between 0 and 1, got -0.5",
                "new_track_score: must be between 0 and 1, got inf",
            ]
        );
    }

    #[test]
    fn missing_fields_take_defaults_and_unknown_fields_are_refused() {
        let s: TrackerSettings = toml::from_str("min_hits = 1\nper_class = false").unwrap();
        assert_eq!(
            s,
            TrackerSettings {
                min_hits: 1,
                per_class: false,
                ..TrackerSettings::default()
            }
        );
        let err = toml::from_str::<TrackerSettings>("max_age = 3").unwrap_err();
        assert!(err.to_string().contains("unknown field `max_age`"), "{err}");
    }

    #[test]
    fn round_trips_through_json_and_has_a_schema() {
        let s = TrackerSettings {
            high_score: 0.4,
            ..TrackerSettings::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<TrackerSettings>(&json).unwrap(), s);
        let schema = serde_json::to_value(schemars::schema_for!(TrackerSettings)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), 9);
        assert!(
            props["max_age_frames"]["description"]
                .as_str()
                .unwrap()
                .contains("removed")
        );
    }
}
