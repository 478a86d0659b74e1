//! Settings of the media store: what a pipeline keeps (`[media]` of the pipeline config:
//! event pictures, continuous recording, retention overrides) and where and how long the
//! server keeps it (`[media]` and `[retention]` of the server config: backend URL, S3
//! credentials, queue, disk high/low-water marks, ages per kind).
//!
//! The media store itself (`sightline-storage`) executes these; they live here, with the
//! other sections nobody else owns, so that the pure crates stay free of the object-store
//! dependency and each setting is described once.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use sightline_core::{EventKind, FieldErrors};

/// Which frame a picture is cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PictureSource {
    /// The decoded camera frame, before anything is drawn on it.
    Raw,
    /// The frame as published, with boxes, zones and counters drawn.
    Annotated,
}

/// `[media]` of a pipeline config: event pictures and recording of this pipeline's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineMedia {
    /// Store a JPEG crop of the object (its box plus `crop_margin`) for every event that
    /// has a box.
    pub crops: bool,
    /// Store a full-frame JPEG snapshot for every event.
    pub snapshots: bool,
    /// Frame the crop is cut from (default: raw, so the object is not hidden by its label).
    pub crop_source: PictureSource,
    /// Frame the snapshot is taken from (default: annotated, so it shows what fired).
    pub snapshot_source: PictureSource,
    /// Margin added on each side of the box, as a fraction of the box's width/height.
    pub crop_margin: f32,
    /// Smallest crop side in pixels: a smaller box is cut with more context around its
    /// centre, so small objects stay readable (the crop never exceeds the frame).
    pub crop_min_size: u32,
    /// JPEG quality, 1..100.
    pub jpeg_quality: u8,
    /// Longest side of a stored picture in pixels; larger ones are scaled down.
    pub max_size: u32,
    /// Only events of these types get pictures (empty: every type).
    pub events: Vec<EventKind>,
    /// Continuous recording of the annotated output in MP4 segments (the H.264 the run
    /// already encodes; no second encode), indexed in the database.
    pub record: bool,
    /// Length of one recording segment in seconds (cut at the next keyframe after it).
    pub segment_s: f64,
    /// Ages that override the server's `[retention]` for runs of this pipeline.
    pub retention: RetentionOverride,
}

impl Default for PipelineMedia {
    fn default() -> Self {
        PipelineMedia {
            crops: true,
            snapshots: true,
            crop_source: PictureSource::Raw,
            snapshot_source: PictureSource::Annotated,
            crop_margin: 0.15,
            crop_min_size: 96,
            jpeg_quality: 85,
            max_size: 1920,
            events: Vec::new(),
            record: false,
            segment_s: 60.0,
            retention: RetentionOverride::default(),
        }
    }
}

impl PipelineMedia {
    /// Whether events of `kind` get pictures at all.
    pub fn wants(&self, kind: EventKind) -> bool {
        (self.crops || self.snapshots) && (self.events.is_empty() || self.events.contains(&kind))
    }

    pub fn validate(&self, path: &str, e: &mut FieldErrors) {
        if !(0.0..=2.0).contains(&self.crop_margin) {
            e.push(format!("{path}.crop_margin"), "must be within 0..2");
        }
        if self.crop_min_size > 4096 {
            e.push(format!("{path}.crop_min_size"), "must be at most 4096");
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            e.push(format!("{path}.jpeg_quality"), "must be within 1..100");
        }
        if !(16..=16384).contains(&self.max_size) {
            e.push(
                format!("{path}.max_size"),
                "must be within 16..16384 pixels",
            );
        }
        if !(self.segment_s >= 1.0 && self.segment_s <= 3600.0) {
            e.push(
                format!("{path}.segment_s"),
                "must be within 1..3600 seconds",
            );
        }
        self.retention.validate(&format!("{path}.retention"), e);
    }
}

/// Ages in days for one pipeline's runs; unset fields keep the server's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionOverride {
    pub events_days: Option<f64>,
    pub pictures_days: Option<f64>,
    pub recordings_days: Option<f64>,
}

impl RetentionOverride {
    pub fn is_empty(&self) -> bool {
        self.events_days.is_none() && self.pictures_days.is_none() && self.recordings_days.is_none()
    }

    /// The server's ages with this override applied.
    pub fn apply(&self, base: &Retention) -> Retention {
        Retention {
            events_days: self.events_days.unwrap_or(base.events_days),
            pictures_days: self.pictures_days.unwrap_or(base.pictures_days),
            recordings_days: self.recordings_days.unwrap_or(base.recordings_days),
        }
    }

    fn validate(&self, path: &str, e: &mut FieldErrors) {
        for (f, v) in [
            ("events_days", self.events_days),
            ("pictures_days", self.pictures_days),
            ("recordings_days", self.recordings_days),
        ] {
            if let Some(v) = v {
                check_days(&format!("{path}.{f}"), v, e);
            }
        }
    }
}

fn check_days(path: &str, v: f64, e: &mut FieldErrors) {
    if !(v.is_finite() && v >= 0.0) {
        e.push(path, "must be a number of days >= 0 (0 keeps forever)");
    }
}

/// `[retention]` of the server config: how long each kind is kept, in days (0 = forever).
/// A pipeline's `[media.retention]` overrides these for its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Stored events (and their outbox rows).
    pub events_days: f64,
    /// Event crops and snapshots.
    pub pictures_days: f64,
    /// Recording segments.
    pub recordings_days: f64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events_days: 30.0,
            pictures_days: 14.0,
            recordings_days: 7.0,
        }
    }
}

impl Retention {
    pub fn validate(&self, path: &str, e: &mut FieldErrors) {
        check_days(&format!("{path}.events_days"), self.events_days, e);
        check_days(&format!("{path}.pictures_days"), self.pictures_days, e);
        check_days(&format!("{path}.recordings_days"), self.recordings_days, e);
    }
}

/// S3 connection settings (used when `[media].url` is `s3://…`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible service (e.g. `http://127.0.0.1:9000`); default AWS.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Allow a plain-HTTP endpoint (local S3-compatible servers).
    pub allow_http: bool,
}

/// `[media]` of the server config: where pictures and recordings are stored and how the
/// disk is kept from filling up.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// `s3://bucket/prefix`, `file:///path` or a directory (default `<data_dir>/media`).
    pub url: Option<String>,
    pub s3: S3Settings,
    /// Base of the picture URLs put into events and notifications (default
    /// `http://<api.bind>`).
    pub public_url: Option<String>,
    /// Pictures waiting to be encoded and written; when full, new pictures are dropped
    /// (counted), never the events.
    pub queue: usize,
    /// How long one picture or segment write is retried before it is dropped (seconds).
    pub write_timeout_s: f64,
    /// Disk survival mode starts when the media volume is this full (percent)...
    pub high_water_pct: f64,
    /// ... and deletes the oldest media, whatever its age, until it is below this.
    pub low_water_pct: f64,
    /// Alternatively (or as well), a byte budget for all media on this volume: survival mode
    /// starts when the indexed media exceed it and deletes down to
    /// `budget_bytes × low_water_pct / high_water_pct`.
    pub budget_bytes: Option<u64>,
    /// Seconds between retention passes of the janitor.
    pub janitor_interval_s: f64,
    /// Seconds between disk-usage checks (survival mode).
    pub usage_check_s: f64,
    /// Items deleted per batch, and the pause between batches (throttling).
    pub delete_batch: u32,
    pub delete_pause_ms: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            url: None,
            s3: S3Settings::default(),
            public_url: None,
            queue: 64,
            write_timeout_s: 20.0,
            high_water_pct: 90.0,
            low_water_pct: 85.0,
            budget_bytes: None,
            janitor_interval_s: 60.0,
            usage_check_s: 5.0,
            delete_batch: 500,
            delete_pause_ms: 20,
        }
    }
}

impl MediaSettings {
    pub fn validate(&self, path: &str, e: &mut FieldErrors) {
        if let Some(u) = &self.url {
            if u.trim().is_empty() {
                e.push(format!("{path}.url"), "must not be empty");
            } else if let Some(rest) = u.strip_prefix("s3://") {
                if rest.split('/').next().unwrap_or("").is_empty() {
                    e.push(
                        format!("{path}.url"),
                        "must name a bucket: s3://BUCKET[/PREFIX]",
                    );
                }
            } else if u.contains("://") && !u.starts_with("file://") {
                e.push(
                    format!("{path}.url"),
                    format!(
                        "unsupported media store {}: use s3://BUCKET/PREFIX, file:///PATH or a directory",
                        crate::secret::mask_url(u)
                    ),
                );
            }
        }
        if let Some(ep) = &self.s3.endpoint
            && url::Url::parse(ep).is_err()
        {
            e.push(format!("{path}.s3.endpoint"), "is not a URL");
        }
        if self.s3.access_key_id.is_some() != self.s3.secret_access_key.is_some() {
            e.push(
                format!("{path}.s3.secret_access_key"),
                "access_key_id and secret_access_key go together",
            );
        }
        if self.queue == 0 {
            e.push(format!("{path}.queue"), "must be at least 1");
        }
        if !(self.write_timeout_s > 0.0 && self.write_timeout_s.is_finite()) {
            e.push(format!("{path}.write_timeout_s"), "must be > 0");
        }
        if !(self.high_water_pct > 0.0 && self.high_water_pct <= 100.0) {
            e.push(format!("{path}.high_water_pct"), "must be within (0, 100]");
        }
        if !(self.low_water_pct > 0.0 && self.low_water_pct < self.high_water_pct) {
            e.push(
                format!("{path}.low_water_pct"),
                "must be > 0 and below high_water_pct",
            );
        }
        if self.budget_bytes == Some(0) {
            e.push(format!("{path}.budget_bytes"), "must be at least 1");
        }
        for (f, v) in [
            ("janitor_interval_s", self.janitor_interval_s),
            ("usage_check_s", self.usage_check_s),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                e.push(format!("{path}.{f}"), "must be > 0 seconds");
            }
        }
        if self.delete_batch == 0 {
            e.push(format!("{path}.delete_batch"), "must be at least 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let mut e = FieldErrors::new();
        PipelineMedia::default().validate("media", &mut e);
        MediaSettings::default().validate("media", &mut e);
        Retention::default().validate("retention", &mut e);
        assert!(e.is_empty(), "{e}");

        let p = PipelineMedia {
            jpeg_quality: 0,
            crop_margin: -1.0,
            segment_s: 0.5,
            retention: RetentionOverride {
                pictures_days: Some(-1.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = MediaSettings {
            url: Some("ftp://x/y".into()),
            low_water_pct: 95.0,
            ..Default::default()
        };
        let mut e = FieldErrors::new();
        p.validate("media", &mut e);
        s.validate("media", &mut e);
        let text = e.to_string();
        for f in [
            "media.jpeg_quality",
            "media.crop_margin",
            "media.segment_s",
            "media.retention.pictures_days",
            "media.url",
            "media.low_water_pct",
        ] {
            assert!(text.contains(f), "{f} missing in {text}");
        }
    }

    #[test]
    fn override_applies_per_kind() {
        let base = Retention::default();
        let o = RetentionOverride {
            pictures_days: Some(1.0),
            ..Default::default()
        };
        let r = o.apply(&base);
        assert_eq!(r.pictures_days, 1.0);
        assert_eq!(r.events_days, base.events_days);
        assert!(!o.is_empty());
    }

    #[test]
    fn picture_filter_by_event_type() {
        let mut m = PipelineMedia::default();
        assert!(m.wants(EventKind::Count));
        m.events = vec![EventKind::LineCross];
        assert!(m.wants(EventKind::LineCross));
        assert!(!m.wants(EventKind::Count));
        m.crops = false;
        m.snapshots = false;
        assert!(!m.wants(EventKind::LineCross));
    }
}
