//! Metrics and log lines of the media store, one type or function per occurrence so the
//! metric and the log agree (STYLE pattern 8).

use sightline_core::PictureKind;
use std::time::Duration;

/// A picture was encoded and stored.
pub(crate) struct PictureWritten {
    pub kind: PictureKind,
    pub bytes: u64,
    pub encode: Duration,
    pub write: Duration,
}

impl PictureWritten {
    pub(crate) fn emit(self) {
        let kind = self.kind.as_str();
        metrics::counter!("sightline_media_pictures_total", "kind" => kind).increment(1);
        metrics::counter!("sightline_media_written_bytes_total", "kind" => kind)
            .increment(self.bytes);
        metrics::histogram!("sightline_media_encode_seconds").record(self.encode.as_secs_f64());
        metrics::histogram!("sightline_media_write_seconds").record(self.write.as_secs_f64());
        tracing::trace!(kind, bytes = self.bytes, "picture stored");
    }
}

/// A picture was not stored (its event was).
pub(crate) struct PictureDropped {
    /// `queue_full`, `write_failed`, `encode_failed`.
    pub reason: &'static str,
}

impl PictureDropped {
    pub(crate) fn emit(self) {
        metrics::counter!("sightline_media_dropped_total", "reason" => self.reason).increment(1);
        tracing::debug!(reason = self.reason, "picture dropped");
    }
}

pub(crate) fn queue_depth(n: usize) {
    metrics::gauge!("sightline_media_queue_depth").set(n as f64);
}

/// A recording segment was finalised (or given up).
pub(crate) fn segment(state: &'static str, bytes: u64) {
    metrics::counter!("sightline_recording_segments_total", "state" => state).increment(1);
    if bytes > 0 {
        metrics::counter!("sightline_recording_bytes_total").increment(bytes);
    }
}

/// The janitor deleted items of `kind` (`events`, `pictures`, `recordings`) for `why`
/// (`retention`, `survival`, `orphan`).
pub(crate) fn deleted(kind: &'static str, why: &'static str, items: u64, bytes: u64) {
    if items == 0 {
        return;
    }
    metrics::counter!("sightline_janitor_deleted_total", "kind" => kind, "reason" => why)
        .increment(items);
    if bytes > 0 {
        metrics::counter!("sightline_janitor_deleted_bytes_total", "kind" => kind, "reason" => why)
            .increment(bytes);
    }
    tracing::info!(kind, reason = why, items, bytes, "media deleted");
}

/// What is stored, read on every usage check.
pub(crate) fn usage(u: &sightline_store::MediaUsage, now_ms: i64, disk_pct: Option<f64>) {
    metrics::gauge!("sightline_media_items", "kind" => "pictures").set(u.pictures as f64);
    metrics::gauge!("sightline_media_items", "kind" => "recordings").set(u.segments as f64);
    metrics::gauge!("sightline_media_stored_bytes", "kind" => "pictures")
        .set(u.picture_bytes as f64);
    metrics::gauge!("sightline_media_stored_bytes", "kind" => "recordings")
        .set(u.segment_bytes as f64);
    for (kind, oldest) in [
        ("pictures", u.oldest_picture_ms),
        ("recordings", u.oldest_segment_ms),
    ] {
        let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        metrics::gauge!("sightline_media_oldest_age_seconds", "kind" => kind).set(age);
    }
    if let Some(p) = disk_pct {
        metrics::gauge!("sightline_media_volume_used_ratio").set(p / 100.0);
    }
}

/// Whether disk survival mode is on, after each usage check.
pub(crate) fn survival_state(active: bool) {
    metrics::gauge!("sightline_media_survival_mode").set(if active { 1.0 } else { 0.0 });
}

/// Disk survival mode started or ended.
pub(crate) fn survival(active: bool, disk_pct: Option<f64>, media_bytes: u64, to_free: u64) {
    survival_state(active);
    if active {
        tracing::warn!(
            disk_pct,
            media_bytes,
            to_free,
            "disk survival mode: deleting the oldest media regardless of retention"
        );
    } else {
        tracing::info!(disk_pct, media_bytes, "disk survival mode ended");
    }
}
